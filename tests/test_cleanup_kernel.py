"""The cleanup's compiled kernel equals the numpy implementation it replaced, on real clips.

``ReferenceCleanup`` below is that former implementation (coamd/sampling/cleanup.py before the
kernel), kept here as the specification the kernel is checked against.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from coamd.sampling.cleanup import LEGS, CleanupConfig, MotionCleanup, clean_motion, two_bone_ik
from coamd.skeleton import JOINT_INDEX, TOE_JOINTS

HIPS = JOINT_INDEX["Hips"]
_XZ = [0, 2]


def ref_two_bone_ik(hip, knee, ankle, target, reach=0.995):
    l1 = float(np.linalg.norm(knee - hip))
    l2 = float(np.linalg.norm(ankle - knee))
    v = target - hip
    d = float(np.linalg.norm(v))
    if d < 1e-6 or l1 < 1e-6 or l2 < 1e-6:
        return knee.copy(), ankle.copy()
    u = v / d
    dc = min(max(d, abs(l1 - l2) + 1e-4), reach * (l1 + l2))
    ankle_new = target.copy() if dc == d else hip + u * dc
    a = (l1 * l1 - l2 * l2 + dc * dc) / (2 * dc)
    r = float(np.sqrt(max(l1 * l1 - a * a, 0.0)))
    pole = (knee - hip) - u * float(np.dot(knee - hip, u))
    pn = float(np.linalg.norm(pole))
    if pn < 1e-6:
        pole = np.cross(u, [1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.cross(u, [0.0, 0.0, 1.0])
        pn = float(np.linalg.norm(pole))
    return hip + u * a + pole / pn * r, ankle_new


@dataclass
class _Foot:
    locked: bool = False
    anchor: np.ndarray = field(default_factory=lambda: np.zeros(2))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))


class ReferenceCleanup:
    def __init__(self, config=None):
        self.config = config or CleanupConfig()
        self._smooth = None
        self._root = np.zeros(2)
        self._root_lp = np.zeros(2)
        self._feet = [_Foot(), _Foot()]

    def apply(self, joints):
        j = np.asarray(joints, dtype=np.float64)
        return np.stack([self._frame(x) for x in j]).astype(np.float32)

    def _frame(self, x):
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
                wanted = (rel_prev - rel_cur)[contact].mean(0)
                self._root += wanted - (cur[HIPS, _XZ] - prev[HIPS, _XZ])
        self._root_lp = c.root_smoothing * self._root_lp + (1 - c.root_smoothing) * self._root
        f = cur.copy()
        f[:, _XZ] += self._root_lp
        for foot, leg in zip(self._feet, LEGS):
            self._lock(foot, leg, f)
        return f

    def _lock(self, foot, leg, f):
        c = self.config
        hip, knee, ankle, toe = leg
        h = f[toe, 1]
        if foot.locked and h > c.unlock_height:
            foot.locked = False
        if not foot.locked and h < c.lock_height:
            foot.locked = True
            foot.anchor = f[toe, _XZ] + foot.offset[_XZ]
        d = np.zeros(3)
        if foot.locked:
            d[_XZ] = foot.anchor - f[toe, _XZ]
            leg_len = np.linalg.norm(f[knee] - f[hip]) + np.linalg.norm(f[ankle] - f[knee])
            if np.linalg.norm(f[ankle] + d - f[hip]) > c.reach * leg_len:
                foot.locked = False
        if not foot.locked:
            d = foot.offset * c.release
            if np.abs(d).max() < 1e-4:
                d = np.zeros(3)
        if not d.any():
            foot.offset = d
            return
        k_new, a_new = ref_two_bone_ik(f[hip], f[knee], f[ankle], f[ankle] + d, c.reach)
        moved = a_new - f[ankle]
        f[knee], f[ankle], f[toe] = k_new, a_new, f[toe] + moved
        foot.offset = moved


@pytest.fixture(scope="module")
def motions(dataset):
    """Real test clips (every 25th, at most 8 s), each also drifting sideways and shaking
    (skating feet for the root motion and the locks to act on)."""
    rng = np.random.default_rng(0)
    out = []
    for c in dataset.split("test")[::25]:
        j = c.joints[:160].astype(np.float64)
        out.append(j)
        k = j.copy()
        k[..., 0] += 0.5 * np.arange(len(j))[:, None] / 20.0
        out.append(k + rng.normal(0.0, 0.01, k.shape))
    assert len(out) >= 40
    return out


@pytest.mark.parametrize("cfg", [CleanupConfig(), CleanupConfig(smoothing=0.0, release=0.5, reach=0.9)])
def test_kernel_equals_the_numpy_reference(motions, cfg):
    worst = 0.0
    for m in motions:
        ref = ReferenceCleanup(cfg).apply(m)
        worst = max(worst, float(np.abs(clean_motion(m, cfg) - ref).max()))
        cl = MotionCleanup(cfg)
        parts = np.concatenate([cl.apply(m[s:s + 3]) for s in range(0, len(m), 3)])
        np.testing.assert_array_equal(parts, clean_motion(m, cfg))
    assert worst < 1e-5, worst


def test_two_bone_ik_equals_the_reference_including_straight_legs(motions):
    rng = np.random.default_rng(1)
    hip_i, knee_i, ankle_i, _ = LEGS[0]
    for m in motions[:10]:
        f = m[20]
        for target in (f[ankle_i] + rng.normal(0, 0.1, 3), f[hip_i] + 3.0 * (f[ankle_i] - f[hip_i])):
            k, a = two_bone_ik(f[hip_i], f[knee_i], f[ankle_i], target)
            rk, ra = ref_two_bone_ik(f[hip_i], f[knee_i], f[ankle_i], target)
            np.testing.assert_allclose(k, rk, atol=1e-12)
            np.testing.assert_allclose(a, ra, atol=1e-12)
    hip, ankle = np.zeros(3), np.array([0.0, -0.8, 0.0])
    knee = np.array([0.0, -0.4, 0.0])                       # straight leg: the pole is chosen
    k, a = two_bone_ik(hip, knee, ankle, np.array([0.0, -0.7, 0.1]))
    rk, ra = ref_two_bone_ik(hip, knee, ankle, np.array([0.0, -0.7, 0.1]))
    np.testing.assert_allclose(k, rk, atol=1e-12)
    np.testing.assert_allclose(a, ra, atol=1e-12)


def test_a_failed_call_leaves_the_state_alone(motions):
    m = motions[1]
    cl = MotionCleanup()
    cl.apply(m[:30])
    bad = m[30:40].copy()
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cl.apply(bad)
    np.testing.assert_array_equal(cl.apply(m[30:60]), clean_motion(m[:60])[30:60])
