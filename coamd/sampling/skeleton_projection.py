"""Causal projection of generated joint positions onto one fixed skeleton.

The decoder predicts joint positions, and their bones change length from frame to frame (about
3 % on average, up to 8 % for the forearm; real clips are rigid). Engines drive rigs with joint
rotations on a fixed skeleton, so the runtime turns every released frame into a pose of that
skeleton (DESIGN.md section 4, "Skeleton validity"):

1. the body above the legs is raised by the legs' running length deficit: the decoder's thighs
   and shins come out about 1 % shorter than the skeleton's, and the same hips over the same
   feet would make the longer legs crouch (knees bent more than generated, which the action
   recognizer reads as an exhausted or elderly gait). Per frame the deficit of each leg
   (skeleton thigh + shin minus the observed ones, times how vertical the leg is) is averaged
   over the legs and followed by a one-pole with a one-second time constant
   (:data:`LIFT_FRAMES`), at most :data:`LIFT_LIMIT_M` either way; every joint but the knees,
   ankles and toes is raised by it (about 6 mm on average);
2. per frame, local joint rotations are solved from the positions
   (:func:`coamd.io.bvh_export.solve_rotations` in its causal form): Kabsch fits for the hips and
   the chest (three children each), the clavicles and the neck along their observed bones, the
   arms by two-bone IK onto the observed arm scaled to the skeleton's arm length (at most
   :data:`~coamd.io.bvh_export.ARM_SCALE_MAX`): each arm points where the generated one points
   and is as extended, with the elbow's hinge in the arm's bend plane, whatever the decoder's
   bone lengths (aiming each bone along the observed one turned a forearm the decoder shrank in
   a fast swing into hand steps of up to 0.7 m per frame), the
   legs by two-bone IK that puts each toe exactly on the observed toe and the ankle on the
   observed foot line (so the foot-contact cleanup's planted feet stay planted; the knee takes
   the bone-length differences), the spine's twist shared with the chest. An upper arm or thigh
   turns by at most :data:`~coamd.io.bvh_export.LIMB_TURN_DEG` per frame (above what real limbs
   do): where the decoder folds a limb up in a fast swing its end passes next to the shoulder
   or hip and the limb's axis can turn half a turn in a frame, which would throw the elbow or
   knee across;
3. the local rotations of the neck, upper arms and forearms (:data:`SMOOTHED_JOINTS`, joints
   with no contact to keep) are low-passed in time, one pole per frame
   (``q[t] = normalize(s q[t-1] + (1 - s) solved[t])``, ``s`` = ``smoothing``, 0.2: a delay of
   0.25 frames, 12.5 ms at 20 fps). Generated elbows and heads shake more than captured ones, and
   on bones of fixed length that shake becomes rotation (and the skeleton's forearm is 5 %
   longer than the model's average, a longer lever for it); without this the hands' jerk grows by
   about a tenth. The price is a small lag of the arms: on real clips the hands and elbows move
   by about 2 cm at the 99th percentile (``benchmarks/skeleton_validity.py`` reports both);
4. the output positions are forward kinematics of those rotations on the rest offsets of
   :func:`coamd.io.bvh_export.rest_offsets` (the skeleton ``GetSkeleton`` returns), starting at
   the (raised) hips: every bone has its rest length exactly, and the released rotations drive
   the skeleton onto the released positions (float32 rounding only);
5. a step guard: no joint of a released frame moves further from the previous released frame than
   :data:`MAX_STEP_M` (0.48 m; the fastest joint of the real test clips moves 0.486 m in a frame,
   of every real clip 0.508 m, a run's toe). The decoder occasionally throws a limb or the whole
   body further than that in one frame (the one-clip dance starting at three times its real hips
   speed; a hand at a session window's first frame). Such a frame is moved back towards the
   previous one along the way it came: every joint's rotation and the hips' position by the
   same fraction, the largest of a 1/32 grid that keeps every joint within the bound (FK of the
   result, so positions and rotations stay consistent). Later frames are measured against the
   released one, so a motion that runs ahead is caught up over a few frames, never by a jump.
   Kept frames are never changed; real motion trips it only in its very fastest frames.

Twist that the positions do not determine (a straight elbow or knee) is held from the previous
frame, carried along with the limb (no reference frame that could spin) and turned towards the
observed bend as the limb bends; the spine's twist is held the same way. Everything depends on
the current and earlier frames only, so a stream's frames are final when released and projecting
chunk by chunk gives the frames of projecting the whole motion at once.

Steps 1-4 run frame by frame in one compiled kernel (step 5, in numpy, only checks the steps
unless one is too long: 0.009 ms per 4-frame chunk) (:mod:`coamd.io.causal_solver`, numba,
imported on the first :meth:`SkeletonProjection.apply`; :func:`coamd.runtime.load_engine` compiles
it ahead of the first request): the server releases a few frames per call, where numpy's per-call
overhead cost about 1.5 ms per chunk; the kernel takes tens of microseconds. Its results equal the
numpy formulation of these steps (kept in ``tests/test_causal_solver.py`` as the reference) to
float rounding.

Edits: frames an edit keeps (``keep``) are returned exactly as given, with the rotations solved
from them (not raised or low-passed; the low-pass restarts from them). Given frames that are a
pose of the skeleton (real data is) are reproduced by those rotations within float rounding, so
the released chunk stays consistent; frames given on another skeleton keep their positions, and
their rotations are then the nearest pose of this one.

Measured effect on the shipped model (raw vs projected motions, real clips as reference):
``python -m benchmarks.skeleton_validity`` (``benchmarks/results/skeleton_validity.md``).
"""
from __future__ import annotations

import copy as _copy

import time

import numpy as np

from coamd.io.bvh_export import DATASET_SKELETON, BVHSkeleton, RotationStream, rest_offsets, stream_solver
from coamd.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS

SMOOTHED_JOINTS = ("Neck", "UpperArm_L", "LowerArm_L", "UpperArm_R", "LowerArm_R")
"""Joints whose local rotations the projection low-passes (no contacts to keep there)."""
SMOOTHING = 0.2
"""Default one-pole factor of that low-pass per frame (0 = off)."""
_SMOOTHED = [JOINT_INDEX[n] for n in SMOOTHED_JOINTS]
LIFT_FRAMES = 20.0
"""Time constant (frames at 20 fps: one second) of the running lift of the body."""
LIFT_LIMIT_M = 0.03
"""Largest lift of the body either way (metres)."""
_LEGS = tuple(tuple(JOINT_INDEX[f"{j}_{s}"] for j in ("UpperLeg", "LowerLeg", "Foot")) for s in "LR")
_ABOVE_LEGS = [i for i in range(NUM_JOINTS) if i not in {k for leg in _LEGS for k in leg[1:]}
               and i not in (JOINT_INDEX["Toes_L"], JOINT_INDEX["Toes_R"])]

MAX_STEP_M = 0.48
"""Largest distance (metres) any joint moves between two released frames (step 5 above)."""
_GUARD_GRID = np.linspace(0.0, 1.0, 33)

SKELETON_MODES = ("fk", "raw")
"""Request options: ``fk`` (default) projects every released frame; ``raw`` releases the model's
positions unprojected (a research option; no rotations come with them)."""


class SkeletonProjection:
    """Causal skeleton projection of one motion; feed its frames in order with :meth:`apply`.

    Args:
        skeleton: the rest skeleton (default: the dataset's, whose offsets :func:`rest_offsets`
            returns).
        keep: optional (T,) bool over the motion's frames: frames returned exactly as given
            (an edit's kept frames).
        smoothing: one-pole factor in [0, 1) of the low-pass of :data:`SMOOTHED_JOINTS`'
            rotations (0 = off: the solved rotations as they are).
        lift: raise the body above the legs by the legs' running length deficit (see the
            module docstring); False keeps the observed hips.
        max_step_m: the step guard's bound in metres per frame (step 5 of the module
            docstring; default :data:`MAX_STEP_M`), None for no guard.
    Raises:
        ValueError: ``keep`` is not one-dimensional, ``smoothing`` outside [0, 1),
            ``max_step_m`` not positive.
    """

    def __init__(self, skeleton: BVHSkeleton = DATASET_SKELETON, keep: np.ndarray | None = None,
                 smoothing: float = SMOOTHING, lift: bool = True, max_step_m: float | None = MAX_STEP_M):
        self.skeleton = skeleton
        self.lift = bool(lift)
        self.keep = None if keep is None else np.asarray(keep, dtype=bool)
        if self.keep is not None and self.keep.ndim != 1:
            raise ValueError(f"keep must be (T,) bool, got shape {self.keep.shape}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = float(smoothing)
        if max_step_m is not None and not max_step_m > 0:
            raise ValueError(f"max_step_m must be positive or None, got {max_step_m}")
        self.max_step_m = None if max_step_m is None else float(max_step_m)
        self.frames = 0                 # frames projected so far
        self.guarded = 0                # frames the step guard moved back (step 5)
        self._causal = None             # the compiled solver and its causal state (first apply)
        self._last = None               # (positions (21, 3), rotations (21, 4)) of the last released frame

    def apply(self, joints: np.ndarray, start: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Project the next frames.

        Args:
            joints: (n, 21, 3) metres, the frames following those already projected.
            start: optional index of the first of them in the motion; must equal :attr:`frames`
                (a check that frames come in order, each once).
        Returns:
            ``(positions, rotations)``: (n, 21, 3) float32 metres and (n, 21, 4) float32 unit
            quaternions (x, y, z, w), w >= 0, local rotations on the skeleton's rest frames
            (:func:`coamd.io.bvh_export.joints_to_local_rotations` convention), with
            ``forward_kinematics(rotations, positions[:, 0], skeleton) == positions``.
        Raises:
            ValueError: bad shape, non-finite values, or ``start`` out of order.
        """
        j = np.asarray(joints, dtype=np.float64)
        if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3):
            raise ValueError(f"joints must be (n, {NUM_JOINTS}, 3), got {j.shape}")
        if start is not None and int(start) != self.frames:
            raise ValueError(f"frames must come in order: expected frame {self.frames}, got {start}")
        n = len(j)
        if n == 0:
            return np.zeros((0, NUM_JOINTS, 3), np.float32), np.zeros((0, NUM_JOINTS, 4), np.float32)
        if not np.isfinite(j).all():
            raise ValueError("joints contain NaN or infinite values")
        kept = np.zeros(n, bool)
        if self.keep is not None:
            kept[: max(0, min(n, len(self.keep) - self.frames))] = self.keep[self.frames: self.frames + n]
        pos, rot = self._solver().step(j, kept)
        if self.max_step_m is not None:
            pos, rot = self._guard(pos, rot, kept)
        self.frames += n
        return pos, rot

    def _guard(self, pos: np.ndarray, rot: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Step 5 of the module docstring on released frames (n, 21, 3) / (n, 21, 4) float32."""
        prev = None if self._last is None else self._last[0]
        ahead = np.concatenate([prev[None], pos]) if prev is not None else pos
        steps = np.linalg.norm(np.diff(ahead, axis=0), axis=-1).max(-1) if len(ahead) > 1 else np.zeros(0)
        if not (steps > self.max_step_m).any():   # the usual case: nothing to do
            self._last = (pos[-1].copy(), rot[-1].copy())
            return pos, rot
        from coamd.io.bvh_export import forward_kinematics

        pos, rot = pos.copy(), rot.copy()
        last = self._last
        for t in range(len(pos)):
            if last is not None and not kept[t] and np.linalg.norm(pos[t] - last[0], axis=-1).max() > self.max_step_m:
                q0, q1 = last[1].astype(np.float64), rot[t].astype(np.float64)
                q1 = np.where((np.sum(q0 * q1, -1) < 0)[:, None], -q1, q1)          # the short way round
                a = _GUARD_GRID[:, None, None]
                q = (1.0 - a) * q0 + a * q1
                q /= np.linalg.norm(q, axis=-1, keepdims=True)
                q = np.where(q[..., 3:] < 0, -q, q)                                    # w >= 0
                root = (1.0 - _GUARD_GRID[:, None]) * last[0][0] + _GUARD_GRID[:, None] * pos[t, 0]
                _, p = forward_kinematics(q, root, self.skeleton)
                ok = np.linalg.norm(p - last[0], axis=-1).max(-1) <= self.max_step_m
                k = int(np.flatnonzero(ok).max())                                      # alpha 0 always fits
                pos[t], rot[t] = p[k].astype(np.float32), q[k].astype(np.float32)
                self.guarded += 1
            last = (pos[t], rot[t])
        self._last = (pos[-1].copy(), rot[-1].copy())
        return pos, rot

    def copy(self) -> "SkeletonProjection":
        """An independent copy of the projection's causal state (settings and tables shared:
        they are not changed), for a step that may fail (:mod:`coamd.sampling.sampler`)."""
        new = _copy.copy(self)
        new._causal = None if self._causal is None else self._causal.copy()
        return new  # _last is replaced, never changed in place, so sharing it is safe

    def _solver(self):
        """The compiled causal solver holding this motion's state (numba is imported on first use)."""
        if self._causal is None:
            self._causal = stream_solver(self.skeleton, fk=True, smoothed=_SMOOTHED, smoothing=self.smoothing,
                                         lift=(_LEGS, _ABOVE_LEGS, LIFT_FRAMES, LIFT_LIMIT_M) if self.lift else None)
        return self._causal


def project_motion(joints: np.ndarray, skeleton: BVHSkeleton = DATASET_SKELETON,
                   smoothing: float = SMOOTHING) -> tuple[np.ndarray, np.ndarray]:
    """Project a whole motion: joints (T, 21, 3) metres -> (positions (T, 21, 3) float32,
    rotations (T, 21, 4) float32); the same frames as streaming it through one
    :class:`SkeletonProjection` in chunks of any size. Raises ValueError on bad input."""
    return SkeletonProjection(skeleton, smoothing=smoothing).apply(joints)


def warm_up() -> float:
    """Compile the streams' causal solver (:mod:`coamd.io.causal_solver`; imports numba), or load
    it from numba's disk cache, by projecting two frames of the rest pose (one of them kept) and
    converting them with a :class:`~coamd.io.bvh_export.RotationStream`; returns the seconds it took
    (about 5 s on a cold cache, well under one from the cache, microseconds once loaded).
    :func:`coamd.runtime.load_engine` calls it so that the first request does not pay it."""
    t = time.perf_counter()
    offs = DATASET_SKELETON.offsets
    pose = np.zeros((2, NUM_JOINTS, 3))
    pose[:, 0, 1] = DATASET_SKELETON.lengths[0]
    for j in range(1, NUM_JOINTS):
        pose[:, j] = pose[:, PARENTS[j]] + offs[j]
    pose[1] += 0.01
    SkeletonProjection(keep=np.array([False, True])).apply(pose)
    RotationStream().push(pose)
    return time.perf_counter() - t


__all__ = ["MAX_STEP_M", "SKELETON_MODES", "SMOOTHED_JOINTS", "SMOOTHING", "SkeletonProjection", "project_motion",
           "rest_offsets", "warm_up"]
