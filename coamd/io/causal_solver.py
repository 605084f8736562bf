"""Compiled causal solver: streamed joint positions -> local rotations on a fixed skeleton.

Streams release one to eight frames per call, where numpy's per-call overhead (about 1.5 ms per
chunk whatever its size) doubled the runtime's time to first frame. This module is the per-frame
kernel of both stream solvers, compiled with numba (the whole skeleton projection: about 0.01 ms
per call of one frame, 0.03 ms for four, 0.13 ms for twenty on the 2-core AMD EPYC box;
``python -m benchmarks.skeleton_validity --timing-only``):

* :class:`coamd.io.bvh_export.RotationStream` (raw-mode streams): positions -> local rotations;
* :class:`coamd.sampling.skeleton_projection.SkeletonProjection` (every default stream): the
  body lift, the rotations, the one-pole low-pass of some joints' rotations and forward
  kinematics on the rest offsets, with an edit's kept frames.

Per frame and in order it does what the causal form of the numpy solver
(:func:`coamd.io.bvh_export.solve_rotations` with a ``twist_state`` dict, now kept as the
reference the tests compare with) does: Kabsch fits for the joints with several children (hips,
chest), the observed bone for :data:`~coamd.io.bvh_export.FOLLOW_BONE`, the limbs of
:data:`~coamd.io.bvh_export.LIMBS` (held bend direction, two-bone IK of the arms onto the
observed arm scaled to the skeleton's and of the legs onto the observed toe and foot line, the
first bone's turn per frame limited), the held twist of :data:`~coamd.io.bvh_export.TWIST_HINTS`, the
typical rotation of the leaves; then rotation matrix -> quaternion (x, y, z, w), w >= 0, as
:func:`coamd.io.rotations.matrix_to_quat`. Results equal the numpy reference to float rounding
(``tests/test_causal_solver.py``).

All causal state (held twists, held bend directions and limb axes, the lift, the last low-passed
quaternions, whether each is set yet) is one float64 vector owned by :class:`CausalSolver`; the
kernel is a pure function ``(state, frames) -> (positions, rotations, new state)``. Every table
the kernel reads (hierarchy and rules, :class:`SolverTables`; bone lengths; thresholds) is passed
in, so the compiled code depends on this file alone, and this module imports nothing of coamd
(:func:`coamd.io.bvh_export.stream_solver` builds a solver from that module's rules).

Compilation: the kernel compiles on its first call (about 5 s on a cold cache; cached on disk in
``__pycache__`` next to this file, or in numba's user cache folder, for later processes).
:func:`coamd.sampling.skeleton_projection.warm_up` triggers it, and
:func:`coamd.runtime.load_engine` calls that, so that no request pays it. Where no cache location
is writable (a read-only install without a user cache folder) it compiles in memory, per process.
numba is imported with this module; import it only where it is used (lazily).
"""
from __future__ import annotations

import copy
import math
from typing import NamedTuple

import numba
import numpy as np


def _jit(fn):
    """``numba.njit(cache=True)``, or without the on-disk cache where no location is writable."""
    try:
        return numba.njit(cache=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(fn)


# ----------------------------------------------------------------------------- tables
# joint kinds (the branches of solve_rotations, in its order of tests)
_KABSCH, _LIMB, _ONE, _LEAF = 0, 1, 2, 3
# columns of the (J, 14) int64 structure table
(_C_PARENT, _C_KIND, _C_KID0, _C_KID1, _C_KID2, _C_NKIDS, _C_FOLLOW, _C_TWIST, _C_SRC, _C_DST,
 _C_MID, _C_END, _C_TIP, _C_SLOT) = range(14)
_POLE_SIZE = 10  # per limb: held (0/1), pole (3), limb axis (3), first bone's direction (3)


class SolverTables(NamedTuple):
    """The solver's rules for one joint hierarchy, as arrays the kernel reads (built by
    :func:`solver_tables`; :func:`coamd.io.bvh_export.stream_solver` builds them from its constants)."""

    struct: np.ndarray      # (J, 14) int64, columns _C_*
    typical: np.ndarray     # (J, 3, 3) typical local rotations
    rest_dir: np.ndarray    # (J, 3) unit rest directions of the offsets
    hints: np.ndarray       # (J, 3) twist-hint directions in the joint's frame (zeros: none)
    share: np.ndarray       # (J,) share of the measured twist a joint takes
    rate: np.ndarray        # (J, 2) fastest turn of a limb's bend direction and of its first bone,
                            # radians per frame
    params: np.ndarray      # (5,) twist unsure / sure sine, reach (fraction of the limb's length),
                            # largest sine of a bend read as the limb bent backwards, largest
                            # scale of an observed arm without a tip
    n_twist: int            # twist slots in the state
    n_limb: int             # limbs (pole slots) in the state


def solver_tables(names, parents, follow_bone, limbs, twist_hints, pole_rate_deg, turn_deg, typical, rest_dir,
                  twist_unsure: float, twist_sure: float, reach: float, backwards: float,
                  arm_scale: float) -> SolverTables:
    """Arrays of a hierarchy's solving rules (the branches of
    :func:`coamd.io.bvh_export.solve_rotations`).

    Args:
        names: (J,) joint names; parents: (J,) parent indices (-1 for the root), parents first.
        follow_bone: names of one-child joints aimed along the observed bone.
        limbs: first joint -> (middle, end, tip or None) names; twist_hints: joint -> (from, to,
            direction (3,), share); pole_rate_deg: limb -> degrees per frame; turn_deg: limb ->
            fastest turn of its first bone, degrees per frame.
        typical: (J, 3, 3) typical local rotations; rest_dir: (J, 3) unit offset directions.
        twist_unsure, twist_sure: sines of the bend below which a twist is held and above which it
            is measured; reach: a limb's largest reach as a fraction of its length; backwards: the
            sine of the bend above which an observed bend opposite the held one is taken as real
            (the pole turns towards it) rather than as the limb bent backwards; arm_scale: the
            largest factor by which a limb without a tip (an arm) is scaled to the skeleton's
            length (its end's target: the observed first joint -> end vector, scaled, from where
            forward kinematics put the first joint).
    Raises:
        ValueError: a joint with more than three children.
    """
    J = len(names)
    index = {n: i for i, n in enumerate(names)}
    struct = np.full((J, 14), -1, np.int64)
    hints = np.zeros((J, 3))
    share = np.zeros(J)
    rate = np.zeros((J, 2))
    twists = n_limb = 0
    for j, name in enumerate(names):
        kids = [c for c in range(J) if parents[c] == j]
        if len(kids) > 3:
            raise ValueError(f"{name}: at most 3 children are supported, got {len(kids)}")
        struct[j, _C_PARENT] = parents[j]
        struct[j, _C_KID0: _C_KID0 + len(kids)] = kids
        struct[j, _C_NKIDS] = len(kids)
        struct[j, _C_FOLLOW] = int(name in follow_bone)
        if name in twist_hints:
            src, dst, hint, sh = twist_hints[name]
            hints[j], share[j] = hint, sh
            struct[j, _C_SRC], struct[j, _C_DST] = index[src], index[dst]
        if len(kids) >= 2:
            struct[j, _C_KIND] = _KABSCH
        elif name in limbs:
            mid, end, tip = limbs[name]
            struct[j, _C_KIND] = _LIMB
            struct[j, _C_MID], struct[j, _C_END] = index[mid], index[end]
            struct[j, _C_TIP] = index[tip] if tip is not None else -1
            struct[j, _C_SLOT] = n_limb
            rate[j] = math.radians(pole_rate_deg[name]), math.radians(turn_deg[name])
            n_limb += 1
        elif len(kids) == 1:
            struct[j, _C_KIND] = _ONE
            if name in twist_hints:
                struct[j, _C_TWIST] = twists
                twists += 1
        else:
            struct[j, _C_KIND] = _LEAF
    return SolverTables(struct, np.ascontiguousarray(typical, dtype=np.float64),
                        np.ascontiguousarray(rest_dir, dtype=np.float64), hints, share, rate,
                        np.array([twist_unsure, twist_sure, reach, backwards, arm_scale], np.float64), twists,
                        n_limb)


_NO_LEGS = np.zeros((0, 3), np.int64)
_NO_SMOOTHED = np.zeros(0, np.int64)


# ----------------------------------------------------------------------------- small vector algebra
# 3-vectors are tuples (x, y, z); 3x3 matrices are row-major 9-tuples (no allocation per op).
@_jit
def _vec(a, i):
    return (a[i, 0], a[i, 1], a[i, 2])


@_jit
def _mat(a, i):
    return (a[i, 0, 0], a[i, 0, 1], a[i, 0, 2], a[i, 1, 0], a[i, 1, 1], a[i, 1, 2], a[i, 2, 0], a[i, 2, 1], a[i, 2, 2])


@_jit
def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


@_jit
def _add(a, b):
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


@_jit
def _scale(s, a):
    return (s * a[0], s * a[1], s * a[2])


@_jit
def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


@_jit
def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


@_jit
def _norm(a):
    return math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])


@_jit
def _normalize(a):
    """(unit vector, norm); a zero vector stays zero (coamd.io.rotations.normalize)."""
    n = _norm(a)
    m = max(n, 1e-9)
    return (a[0] / m, a[1] / m, a[2] / m), n


@_jit
def _mv(A, v):
    return (A[0] * v[0] + A[1] * v[1] + A[2] * v[2],
            A[3] * v[0] + A[4] * v[1] + A[5] * v[2],
            A[6] * v[0] + A[7] * v[1] + A[8] * v[2])


@_jit
def _mm(A, B):
    return (A[0] * B[0] + A[1] * B[3] + A[2] * B[6], A[0] * B[1] + A[1] * B[4] + A[2] * B[7],
            A[0] * B[2] + A[1] * B[5] + A[2] * B[8],
            A[3] * B[0] + A[4] * B[3] + A[5] * B[6], A[3] * B[1] + A[4] * B[4] + A[5] * B[7],
            A[3] * B[2] + A[4] * B[5] + A[5] * B[8],
            A[6] * B[0] + A[7] * B[3] + A[8] * B[6], A[6] * B[1] + A[7] * B[4] + A[8] * B[7],
            A[6] * B[2] + A[7] * B[5] + A[8] * B[8])


@_jit
def _mtm(A, B):
    """A^T @ B."""
    return (A[0] * B[0] + A[3] * B[3] + A[6] * B[6], A[0] * B[1] + A[3] * B[4] + A[6] * B[7],
            A[0] * B[2] + A[3] * B[5] + A[6] * B[8],
            A[1] * B[0] + A[4] * B[3] + A[7] * B[6], A[1] * B[1] + A[4] * B[4] + A[7] * B[7],
            A[1] * B[2] + A[4] * B[5] + A[7] * B[8],
            A[2] * B[0] + A[5] * B[3] + A[8] * B[6], A[2] * B[1] + A[5] * B[4] + A[8] * B[7],
            A[2] * B[2] + A[5] * B[5] + A[8] * B[8])


@_jit
def _axis_angle(axis, angle):
    """Rodrigues (coamd.io.rotations.axis_angle_matrix): unit axis, radians -> 9-tuple."""
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    C = 1.0 - c
    return (c + x * x * C, x * y * C - z * s, x * z * C + y * s,
            y * x * C + z * s, c + y * y * C, y * z * C - x * s,
            z * x * C - y * s, z * y * C + x * s, c + z * z * C)


@_jit
def _perpendicular(u):
    """A unit vector perpendicular to unit u: u x the axis of u's smallest component (the first
    of equal ones), as coamd.io.rotations.swing picks it for opposite vectors."""
    au, bu, cu = abs(u[0]), abs(u[1]), abs(u[2])
    if au <= bu and au <= cu:
        helper = (1.0, 0.0, 0.0)
    elif bu <= cu:
        helper = (0.0, 1.0, 0.0)
    else:
        helper = (0.0, 0.0, 1.0)
    return _normalize(_cross(u, helper))[0]


@_jit
def _swing(u, v):
    """Smallest rotation taking unit u onto unit v (coamd.io.rotations.swing)."""
    c = _cross(u, v)
    sin = _norm(c)
    cos = _dot(u, v)
    axis = _scale(1.0 / max(sin, 1e-9), c)
    if sin < 1e-8 and cos < 0:  # opposite: about a perpendicular of u
        axis = _perpendicular(u)
    return _axis_angle(axis, math.atan2(sin, cos))


@_jit
def _signed_angle(a, b, axis):
    """Angle from a to b about unit axis, both projected across it (coamd.io.rotations.signed_angle)."""
    a = _sub(a, _scale(_dot(a, axis), axis))
    b = _sub(b, _scale(_dot(b, axis), axis))
    return math.atan2(_dot(_cross(a, b), axis), _dot(a, b))


@_jit
def _det3(A):
    return (A[0, 0] * (A[1, 1] * A[2, 2] - A[1, 2] * A[2, 1]) - A[0, 1] * (A[1, 0] * A[2, 2] - A[1, 2] * A[2, 0])
            + A[0, 2] * (A[1, 0] * A[2, 1] - A[1, 1] * A[2, 0]))


@_jit
def _kabsch(H):
    """Proper rotation maximising trace(R^T sum_k target_k rest_k^T) for H = sum_k rest_k target_k^T
    (3, 3) (coamd.io.rotations.kabsch, reflections included): V diag(1, 1, d) U^T, 9-tuple."""
    U, _, Vt = np.linalg.svd(H)
    d = -1.0 if _det3(Vt) * _det3(U) < 0 else 1.0  # sign of det(V U^T)
    return (Vt[0, 0] * U[0, 0] + Vt[1, 0] * U[0, 1] + d * Vt[2, 0] * U[0, 2],
            Vt[0, 0] * U[1, 0] + Vt[1, 0] * U[1, 1] + d * Vt[2, 0] * U[1, 2],
            Vt[0, 0] * U[2, 0] + Vt[1, 0] * U[2, 1] + d * Vt[2, 0] * U[2, 2],
            Vt[0, 1] * U[0, 0] + Vt[1, 1] * U[0, 1] + d * Vt[2, 1] * U[0, 2],
            Vt[0, 1] * U[1, 0] + Vt[1, 1] * U[1, 1] + d * Vt[2, 1] * U[1, 2],
            Vt[0, 1] * U[2, 0] + Vt[1, 1] * U[2, 1] + d * Vt[2, 1] * U[2, 2],
            Vt[0, 2] * U[0, 0] + Vt[1, 2] * U[0, 1] + d * Vt[2, 2] * U[0, 2],
            Vt[0, 2] * U[1, 0] + Vt[1, 2] * U[1, 1] + d * Vt[2, 2] * U[1, 2],
            Vt[0, 2] * U[2, 0] + Vt[1, 2] * U[2, 1] + d * Vt[2, 2] * U[2, 2])


@_jit
def _quat(R):
    """Rotation 9-tuple -> unit quaternion (x, y, z, w), w >= 0 (SciPy's from_matrix, as
    coamd.io.rotations.matrix_to_quat)."""
    tr = R[0] + R[4] + R[8]
    decision = (R[0], R[4], R[8], tr)  # SciPy's argmax over them: the first of equal maxima
    choice = 0
    for i in range(1, 4):
        if decision[i] > decision[choice]:
            choice = i
    if choice == 0:
        q = (1.0 - tr + 2.0 * R[0], R[3] + R[1], R[6] + R[2], R[7] - R[5])
    elif choice == 1:
        q = (R[3] + R[1], 1.0 - tr + 2.0 * R[4], R[7] + R[5], R[2] - R[6])
    elif choice == 2:
        q = (R[6] + R[2], R[7] + R[5], 1.0 - tr + 2.0 * R[8], R[3] - R[1])
    else:
        q = (R[7] - R[5], R[2] - R[6], R[3] - R[1], 1.0 + tr)
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    s = -1.0 / n if q[3] < 0 else 1.0 / n
    return (q[0] * s, q[1] * s, q[2] * s, q[3] * s)


@_jit
def _quat_matrix(x, y, z, w):
    """Quaternion (normalised here, as SciPy's from_quat) -> rotation 9-tuple."""
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    x2, y2, z2, w2 = x * x, y * y, z * z, w * w
    xy, zw, xz, yw, yz, xw = x * y, z * w, x * z, y * w, y * z, x * w
    return (x2 - y2 - z2 + w2, 2.0 * (xy - zw), 2.0 * (xz + yw),
            2.0 * (xy + zw), -x2 + y2 - z2 + w2, 2.0 * (yz - xw),
            2.0 * (xz - yw), 2.0 * (yz + xw), -x2 - y2 + z2 + w2)


@_jit
def _wrap_pi(x):
    """Angle wrapped to (-pi, pi] (numpy's angle of exp(1j x))."""
    return math.atan2(math.sin(x), math.cos(x))


@_jit
def _wrap(angle):
    """Angle wrapped to [-pi, pi) (coamd.io.bvh_export._wrap)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


@_jit
def _sureness(sine, unsure, sure):
    return min(max((sine - unsure) / (sure - unsure), 0.0), 1.0)


# ----------------------------------------------------------------------------- solver steps
@_jit
def _end_target(root, tip, end, foot, reach):
    """Where a leg's end goes so that its tip lands on ``tip`` (coamd.io.bvh_export._end_target)."""
    target = _sub(tip, _scale(foot, _normalize(_sub(tip, end))[0]))
    if not _norm(_sub(target, root)) > reach:
        return target
    c, dc = _normalize(_sub(tip, root))
    along = (reach * reach - foot * foot + dc * dc) / (2.0 * max(dc, 1e-9))
    radius2 = reach * reach - along * along
    centre = _add(root, _scale(along, c))
    side = _sub(target, centre)
    side, n = _normalize(_sub(side, _scale(_dot(side, c), c)))
    if radius2 > 0 and n > 1e-9:
        return _add(centre, _scale(math.sqrt(max(radius2, 0.0)), side))
    return target


@_jit
def _hold_pole(k_ref, k_obs, d, sine, st, base, rate, unsure, sure, backwards):
    """One frame of coamd.io.bvh_export._hold_pole: the held pole carried along with the limb
    axis d, turned towards the observed one; reads and updates the limb's state st[base:base + 7]."""
    w = _sureness(sine, unsure, sure)
    dx, dy, dz = d
    held = st[base] != 0.0
    if not held:
        kx, ky, kz = k_ref
    else:
        kx, ky, kz = st[base + 1], st[base + 2], st[base + 3]
        px, py, pz = st[base + 4], st[base + 5], st[base + 6]
        c = px * dx + py * dy + pz * dz
        if c > -0.999999:  # carry the held pole by the smallest rotation prev axis -> d
            ax, ay, az = py * dz - pz * dy, pz * dx - px * dz, px * dy - py * dx
            cx, cy, cz = ay * kz - az * ky, az * kx - ax * kz, ax * ky - ay * kx
            ex, ey, ez = ay * cz - az * cy, az * cx - ax * cz, ax * cy - ay * cx
            kx, ky, kz = kx + cx + ex / (1.0 + c), ky + cy + ey / (1.0 + c), kz + cz + ez / (1.0 + c)
    s = kx * dx + ky * dy + kz * dz  # across the axis, unit length
    kx, ky, kz = kx - s * dx, ky - s * dy, kz - s * dz
    n = max(math.sqrt(kx * kx + ky * ky + kz * kz), 1e-12)
    kx, ky, kz = kx / n, ky / n, kz / n
    ox, oy, oz = k_obs
    s = ox * dx + oy * dy + oz * dz
    ox, oy, oz = ox - s * dx, oy - s * dy, oz - s * dz
    sin_d = (ky * oz - kz * oy) * dx + (kz * ox - kx * oz) * dy + (kx * oy - ky * ox) * dz
    delta = math.atan2(sin_d, kx * ox + ky * oy + kz * oz)
    if abs(delta) > math.pi / 2 and sine < backwards:  # the limb bent backwards, not a half turn
        delta = _wrap(delta + math.pi)
    limit = rate if held else math.pi  # a motion's first frame: no limit
    ang = w * max(-limit, min(limit, delta))
    ca, sa = math.cos(ang), math.sin(ang)
    bx, by, bz = dy * kz - dz * ky, dz * kx - dx * kz, dx * ky - dy * kx
    kx, ky, kz = ca * kx + sa * bx, ca * ky + sa * by, ca * kz + sa * bz
    n = max(math.sqrt(kx * kx + ky * ky + kz * kz), 1e-12)
    k = (kx / n, ky / n, kz / n)
    st[base] = 1.0
    st[base + 1], st[base + 2], st[base + 3] = k
    st[base + 4], st[base + 5], st[base + 6] = dx, dy, dz
    return k


@_jit
def _limit_turn(u, v, limit):
    """Unit v, turned from unit u by at most ``limit`` radians (coamd.io.bvh_export._limit_turn)."""
    c = _dot(u, v)
    if c >= math.cos(limit):
        return v
    w, n = _normalize(_sub(v, _scale(c, u)))
    if n < 1e-9:  # opposite: towards a perpendicular of u
        w = _perpendicular(u)
    return _add(_scale(math.cos(limit), u), _scale(math.sin(limit), w))


@_jit
def _limb(j, row, ref, root, p, offs, typical, rest_dir, hint, rate, turn, st, base, params):
    """One frame of coamd.io.bvh_export._limb_rotation in its causal form: (global rotation of
    the limb's first joint, the point its middle joint's bone aims at)."""
    unsure, sure, reach_frac = params[0], params[1], params[2]
    had = st[base] != 0.0  # not the motion's first frame
    mid, end, tip = row[_C_MID], row[_C_END], row[_C_TIP]
    o_mid, o_end = _vec(offs, mid), _vec(offs, end)
    l1, l2 = _norm(o_mid), _norm(o_end)
    if tip >= 0:
        target = _end_target(root, _vec(p, tip), _vec(p, end), _norm(_vec(offs, tip)), reach_frac * (l1 + l2))
    else:  # the observed arm scaled to the skeleton's length (at most params[4]), from the solved joint
        pj0, pm0, pe0 = _vec(p, j), _vec(p, mid), _vec(p, end)
        obs = _norm(_sub(pm0, pj0)) + _norm(_sub(pe0, pm0))
        target = _add(root, _scale(min((l1 + l2) / max(obs, 1e-9), params[4]), _sub(pe0, pj0)))
    end_loc = _add(o_mid, _mv(_mat(typical, mid), o_end))
    u_loc = _normalize(end_loc)[0]
    k_loc = _normalize(_sub(o_mid, _scale(_dot(o_mid, u_loc), u_loc)))[0]
    d, dist = _normalize(_sub(target, root))
    k_ref = _mv(_swing(_mv(ref, u_loc), d), _mv(ref, k_loc))
    pj, pm, pe = _vec(p, j), _vec(p, mid), _vec(p, end)
    upper, lower = _sub(pm, pj), _sub(pe, pm)
    axis_obs = _normalize(_sub(pe, pj))[0]
    k_obs = _sub(upper, _scale(_dot(upper, axis_obs), axis_obs))
    sine = _norm(_cross(_normalize(upper)[0], _normalize(lower)[0]))
    k = _hold_pole(k_ref, k_obs, d, sine, st, base, rate, unsure, sure, params[3])
    # two-bone IK with the fixed lengths (law of cosines)
    reach = min(max(dist, abs(l1 - l2) + 1e-6), reach_frac * (l1 + l2))
    along = (l1 * l1 - l2 * l2 + reach * reach) / (2.0 * reach)
    out = math.sqrt(max(l1 * l1 - along * along, 0.0))
    a = _normalize(_add(_scale(along, d), _scale(out, k)))[0]
    if had:
        a = _limit_turn((st[base + 7], st[base + 8], st[base + 9]), a, turn)
    st[base + 7], st[base + 8], st[base + 9] = a
    base_rot = _mm(_swing(_mv(ref, _vec(rest_dir, mid)), a), ref)
    h = _mv(base_rot, hint)
    side = _scale(-1.0, _sub(k, _scale(_dot(k, a), a)))
    return _mm(_axis_angle(a, _signed_angle(h, side, a)), base_rot), target


@_jit
def _solve_frame(p, offs, struct, typical, rest_dir, hints, share, rates, st, twist0, pole0, params,
                 G, P, aim, H, q):
    """Rotations of one frame (coamd.io.bvh_export.solve_rotations, causal form): p (J, 3)
    observed positions; fills G (J, 9) global rotations, P (J, 3) where FK put the joints and q
    (J, 4) local quaternions; updates the twist and pole state in st."""
    unsure, sure = params[0], params[1]
    nj = p.shape[0]
    P[0, 0], P[0, 1], P[0, 2] = p[0, 0], p[0, 1], p[0, 2]
    eye = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    for j in range(nj):  # parents come before children
        row = struct[j]
        par = row[_C_PARENT]
        parent_rot = eye
        if par >= 0:
            parent_rot = (G[par, 0], G[par, 1], G[par, 2], G[par, 3], G[par, 4], G[par, 5],
                          G[par, 6], G[par, 7], G[par, 8])
        ref = _mm(parent_rot, _mat(typical, j))
        kind = row[_C_KIND]
        Pj = _vec(P, j)
        if kind == _KABSCH:
            for a in range(3):
                for b in range(3):
                    H[a, b] = 0.0
            for i in range(row[_C_NKIDS]):
                c = row[_C_KID0 + i]
                for a in range(3):
                    for b in range(3):
                        H[a, b] += offs[c, a] * (p[c, b] - Pj[b])
            rot = _kabsch(H)
        elif kind == _LIMB:
            rot, target = _limb(j, row, ref, Pj, p, offs, typical, rest_dir, _vec(hints, j), rates[j, 0], rates[j, 1], st,
                                pole0 + _POLE_SIZE * row[_C_SLOT], params)
            mid = row[_C_MID]
            aim[mid, 0], aim[mid, 1], aim[mid, 2] = target
            aim[mid, 3] = 1.0
        elif kind == _ONE:
            c = row[_C_KID0]
            goal = _vec(p, c)
            if aim[j, 3] != 0.0:
                goal = (aim[j, 0], aim[j, 1], aim[j, 2])
            start = _vec(p, j) if row[_C_FOLLOW] != 0 else Pj
            a = _normalize(_sub(goal, start))[0]
            a0 = _mv(ref, _vec(rest_dir, c))
            rot = _mm(_swing(a0, a), ref)
            slot = row[_C_TWIST]
            if slot >= 0:
                b = _normalize(_sub(_vec(p, row[_C_DST]), _vec(p, row[_C_SRC])))[0]
                sine = _norm(_cross(a, b))
                measured = _signed_angle(_mv(rot, _vec(hints, j)), b, a)
                held = st[twist0 + slot]  # _hold_twist, one frame
                w = _sureness(sine, unsure, sure)
                dd = _wrap_pi(measured - held)
                if w < 1.0 and abs(dd) > math.pi / 2:  # hyperextension
                    dd = _wrap_pi(dd + math.pi)
                held = held + w * dd
                st[twist0 + slot] = held
                rot = _mm(_axis_angle(a, share[j] * held), rot)
        else:
            rot = ref
        for i in range(9):
            G[j, i] = rot[i]
        for i in range(row[_C_NKIDS]):
            c = row[_C_KID0 + i]
            off = _mv(rot, _vec(offs, c))
            P[c, 0], P[c, 1], P[c, 2] = Pj[0] + off[0], Pj[1] + off[1], Pj[2] + off[2]
        local = rot
        if par >= 0:
            local = _mtm(parent_rot, rot)
        q[j, 0], q[j, 1], q[j, 2], q[j, 3] = _quat(local)


@_jit
def _solve(joints, kept, state, offs, lengths, struct, typical, rest_dir, hints, share, rates, layout, params,
           legs, above, smoothed, smoothing, fk):
    """The kernel: frames (T, J, 3) float64 and kept (T,) bool, state -> (positions (T, J, 3)
    float32, or (0, J, 3) without ``fk``; rotations (T, J, 4) float32; new state)."""
    T, nj = joints.shape[0], joints.shape[1]
    twist0, pole0, lift0, smooth0 = layout[0], layout[1], layout[2], layout[3]
    lift_frames, lift_limit = params[5], params[6]
    st = state.copy()
    rot = np.empty((T, nj, 4), np.float32)
    pos = np.empty((T if fk else 0, nj, 3), np.float32)
    p = np.empty((nj, 3))
    G = np.empty((nj, 9))
    P = np.empty((nj, 3))
    aim = np.zeros((nj, 4))  # target (3), set (0/1)
    H = np.empty((3, 3))
    q = np.empty((nj, 4))
    for t in range(T):
        for j in range(nj):
            for a in range(3):
                p[j, a] = joints[t, j, a]
        if legs.shape[0] > 0:  # the body's lift above the legs
            deficit = 0.0
            for leg in range(legs.shape[0]):
                hip, knee, ankle = legs[leg, 0], legs[leg, 1], legs[leg, 2]
                thigh = _norm(_sub(_vec(p, knee), _vec(p, hip)))
                shin = _norm(_sub(_vec(p, ankle), _vec(p, knee)))
                limb = _sub(_vec(p, ankle), _vec(p, hip))
                down = max(-limb[1] / max(_norm(limb), 1e-9), 0.0)
                deficit += 0.5 * (lengths[knee] + lengths[ankle] - thigh - shin) * down
            lift = deficit if st[lift0] == 0.0 else st[lift0 + 1] + (deficit - st[lift0 + 1]) / lift_frames
            lift = min(max(lift, -lift_limit), lift_limit)
            st[lift0], st[lift0 + 1] = 1.0, lift
            if not kept[t]:
                for j in range(nj):
                    if above[j]:
                        p[j, 1] += lift
        _solve_frame(p, offs, struct, typical, rest_dir, hints, share, rates, st, twist0, pole0, params,
                     G, P, aim, H, q)
        if smoothing > 0:  # one-pole low-pass, restarted by kept frames
            held = st[smooth0] != 0.0
            for m in range(smoothed.shape[0]):
                j = smoothed[m]
                b = smooth0 + 1 + 4 * m
                cx, cy, cz, cw = q[j, 0], q[j, 1], q[j, 2], q[j, 3]
                if held and not kept[t]:
                    if st[b] * cx + st[b + 1] * cy + st[b + 2] * cz + st[b + 3] * cw < 0:
                        cx, cy, cz, cw = -cx, -cy, -cz, -cw
                    cx = smoothing * st[b] + (1.0 - smoothing) * cx
                    cy = smoothing * st[b + 1] + (1.0 - smoothing) * cy
                    cz = smoothing * st[b + 2] + (1.0 - smoothing) * cz
                    cw = smoothing * st[b + 3] + (1.0 - smoothing) * cw
                    n = math.sqrt(cx * cx + cy * cy + cz * cz + cw * cw)
                    cx, cy, cz, cw = cx / n, cy / n, cz / n, cw / n
                st[b], st[b + 1], st[b + 2], st[b + 3] = cx, cy, cz, cw
                if cw < 0:  # w >= 0, as matrix_to_quat
                    cx, cy, cz, cw = -cx, -cy, -cz, -cw
                q[j, 0], q[j, 1], q[j, 2], q[j, 3] = cx, cy, cz, cw
            st[smooth0] = 1.0
        for j in range(nj):
            for a in range(4):
                rot[t, j, a] = np.float32(q[j, a])
        if fk:  # forward kinematics of the released (float32) rotations on the rest offsets
            if kept[t]:
                for j in range(nj):
                    for a in range(3):
                        pos[t, j, a] = np.float32(joints[t, j, a])
                continue
            P[0, 0], P[0, 1], P[0, 2] = p[0, 0], p[0, 1], p[0, 2]
            for j in range(nj):
                R = _quat_matrix(np.float64(rot[t, j, 0]), np.float64(rot[t, j, 1]), np.float64(rot[t, j, 2]),
                                 np.float64(rot[t, j, 3]))
                par = struct[j, _C_PARENT]
                if par >= 0:
                    Gp = (G[par, 0], G[par, 1], G[par, 2], G[par, 3], G[par, 4], G[par, 5],
                          G[par, 6], G[par, 7], G[par, 8])
                    off = _mv(Gp, _vec(offs, j))
                    P[j, 0], P[j, 1], P[j, 2] = P[par, 0] + off[0], P[par, 1] + off[1], P[par, 2] + off[2]
                    R = _mm(Gp, R)
                for i in range(9):
                    G[j, i] = R[i]
                for a in range(3):
                    pos[t, j, a] = np.float32(P[j, a])
    return pos, rot, st


# ----------------------------------------------------------------------------- Python side
class CausalSolver:
    """Causal solver state of one motion; feed its frames in order with :meth:`step`.

    Args:
        tables: the hierarchy's rules (:func:`solver_tables`).
        lengths: (J,) bone lengths of the rest skeleton in metres (offsets ``rest_dir * lengths``).
        fk: also return forward kinematics of the rotations on the rest offsets (positions).
        lift: None (no lift), or ``(legs, above, frames, limit)``: legs a sequence of (hip, knee,
            ankle) joint indices, above the joints raised by the legs' running length deficit,
            frames its one-pole time constant (frames), limit its largest size either way (metres)
            (see :mod:`coamd.sampling.skeleton_projection`).
        smoothed: joint indices whose local rotations are low-passed.
        smoothing: the low-pass's one-pole factor per frame in [0, 1) (0 = off).
    Raises:
        ValueError: ``smoothing`` outside [0, 1), ``lengths`` of the wrong size.
    """

    def __init__(self, tables: SolverTables, lengths: np.ndarray, *, fk: bool = False,
                 lift: tuple | None = None, smoothed=(), smoothing: float = 0.0):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        J = len(tables.struct)
        lengths = np.asarray(lengths, dtype=np.float64)
        if lengths.shape != (J,):
            raise ValueError(f"lengths must be ({J},), got {lengths.shape}")
        self.tables = tables
        self._lengths = np.ascontiguousarray(lengths)
        self._offs = np.ascontiguousarray(tables.rest_dir * lengths[:, None])
        self._fk = bool(fk)
        self._smoothing = float(smoothing)
        self._smoothed = (np.ascontiguousarray(smoothed, dtype=np.int64).reshape(-1) if smoothing > 0
                          else _NO_SMOOTHED)
        self._above = np.zeros(J, np.bool_)
        if lift is None:
            self._legs = _NO_LEGS
            frames, limit = 1.0, 0.0
        else:
            legs, above, frames, limit = lift
            self._legs = np.ascontiguousarray(legs, dtype=np.int64).reshape(-1, 3)
            self._above[list(above)] = True
        self._params = np.concatenate([tables.params, [float(frames), float(limit)]])
        pole0 = tables.n_twist
        lift0 = pole0 + _POLE_SIZE * tables.n_limb
        smooth0 = lift0 + 2
        self._layout = np.array([0, pole0, lift0, smooth0], np.int64)
        self.state = np.zeros(smooth0 + 1 + 4 * len(self._smoothed))
        """The causal state, a float64 vector (zeros: the start of a motion): held twists,
        per limb (held, pole (3), axis (3), first bone (3)), (lift set, lift), (low-pass set, quaternions (k, 4))."""

    def copy(self) -> "CausalSolver":
        """An independent copy: the same tables (read only), its own state."""
        new = copy.copy(self)
        new.state = self.state.copy()
        return new

    def step(self, joints: np.ndarray, kept: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray]:
        """Solve the next frames and keep the new state.

        Args:
            joints: (n, J, 3) metres, finite (not checked here), n >= 0, the frames following those
                already solved.
            kept: optional (n,) bool: frames whose positions come back as given, not lifted, whose
                rotations restart the low-pass.
        Returns:
            ``(positions, rotations)``: (n, J, 3) float32 metres (None without ``fk``) and
            (n, J, 4) float32 unit quaternions (x, y, z, w), w >= 0, local rotations.
        """
        j = np.ascontiguousarray(joints, dtype=np.float64)
        k = np.zeros(len(j), np.bool_) if kept is None else np.ascontiguousarray(kept, dtype=np.bool_)
        tb = self.tables
        pos, rot, self.state = _solve(j, k, self.state, self._offs, self._lengths, tb.struct, tb.typical,
                                      tb.rest_dir, tb.hints, tb.share, tb.rate, self._layout, self._params,
                                      self._legs, self._above, self._smoothed, self._smoothing, self._fk)
        return (pos if self._fk else None), rot


__all__ = ["CausalSolver", "SolverTables", "solver_tables"]
