"""benchmarks/style_fidelity.py: gait energy measured on real clips."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _slowed(joints: np.ndarray, factor: int) -> np.ndarray:
    """The same motion played ``factor`` times slower (linear interpolation between frames)."""
    t = np.arange(len(joints))
    tt = np.linspace(0, len(joints) - 1, factor * (len(joints) - 1) + 1)
    flat = joints.reshape(len(joints), -1)
    return np.stack([np.interp(tt, t, flat[:, k]) for k in range(flat.shape[1])], 1).reshape(len(tt), 21, 3)


def test_gait_energy_tells_energetic_from_elderly_runs_and_follows_playback_speed(dataset):
    from benchmarks.style_fidelity import gait_energy, pair_durations

    runs = {s: [c.joints for c in dataset.split("train") if c.content == "run" and c.style == s and not c.mirrored]
            for s in ("active", "elderly")}
    mean = {s: {k: np.mean([gait_energy(j)[k] for j in v]) for k in ("speed_mps", "bounce_cm", "arm_swing_cm")}
            for s, v in runs.items()}
    for k in mean["active"]:
        assert mean["active"][k] > 1.2 * mean["elderly"][k], (k, mean)

    clip = runs["active"][0]
    a, b = gait_energy(clip), gait_energy(_slowed(clip, 2))
    assert b["speed_mps"] == pytest.approx(a["speed_mps"] / 2, rel=0.05)
    assert b["bounce_cm"] == pytest.approx(a["bounce_cm"], rel=0.1)
    assert b["arm_swing_cm"] == pytest.approx(a["arm_swing_cm"], rel=0.1)
    with pytest.raises(ValueError, match="21, 3"):
        gait_energy(clip[:, :20])

    durs = pair_durations(dataset)
    n = sum(1 for c in dataset.split("train") if c.content == "run" and c.style == "active" and not c.mirrored)
    assert len(durs["run", "active"]) == n and all(d > 0 for d in durs["run", "active"])
