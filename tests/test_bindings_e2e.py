"""End-to-end tests of the native engine client against a real `coamd serve` on loopback.

The pybind11 module ``coamd_native`` (bindings/python/module.cpp, every call through the C ABI of
libcoamd_client) streams from the server with the shipped checkpoint; its frames and its
``sample()`` values are checked against the Python client's frames for the same request. The Unity
package's NUnit 2.6 tests (unity_client/Tests~, compiled with mcs) then run against the same
server and the same native library. The CMake build in build/ is brought up to date first
(incremental; `make native` does the same).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from coamd.client.process import ServerProcess as _ServerProcess, ServerStartError

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
LIB = BUILD / "lib"
BACKEND = os.environ.get("COAMD_TEST_SERVER_BACKEND", "torch")
CHECKPOINT = os.environ.get("COAMD_TEST_CHECKPOINT")  # default: the shipped coamd/checkpoints/default
FAST = dict(iterations=2, ode_steps=2)  # few iterations keep every request short on 2 cores
TOKEN = "engine-token"


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({' '.join(cmd)}):\n{(proc.stdout + proc.stderr)[-4000:]}")


@pytest.fixture(scope="module")
def native():
    """The coamd_native module, built (incrementally) in build/ like `make native` does."""
    if shutil.which("cmake") is None:
        pytest.fail("cmake is not installed; run `make setup-native`")
    if not (BUILD / "CMakeCache.txt").exists():
        _run(["cmake", "-S", ".", "-B", "build", "-DCMAKE_BUILD_TYPE=Release", f"-DCOAMD_PYTHON={sys.executable}"],
             "cmake configure")
    _run(["nice", "-n", "10", "cmake", "--build", "build", "-j", "2"], "cmake build")
    sys.path.insert(0, str(LIB))
    try:
        import coamd_native
    finally:
        sys.path.remove(str(LIB))
    return coamd_native


def ServerProcess(tmp: Path, *extra: str, name: str = "server") -> _ServerProcess:
    """A real `coamd serve` on a free loopback port with this module's backend and checkpoint."""
    ckpt = ("--checkpoint", CHECKPOINT) if CHECKPOINT else ()
    try:
        return _ServerProcess(["--backend", BACKEND, *ckpt, *extra], log_path=tmp / f"{name}.log",
                              timeout_s=180, cwd=ROOT)
    except ServerStartError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("bindings_srv"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def py_client(server):
    from coamd.client import MotionClient

    with MotionClient(server.target) as c:
        yield c


@pytest.fixture(scope="module")
def nclient(native, server):
    return native.Client(server.target, connect_timeout_s=30.0)


def _native_motion(nclient, native, text, seed, seconds, **kw):
    s = nclient.generate(text, duration_s=seconds, seed=seed, guidance=native.GUIDANCE_OFF, **FAST, **kw)
    assert s.wait(300.0), "native stream did not end"
    assert s.error() == ""
    return s


def test_native_stream_is_complete_ordered_and_equals_the_python_clients_frames(native, nclient, py_client):
    text, seed, seconds = "a person walks forward and turns left", 21, 2.0
    s = _native_motion(nclient, native, text, seed, seconds)
    info = s.info()
    assert info["has_summary"] and not info["receiving"]
    n = info["total_frames"]
    assert n == info["frames_received"] > 0
    frames = np.stack([s.frame(i)[0] for i in range(n)])  # indices 0..n-1 all present
    with pytest.raises(IndexError):
        s.frame(n)
    assert info["client_ttff_ms"] > 0 and info["client_total_ms"] >= info["client_ttff_ms"]

    ref = py_client.generate(text, duration_s=seconds, seed=seed, guidance=False, **FAST)
    assert ref.joints.shape == (n, 21, 3)
    np.testing.assert_allclose(frames, ref.joints, atol=1e-4)

    # Motion-time sampling: frame k at k / fps exactly, the linear blend in between.
    fps = native.FPS
    for k in range(n):
        pos, loc, wor = s.sample_motion_time(k / fps)
        np.testing.assert_array_equal(pos, frames[k])
    for k in range(n - 1):
        pos, _, _ = s.sample_motion_time((k + 0.5) / fps)
        np.testing.assert_allclose(pos, 0.5 * (ref.joints[k] + ref.joints[k + 1]), atol=2e-4)

    # The engine-time playback of a complete stream: plays at once, ends on the last frame.
    t0, last_m, states = 1000.0, -1.0, []
    times = np.arange(n) / fps
    for tick in range(int((n / fps + 0.5) * 60)):
        inf, pos, loc, wor = s.sample(t0 + tick / 60.0)
        states.append(inf["state"])
        m = inf["motion_time_s"]
        assert m >= last_m
        last_m = m
        want = np.stack([np.interp(m, times, ref.joints[:, j, c]) for j in range(21) for c in range(3)])
        np.testing.assert_allclose(pos.reshape(-1), want, atol=2e-4)
        norms = np.linalg.norm(loc, axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-4)
    assert states[0] == native.STATE_PLAYING
    assert states[-1] == native.STATE_FINISHED
    assert set(states) <= {native.STATE_PLAYING, native.STATE_FINISHED}


def test_cleanup_and_temperature_reach_the_server(native, nclient, py_client):
    """CLEANUP_OFF and a temperature set in the C ABI's request give the Python client's frames
    for the same settings (and differ from the default, cleaned stream)."""
    text, seed, seconds = "a person walks forward", 4, 2.0
    s = _native_motion(nclient, native, text, seed, seconds, cleanup=native.CLEANUP_OFF, temperature=0.7)
    n = s.info()["total_frames"]
    frames = np.stack([s.frame(i)[0] for i in range(n)])
    ref = py_client.generate(text, duration_s=seconds, seed=seed, guidance=False, cleanup=False, temperature=0.7,
                             **FAST)
    np.testing.assert_allclose(frames, ref.joints, atol=1e-4)
    cleaned = py_client.generate(text, duration_s=seconds, seed=seed, guidance=False, temperature=0.7, **FAST)
    assert np.abs(frames - cleaned.joints).max() > 1e-3


def test_engine_coordinates_match_the_servers_conversion(native, nclient, py_client):
    text, seed, seconds = "a person waves with the right hand", 4, 1.6
    unity = _native_motion(nclient, native, text, seed, seconds, coordinates=native.COORDS_UNITY)
    unreal = _native_motion(nclient, native, text, seed, seconds, coordinates=native.COORDS_UNREAL)
    ref_unity = py_client.generate(text, duration_s=seconds, seed=seed, guidance=False, coordinates="unity", **FAST)
    ref = py_client.generate(text, duration_s=seconds, seed=seed, guidance=False, **FAST)
    n = len(ref.joints)
    got_unity = np.stack([unity.frame(i)[0] for i in range(n)])
    got_unreal = np.stack([unreal.frame(i)[0] for i in range(n)])
    # Client-side Unity conversion == the server's own Unity output.
    np.testing.assert_allclose(got_unity, ref_unity.joints, atol=1e-4)
    # Unreal: X forward (+Z), Y right (-X), Z up (+Y), centimetres.
    j = ref.joints
    np.testing.assert_allclose(got_unreal, 100.0 * np.stack([j[..., 2], -j[..., 0], j[..., 1]], axis=-1), atol=1e-2)


def test_rotations_drive_the_rest_skeleton_along_the_streamed_bones(native, nclient, py_client):
    rest = nclient.skeleton()
    np.testing.assert_allclose(rest, py_client.skeleton()["rest_offsets"], atol=1e-6)
    parents = native.PARENTS
    for server_rotations in (False, True):
        s = _native_motion(nclient, native, "a person raises both hands", 8, 1.6, server_rotations=server_rotations)
        n = s.info()["total_frames"]
        for k in range(0, n, 3):
            pos, loc = s.frame(k)
            fk = native.forward_kinematics(pos[0], loc, rest)
            # Client-solved rotations point every bone below a single-child joint exactly like the
            # streamed bone. Hips and Chest have three children each, which one rigid rotation
            # cannot all match in a generated pose: the client solver matches the first child
            # (Spine, Neck) exactly and the left-right axis (UpperLeg_L - UpperLeg_R,
            # Shoulder_L - Shoulder_R) about it. The server's rotations (coamd.io.bvh_export: a
            # Kabsch fit at Hips / Chest) aim each single-child bone from the forward-kinematics
            # parent at the streamed child instead, so they are checked that way.
            def angle(a, b):
                return np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))

            for c in range(1, 21):
                p = parents[c]
                if server_rotations and parents.count(p) == 1:
                    assert angle(fk[c] - fk[p], pos[c] - fk[p]) < 0.01, (k, native.JOINT_NAMES[c])
                elif not server_rotations and (parents.count(p) == 1 or c in (1, 3)):
                    assert angle(fk[c] - fk[p], pos[c] - pos[p]) < 0.01, (k, native.JOINT_NAMES[c])
            if not server_rotations:
                for first, left, right, joint in ((1, 13, 17, 0), (3, 5, 9, 2)):
                    axis = pos[first] - pos[joint]
                    axis /= np.linalg.norm(axis)
                    flat = lambda v: v - (v @ axis) * axis  # noqa: E731
                    assert angle(flat(fk[left] - fk[right]), flat(pos[left] - pos[right])) < 0.01, (k, joint)


def test_cancel_and_server_errors_reach_the_engine_as_states(native, nclient):
    s = nclient.generate("a person runs in a circle", duration_s=12.0, seed=1, **FAST)
    s.cancel()
    assert s.sample_info(0.0)["state"] == native.STATE_CANCELLED
    t0 = time.monotonic()
    assert s.wait(30.0)
    assert time.monotonic() - t0 < 30.0
    assert not s.info()["receiving"]

    bad = nclient.generate("a person jumps", duration_s=30.0, seed=1, **FAST)  # above the server's 12 s
    assert bad.wait(60.0)
    assert bad.sample_info(0.0)["state"] == native.STATE_ERROR
    assert "INVALID_ARGUMENT" in bad.error() and "duration" in bad.error()

    with pytest.raises(ValueError, match="duration_s"):
        nclient.generate("a person jumps", duration_s=-1.0)


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed; it makes the test certificate")
    d = tmp_path_factory.mktemp("bindings_tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    srv = ServerProcess(d, "--token", TOKEN, "--tls-cert", str(d / "cert.pem"), "--tls-key", str(d / "key.pem"),
                        name="secure")
    yield srv, (d / "cert.pem").read_text()
    srv.stop()


def test_tls_and_bearer_token(native, secure_server):
    srv, cert = secure_server
    with pytest.raises(RuntimeError, match="UNAUTHENTICATED"):
        native.Client(srv.target, tls=True, root_certs=cert, connect_timeout_s=30.0)
    with pytest.raises(RuntimeError):  # plaintext to a TLS port never gets an answer
        native.Client(srv.target, token=TOKEN, connect_timeout_s=2.0)
    c = native.Client(srv.target, tls=True, root_certs=cert, token=TOKEN, connect_timeout_s=30.0)
    s = c.generate("a person bows", duration_s=0.8, seed=2, guidance=native.GUIDANCE_OFF, **FAST)
    assert s.wait(300.0) and s.error() == ""
    assert s.info()["total_frames"] == s.info()["frames_received"] > 0


def test_unity_csharp_nunit_suite_against_the_server(native, server, tmp_path):
    """unity_client/Tests~ (NUnit 2.6, mcs C# 7.2) with the real native library and server."""
    dll = BUILD / "csharp" / "CoAMD.Tests.dll"
    runner = shutil.which("nunit-console")
    if runner is None or not dll.exists():
        pytest.fail("nunit-console or the C# build is missing; run `make native` (mono-mcs, nunit-console)")
    xml = tmp_path / "nunit.xml"
    env = dict(os.environ, COAMD_TEST_SERVER=server.target,
               LD_LIBRARY_PATH=f"{LIB}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    proc = subprocess.run([runner, "-nologo", "-noshadow", str(dll), f"-xml={xml}"], cwd=dll.parent, env=env,
                          capture_output=True, text=True, timeout=1200)
    out = proc.stdout + proc.stderr
    print(out[-3000:])
    assert xml.exists(), out[-3000:]
    res = ET.parse(xml).getroot()
    total = int(res.get("total"))
    bad = {k: int(res.get(k)) for k in ("errors", "failures", "not-run", "inconclusive", "ignored", "skipped", "invalid")}
    assert total >= 9, out[-3000:]
    assert not any(bad.values()), (bad, out[-3000:])
    assert proc.returncode == 0, out[-3000:]


def _qmul(a, b):
    """Hamilton product of quaternions (..., 4) as (x, y, z, w)."""
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz], axis=-1)


def _qrot(q, v):
    u, w = q[..., :3], q[..., 3:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def _world(local, parents):
    world = np.zeros_like(local)
    for j, p in enumerate(parents):
        world[j] = local[j] if p < 0 else _qmul(world[p], local[j])
    return world


def test_version_3_abi_and_readers_against_the_server(native, nclient):
    assert native.ABI_VERSION == 5 and native.VERSION == "0.4.0"
    assert native.BUILD_INFO.startswith("coamd_client 0.4.0 (ABI 5; gRPC ")
    s = _native_motion(nclient, native, "a person walks forward", 6, 1.6)
    n = s.info()["total_frames"]
    a, b = s.reader("Hero", 0.0), s.reader()
    assert a.subject_name == "Hero" and b.subject_name == "CoAMD"
    a.sample(100.0)
    b.sample(5.0)
    ia, pa, _, _ = a.sample(100.5)
    ib, pb, _, _ = b.sample(5.25)
    assert (ia["frame"], ib["frame"]) == (10, 5)
    np.testing.assert_array_equal(pa, s.frame(10)[0])
    np.testing.assert_array_equal(pb, s.frame(5)[0])
    del s  # the readers keep the frames
    ia, pa, _, _ = a.sample(200.0)
    assert ia["state"] == native.STATE_FINISHED and ia["frame"] == n - 1
    info = _native_motion(nclient, native, "a person bows", 7, 0.8, cleanup=native.CLEANUP_OFF).info()
    assert info["cleanup_applied"] is False and info["iterations"] == FAST["iterations"]
    assert info["ode_steps"] == FAST["ode_steps"] and info["max_batch"] >= 1


def test_reference_pose_of_the_servers_skeleton_is_upright_and_bends_like_the_servers_rotations(native, nclient):
    """The server's rest offsets are in the dataset's BVH joint frames (rotated axes), so identity
    rotations are no upright pose; the reference pose is, and its elbow / knee hinges are the ones
    the server's own rotations use (checked on streamed frames with bent elbows and knees)."""
    parents = native.PARENTS
    rest, local, pos = nclient.reference_pose(native.COORDS_RIGHT_HANDED_Y_UP)
    np.testing.assert_allclose(rest, nclient.skeleton(), atol=1e-6)
    np.testing.assert_allclose(native.forward_kinematics(pos[0], local, rest), pos, atol=1e-5)
    up, left = np.array([0, 1, 0]), np.array([1, 0, 0])

    def cos(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    assert cos(pos[2] - pos[1], up) > 0.9999 and cos(pos[4] - pos[3], up) > 0.9999
    for hand, sign in ((8, 1), (12, -1)):
        assert cos(pos[hand] - pos[hand - 1], sign * left) > 0.9999
        assert cos(pos[hand - 1] - pos[hand - 2], sign * left) > 0.9999
    for knee in (14, 18):
        assert cos(pos[knee + 1] - pos[knee], -up) > 0.9999
    assert abs(pos[0, 0]) < 1e-6 and abs(pos[0, 2]) < 1e-6 and 0.8 < pos[0, 1] < 1.1
    assert pos[:, 1].min() > 0.0 and pos[16, 2] > pos[15, 2]
    # Identity rotations on these offsets are far from upright (why the reference pose exists).
    ident = np.tile([0, 0, 0, 1.0], (21, 1)).astype(np.float32)
    flat = native.forward_kinematics(pos[0], ident, rest)
    assert cos(flat[2] - flat[1], up) < 0.5

    # Hinges: in the server's rotations a bent elbow / knee puts the forearm / shin on a fixed side
    # of the upper arm's / thigh's local frame; the reference pose turns that side forward for the
    # elbows and backward for the knees.
    ref_world = _world(local, parents)
    frames = []  # (positions, local rotations) with server rotations, from motions that bend limbs
    for i, text in enumerate(("a person waves with both hands", "a person squats down", "a person runs forward",
                              "a person kicks with the left leg")):
        s = _native_motion(nclient, native, text, 3 + i, 3.2, server_rotations=True)
        frames += [s.frame(k) for k in range(s.info()["total_frames"])]
    for upper, side_sign, world_dir in ((6, 1, 1), (10, -1, 1), (13, -1, -1), (17, 1, -1)):
        lower, end = upper + 1, upper + 2
        seen = []
        for p, loc in frames:
            g = _world(loc, parents)
            a, b = p[lower] - p[upper], p[end] - p[lower]
            if cos(a, b) > np.cos(np.radians(25)):
                continue  # nearly straight: the hinge side is not observable
            in_upper = _qrot(np.array([-g[upper, 0], -g[upper, 1], -g[upper, 2], g[upper, 3]]), b)
            seen.append(np.sign(in_upper[2]))
        assert len(seen) >= 5, f"no bent {native.JOINT_NAMES[lower]} in the streamed motions"
        assert np.mean(np.array(seen) == side_sign) > 0.9, (native.JOINT_NAMES[upper], seen)
        hinge = _qrot(ref_world[upper], np.array([0.0, 0.0, side_sign]))
        bone = pos[lower] - pos[upper]
        hinge -= bone * (hinge @ bone) / (bone @ bone)
        assert cos(hinge, np.array([0, 0, world_dir])) > 0.999, native.JOINT_NAMES[upper]


# ------------------------------------------------------------------ ABI version 4
def test_capabilities_equal_the_python_clients(native, nclient, py_client):
    caps, ref = nclient.capabilities(), py_client.capabilities()
    assert len(caps["actions"]) == len(ref["actions"]) > 0 and len(caps["styles"]) == len(ref["styles"]) > 0
    for mine, theirs in zip(caps["actions"] + caps["styles"], ref["actions"] + ref["styles"]):
        assert mine["label"] == theirs["label"] and mine["side"] == theirs["side"]
        assert mine["training_clips"] == theirs["training_clips"]
        assert mine["recorded_with"] == theirs["recorded_with"]     # ABI 5: coamd_client_pair_clips
        assert mine["description"] == theirs["description"][:255] or theirs["description"].startswith(
            mine["description"])
    for k in ("min_duration_s", "max_duration_s", "fps", "max_text_chars", "rare_below_clips"):
        assert caps[k] == pytest.approx(ref[k]), k
    assert caps["min_duration_s"] < caps["max_duration_s"] and caps["fps"] == native.FPS
    assert any(a["training_clips"] > 0 for a in caps["actions"])
    wave = next(a for a in caps["actions"] if a["label"] == "wave-right-hand")
    assert wave["recorded_with"] and "angry" not in wave["recorded_with"]
    assert nclient.capabilities() == caps  # cached, same answer


def test_interpretation_and_request_fields_reach_the_engine(native, nclient, py_client):
    text, seed, seconds = "an old man waves his right hand", 4, 1.0
    s = _native_motion(nclient, native, text, seed, seconds)
    info, it = s.info(), s.interpretation()
    ref = py_client.generate(text, duration_s=seconds, seed=seed, guidance=False, **FAST).summary
    want = ref["interpretation"]
    assert it is not None and want is not None
    assert [l for l, _ in it["content"]] == [l for l, _ in want["content"]][:8]
    np.testing.assert_allclose([p for _, p in it["content"]], [p for _, p in want["content"]][:8], atol=1e-6)
    assert [l for l, _ in it["style"]] == [l for l, _ in want["style"]][:8]
    assert it["content"][0][0] == "wave-right-hand"
    for k in ("side", "out_of_vocabulary", "note", "conditioned_text"):
        assert it[k] == want[k], k
    assert it["out_of_vocabulary_score"] == pytest.approx(want["out_of_vocabulary_score"])
    assert info["out_of_vocabulary"] is want["out_of_vocabulary"]
    assert info["skeleton_applied"] is True and ref["skeleton_applied"] is True
    assert info["root_motion"] == native.ROOT_MOTION_WORLD
    # An unsupported request is flagged; the raw text conditions the generator when asked.
    oov = _native_motion(nclient, native, "a person juggles three balls", 5, 0.8,
                         text_conditioning=native.TEXT_CONDITIONING_RAW)
    assert oov.info()["out_of_vocabulary"] is True and oov.interpretation()["note"]
    assert oov.interpretation()["conditioned_text"] == "a person juggles three balls"
    raw = _native_motion(nclient, native, text, seed, seconds, skeleton=native.SKELETON_RAW)
    assert raw.info()["skeleton_applied"] is False


def test_root_motion_per_frame_in_engine_coordinates(native, nclient, py_client):
    text, seed, seconds = "a person walks forward", 8, 2.0
    ref = py_client.generate(text, duration_s=seconds, seed=seed, guidance=False, root_motion="in_place", **FAST)
    n = len(ref.joints)
    assert ref.summary["root_motion"] == "in_place"
    for coords in (native.COORDS_RIGHT_HANDED_Y_UP, native.COORDS_UNITY, native.COORDS_UNREAL):
        s = _native_motion(nclient, native, text, seed, seconds, root_motion=native.ROOT_MOTION_IN_PLACE,
                           coordinates=coords)
        assert s.info()["root_motion"] == native.ROOT_MOTION_IN_PLACE and s.info()["total_frames"] == n
        vel = np.stack([s.sample_at(k / native.FPS)[0]["root_velocity"] for k in range(n)])
        head = np.array([s.sample_at(k / native.FPS)[0]["heading"] for k in range(n)])
        want_vel = native.convert_positions(ref.root_velocity, native.COORDS_RIGHT_HANDED_Y_UP, coords)
        np.testing.assert_allclose(vel, want_vel, atol=1e-4 * (100 if coords == native.COORDS_UNREAL else 1))
        sign = 1.0 if coords == native.COORDS_RIGHT_HANDED_Y_UP else -1.0
        np.testing.assert_allclose(head, sign * ref.heading, atol=1e-5)
        # In place: the hips hold no travel; the engine's controller gets it from the velocity.
        pos = np.stack([s.frame(k)[0] for k in range(n)])
        up = 2 if coords == native.COORDS_UNREAL else 1
        horiz = [c for c in range(3) if c != up]
        assert np.abs(pos[:, 0, horiz]).max() < 1e-3 * (100 if coords == native.COORDS_UNREAL else 1)
    assert np.linalg.norm(ref.root_velocity, axis=1).mean() > 0.2  # it walks
    # Interpolated between frames like the pose.
    inf = s.sample_at(2.5 / native.FPS)[0]
    mid = 0.5 * (np.array(s.sample_at(2 / native.FPS)[0]["root_velocity"]) +
                 np.array(s.sample_at(3 / native.FPS)[0]["root_velocity"]))
    np.testing.assert_allclose(inf["root_velocity"], mid, atol=1e-3)


def test_session_plays_endlessly_and_reports_each_instruction(native, nclient):
    s = nclient.session("a person walks forward", seed=3, guidance=native.GUIDANCE_OFF, server_rotations=True,
                        coordinates=native.COORDS_UNITY, root_motion=native.ROOT_MOTION_IN_PLACE, **FAST)
    t0 = time.perf_counter()
    events, states, frames = [], [], []
    sent = None
    while time.perf_counter() - t0 < 4.0:
        now = time.perf_counter()
        inf, pos, loc, _ = s.sample(now)
        states.append(inf["state"])
        frames.append(inf["frame"])
        if inf["state"] == native.STATE_PLAYING:
            np.testing.assert_allclose(np.linalg.norm(loc, axis=1), 1.0, atol=1e-4)
        events += s.events()
        if sent is None and now - t0 > 1.5:
            sent = s.instruct("a person waves the right hand")
            assert sent == 1
        time.sleep(0.02)
    s.close()
    assert s.wait(60.0) and s.error() == ""
    events += s.events()
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "OPENED" and kinds[-1] == "CLOSED" and kinds.count("INSTRUCTION") == 2, kinds
    instr = [e for e in events if e["kind"] == "INSTRUCTION"]
    assert [e["instruction"] for e in instr] == [0, 1]
    assert instr[1]["interpretation"]["content"][0][0] == "wave-right-hand"
    assert instr[1]["first_frame"] > 0 and instr[1]["latency_ms"] < 2000
    total = events[-1]["first_frame"]
    assert total >= instr[1]["first_frame"] and total >= 3.0 * native.FPS
    assert native.STATE_PLAYING in states
    played = [f for f in frames if f >= 0]
    assert played == sorted(played) and played[-1] > 2.0 * native.FPS  # kept playing, never backwards
    inf, _, _, _ = s.sample(time.perf_counter() + 600.0)
    assert inf["state"] == native.STATE_FINISHED and inf["frame"] == total - 1
    with pytest.raises(ValueError):
        s.instruct("a person sits down")  # closed


def test_session_errors_and_cancel(native, nclient):
    with pytest.raises(ValueError):
        nclient.session("a person walks", history_frames=10)
    bad = nclient.session("", guidance=native.GUIDANCE_OFF, **FAST)  # the server refuses an empty text
    assert bad.wait(60.0)
    assert "INVALID_ARGUMENT" in bad.error()
    assert bad.sample(0.0)[0]["state"] == native.STATE_ERROR
    s = nclient.session("a person runs", guidance=native.GUIDANCE_OFF, **FAST)
    time.sleep(0.5)
    s.cancel()
    assert s.wait(30.0)
    assert s.sample(1.0)[0]["state"] == native.STATE_CANCELLED
