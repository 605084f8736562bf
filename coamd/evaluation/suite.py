"""The evaluation protocol: which motions are scored, and how each table of the report is built.

Every table carries a row of REAL test motions scored by the same evaluator in the same run.
Protocol (fixed, seeded):

* Texts: for every test clip one caption, drawn with the run's seed from all five paraphrase
  families (family E was never seen by the generator, the recognizer or the evaluator).
* A generation "repeat" draws ``subset`` test clips (seed + repeat), asks for one motion per
  caption with the clip's duration (clamped to 1-10 s), and scores it. Means over repeats carry
  95 % confidence intervals (1.96 std / sqrt(R)).
* FID reference: the real motions of the validation split (never in a test subset), so the real
  row's FID measures the finite-sample floor of the same estimator.
* Diversity uses min(300, N) pairs; MultiModality uses ``mm_samples`` motions for each of the
  first ``mm_texts`` texts of a repeat.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from coamd.evaluation import metrics as M
from coamd.evaluation.evaluator import MotionTextEvaluator
from coamd.evaluation.text_features import encode_texts
from coamd.paths import DEFAULT_RUNS
from coamd.skeleton import FPS

TEXT_CACHE = f"{DEFAULT_RUNS}/eval_cache/text_feats.npz"


@dataclass
class EvalData:
    """Real data of one evaluation run: test clips with one caption each and the FID reference."""

    clips: list                     # test-split Clip objects
    captions: list[str]             # one caption per test clip
    families: list[str]
    ref_emb: np.ndarray             # (N_val, E) evaluator embeddings of the validation split
    train_contents: list[str]
    train_styles: list[str]
    dataset: object = None
    cache: dict = field(default_factory=dict)


def prepare(dataset, evaluator: MotionTextEvaluator, seed: int = 0, text_cache: str | None = TEXT_CACHE) -> EvalData:
    """Pick one caption per test clip (seeded, families A-E) and embed the validation split."""
    rng = np.random.default_rng(seed)
    test = dataset.split("test")
    caps, fams = [], []
    for c in test:
        k = int(rng.integers(0, len(c.captions)))
        caps.append(c.captions[k]["text"])
        fams.append(c.captions[k]["family"])
    ref = evaluator.embed_clips([c.joints for c in dataset.split("val")])
    train = dataset.split("train")
    return EvalData(test, caps, fams, ref, [c.content for c in train], [c.style for c in train], dataset)


def embed_texts(evaluator, data: EvalData, texts: list[str]) -> np.ndarray:
    """Evaluator embeddings (N, E) of caption strings (MiniLM features cached on disk)."""
    with torch.no_grad():
        return evaluator.embed_text(encode_texts(texts, cache=TEXT_CACHE)).numpy()


def real_test_embeddings(evaluator, data: EvalData) -> np.ndarray:
    """Evaluator embeddings (N_test, E) of all real test clips, computed once per run."""
    if "test_emb" not in data.cache:
        data.cache["test_emb"] = evaluator.embed_clips([c.joints for c in data.clips])
    return data.cache["test_emb"]


def score_generation(evaluator, data: EvalData, texts: list[str], motions: list[np.ndarray],
                     mm_motions: list[list[np.ndarray]] | None = None, seed: int = 0,
                     contents: list[str] | None = None, motion_emb: np.ndarray | None = None) -> dict:
    """All generation metrics of one set of (text, motion) pairs.

    texts: N captions; motions: N arrays (T_i, 21, 3) metres at 20 fps; mm_motions: optional list
    of groups of motions generated from the same text (MultiModality); contents: optional N
    requested content classes, scored as ``content_acc`` = the evaluator's zero-shot nearest
    content label text (independent of the recognizer). Returns a flat dict of floats.
    """
    t = embed_texts(evaluator, data, texts)
    m = evaluator.embed_clips(motions) if motion_emb is None else motion_emb
    r = M.r_precision(t, m, 32, 3, seed=seed)
    out = {"r_top1": r[0], "r_top2": r[1], "r_top3": r[2],
           "fid": M.frechet_distance(data.ref_emb, m),
           "mm_dist": M.mm_dist(t, m),
           "diversity": M.diversity(m, min(300, len(m)), seed=seed),
           "cosine": M.cosine_score(t, m)}
    if mm_motions:
        g = np.stack([evaluator.embed_clips(group) for group in mm_motions])
        out["multimodality"] = M.multimodality(g)
    if contents is not None:
        ds = data.dataset
        lab = embed_texts(evaluator, data, ds.content_texts)
        pred = label_predictions(m, lab, ds.contents)
        out["content_acc"] = float(np.mean([p == c for p, c in zip(pred, contents)]))
    out.update(M.physical_metrics(motions))
    return {k: float(v) for k, v in out.items()}


def aggregate(runs: list[dict]) -> dict:
    """Mean and 95 % CI half-width of every metric over repeated runs: {metric: [mean, ci]}."""
    keys = sorted({k for r in runs for k in r})
    return {k: list(M.mean_ci95([r[k] for r in runs if k in r])) for k in keys}


def subset_indices(n_total: int, subset: int, seed: int) -> np.ndarray:
    """``subset`` distinct test indices drawn with ``seed`` (all, shuffled, when subset >= n_total)."""
    rng = np.random.default_rng(seed)
    return rng.permutation(n_total)[: min(subset, n_total)]


def durations_for(clips) -> list[float]:
    """Requested durations: the real clip's length, clamped to 1-10 s, on the 0.2 s token grid."""
    return [float(np.clip(round(len(c.joints) / FPS / 0.2) * 0.2, 1.0, 10.0)) for c in clips]


# ----------------------------------------------------------------------------- recognition / retrieval
def label_predictions(motion_emb: np.ndarray, label_emb: np.ndarray, names: list[str]) -> list[str]:
    """Nearest label text by cosine similarity: (N, E), (K, E) -> N class names."""
    sim = motion_emb @ label_emb.T
    return [names[i] for i in sim.argmax(1)]


def evaluator_recognition(evaluator, data: EvalData) -> dict:
    """Zero-shot recognition by the evaluator (nearest content / style label text)."""
    ds = data.dataset
    m = real_test_embeddings(evaluator, data)
    out = {}
    for kind, names, texts, train in (("content", ds.contents, ds.content_texts, data.train_contents),
                                      ("style", ds.styles, ds.style_texts, data.train_styles)):
        lab = embed_texts(evaluator, data, texts)
        pred = label_predictions(m, lab, names)
        true = [getattr(c, kind) for c in data.clips]
        out[kind] = M.grouped_top1(true, pred, M.frequency_groups(train))
    return out


def retrieval_table(text_emb: np.ndarray, motion_emb: np.ndarray, texts: list[str], seed: int = 0) -> dict:
    """Text->motion and motion->text R@1/2/3/5/10, in batches of 32 and over the whole set.
    Identical caption strings count as the same text (their motions are all correct)."""
    _, groups = np.unique(np.asarray(texts), return_inverse=True)
    out = {}
    for proto, bs in (("batch32", 32), ("full", None)):
        out[proto] = {
            "t2m": M.retrieval_recall(text_emb, motion_emb, batch_size=bs, seed=seed, gallery_groups=groups),
            "m2t": M.retrieval_recall(motion_emb, text_emb, batch_size=bs, seed=seed, gallery_groups=groups),
        }
    return out


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def to_jsonable(x):
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return x


def recognizer_embeddings(bundle, data, texts, recognizer=None, name: str = "shipped") -> dict:
    """Embeddings of all test clips (every kind the recognizer has), of ``texts`` and of the
    content/style label texts, by ``recognizer`` (default: the bundle's; ``name`` keys the cache).
    Returns {"fused"|"joint"|"bone"|"motion": (N_clips, E), "text": (N_texts, E),
    "label_content"|"label_style": (N_labels, E)} float32 arrays (the streams the recognizer has)."""
    key = ("rec", name, tuple(texts))
    if key in data.cache:
        return data.cache[key]
    rec = (recognizer if recognizer is not None else bundle.recognizer).eval()
    streams: dict[str, list] = {}
    with torch.no_grad():
        for s in range(0, len(data.clips), 32):
            chunk = [c.joints for c in data.clips[s:s + 32]]
            T = max(len(j) for j in chunk)
            x = torch.zeros(len(chunk), T, 21, 3)
            valid = torch.zeros(len(chunk), T, dtype=torch.bool)
            for k, j in enumerate(chunk):
                x[k, : len(j)] = torch.from_numpy(j)
                valid[k, : len(j)] = True
            e = rec.embed_motion(x, valid)
            for k, v in e.items():
                streams.setdefault(k, []).append(v.numpy())
        feats = bundle.text_encoder.encode(list(texts))
        out = {k: np.concatenate(v) for k, v in streams.items()}
        out["text"] = rec.embed_text(feats).numpy()
        for kind, names in (("content", data.dataset.content_texts), ("style", data.dataset.style_texts)):
            out[f"label_{kind}"] = rec.embed_text(bundle.text_encoder.encode(list(names))).numpy()
    data.cache[key] = out
    return out
