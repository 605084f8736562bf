"""Shared training machinery: seeds, threads, crops, budgets, the LR schedule, checkpoints, logs.

Every trainer keeps a *run folder* (``--run-dir``) with ``state.pt`` (model, optimiser, step,
elapsed seconds, RNG states: resumable with ``--resume``) and ``log.jsonl`` (one JSON object per
logged step), and writes the slim shipped checkpoint ``{"config", "state_dict"}`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coamd.data.captions import HELDOUT_FAMILY


def default_threads() -> int:
    """Intra-op threads for training: ``COAMD_THREADS`` if set; else all cores (at most 2), but 1
    when the machine is already busy (1-minute load average above the core count): measured on
    the 2-core box, two OpenMP threads competing with other jobs ran a training step 6-10x slower
    than one thread."""
    if os.environ.get("COAMD_THREADS"):
        return max(1, int(os.environ["COAMD_THREADS"]))
    cores = os.cpu_count() or 1
    busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > cores
    return 1 if busy else min(2, cores)


def setup_torch(seed: int, threads: int | None = None) -> int:
    """Seed python/numpy/torch and set the intra-op thread count (default: :func:`default_threads`).
    Returns the thread count."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    n = threads or default_threads()
    torch.set_num_threads(n)
    return n


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; values parsed as JSON when possible, ``a,b`` as a list."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        k, v = item.split("=", 1)
        try:
            val: Any = json.loads(v)
        except json.JSONDecodeError:
            val = v.split(",") if "," in v else v
        out[k.strip()] = val
    return out


def add_common_args(p: argparse.ArgumentParser, name: str, out_file: str) -> None:
    """Arguments every trainer takes."""
    from coamd.cli import DEFAULT_DATASET

    p.add_argument("--dataset", default=DEFAULT_DATASET, help=f"processed dataset (default: {DEFAULT_DATASET})")
    p.add_argument("--preset", default="small", help="model size: small (CPU) or paper (GPU) (default: small)")
    p.add_argument("--out", default=f"coamd/checkpoints/default/{out_file}",
                   help=f"where the trained weights go (default: coamd/checkpoints/default/{out_file})")
    p.add_argument("--run-dir", default=f"runs/{name}",
                   help=f"resumable training state and log.jsonl (default: runs/{name})")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the preset's)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock budget; training stops (and the LR schedule ends) at this time")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/state.pt")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a model config key (repeatable); unknown keys are rejected")
    p.add_argument("--train-set", dest="train_overrides", action="append", metavar="KEY=VALUE",
                   help="override a training config key (repeatable), e.g. batch_size=16")
    p.add_argument("--eval-only", action="store_true",
                   help="only measure the checkpoint --out on the test split and print the metrics")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: 2, or 1 when the machine is already busy)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class Budget:
    """Training progress in [0, 1]: the larger of step/steps and elapsed/max_seconds."""

    def __init__(self, steps: int, max_minutes: float | None, elapsed: float = 0.0):
        self.steps = steps
        self.max_s = None if max_minutes is None else max_minutes * 60.0
        self.t0 = time.perf_counter() - elapsed

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def progress(self, step: int) -> float:
        p = step / max(self.steps, 1)
        if self.max_s:
            p = max(p, self.elapsed / self.max_s)
        return min(p, 1.0)

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0


def lr_at(progress: float, base: float, warmup: float = 0.03, final: float = 0.02) -> float:
    """Linear warm-up over the first ``warmup`` of training, then cosine decay to ``final*base``."""
    if progress < warmup:
        return base * max(progress / warmup, 0.02)
    q = (progress - warmup) / max(1 - warmup, 1e-8)
    return base * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(q, 1.0))))


class JsonlLog:
    """Append-only JSON-lines log."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **rec: Any) -> None:
        rec.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%S"))
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")


def save_state(path: Path, **state: Any) -> None:
    """Atomic torch.save of the resumable training state (with the RNG states)."""
    state["rng"] = {"python": random.getstate(), "numpy": np.random.get_state(),
                    "torch": torch.get_rng_state()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict[str, Any]:
    """Load :func:`save_state`'s dict and restore the RNG states; FileNotFoundError if absent."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no training state at {path} to resume from")
    state = torch.load(path, map_location="cpu", weights_only=False)
    rng = state.pop("rng", None)
    if rng:
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
    return state


def save_model(path: str | Path, ckpt: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
    """Write a slim shipped checkpoint (``{"config", "state_dict", ...}``, fp32) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if meta:
        ckpt = {**ckpt, "meta": meta}
    tmp = path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- crops
class CropSampler:
    """Random fixed-length crops of clips with padding and a valid mask.

    Clips are drawn with probability proportional to their length (every frame equally likely),
    the crop start uniformly. Clips shorter than ``length`` are padded at the end by repeating
    their last frame; ``valid`` is False there.
    """

    def __init__(self, clips: list, length: int, rng: np.random.Generator):
        self.clips = clips
        self.length = length
        self.rng = rng
        lens = np.array([c.joints.shape[0] for c in clips], np.float64)
        self.p = lens / lens.sum()

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """-> joints (B, length, 21, 3) float32, valid (B, length) bool, clip indices (B,)."""
        idx = self.rng.choice(len(self.clips), size=batch, p=self.p)
        out = np.empty((batch, self.length, 21, 3), np.float32)
        valid = np.zeros((batch, self.length), bool)
        for b, i in enumerate(idx):
            j = self.clips[i].joints
            t = j.shape[0]
            if t >= self.length:
                s = int(self.rng.integers(0, t - self.length + 1))
                out[b] = j[s:s + self.length]
                valid[b] = True
            else:
                out[b, :t] = j
                out[b, t:] = j[-1]
                valid[b, :t] = True
        return torch.from_numpy(out), torch.from_numpy(valid), idx


def train_captions(clip) -> list[str]:
    """Caption texts a trainer may use: families A-D only (never the held-out family)."""
    texts = [c["text"] for c in clip.captions if c["family"] != HELDOUT_FAMILY]
    return texts
