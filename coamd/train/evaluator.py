"""``coamd train evaluator``: contrastive training of the text-motion evaluator.

Symmetric InfoNCE (CLIP, Radford et al. 2021) between the temporal-convolution motion encoder of
:mod:`coamd.evaluation.evaluator` and a trained projection of frozen MiniLM caption features, on the
train split with caption families A-D only (family E is never seen; it tests unseen phrasing).
Pairs in a batch whose captions are identical are all counted as positives (multi-positive
targets), so duplicate captions are not pushed apart. Random crops of up to ``crop`` frames.

Resume, budgets (14 minutes by default), the LR schedule, log and saves are
:mod:`coamd.train.loop`'s. Every ``eval_every`` steps the validation R-precision top-1 (batches of
32) is measured; the best weights are kept in ``RUN_DIR/best.pt`` and written to ``--out``
(``{"config", "state_dict", "meta"}``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from coamd.paths import DEFAULT_RUNS
from coamd.train import common, loop

DEFAULT_RUN_DIR = f"{DEFAULT_RUNS}/evaluator"
TEXT_CACHE = f"{DEFAULT_RUNS}/eval_cache/text_feats.npz"
DEFAULT_MINUTES = 14.0


@dataclasses.dataclass
class EvaluatorTrainConfig(loop.TrainConfig):
    """Training hyper-parameters of the evaluator (``--train-set key=value``); the loop's keys are
    :class:`~coamd.train.loop.TrainConfig`'s (``warmup`` in steps here)."""

    batch_size: int = 96         # clips per contrastive batch
    crop: int = 80               # longest training crop in frames (4 s)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    steps: int = 20000
    warmup: float = 50
    final_lr: float = 0.05
    log_every: int = 10
    eval_every: int = 100

    def __post_init__(self):
        super().__post_init__()
        if self.batch_size < 2 or self.crop < 8:
            raise ValueError(f"the evaluator needs batch_size >= 2 and crop >= 8, got {self.batch_size} and {self.crop}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Command-line options of ``coamd train evaluator``: the common ones plus the earlier names
    ``--minutes``, ``--max-steps``, ``--batch-size``, ``--lr``, ``--crop`` and ``--eval-every``."""
    common.add_common_args(p, "evaluator", "evaluator.pt", DEFAULT_MINUTES)
    p.set_defaults(run_dir=DEFAULT_RUN_DIR)
    p.add_argument("--minutes", dest="max_minutes", type=float, default=argparse.SUPPRESS,
                   help=f"same as --max-minutes (default: {DEFAULT_MINUTES:g})")
    p.add_argument("--max-steps", dest="steps", type=int, default=argparse.SUPPRESS, help="same as --steps")
    p.add_argument("--batch-size", type=int, default=None, help="same as --train-set batch_size=N (default: 96)")
    p.add_argument("--lr", type=float, default=None, help="same as --train-set lr=X (default: 1e-3)")
    p.add_argument("--crop", type=int, default=None, help="same as --train-set crop=N (default: 80 frames)")
    p.add_argument("--eval-every", type=int, default=None, help="same as --train-set eval_every=N (default: 100)")


def _caption_pool(clips) -> list[list[str]]:
    return [[c["text"] for c in clip.captions if c["family"] in "ABCD"] for clip in clips]


def _batch(joints_list, idx, crop, rng, with_valid=True):
    from coamd.evaluation.evaluator import FEATURE_DIM, motion_features

    crops = []
    for i in idx:
        j = joints_list[i]
        T = j.shape[0]
        L = min(T, crop)
        s = int(rng.integers(0, T - L + 1))
        crops.append(j[s:s + L])
    T = max(c.shape[0] for c in crops)
    feats = torch.zeros(len(crops), T, FEATURE_DIM)
    valid = torch.zeros(len(crops), T, dtype=torch.bool)
    for k, c in enumerate(crops):
        feats[k, : c.shape[0]] = motion_features(c)[0]
        valid[k, : c.shape[0]] = True
    return feats, valid


def _val_rprec(model, val_feats, val_valid, val_text, seed=0) -> dict:
    """Validation R-precision top-1 / top-3 (batches of 32) of the fixed val pairs; leaves the
    model in training mode."""
    from coamd.evaluation.metrics import r_precision

    model.eval()
    with torch.no_grad():
        m = torch.cat([model.embed_features(val_feats[i:i + 128], val_valid[i:i + 128])
                       for i in range(0, len(val_feats), 128)]).numpy()
        t = model.embed_text(val_text).numpy()
    model.train()
    r = r_precision(t, m, batch_size=32, top_k=3, seed=seed)
    return {"val_r1": float(r[0]), "val_r3": float(r[2])}


def train(a: argparse.Namespace) -> dict:
    """Train the evaluator as configured by ``a`` (see :func:`add_arguments`); prints and returns
    a summary (``steps``, ``best_val_r1``, ``out``, ``minutes``). Raises ValueError for unknown
    ``--set`` / ``--train-set`` keys or a preset other than ``small``; FileNotFoundError for a
    missing dataset or state."""
    summary = loop.train("evaluator", lambda spec, rng: build(a, spec, rng), loop.run_options(a, DEFAULT_MINUTES))
    if not summary["out"]:
        print(f"stopped after step {summary['step']}; continue with --resume --run-dir {a.run_dir}")
        return summary
    out = {"steps": summary["step"], "best_val_r1": summary["best"], "out": summary["out"],
           "minutes": round(summary["train_seconds"] / 60, 2)}
    print(json.dumps(out))
    return {**summary, **out}


def build(a: argparse.Namespace, spec: dict | None, rng: loop.Rng) -> loop.Task:
    """The evaluator's :class:`~coamd.train.loop.Task` from the parsed arguments ``a`` (new run)
    or the saved ``spec`` (resume). Each step draws ``batch_size`` distinct train clips, one
    training caption and one random crop each (``rng.np``) and returns the symmetric InfoNCE loss."""
    from coamd.data.dataset import MotionDataset
    from coamd.evaluation.evaluator import EvaluatorConfig, MotionTextEvaluator, motion_features
    from coamd.evaluation.text_features import encode_texts

    if a.device != "cpu":
        raise ValueError("the evaluator trainer runs on the CPU (--device cpu)")
    train_over = common.parse_overrides(a.train_overrides)
    for key in ("batch_size", "lr", "crop", "eval_every"):
        if getattr(a, key, None) is not None:
            train_over[key] = getattr(a, key)
    tcfg = loop.training_config(EvaluatorTrainConfig, spec and spec["train"], {}, train_over, a.steps)
    if spec is None:
        if a.preset != "small":
            raise ValueError(f"the evaluator has one size (--preset small), got --preset {a.preset}; "
                             f"change its size with --set")
        overrides = common.parse_overrides(a.overrides)
        known = sorted(f.name for f in dataclasses.fields(EvaluatorConfig))
        bad = sorted(set(overrides) - set(known))
        if bad:
            raise ValueError(f"unknown EvaluatorConfig key(s) {bad}; valid keys: {known}")
    ds = MotionDataset(a.dataset)
    train_clips, val_clips = ds.split("train"), ds.split("val")
    captions = _caption_pool(train_clips)
    all_texts = sorted({t for cs in captions for t in cs} | {c["text"] for cl in val_clips for c in cl.captions})
    feats_all = encode_texts(all_texts, cache=TEXT_CACHE)
    tindex = {t: i for i, t in enumerate(all_texts)}
    text_feats = torch.from_numpy(feats_all)
    joints_list = [c.joints for c in train_clips]

    if spec is None:
        model = MotionTextEvaluator(overrides)
        # input normalisation from the train split
        cat = torch.cat([motion_features(j)[0] for j in joints_list])
        model.feat_mean.copy_(cat.mean(0))
        model.feat_std.copy_(cat.std(0).clamp_min(1e-3))
        del cat
    else:
        model = MotionTextEvaluator(spec["model"])  # weights and statistics: from state.pt
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)

    # fixed validation set: one family A-D caption per val clip, centre crop of max_frames
    vrng = np.random.default_rng(1234)
    Tm = model.config.max_frames
    vj = []
    for c in val_clips:
        j = c.joints
        if j.shape[0] > Tm:
            s = (j.shape[0] - Tm) // 2
            j = j[s:s + Tm]
        vj.append(j)
    val_feats, val_valid = _batch(vj, range(len(vj)), 10 ** 6, vrng)
    vcap = [c.caption_texts()[int(vrng.integers(0, 4))] for c in val_clips]
    val_text = text_feats[[tindex[t] for t in vcap]]
    model.train()
    n = len(train_clips)

    def step(log: bool) -> tuple[torch.Tensor, dict]:
        idx = rng.np.choice(n, size=min(tcfg.batch_size, n), replace=False)
        caps = [captions[i][int(rng.np.integers(0, len(captions[i])))] for i in idx]
        feats, valid = _batch(joints_list, idx, tcfg.crop, rng.np)
        tf = text_feats[[tindex[t] for t in caps]]
        em = model.embed_features(feats, valid)
        et = model.embed_text(tf)
        logits = model.logit_scale.exp().clamp(max=100) * em @ et.T
        same = torch.tensor([[x == y for y in caps] for x in caps], dtype=torch.float32)
        target = same / same.sum(1, keepdim=True)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)), {}

    def export(summary: dict) -> dict:
        return {"config": asdict(model.config), "state_dict": model.state_dict(),
                "meta": {"step": summary["step"], "val_r_precision_top1": summary["val"]["val_r1"], "seed": a.seed,
                         "train_minutes": round(summary["train_seconds"] / 60, 2),
                         "captions": "train split, families A-D", "text_encoder": "all-MiniLM-L6-v2 (frozen)"}}

    return loop.Task(
        config=tcfg, modules={"model": model}, optimizer=opt,
        spec={"model": asdict(model.config), "train": tcfg.to_dict()},
        step=step, evaluate=lambda final: _val_rprec(model, val_feats, val_valid, val_text),
        export=export, best="val_r1",
        info={"params": sum(p.numel() for p in model.parameters()), "train_clips": n, "val_clips": len(val_clips)})


# the interface of the trainer registry (coamd/train/__init__.py)
add_args = add_arguments


def measure(path: str, dataset: str) -> dict:
    """R-precision top-1/2/3 (batches of 32) and MM-Dist of real val and test clips with one
    caption each (families A-D for val, all five families for test), for the evaluator at ``path``."""
    from coamd.data.dataset import MotionDataset
    from coamd.evaluation.evaluator import load_evaluator
    from coamd.evaluation.metrics import mm_dist, r_precision

    ev = load_evaluator(path)
    ds = MotionDataset(dataset)
    out = {}
    rng = np.random.default_rng(0)
    for split, fams in (("val", "ABCD"), ("test", "ABCDE")):
        clips = ds.split(split)
        texts = []
        for c in clips:
            caps = [x["text"] for x in c.captions if x["family"] in fams]
            texts.append(caps[int(rng.integers(0, len(caps)))])
        t = ev.embed_texts(texts, cache=TEXT_CACHE)
        m = ev.embed_clips([c.joints for c in clips])
        r = r_precision(t, m, 32, 3, seed=0)
        out[split] = {"r_top1": round(float(r[0]), 4), "r_top2": round(float(r[1]), 4),
                      "r_top3": round(float(r[2]), 4), "mm_dist": round(mm_dist(t, m), 4), "n": len(clips)}
    return out


def run(a: argparse.Namespace) -> dict:
    """Entry point of ``coamd train evaluator``: :func:`train`, or with ``--eval-only`` print and
    return :func:`measure` of ``--out``."""
    if a.eval_only:
        m = measure(a.out, a.dataset)
        print(json.dumps(m))
        return m
    return train(a)


def main(argv: list[str] | None = None) -> int:
    """``python -m coamd.train.evaluator``: the same as ``coamd train evaluator``."""
    p = argparse.ArgumentParser(prog="coamd train evaluator", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    run(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
