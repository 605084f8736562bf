"""Causal foot-contact cleanup of generated motion: smoothing, foot-driven root motion, foot IK.

Motion decoded from generated latents slides its feet (the toes keep moving horizontally while
they touch the floor: foot skating, MBench "foot sliding") and shakes a little more than captured
motion (jitter). Game engines fix both with filtering and foot IK; this module does it before the
frames leave the runtime, **causally** (each output frame depends only on the frames up to it, so
a stream's frames are final when released and chunked output equals whole-motion output):

1. **Smoothing**: a one-pole low-pass over all joints, ``y[t] = s y[t-1] + (1 - s) x[t]``
   (``smoothing`` = s; 0.3 delays the motion by s / (1 - s) = 0.43 frames, 21 ms at 20 fps).
2. **Foot-driven root motion**: on frames where a toe touches the floor on this and the previous
   frame, the body's horizontal displacement is taken from that toe's motion relative to the hips
   (a planted toe does not move, so the body moves by minus its relative motion; the mean over
   the toes in contact); the difference to the generated displacement accumulates into a
   horizontal offset of the whole body, low-passed by ``root_smoothing``. The pose is unchanged;
   only where the body is on the floor changes, so the travelled distance matches the steps.
3. **Foot locking**: a foot locks when its toe comes below ``lock_height`` (m; it unlocks above
   ``unlock_height``) with its toe's horizontal position as the anchor; while locked, Foot and
   Toes move horizontally so the toe stays on the anchor and the knee follows by analytic
   two-bone IK (UpperLeg -> LowerLeg -> Foot, the frame's own bone lengths, the knee in its own
   bend plane). An anchor out of the leg's reach (``reach`` x thigh + shin) unlocks the foot;
   after an unlock the foot's offset decays by ``release`` per frame.

Measured effect on the shipped model: ``python -m benchmarks.generation_quality`` (raw and cleaned
rows). Heights are along +y (DESIGN.md section 4: right-handed, y up, metres, 20 fps).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from coamd.skeleton import JOINT_INDEX, NUM_JOINTS, TOE_JOINTS

LEGS = tuple(tuple(JOINT_INDEX[f"{j}_{s}"] for j in ("UpperLeg", "LowerLeg", "Foot", "Toes")) for s in "LR")
"""(hip, knee, ankle, toe) joint indices of the left and right legs."""
HIPS = JOINT_INDEX["Hips"]
_XZ = [0, 2]


@dataclass
class CleanupConfig:
    """Settings of :class:`MotionCleanup`. Heights in metres; ``smoothing``, ``root_smoothing``
    and ``release`` are per-frame factors in [0, 1) (0 = off / immediate); ``reach`` is a fraction
    of the leg's length. The toe height threshold matches the foot-skating metric's contact
    height (``coamd.evaluation.metrics.CONTACT_HEIGHT_M``, 6 cm)."""

    smoothing: float = 0.3
    root_smoothing: float = 0.7
    lock_height: float = 0.06
    unlock_height: float = 0.08
    reach: float = 0.995
    release: float = 0.8

    def validate(self) -> None:
        """Raise ValueError naming the bad setting."""
        for name in ("smoothing", "root_smoothing", "release"):
            v = getattr(self, name)
            if not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        if not 0 < self.lock_height <= self.unlock_height:
            raise ValueError(f"need 0 < lock_height <= unlock_height, got {self.lock_height}, {self.unlock_height}")
        if not 0 < self.reach <= 1:
            raise ValueError(f"reach must be in (0, 1], got {self.reach}")


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray,
                reach: float = 0.995) -> tuple[np.ndarray, np.ndarray]:
    """Knee and ankle positions that put the ankle on ``target``, keeping the thigh |knee - hip|
    and shin |ankle - knee| lengths, with the knee in the plane of hip, target and the old knee.

    All arguments are (3,) float64 metres. Returns (knee', ankle'): ankle' == target when the
    target lies within ``reach`` x (thigh + shin) of the hip, otherwise ankle' stops on that
    sphere along hip -> target (law of cosines; the standard analytic two-bone solution).
    """
    l1 = float(np.linalg.norm(knee - hip))
    l2 = float(np.linalg.norm(ankle - knee))
    v = target - hip
    d = float(np.linalg.norm(v))
    if d < 1e-6 or l1 < 1e-6 or l2 < 1e-6:
        return knee.copy(), ankle.copy()
    u = v / d
    dc = min(max(d, abs(l1 - l2) + 1e-4), reach * (l1 + l2))
    ankle_new = target.copy() if dc == d else hip + u * dc
    a = (l1 * l1 - l2 * l2 + dc * dc) / (2 * dc)       # knee's projection on the hip -> ankle axis
    r = float(np.sqrt(max(l1 * l1 - a * a, 0.0)))      # knee's distance from that axis
    pole = (knee - hip) - u * float(np.dot(knee - hip, u))
    pn = float(np.linalg.norm(pole))
    if pn < 1e-6:  # straight leg: any bend plane; take one through the forward axis
        pole = np.cross(u, [1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.cross(u, [0.0, 0.0, 1.0])
        pn = float(np.linalg.norm(pole))
    return hip + u * a + pole / pn * r, ankle_new


@dataclass
class _Foot:
    locked: bool = False
    anchor: np.ndarray = field(default_factory=lambda: np.zeros(2))   # toe (x, z) while locked
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))   # last offset applied to the foot


class MotionCleanup:
    """Causal cleanup state of one motion; feed its frames in order with :meth:`apply`.

    ``apply(joints)`` with joints (n, 21, 3) metres returns the cleaned frames (n, 21, 3)
    float32. Calling it again with the following frames continues where it stopped (a stream's
    chunks give the same frames as the whole motion at once). Raises ValueError for a bad shape,
    non-finite values or a bad :class:`CleanupConfig`.
    """

    def __init__(self, config: CleanupConfig | None = None):
        self.config = config or CleanupConfig()
        self.config.validate()
        self._smooth: np.ndarray | None = None     # last smoothed frame (21, 3)
        self._root = np.zeros(2)                   # accumulated root correction (x, z)
        self._root_lp = np.zeros(2)                # its low-passed value, applied to the body
        self._feet = [_Foot(), _Foot()]

    def copy(self) -> "MotionCleanup":
        """An independent copy of the causal state (the config is shared: it is not changed)."""
        new = object.__new__(MotionCleanup)
        new.config = self.config
        new._smooth = None if self._smooth is None else self._smooth.copy()
        new._root, new._root_lp = self._root.copy(), self._root_lp.copy()
        new._feet = [_Foot(f.locked, f.anchor.copy(), f.offset.copy()) for f in self._feet]
        return new

    def apply(self, joints: np.ndarray) -> np.ndarray:
        j = np.asarray(joints, dtype=np.float64)
        if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3):
            raise ValueError(f"joints must be (n, {NUM_JOINTS}, 3), got {j.shape}")
        if not np.isfinite(j).all():
            raise ValueError("joints contain NaN or infinite values")
        out = np.empty_like(j)
        for t in range(len(j)):
            out[t] = self._frame(j[t])
        return out.astype(np.float32)

    def _frame(self, x: np.ndarray) -> np.ndarray:
        c = self.config
        prev = self._smooth
        cur = x if prev is None else c.smoothing * prev + (1 - c.smoothing) * x
        self._smooth = cur
        if prev is not None:
            toes = list(TOE_JOINTS)
            contact = (prev[toes, 1] < c.lock_height) & (cur[toes, 1] < c.lock_height)
            if contact.any():
                rel_prev = prev[toes][:, _XZ] - prev[HIPS, _XZ]
                rel_cur = cur[toes][:, _XZ] - cur[HIPS, _XZ]
                wanted = (rel_prev - rel_cur)[contact].mean(0)   # body step that keeps the toes planted
                self._root += wanted - (cur[HIPS, _XZ] - prev[HIPS, _XZ])
        self._root_lp = c.root_smoothing * self._root_lp + (1 - c.root_smoothing) * self._root
        f = cur.copy()
        f[:, _XZ] += self._root_lp
        for foot, leg in zip(self._feet, LEGS):
            self._lock(foot, leg, f)
        return f

    def _lock(self, foot: _Foot, leg: tuple[int, int, int, int], f: np.ndarray) -> None:
        """Foot locking with two-bone IK on frame ``f`` (21, 3), in place."""
        c = self.config
        hip, knee, ankle, toe = leg
        h = f[toe, 1]
        if foot.locked and h > c.unlock_height:
            foot.locked = False
        if not foot.locked and h < c.lock_height:
            foot.locked = True
            foot.anchor = f[toe, _XZ] + foot.offset[_XZ]   # where the toe is shown now: no jump
        d = np.zeros(3)
        if foot.locked:
            d[_XZ] = foot.anchor - f[toe, _XZ]
            leg_len = np.linalg.norm(f[knee] - f[hip]) + np.linalg.norm(f[ankle] - f[knee])
            if np.linalg.norm(f[ankle] + d - f[hip]) > c.reach * leg_len:
                foot.locked = False                          # out of reach: let go, ease back
        if not foot.locked:
            d = foot.offset * c.release
            if np.abs(d).max() < 1e-4:
                d = np.zeros(3)
        if not d.any():
            foot.offset = d
            return
        k_new, a_new = two_bone_ik(f[hip], f[knee], f[ankle], f[ankle] + d, c.reach)
        moved = a_new - f[ankle]
        f[knee], f[ankle], f[toe] = k_new, a_new, f[toe] + moved
        foot.offset = moved


def clean_motion(joints: np.ndarray, config: CleanupConfig | None = None) -> np.ndarray:
    """Cleaned copy of a whole motion: joints (n, 21, 3) metres -> (n, 21, 3) float32; see
    :class:`MotionCleanup`."""
    return MotionCleanup(config).apply(joints)
