"""Data pipeline behaviour on real clips of the Bandai Namco dataset."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from coamd.data.build import SIDE_SWAP, assign_splits, bvh_text_to_canonical, mirror_label
from coamd.data.captions import CONTENT_PHRASES, HELDOUT_FAMILY, captions_for, measure
from coamd.data.process import facing_angle, mirror, resample
from coamd.data.streams import bone_stream, motion_stream
from coamd.skeleton import JOINT_NAMES, MIRROR, NUM_JOINTS


def _canonical(real_bvh_dir, name):
    return bvh_text_to_canonical((real_bvh_dir / f"{name}.bvh").read_text(), name)[0]


def test_bone_lengths_constant_over_time(real_bvh_dir):
    for path in sorted(real_bvh_dir.glob("*.bvh")):
        joints = _canonical(real_bvh_dir, path.stem)
        lengths = np.linalg.norm(bone_stream(joints), axis=-1)  # (T, 20)
        spread = lengths.max(0) - lengths.min(0)
        # rigid bones: resampling interpolates rotations, not positions, so lengths stay fixed
        assert spread.max() < 1e-4, (path.stem, spread.max())
        assert lengths.min() > 0.02  # every bone has a real length in metres


def test_canonical_start_pose(real_bvh_dir):
    for path in sorted(real_bvh_dir.glob("*.bvh")):
        joints = _canonical(real_bvh_dir, path.stem)
        assert joints.dtype == np.float32 and joints.shape[1:] == (NUM_JOINTS, 3)
        np.testing.assert_allclose(joints[0, 0, [0, 2]], 0.0, atol=1e-5)
        assert abs(facing_angle(joints[:1])[0]) < 1e-4  # facing +Z
        # metres with the floor at y = 0: toes a few cm above it, head 1.3-2.0 m up
        toes_min = joints[:, [16, 20], 1].min()
        assert 0.0 < toes_min < 0.1, toes_min
        assert 1.3 < joints[0, JOINT_NAMES.index("Head"), 1] < 2.0
        # left side of a person facing +Z is at +X
        assert joints[0, JOINT_NAMES.index("UpperLeg_L"), 0] > joints[0, JOINT_NAMES.index("UpperLeg_R"), 0]


def test_root_channels_are_applied(real_bvh_dir):
    # dataset-1_walk_normal_002 carries its forward motion in joint_Root: a walk must travel
    joints = _canonical(real_bvh_dir, "dataset-1_walk_normal_002")
    facts = measure(joints)
    assert facts.travel == "forward" and 0.8 < facts.speed_mps < 2.5, facts


def test_resample_30_to_20_fps(real_bvh_dir):
    from coamd.data.bvh import canonical_joint_positions, read_bvh

    bvh = read_bvh(real_bvh_dir / "dataset-2_walk_normal_001.bvh")
    bvh.frame_time = 1 / 30.0  # the file says 0.0333333
    raw = canonical_joint_positions(bvh)  # centimetres
    out = resample(raw, 30.0, 20.0)
    # rotation-space resampling agrees with position interpolation to within a few cm on a walk
    rot = canonical_joint_positions(bvh, fps=20.0)
    assert rot.shape == out.shape
    assert np.abs(rot - out).max() < 3.0 and np.abs(rot[::2] - raw[::3]).max() < 1e-2
    assert out.shape[0] == int((raw.shape[0] - 1) * 2 / 3) + 1
    np.testing.assert_allclose(out[3], 0.5 * raw[4] + 0.5 * raw[5])  # t = 0.15 s
    np.testing.assert_allclose(out[2], raw[3])  # t = 0.1 s is frame 3 at 30 fps


def test_mirror_twice_is_identity_and_swaps_sides(real_bvh_dir):
    joints = _canonical(real_bvh_dir, "dataset-2_wave-left-hand_normal_001")
    np.testing.assert_allclose(mirror(mirror(joints)), joints)
    m = mirror(joints)
    hl, hr = JOINT_NAMES.index("Hand_L"), JOINT_NAMES.index("Hand_R")
    np.testing.assert_allclose(m[:, hr, 0], -joints[:, hl, 0])
    assert MIRROR[MIRROR[hl]] == hl
    # the waving hand measured from the motion changes side with the mirror
    assert measure(joints).active_hand == "left"
    assert measure(m).active_hand == "right"


def test_mirror_labels():
    for a, b in SIDE_SWAP.items():
        assert mirror_label(a) == b and mirror_label(b) == a
    assert mirror_label("walk") == "walk" and mirror_label("wave-both-hands") == "wave-both-hands"


def test_turn_direction_follows_the_motion(real_bvh_dir):
    joints = _canonical(real_bvh_dir, "dataset-2_walk-turn-left_elderly_001")
    f, fm = measure(joints), measure(mirror(joints))
    assert f.turn_deg > 45 and fm.turn_deg < -45
    assert any("turns left" in c["text"] for c in captions_for("walk-turn-left", "elderly", f))


def test_captions_mention_the_labelled_action(dataset):
    for clip in dataset.clips[::97]:
        verb, gerund = CONTENT_PHRASES[clip.content]
        assert clip.captions and {c["family"] for c in clip.captions} >= {"A", HELDOUT_FAMILY}
        for cap in clip.captions:
            text = cap["text"].lower()
            assert verb in text or gerund in text, (clip.id, cap["text"])


def test_heldout_family_is_separate(dataset):
    clip = dataset.split("train")[0]
    train_caps, held = clip.caption_texts(), clip.caption_texts(heldout=True)
    assert train_caps and held and not set(train_caps) & set(held)


def test_split_has_no_leak(dataset):
    by_source = {}
    for c in dataset.clips:
        by_source.setdefault(c.source, set()).add(c.split)
    assert all(len(s) == 1 for s in by_source.values())  # mirror stays with its source clip
    splits = {s: {c.source for c in dataset.split(s)} for s in ("train", "val", "test")}
    assert not splits["train"] & splits["test"] and not splits["train"] & splits["val"]
    assert not splits["val"] & splits["test"]
    # both sets and every content of set 2 reach the test split
    test = dataset.split("test")
    assert {c.source.split("_")[0] for c in test} == {"dataset-1", "dataset-2"}


def test_split_is_deterministic():
    names = [(2, "walk", f"dataset-2_walk_normal_{i:03d}") for i in range(30)]
    assert assign_splits(names) == assign_splits(list(reversed(names)))
    counts = {s: list(assign_splits(names).values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 24, "val": 3, "test": 3}


def test_dataset_card_and_stats(dataset):
    card = dataset.card
    for key in ("clips", "clips_skipped", "frames", "fps", "joints", "splits", "contents", "styles", "captions"):
        assert key in card
    assert card["fps"] == 20.0 and card["joints"] == list(JOINT_NAMES)
    assert sum(card["splits"].values()) == len(dataset.clips)
    assert card["frames"] == sum(c.joints.shape[0] for c in dataset.clips)
    assert dataset.stats["bone_std"].shape == (20, 3) and dataset.stats["motion_mean"].shape == (21, 3)
    assert np.all(dataset.stats["joint_std"] > 0)


def test_streams_shapes_and_values(dataset):
    j = dataset.split("test")[0].joints
    b, m = bone_stream(j), motion_stream(j)
    assert b.shape == (j.shape[0], 20, 3) and m.shape == j.shape
    np.testing.assert_allclose(m[:-1], j[1:] - j[:-1])
    assert np.all(m[-1] == 0)
    import torch

    np.testing.assert_allclose(bone_stream(torch.from_numpy(j)).numpy(), b)


def test_convert_cli_writes_canonical_motion(real_bvh_dir, tmp_path):
    from coamd.io.motion import load_motion

    out = tmp_path / "clip.npz"
    r = subprocess.run([sys.executable, "-m", "coamd.cli", "data", "convert",
                        str(real_bvh_dir / "dataset-1_kick_normal_001.bvh"), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = load_motion(out)
    assert m.fps == 20.0 and m.joints.shape[1:] == (21, 3)
    np.testing.assert_allclose(m.joints, _canonical(real_bvh_dir, "dataset-1_kick_normal_001"))


def test_render_gif_and_mp4(dataset, tmp_path):
    from coamd.io.render import render_motion
    import imageio.v2 as imageio

    joints = dataset.split("test")[0].joints[:6]
    gif = render_motion(joints, tmp_path / "a.gif", size_px=160)
    frames = imageio.mimread(gif)
    assert len(frames) == 6 and frames[0].std() > 0  # something was drawn
    mp4 = render_motion(joints, tmp_path / "a.mp4", size_px=160)
    assert mp4.stat().st_size > 1000
    with pytest.raises(ValueError):
        render_motion(joints, tmp_path / "a.png")
