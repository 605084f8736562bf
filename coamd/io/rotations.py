"""Small vectorised rotation helpers for turning joint positions into joint rotations.

Rotations are (..., 3, 3) float64 matrices acting on column vectors (``v_world = R @ v_local``);
quaternions are (x, y, z, w), scalar last, as in ``scipy.spatial.transform.Rotation``. Euler
conversions go through SciPy; the solving steps (Kabsch, swing, twist) are written here because
they are batched over frames.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial.transform import Rotation

_EPS = 1e-9


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of (..., 3) vectors (``np.cross`` without its per-call overhead)."""
    a, b = np.asarray(a), np.asarray(b)
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                     a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


def normalize(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors and norms of (..., 3) vectors; a zero vector stays zero (norm 0)."""
    n = np.linalg.norm(v, axis=-1)
    return v / np.maximum(n, _EPS)[..., None], n


def axis_angle_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: unit ``axis`` (..., 3) and ``angle`` (...) radians -> (..., 3, 3) matrices."""
    axis = np.asarray(axis, dtype=np.float64)
    angle = np.asarray(angle, dtype=np.float64)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    c, s = np.cos(angle), np.sin(angle)
    C = 1.0 - c
    out = np.empty(np.broadcast_shapes(axis.shape[:-1], angle.shape) + (3, 3))
    out[..., 0, 0] = c + x * x * C
    out[..., 0, 1] = x * y * C - z * s
    out[..., 0, 2] = x * z * C + y * s
    out[..., 1, 0] = y * x * C + z * s
    out[..., 1, 1] = c + y * y * C
    out[..., 1, 2] = y * z * C - x * s
    out[..., 2, 0] = z * x * C - y * s
    out[..., 2, 1] = z * y * C + x * s
    out[..., 2, 2] = c + z * z * C
    return out


def perpendicular(u: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to unit ``u`` (..., 3): ``u`` crossed with the world axis least
    aligned with it (the first of equal ones). Returns (..., 3)."""
    u = np.asarray(u, np.float64)
    helper = np.eye(3)[np.argmin(np.abs(u), axis=-1)]
    return normalize(cross(u, helper))[0]


def swing(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vectors ``u`` to ``v`` (both (..., 3)): (..., 3, 3).

    For opposite vectors the axis is any direction perpendicular to ``u`` (180 degrees).
    """
    u, v = np.broadcast_arrays(np.asarray(u, np.float64), np.asarray(v, np.float64))
    c = cross(u, v)
    sin = np.linalg.norm(c, axis=-1)
    cos = np.sum(u * v, axis=-1)
    axis = c / np.maximum(sin, _EPS)[..., None]
    opposite = (sin < 1e-8) & (cos < 0)
    if np.any(opposite):
        axis[opposite] = perpendicular(u[opposite])
    return axis_angle_matrix(axis, np.arctan2(sin, cos))


def kabsch(rest: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotation best taking ``rest`` vectors onto ``target`` vectors (least squares, no scaling).

    Args:
        rest: (K, 3) vectors in the local frame (shared by all frames).
        target: (..., K, 3) observed vectors per frame.
        weights: (K,) non-negative weights (default ones).
    Returns:
        (..., 3, 3) proper rotations R minimising sum_k w_k |R rest_k - target_k|^2.
    """
    w = np.ones(len(rest)) if weights is None else np.asarray(weights, dtype=np.float64)
    H = np.einsum("k,ka,...kb->...ab", w, np.asarray(rest, np.float64), target)  # sum w a b^T
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, -1, -2) @ np.swapaxes(U, -1, -2)))
    D = np.zeros(H.shape)
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = np.where(d == 0, 1.0, d)
    return np.swapaxes(Vt, -1, -2) @ D @ np.swapaxes(U, -1, -2)


def signed_angle(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Angle (radians, (-pi, pi]) from ``a`` to ``b`` about unit ``axis``, after projecting both
    onto the plane perpendicular to ``axis``. Shapes (..., 3) -> (...)."""
    a = a - np.sum(a * axis, -1, keepdims=True) * axis
    b = b - np.sum(b * axis, -1, keepdims=True) * axis
    return np.arctan2(np.sum(cross(a, b) * axis, -1), np.sum(a * b, -1))


def matrix_to_euler_deg(R: np.ndarray, order: str = "ZXY") -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> intrinsic Euler angles in degrees (..., 3) in ``order``
    (``R = R_order[0] @ R_order[1] @ R_order[2]``, the BVH channel convention)."""
    shape = R.shape[:-2]
    with warnings.catch_warnings():
        # at gimbal lock SciPy sets the last angle to zero; the rotation is still exact
        warnings.simplefilter("ignore", UserWarning)
        e = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_euler(order.upper(), degrees=True)
    return e.reshape(shape + (3,))


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (x, y, z, w), w >= 0."""
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()
    q = np.where(q[:, 3:4] < 0, -q, q)
    return q.reshape(R.shape[:-2] + (4,))


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w) -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    return Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(q.shape[:-1] + (3, 3))
