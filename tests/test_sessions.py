"""Endless sessions: prefix-conditioned windows (sampling side) and the Session RPC (server side).

The sampling tests run the shipped checkpoint on ONNX Runtime (unguided, in-process); the server
tests start one real `coamd serve` on loopback with a small session limit.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from coamd.api import pb, pb_grpc
from coamd.client import MotionClient
from coamd.client.process import ServerProcess, ServerStartError
from coamd.sampling.sampler import GenerationRequest
from coamd.sampling.session import MotionSession, SessionConfig
from coamd.skeleton import BONES

ROOT = Path(__file__).resolve().parents[1]
COAMD = str(Path(sys.executable).with_name("coamd"))


def _max_step(joints: np.ndarray) -> float:
    """Largest frame-to-frame displacement of any joint, metres."""
    return float(np.linalg.norm(np.diff(joints, axis=0), axis=-1).max())


@pytest.fixture(scope="module")
def engine():
    from coamd.runtime import load_engine

    return load_engine("onnxruntime", guidance=False)


def _run_windows(engine, session: MotionSession, texts: list[str], starts: list | None = None,
                 windows: list | None = None) -> np.ndarray:
    out = []
    for text in texts:
        w = session.window_request(text)
        if starts is not None:
            starts.append(session.emitted)
        if windows is not None:
            windows.append(w)
        state = engine.sampler.start(w.request)
        while not state.done and not w.complete:
            for chunk in engine.sampler.step([state]):
                for c in chunk if isinstance(chunk, list) else [chunk]:
                    if c is None:
                        continue
                    f = session.accept(w, c.start, c.joints)
                    if f is not None:
                        assert f.start == sum(len(x) for x in out)      # session indices continue
                        out.append(f.joints)
    return np.concatenate(out)


def test_windows_make_one_continuous_motion_on_one_skeleton(engine, dataset):
    cfg = SessionConfig()
    session = MotionSession(GenerationRequest(text="x", seed=4, guidance=False), cfg)
    texts = ["a person walks forward"] * 3 + ["a person waves the right hand"] * 3 + ["a person runs"] * 3
    starts = []
    joints = _run_windows(engine, session, texts, starts)
    assert joints.shape == (cfg.first_frames + 8 * cfg.commit, 21, 3) and np.isfinite(joints).all()
    lengths = np.stack([np.linalg.norm(joints[:, c] - joints[:, p], axis=-1) for c, p in BONES], 1)
    assert (lengths.std(0) / lengths.mean(0)).max() < 1e-4                  # one rigid skeleton
    real_max = max(_max_step(c.joints) for c in dataset.split("test"))
    steps = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)   # (T-1,) largest joint step
    seams = np.asarray(starts[1:]) - 1                                     # step into each window's first frame
    assert steps[seams].max() <= real_max                                  # no jumps at the seams
    assert steps.max() <= 1.25 * real_max   # inside a switch window the model itself may move faster
    hips = joints[:, 0]
    assert np.linalg.norm(hips[-1, [0, 2]] - hips[0, [0, 2]]) > 1.0        # it kept moving: walked, then ran


def test_same_seed_same_session(engine):
    texts = ["a person walks forward", "a person walks forward", "a person bows"]
    a = _run_windows(engine, MotionSession(GenerationRequest(text="x", seed=9, guidance=False)), texts)
    b = _run_windows(engine, MotionSession(GenerationRequest(text="x", seed=9, guidance=False)), texts)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_session_rejects_out_of_order_chunks(engine):
    session = MotionSession(GenerationRequest(text="x", seed=1, guidance=False))
    w1 = session.window_request("a person walks")
    state = engine.sampler.start(w1.request)
    first = next(c for chunk in engine.sampler.step([state]) for c in (chunk if isinstance(chunk, list) else [chunk])
                 if c is not None and len(c.joints))
    session.accept(w1, first.start, first.joints)
    with pytest.raises(ValueError, match="in order"):
        session.accept(w1, first.start + len(first.joints) + 4, first.joints)
    session.window_request("a person runs")
    with pytest.raises(ValueError):
        SessionConfig(window_frames=6).validate()
    with pytest.raises(ValueError, match="commit_frames"):
        SessionConfig(window_frames=12, commit_frames=16).validate()


def test_history_grows_with_an_unchanged_text_and_restarts_at_a_switch(engine):
    cfg = SessionConfig(history_frames=40)
    session = MotionSession(GenerationRequest(text="x", seed=2, guidance=False), cfg)
    texts = ["a person walks forward"] * 5 + ["a person bows"] * 3
    windows = []
    joints = _run_windows(engine, session, texts, windows=windows)
    # first window: no prefix; then all frames of the walk so far, capped at 40; a switch keeps
    # only prefix_frames of the walk, then the bow's own frames accumulate again
    c = cfg.prefix_frames
    assert [w.skip for w in windows] == [0, 40, 40, 40, 40, c, c + cfg.commit, c + 2 * cfg.commit]
    assert all(w.request.edit is None or len(w.request.edit.prefix) == w.skip for w in windows)
    assert len(joints) == cfg.first_frames + 7 * cfg.commit
    assert _max_step(joints) < 0.6 and np.isfinite(joints).all()


# ------------------------------------------------------------------ the Session RPC
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ckpt = os.environ.get("COAMD_TEST_CHECKPOINT")
    args = ["--backend", "onnxruntime", "--max-sessions", "2"]
    args += ["--checkpoint", ckpt] if ckpt else []
    try:
        srv = ServerProcess(args, log_path=tmp_path_factory.mktemp("sessions") / "server.log", timeout_s=300, cwd=ROOT)
    except ServerStartError as exc:
        pytest.fail(str(exc))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with MotionClient(server.target) as c:
        yield c


def test_in_process_switch_benchmark_switches_at_window_boundaries(engine):
    """benchmarks/session_switches.py drives sessions as the server does: each instruction 2-3 s
    after the previous one takes effect at the next window boundary, texts in order."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.session_switches import run_sessions

    cfg = SessionConfig()
    for s in run_sessions(engine, 2, 8.0, (2.0, 3.0), 0, False, cfg, 4):
        assert len(s.joints()) >= 160 and np.isfinite(s.joints()).all()
        firsts = [w["first_frame"] for w in s.switches]
        assert len(firsts) >= 2 and firsts == sorted(firsts)
        assert all((f - cfg.first_frames) % cfg.commit == 0 for f in firsts)
        assert all(40 <= b - a < 60 + cfg.commit for a, b in zip(firsts, firsts[1:]))
        assert [w["text"] for w in s.switches] == [s._text(i + 1) for i in range(len(firsts))]


def test_root_speed_by_window_position_finds_a_pulse_on_real_motion(dataset):
    """The benchmark's root-speed table: a real clip's pose carried along at an even speed reads
    as even (pulse 1) at every window position; the same with the hips' steps at the last four
    positions of each committed window made 1.5x longer reads as a 1.5 pulse, at those positions."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.session_switches import OfflineSession, root_speed_by_window_position
    from benchmarks.sessions import TEXTS

    cfg = SessionConfig()
    clip = max(dataset.split("test"), key=lambda c: len(c.joints)).joints.astype(np.float64)
    pose = clip - clip[:, :1] * np.array([1.0, 0.0, 1.0])  # the pose in place
    n = 200
    pose = np.concatenate([pose] * (n // len(pose) + 1))[:n]

    def session(steps):
        x = np.concatenate([[0.0], np.cumsum(steps)])
        joints = pose + x[:, None, None] * np.array([1.0, 0.0, 0.0])
        s = OfflineSession(seed=0, offset=1, session=None, next_switch=0)  # text 1 throughout
        s.frames = [joints.astype(np.float32)]
        return s

    even = np.full(n - 1, 0.08)
    pulsed = even.copy()
    f = np.arange(1, n)
    pulsed[((f - cfg.first_frames) % cfg.commit >= 4) & (f > cfg.first_frames)] *= 1.5
    for steps, pulse in ((even, 1.0), (pulsed, 1.5)):
        r = root_speed_by_window_position([session(steps)], cfg, {})[TEXTS[1]]
        assert r["pulse"] == pytest.approx(pulse, rel=1e-4)
        assert r["frames"] == n - cfg.first_frames - 1 and r["fresh_mean_m"] is None
    assert np.argmax(r["by_position_m"]) >= 4 and np.argmin(r["by_position_m"]) < 4


def test_seam_ratios_against_the_same_texts_are_not_swayed_by_which_actions_fill_the_segments(dataset):
    """A session of real clips: short walk segments (2 s) between long wave segments (8 s). The
    inside windows are then mostly the wave's, which hardly skates, while every seam is half a
    walk: pooled, the seams look many times worse than the inside windows; against the inside
    windows of their own two texts they differ only by what cutting one clip into another adds."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.session_switches import OfflineSession
    from benchmarks.sessions import TEXTS, seam_metrics

    test = dataset.split("test")
    walk, wave = (max((c for c in test if c.content == name), key=lambda c: len(c.joints)).joints.astype(np.float64)
                  for name in ("walk", "wave-right-hand"))
    frames, switches, at = [], [], np.zeros(2)
    for k in range(8):
        clip, n = (walk, 40) if k % 2 == 0 else (wave, 160)
        x = clip[:n].copy()
        x[:, :, [0, 2]] += at - x[0, 0, [0, 2]]          # each segment starts where the last ended
        at = x[-1, 0, [0, 2]]
        if k:
            switches.append({"instruction": k, "text": TEXTS[k % 2 * 2], "first_frame": sum(map(len, frames))})
        frames.append(x)
    s = OfflineSession(seed=0, offset=0, session=None, next_switch=0)  # TEXTS[0] first: the walk
    s.frames, s.switches = [np.concatenate(frames).astype(np.float32)], switches
    r = seam_metrics([s])
    assert r["matched_seams"] == 7
    assert set(r["inside_by_text"]) == {TEXTS[0], TEXTS[2]}
    assert r["inside_by_text"][TEXTS[0]]["skate_ratio"] > 5 * r["inside_by_text"][TEXTS[2]]["skate_ratio"]
    for m in ("jitter", "skate_speed", "skate_ratio"):
        assert r[f"{m}_ratio"] > 3 * r[f"{m}_matched_ratio"]
    assert r["skate_ratio_matched_ratio"] < 3


def test_session_sizes_in_seconds_round_to_whole_tokens():
    assert SessionConfig.from_seconds() == SessionConfig()
    c = SessionConfig.from_seconds(horizon_s=1.0, commit_s=0.6, history_s=2.0, prefix_s=0.4)
    assert (c.window_frames, c.commit, c.history, c.prefix_frames) == (20, 12, 40, 8)
    # a commit longer than the horizon raises the horizon; a history shorter than the prefix, the history
    c = SessionConfig.from_seconds(horizon_s=0.4, commit_s=1.0, history_s=0.2, prefix_s=0.8)
    assert (c.window_frames, c.commit, c.history, c.prefix_frames) == (20, 20, 16, 16)
    assert SessionConfig.from_seconds(commit_s=0.01).commit == 4        # at least one token


def test_session_follows_instructions_in_order(client):
    s = client.session("a person walks forward", seed=3, guidance=False, include_rotations=True)
    t_sent = {}

    def steer():
        time.sleep(1.0)
        t_sent[1] = time.perf_counter()
        s.instruct("a person waves the right hand")
        time.sleep(1.0)
        s.close()

    threading.Thread(target=steer, daemon=True).start()
    t0 = time.perf_counter()
    updates = list(s)
    elapsed = time.perf_counter() - t0
    joints = np.concatenate([u.joints for u in updates])
    kinds = [e["kind"] for e in s.events]
    assert kinds[0] == "OPENED" and kinds[-1] == "CLOSED" and kinds.count("INSTRUCTION") == 2
    instr = [e for e in s.events if e["kind"] == "INSTRUCTION"]
    assert [e["instruction"] for e in instr] == [0, 1] and instr[1]["text"] == "a person waves the right hand"
    assert 0 < instr[1]["first_frame"] < len(joints) and instr[1]["latency_ms"] < 1000
    assert instr[1]["interpretation"]["content"][0][0] == "wave-right-hand"
    assert s.events[-1]["first_frame"] == len(joints)
    # paced: about the lookahead (1 s) ahead of real time, not the whole motion at once
    assert len(joints) <= (elapsed + 1.0) * 20 + 40
    rot = np.concatenate([u.rotations for u in updates if u.rotations is not None])
    assert rot.shape == (len(joints), 21, 4) and np.allclose(np.linalg.norm(rot, axis=-1), 1, atol=1e-4)


def test_session_limit_and_disconnect_frees_the_slot(client, server):
    a = client.session("a person walks", guidance=False)
    b = client.session("a person runs", guidance=False)
    ia, ib = iter(a), iter(b)
    next(ia), next(ib)                                   # both open
    c = client.session("a person bows", guidance=False)
    with pytest.raises(grpc.RpcError) as exc:
        list(c)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    a.cancel()                                           # a client that goes away frees its session
    b.cancel()
    time.sleep(0.5)
    d = client.session("a person bows", guidance=False)
    first = next(iter(d))
    assert first.events[0]["kind"] == "OPENED"
    d.cancel()


def test_session_errors_name_the_field(server):
    with grpc.insecure_channel(server.target) as ch:
        stub = pb_grpc.MotionServiceStub(ch)
        cases = [
            [pb.SessionRequest(instruction=pb.SessionInstruction(text="a person walks"))],      # no open
            [pb.SessionRequest(open=pb.SessionOpen(text="\u200b"))],                            # no words
            [pb.SessionRequest(open=pb.SessionOpen(text="a person walks", lookahead_s=60))],
        ]
        fields = ["open", "open.text", "open.lookahead_s"]
        for msgs, name in zip(cases, fields):
            with pytest.raises(grpc.RpcError) as exc:
                list(stub.Session(iter(msgs), timeout=10))
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and exc.value.details().startswith(name + ":")
        raw = ch.stream_stream("/coamd.v1.MotionService/Session", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as exc:
            list(raw(iter([b"\x0a\x03\xff\xfe\xfd"]), timeout=10))
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_session_cli_reads_instructions_from_stdin(server, tmp_path):
    from coamd.io.motion import load_motion

    proc = subprocess.Popen([COAMD, "session", "--server", server.target, "--out", str(tmp_path / "s.npz"),
                             "--no-guidance"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdin.write("a person walks forward\n")
    proc.stdin.flush()
    time.sleep(1.5)
    proc.stdin.write("a person bows\n")
    proc.stdin.flush()
    time.sleep(1.0)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "instruction 1 'a person bows'" in out and "understood as: bow" in out
    m = load_motion(tmp_path / "s.npz")
    assert m.joints.shape[0] >= 40 and "a person bows" in m.text
