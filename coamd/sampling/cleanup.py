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
rows). Heights are along +y (DESIGN.md section 4: right-handed, y up, metres, 20 fps). The
per-frame work is one compiled kernel (:mod:`coamd.sampling.cleanup_kernel`, numba): about
0.002 ms per frame in 4-frame chunks (0.06-0.08 ms as numpy calls).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from coamd.skeleton import JOINT_INDEX, NUM_JOINTS, TOE_JOINTS

LEGS = tuple(tuple(JOINT_INDEX[f"{j}_{s}"] for j in ("UpperLeg", "LowerLeg", "Foot", "Toes")) for s in "LR")
"""(hip, knee, ankle, toe) joint indices of the left and right legs."""
HIPS = JOINT_INDEX["Hips"]
_LEGS = np.array(LEGS, np.int64)
_TOES = np.array(TOE_JOINTS, np.int64)


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
    sphere along hip -> target (law of cosines; the standard analytic two-bone solution). The
    cleanup's compiled kernel (:func:`coamd.sampling.cleanup_kernel.two_bone_ik_kernel`).
    """
    from coamd.sampling.cleanup_kernel import two_bone_ik_kernel

    args = [np.ascontiguousarray(v, dtype=np.float64).reshape(3) for v in (hip, knee, ankle, target)]
    return two_bone_ik_kernel(*args, float(reach))


class MotionCleanup:
    """Causal cleanup state of one motion; feed its frames in order with :meth:`apply`.

    ``apply(joints)`` with joints (n, 21, 3) metres returns the cleaned frames (n, 21, 3)
    float32. Calling it again with the following frames continues where it stopped (a stream's
    chunks give the same frames as the whole motion at once). Raises ValueError for a bad shape,
    non-finite values or a bad :class:`CleanupConfig`. The per-frame work is one compiled kernel
    (:mod:`coamd.sampling.cleanup_kernel`; numba is imported on the first :meth:`apply`); the
    causal state is one float64 vector, replaced only when a call succeeds.
    """

    def __init__(self, config: CleanupConfig | None = None):
        self.config = config or CleanupConfig()
        self.config.validate()
        c = self.config
        self._params = np.array([c.smoothing, c.root_smoothing, c.lock_height, c.unlock_height, c.reach,
                                 c.release], np.float64)
        self._state: np.ndarray | None = None   # the kernel's state vector (None: nothing seen yet)

    def copy(self) -> "MotionCleanup":
        """An independent copy of the causal state (the config is shared: it is not changed)."""
        new = object.__new__(MotionCleanup)
        new.config, new._params = self.config, self._params
        new._state = None if self._state is None else self._state.copy()
        return new

    def apply(self, joints: np.ndarray) -> np.ndarray:
        j = np.asarray(joints, dtype=np.float64)
        if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3):
            raise ValueError(f"joints must be (n, {NUM_JOINTS}, 3), got {j.shape}")
        if not np.isfinite(j).all():
            raise ValueError("joints contain NaN or infinite values")
        from coamd.sampling import cleanup_kernel

        state = np.zeros(cleanup_kernel.STATE_SIZE) if self._state is None else self._state
        out, self._state = cleanup_kernel.clean(np.ascontiguousarray(j), state, self._params, _LEGS, _TOES, HIPS)
        return out.astype(np.float32)


def warm_up() -> float:
    """Compile the cleanup's kernel (:mod:`coamd.sampling.cleanup_kernel`; imports numba), or load
    it from numba's disk cache, by cleaning two frames of a standing pose; returns the seconds it
    took. :func:`coamd.runtime.load_engine` calls it so that the first request does not pay it."""
    t = time.perf_counter()
    pose = np.zeros((3, NUM_JOINTS, 3))
    pose[:, :, 1] = np.linspace(1.0, 0.05, NUM_JOINTS)   # toes low enough to lock
    pose[1:, :, 0] += 0.02
    MotionCleanup().apply(pose)
    two_bone_ik(np.zeros(3), np.array([0.0, -0.4, 0.0]), np.array([0.0, -0.8, 0.0]), np.array([0.1, -0.7, 0.0]))
    return time.perf_counter() - t


def clean_motion(joints: np.ndarray, config: CleanupConfig | None = None) -> np.ndarray:
    """Cleaned copy of a whole motion: joints (n, 21, 3) metres -> (n, 21, 3) float32; see
    :class:`MotionCleanup`."""
    return MotionCleanup(config).apply(joints)
