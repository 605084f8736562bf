"""The one training loop (coamd/train/loop.py) behind all four trainers, on a small real subset of
the processed dataset: resume continues exactly, budgets stop the run, the log has one shape,
unknown config keys are rejected, the shipped weights still load."""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from coamd.train import trainer
from coamd.train.loop import EVAL_KEYS, STEP_KEYS, Schedule

TRAINERS = ("ae", "recognizer", "generator", "evaluator")
# small batches so a step takes well under a second on the 2-core machine
SMALL = {
    "ae": ["--train-set", "batch_size=4", "--train-set", "crop=32"],
    "recognizer": ["--train-set", "batch_size=8"],
    "generator": ["--batch-size", "4"],
    "evaluator": ["--train-set", "batch_size=8"],
}
RUN_FILES = {"state.pt", "log.jsonl", "best.pt"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, dataset) -> Path:
    """A processed dataset of 40 train, 32 val and 32 test clips of data/processed (real clips,
    spread over the splits' contents; labels and statistics of the full dataset)."""
    src = dataset.root
    out = tmp_path_factory.mktemp("tiny_dataset")
    meta = json.loads((src / "clips.json").read_text())
    with np.load(src / "motions.npz") as z:
        joints, offsets = z["joints"], z["offsets"]
    keep = []
    for split, n in (("train", 40), ("val", 32), ("test", 32)):
        idx = [i for i, m in enumerate(meta) if m["split"] == split]
        keep += [idx[k] for k in np.linspace(0, len(idx) - 1, n).astype(int)]
    parts = [joints[offsets[i]:offsets[i + 1]] for i in keep]
    np.savez(out / "motions.npz", joints=np.concatenate(parts),
             offsets=np.concatenate([[0], np.cumsum([len(p) for p in parts])]))
    (out / "clips.json").write_text(json.dumps([meta[i] for i in keep]))
    for f in ("labels.json", "stats.npz", "dataset_card.json"):
        shutil.copy(src / f, out / f)
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Run in a scratch folder: the evaluator keeps its text cache under ./runs."""
    d = tmp_path_factory.mktemp("work")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        yield d


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def train(name: str, *argv: str) -> dict:
    """``coamd train NAME ARGV --quiet --threads 1`` in this process; returns the trainer's result."""
    _, add_args, run = trainer(name)
    p = argparse.ArgumentParser()
    add_args(p)
    return run(p.parse_args([*argv, "--quiet", "--threads", "1"]))


def records(run_dir: Path, event: str) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if r["event"] == event]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def copy_caches(src: Path, dst: Path) -> None:
    """Text features / latents a trainer cached in its run folder (not its state or log)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name not in RUN_FILES and f.is_file() and not f.name.endswith(".tmp"):
            shutil.copy(f, dst / f.name)


@pytest.mark.parametrize("name", TRAINERS)
def test_stop_then_resume_equals_an_uninterrupted_run(name, tiny, workdir):
    """4 steps in one go, and 3 steps (--stop-after) then --resume: the same loss at every step, the
    same weights in --out; the step budget ends both; the log has the loop's keys."""
    d = workdir / name
    common = ["--dataset", str(tiny), "--seed", "3", "--train-set", "log_every=1", *SMALL[name]]
    train(name, *common, "--steps", "1", "--run-dir", str(d / "warm"), "--out", str(d / "warm.pt"))
    copy_caches(d / "warm", d / "a")  # both runs read the same cached features
    copy_caches(d / "warm", d / "b")

    a = train(name, *common, "--steps", "4", "--run-dir", str(d / "a"), "--out", str(d / "a.pt"))
    assert a["step"] == 4 and records(d / "a", "step")[-1]["step"] == 4  # the step budget stops it
    assert a["ended_by"] == records(d / "a", "end")[-1]["ended_by"] == "steps"

    b = train(name, *common, "--steps", "4", "--stop-after", "3", "--run-dir", str(d / "b"), "--out", str(d / "b.pt"))
    assert b["step"] == 3 and b["out"] is None and not (d / "b.pt").exists()
    assert [r["step"] for r in records(d / "b", "stop")] == [3]
    b = train(name, "--dataset", str(tiny), "--resume", "--run-dir", str(d / "b"), "--out", str(d / "b.pt"))
    assert b["step"] == 4
    starts = records(d / "b", "start")
    assert [(s["step"], s["resume"]) for s in starts] == [(0, False), (3, True)]

    la = [(r["step"], r["loss"], r["lr"]) for r in records(d / "a", "step")]
    lb = [(r["step"], r["loss"], r["lr"]) for r in records(d / "b", "step")]
    assert la == lb and [s for s, *_ in la] == [1, 2, 3, 4]
    wa, wb = weights(d / "a.pt"), weights(d / "b.pt")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    # one log shape for every trainer
    for run in ("a", "b"):
        assert all(tuple(r) == STEP_KEYS for r in records(d / run, "step"))
        assert all(tuple(r) == EVAL_KEYS for r in records(d / run, "eval"))
        assert records(d / run, "end")[-1]["out"] == str(d / f"{run}.pt")


@pytest.mark.parametrize("name", TRAINERS)
def test_trained_weights_load_with_the_models_loaders(name, workdir):
    """The --out files of the previous test in the formats the rest of the code loads."""
    path = workdir / name / "b.pt"
    if not path.exists():
        pytest.skip("needs test_stop_then_resume_equals_an_uninterrupted_run")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if name == "ae":
        from coamd.models.autoencoder import MotionAutoencoder

        MotionAutoencoder.from_checkpoint(ck)
        assert ck["meta"]["steps"] == 4 and "mpjpe_cm" in ck["meta"]["val"]
    elif name == "recognizer":
        from coamd.models.recognizer import ActionRecognizer

        ActionRecognizer.from_checkpoint(ck)
        assert ck["meta"]["steps"] == 4 and len(ck["meta"]["content_texts"]) == 24
    elif name == "generator":
        from coamd.models.generator import load_generator

        load_generator(path)
        assert ck["train"]["steps"] == 4 and ck["train"]["val_loss"] > 0
    else:
        from coamd.evaluation.evaluator import load_evaluator

        load_evaluator(path)
        assert ck["meta"]["step"] == 4 and 0 <= ck["meta"]["val_r_precision_top1"] <= 1
        best = torch.load(workdir / name / "b" / "best.pt", map_location="cpu", weights_only=False)
        assert all(torch.equal(best["state_dict"][k], ck["state_dict"][k]) for k in ck["state_dict"])


def test_time_budget_stops_the_run_and_ends_the_schedule(tiny, workdir):
    """A run whose clock ends before its step budget stops at the first step after it, ends
    its schedule, and says so: ``ended_by`` "time" in the result and the log's end line."""
    d = workdir / "ae_time"
    r = train("ae", "--dataset", str(tiny), "--steps", "100000", "--max-minutes", "0.02", "--train-set", "log_every=1",
              *SMALL["ae"], "--run-dir", str(d), "--out", str(d / "ae.pt"))
    assert 0 < r["step"] < 100000
    assert r["ended_by"] == records(d, "end")[-1]["ended_by"] == "time"
    assert 1.2 <= r["train_seconds"] < 1.2 + 30  # stops at the first step after 1.2 s
    steps = records(d, "step")
    assert steps[-1]["step"] == r["step"]
    # the learning rate follows the time budget: peak in the middle, near its end value at the end
    assert steps[-1]["lr"] < 0.2 * max(s["lr"] for s in steps)
    assert (d / "ae.pt").exists()


@pytest.mark.parametrize("name", TRAINERS)
@pytest.mark.parametrize("flag", ["--set", "--train-set"])
def test_unknown_config_keys_are_rejected(name, flag, tiny, workdir):
    d = workdir / f"{name}_bad"
    with pytest.raises(ValueError, match=r"unknown .*\['no_such_key'\].*(valid|known)"):
        train(name, "--dataset", str(tiny), flag, "no_such_key=1", "--steps", "1", "--run-dir", str(d),
              "--out", str(d / "x.pt"))
    assert not (d / "x.pt").exists()


def test_resume_errors_are_clear(tiny, workdir):
    d = workdir / "resume_errors"
    with pytest.raises(FileNotFoundError, match="no training state"):
        train("ae", "--dataset", str(tiny), "--resume", "--run-dir", str(d / "none"), "--out", str(d / "x.pt"))
    with pytest.raises(ValueError, match="belongs to the ae trainer"):
        train("recognizer", "--dataset", str(tiny), "--resume", "--run-dir", str(workdir / "ae" / "b"),
              "--out", str(d / "x.pt"))
    with pytest.raises(ValueError, match="--set changes the model"):
        train("ae", "--dataset", str(tiny), "--resume", "--set", "width=64", "--run-dir", str(workdir / "ae" / "b"),
              "--out", str(d / "x.pt"))


@pytest.mark.parametrize("name", TRAINERS)
def test_shipped_weights_load_and_measure(name, tiny, workdir):
    """--eval-only on the shipped coamd/checkpoints/default weights (the default --out) measures
    real test clips and writes nothing there."""
    from coamd.paths import DEFAULT_CHECKPOINT

    before = {p.name: p.stat().st_mtime for p in DEFAULT_CHECKPOINT.iterdir()}
    m = train(name, "--dataset", str(tiny), "--eval-only", "--run-dir", str(workdir / f"{name}_eval"))
    if name == "ae":
        assert m["clips"] == 32 and m["mpjpe_cm"] < 8.0  # 3.3 cm on the full test split
    elif name == "recognizer":
        assert m["clips"] == 32 and m["content_top1"] > 0.7
    elif name == "generator":
        assert m["val_loss"] < 1.0  # 0.42 at the end of its training, 2.2 at its start
    else:
        assert m["test"]["n"] == 32 and m["test"]["r_top1"] > 0.3  # chance: 1/32
    assert {p.name: p.stat().st_mtime for p in DEFAULT_CHECKPOINT.iterdir()} == before


def _ae_recognizer_lr(progress: float, base: float, warmup: float = 0.03, final: float = 0.02) -> float:
    """The autoencoder's and recognizer's schedule before the loop existed (common.lr_at)."""
    if progress < warmup:
        return base * max(progress / warmup, 0.02)
    q = (progress - warmup) / max(1 - warmup, 1e-8)
    return base * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(q, 1.0))))


def _generator_lr(base: float, warmup: int, steps: int, max_minutes: float, step: int, elapsed_min: float) -> float:
    """The generator's schedule before the loop existed (generator._lr)."""
    if step < warmup:
        return base * (step + 1) / warmup
    prog = max((step - warmup) / max(1, steps - warmup), elapsed_min / max_minutes)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, prog))))


def test_schedule_is_the_trainers_earlier_schedules():
    s = Schedule(warmup=0.03, final=0.02)
    for steps in (4, 3000, 12000):
        for step in sorted({0, 1, 2, steps // 50, steps // 2, steps - 1}):
            assert s.lr(1e-3, step, steps, 0.0, None) == _ae_recognizer_lr(step / steps, 1e-3)
            p = max(step / steps, 30.0 / 600)  # 30 s into a 10 min budget
            assert s.lr(1e-3, step, steps, 30.0, 600.0) == _ae_recognizer_lr(min(p, 1.0), 1e-3)
    g = Schedule(warmup=100, final=0.05)
    for step in (0, 50, 99, 100, 101, 3000, 5999):
        assert g.lr(8e-4, step, 6000, 0.0, 28 * 60.0) == _generator_lr(8e-4, 100, 6000, 28.0, step, 0.0)
        assert math.isclose(g.lr(8e-4, step, 6000, 600.0, 28 * 60.0),
                            _generator_lr(8e-4, 100, 6000, 28.0, step, 10.0), rel_tol=1e-12)


def test_class_balanced_draws_lift_rare_actions_on_the_real_training_split(dataset):
    """``balance`` 0.5 draws each action in proportion to the square root of its clips: on the
    real training split the rare actions (punch, kick: 1-2 clips) come up many times more often
    than in the data, and ``balance`` 0 keeps the data's frequencies."""
    from coamd.train.generator import balance_weights

    names = sorted({c.content for c in dataset.clips})
    labels = np.array([names.index(c.content) for c in dataset.split("train")])
    counts = np.bincount(labels, minlength=len(names))
    assert balance_weights(labels, 0.0) is None
    p = balance_weights(labels, 0.5)
    mass = np.bincount(labels, weights=p, minlength=len(names))
    present = counts > 0
    expected = np.sqrt(counts[present]) / np.sqrt(counts[present]).sum()
    np.testing.assert_allclose(mass[present], expected, rtol=1e-9)
    rare = present & (counts <= 2)
    assert rare.any()
    lift = mass[rare] / (counts[rare] / counts.sum())
    assert lift.min() > 5                                  # rare actions drawn far more often
    draws = np.random.default_rng(0).choice(len(labels), size=200_000, p=p)
    freq = np.bincount(labels[draws], minlength=len(names)) / len(draws)
    np.testing.assert_allclose(freq[present], expected, atol=0.005)
    with pytest.raises(ValueError, match="balance"):
        balance_weights(labels, 1.5)


def test_style_balanced_draws_lift_rare_styles_within_each_action_on_the_real_training_split(dataset):
    """``style_balance`` 0.5 draws, inside each action, every style in proportion to the square
    root of that pair's clips, leaving each action's total mass where ``balance`` puts it: on the
    real training split a walk style captured once (set 1: giant, sad, ...) comes up several times
    more often among walks than in the data, and ``style_balance`` 0 is the action balance alone."""
    from coamd.train.generator import balance_weights

    train = dataset.split("train")
    names = sorted({c.content for c in dataset.clips})
    styles = sorted({c.style for c in dataset.clips})
    labels = np.array([names.index(c.content) for c in train])
    sty = np.array([styles.index(c.style) for c in train])
    p_action = balance_weights(labels, 0.5)
    np.testing.assert_allclose(balance_weights(labels, 0.5, sty, 0.0), p_action, rtol=1e-12)
    p = balance_weights(labels, 0.5, sty, 0.5)
    np.testing.assert_allclose(np.bincount(labels, weights=p), np.bincount(labels, weights=p_action), rtol=1e-9)
    walk = labels == names.index("walk")
    pair_counts = {s: int((walk & (sty == s)).sum()) for s in np.unique(sty[walk])}
    mass = {s: p[walk & (sty == s)].sum() / p[walk].sum() for s in pair_counts}
    root = {s: np.sqrt(n) for s, n in pair_counts.items()}
    for s in pair_counts:
        assert mass[s] == pytest.approx(root[s] / sum(root.values()), rel=1e-9)
    rare = [s for s, n in pair_counts.items() if n <= 2]
    assert rare, "the training split has walk styles captured in set 1 only"
    share = {s: n / walk.sum() for s, n in pair_counts.items()}
    assert min(mass[s] / share[s] for s in rare) > 3      # rare walk styles lifted
    with pytest.raises(ValueError, match="style_balance"):
        balance_weights(labels, 0.5, sty, -0.1)
    with pytest.raises(ValueError, match="entries"):
        balance_weights(labels, 0.5, sty[:-1], 0.5)


def test_training_threads_fall_back_to_one_with_a_warning_on_a_busy_machine(monkeypatch):
    """When other work keeps the cores busy the trainers use one thread and say so (a generator
    run's schedule follows the wall clock, so a silently slow run would also train less); on an
    idle machine they use up to two threads without a word; COAMD_THREADS overrides both. (The
    busy measure itself is tested on real busy processes in tests/test_cpu.py.)"""
    import warnings

    from coamd.train.common import default_threads

    monkeypatch.delenv("COAMD_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("coamd.cpu.busy_cores", lambda window_s=0.2: 1.9)
    with pytest.warns(RuntimeWarning, match="1 thread: other work keeps 1.9 of the 2 cores.*COAMD_THREADS"):
        assert default_threads() == 1
    monkeypatch.setattr("coamd.cpu.busy_cores", lambda window_s=0.2: 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert default_threads() == 2
    # where /proc/stat cannot be read, the 1-minute load average decides
    monkeypatch.setattr("coamd.cpu.busy_cores", lambda window_s=0.2: None)
    monkeypatch.setattr("os.getloadavg", lambda: (3.5, 1.0, 0.5))
    with pytest.warns(RuntimeWarning, match="1 thread: the 1-minute load average 3.5"):
        assert default_threads() == 1
    monkeypatch.setenv("COAMD_THREADS", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert default_threads() == 2
