"""BVH reading and forward kinematics for the Bandai Namco skeleton.

Parsing is a small vectorised reader (the dataset is 550 MB of text and must build in minutes;
per-frame object libraries are far slower). Agreement with the peer library ``bvhio`` is tested in
``tests/test_bvh.py`` on real clips.

Conventions of the source files (see the dataset README): centimetres, Y up, right-handed; every
joint has 6 channels ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``; the position
channels are the joint's local translation (they replace OFFSET); rotations are intrinsic in the
listed order, i.e. ``R = Rz @ Rx @ Ry`` in degrees.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coamd.skeleton import JOINT_NAMES


class BVHError(ValueError):
    """A BVH file is malformed, truncated or has an unexpected skeleton."""


@dataclass
class BVH:
    """A parsed BVH file.

    Attributes:
        names: joint names in file order (End Sites excluded).
        parents: parent index per joint (-1 for the root).
        offsets: (J, 3) rest offsets in file units.
        channels: per joint, the list of channel names.
        frame_time: seconds per frame.
        motion: (T, C) float64 channel values, C = sum of channel counts.
    """

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[list[str]]
    frame_time: float
    motion: np.ndarray

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


_TOKEN = re.compile(r"\S+")


def parse_bvh(text: str, name: str = "<bvh>") -> BVH:
    """Parse BVH text. Raises BVHError naming ``name`` on any structural problem or truncation."""
    head, sep, body = text.partition("MOTION")
    if not sep:
        raise BVHError(f"{name}: no MOTION section")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    tokens = _TOKEN.findall(head)
    i = 0
    pending_end = False
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
                i += 2
            elif tok == "End":
                pending_end = True
                i += 2
            elif tok == "{":
                stack.append(-2 if pending_end else len(names) - 1)
                pending_end = False
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                vals = [float(v) for v in tokens[i + 1 : i + 4]]
                if stack and stack[-1] >= 0:
                    offsets[stack[-1]] = vals
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                channels[stack[-1]] = tokens[i + 2 : i + 2 + n]
                i += 2 + n
            else:
                i += 1
    except (IndexError, ValueError) as exc:
        raise BVHError(f"{name}: malformed HIERARCHY ({exc})") from exc
    if stack:
        raise BVHError(f"{name}: unbalanced braces in HIERARCHY")
    if not names:
        raise BVHError(f"{name}: no joints")
    m = re.match(r"\s*Frames:\s*(\d+)\s*Frame Time:\s*([0-9.eE+-]+)", body)
    if not m:
        raise BVHError(f"{name}: missing 'Frames:'/'Frame Time:' header")
    n_frames, frame_time = int(m.group(1)), float(m.group(2))
    n_ch = sum(len(c) for c in channels)
    try:
        values = np.array(body[m.end():].split(), dtype=np.float64)
    except ValueError as exc:
        raise BVHError(f"{name}: non-numeric motion data ({exc})") from exc
    if n_frames <= 0 or frame_time <= 0:
        raise BVHError(f"{name}: bad frame count {n_frames} or frame time {frame_time}")
    if values.size != n_frames * n_ch:
        raise BVHError(
            f"{name}: truncated or malformed motion data: expected {n_frames} frames x {n_ch} "
            f"channels = {n_frames * n_ch} values, found {values.size}"
        )
    if not np.all(np.isfinite(values)):
        raise BVHError(f"{name}: motion data has NaN or infinite values")
    return BVH(names, parents, np.asarray(offsets), channels, frame_time, values.reshape(n_frames, n_ch))


def read_bvh(path: str | Path) -> BVH:
    """Read and parse a BVH file (see :func:`parse_bvh`). Raises BVHError or OSError."""
    path = Path(path)
    return parse_bvh(path.read_text(errors="replace"), path.name)


def euler_to_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles to rotation matrices.

    Args:
        angles_deg: (..., 3) angles in degrees, in the order given by ``order``.
        order: axis letters, e.g. ``"ZXY"``; the result is ``R_order[0] @ R_order[1] @ R_order[2]``.
    Returns:
        (..., 3, 3) rotation matrices.
    """
    a = np.deg2rad(angles_deg)
    out = None
    for k, axis in enumerate(order.upper()):
        c, s = np.cos(a[..., k]), np.sin(a[..., k])
        m = np.zeros(a.shape[:-1] + (3, 3))
        if axis == "X":
            m[..., 0, 0] = 1; m[..., 1, 1] = c; m[..., 1, 2] = -s; m[..., 2, 1] = s; m[..., 2, 2] = c
        elif axis == "Y":
            m[..., 1, 1] = 1; m[..., 0, 0] = c; m[..., 0, 2] = s; m[..., 2, 0] = -s; m[..., 2, 2] = c
        elif axis == "Z":
            m[..., 2, 2] = 1; m[..., 0, 0] = c; m[..., 0, 1] = -s; m[..., 1, 0] = s; m[..., 1, 1] = c
        else:
            raise ValueError(f"bad rotation axis {axis!r} in order {order!r}")
        out = m if out is None else out @ m
    return out


def local_transforms(bvh: BVH) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint local translations (T, J, 3) and rotations (T, J, 3, 3) from the channels.

    Joints without position channels use their OFFSET; rotation order follows each joint's
    channel list.
    """
    T, J = bvh.motion.shape[0], len(bvh.names)
    trans = np.broadcast_to(bvh.offsets, (T, J, 3)).copy()
    rots = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
    col = 0
    for j, chans in enumerate(bvh.channels):
        pos_idx = {c[0]: col + k for k, c in enumerate(chans) if c.endswith("position")}
        rot = [(c[0], col + k) for k, c in enumerate(chans) if c.endswith("rotation")]
        for axis_i, axis in enumerate("XYZ"):
            if axis in pos_idx:
                trans[:, j, axis_i] = bvh.motion[:, pos_idx[axis]]
        if rot:
            order = "".join(a for a, _ in rot)
            rots[:, j] = euler_to_matrix(bvh.motion[:, [c for _, c in rot]], order)
        col += len(chans)
    return trans, rots


def forward_kinematics(bvh: BVH) -> np.ndarray:
    """Global joint positions of every BVH joint: (T, J, 3) in file units (cm here).

    Applies every joint's channels, ``joint_Root`` included.
    """
    trans, rots = local_transforms(bvh)
    return fk_from_local(trans, rots, bvh.parents)


def fk_from_local(trans: np.ndarray, rots: np.ndarray, parents: list[int]) -> np.ndarray:
    """Forward kinematics from local translations (T, J, 3) and rotations (T, J, 3, 3).

    ``parents`` lists each joint's parent index (-1 for a root), parents before children.
    Returns global positions (T, J, 3) in the units of ``trans``.
    """
    T, J = trans.shape[:2]
    gpos = np.zeros((T, J, 3))
    grot = np.zeros((T, J, 3, 3))
    for j, p in enumerate(parents):
        if p < 0:
            gpos[:, j] = trans[:, j]
            grot[:, j] = rots[:, j]
        else:
            gpos[:, j] = gpos[:, p] + np.einsum("tab,tb->ta", grot[:, p], trans[:, j])
            grot[:, j] = grot[:, p] @ rots[:, j]
    return gpos


def resample_local(trans: np.ndarray, rots: np.ndarray, src_fps: float, dst_fps: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Resample local transforms in time: translations linearly, rotations by normalised
    quaternion interpolation (shortest arc), so bones stay rigid (interpolating positions would
    shorten fast-rotating limbs by centimetres).

    Args: trans (T, J, 3), rots (T, J, 3, 3) at ``src_fps``. Returns the same at ``dst_fps`` with
    T' = floor((T - 1) * dst_fps / src_fps) + 1 frames sampled at t = k / dst_fps.
    """
    from scipy.spatial.transform import Rotation

    T, J = trans.shape[:2]
    n_out = int(np.floor((T - 1) * dst_fps / src_fps + 1e-6)) + 1
    t = np.arange(n_out) * (src_fps / dst_fps)
    i0 = np.clip(np.floor(t).astype(np.int64), 0, T - 1)
    i1 = np.clip(i0 + 1, 0, T - 1)
    w = (t - i0)[:, None]
    q = Rotation.from_matrix(rots.reshape(-1, 3, 3)).as_quat().reshape(T, J, 4)
    q0, q1 = q[i0], q[i1]
    q1 = np.where((np.sum(q0 * q1, axis=-1, keepdims=True) < 0), -q1, q1)
    qi = (1 - w[..., None]) * q0 + w[..., None] * q1
    qi /= np.linalg.norm(qi, axis=-1, keepdims=True)
    r = Rotation.from_quat(qi.reshape(-1, 4)).as_matrix().reshape(n_out, J, 3, 3)
    tr = (1 - w[..., None]) * trans[i0] + w[..., None] * trans[i1]
    return tr, r


def canonical_joint_positions(bvh: BVH, fps: float | None = None) -> np.ndarray:
    """Forward kinematics restricted to the 21 canonical joints: (T, 21, 3), file units.

    With ``fps`` given, the local transforms are first resampled to that frame rate
    (see :func:`resample_local`). Raises BVHError when a canonical joint is missing.
    """
    missing = [n for n in JOINT_NAMES if n not in bvh.names]
    if missing:
        raise BVHError(f"BVH lacks canonical joints: {', '.join(missing)}")
    trans, rots = local_transforms(bvh)
    if fps is not None and abs(fps - bvh.fps) > 1e-3:
        trans, rots = resample_local(trans, rots, bvh.fps, fps)
    pos = fk_from_local(trans, rots, bvh.parents)
    idx = [bvh.names.index(n) for n in JOINT_NAMES]
    return pos[:, idx]
