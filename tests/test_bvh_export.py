"""BVH export (positions -> rotations on the dataset's skeleton) on real clips.

Round trip: joints -> write_bvh -> our BVH reader + forward kinematics -> joints, on clips of the
processed dataset's test split; the file also loads in the peer library ``bvhio`` and its forward
kinematics gives the same joints. On raw dataset clips, the rotations we solve for the joints the
positions fully determine equal the rotations stored in the source file.
"""
from __future__ import annotations

import numpy as np
import pytest

from coamd.data.bvh import (canonical_joint_positions, euler_to_matrix, forward_kinematics,
                            local_transforms, read_bvh)
from coamd.io.bvh_export import (CHANNELS, DATASET_SKELETON, REST_DIRECTIONS, ROOT_NAME,
                                 BVHExportError, RotationStream, joints_to_local_rotations,
                                 local_rotations_to_joints, rest_offsets, skeleton_from_joints,
                                 solve_rotations, tpose_rest_rotations, write_bvh)
from coamd.io.rotations import quat_to_matrix
from coamd.skeleton import FPS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS

# Joints whose rotation the 21 positions determine completely: three children (Hips, Chest), or
# a hinge below them (upper arm: elbow, thigh: knee, shin: knee hinge about its own axis).
DETERMINED = ("Hips", "Chest", "UpperArm_L", "UpperArm_R", "UpperLeg_L", "UpperLeg_R",
              "LowerLeg_L", "LowerLeg_R")


def _fk_of_file(path) -> np.ndarray:
    """Our reader's forward kinematics of an exported file, canonical joints in metres."""
    return canonical_joint_positions(read_bvh(path)) / 100.0


@pytest.fixture(scope="module")
def test_clips(dataset):
    """Every 7th clip of the test split, deterministic: source clips and mirrored copies."""
    clips = dataset.split("test")
    assert len(clips) > 100
    picked = clips[::7]
    assert {c.mirrored for c in picked} == {False, True}
    return picked


def test_round_trip_on_test_split_clips(test_clips, tmp_path):
    errs, per_clip_max = [], []
    for k, clip in enumerate(test_clips):
        path = write_bvh(tmp_path / f"{k}.bvh", clip.joints, fps=FPS)
        back = _fk_of_file(path)
        assert back.shape == clip.joints.shape
        e = np.linalg.norm(back - clip.joints, axis=-1)  # metres
        errs.append(e.ravel())
        per_clip_max.append(e.max())
    e = np.concatenate(errs)
    print(f"\nround trip on {len(test_clips)} test clips ({e.size // NUM_JOINTS} frames): "
          f"mean {e.mean() * 1e6:.2f} um, p99 {np.percentile(e, 99) * 1e6:.2f} um, "
          f"max {e.max() * 1e6:.2f} um")
    assert e.mean() < 0.02  # the target: 2 cm mean
    assert np.median(per_clip_max) < 0.02
    assert e.max() < 0.05


def test_round_trip_of_non_rigid_joints(test_clips, tmp_path):
    """Generated motions are not exactly rigid: real test clips plus smooth per-joint noise
    (5 mm per axis, averaged over 5 frames, like a decoder's error) still come back within 2 cm
    on average; the toes land on the input's toes (the legs are solved by two-bone IK so foot
    contacts survive the export, the knees take the bone-length differences), and the export
    stays near the clean clip (mean distance within 25 % of the noise's; the knees, which absorb
    the noise of both leg bones, within 2.5x)."""
    rng = np.random.default_rng(0)
    kernel = np.ones(5) / np.sqrt(5.0)  # keeps the per-sample standard deviation
    to_input, to_clean, noise = [], [], []
    for k, clip in enumerate(test_clips[:30]):
        x = clip.joints.astype(np.float64)
        n = rng.normal(scale=0.005, size=x.shape)
        n = np.apply_along_axis(lambda v: np.convolve(v, kernel, "same"), 0, n)
        back = _fk_of_file(write_bvh(tmp_path / f"{k}.bvh", x + n))
        to_input.append(np.linalg.norm(back - (x + n), axis=-1))
        to_clean.append(np.linalg.norm(back - x, axis=-1))
        noise.append(np.linalg.norm(n, axis=-1))
    to_input, to_clean, noise = map(np.concatenate, (to_input, to_clean, noise))
    toes = [JOINT_INDEX["Toes_L"], JOINT_INDEX["Toes_R"]]
    knees = [JOINT_INDEX["LowerLeg_L"], JOINT_INDEX["LowerLeg_R"]]
    print(f"\nnoisy input (mean |noise| {noise.mean() * 1000:.1f} mm): round trip to the input mean "
          f"{to_input.mean() * 1000:.2f} mm, max {to_input.max() * 1000:.1f} mm, toes median "
          f"{np.median(to_input[:, toes]) * 1000:.3f} mm; to the clean clip mean {to_clean.mean() * 1000:.2f} mm, "
          f"knees {to_clean[:, knees].mean() * 1000:.1f} mm")
    assert to_input.mean() < 0.02
    assert np.median(to_input[:, toes]) < 1e-6 and np.percentile(to_input[:, toes], 95) < 0.002
    assert to_clean.mean() < 1.25 * noise.mean()
    assert to_clean[:, knees].mean() < 2.5 * noise.mean()


def test_file_layout_follows_the_dataset(test_clips, tmp_path):
    clip = test_clips[0]
    path = write_bvh(tmp_path / "a.bvh", clip.joints, fps=FPS)
    bvh = read_bvh(path)
    assert bvh.names == [ROOT_NAME, *JOINT_NAMES]
    assert [bvh.names[p] if p >= 0 else None for p in bvh.parents[1:]] == \
        [ROOT_NAME] + [JOINT_NAMES[p] for p in PARENTS[1:]]
    assert all(tuple(c) == CHANNELS for c in bvh.channels)
    assert bvh.motion.shape == (clip.joints.shape[0], 22 * 6)
    assert abs(bvh.fps - FPS) < 1e-4
    text = path.read_text()
    assert text.count("End Site") == 5
    trans, rots = local_transforms(bvh)
    # centimetres; the Hips carry the translation, every other joint's position channels are its
    # (constant) rest offset along the dataset's offset direction
    np.testing.assert_allclose(trans[:, 1], clip.joints[:, 0] * 100, atol=1e-3)
    np.testing.assert_allclose(trans[:, 0], 0.0)
    lengths = np.linalg.norm(trans[0, 2:], axis=-1)
    np.testing.assert_allclose(trans[0, 2:] / lengths[:, None], REST_DIRECTIONS[1:], atol=1e-5)
    np.testing.assert_allclose(trans[:, 2:], np.broadcast_to(trans[0, 2:], trans[:, 2:].shape), atol=1e-9)
    # bone lengths come from the motion (median over frames)
    measured = skeleton_from_joints(clip.joints).lengths[1:] * 100
    np.testing.assert_allclose(lengths, measured, atol=1e-3)
    # a rotation-driven file: joints rotate over time
    euler = bvh.motion.reshape(len(bvh.motion), 22, 6)[:, 1:, 3:]
    assert np.ptp(euler, axis=0).max() > 10.0


def test_file_loads_in_bvhio_with_the_same_joints(test_clips, tmp_path):
    bvhio = pytest.importorskip("bvhio", reason="bvhio (test extra) is the peer BVH library")
    for k, clip in enumerate([c for c in test_clips if not c.mirrored][:2] +
                             [c for c in test_clips if c.mirrored][:1]):
        path = write_bvh(tmp_path / f"{k}.bvh", clip.joints, fps=FPS)
        root = bvhio.readAsHierarchy(str(path))
        joints = {j.Name: j for j, _, _ in root.layout()}
        assert set(joints) == {ROOT_NAME, *JOINT_NAMES}
        T = clip.joints.shape[0]
        assert root.getKeyframeRange()[1] + 1 == T
        peer = np.zeros((T, NUM_JOINTS, 3))
        for f in range(T):
            root.loadPose(f)
            for j, name in enumerate(JOINT_NAMES):
                peer[f, j] = tuple(joints[name].PositionWorld)
        e = np.linalg.norm(peer / 100.0 - clip.joints, axis=-1)
        print(f"\nbvhio FK of exported {clip.id}: mean {e.mean() * 1e6:.2f} um, max {e.max() * 1e6:.2f} um")
        assert e.mean() < 0.02 and e.max() < 0.05


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (np.trace(np.swapaxes(a, -1, -2) @ b, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_solved_rotations_match_the_source_file(real_bvh_dir):
    """Raw dataset clips: global rotations of the fully determined joints come back as stored."""
    worst = {}
    for path in sorted(real_bvh_dir.glob("*.bvh")):
        bvh = read_bvh(path)
        trans, rots = local_transforms(bvh)
        g = np.zeros_like(rots)
        for j, p in enumerate(bvh.parents):
            g[:, j] = rots[:, j] if p < 0 else g[:, p] @ rots[:, j]
        joints = canonical_joint_positions(bvh) / 100.0
        G, _, _ = solve_rotations(joints)
        for name in DETERMINED:
            a = G[:, JOINT_INDEX[name]]
            b = g[:, bvh.names.index(name)]
            cos = (np.trace(np.swapaxes(a, -1, -2) @ b, axis1=-2, axis2=-1) - 1) / 2
            ang = np.degrees(np.arccos(np.clip(cos, -1, 1)))
            worst[name] = max(worst.get(name, 0.0), float(ang.max()))
            assert np.median(ang) < 1.0, (path.name, name, np.median(ang))
            assert np.percentile(ang, 95) < 5.0, (path.name, name, np.percentile(ang, 95))
        # the spine's twist is shared with the chest: close to the stored split, not exact
        spine = _angle_deg(G[:, JOINT_INDEX["Spine"]], g[:, bvh.names.index("Spine")])
        assert np.median(spine) < 3.0, (path.name, np.median(spine))
        worst["Spine"] = max(worst.get("Spine", 0.0), float(np.median(spine)))
    print("\nmedian angle (Spine) / max angle (others) to the source file's rotation (deg):", {k: round(v, 1) for k, v in worst.items()})


def test_rotations_are_as_smooth_as_the_source(real_bvh_dir):
    """No twist pops: frame-to-frame changes of our local rotations stay within those of the
    rotations stored in the source files (99th percentile per joint, all real clips)."""
    ours, src = [], []
    for path in sorted(real_bvh_dir.glob("*.bvh")):
        bvh = read_bvh(path)
        _, rots = local_transforms(bvh)
        rots = rots[:, [bvh.names.index(n) for n in JOINT_NAMES]]
        _, local, _ = solve_rotations(canonical_joint_positions(bvh) / 100.0)
        ours.append(_angle_deg(local[:-1], local[1:]))
        src.append(_angle_deg(rots[:-1], rots[1:]))
    ours, src = np.percentile(np.concatenate(ours), 99, axis=0), np.percentile(np.concatenate(src), 99, axis=0)
    print("\n99th percentile rotation change per frame at 30 fps (deg), ours / source:",
          {n: f"{o:.1f}/{s:.1f}" for n, o, s in zip(JOINT_NAMES, ours, src)})
    for j, name in enumerate(JOINT_NAMES):
        assert ours[j] <= 1.5 * src[j] + 1.0, (name, ours[j], src[j])


def test_local_quaternions_drive_the_skeleton(real_bvh_dir, tmp_path):
    joints = canonical_joint_positions(read_bvh(real_bvh_dir / "dataset-2_walk_normal_001.bvh")) / 100.0
    q = joints_to_local_rotations(joints)
    assert q.shape == (joints.shape[0], NUM_JOINTS, 4) and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-5)
    skel = skeleton_from_joints(joints)
    back = local_rotations_to_joints(q, joints[:, 0], skel)
    assert np.linalg.norm(back - joints, axis=-1).max() < 2e-3  # rigid real clip: float32 rounding
    # the quaternions are the rotations written to the file's Euler channels
    path = write_bvh(tmp_path / "w.bvh", joints, fps=30.0)
    bvh = read_bvh(path)
    euler = bvh.motion.reshape(len(bvh.motion), 22, 6)[:, 1:, 3:]
    R_file = euler_to_matrix(euler, "ZXY")
    R_q = quat_to_matrix(q.astype(np.float64))
    cos = (np.trace(np.swapaxes(R_file, -1, -2) @ R_q, axis1=-2, axis2=-1) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.05
    # the Hips row of the file is where forward kinematics starts
    np.testing.assert_allclose(forward_kinematics(bvh)[:, 1] / 100.0, joints[:, 0], atol=1e-6)


def _quat_angle_deg(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    dot = np.abs(np.sum(q1.astype(np.float64) * q2, axis=-1))
    return 2 * np.degrees(np.arccos(np.clip(dot, 0.0, 1.0)))


def test_streamed_rotations_do_not_depend_on_chunking(test_clips):
    """A stream converts 4-frame chunks: it gives the same rotations in chunks as at once, drives
    the dataset skeleton back onto the joints, and is as smooth as a whole-clip conversion."""
    step_stream, step_whole, naive_gap = [], [], []
    for clip in test_clips[:20]:
        x = clip.joints
        whole = RotationStream().push(x)
        stream = RotationStream()
        chunks = np.concatenate([stream.push(x[i:i + 4]) for i in range(0, len(x), 4)])
        assert chunks.shape == (len(x), NUM_JOINTS, 4)
        assert _quat_angle_deg(chunks, whole).max() < 0.1, clip.id  # float32 rounding only
        back = local_rotations_to_joints(chunks, x[:, 0], DATASET_SKELETON)
        err = np.linalg.norm(back - x, axis=-1)
        # exact but where a straight limb's held bend direction, or a bend turning faster than
        # the stream's limit (POLE_RATE_DEG), differs from the clip's for a few frames, and where
        # a straight arm or leg keeps the IK's smallest bend (_REACH: a millimetre or two)
        assert np.median(err) < 1e-4 and np.percentile(err, 99) < 2e-3 and err.max() < 0.02, \
            (clip.id, err.max())
        step_stream.append(_quat_angle_deg(chunks[:-1], chunks[1:]))
        offline = joints_to_local_rotations(x, DATASET_SKELETON)
        # what converting each chunk on its own would do (printed only)
        naive = np.concatenate([joints_to_local_rotations(x[i:i + 4], DATASET_SKELETON)
                                for i in range(0, len(x), 4)])
        naive_gap.append(_quat_angle_deg(naive, offline).max())
        step_whole.append(_quat_angle_deg(offline[:-1], offline[1:]))
    p_stream = np.percentile(np.concatenate(step_stream), 99, axis=0)
    p_whole = np.percentile(np.concatenate(step_whole), 99, axis=0)
    print("\n99th percentile rotation change per frame at 20 fps (deg), streamed / whole clip:",
          {n: f"{a:.1f}/{b:.1f}" for n, a, b in zip(JOINT_NAMES, p_stream, p_whole)})
    print(f"per-chunk joints_to_local_rotations instead of a stream: up to {max(naive_gap):.1f} deg "
          f"from the whole-clip rotations on {len(naive_gap)} clips")
    assert np.all(p_stream <= p_whole + 2.0)


def test_reference_hierarchy_is_the_datasets(real_bvh_dir):
    """The shipped offset directions and bone lengths are those of the real files."""
    for path in sorted(real_bvh_dir.glob("*.bvh")):
        bvh = read_bvh(path)
        idx = [bvh.names.index(n) for n in JOINT_NAMES]
        offs = bvh.offsets[idx][1:]
        lengths = np.linalg.norm(offs, axis=-1)
        np.testing.assert_allclose(offs / lengths[:, None], REST_DIRECTIONS[1:], atol=2e-3,
                                   err_msg=path.name)
        np.testing.assert_allclose(lengths / 100.0, DATASET_SKELETON.lengths[1:], atol=1e-4,
                                   err_msg=path.name)


@pytest.fixture(scope="module")
def streamed_motions(dataset):
    """Two generated motions as the sampler streams them (default skeleton projection): joints
    and the chunks' rotations."""
    import torch

    from coamd.runtime import load_engine
    from coamd.sampling import GenerationRequest

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        eng = load_engine("torch", dataset=dataset.root, guidance=False)
        out = []
        for seed, text in enumerate(("a person raises the left hand", "a person kicks with the right leg")):
            chunks = list(eng.sampler.stream(GenerationRequest(text, duration_s=3.0, seed=seed, guidance=False,
                                                               iterations=6, ode_steps=6, order="left_to_right")))
            out.append((np.concatenate([c.joints for c in chunks]), np.concatenate([c.rotations for c in chunks])))
        return out
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("tpose", [False, True])
def test_projected_motion_exports_to_the_streamed_positions(streamed_motions, tmp_path, tpose):
    """The runtime's motion written with its rotations plays back the streamed positions (our
    reader and bvhio), with the dataset's rest or a T-pose rest, and the file's rotations are the
    streamed ones (dataset rest)."""
    bvhio = pytest.importorskip("bvhio", reason="bvhio (test extra) is the peer BVH library")
    for k, (joints, rot) in enumerate(streamed_motions):
        path = write_bvh(tmp_path / f"{k}.bvh", joints, rotations=rot, tpose=tpose)
        back = _fk_of_file(path)
        err = np.linalg.norm(back - joints, axis=-1)
        assert err.max() < 1e-3, err.max()
        root = bvhio.readAsHierarchy(str(path))
        nodes = {j.Name: j for j, _, _ in root.layout()}
        peer = np.zeros(joints.shape)
        for f in range(0, len(joints), 7):
            root.loadPose(f)
            peer[f] = [tuple(nodes[n].PositionWorld) for n in JOINT_NAMES]
        err_peer = np.linalg.norm(peer[::7] / 100.0 - joints[::7], axis=-1)
        assert err_peer.max() < 1e-3, err_peer.max()
        print(f"\nexported stream (tpose={tpose}): our reader max {err.max() * 1e6:.1f} um, "
              f"bvhio max {err_peer.max() * 1e6:.1f} um")
        bvh = read_bvh(path)
        offs = bvh.offsets[[bvh.names.index(n) for n in JOINT_NAMES[1:]]] / 100.0  # the rest skeleton
        np.testing.assert_allclose(np.linalg.norm(offs, axis=-1), np.linalg.norm(rest_offsets()[1:], axis=-1),
                                   atol=1e-8)
        if not tpose:
            euler = bvh.motion.reshape(len(bvh.motion), 22, 6)[:, 1:, 3:]
            R_file = euler_to_matrix(euler, "ZXY")
            assert _angle_deg(R_file, quat_to_matrix(rot.astype(np.float64))).max() < 1e-3


def test_tpose_rest(tmp_path, test_clips):
    """With tpose=True, zero rotations are a T-pose: the file's OFFSETs put the arms out along
    +-X at one height, the legs straight down, the spine up, facing +Z."""
    clip = test_clips[0]
    bvh = read_bvh(write_bvh(tmp_path / "t.bvh", clip.joints[:10], tpose=True))
    idx = {n: bvh.names.index(n) for n in JOINT_NAMES}
    rest = np.zeros((NUM_JOINTS, 3))
    for j, n in enumerate(JOINT_NAMES[1:], 1):
        rest[j] = rest[PARENTS[j]] + bvh.offsets[idx[n]]
    up, left = np.array([0, 1, 0]), np.array([1, 0, 0])
    for n, direction in (("Spine", up), ("Neck", up), ("LowerArm_L", left), ("Hand_L", left),
                         ("LowerArm_R", -left), ("Hand_R", -left), ("LowerLeg_L", -up), ("Foot_R", -up)):
        j = JOINT_INDEX[n]
        d = rest[j] - rest[PARENTS[j]]
        np.testing.assert_allclose(d / np.linalg.norm(d), direction, atol=1e-6, err_msg=n)
    assert rest[JOINT_INDEX["Toes_L"], 2] > rest[JOINT_INDEX["Foot_L"], 2] + 5.0  # feet forward (cm)
    R = tpose_rest_rotations()
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    # same positions as the dataset-rest file
    back = _fk_of_file(tmp_path / "t.bvh")
    np.testing.assert_allclose(back, _fk_of_file(write_bvh(tmp_path / "d.bvh", clip.joints[:10])), atol=1e-6)


def test_rotations_argument_is_checked(tmp_path, test_clips):
    x = test_clips[0].joints[:6]
    with pytest.raises(BVHExportError, match="rotations must be"):
        write_bvh(tmp_path / "x.bvh", x, rotations=np.zeros((5, NUM_JOINTS, 4)))
    with pytest.raises(BVHExportError, match="unit quaternions"):
        write_bvh(tmp_path / "x.bvh", x, rotations=np.ones((6, NUM_JOINTS, 4)))
    assert not (tmp_path / "x.bvh").exists()


@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 20, 3)), "shape"),
    (np.zeros((0, 21, 3)), "shape"),
    (np.full((4, 21, 3), np.nan), "NaN"),
])
def test_bad_joints_are_rejected(tmp_path, bad, message):
    with pytest.raises(BVHExportError, match=message):
        write_bvh(tmp_path / "x.bvh", bad)
    assert not (tmp_path / "x.bvh").exists()


def test_bad_fps_is_rejected(tmp_path, real_bvh_dir):
    joints = canonical_joint_positions(read_bvh(real_bvh_dir / "dataset-1_walk_normal_002.bvh")) / 100.0
    for fps in (0.0, -20.0, float("nan")):
        with pytest.raises(BVHExportError, match="fps"):
            write_bvh(tmp_path / "x.bvh", joints, fps=fps)
