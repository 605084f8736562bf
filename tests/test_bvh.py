"""BVH reader: agreement with a peer library on real clips, and bad-file handling.

The peer is ``bvhio`` (PyPI). It follows the BVH standard the way the dataset needs: a joint's
position channels, when present, replace its OFFSET as the local translation (``readAsBvh`` starts
each keyframe from the OFFSET and overwrites it with the Xposition/Yposition/Zposition channels,
for every joint, not only the root), and rotations are intrinsic in the listed channel order
(Z, X, Y here). ``readAsHierarchy`` + ``loadPose(frame)`` + ``PositionWorld`` is its own forward
kinematics, which we compare with ours on every joint of every frame.
"""
from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from coamd.data.bvh import BVHError, forward_kinematics, parse_bvh, read_bvh

bvhio = pytest.importorskip("bvhio", reason="bvhio (test extra) is the peer BVH library")

SET1 = "Bandai-Namco-Research-Motiondataset-1"


def _peer_positions(path: Path, names: list[str]) -> np.ndarray:
    """(T, J, 3) world positions of ``names`` from bvhio's own forward kinematics."""
    root = bvhio.readAsHierarchy(str(path))
    joints = {j.Name: j for j, _, _ in root.layout()}
    T = root.getKeyframeRange()[1] + 1
    out = np.zeros((T, len(names), 3))
    for f in range(T):
        root.loadPose(f)
        for k, n in enumerate(names):
            out[f, k] = tuple(joints[n].PositionWorld)
    return out


def test_forward_kinematics_agrees_with_bvhio(real_bvh_dir):
    worst = {}
    for path in sorted(real_bvh_dir.glob("*.bvh")):
        bvh = read_bvh(path)
        ours = forward_kinematics(bvh)  # cm, every joint incl. joint_Root
        peer = _peer_positions(path, bvh.names)
        assert peer.shape == ours.shape, path.name
        err = np.linalg.norm(ours - peer, axis=-1)  # cm
        worst[path.stem] = float(err.max()) * 10.0  # mm
        assert err.max() < 0.1, f"{path.name}: max FK disagreement {err.max() * 10:.3f} mm"
    print("max FK disagreement with bvhio per clip (mm):", {k: round(v, 4) for k, v in worst.items()})
    assert len(worst) >= 6


def test_root_channels_move_the_body_in_both_readers(real_bvh_dir):
    # dataset-1_walk_normal_002 carries its forward motion in joint_Root's channels: both readers
    # must apply them, so the hips travel well beyond what the Hips channels alone say.
    path = real_bvh_dir / "dataset-1_walk_normal_002.bvh"
    bvh = read_bvh(path)
    root_z = bvh.motion[:, 2]
    assert np.ptp(root_z) > 50.0  # cm of forward motion in joint_Root
    hips = bvh.names.index("Hips")
    ours = forward_kinematics(bvh)[:, hips]
    peer = _peer_positions(path, ["Hips"])[:, 0]
    hips_channels = bvh.motion[:, 6 * hips: 6 * hips + 3]
    travel = np.linalg.norm(ours[-1] - ours[0])
    assert travel > np.linalg.norm(hips_channels[-1] - hips_channels[0]) + 50.0
    np.testing.assert_allclose(ours, peer, atol=0.01)


@pytest.mark.parametrize("damage", ["truncated_motion", "missing_frames_header", "broken_hierarchy",
                                    "non_numeric", "empty"])
def test_corrupt_bvh_raises_bvherror_naming_the_file(real_bvh_dir, tmp_path, damage):
    text = (real_bvh_dir / "dataset-1_walk_normal_002.bvh").read_text()
    head, body = text.split("MOTION", 1)
    if damage == "truncated_motion":
        bad = text[: len(text) - len(body) // 3]
    elif damage == "missing_frames_header":
        bad = head + "MOTION\n" + body.split("\n", 3)[-1]
    elif damage == "broken_hierarchy":
        bad = head.rstrip()[:-1] + "\nMOTION" + body  # the hierarchy's last "}" is gone
    elif damage == "non_numeric":
        lines = body.split("\n")
        lines[5] = lines[5].replace(" ", " x", 1)
        bad = head + "MOTION" + "\n".join(lines)
    else:
        bad = ""
    path = tmp_path / f"dataset-1_broken_{damage}.bvh"
    path.write_text(bad)
    with pytest.raises(BVHError, match=path.name):
        read_bvh(path)


def test_intact_clip_parses(real_bvh_dir):
    # the control for the corrupt cases above: the same clip undamaged parses fully
    bvh = parse_bvh((real_bvh_dir / "dataset-1_walk_normal_002.bvh").read_text(), "x")
    assert bvh.motion.shape == (31, 22 * 6) and abs(bvh.fps - 30.0) < 0.01


@pytest.fixture(scope="module")
def set1_cfg(raw_dir, tmp_path_factory) -> Path:
    """The real ``cfg/*_label.txt`` files of set 1 (read from the archive)."""
    out = tmp_path_factory.mktemp("cfg1")
    with tarfile.open(raw_dir / f"{SET1}.tar.xz", "r:xz") as tf:
        for m in tf:
            p = Path(m.name)
            if p.parent.name == "cfg" and p.suffix == ".txt":
                (out / p.name).write_bytes(tf.extractfile(m).read())
    assert {p.name for p in out.iterdir()} >= {"content_label.txt", "style_label.txt"}
    return out


def test_build_skips_and_counts_a_corrupt_clip(real_bvh_dir, set1_cfg, tmp_path, capsys):
    from coamd.data.build import build_dataset

    src = tmp_path / "src" / SET1
    (src / "data").mkdir(parents=True)
    shutil.copytree(set1_cfg, src / "cfg")
    good = ["dataset-1_walk_normal_002", "dataset-1_kick_normal_001"]
    for name in good:
        for ext in (".bvh", ".json"):
            shutil.copy(real_bvh_dir / f"{name}{ext}", src / "data" / f"{name}{ext}")
    # a real clip cut off in the middle of its motion data, with a valid label file
    bad = "dataset-1_walk-left_happy_999"
    text = (real_bvh_dir / "dataset-1_walk-left_happy_001.bvh").read_text()
    (src / "data" / f"{bad}.bvh").write_text(text[: int(len(text) * 0.7)])
    shutil.copy(real_bvh_dir / "dataset-1_walk-left_happy_001.json", src / "data" / f"{bad}.json")

    out = tmp_path / "out"
    card = build_dataset(src.parent, out, workers=1, limit=None, progress=False)
    printed = capsys.readouterr()
    assert card["clips"] == 3 and card["clips_read"] == 2 and card["clips_skipped"] == 1
    assert card["skipped"][0]["file"] == f"{bad}.bvh"
    assert bad in card["skipped"][0]["error"] and "truncated" in card["skipped"][0]["error"]
    assert f"{bad}.bvh" in printed.out + printed.err  # reported by name while building
    saved = json.loads((out / "dataset_card.json").read_text())
    assert saved["clips_skipped"] == 1
    clips = json.loads((out / "clips.json").read_text())
    assert sorted({c["source"] for c in clips}) == sorted(good)
    assert len(clips) == 4  # two clips plus their mirrors


def test_missing_source_is_one_error_line(tmp_path, capsys):
    from coamd.cli import main

    out = tmp_path / "out"
    rc = main(["data", "build", "--source", "/nonexistent", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 2
    lines = [ln for ln in printed.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "/nonexistent" in lines[0], printed.err
    assert "Traceback" not in printed.err + printed.out
    assert not out.exists()
