"""The training loop every trainer runs (``coamd train ae|recognizer|generator|evaluator``).

A trainer describes its model as a :class:`Task`: the modules and optimiser it built, its
:class:`TrainConfig`, and three hooks: ``step`` (the loss of one fresh batch), ``evaluate``
(validation numbers) and ``export`` (the weights file). :func:`train` owns everything else,
top to bottom:

1. seeds and threads, then ``build`` makes the task; with ``resume`` it is built from the saved
   configs and ``RUN_DIR/state.pt`` is loaded into it (modules, optimiser, step, elapsed seconds,
   RNG states, best validation value, the task's own extra state);
2. the budget: ``config.steps`` optimiser steps or ``max_minutes`` of training, whichever ends
   first (the learning-rate schedule ends with it); the result and the ``end`` line say which
   (``ended_by``: ``"steps"`` or ``"time"``), and without ``--quiet`` a run the clock ended says
   so on stderr: the same command trains fewer steps on a slower or busier machine;
3. each step: the learning rate of :class:`Schedule`, ``task.step``, backward, gradient clipping,
   ``optimizer.step``, ``task.after_step`` (e.g. an EMA update);
4. every ``log_every`` steps a ``"step"`` line in ``RUN_DIR/log.jsonl`` (keys :data:`STEP_KEYS`,
   the same for every trainer), every ``eval_every`` steps an ``"eval"`` line
   (:data:`EVAL_KEYS`), every ``checkpoint_every_s`` seconds ``state.pt``;
5. at the end ``state.pt``, a final evaluation and the weights file ``out`` (the weights of the
   best evaluation when the task names a ``best`` metric, also kept in ``RUN_DIR/best.pt``).

Run folder: ``state.pt`` (resumable, written atomically), ``log.jsonl`` (appended; one JSON object
per line with an ``event`` of ``start``, ``step``, ``eval``, ``stop`` or ``end``), ``best.pt``
(only for tasks with a ``best`` metric) and whatever caches a trainer keeps there.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from coamd.models.config import ModelConfig
from coamd.train.common import save_atomic, setup_torch

STATE_FORMAT = "coamd-train-state/1"
STEP_KEYS = ("event", "step", "loss", "lr", "grad_norm", "elapsed_s", "train", "time")
EVAL_KEYS = ("event", "step", "elapsed_s", "val", "time")


# ----------------------------------------------------------------------------- settings
@dataclasses.dataclass
class TrainConfig(ModelConfig):
    """Loop settings every trainer's training config shares (``--train-set KEY=VALUE``).

    steps: optimiser steps (the step budget); lr: peak learning rate; warmup: linear warm-up,
    a fraction of the budget when below 1 (0.03 = the first 3 %), else a number of steps;
    final_lr: the cosine decay ends at ``final_lr * lr``; grad_clip: maximum global gradient
    norm (0 = no clipping); log_every: steps per ``"step"`` log line (the loss is averaged over
    them); eval_every: steps per validation (0 = only at the end); checkpoint_every_s: seconds
    between saves of ``state.pt``. Unknown keys raise ValueError (:meth:`ModelConfig.replace`).
    """

    steps: int = 1000
    lr: float = 1e-3
    warmup: float = 0.03
    final_lr: float = 0.02
    grad_clip: float = 1.0
    log_every: int = 50
    eval_every: int = 0
    checkpoint_every_s: float = 60.0

    def __post_init__(self):
        if self.steps < 0 or self.lr <= 0 or self.warmup < 0 or self.log_every < 1 or self.eval_every < 0:
            raise ValueError(f"training config needs steps >= 0, lr > 0, warmup >= 0, log_every >= 1 and "
                             f"eval_every >= 0; got steps={self.steps}, lr={self.lr}, warmup={self.warmup}, "
                             f"log_every={self.log_every}, eval_every={self.eval_every}")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Learning rate over training: linear warm-up, then cosine decay to ``final * base``.

    Progress runs over the step budget or the time budget, whichever is further along. With
    ``warmup`` below 1 the warm-up is that fraction of the progress (multiplier
    ``max(p / warmup, 0.02)``) and the cosine covers the rest; with ``warmup`` >= 1 it is that
    many steps (multiplier ``(step + 1) / warmup``) and the cosine runs over the remaining steps
    or the whole time budget.
    """

    warmup: float = 0.03
    final: float = 0.02

    def lr(self, base: float, step: int, steps: int, elapsed_s: float, max_s: float | None) -> float:
        """Learning rate before optimiser step ``step`` (0-based) of ``steps``, ``elapsed_s``
        seconds into a time budget of ``max_s`` seconds (None: no time budget)."""
        t = elapsed_s / max_s if max_s else 0.0
        final = self.final
        if self.warmup >= 1:
            w = int(self.warmup)
            if step < w:
                return base * (step + 1) / w
            q = max((step - w) / max(1, steps - w), t)
        else:
            p = min(max(step / max(steps, 1), t), 1.0)
            if p < self.warmup:
                return base * max(p / self.warmup, 0.02)
            q = (p - self.warmup) / max(1 - self.warmup, 1e-8)
        return base * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(q, 1.0))))


@dataclasses.dataclass
class RunOptions:
    """Where and how long one training session runs (the command-line options of every trainer).

    run_dir: folder of ``state.pt`` / ``log.jsonl``; out: the weights file written at the end;
    max_minutes: wall-clock budget in minutes (None: only the step budget), counted over all
    sessions of the run; resume: continue from ``run_dir/state.pt``; stop_after: end this session
    after that many steps, saving ``state.pt`` but not ``out`` (``resume`` then continues exactly
    as an uninterrupted run); threads: torch intra-op threads (None:
    :func:`coamd.train.common.default_threads`); progress: show a progress bar.
    """

    run_dir: str | Path
    out: str | Path
    seed: int = 0
    max_minutes: float | None = None
    resume: bool = False
    stop_after: int | None = None
    threads: int | None = None
    progress: bool = True


@dataclasses.dataclass
class Rng:
    """The random streams a task draws from, saved in ``state.pt`` with the global ones
    (python, numpy, torch): ``np`` for batches and crops, ``torch`` for masks and noise."""

    np: np.random.Generator
    torch: torch.Generator


@dataclasses.dataclass
class Task:
    """One model's part of training.

    config: its :class:`TrainConfig`; modules: everything whose weights ``state.pt`` keeps, by name; optimizer: over the trained
    parameters; spec: JSON-friendly dict from which ``build`` makes the same task again on resume
    (model and training configs); step(log) -> (scalar loss tensor, dict of extra numbers to log,
    only needed when ``log`` is True); evaluate(final) -> validation numbers (dict of floats;
    ``final`` for the last one); export(summary) -> the dict saved to ``out`` (summary: ``step``,
    ``train_seconds``, ``val``, ``seed``, ``threads``); params: the parameters whose gradient
    norm is clipped (default: the optimiser's); after_step(step): called after each optimiser
    step with its 0-based index; best: a key of ``evaluate``'s dict to maximise (``out`` gets
    those weights); state() / load_state(dict): extra resumable state (e.g. a batch queue);
    info: numbers for the ``start`` log line (e.g. parameter count); show: keys of ``step``'s
    dict shown on the progress bar; label: text after the trainer name on the progress bar.
    """

    config: TrainConfig
    modules: dict[str, torch.nn.Module]
    optimizer: torch.optim.Optimizer
    spec: dict[str, Any]
    step: Callable[[bool], tuple[torch.Tensor, dict[str, float]]]
    evaluate: Callable[[bool], dict[str, float]]
    export: Callable[[dict[str, Any]], dict[str, Any]]
    params: list[torch.nn.Parameter] | None = None
    after_step: Callable[[int], None] | None = None
    best: str | None = None
    state: Callable[[], dict[str, Any]] | None = None
    load_state: Callable[[dict[str, Any]], None] | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    show: tuple[str, ...] = ()
    label: str = ""


# ----------------------------------------------------------------------------- files
class JsonLog:
    """Append-only JSON-lines log; every record gets ``time`` (local ISO seconds)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **rec: Any) -> None:
        rec["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")


def load_state(run_dir: str | Path, name: str) -> dict[str, Any]:
    """``run_dir/state.pt`` of trainer ``name``. Raises FileNotFoundError when it is missing and
    ValueError when it is another trainer's or an older format's."""
    path = Path(run_dir) / "state.pt"
    if not path.exists():
        raise FileNotFoundError(f"no training state at {path} to resume from")
    st = torch.load(path, map_location="cpu", weights_only=False)
    if st.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a {STATE_FORMAT} training state (written by an older version?); "
                         f"start a new run with another --run-dir")
    if st["trainer"] != name:
        raise ValueError(f"{path} belongs to the {st['trainer']} trainer, not {name}; use another --run-dir")
    return st


# ----------------------------------------------------------------------------- the loop
def train(name: str, build: Callable[[dict | None, Rng], Task], opts: RunOptions) -> dict[str, Any]:
    """Build trainer ``name``'s task and train it within its budget (order: the module docstring).

    ``build(spec, rng)`` makes the task: ``spec`` is None for a new run or the saved
    ``Task.spec`` on resume; ``rng`` holds the random streams the task must draw from.
    Returns the summary: ``step``, ``train_seconds``, ``val`` (the final evaluation), ``best``
    (value of the best metric or None), ``out`` (None when ``stop_after`` ended the session
    early), ``seed``, ``threads``. Raises FileNotFoundError / ValueError from :func:`load_state`
    and from ``build``.
    """
    from tqdm import tqdm

    threads = setup_torch(opts.seed, opts.threads)
    run_dir = Path(opts.run_dir)
    saved = load_state(run_dir, name) if opts.resume else None
    rng = Rng(np.random.default_rng(opts.seed), torch.Generator().manual_seed(opts.seed))
    task = build(saved["spec"] if saved else None, rng)
    cfg = task.config
    schedule = Schedule(cfg.warmup, cfg.final_lr)
    params = task.params if task.params is not None else [p for g in task.optimizer.param_groups for p in g["params"]]
    step, elapsed_before, best = 0, 0.0, None
    if saved:
        for k, m in task.modules.items():
            m.load_state_dict(saved["modules"][k])
        task.optimizer.load_state_dict(saved["optimizer"])
        step, elapsed_before, best = saved["step"], saved["elapsed_s"], saved["best"]
        r = saved["rng"]
        random.setstate(r["python"])
        np.random.set_state(r["numpy"])
        torch.set_rng_state(r["torch"])
        rng.np.bit_generator.state = r["np"]
        rng.torch.set_state(r["torch_generator"])
        if task.load_state is not None:
            task.load_state(saved["extra"])

    log = JsonLog(run_dir / "log.jsonl")
    max_s = opts.max_minutes * 60.0 if opts.max_minutes else None
    t0 = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def budget_left() -> bool:
        return step < cfg.steps and (max_s is None or elapsed() < max_s)

    def save_state() -> None:
        save_atomic(run_dir / "state.pt", {
            "format": STATE_FORMAT, "trainer": name, "spec": task.spec,
            "modules": {k: m.state_dict() for k, m in task.modules.items()},
            "optimizer": task.optimizer.state_dict(), "step": step, "elapsed_s": elapsed(), "best": best,
            "schedule": dataclasses.asdict(schedule),
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                    "np": rng.np.bit_generator.state, "torch_generator": rng.torch.get_state()},
            "extra": task.state() if task.state is not None else None})

    def evaluate(final: bool) -> dict[str, float]:
        nonlocal best
        with torch.no_grad():
            val = task.evaluate(final)
        log.write(event="eval", step=step, elapsed_s=round(elapsed(), 1), val=val)
        if task.best and (best is None or val[task.best] > best):
            best = val[task.best]
            save_atomic(run_dir / "best.pt", task.export(summary(val)))
        return val

    def summary(val: dict, seconds: float | None = None) -> dict[str, Any]:
        return {"step": step, "train_seconds": round(elapsed() if seconds is None else seconds, 1), "val": val,
                "seed": opts.seed, "threads": threads}

    log.write(event="start", step=step, elapsed_s=round(elapsed_before, 1), trainer=name,
              resume=bool(saved), seed=opts.seed, threads=threads, steps=cfg.steps, max_minutes=opts.max_minutes,
              schedule=dataclasses.asdict(schedule), spec=task.spec, info=task.info)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {name}{task.label}", disable=not opts.progress,
               dynamic_ncols=True, unit="step")
    last_save = time.perf_counter()
    run_loss, run_n, session_steps = 0.0, 0, 0
    while budget_left() and (opts.stop_after is None or session_steps < opts.stop_after):
        lr = schedule.lr(cfg.lr, step, cfg.steps, elapsed(), max_s)
        for g in task.optimizer.param_groups:
            g["lr"] = lr
        log_now = (step + 1) % cfg.log_every == 0
        loss, extra = task.step(log_now)
        task.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        task.optimizer.step()
        if task.after_step is not None:
            task.after_step(step)
        step += 1
        session_steps += 1
        run_loss += float(loss.detach())
        run_n += 1
        bar.update(1)
        if log_now:
            log.write(event="step", step=step, loss=run_loss / run_n, lr=lr, grad_norm=float(gnorm),
                      elapsed_s=round(elapsed(), 1), train=extra)
            bar.set_postfix(loss=f"{run_loss / run_n:.4f}", **{k: f"{extra[k]:.3g}" for k in task.show if k in extra})
            run_loss, run_n = 0.0, 0
        if cfg.eval_every and step % cfg.eval_every == 0 and budget_left():
            evaluate(final=False)
        if time.perf_counter() - last_save > cfg.checkpoint_every_s:
            save_state()
            last_save = time.perf_counter()
    bar.close()
    train_s = elapsed()
    save_state()
    if budget_left():  # stop_after ended this session: resume continues
        log.write(event="stop", step=step, elapsed_s=round(train_s, 1))
        return {**summary({}, train_s), "best": best, "out": None}

    ended_by = "steps" if step >= cfg.steps else "time"
    if ended_by == "time" and opts.progress:
        print(f"{name}: the wall-clock budget ({opts.max_minutes:g} min) ended the run and its learning-rate "
              f"schedule at step {step} of {cfg.steps}", file=sys.stderr)
    val = evaluate(final=True)
    out = Path(opts.out)
    if task.best:
        save_atomic(out, torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False))
    else:
        save_atomic(out, task.export(summary(val, train_s)))
    result = {**summary(val, train_s), "best": best, "out": str(out), "ended_by": ended_by}
    log.write(event="end", **{k: v for k, v in result.items() if k != "train_seconds"},
              elapsed_s=result["train_seconds"])
    return result



# ----------------------------------------------------------------------------- trainer helpers
def run_options(a, max_minutes: float | None = None) -> RunOptions:
    """:class:`RunOptions` from the common command-line options (``a``: the parsed arguments of
    :func:`coamd.train.common.add_common_args`); ``max_minutes`` is the trainer's default budget.
    Raises ValueError for ``--set`` with ``--resume`` (the model comes from ``state.pt``)."""
    if a.resume and getattr(a, "overrides", None):
        raise ValueError("--set changes the model, but --resume continues the model saved in "
                         f"{Path(a.run_dir) / 'state.pt'}; start a new --run-dir to change it")
    return RunOptions(run_dir=a.run_dir, out=a.out, seed=a.seed,
                      max_minutes=a.max_minutes if a.max_minutes is not None else max_minutes,
                      resume=a.resume, stop_after=a.stop_after, threads=a.threads, progress=not a.quiet)


def training_config(cls: type, saved: dict | None, preset: dict, overrides: dict, steps: int | None):
    """The training config of a run: the saved one on resume, else ``cls`` with the preset's
    values; then ``--train-set`` ``overrides`` and ``--steps``. Raises ValueError naming unknown
    keys."""
    cfg = cls.from_dict(saved) if saved is not None else cls().replace(**preset)
    cfg = cfg.replace(**overrides)
    return cfg.replace(steps=steps) if steps else cfg
