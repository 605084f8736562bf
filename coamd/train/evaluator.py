"""``coamd train evaluator``: contrastive training of the text-motion evaluator.

Symmetric InfoNCE (CLIP, Radford et al. 2021) between the temporal-convolution motion encoder of
:mod:`coamd.evaluation.evaluator` and a trained projection of frozen MiniLM caption features, on the
train split with caption families A-D only (family E is never seen; it tests unseen phrasing).
Pairs in a batch whose captions are identical are all counted as positives (multi-positive
targets), so duplicate captions are not pushed apart. Random crops of up to ``--crop`` frames.

Outputs in ``--run-dir``: ``state.pt`` (model + optimiser + step, for ``--resume``), ``best.pt``
(best validation R-precision top-1, batches of 32), ``log.jsonl`` (one JSON object per log line);
the best weights (config + state_dict only) are copied to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_RUN_DIR = "runs/evaluator"
TEXT_CACHE = "runs/eval_cache/text_feats.npz"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Command-line options of ``coamd train evaluator``."""
    from coamd.evaluation.evaluator import DEFAULT_CHECKPOINT

    p.add_argument("--dataset", default="data/processed", help="processed dataset folder")
    p.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help=f"checkpoints and log (default: {DEFAULT_RUN_DIR})")
    p.add_argument("--out", default=str(DEFAULT_CHECKPOINT), help="where the best weights are written")
    p.add_argument("--minutes", type=float, default=14.0, help="wall-clock training budget (default: 14)")
    p.add_argument("--max-steps", type=int, default=20000, help="stop after this many steps")
    p.add_argument("--batch-size", type=int, default=96, help="clips per contrastive batch (default: 96)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate, cosine decay (default: 1e-3)")
    p.add_argument("--crop", type=int, default=80, help="longest training crop in frames (default: 80 = 4 s)")
    p.add_argument("--eval-every", type=int, default=100, help="validate (and checkpoint) every N steps (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/state.pt")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--eval-only", action="store_true",
                   help="only measure the evaluator --out (R-precision, batches of 32) on val and test; print JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


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
    """Train the evaluator as configured by ``a`` (see :func:`add_arguments`); returns a summary."""
    from tqdm import tqdm

    from coamd.data.dataset import MotionDataset
    from coamd.evaluation.evaluator import FEATURE_DIM, MotionTextEvaluator, motion_features
    from coamd.evaluation.text_features import encode_texts

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.minutes <= 0 or a.batch_size < 2 or a.crop < 8:
        raise ValueError("--minutes must be > 0, --batch-size >= 2 and --crop >= 8")
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    ds = MotionDataset(a.dataset)
    train_clips, val_clips = ds.split("train"), ds.split("val")
    captions = _caption_pool(train_clips)
    all_texts = sorted({t for cs in captions for t in cs} | {c["text"] for cl in val_clips for c in cl.captions})
    feats_all = encode_texts(all_texts, cache=TEXT_CACHE)
    tindex = {t: i for i, t in enumerate(all_texts)}
    text_feats = torch.from_numpy(feats_all)
    joints_list = [c.joints for c in train_clips]

    run = Path(a.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    model = MotionTextEvaluator({})
    # input normalisation from the train split
    cat = torch.cat([motion_features(j)[0] for j in joints_list])
    model.feat_mean.copy_(cat.mean(0))
    model.feat_std.copy_(cat.std(0).clamp_min(1e-3))
    del cat
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    step, best, elapsed0 = 0, -1.0, 0.0
    if a.resume and (run / "state.pt").exists():
        ck = torch.load(run / "state.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        step, best, elapsed0 = ck["step"], ck["best"], ck.get("elapsed_s", 0.0)
        rng = np.random.default_rng(a.seed + step)
        torch.manual_seed(a.seed + step)

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

    log = open(run / "log.jsonl", "a")
    budget = a.minutes * 60.0
    t0 = time.time() - elapsed0
    total_steps = a.max_steps
    bar = tqdm(total=total_steps, initial=step, disable=a.quiet, desc="evaluator", unit="step")
    model.train()
    n = len(train_clips)
    while step < total_steps and time.time() - t0 < budget:
        idx = rng.choice(n, size=min(a.batch_size, n), replace=False)
        caps = [captions[i][int(rng.integers(0, len(captions[i])))] for i in idx]
        feats, valid = _batch(joints_list, idx, a.crop, rng)
        tf = text_feats[[tindex[t] for t in caps]]
        # cosine learning-rate decay over the time budget
        frac = min(1.0, (time.time() - t0) / budget)
        for g in opt.param_groups:
            g["lr"] = a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac))) * min(1.0, (step + 1) / 50)
        em = model.embed_features(feats, valid)
        et = model.embed_text(tf)
        logits = model.logit_scale.exp().clamp(max=100) * em @ et.T
        same = torch.tensor([[x == y for y in caps] for x in caps], dtype=torch.float32)
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        rec = {"step": step, "loss": round(loss.item(), 4), "lr": opt.param_groups[0]["lr"],
               "elapsed_s": round(time.time() - t0, 1)}
        if step % a.eval_every == 0:
            rec.update(_val_rprec(model, val_feats, val_valid, val_text))
            bar.set_postfix(loss=f"{float(loss):.3f}", val_r1=f"{rec['val_r1']:.3f}")
            if rec["val_r1"] > best:
                best = rec["val_r1"]
                model.save(run / "best.pt", {"step": step, "val_r1": best})
            torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                        "best": best, "elapsed_s": time.time() - t0, "config": model.config.__dict__},
                       run / "state.pt")
        if step % 10 == 0 or "val_r1" in rec:
            log.write(json.dumps(rec) + "\n")
            log.flush()
    bar.close()
    rec = {"step": step, "final": True, "elapsed_s": round(time.time() - t0, 1)}
    rec.update(_val_rprec(model, val_feats, val_valid, val_text))
    if rec["val_r1"] > best:
        best = rec["val_r1"]
        model.save(run / "best.pt", {"step": step, "val_r1": best})
    torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "best": best, "elapsed_s": time.time() - t0, "config": model.config.__dict__}, run / "state.pt")
    log.write(json.dumps(rec) + "\n")
    log.close()
    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": ck["config"], "state_dict": ck["state_dict"],
                "meta": {"step": ck["step"], "val_r_precision_top1": ck["val_r1"], "seed": a.seed,
                         "train_minutes": round((time.time() - t0) / 60, 2),
                         "captions": "train split, families A-D", "text_encoder": "all-MiniLM-L6-v2 (frozen)"}},
               a.out)
    summary = {"steps": step, "best_val_r1": best, "out": str(a.out), "minutes": round((time.time() - t0) / 60, 2)}
    print(json.dumps(summary))
    return summary


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


def run(a: argparse.Namespace) -> None:
    """Entry point of ``coamd train evaluator``."""
    if a.eval_only:
        print(json.dumps(measure(a.out, a.dataset)))
        return
    train(a)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="coamd train evaluator", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    train(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
