"""Shared fixtures: the real dataset (never committed; read from a path).

``COAMD_DATA``: the raw Bandai Namco folder (default ../shared/data/bandai-namco).
``COAMD_DATASET``: the processed dataset built by ``make data`` (default data/processed).
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RAW = Path(os.environ.get("COAMD_DATA", ROOT.parent / "shared" / "data" / "bandai-namco"))
if not RAW.is_absolute():
    RAW = (ROOT / RAW).resolve()
PROCESSED = Path(os.environ.get("COAMD_DATASET", ROOT / "data" / "processed"))
if not PROCESSED.is_absolute():
    PROCESSED = (ROOT / PROCESSED).resolve()

# A few real clips of both sets, including one whose forward motion is in joint_Root and
# sided labels for the mirroring tests.
REAL_CLIPS = (
    "dataset-1_walk_normal_002",          # forward motion carried by joint_Root
    "dataset-1_kick_normal_001",           # (set 1 has no kick_angry clip)
    "dataset-1_walk-left_happy_001",
    "dataset-2_walk_normal_001",
    "dataset-2_walk-turn-left_elderly_001",
    "dataset-2_wave-left-hand_normal_001",
    "dataset-2_raise-up-right-hand_youthful_001",
)


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    """The raw dataset folder; fails with the reason when it is missing."""
    if not RAW.exists():
        pytest.fail(f"raw dataset not found at {RAW}; set COAMD_DATA")
    return RAW


@pytest.fixture(scope="session")
def real_bvh_dir(raw_dir, tmp_path_factory) -> Path:
    """A folder with the REAL_CLIPS .bvh/.json files extracted from the archives."""
    out = tmp_path_factory.mktemp("real_bvh")
    wanted = {c + ext for c in REAL_CLIPS for ext in (".bvh", ".json")}
    for arc in sorted(raw_dir.glob("*.tar.xz")):
        with tarfile.open(arc, "r:xz") as tf:
            for m in tf:
                name = Path(m.name).name
                if name in wanted:
                    (out / name).write_bytes(tf.extractfile(m).read())
    missing = wanted - {p.name for p in out.iterdir()}
    if missing:
        pytest.fail(f"real clips missing from the archives: {sorted(missing)}")
    return out


@pytest.fixture(scope="session")
def dataset():
    """The processed dataset (:class:`coamd.data.dataset.MotionDataset`), built by `make data`."""
    from coamd.data.dataset import MotionDataset

    if not (PROCESSED / "motions.npz").exists():
        pytest.fail(f"processed dataset not found at {PROCESSED}; run `make data` or set COAMD_DATASET")
    return MotionDataset(PROCESSED)
