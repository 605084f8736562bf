"""The canonical 21-joint skeleton: the single source of truth for joint order, parents and mirroring.

Source: DESIGN.md section 4 (the Bandai Namco BVH joints minus ``joint_Root``).
Every array with a joint axis in this project uses this order.
"""
from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "Hips", "Spine", "Chest", "Neck", "Head",
    "Shoulder_L", "UpperArm_L", "LowerArm_L", "Hand_L",
    "Shoulder_R", "UpperArm_R", "LowerArm_R", "Hand_R",
    "UpperLeg_L", "LowerLeg_L", "Foot_L", "Toes_L",
    "UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R",
)
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

# Parent of every joint (-1 for the root), following the BVH hierarchy.
PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3,
    2, 5, 6, 7,
    2, 9, 10, 11,
    0, 13, 14, 15,
    0, 17, 18, 19,
)

# (child, parent) pairs for the 20 bones, in child order.
BONES: tuple[tuple[int, int], ...] = tuple((c, p) for c, p in enumerate(PARENTS) if p >= 0)
BONE_CHILDREN = np.array([c for c, _ in BONES], dtype=np.int64)
BONE_PARENTS = np.array([p for _, p in BONES], dtype=np.int64)


def _mirror_name(name: str) -> str:
    if name.endswith("_L"):
        return name[:-2] + "_R"
    if name.endswith("_R"):
        return name[:-2] + "_L"
    return name


# MIRROR[i] is the joint that takes joint i's place after a left/right reflection.
MIRROR: tuple[int, ...] = tuple(JOINT_INDEX[_mirror_name(n)] for n in JOINT_NAMES)

# Joints used to measure facing (left minus right gives the across-body axis).
HIP_L, HIP_R = JOINT_INDEX["UpperLeg_L"], JOINT_INDEX["UpperLeg_R"]
SHOULDER_L, SHOULDER_R = JOINT_INDEX["UpperArm_L"], JOINT_INDEX["UpperArm_R"]
HAND_L, HAND_R = JOINT_INDEX["Hand_L"], JOINT_INDEX["Hand_R"]
FOOT_JOINTS = tuple(JOINT_INDEX[n] for n in ("Foot_L", "Toes_L", "Foot_R", "Toes_R"))
TOE_JOINTS = (JOINT_INDEX["Toes_L"], JOINT_INDEX["Toes_R"])

FPS = 20.0
"""Frame rate of every model input/output and every stream (frames per second)."""


def check_joints(joints, min_frames: int = 1, name: str = "joints", dtype=np.float32) -> np.ndarray:
    """``joints`` as a (T, 21, 3) array of ``dtype`` (default float32; metres, 20 fps), checked.

    Raises ValueError naming ``name`` and the shape when it is not (T, 21, 3) with T >= ``min_frames``,
    or when a value is NaN or infinite."""
    j = np.asarray(joints, dtype=dtype)
    if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"{name} must have shape (T, {NUM_JOINTS}, 3), got {j.shape}")
    if j.shape[0] < min_frames:
        raise ValueError(f"{name} must have at least {min_frames} frame(s), got shape {j.shape}")
    if not np.isfinite(j).all():
        raise ValueError(f"{name} contain NaN or infinite values (shape {j.shape})")
    return j
