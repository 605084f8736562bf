"""Turning raw joint positions into canonical clips (DESIGN.md section 4).

All functions take and return float arrays of shape (T, 21, 3) in the canonical joint order.
"""
from __future__ import annotations

import numpy as np

from coamd.skeleton import FPS, HIP_L, HIP_R, MIRROR, SHOULDER_L, SHOULDER_R

CM_TO_M = 0.01


def resample(joints: np.ndarray, src_fps: float, dst_fps: float = FPS) -> np.ndarray:
    """Linear-interpolation resampling along time.

    Args:
        joints: (T, 21, 3) positions at ``src_fps``.
    Returns:
        (T', 21, 3) with T' = floor((T - 1) * dst_fps / src_fps) + 1, sampled at t = k / dst_fps.
    Raises:
        ValueError: on an empty clip or a non-positive frame rate.
    """
    if joints.shape[0] < 1 or src_fps <= 0 or dst_fps <= 0:
        raise ValueError("resample needs at least one frame and positive frame rates")
    T = joints.shape[0]
    n_out = int(np.floor((T - 1) * dst_fps / src_fps + 1e-6)) + 1
    t = np.arange(n_out) * (src_fps / dst_fps)
    i0 = np.clip(np.floor(t).astype(np.int64), 0, T - 1)
    i1 = np.clip(i0 + 1, 0, T - 1)
    w = (t - i0)[:, None, None]
    return (1 - w) * joints[i0] + w * joints[i1]


def facing_angle(joints: np.ndarray) -> np.ndarray:
    """Heading per frame in radians: the angle of the forward direction from +Z towards +X.

    Forward is the horizontal across-body axis (left minus right hip and shoulder) crossed
    with up; a person facing +Z has their left side at +X (right-handed, Y up).

    Args:
        joints: (T, 21, 3). Returns: (T,) radians in (-pi, pi].
    """
    across = (joints[:, HIP_L] - joints[:, HIP_R]) + (joints[:, SHOULDER_L] - joints[:, SHOULDER_R])
    # forward = across x up, with up = +Y: (ax, ay, az) x (0, 1, 0) = (-az, 0, ax)
    fx, fz = -across[:, 2], across[:, 0]
    return np.arctan2(fx, fz)


def rotate_y(joints: np.ndarray, angle: float) -> np.ndarray:
    """Rotate positions about the vertical axis by ``angle`` radians (from +Z towards +X)."""
    c, s = np.cos(angle), np.sin(angle)
    out = joints.copy()
    x, z = joints[..., 0], joints[..., 2]
    out[..., 0] = c * x + s * z
    out[..., 2] = -s * x + c * z
    return out


def canonicalize(joints: np.ndarray) -> np.ndarray:
    """Canonical start: hips above the origin (x = z = 0) at frame 0, facing +Z at frame 0.

    The vertical axis is kept: the dataset's floor is already y = 0 (the toe joints sit a few
    centimetres above it), so heights are physical. Input/output (T, 21, 3), metres.
    """
    out = joints.copy()
    out[..., 0] -= joints[0, 0, 0]
    out[..., 2] -= joints[0, 0, 2]
    heading = facing_angle(out[:1])[0]
    return rotate_y(out, -heading)


def mirror(joints: np.ndarray) -> np.ndarray:
    """Left/right reflection: negate x and swap left and right joints. mirror(mirror(x)) == x."""
    out = joints[..., MIRROR, :].copy()
    out[..., 0] = -out[..., 0]
    return out
