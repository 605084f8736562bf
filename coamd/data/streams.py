"""The three motion streams of CoAMD (paper section 3.2; DESIGN.md section 4).

Given joint positions ``Xj`` of shape (..., T, 21, 3) in metres at 20 fps:

* joint stream  ``Xj``: the positions themselves;
* bone stream   ``Xb = Xj[..., child, :] - Xj[..., parent, :]``, shape (..., T, 20, 3);
* motion stream ``Xm[t] = Xj[t+1] - Xj[t]`` for t < T-1 and zero at t = T-1, shape (..., T, 21, 3)
  (metres per frame).

Every function accepts NumPy arrays or torch tensors and returns the same kind, so the data
pipeline, the models' losses and the guidance all share this one definition.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from coamd.skeleton import BONE_CHILDREN, BONE_PARENTS, NUM_JOINTS

STREAMS = ("joint", "bone", "motion")
NUM_BONES = len(BONE_CHILDREN)


def _check(joints: Any) -> None:
    if joints.ndim < 3 or tuple(joints.shape[-2:]) != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (..., T, {NUM_JOINTS}, 3), got {tuple(joints.shape)}")


def bone_stream(joints: Any) -> Any:
    """Bone vectors child minus parent: (..., T, 21, 3) -> (..., T, 20, 3), metres.

    Raises ValueError when the last two axes are not (21, 3).
    """
    _check(joints)
    if isinstance(joints, np.ndarray):
        return joints[..., BONE_CHILDREN, :] - joints[..., BONE_PARENTS, :]
    import torch

    c = torch.as_tensor(BONE_CHILDREN, device=joints.device)
    p = torch.as_tensor(BONE_PARENTS, device=joints.device)
    return joints.index_select(-2, c) - joints.index_select(-2, p)


def motion_stream(joints: Any) -> Any:
    """Frame-to-frame displacement, zero-padded at the end: (..., T, 21, 3) -> same shape.

    Units: metres per frame at the clip's frame rate. Raises ValueError on a bad shape.
    """
    _check(joints)
    diff = joints[..., 1:, :, :] - joints[..., :-1, :, :]
    if isinstance(joints, np.ndarray):
        pad = np.zeros_like(joints[..., :1, :, :])
        return np.concatenate([diff, pad], axis=-3)
    import torch

    return torch.cat([diff, torch.zeros_like(joints[..., :1, :, :])], dim=-3)


def all_streams(joints: Any) -> dict[str, Any]:
    """The three streams as a dict with keys ``joint``, ``bone``, ``motion`` (shapes as above)."""
    return {"joint": joints, "bone": bone_stream(joints), "motion": motion_stream(joints)}


STREAM_JOINTS = {"joint": NUM_JOINTS, "bone": NUM_JOINTS - 1, "motion": NUM_JOINTS}
"""Rows per frame of each stream (joints, bones, joints)."""
STD_FLOOR = {"joint": 0.02, "bone": 0.01, "motion": 0.005}
"""Smallest per-coordinate std used to normalise a stream (metres; per frame for motion), so
near-constant coordinates are not blown up."""


def register_stream_stats(module: Any, stats: dict | None, zero_joint_xz: bool = False) -> None:
    """Store a dataset's per-stream statistics on a torch module as buffers ``{s}_mean`` and
    ``{s}_std`` ((rows, 3) float32, std floored by :data:`STD_FLOOR`), so checkpoints carry them.

    stats: ``MotionDataset.stats`` (``{joint,bone,motion}_{mean,std}``, metres) or None for neutral
    statistics (zero mean, unit std) to be overwritten by ``load_state_dict``. ``zero_joint_xz``
    zeroes the joint mean's x/z (for inputs put in a canonical frame). Raises ValueError when a
    stream's statistics do not have the shape (rows, 3).
    """
    import torch

    for s, rows in STREAM_JOINTS.items():
        mean = np.zeros((rows, 3), np.float32) if stats is None else np.array(stats[f"{s}_mean"], np.float32)
        std = np.ones((rows, 3), np.float32) if stats is None else np.array(stats[f"{s}_std"], np.float32)
        if mean.shape != (rows, 3) or std.shape != (rows, 3):
            raise ValueError(f"stats for the {s} stream must be ({rows}, 3), got {mean.shape}/{std.shape}")
        if s == "joint" and zero_joint_xz and stats is not None:
            mean[:, [0, 2]] = 0.0
        module.register_buffer(f"{s}_mean", torch.from_numpy(mean))
        module.register_buffer(f"{s}_std", torch.from_numpy(np.maximum(std, STD_FLOOR[s])))
