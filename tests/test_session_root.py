"""benchmarks/session_root.py: the session root-speed diagnostic on the shipped weights."""
from __future__ import annotations

import json

import numpy as np


def test_session_root_records_every_continuing_window_and_its_sources(tmp_path):
    """Every window after the first (2 sessions x 3 windows -> 4) is recorded; the frames sent
    are the decoded ones with the seam offset eased out, so they differ from the decoded speeds
    while the kept history's speeds are the session's own earlier raw frames (all finite, > 0)."""
    from benchmarks.session_root import main

    out = tmp_path / "root"
    assert main(["--texts", "a person runs", "--sessions", "2", "--windows", "3", "--fresh", "2",
                 "--out", str(out)]) == 0
    r = json.loads(out.with_suffix(".json").read_text())["texts"]["a person runs"]
    s = r["session"]
    assert s["windows"] == 4
    for src in ("kept", "decoded", "sent", "displacement head"):
        v = np.asarray(s[src])
        assert v.shape == (8,) and np.isfinite(v).all() and (v > 0).all()
    assert not np.allclose(s["sent"], s["decoded"])
    assert r["fresh"]["motions"] == 2 and r["fresh"]["decoded"] > 0.02   # a run moves > 0.4 m/s
    assert "| a person runs | displacement head |" in out.with_suffix(".md").read_text()
