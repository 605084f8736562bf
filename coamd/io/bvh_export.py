"""BVH export: joint positions -> joint rotations on the dataset's skeleton, written as BVH.

Engines and DCC tools drive rigs with joint rotations, not positions. :func:`write_bvh` solves,
frame by frame, the local rotation of every joint of the Bandai Namco BVH skeleton so that forward
kinematics reproduces the given joint positions, and writes a BVH file in the dataset's own
convention, so that it loads wherever the dataset's files load.

The file (same layout as the source dataset):

* hierarchy ``joint_Root`` -> ``Hips`` -> ... (the 21 canonical joints of
  :mod:`coamd.skeleton`, same parents), End Sites after ``Head``, ``Hand_*`` and ``Toes_*``;
* every joint has 6 channels ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``;
  rotations are intrinsic Z, X, Y in degrees (``R = Rz @ Rx @ Ry``); the position channels are
  the joint's local translation (they replace OFFSET, as in the dataset) and equal the OFFSET for
  every joint but ``Hips``, whose position channels carry the global translation;
  ``joint_Root`` is all zeros;
* centimetres, right-handed, Y up (positions are the input metres x 100, same world frame).

Rest offsets: directions from the dataset's reference hierarchy (:data:`REFERENCE_OFFSETS_CM`,
the OFFSETs of the dataset's BVH files; every clip of both sets has this skeleton). Lengths: the
runtime's one skeleton, :func:`rest_offsets` (the dataset's own lengths, the skeleton the server's
``GetSkeleton`` returns and every released frame is a pose of), when rotations are given; else
measured from the motion itself (median over frames of each bone's length), so the skeleton fits
the motion. ``Hips`` OFFSET is the hips' position at frame 0. With ``tpose=True`` the file's rest
is a T-pose instead of the dataset's (:func:`tpose_rest_rotations`), same positions.

Rotation solving (:func:`solve_rotations`; per frame, joints in hierarchy order, each joint aimed
from where forward kinematics has actually put it, so length mismatches do not accumulate down a
chain):

* ``Hips`` and ``Chest`` (three children each): the rotation best aligning the rest offsets of the
  children (spine and both legs; neck and both shoulders) with the observed ones (Kabsch).
* ``Spine``: the bone direction exactly (swing) and half of the torso twist the shoulder line
  shows (the chest takes the rest; :data:`TWIST_HINTS`).
* limbs (:data:`LIMBS`): the bend direction (pole) of each arm and leg comes from the observed
  limb; the elbow and knee are hinges whose axis is across the bend plane (the hinge directions
  of :data:`TWIST_HINTS` were measured in the dataset, where elbow and knee are exact hinges).
  Arms and legs are solved by two-bone IK with the skeleton's bone lengths. The toe lands
  exactly on the observed toe and the ankle on the observed foot line, one foot length from the
  toe (out of the leg's reach, the foot pitches about the toe instead; contacts with the floor
  survive; the knee absorbs bone-length differences). The hand lands where the observed
  shoulder -> hand vector, scaled by the skeleton's arm length over the observed arm's (at most
  :data:`ARM_SCALE_MAX`), puts it from the solved shoulder: the arm points where the observed
  one points and is as extended. Elbows and knees bend one way: an
  observed slight bend on the far side of the held one counts as the limb bent backwards (a
  clear one turns the held bend back towards it); in streams the bend direction turns by at
  most :data:`POLE_RATE_DEG` per frame and a limb's first bone by at most
  :data:`LIMB_TURN_DEG` (what real limbs do; a limb the decoder folded up can swing its axis
  half a turn in one frame). When a limb is nearly straight the bend direction is undetermined:
  it is interpolated from neighbouring frames (whole clips) or held from the previous frame,
  carried along with the limb (streams).
* the clavicles and the neck (:data:`FOLLOW_BONE`): the observed bone's direction itself, since
  the chest's three-child fit misses their observed start by a sizeable fraction of these short
  bones (aiming from the fitted start made them turn several times faster than the positions).
* other joints with one child: the smallest rotation (swing) that turns the joint's typical pose
  relative to its parent (:data:`TYPICAL_LOCAL_QUAT`, mean local rotations measured in the dataset)
  onto the observed bone; twist about such bones (forearm, clavicle, neck, foot) is not observable
  from positions.
* leaves (``Head``, ``Hand_*``, ``Toes_*``): their typical local rotation.

For rigs and the streaming server, :func:`joints_to_local_rotations` gives the same rotations as
quaternions, and :class:`RotationStream` converts a motion chunk by chunk (causal, so the result
does not depend on the chunk size and nothing jumps at chunk edges). The runtime's skeleton
projection (:mod:`coamd.sampling.skeleton_projection`) is that causal solver followed by forward
kinematics (:func:`forward_kinematics`) on :func:`rest_offsets`. Both run the causal solver as a
compiled per-frame kernel (:mod:`coamd.io.causal_solver`, numba; streams release a few frames per
call, where numpy's per-call overhead would dominate); the causal form of :func:`solve_rotations`
(``twist_state``) is its numpy reference, which the tests compare it with.

Measured in ``tests/test_bvh_export.py``: on the dataset's own clips the solved global rotations
of the fully determined joints (hips, chest, upper arms, thighs, shins) equal the source file's
(median 0.0 degrees; larger only in frames where the limb is straight within 2 degrees and its
twist is ambiguous); re-reading an exported test-split clip gives its joints back to within
micrometres (the processed clips are rigid), and so does exporting the runtime's projected motion
with its rotations; for non-rigid input (test clips plus 8 mm mean per-joint noise) the round
trip lands about 7 mm from the input on average, the toes on the input's toes, since a rigid
skeleton cannot follow bones that change length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coamd.io.rotations import (axis_angle_matrix, cross, kabsch, matrix_to_euler_deg, matrix_to_quat,
                                normalize, perpendicular, quat_to_matrix, signed_angle, swing)
from coamd.skeleton import FPS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS

ROOT_NAME = "joint_Root"
CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
EULER_ORDER = "ZXY"
M_TO_CM = 100.0

# OFFSETs of the dataset's BVH hierarchy in centimetres (dataset-2_walk_normal_001.bvh; both sets
# share this skeleton). Each is the joint's position in its parent's local frame at rest.
# The Hips entry is only a typical value: the Hips position channels carry the translation.
REFERENCE_OFFSETS_CM: dict[str, tuple[float, float, float]] = {
    "Hips": (-0.726466, 93.3139, -2.00062),
    "Spine": (15.7357, 0.0, 0.0),
    "Chest": (8.98455, -0.406207, 0.0),
    "Neck": (16.3773, 0.0, 0.0),
    "Head": (6.45672, 0.0, 0.0),
    "Shoulder_L": (12.9942, -0.242716, 4.98039),
    "UpperArm_L": (5.34809, 0.0, 0.0),
    "LowerArm_L": (24.3286, 1.87007e-05, 0.0),
    "Hand_L": (22.2916, 0.0, 0.0),
    "Shoulder_R": (12.9945, -0.242716, -4.98039),
    "UpperArm_R": (-5.34813, 0.0, 0.0),
    "LowerArm_R": (-24.3289, 0.000322201, 0.0),
    "Hand_R": (-22.2915, -0.000108084, 0.0),
    "UpperLeg_L": (-2.19248, -6.46944, 0.0),
    "LowerLeg_L": (39.0811, 0.0, -1.23785e-05),
    "Foot_L": (40.9854, 0.0, -1.26872e-05),
    "Toes_L": (11.7543, 0.0, 0.0),
    "UpperLeg_R": (-2.19251, 6.46944, 0.0),
    "LowerLeg_R": (-39.0811, -0.00228153, -0.0401928),
    "Foot_R": (-40.9854, 0.0, 0.0),
    "Toes_R": (-11.7543, 0.0, 0.0),
}
# End Site offsets in centimetres (set 1 of the dataset; set 2 writes zero-length End Sites).
END_SITES_CM: dict[str, tuple[float, float, float]] = {
    "Head": (10.0, 0.0, 0.0),
    "Hand_L": (5.0, 0.0, 0.0), "Hand_R": (-5.0, 0.0, 0.0),
    "Toes_L": (5.0, 0.0, 0.0), "Toes_R": (-5.0, 0.0, 0.0),
}
# Twist from a second direction: joint -> (from joint, to joint, unit direction of
# (to - from) in the joint's local frame (its part perpendicular to the bone counts), share of the
# measured twist the joint takes). Measured on 69 real clips of both sets: the forearm lies in the
# upper arm's local XZ plane on +Z (left) / -Z (right) in every frame (elbow hinge), the shin in
# the thigh's XZ plane on -Z / +Z (knee hinge), the shoulder line (left minus right) along the
# spine's +Z (median deviation 1.8 degrees). The spine takes half of the torso twist the shoulder
# line shows and the chest the rest (the split that matches the dataset's spine rotations best:
# median 0.6 degrees from the stored ones, against 2.4 with the whole twist in the spine).
TWIST_HINTS: dict[str, tuple[str, str, tuple[float, float, float], float]] = {
    "Spine": ("Shoulder_R", "Shoulder_L", (0.0, 0.006, 1.0), 0.5),
    "UpperArm_L": ("LowerArm_L", "Hand_L", (0.0, 0.0, 1.0), 1.0),
    "UpperArm_R": ("LowerArm_R", "Hand_R", (0.0, 0.0, -1.0), 1.0),
    "UpperLeg_L": ("LowerLeg_L", "Foot_L", (0.0, 0.0, -1.0), 1.0),
    "UpperLeg_R": ("LowerLeg_R", "Foot_R", (0.0, 0.0, 1.0), 1.0),
}
# Mean local rotation (quaternion x, y, z, w; SciPy ``Rotation.mean``) of every joint solved from
# one child or none, measured on every third frame of 69 real clips of both sets. It is the
# reference a bone's swing starts from (so swings stay small and far from the 180-degree
# singularity) and fixes the twist the positions leave open. Joints not listed use the identity.
TYPICAL_LOCAL_QUAT: dict[str, tuple[float, float, float, float]] = {
    "Spine": (-0.7050, 0.0379, -0.0414, -0.7070),
    "UpperArm_L": (-0.0526, -0.1931, -0.4937, 0.8463),
    "UpperArm_R": (-0.0707, -0.2096, -0.4661, 0.8566),
    "UpperLeg_L": (-0.1014, 0.0717, -0.9910, 0.0507),
    "UpperLeg_R": (-0.9878, 0.0151, 0.1101, -0.1091),
    "Neck": (0.0213, -0.0077, -0.0181, -0.9996),
    "Head": (-0.0247, 0.0071, -0.0069, 0.9996),
    "Shoulder_L": (-0.4545, -0.4504, -0.5392, 0.5475),
    "Shoulder_R": (-0.4782, 0.4614, -0.5182, -0.5384),
    "LowerArm_L": (0.0860, -0.3776, 0.0477, 0.9207),
    "LowerArm_R": (0.0071, -0.3503, 0.0113, 0.9365),
    "Hand_L": (-0.0344, -0.0262, -0.1907, -0.9807),
    "Hand_R": (-0.0544, 0.0182, -0.2109, -0.9758),
    "LowerLeg_L": (-0.0001, -0.3030, 0.0, -0.9530),
    "LowerLeg_R": (-0.0002, -0.2983, 0.0, -0.9545),
    "Foot_L": (0.0104, -0.5269, -0.0253, 0.8495),
    "Foot_R": (-0.0099, 0.5212, -0.0053, -0.8534),
    "Toes_L": (-0.0014, -0.1562, 0.0002, 0.9877),
    "Toes_R": (-0.0014, -0.1549, 0.0001, 0.9879),
}

# A hinge's twist counts as determined when the sine of the angle between the two bones is at
# least _TWIST_SURE; below _TWIST_UNSURE it is taken from neighbouring frames only.
_TWIST_SURE, _TWIST_UNSURE = 0.15, 0.03
# An observed bend on the far side of a limb's held bend direction is read as the limb bent
# backwards (elbows and knees overextend by 10-15 degrees at most) only while the bend is smaller
# than this (its sine; 25 degrees): a clearly bent limb there means the held direction is wrong
# (a generated limb that folded up and swung through the joint), and it turns back towards the
# observed bend at POLE_RATE_DEG.
_BACKWARDS_SINE = math.sin(math.radians(25.0))

# Limbs: first joint -> (middle joint, end joint, tip joint or None). The bend direction (pole)
# of every limb comes from the observed limb and is held while the limb is straight. Every limb
# is solved by two-bone IK. Limbs with a tip (the legs): the tip (the toe) lands on the observed
# one and the end (the ankle) lies on the observed foot line (or, out of the leg's reach, as near
# it as the foot pitched about the toe allows): the foot keeps its contacts with the floor.
# Limbs without one (the arms): the end (the hand) lands where the observed arm, scaled to the
# skeleton's arm length, puts it from the solved shoulder: the arm points where the generated
# one points and is as extended, whatever the decoder's bone lengths (ARM_SCALE_MAX).
LIMBS: dict[str, tuple[str, str, str | None]] = {
    "UpperArm_L": ("LowerArm_L", "Hand_L", None), "UpperArm_R": ("LowerArm_R", "Hand_R", None),
    "UpperLeg_L": ("LowerLeg_L", "Foot_L", "Toes_L"), "UpperLeg_R": ("LowerLeg_R", "Foot_R", "Toes_R"),
}
# Fastest turn of a limb's bend direction about the limb in a stream, degrees per frame at 20 fps
# (per limb's first joint): in real clips of the test split the knees' turns by at most 19
# degrees per frame (99.9th percentile 13) and the elbows' by more than 25 degrees in 0.1 % of
# frames; generated limbs that are only slightly bent turn it back and forth by up to a half turn
# (decoder noise around a nearly straight limb), which these limits keep out of the rotations.
POLE_RATE_DEG: dict[str, float] = {"UpperArm_L": 25.0, "UpperArm_R": 25.0, "UpperLeg_L": 15.0, "UpperLeg_R": 15.0}
# Largest factor by which an observed arm is scaled to the skeleton's length. The decoder's arms
# are usually close to the skeleton's length; in a fast swing it sometimes shrinks one to a
# fraction of it, the hand next to the shoulder. Scaling such an arm in full would throw its hand
# outward (and aiming each bone along the observed one turned a shrunken forearm's swing into
# hand steps of up to 0.7 m per frame); scaled by at most this, its hand stays near the generated
# one.
ARM_SCALE_MAX = 1.2
# Fastest turn of a limb's first bone (upper arm, thigh) per frame at 20 fps, degrees: in every
# real clip (train and test splits, mirrors included; `python -m benchmarks.largest_step`) the
# upper arm turns by at most 45 degrees in one frame and the thigh by at most 33. A generated limb the decoder has folded up (both bones a
# fraction of their length, the end next to the shoulder or hip) swings its axis half a turn in
# one frame as the end passes the joint, and the two-bone IK would throw the elbow or knee across
# with it; a turn larger than these limits is cut to them and caught up in the next frames.
LIMB_TURN_DEG: dict[str, float] = {"UpperArm_L": 60.0, "UpperArm_R": 60.0, "UpperLeg_L": 45.0, "UpperLeg_R": 45.0}
# Largest distance from a limb's first joint to its end, as a fraction of the limb's length: a
# straight limb keeps a bend of a few degrees, so the bend plane (the twist) stays defined.
_REACH = 0.99999
# One-child joints that take the observed bone's direction (child minus joint, both observed)
# instead of aiming from where forward kinematics put the joint: short bones hanging off a
# joint fitted to several children (the clavicles off the chest), whose observed start the fit
# misses by a sizeable fraction of the bone.
FOLLOW_BONE: tuple[str, ...] = ("Neck", "Shoulder_L", "Shoulder_R")

CHILDREN: tuple[tuple[int, ...], ...] = tuple(
    tuple(c for c, p in enumerate(PARENTS) if p == j) for j in range(NUM_JOINTS))
REST_DIRECTIONS = np.array(
    [normalize(np.array(REFERENCE_OFFSETS_CM[n]))[0] if j else (0.0, 1.0, 0.0)
     for j, n in enumerate(JOINT_NAMES)])
"""(21, 3) unit rest directions of each joint's offset in its parent's frame (Hips: +Y)."""


_TYPICAL_MATRICES = np.stack([
    quat_to_matrix(np.array(TYPICAL_LOCAL_QUAT[n])) if n in TYPICAL_LOCAL_QUAT else np.eye(3)
    for n in JOINT_NAMES])


class BVHExportError(ValueError):
    """Joint positions that cannot be exported (wrong shape, NaN, non-positive fps)."""


@dataclass(frozen=True)
class BVHSkeleton:
    """Rest skeleton of an exported BVH.

    Attributes:
        lengths: (21,) metres; ``lengths[j]`` is the length of the bone from ``PARENTS[j]`` to ``j``
            (``lengths[0]`` is the hips' rest height, used only for the Hips OFFSET line).
    """

    lengths: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        """(21, 3) metres: each joint's rest offset in its parent's local frame."""
        return REST_DIRECTIONS * np.asarray(self.lengths, dtype=np.float64)[:, None]


DATASET_SKELETON = BVHSkeleton(np.array(
    [np.linalg.norm(REFERENCE_OFFSETS_CM[n]) / M_TO_CM for n in JOINT_NAMES]))
"""The dataset's own skeleton (bone lengths of :data:`REFERENCE_OFFSETS_CM`, metres)."""


def rest_offsets() -> np.ndarray:
    """The runtime's one skeleton: (21, 3) float64 rest offsets in metres, each joint's position in
    its parent's frame at rest (``Hips``: a typical height above the origin; its position comes
    from the motion). Every frame the runtime releases is forward kinematics of local rotations on
    these offsets (:mod:`coamd.sampling.skeleton_projection`); the server's ``GetSkeleton``, the
    streamed rotations and the BVH and glTF exports all refer to them. They are
    :data:`DATASET_SKELETON`'s offsets, the skeleton of every clip of the dataset."""
    return DATASET_SKELETON.offsets.copy()


def _check_joints(joints: np.ndarray) -> np.ndarray:
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3) or arr.shape[0] < 1:
        raise BVHExportError(f"joints must have shape (T, {NUM_JOINTS}, 3) with T >= 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise BVHExportError("joints contain NaN or infinite values")
    return arr


def skeleton_from_joints(joints: np.ndarray) -> BVHSkeleton:
    """Measure the rest skeleton of a motion: median bone lengths over frames.

    Args:
        joints: (T, 21, 3) metres.
    Returns:
        :class:`BVHSkeleton`; ``lengths[0]`` is the median hips height.
    Raises:
        BVHExportError: bad shape or non-finite values.
    """
    arr = _check_joints(joints)
    lengths = np.empty(NUM_JOINTS)
    lengths[0] = np.median(arr[:, 0, 1])
    for j in range(1, NUM_JOINTS):
        lengths[j] = np.median(np.linalg.norm(arr[:, j] - arr[:, PARENTS[j]], axis=-1))
    return BVHSkeleton(lengths)


def _fill_twist(delta: np.ndarray, sine: np.ndarray) -> np.ndarray:
    """Per-frame twist angles (T,) where ``sine`` (T,) says how well each is determined: keep the
    sure frames, interpolate the unwrapped angle elsewhere, blend in between."""
    sure = sine >= _TWIST_SURE
    if not np.any(sure):
        sure = sine >= _TWIST_UNSURE
        if not np.any(sure):
            return np.zeros_like(delta)
    t = np.arange(len(delta))
    known = np.unwrap(delta[sure])
    interp = np.interp(t, t[sure], known)
    w = np.clip((sine - _TWIST_UNSURE) / (_TWIST_SURE - _TWIST_UNSURE), 0.0, 1.0)
    diff = np.angle(np.exp(1j * (delta - interp)))  # wrapped to (-pi, pi]
    # a nearly straight limb bent slightly backwards (hyperextension) measures the twist turned by
    # half a turn: in unsure frames take whichever of delta and delta + pi is nearer the neighbours
    flip = ~sure & (np.abs(diff) > np.pi / 2)
    diff[flip] = np.angle(np.exp(1j * (diff[flip] + np.pi)))
    return interp + w * diff


def _hold_twist(delta: np.ndarray, sine: np.ndarray, held: float) -> tuple[np.ndarray, float]:
    """Causal version of :func:`_fill_twist` for streaming: each frame moves from the previous
    frame's twist ``held`` towards its own measurement by how well it is determined. Returns the
    twists (T,) and the last one (the state for the next chunk)."""
    w = np.clip((sine - _TWIST_UNSURE) / (_TWIST_SURE - _TWIST_UNSURE), 0.0, 1.0)
    out = np.empty_like(delta)
    for t in range(len(delta)):
        d = float(np.angle(np.exp(1j * (delta[t] - held))))
        if w[t] < 1.0 and abs(d) > np.pi / 2:  # hyperextension, as in _fill_twist
            d = float(np.angle(np.exp(1j * (d + np.pi))))
        held = held + w[t] * d
        out[t] = held
    return out, held


def _wrap(angle: float) -> float:
    """Angle in radians wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def _hold_pole(k_ref: np.ndarray, k_obs: np.ndarray, d: np.ndarray, sine: np.ndarray,
               held: tuple[np.ndarray, np.ndarray] | None, rate: float = math.pi
               ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Causal bend direction (pole) of a limb, per frame.

    Each frame starts from the previous frame's pole carried along with the limb axis (the
    smallest rotation from the previous axis to this one: the twist about the limb is held, with
    no reference frame that could spin) and turns towards the observed pole ``k_obs`` by how well
    it is determined (``sine``, as in :func:`_hold_twist`), by at most ``rate`` radians per
    frame (the first frame of a motion, which starts from the typical pole ``k_ref``, without
    that limit); an observed pole more than a quarter turn from the held one is taken as the limb
    bent backwards (its opposite counts). Shapes: (T, 3) unit ``d`` (the limb axis), (T,) ``sine``;
    returns unit poles (T, 3) perpendicular to ``d`` and the state for the next chunk. (Scalar
    arithmetic, frame by frame, as in the compiled kernel :func:`coamd.io.causal_solver._hold_pole`
    that streams run; this is its numpy reference.)"""
    w = np.clip((sine - _TWIST_UNSURE) / (_TWIST_SURE - _TWIST_UNSURE), 0.0, 1.0).tolist()
    sines = sine.tolist()
    out = np.empty_like(k_ref)
    prev = None if held is None else (held[0].tolist(), held[1].tolist())
    for t, (dx, dy, dz) in enumerate(d.tolist()):
        if prev is None:
            kx, ky, kz = k_ref[t].tolist()
        else:
            (kx, ky, kz), (px, py, pz) = prev
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
        ox, oy, oz = k_obs[t].tolist()  # the observed pole across the axis; angle to it about d
        s = ox * dx + oy * dy + oz * dz
        ox, oy, oz = ox - s * dx, oy - s * dy, oz - s * dz
        sin_d = (ky * oz - kz * oy) * dx + (kz * ox - kx * oz) * dy + (kx * oy - ky * ox) * dz
        delta = math.atan2(sin_d, kx * ox + ky * oy + kz * oz)
        if abs(delta) > math.pi / 2 and sines[t] < _BACKWARDS_SINE:
            # elbows and knees are hinges that bend one way: an observed slight bend on the other
            # side of the held one is the limb bent backwards (hyperextension, as in _fill_twist),
            # not a half turn of the limb within one frame
            delta = _wrap(delta + math.pi)
        limit = rate if t or held is not None else math.pi  # a motion's first frame: no limit
        ang = w[t] * max(-limit, min(limit, delta))
        ca, sa = math.cos(ang), math.sin(ang)  # rotate about d (k is across d)
        bx, by, bz = dy * kz - dz * ky, dz * kx - dx * kz, dx * ky - dy * kx
        kx, ky, kz = ca * kx + sa * bx, ca * ky + sa * by, ca * kz + sa * bz
        n = max(math.sqrt(kx * kx + ky * ky + kz * kz), 1e-12)
        out[t] = (kx / n, ky / n, kz / n)
        prev = (out[t].tolist(), [dx, dy, dz])
    if prev is not None:
        held = (np.array(prev[0]), np.array(prev[1]))
    return out, held


def _limit_turn(a: np.ndarray, prev: np.ndarray | None, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions ``a`` (T, 3) of a bone, each turned from the previous frame's (``prev``
    (3,) before frame 0, None: no limit on frame 0) by at most ``limit`` radians (a cut turn goes
    along the great circle towards ``a``). Returns the directions and the last one (the state for
    the next chunk). Frame by frame, as the compiled kernel's
    :func:`coamd.io.causal_solver._limit_turn`; this is its numpy reference."""
    out = np.empty_like(a)
    cos_l, sin_l = math.cos(limit), math.sin(limit)
    u = None if prev is None else prev.tolist()
    for t, v in enumerate(a.tolist()):
        if u is not None:
            c = u[0] * v[0] + u[1] * v[1] + u[2] * v[2]
            if c < cos_l:
                w = [v[i] - c * u[i] for i in range(3)]
                n = math.sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2])
                if n < 1e-9:  # opposite: towards a perpendicular of u
                    w, n = perpendicular(np.array(u)).tolist(), 1.0
                v = [cos_l * u[i] + sin_l * w[i] / n for i in range(3)]
        out[t] = v
        u = v
    return out, out[-1].copy() if len(out) else prev


def _end_target(root: np.ndarray, tip: np.ndarray, end: np.ndarray, foot: float, reach: float) -> np.ndarray:
    """Where a leg's end (the ankle) goes so that its tip (the toe) lands on ``tip``: one foot
    length from the tip along the observed foot (tip -> ``end``); where that is out of the leg's
    ``reach`` from ``root``, the nearest point one foot length from the tip that is within reach
    (the foot pitches, the toe stays). All (T, 3) metres; returns (T, 3)."""
    target = tip - foot * normalize(tip - end)[0]
    far = np.linalg.norm(target - root, axis=-1) > reach
    if not far.any():
        return target
    c, dc = normalize(tip[far] - root[far])
    along = (reach * reach - foot * foot + dc * dc) / (2.0 * np.maximum(dc, 1e-9))
    radius2 = reach * reach - along * along
    centre = root[far] + along[:, None] * c
    side = target[far] - centre
    side, n = normalize(side - np.sum(side * c, -1, keepdims=True) * c)
    ok = (radius2 > 0) & (n > 1e-9)  # else the toe is out of reach too: keep the foot as observed
    out = target.copy()
    out[np.flatnonzero(far)[ok]] = (centre + np.sqrt(np.maximum(radius2, 0.0))[:, None] * side)[ok]
    return out


def _limb_rotation(name: str, ref: np.ndarray, root: np.ndarray, p: np.ndarray, offs: np.ndarray,
                   state: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Global rotation (T, 3, 3) of a limb's first joint (upper arm, thigh), see :data:`LIMBS`,
    and the point (T, 3) its middle joint's bone must aim at (the end's target).

    ``ref`` (T, 3, 3): the joint's typical rotation under its solved parent; ``root`` (T, 3):
    where forward kinematics has put the joint; ``p`` (T, 21, 3) the observed positions. The twist
    about the bone puts the middle joint's hinge across the limb's bend plane; where the observed
    limb is nearly straight the bend direction is held (causal ``state``) or interpolated from
    neighbouring frames (``state`` None)."""
    j = JOINT_INDEX[name]
    mid_name, end_name, tip_name = LIMBS[name]
    mid, end = JOINT_INDEX[mid_name], JOINT_INDEX[end_name]
    l1, l2 = float(np.linalg.norm(offs[mid])), float(np.linalg.norm(offs[end]))
    if tip_name is not None:  # the end on the observed tip -> end line, one bone from the tip
        tip = JOINT_INDEX[tip_name]
        target = _end_target(root, p[:, tip], p[:, end], float(np.linalg.norm(offs[tip])),
                             _REACH * (l1 + l2))
    else:  # the observed arm scaled to the skeleton's length (at most ARM_SCALE_MAX), from the solved joint
        observed = np.linalg.norm(p[:, mid] - p[:, j], axis=-1) + np.linalg.norm(p[:, end] - p[:, mid], axis=-1)
        scale = np.minimum((l1 + l2) / np.maximum(observed, 1e-9), ARM_SCALE_MAX)
        target = root + scale[:, None] * (p[:, end] - p[:, j])
    # the typical limb in the joint's reference frame: axis (joint -> end) and pole (towards the middle)
    end_loc = offs[mid] + _TYPICAL_MATRICES[mid] @ offs[end]
    u_loc = normalize(end_loc)[0]
    k_loc = normalize(offs[mid] - (offs[mid] @ u_loc) * u_loc)[0]
    d, dist = normalize(target - root)
    k_ref = np.einsum("tab,tb->ta", swing(np.einsum("tab,b->ta", ref, u_loc), d),
                      np.einsum("tab,b->ta", ref, k_loc))
    # the observed bend: its pole (middle joint off the joint -> end line) and how sure it is
    upper, lower = p[:, mid] - p[:, j], p[:, end] - p[:, mid]
    axis_obs = normalize(p[:, end] - p[:, j])[0]
    k_obs = upper - np.sum(upper * axis_obs, -1, keepdims=True) * axis_obs
    sine = np.linalg.norm(cross(normalize(upper)[0], normalize(lower)[0]), axis=-1)
    if state is None:
        theta = _fill_twist(signed_angle(k_ref, k_obs, d), sine)
        k = np.einsum("tab,tb->ta", axis_angle_matrix(d, theta), k_ref)
    else:
        k, state["pole:" + name] = _hold_pole(k_ref, k_obs, d, sine, state.get("pole:" + name),
                                              math.radians(POLE_RATE_DEG[name]))
    # two-bone IK with the fixed lengths (law of cosines)
    reach = np.clip(dist, abs(l1 - l2) + 1e-6, _REACH * (l1 + l2))
    along = (l1 * l1 - l2 * l2 + reach * reach) / (2.0 * reach)
    out = np.sqrt(np.maximum(l1 * l1 - along * along, 0.0))
    a = normalize(along[:, None] * d + out[:, None] * k)[0]
    limit = math.radians(LIMB_TURN_DEG[name])
    if state is None:
        a, _ = _limit_turn(a, None, limit)
    else:
        a, state["turn:" + name] = _limit_turn(a, state.get("turn:" + name), limit)
    base = swing(np.einsum("tab,b->ta", ref, REST_DIRECTIONS[mid]), a) @ ref
    hint = np.einsum("tab,b->ta", base, np.asarray(TWIST_HINTS[name][2], np.float64))
    # the lower bone bends away from the pole side: hinge hint -> -(pole across the bone)
    side = -(k - np.sum(k * a, -1, keepdims=True) * a)
    return axis_angle_matrix(a, signed_angle(hint, side, a)) @ base, target


def solve_rotations(joints: np.ndarray, skeleton: BVHSkeleton | None = None,
                    twist_state: dict | None = None
                    ) -> tuple[np.ndarray, np.ndarray, BVHSkeleton]:
    """Joint positions -> global and local joint rotations on the dataset's BVH skeleton.

    Args:
        joints: (T, 21, 3) metres, canonical joint order, right-handed Y up.
        skeleton: rest skeleton; None measures it from ``joints`` (:func:`skeleton_from_joints`).
        twist_state: None for a whole clip: an undetermined twist (limb straight) is
            interpolated from frames before and after. A dict switches to causal streaming: each
            frame's rotations depend only on it and earlier frames, starting from the state in
            the dict (empty: the start of a motion), and the dict is updated for the next chunk
            (its contents are private to this module). This numpy form is the reference of the
            compiled kernel streams run (:mod:`coamd.io.causal_solver`, behind
            :class:`RotationStream` and the skeleton projection); the tests compare the two.
    Returns:
        ``(global_rot, local_rot, skeleton)``: (T, 21, 3, 3) float64 rotation matrices mapping each
        joint's local frame to the world (global) or to its parent's frame (local; for ``Hips``
        local == global since ``joint_Root`` is the identity), and the skeleton used. Forward
        kinematics ``p[j] = p[parent] + global_rot[parent] @ skeleton.offsets[j]`` with
        ``p[Hips] = joints[:, 0]`` (:func:`forward_kinematics`) reproduces ``joints`` exactly when
        they are a pose of ``skeleton``, and otherwise gives the pose of ``skeleton`` described in
        the module docstring (hands and ankles on the observed ones where the limbs reach).
    Raises:
        BVHExportError: bad shape or non-finite values.
    """
    p = _check_joints(joints)
    skel = skeleton if skeleton is not None else skeleton_from_joints(p)
    offs = skel.offsets
    T = p.shape[0]
    G = np.zeros((T, NUM_JOINTS, 3, 3))
    P = np.zeros((T, NUM_JOINTS, 3))
    P[:, 0] = p[:, 0]
    eye = np.broadcast_to(np.eye(3), (T, 3, 3))
    aim: dict[int, np.ndarray] = {}  # joint -> the point its bone aims at, where not its observed child
    for j, name in enumerate(JOINT_NAMES):  # parents come before children
        parent_rot = G[:, PARENTS[j]] if j else eye
        typical = _TYPICAL_MATRICES[j]
        kids = CHILDREN[j]
        if len(kids) >= 2:
            rest = np.stack([offs[c] for c in kids])
            target = np.stack([p[:, c] - P[:, j] for c in kids], axis=1)
            G[:, j] = kabsch(rest, target)
        elif name in LIMBS:
            G[:, j], aim[kids[0]] = _limb_rotation(name, parent_rot @ typical, P[:, j], p, offs, twist_state)
        elif len(kids) == 1:
            c = kids[0]
            ref = parent_rot @ typical
            a, _ = normalize(aim.get(j, p[:, c]) - (p[:, j] if name in FOLLOW_BONE else P[:, j]))
            a0 = np.einsum("tab,b->ta", ref, REST_DIRECTIONS[c])
            rot = swing(a0, a) @ ref
            if name in TWIST_HINTS:
                src, dst, hint, share = TWIST_HINTS[name]
                b, _ = normalize(p[:, JOINT_INDEX[dst]] - p[:, JOINT_INDEX[src]])
                sine = np.linalg.norm(cross(a, b), axis=-1)
                h = np.einsum("tab,b->ta", rot, np.asarray(hint, np.float64))
                measured = signed_angle(h, b, a)
                if twist_state is None:
                    delta = share * _fill_twist(measured, sine)
                else:
                    delta, twist_state[name] = _hold_twist(measured, sine, twist_state.get(name, 0.0))
                    delta = share * delta
                rot = axis_angle_matrix(a, delta) @ rot
            G[:, j] = rot
        else:
            G[:, j] = parent_rot @ typical
        for c in kids:
            P[:, c] = P[:, j] + np.einsum("tab,b->ta", G[:, j], offs[c])
    L = np.empty_like(G)
    L[:, 0] = G[:, 0]
    for j in range(1, NUM_JOINTS):
        L[:, j] = np.swapaxes(G[:, PARENTS[j]], -1, -2) @ G[:, j]
    return G, L, skel


def joints_to_local_rotations(joints: np.ndarray, skeleton: BVHSkeleton | None = None) -> np.ndarray:
    """Per-joint local rotations as unit quaternions, for rigs and the streaming server.

    Args:
        joints: (T, 21, 3) metres, canonical joint order (:data:`coamd.skeleton.JOINT_NAMES`).
        skeleton: rest skeleton; None measures it from ``joints``.
    Returns:
        (T, 21, 4) float32 quaternions (x, y, z, w), w >= 0: joint j's rotation relative to its
        parent's frame in the dataset's BVH rest frames (rest offsets ``skeleton.offsets``, along
        :data:`REST_DIRECTIONS`); the Hips rotation is relative to the world. With
        ``R = quat_to_matrix(q)`` the BVH Euler channels are ``matrix_to_euler_deg(R, "ZXY")``.
    Raises:
        BVHExportError: bad shape or non-finite values.

    This converts a whole clip: the twist of a straight elbow or knee is interpolated from frames
    before and after. To convert a stream chunk by chunk use :class:`RotationStream`, which
    carries state between chunks (calling this per chunk would let upper-arm twists jump at
    chunk edges).
    """
    _, local, _ = solve_rotations(joints, skeleton)
    return matrix_to_quat(local).astype(np.float32)


class RotationStream:
    """Chunk-by-chunk conversion of a stream of joint positions to local rotations.

    Every frame's rotations depend only on that frame and earlier ones (the twist of straight
    elbows and knees is held from earlier frames), so pushing a motion in chunks of any size gives
    exactly the rotations of pushing it at once, with no jumps at chunk edges. Use one stream
    per motion. The frames are solved by the compiled causal kernel
    (:class:`coamd.io.causal_solver.CausalSolver`, numba, imported on the first push): the
    rotations of ``solve_rotations(..., twist_state=...)`` at a few microseconds per frame.

    Args:
        skeleton: the fixed rest skeleton every chunk refers to (default: the dataset's).
    """

    def __init__(self, skeleton: BVHSkeleton = DATASET_SKELETON):
        self.skeleton = skeleton
        self._causal = None  # the compiled solver and its causal state (first push)

    def push(self, joints: np.ndarray) -> np.ndarray:
        """joints (n, 21, 3) metres, n >= 1, the next frames -> (n, 21, 4) float32 quaternions
        (x, y, z, w), w >= 0, the same convention as :func:`joints_to_local_rotations`.
        Raises BVHExportError (bad shape, no frames, non-finite values; the stream is unchanged)."""
        p = _check_joints(joints)
        if self._causal is None:
            self._causal = stream_solver(self.skeleton)
        return self._causal.step(p)[1]


_SOLVER_TABLES = None  # this module's rules as the compiled solver's arrays (built on first use)


def stream_solver(skeleton: BVHSkeleton = DATASET_SKELETON, **options):
    """A compiled causal solver (:class:`coamd.io.causal_solver.CausalSolver`; imports numba) with
    this module's rules on ``skeleton``: per frame the rotations of :func:`solve_rotations` in its
    causal form. ``options``: ``fk``, ``lift``, ``smoothed``, ``smoothing`` (see the class; the
    skeleton projection uses them). Raises ValueError for bad options."""
    global _SOLVER_TABLES
    from coamd.io import causal_solver

    if _SOLVER_TABLES is None:
        _SOLVER_TABLES = causal_solver.solver_tables(
            JOINT_NAMES, PARENTS, FOLLOW_BONE, LIMBS, TWIST_HINTS, POLE_RATE_DEG, LIMB_TURN_DEG, _TYPICAL_MATRICES,
            REST_DIRECTIONS, _TWIST_UNSURE, _TWIST_SURE, _REACH, _BACKWARDS_SINE, ARM_SCALE_MAX)
    return causal_solver.CausalSolver(_SOLVER_TABLES, skeleton.lengths, **options)


def forward_kinematics(local: np.ndarray, root: np.ndarray,
                       skeleton: BVHSkeleton = DATASET_SKELETON) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics on a rest skeleton: global rotations and joint positions.

    Args:
        local: (T, 21, 4) quaternions (x, y, z, w) or (T, 21, 3, 3) matrices, local rotations
            (each joint relative to its parent; ``Hips`` relative to the world).
        root: (T, 3) hips positions in metres.
        skeleton: rest skeleton (offsets along :data:`REST_DIRECTIONS`).
    Returns:
        ``(global_rot, joints)``: (T, 21, 3, 3) and (T, 21, 3) float64, metres, with
        ``joints[:, j] = joints[:, parent] + global_rot[:, parent] @ skeleton.offsets[j]``.
    """
    local = np.asarray(local, dtype=np.float64)
    R = quat_to_matrix(local) if local.shape[-1] == 4 else local
    T = R.shape[0]
    G = np.zeros((T, NUM_JOINTS, 3, 3))
    P = np.zeros((T, NUM_JOINTS, 3))
    P[:, 0] = root
    offs = skeleton.offsets
    G[:, 0] = R[:, 0]
    for j in range(1, NUM_JOINTS):
        parent = PARENTS[j]
        G[:, j] = G[:, parent] @ R[:, j]
        P[:, j] = P[:, parent] + np.einsum("tab,b->ta", G[:, parent], offs[j])
    return G, P


def local_rotations_to_joints(local: np.ndarray, root: np.ndarray,
                              skeleton: BVHSkeleton = DATASET_SKELETON) -> np.ndarray:
    """Forward kinematics on the export skeleton (the inverse of :func:`joints_to_local_rotations`).

    Args:
        local: (T, 21, 4) quaternions (x, y, z, w) or (T, 21, 3, 3) matrices, local rotations.
        root: (T, 3) hips positions in metres.
        skeleton: rest skeleton (bone lengths).
    Returns:
        (T, 21, 3) float64 joint positions in metres (see :func:`forward_kinematics`).
    """
    return forward_kinematics(local, root, skeleton)[1]


# T-pose rest (optional for BVH, the rest of the glTF export): the world direction of each
# joint's child bone (or End Site) when all local rotations are zero. Facing +Z, Y up, so the
# body's left is +X; arms out sideways, legs straight down, feet forward 22 degrees below the
# horizontal (as when standing: the toe joint sits lower than the ankle).
_UP, _LEFT, _FWD = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
TPOSE_DIRECTIONS: dict[str, np.ndarray] = {
    "Spine": _UP, "Chest": _UP, "Neck": _UP, "Head": _UP,
    "Shoulder_L": _LEFT, "UpperArm_L": _LEFT, "LowerArm_L": _LEFT, "Hand_L": _LEFT,
    "Shoulder_R": -_LEFT, "UpperArm_R": -_LEFT, "LowerArm_R": -_LEFT, "Hand_R": -_LEFT,
    "UpperLeg_L": -_UP, "LowerLeg_L": -_UP, "Foot_L": normalize(np.array([0.0, -0.4, 1.0]))[0], "Toes_L": _FWD,
    "UpperLeg_R": -_UP, "LowerLeg_R": -_UP, "Foot_R": normalize(np.array([0.0, -0.4, 1.0]))[0], "Toes_R": _FWD,
}
# Joints whose T-pose twist is set by a second direction: local vector -> world direction (the
# hips' and chest's left-right lines to +X, the elbows bending forward, the knees backward).
_TPOSE_SECOND: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "Spine": (np.asarray(TWIST_HINTS["Spine"][2]), _LEFT),
    "UpperArm_L": (np.asarray(TWIST_HINTS["UpperArm_L"][2]), _FWD),
    "UpperArm_R": (np.asarray(TWIST_HINTS["UpperArm_R"][2]), _FWD),
    "UpperLeg_L": (np.asarray(TWIST_HINTS["UpperLeg_L"][2]), -_FWD),
    "UpperLeg_R": (np.asarray(TWIST_HINTS["UpperLeg_R"][2]), -_FWD),
}


def _two_vector_rotation(local_a: np.ndarray, world_a: np.ndarray, local_b: np.ndarray,
                         world_b: np.ndarray) -> np.ndarray:
    """The rotation taking ``local_a`` onto ``world_a`` exactly and ``local_b`` (its part across
    ``local_a``) onto the half-plane of ``world_b``. (3,) vectors -> (3, 3)."""
    def frame(a, b):
        e1 = normalize(a)[0]
        e2 = normalize(b - (b @ e1) * e1)[0]
        return np.stack([e1, e2, cross(e1, e2)], axis=1)
    return frame(world_a, world_b) @ frame(local_a, local_b).T


def tpose_rest_rotations() -> np.ndarray:
    """(21, 3, 3) global rotations, in the dataset's joint frames, of the T-pose rest
    (:data:`TPOSE_DIRECTIONS`; twists from :data:`TWIST_HINTS` and the typical pose). An export
    with a T-pose rest gives joint j the frame ``G'_j = G_j @ R_j.T`` (``R`` = this array): zero
    local rotations are then the T-pose, and every joint's offset is ``R_parent @ offset``."""
    offs = DATASET_SKELETON.offsets
    R = np.zeros((NUM_JOINTS, 3, 3))
    for j, name in enumerate(JOINT_NAMES):
        kids = CHILDREN[j]
        if name == "Hips" or name == "Chest":
            first = kids[0]  # Spine / Neck
            left, right = (c for c in kids[1:])
            R[j] = _two_vector_rotation(REST_DIRECTIONS[first], _UP, offs[left] - offs[right], _LEFT)
            continue
        local = (REST_DIRECTIONS[kids[0]] if kids else
                 normalize(np.asarray(END_SITES_CM[name], np.float64))[0])
        if name in _TPOSE_SECOND:
            second, world = _TPOSE_SECOND[name]
            R[j] = _two_vector_rotation(local, TPOSE_DIRECTIONS[name], second, world)
        else:
            M = R[PARENTS[j]] @ _TYPICAL_MATRICES[j]
            R[j] = swing(M @ local, TPOSE_DIRECTIONS[name]) @ M
    return R


def rest_frame_change(local: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Local rotations (T, 21, 3, 3) in the dataset's joint frames -> the same motion's local
    rotations for joint frames changed by ``rest`` (21, 3, 3) (see :func:`tpose_rest_rotations`):
    ``L'_j = rest_parent @ L_j @ rest_j.T`` (the root's parent is the world)."""
    out = np.empty_like(local)
    out[:, 0] = local[:, 0] @ rest[0].T
    for j in range(1, NUM_JOINTS):
        out[:, j] = rest[PARENTS[j]] @ local[:, j] @ rest[j].T
    return out


def _fmt(v) -> str:
    return " ".join(f"{x:.6f}".rstrip("0").rstrip(".") if x != 0 else "0" for x in v)


def _export_rotations(joints: np.ndarray, skeleton: BVHSkeleton | None,
                      rotations: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, BVHSkeleton]:
    """(checked joints (T, 21, 3) float64, local rotations (T, 21, 3, 3), skeleton) of an export:
    the given rotations on ``skeleton`` (default: the dataset's), or rotations solved from the
    joints (``skeleton`` None: median bone lengths)."""
    p = _check_joints(joints)
    if rotations is None:
        _, local, skel = solve_rotations(p, skeleton)
        return p, local, skel
    q = np.asarray(rotations, dtype=np.float64)
    if q.shape != (p.shape[0], NUM_JOINTS, 4) or not np.isfinite(q).all():
        raise BVHExportError(f"rotations must be finite quaternions of shape ({p.shape[0]}, {NUM_JOINTS}, 4), "
                             f"got {q.shape}")
    norm = np.linalg.norm(q, axis=-1)
    if np.abs(norm - 1.0).max() > 1e-3:
        raise BVHExportError("rotations must be unit quaternions (x, y, z, w)")
    return p, quat_to_matrix(q / norm[..., None]), skeleton if skeleton is not None else DATASET_SKELETON


def bvh_text(joints: np.ndarray, fps: float = FPS, skeleton: BVHSkeleton | None = None,
             rotations: np.ndarray | None = None, tpose: bool = False) -> str:
    """The BVH file text for ``joints`` (see :func:`write_bvh`)."""
    if not np.isfinite(fps) or fps <= 0:
        raise BVHExportError(f"fps must be positive, got {fps}")
    p, local, skel = _export_rotations(joints, skeleton, rotations)
    offs_cm = skel.offsets * M_TO_CM
    ends_cm = {n: np.asarray(v, np.float64) for n, v in END_SITES_CM.items()}
    if tpose:
        rest = tpose_rest_rotations()
        local = rest_frame_change(local, rest)
        for j in range(1, NUM_JOINTS):
            offs_cm[j] = rest[PARENTS[j]] @ offs_cm[j]
        ends_cm = {n: rest[JOINT_INDEX[n]] @ v for n, v in ends_cm.items()}
    offs_cm[0] = p[0, 0] * M_TO_CM  # Hips: its position at frame 0
    euler = matrix_to_euler_deg(local, EULER_ORDER)  # (T, 21, 3) Z, X, Y degrees
    euler = np.rad2deg(np.unwrap(np.deg2rad(euler), axis=0))  # continuous curves for DCC tools

    lines = ["HIERARCHY", f"ROOT {ROOT_NAME}", "{", "\tOFFSET 0 0 0",
             f"\tCHANNELS 6 {' '.join(CHANNELS)}"]

    def emit(j: int, depth: int) -> None:
        ind = "\t" * depth
        lines.append(f"{ind}JOINT {JOINT_NAMES[j]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}\tOFFSET {_fmt(offs_cm[j])}")
        lines.append(f"{ind}\tCHANNELS 6 {' '.join(CHANNELS)}")
        for c in CHILDREN[j]:
            emit(c, depth + 1)
        if not CHILDREN[j]:
            end = ends_cm.get(JOINT_NAMES[j], np.zeros(3))
            lines.extend([f"{ind}\tEnd Site", f"{ind}\t{{", f"{ind}\t\tOFFSET {_fmt(end)}", f"{ind}\t}}"])
        lines.append(f"{ind}}}")

    emit(0, 1)
    lines.append("}")
    T = p.shape[0]
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {1.0 / fps:.8f}"]
    # per frame: joint_Root zeros, then every joint: position (cm) then Z X Y rotation (degrees)
    pos = np.broadcast_to(offs_cm, (T, NUM_JOINTS, 3)).copy()
    pos[:, 0] = p[:, 0] * M_TO_CM
    values = np.concatenate([np.zeros((T, 6)),
                             np.concatenate([pos, euler], axis=-1).reshape(T, -1)], axis=1)
    row = " ".join(["%.5f"] * values.shape[1])
    body = "\n".join(row % tuple(r) for r in values.tolist())
    return "\n".join(lines) + "\n" + body + "\n"


def write_bvh(path: str | Path, joints: np.ndarray, fps: float = FPS,
              skeleton: BVHSkeleton | None = None, rotations: np.ndarray | None = None,
              tpose: bool = False) -> Path:
    """Write a motion as a rotation-driven BVH file on the dataset's skeleton.

    Args:
        path: output ``.bvh`` path (parent folders are created).
        joints: (T, 21, 3) joint positions in metres at ``fps``, canonical joint order
            (:data:`coamd.skeleton.JOINT_NAMES`), right-handed, Y up.
        fps: frames per second of ``joints`` (written as ``Frame Time: 1/fps``), default 20.
        skeleton: rest skeleton (bone lengths); None measures it from the motion (median bone
            lengths over frames), or, with ``rotations``, the dataset's (:func:`rest_offsets`).
        rotations: optional (T, 21, 4) unit quaternions (x, y, z, w), the local rotations of the
            motion on ``skeleton`` (the sampler's ``FrameChunk.rotations``): written as they are,
            with the hips translation from ``joints[:, 0]``, instead of being solved from the
            joints. The file then plays back their forward kinematics, which for the runtime's
            projected motion is ``joints`` (float rounding).
        tpose: rest pose of the file: False (default) the dataset's own hierarchy, whose zero
            rotations lie the body along +X as the dataset's files do; True a T-pose (facing +Z,
            arms along +-X; :func:`tpose_rest_rotations`), with the rotations re-expressed so
            that the file plays back the same positions.
    Returns:
        The path written. Units in the file are centimetres and degrees (see the module docstring
        for the hierarchy, channels and solving). Reading it back with
        :func:`coamd.data.bvh.read_bvh` and forward kinematics gives ``joints * 100``: within
        float rounding for a pose of the skeleton (the runtime's projected motion, dataset clips),
        up to bone-length differences otherwise.
    Raises:
        BVHExportError: joints or rotations of the wrong shape or with NaN, rotations that are not
            unit quaternions, non-positive ``fps``.
        OSError: the file cannot be written.
    """
    text = bvh_text(joints, fps, skeleton, rotations, tpose)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
