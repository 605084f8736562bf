"""Compiled per-frame kernel of the causal foot-contact cleanup (:mod:`coamd.sampling.cleanup`).

The cleanup runs on every released frame of every stream; as numpy calls on (21, 3) arrays it
cost about 0.08 ms per frame (a quarter of an unguided request's time). This module is the same
computation as one numba-compiled loop over the frames (steps 1-3 of the cleanup's module
docstring: one-pole smoothing, foot-driven root motion, foot locking with analytic two-bone IK),
a pure function ``(frames, state) -> (cleaned frames, new state)``.

State: one float64 vector (:data:`STATE_SIZE`; zeros = the start of a motion): whether a smoothed
frame exists, the last smoothed frame (21 x 3), the accumulated root correction (x, z), its
low-passed value (x, z), and per leg (left, right) whether the foot is locked, the toe's anchor
(x, z) and the last offset applied to the foot (3). Settings: ``params`` (6,) = smoothing,
root_smoothing, lock_height, unlock_height, reach, release (:class:`~coamd.sampling.cleanup.CleanupConfig`).

numba is imported with this module: import it lazily, where it is used. Compiled on first call
(cached on disk like :mod:`coamd.io.causal_solver`; :func:`coamd.sampling.skeleton_projection.warm_up`
compiles it when the runtime's engine loads).
"""
from __future__ import annotations

import math

import numpy as np

from coamd.io.causal_solver import _jit

NUM_JOINTS = 21
_SMOOTH0 = 1                        # [0]: smoothed frame set; [1:64]: the smoothed frame
_ROOT0 = _SMOOTH0 + NUM_JOINTS * 3  # root correction (x, z), then its low-passed value (x, z)
_FEET0 = _ROOT0 + 4                 # per leg: locked, anchor (x, z), offset (3)
_FOOT_SIZE = 6
STATE_SIZE = _FEET0 + 2 * _FOOT_SIZE
"""Length of the cleanup's state vector."""


@_jit
def two_bone_ik_kernel(hip, knee, ankle, target, reach):
    """See :func:`coamd.sampling.cleanup.two_bone_ik` (same arguments, (3,) float64 each)."""
    l1 = math.sqrt((knee[0] - hip[0]) ** 2 + (knee[1] - hip[1]) ** 2 + (knee[2] - hip[2]) ** 2)
    l2 = math.sqrt((ankle[0] - knee[0]) ** 2 + (ankle[1] - knee[1]) ** 2 + (ankle[2] - knee[2]) ** 2)
    v = target - hip
    d = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    if d < 1e-6 or l1 < 1e-6 or l2 < 1e-6:
        return knee.copy(), ankle.copy()
    u = v / d
    dc = min(max(d, abs(l1 - l2) + 1e-4), reach * (l1 + l2))
    ankle_new = target.copy() if dc == d else hip + u * dc
    a = (l1 * l1 - l2 * l2 + dc * dc) / (2 * dc)       # knee's projection on the hip -> ankle axis
    r = math.sqrt(max(l1 * l1 - a * a, 0.0))           # knee's distance from that axis
    kh = knee - hip
    pole = kh - u * (kh[0] * u[0] + kh[1] * u[1] + kh[2] * u[2])
    pn = math.sqrt(pole[0] ** 2 + pole[1] ** 2 + pole[2] ** 2)
    if pn < 1e-6:  # straight leg: any bend plane; take one through the forward axis
        if abs(u[0]) < 0.9:                  # u x (1, 0, 0)
            pole = np.array([0.0, u[2], -u[1]])
        else:                                # u x (0, 0, 1)
            pole = np.array([u[1], -u[0], 0.0])
        pn = math.sqrt(pole[0] ** 2 + pole[1] ** 2 + pole[2] ** 2)
    return hip + u * a + pole / pn * r, ankle_new


@_jit
def clean(joints, state, params, legs, toes, hips):
    """Clean frames ``joints`` (n, 21, 3) float64 metres, following the frames ``state`` has seen.

    ``legs`` (2, 4) int64: (hip, knee, ankle, toe) of the left and right legs; ``toes`` (2,)
    int64: the toe joints the root motion watches; ``hips``: the hips joint. Returns the cleaned
    frames (n, 21, 3) float64 and the new state (``state`` itself is not changed)."""
    smoothing, root_smoothing, lock_h, unlock_h, reach, release = (
        params[0], params[1], params[2], params[3], params[4], params[5])
    st = state.copy()
    n = joints.shape[0]
    out = np.empty_like(joints)
    prev = np.empty((NUM_JOINTS, 3))
    for t in range(n):
        x = joints[t]
        has_prev = st[0] > 0.5
        if has_prev:
            prev[:] = st[_SMOOTH0:_ROOT0].reshape(NUM_JOINTS, 3)
            cur = smoothing * prev + (1 - smoothing) * x
        else:
            cur = x.copy()
        st[0] = 1.0
        st[_SMOOTH0:_ROOT0] = cur.reshape(-1)
        if has_prev:
            wx, wz, k = 0.0, 0.0, 0
            for i in range(toes.shape[0]):
                toe = toes[i]
                if prev[toe, 1] < lock_h and cur[toe, 1] < lock_h:
                    wx += (prev[toe, 0] - prev[hips, 0]) - (cur[toe, 0] - cur[hips, 0])
                    wz += (prev[toe, 2] - prev[hips, 2]) - (cur[toe, 2] - cur[hips, 2])
                    k += 1
            if k:
                st[_ROOT0] += wx / k - (cur[hips, 0] - prev[hips, 0])
                st[_ROOT0 + 1] += wz / k - (cur[hips, 2] - prev[hips, 2])
        st[_ROOT0 + 2] = root_smoothing * st[_ROOT0 + 2] + (1 - root_smoothing) * st[_ROOT0]
        st[_ROOT0 + 3] = root_smoothing * st[_ROOT0 + 3] + (1 - root_smoothing) * st[_ROOT0 + 1]
        f = cur.copy()
        f[:, 0] += st[_ROOT0 + 2]
        f[:, 2] += st[_ROOT0 + 3]
        for leg in range(2):
            _lock(f, st, _FEET0 + leg * _FOOT_SIZE, legs[leg], lock_h, unlock_h, reach, release)
        out[t] = f
    return out, st


@_jit
def _lock(f, st, s, leg, lock_h, unlock_h, reach, release):
    """Foot locking of one leg on frame ``f`` (21, 3), in place; the foot's state at ``st[s:s+6]``."""
    hip, knee, ankle, toe = leg[0], leg[1], leg[2], leg[3]
    h = f[toe, 1]
    locked = st[s] > 0.5
    if locked and h > unlock_h:
        locked = False
    if not locked and h < lock_h:
        locked = True
        st[s + 1] = f[toe, 0] + st[s + 3]    # where the toe is shown now: no jump
        st[s + 2] = f[toe, 2] + st[s + 5]
    d = np.zeros(3)
    if locked:
        d[0] = st[s + 1] - f[toe, 0]
        d[2] = st[s + 2] - f[toe, 2]
        kh, ak = f[knee] - f[hip], f[ankle] - f[knee]
        leg_len = math.sqrt(kh[0] ** 2 + kh[1] ** 2 + kh[2] ** 2) + math.sqrt(ak[0] ** 2 + ak[1] ** 2 + ak[2] ** 2)
        e = f[ankle] + d - f[hip]
        if math.sqrt(e[0] ** 2 + e[1] ** 2 + e[2] ** 2) > reach * leg_len:
            locked = False                    # out of reach: let go, ease back
    st[s] = 1.0 if locked else 0.0
    if not locked:
        d[0], d[1], d[2] = st[s + 3] * release, st[s + 4] * release, st[s + 5] * release
        if max(abs(d[0]), abs(d[1]), abs(d[2])) < 1e-4:
            d[:] = 0.0
    if d[0] == 0.0 and d[1] == 0.0 and d[2] == 0.0:
        st[s + 3], st[s + 4], st[s + 5] = 0.0, 0.0, 0.0
        return
    k_new, a_new = two_bone_ik_kernel(f[hip].copy(), f[knee].copy(), f[ankle].copy(), f[ankle] + d, reach)
    moved = a_new - f[ankle]
    f[knee] = k_new
    f[ankle] = a_new
    f[toe] = f[toe] + moved
    st[s + 3], st[s + 4], st[s + 5] = moved[0], moved[1], moved[2]


__all__ = ["STATE_SIZE", "clean", "two_bone_ik_kernel"]
