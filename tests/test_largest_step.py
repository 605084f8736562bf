"""benchmarks/largest_step.py: where the largest projected steps are, on real clips."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from coamd.skeleton import JOINT_INDEX

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def test_worst_steps_name_the_joint_frame_and_bone_lengths(dataset):
    from benchmarks.largest_step import worst_steps

    clips = [np.asarray(c.joints, np.float32) for c in dataset.split("test")[:3]]
    raw = {"a text": clips}
    projected = {"a text": [c.copy() for c in clips]}
    hand = JOINT_INDEX["Hand_R"]
    projected["a text"][1][30, hand, 0] += 0.6            # one frame's hand thrown 0.6 m sideways
    rows = worst_steps(raw, projected, top=2)
    w = rows[0]
    assert (w["text"], w["seed"], w["joint"]) == ("a text", 1001, "Hand_R")
    assert w["to_frame"] in (30, 31)
    assert w["projected_step_m"] > w["raw_step_m"] + 0.5
    assert w["raw_motion_max_step_m"] >= w["raw_step_m"]
    assert [b["bone"] for b in w["bones"]] == ["LowerArm_R->Hand_R", "UpperArm_R->LowerArm_R"]
    for b in w["bones"]:                                    # real clips keep the skeleton's bone lengths
        assert b["raw_m"] == pytest.approx(b["rest_m"], rel=0.05)
    assert rows[1]["projected_step_m"] <= w["projected_step_m"]


def test_real_limbs_turn_slower_than_the_projections_limit(dataset):
    """The projection's limit on a limb's turn per frame (LIMB_TURN_DEG) never touches real
    motion: on real test clips the upper arms and thighs turn well under it, and a clip whose arm
    is thrown across the shoulder in one frame is measured as turning that far."""
    from benchmarks.largest_step import limb_turns
    from coamd.io.bvh_export import LIMB_TURN_DEG

    clips = [np.asarray(c.joints, np.float64) for c in dataset.split("test")[::10]]
    worst = {k: max(limb_turns(c)[k] for c in clips) for k in LIMB_TURN_DEG}
    assert all(0.0 < worst[k] < LIMB_TURN_DEG[k] for k in LIMB_TURN_DEG), worst
    thrown = max(clips, key=len).copy()
    s, e = JOINT_INDEX["UpperArm_L"], JOINT_INDEX["LowerArm_L"]
    thrown[20:, e] = thrown[20:, s] - (thrown[20:, e] - thrown[20:, s])  # the upper arm flips over
    assert limb_turns(thrown)["UpperArm_L"] > 150
