"""Helpers the trainers share: seeds and threads, ``--set`` parsing, the common command-line
options, crops of clips, training captions and atomic checkpoint writes.

The loop itself (resume, budgets, LR schedule, log, saves) is :mod:`coamd.train.loop`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coamd.data.captions import HELDOUT_FAMILY
from coamd.paths import DEFAULT_CHECKPOINT, DEFAULT_DATASET, DEFAULT_RUNS


def default_threads() -> int:
    """Intra-op threads for training: ``COAMD_THREADS`` if set; else all cores (at most 2), but 1
    when other work already keeps the cores busy (:func:`coamd.cpu.torch_threads`, measured over
    0.2 s, so the job that ran just before does not count): measured on the 2-core box, two
    OpenMP threads competing with other jobs ran a training step 6-10x slower than one thread.
    The fall-back to one thread is announced with a RuntimeWarning: a generator run's
    learning-rate schedule follows the wall clock, so a slow run also trains less."""
    from coamd.cpu import torch_threads

    n, why = torch_threads(cap=2)
    if why:
        warnings.warn(f"training with 1 thread: {why} (another job running); set COAMD_THREADS "
                      "or --threads to choose", RuntimeWarning, stacklevel=2)
    return n


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


def add_common_args(p: argparse.ArgumentParser, name: str, out_file: str,
                    max_minutes: float | None = None) -> None:
    """The options every trainer takes (``--dataset --preset --out --run-dir --steps --max-minutes
    --resume --stop-after --seed --device --set --train-set --eval-only --threads --quiet``);
    ``name`` names the default run folder ``runs/NAME``, ``out_file`` the default weights file in
    the shipped checkpoint folder, ``max_minutes`` the trainer's default time budget (for the
    help text; None: only the step budget)."""
    out = DEFAULT_CHECKPOINT / out_file
    run_dir = f"{DEFAULT_RUNS}/{name}"
    p.add_argument("--dataset", default=DEFAULT_DATASET, help=f"processed dataset (default: {DEFAULT_DATASET})")
    p.add_argument("--preset", default="small", help="model size: small (CPU) or paper (GPU) (default: small)")
    p.add_argument("--out", default=str(out), help=f"where the trained weights go (default: {out})")
    p.add_argument("--run-dir", default=run_dir,
                   help=f"resumable training state (state.pt) and log.jsonl (default: {run_dir})")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the preset's)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock budget; training stops (and the LR schedule ends) at this time "
                        f"(default: {'none' if max_minutes is None else f'{max_minutes:g}'})")
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN_DIR/state.pt with its model and training configs "
                        "(--steps, --max-minutes and --train-set may change)")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="end this session after N steps with RUN_DIR/state.pt saved but no --out; "
                        "--resume then continues exactly like an uninterrupted run")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a model config key (repeatable); unknown keys are rejected")
    p.add_argument("--train-set", dest="train_overrides", action="append", metavar="KEY=VALUE",
                   help="override a training config key (repeatable), e.g. batch_size=16; unknown keys "
                        "are rejected")
    p.add_argument("--eval-only", action="store_true",
                   help="only measure the checkpoint --out on the test split and print the metrics")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: 2, or 1 when the machine is already busy)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def save_atomic(path: str | Path, obj: Any) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_model(path: str | Path, ckpt: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
    """Write a slim shipped checkpoint (``{"config", "state_dict", ...}``, plus ``meta`` when
    given) atomically."""
    save_atomic(path, {**ckpt, "meta": meta} if meta else ckpt)


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
