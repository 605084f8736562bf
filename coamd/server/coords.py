"""Coordinate-system conversion between the project's frame and what a client asked for.

The single place where the server changes handedness (DESIGN.md section 4: engines convert at the
edge). The project frame is metres, right-handed, Y up, the character starting at the origin
facing +Z with its left side at +X. Unity's frame is left-handed Y up: the same picture with the x
axis negated (a reflection M = diag(-1, 1, 1), its own inverse).

A rotation R maps to M R M under the reflection. For a unit quaternion (x, y, z, w) that is
(x, -y, -z, w): the axis becomes -M a (a reflection flips the handedness of the axis) and the
angle stays the same.
"""
from __future__ import annotations

import numpy as np

RIGHT_HANDED_Y_UP = "right_handed_y_up"
UNITY_LEFT_HANDED_Y_UP = "unity_left_handed_y_up"
SYSTEMS = (RIGHT_HANDED_Y_UP, UNITY_LEFT_HANDED_Y_UP)

_REFLECT = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
_QUAT_REFLECT = np.array([1.0, -1.0, -1.0, 1.0], dtype=np.float32)


def _check(system: str) -> None:
    if system not in SYSTEMS:
        raise ValueError(f"unknown coordinate system {system!r}; expected one of {SYSTEMS}")


def positions_to(positions: np.ndarray, system: str) -> np.ndarray:
    """Project-frame positions (..., 3) metres -> ``system``. Returns a new float32 array."""
    _check(system)
    arr = np.asarray(positions, dtype=np.float32)
    if arr.shape[-1] != 3:
        raise ValueError(f"positions must end in an axis of 3, got shape {arr.shape}")
    return arr * _REFLECT if system == UNITY_LEFT_HANDED_Y_UP else arr.copy()


def positions_from(positions: np.ndarray, system: str) -> np.ndarray:
    """Positions (..., 3) metres in ``system`` -> the project frame (the reflection is an involution)."""
    return positions_to(positions, system)


def quaternions_to(quats: np.ndarray, system: str) -> np.ndarray:
    """Project-frame unit quaternions (..., 4) as (x, y, z, w) -> ``system``."""
    _check(system)
    arr = np.asarray(quats, dtype=np.float32)
    if arr.shape[-1] != 4:
        raise ValueError(f"quaternions must end in an axis of 4, got shape {arr.shape}")
    return arr * _QUAT_REFLECT if system == UNITY_LEFT_HANDED_Y_UP else arr.copy()


def heading_to(heading: np.ndarray, system: str) -> np.ndarray:
    """Project-frame headings (radians about +Y, from +Z towards +X) -> the same facing in
    ``system``: Unity's mirrored x makes it the negated angle (then transform yaw = heading)."""
    _check(system)
    h = np.asarray(heading, dtype=np.float32)
    return -h if system == UNITY_LEFT_HANDED_Y_UP else h
