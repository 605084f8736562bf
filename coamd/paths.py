"""Default locations, in one place (every module imports them from here).

- ``DEFAULT_CHECKPOINT``: the shipped weights, ``coamd/checkpoints/default`` inside the package.
- ``DEFAULT_DATASET``: the processed dataset folder, relative to the working directory
  (``make data`` writes it; ``--dataset`` overrides it everywhere).
- ``DEFAULT_RUNS``: where trainers keep ``runs/NAME/state.pt`` and ``log.jsonl``.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = PACKAGE_ROOT / "checkpoints" / "default"
DEFAULT_DATASET = "data/processed"
DEFAULT_RUNS = "runs"
