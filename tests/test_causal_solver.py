"""The compiled causal solver (coamd.io.causal_solver) against its numpy reference.

Streams (``RotationStream``, ``SkeletonProjection``) run the numba kernel; the numpy formulation
is the causal form of ``solve_rotations`` (``twist_state`` dict) plus, for the projection, the
lift, low-pass and forward kinematics written here as they were before the kernel
(:class:`ReferenceProjection`). On real clips and on non-rigid motions (noise, bones scaled,
limbs out of reach) both give the same positions and rotations within 1e-5, whole or in chunks,
with an edit's kept frames.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from coamd.io.bvh_export import (DATASET_SKELETON, BVHExportError, RotationStream, forward_kinematics,
                                 solve_rotations)
from coamd.io.rotations import matrix_to_quat
from coamd.sampling.skeleton_projection import (_ABOVE_LEGS, _LEGS, _SMOOTHED, LIFT_FRAMES, LIFT_LIMIT_M,
                                                SMOOTHING, SkeletonProjection, warm_up)
from coamd.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS

TOL = 1e-5
CHUNKS = (1, 3, 7)


class ReferenceProjection:
    """The numpy skeleton projection (the code SkeletonProjection.apply ran before the kernel)."""

    def __init__(self, keep=None, smoothing=SMOOTHING, lift=True):
        self.skeleton = DATASET_SKELETON
        self.keep = None if keep is None else np.asarray(keep, bool)
        self.smoothing, self.lift = smoothing, lift
        self.frames = 0
        self._state: dict = {}
        self._smoothed = None
        self._lift = None

    def apply(self, joints):
        j = np.asarray(joints, dtype=np.float64)
        n = len(j)
        kept = np.zeros(n, bool)
        if self.keep is not None:
            kept[: max(0, min(n, len(self.keep) - self.frames))] = self.keep[self.frames: self.frames + n]
        if self.lift:
            j = self._lifted(j, kept)
        _, local, _ = solve_rotations(j, self.skeleton, twist_state=self._state)
        q = matrix_to_quat(local)
        if self.smoothing > 0:
            q = self._low_pass(q, kept)
        rot = q.astype(np.float32)
        _, pos = forward_kinematics(rot, j[:, 0], self.skeleton)
        pos = pos.astype(np.float32)
        pos[kept] = np.asarray(joints, dtype=np.float32)[kept]
        self.frames += n
        return pos, rot

    def _lifted(self, j, kept):
        lengths = self.skeleton.lengths
        deficit = np.zeros(len(j))
        for hip, knee, ankle in _LEGS:
            thigh = np.linalg.norm(j[:, knee] - j[:, hip], axis=-1)
            shin = np.linalg.norm(j[:, ankle] - j[:, knee], axis=-1)
            leg = j[:, ankle] - j[:, hip]
            down = np.maximum(-leg[:, 1] / np.maximum(np.linalg.norm(leg, axis=-1), 1e-9), 0.0)
            deficit += 0.5 * (lengths[knee] + lengths[ankle] - thigh - shin) * down
        out = j.copy()
        lift = self._lift
        for t in range(len(j)):
            lift = deficit[t] if lift is None else lift + (deficit[t] - lift) / LIFT_FRAMES
            lift = min(max(lift, -LIFT_LIMIT_M), LIFT_LIMIT_M)
            if not kept[t]:
                out[t, _ABOVE_LEGS, 1] += lift
        self._lift = lift
        return out

    def _low_pass(self, q, kept):
        s = self.smoothing
        prev = self._smoothed
        for t in range(len(q)):
            cur = q[t, _SMOOTHED]
            if prev is not None and not kept[t]:
                cur = np.where(np.sum(prev * cur, -1, keepdims=True) < 0, -cur, cur)
                cur = s * prev + (1.0 - s) * cur
                cur = cur / np.linalg.norm(cur, axis=-1, keepdims=True)
            prev = cur
            q[t, _SMOOTHED] = np.where(cur[:, 3:] < 0, -cur, cur)
        self._smoothed = prev
        return q


def reference_stream(x: np.ndarray, size: int) -> np.ndarray:
    """The numpy causal solver in chunks of ``size``: (T, 21, 4) float32 quaternions."""
    state: dict = {}
    out = [matrix_to_quat(solve_rotations(x[s:s + size], DATASET_SKELETON, twist_state=state)[1])
           for s in range(0, len(x), size)]
    return np.concatenate(out).astype(np.float32)


def quat_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest component difference of two (..., 4) quaternion arrays, sign-aware (q and -q
    are the same rotation)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    b = np.where(np.sum(a * b, -1, keepdims=True) < 0, -b, b)
    return float(np.abs(a - b).max())


def non_rigid(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Real joints (T, 21, 3) with every bone scaled by 0.92-1.08 (the shins and thighs by up
    to 1.15 on one side, so the legs cannot reach where the toes are) and smooth 5 mm noise."""
    scale = rng.uniform(0.92, 1.08, NUM_JOINTS)
    scale[[JOINT_INDEX["LowerLeg_L"], JOINT_INDEX["Foot_L"]]] = 1.15  # the left thigh and shin
    out = x.copy()
    for j in range(1, NUM_JOINTS):
        out[:, j] = out[:, PARENTS[j]] + scale[j] * (x[:, j] - x[:, PARENTS[j]])
    n = rng.normal(scale=0.005, size=x.shape)
    kernel = np.ones(3) / np.sqrt(3.0)
    n = np.apply_along_axis(lambda v: np.convolve(v, kernel, "same"), 0, n)
    return out + n


def folded(x: np.ndarray, start: int = 30, frames: int = 10) -> np.ndarray:
    """Real joints (T, 21, 3) whose right arm and left leg fold up for ``frames`` frames from
    ``start`` (both bones at 15 % of their length, the hand and ankle at 12 % of their distance
    from the shoulder and hip) and swing through the joint halfway (the end jumps to the other
    side), as a decoder can make them in a fast swing: the limb turn limit, the arm-scale cap and
    the bend turned back after the fold all run."""
    out = x.copy()
    for first, mid, end, below in (("UpperArm_R", "LowerArm_R", "Hand_R", ()),
                                   ("UpperLeg_L", "LowerLeg_L", "Foot_L", ("Toes_L",))):
        j, m, e = JOINT_INDEX[first], JOINT_INDEX[mid], JOINT_INDEX[end]
        for k, t in enumerate(range(start, start + frames)):
            sign = 1.0 if k < frames // 2 else -1.0
            moved = x[t, j] + sign * 0.12 * (x[t, e] - x[t, j])
            out[t, m] = x[t, j] + 0.15 * (x[t, m] - x[t, j])
            for b in below:  # the toe follows the ankle
                out[t, JOINT_INDEX[b]] = moved + (x[t, JOINT_INDEX[b]] - x[t, e])
            out[t, e] = moved
    return out


@pytest.fixture(scope="module")
def motions(dataset):
    """Four real test clips (at most 120 frames), non-rigid versions of them and one with a
    folded arm and leg."""
    clips = dataset.split("test")[::40][:4]
    real = [c.joints[:120].astype(np.float64) for c in clips]
    rng = np.random.default_rng(0)
    long_ = max(real, key=len)
    assert len(long_) >= 60
    return real + [non_rigid(x, rng) for x in real] + [folded(long_)]


def test_rotation_stream_equals_the_numpy_solver(motions):
    worst = 0.0
    for x in motions:
        ref = reference_stream(x, len(x))
        for size in (len(x),) + CHUNKS:
            stream = RotationStream()
            got = np.concatenate([stream.push(x[s:s + size]) for s in range(0, len(x), size)])
            assert got.shape == (len(x), NUM_JOINTS, 4) and got.dtype == np.float32
            assert (got[..., 3] >= 0).all()
            worst = max(worst, quat_gap(got, ref), quat_gap(got, reference_stream(x, size)))
    print(f"\nRotationStream vs numpy causal solver: max quaternion gap {worst:.2e}")
    assert worst < TOL


@pytest.mark.parametrize("smoothing, lift", [(SMOOTHING, True), (0.0, False)])
def test_projection_equals_the_numpy_reference(motions, smoothing, lift):
    """Whole motions and chunks of 1, 3 and 7 frames, with kept frames (a prefix and a stretch in
    the middle, as an edit keeps them): positions and rotations equal the reference's (steps 1-4;
    the step guard, step 5, is tested in tests/test_skeleton_projection.py)."""
    worst_pos = worst_rot = 0.0
    for x in motions:
        keep = np.zeros(len(x), bool)
        keep[:10] = True
        keep[50:58] = True
        for k in (None, keep):
            ref_pos, ref_rot = ReferenceProjection(k, smoothing, lift).apply(x)
            whole_pos, whole_rot = SkeletonProjection(keep=k, smoothing=smoothing, lift=lift, max_step_m=None).apply(x)
            for size in CHUNKS:
                proj = SkeletonProjection(keep=k, smoothing=smoothing, lift=lift, max_step_m=None)
                parts = [proj.apply(x[s:s + size], start=s) for s in range(0, len(x), size)]
                pos, rot = np.concatenate([p for p, _ in parts]), np.concatenate([r for _, r in parts])
                assert pos.dtype == np.float32 and rot.dtype == np.float32
                np.testing.assert_array_equal(pos, whole_pos)  # state carries over chunks exactly
                np.testing.assert_array_equal(rot, whole_rot)
            if k is not None:
                np.testing.assert_array_equal(whole_pos[keep], x[keep].astype(np.float32))
            worst_pos = max(worst_pos, float(np.abs(whole_pos - ref_pos).max()))
            worst_rot = max(worst_rot, quat_gap(whole_rot, ref_rot))
            ref = ReferenceProjection(k, smoothing, lift)  # the reference in chunks as well
            parts = [ref.apply(x[s:s + 3]) for s in range(0, len(x), 3)]
            worst_pos = max(worst_pos, float(np.abs(np.concatenate([p for p, _ in parts]) - whole_pos).max()))
            worst_rot = max(worst_rot, quat_gap(np.concatenate([r for _, r in parts]), whole_rot))
    print(f"\nprojection (smoothing {smoothing}, lift {lift}) vs numpy reference: positions max "
          f"{worst_pos:.2e} m, rotations max {worst_rot:.2e}")
    assert worst_pos < TOL and worst_rot < TOL


def test_the_non_rigid_motions_reach_every_branch(motions):
    """The non-rigid motions exercise the limb branches: out-of-reach legs, nearly straight limbs;
    the folded one the arm-scale cap, the limb turn limit and clearly bent limbs opposite the
    held bend."""
    from coamd.io.bvh_export import _BACKWARDS_SINE, _REACH, ARM_SCALE_MAX, LIMB_TURN_DEG, _end_target

    f = motions[8]
    s, e, h = (JOINT_INDEX[n] for n in ("UpperArm_R", "LowerArm_R", "Hand_R"))
    arm = np.linalg.norm(f[:, e] - f[:, s], axis=-1) + np.linalg.norm(f[:, h] - f[:, e], axis=-1)
    arm_offs = np.linalg.norm(DATASET_SKELETON.offsets[e]) + np.linalg.norm(DATASET_SKELETON.offsets[h])
    assert (arm_offs / arm > ARM_SCALE_MAX).sum() >= 5
    for first, end in (("UpperArm_R", "Hand_R"), ("UpperLeg_L", "Foot_L")):
        axis = f[:, JOINT_INDEX[end]] - f[:, JOINT_INDEX[first]]
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        turn = np.degrees(np.arccos(np.clip(np.sum(axis[1:] * axis[:-1], -1), -1, 1)))
        assert turn.max() > 2 * LIMB_TURN_DEG[first]
    upper, lower = f[:, e] - f[:, s], f[:, h] - f[:, e]
    sine = np.linalg.norm(np.cross(upper, lower), axis=-1) / np.linalg.norm(upper, axis=-1) / np.linalg.norm(lower, axis=-1)
    assert (sine[30:35] > _BACKWARDS_SINE).all() and (sine[40:60] > _BACKWARDS_SINE).mean() > 0.5  # clearly bent

    x = np.concatenate(motions[4:8])
    hip, knee, ankle, toe = (JOINT_INDEX[n] for n in ("UpperLeg_L", "LowerLeg_L", "Foot_L", "Toes_L"))
    offs = DATASET_SKELETON.offsets
    reach = _REACH * (np.linalg.norm(offs[knee]) + np.linalg.norm(offs[ankle]))
    root = x[:, hip]  # about where the solver starts the thigh (FK of the fitted hips)
    foot = float(np.linalg.norm(offs[toe]))
    target = x[:, toe] - foot * (x[:, toe] - x[:, ankle]) / np.linalg.norm(x[:, toe] - x[:, ankle], axis=-1)[:, None]
    far = np.linalg.norm(target - root, axis=-1) > reach
    assert far.mean() > 0.05, far.mean()
    assert not np.allclose(_end_target(root, x[:, toe], x[:, ankle], foot, reach), target)


def test_errors_leave_the_state_unchanged(motions):
    x = motions[0]
    stream, whole = RotationStream(), RotationStream().push(x)
    stream.push(x[:5])
    bad = x[5:9].copy()
    bad[1, 4, 2] = np.inf
    with pytest.raises(BVHExportError, match="NaN or infinite"):
        stream.push(bad)
    with pytest.raises(BVHExportError, match="T >= 1"):
        stream.push(x[:0])
    with pytest.raises(BVHExportError, match="shape"):
        stream.push(x[5:9, :20])
    np.testing.assert_array_equal(stream.push(x[5:]), whole[5:])
    proj = SkeletonProjection()
    pos, rot = proj.apply(x[:0])
    assert pos.shape == (0, NUM_JOINTS, 3) and rot.shape == (0, NUM_JOINTS, 4)
    assert pos.dtype == rot.dtype == np.float32


def test_warm_up_and_lazy_numba():
    """``import coamd.runtime`` does not import numba; warm_up compiles (or loads) the kernel."""
    code = ("import sys, coamd.runtime, coamd.sampling.skeleton_projection, coamd.io.bvh_export; "
            "assert 'numba' not in sys.modules, 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert warm_up() < 1.0  # compiled already (this process ran the kernel)
