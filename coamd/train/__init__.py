"""Trainers, one per model, behind ``coamd train <name>``.

Every trainer runs the one loop of :mod:`coamd.train.loop` (resume, budgets, LR schedule,
``runs/NAME/log.jsonl``, saves); its module supplies the model's build / step / evaluate / export
hooks, its training config and its ``--eval-only`` measurement. Shared options and helpers are in
:mod:`coamd.train.common`.

``TRAINERS`` maps a subcommand name to ``(help, add_args(parser), run(args))``. Each trainer
module registers itself lazily through :func:`register`; owners of other models append their
entry (e.g. ``"generator"``) to ``_BUILTIN``: its module either defines ``add_args`` and ``run``
or calls ``register`` itself when imported. A module not present yet is skipped.
"""
from __future__ import annotations

import importlib
from typing import Callable

# name -> (module, help); the module defines add_args(parser) and run(args)
_BUILTIN: dict[str, tuple[str, str]] = {
    "ae": ("coamd.train.ae", "the multi-modal autoencoder (paper eq. 2)"),
    "recognizer": ("coamd.train.recognizer", "the action recognizer (paper eq. 1)"),
    "generator": ("coamd.train.generator", "the masked transformer and diffusion MLP (paper eq. 3-5)"),
    "evaluator": ("coamd.train.evaluator", "the evaluator network behind FID / R-precision"),
}

TRAINERS: dict[str, tuple[str, Callable, Callable]] = {}


def register(name: str, help: str, add_args: Callable, run: Callable) -> None:
    """Add a trainer: ``add_args(argparse.ArgumentParser)`` and ``run(argparse.Namespace)``."""
    TRAINERS[name] = (help, add_args, run)


def trainers() -> dict[str, tuple[str, Callable, Callable]]:
    """All trainers (built-in ones imported on first use)."""
    for name, (mod, help_) in _BUILTIN.items():
        if name not in TRAINERS:
            try:
                m = importlib.import_module(mod)
            except ModuleNotFoundError as exc:
                if exc.name != mod:
                    raise
                continue  # that trainer has not landed yet
            if name not in TRAINERS and hasattr(m, "add_args") and hasattr(m, "run"):
                register(name, help_, m.add_args, m.run)
    return TRAINERS


def trainer_help() -> dict[str, str]:
    """Name -> one-line help of every trainer, without importing any trainer module (fast)."""
    out = {name: help_ for name, (_, help_) in _BUILTIN.items()}
    out.update({name: entry[0] for name, entry in TRAINERS.items()})
    return out


def trainer(name: str) -> tuple[str, Callable, Callable]:
    """``(help, add_args, run)`` of one trainer, importing only its module.

    Raises KeyError for an unknown name.
    """
    if name not in TRAINERS and name in _BUILTIN:
        mod, help_ = _BUILTIN[name]
        m = importlib.import_module(mod)
        if name not in TRAINERS:
            register(name, help_, m.add_args, m.run)
    return TRAINERS[name]
