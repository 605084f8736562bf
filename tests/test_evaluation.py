"""The shipped evaluator on REAL test data, and `coamd eval` end to end on a tiny subset."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def evaluator():
    from coamd.evaluation.evaluator import load_evaluator

    return load_evaluator()


def test_shipped_evaluator_is_small_and_independent_of_the_recognizer(evaluator):
    from coamd.evaluation.evaluator import DEFAULT_CHECKPOINT

    assert DEFAULT_CHECKPOINT.stat().st_size < 8e6
    names = {type(m).__name__ for m in evaluator.modules()}
    assert "Conv1d" in names and not any("Transformer" in n or "Attention" in n for n in names)


def test_evaluator_ranks_matching_captions_above_mismatched(dataset, evaluator):
    clips = dataset.split("test")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(clips), 200, replace=False)
    wins = 0
    m = evaluator.embed_clips([clips[i].joints for i in pick])
    own = evaluator.embed_texts([clips[i].caption_texts(heldout=True)[0] for i in pick])  # unseen family E
    others = []
    for i in pick:
        # a caption of a clip with another content class
        j = rng.choice([k for k in range(len(clips)) if clips[k].content != clips[i].content])
        others.append(clips[j].caption_texts(heldout=True)[0])
    oth = evaluator.embed_texts(others)
    wins = ((m * own).sum(1) > (m * oth).sum(1)).mean()
    assert wins > 0.8, f"matching caption ranked first for only {wins:.0%} of real test clips"


def test_evaluator_rejects_bad_input(evaluator):
    with pytest.raises(ValueError):
        evaluator.embed_motion(np.zeros((1, 10, 20, 3), np.float32))
    with pytest.raises(ValueError):
        evaluator.embed_clips([np.full((10, 21, 3), np.nan, np.float32)])
    with pytest.raises(ValueError):
        evaluator.embed_texts([""])


def test_coamd_eval_tiny_subset_writes_report(tmp_path, dataset):
    """The same code as the committed report, on a small subset (generation included when the
    generator is available)."""
    import os

    out = tmp_path / "rep"
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "coamd.cli", "eval", "--out", str(out), "--subset", "32", "--repeats", "1",
           "--mm-texts", "4", "--mm-samples", "2", "--sections", "generation,modality", "--quiet",
           "--dataset", str(dataset.root)]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    for heading in ("## Generation", "## Recognition", "## Retrieval", "## Modality ablation", "Command:"):
        assert heading in md
    real = rep["generation"]["Real motions"]
    assert real["r_top1"][0] > 4 / 32, f"real R@1 {real['r_top1'][0]} not well above chance"
    assert real["r_top3"][0] >= real["r_top1"][0]
    assert rep["retrieval"]["evaluator"]["batch32"]["t2m"]["1"] > 4 / 32
    assert rep["recognition"]["evaluator (zero-shot)"]["content"]["overall"] > 0.3
    assert (out / "plots" / "recognition.png").stat().st_size > 1000
    if "generation" not in rep["missing"]:
        assert "Unguided (w/o recognizer)" in rep["generation"]
        assert "Guided (recognizer J+B+M)" in rep["generation"]
        cleaned = rep["generation"]["Unguided (w/o recognizer), foot-contact cleanup"]
        raw = rep["generation"]["Unguided (w/o recognizer)"]
        assert cleaned["skate_speed"][0] < raw["skate_speed"][0] / 2  # same motions, feet planted


def test_modality_ablation_scores_each_trained_variant(tmp_path, dataset, evaluator):
    """Table 7 rows come from the variants found in the ablation folder (names carry their
    training budget); absent variants are listed, not invented."""
    from types import SimpleNamespace

    import torch

    from coamd.evaluation import gen_sections, suite
    from coamd.models.presets import build_autoencoder, build_recognizer
    from coamd.models.text import TextEncoder
    from coamd.train.common import save_model

    torch.manual_seed(0)
    ae = build_autoencoder("small", dataset.stats, streams=["joint", "bone"], stream_dim=16, width=32,
                           latent_dim=8, blocks=1)
    save_model(tmp_path / "autoencoder_jb.pt", ae.checkpoint(), {"steps": 7})
    rec = build_recognizer("small", dataset.stats, streams=("joint",), width=32, embed_dim=32, layers=1, heads=2)
    save_model(tmp_path / "recognizer_j.pt", rec.checkpoint(), {"steps": 5})
    data = suite.prepare(dataset, evaluator)
    report: dict = {}
    bundle = SimpleNamespace(text_encoder=TextEncoder(), autoencoder=None, recognizer=None)
    gen_sections.modality_ablation(report, evaluator, data, bundle, list(range(32)), ablation_dir=str(tmp_path))
    ma = report["modality_ablation"]
    assert set(ma["autoencoder"]) == {"Real motions", "J+B (7 steps)"}
    jb = ma["autoencoder"]["J+B (7 steps)"]
    assert jb["mpjpe_cm"] > 1.0  # untrained weights cannot reconstruct real clips
    assert set(ma["recognizer"]) == {"J (5 steps)"}
    assert 0.0 <= ma["recognizer"]["J (5 steps)"]["content"] <= 1.0
    assert "autoencoder J+M" in ma["note"] and "recognizer J+B+M" in ma["note"]


def test_generation_quality_on_validation_clips_scores_with_the_evaluator(dataset, evaluator):
    """``benchmarks.generation_quality --split val`` (where sampler settings are chosen) draws only
    validation clips, and every row carries the evaluator's FID, R@1 and zero-shot content; real
    clips sit closer to the training clips' distribution (lower FID) than generated motions."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.generation_quality import measure_generation_quality
    from coamd.runtime import load_engine

    with pytest.raises(ValueError, match="split"):
        measure_generation_quality(None, dataset.root, clips=2, split="train")
    eng = load_engine("onnxruntime", dataset=dataset.root, guidance=False)
    rows = measure_generation_quality(eng, dataset.root, clips=40, seed=0, progress=False, guided_rows=False,
                                      conditionings=("raw",), split="val", evaluator=evaluator, iterations=4)
    assert "real val clips" in rows and "real test clips" not in rows
    real, gen = rows["real val clips"], rows["unguided, captions A-D, runtime (cleaned + skeleton)"]
    for r in rows.values():
        assert {"fid", "r_top1", "evaluator_content_acc"} <= set(r) and r["n"] == 40
        assert np.isfinite(r["fid"]) and r["fid"] >= 0 and 0 <= r["r_top1"] <= 1
    assert real["evaluator_content_acc"] >= 0.6 and real["content_acc"] >= 0.8   # real clips, both judges
    assert real["fid"] < gen["fid"]            # real motions are closer to the training clips than generated ones
    assert gen["evaluator_content_acc"] > 0.3  # far above chance (1 / 24)
