"""End-to-end tests of `coamd serve` as a real process on loopback, with the shipped checkpoint.

The servers use the torch backend (no ONNX export in the test budget; backend parity is tested
with the runtime). ``COAMD_TEST_SERVER_BACKEND`` and ``COAMD_TEST_CHECKPOINT`` override both.

Two servers start once per module: a plaintext one (batching, fault injection for the isolation
tests) and a TLS + bearer-token one with a tiny queue (max_batch 1, max_queue 1) for auth, TLS and
RESOURCE_EXHAUSTED. Requests use few iterations so the file stays fast on a 2-core CPU.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from coamd.client import FrameAssembler, MotionClient, build_generate_request
from coamd.client.process import ServerProcess as _ServerProcess, ServerStartError
from coamd.api import SERVICE_NAME, pb

ROOT = Path(__file__).resolve().parents[1]
COAMD = str(Path(sys.executable).with_name("coamd"))
BACKEND = os.environ.get("COAMD_TEST_SERVER_BACKEND", "torch")
CHECKPOINT = os.environ.get("COAMD_TEST_CHECKPOINT")
_DEFAULT_CKPT = ROOT / "coamd" / "checkpoints" / "default"
if CHECKPOINT is None and not all((_DEFAULT_CKPT / f).exists()
                                  for f in ("autoencoder.pt", "recognizer.pt", "generator.pt")):
    pytest.skip(f"the default checkpoint in {_DEFAULT_CKPT} is incomplete (autoencoder, recognizer and "
                "generator .pt are needed); train it or set COAMD_TEST_CHECKPOINT", allow_module_level=True)
FAST = dict(iterations=2, ode_steps=2)        # few iterations keep every request short
TOKEN = "s3cret-token"


def ServerProcess(tmp: Path, *extra: str, name: str = "server") -> _ServerProcess:
    """A real `coamd serve` on a free loopback port with this module's backend and checkpoint."""
    ckpt = ["--checkpoint", CHECKPOINT] if CHECKPOINT else []
    try:
        return _ServerProcess(["--backend", BACKEND, *ckpt, *extra], log_path=tmp / f"{name}.log",
                              timeout_s=120, cwd=ROOT)
    except ServerStartError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("srv"), "--max-batch", "8", "--max-queue", "4",
                        "--fault-injection")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with MotionClient(server.target) as c:
        yield c


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; cannot make a self-signed certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory, tls_files):
    cert, key = tls_files
    srv = ServerProcess(tmp_path_factory.mktemp("secure"), "--tls-cert", str(cert), "--tls-key", str(key),
                        "--token", TOKEN, "--max-batch", "1", "--max-queue", "1", "--max-wait", "0",
                        name="secure")
    yield srv
    srv.stop()


def collect(stream) -> tuple[list[int], FrameAssembler]:
    """Read a whole stream; return every frame index in arrival order and the assembled result."""
    indices, asm = [], FrameAssembler()
    for resp in stream:
        indices.extend(fr.index for fr in resp.frames)
        asm.add(resp)
    return indices, asm


# ------------------------------------------------------------------ basics
def test_health_serving(client):
    assert client.health() == "SERVING"
    assert client.health(SERVICE_NAME) == "SERVING"


def test_reflection_lists_services(server):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server.target) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        resp = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in resp.list_services_response.service}
    assert {"coamd.v1.MotionService", "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize("order", ["left_to_right", "random"])
def test_stream_indices_once_in_order(client, order):
    req = build_generate_request("a person walks forward", duration_s=2.6, seed=3, guidance=False,
                                 order=order, **FAST)
    indices, asm = collect(client.stream(req, timeout=60))
    T = asm.summary.total_frames
    assert T >= 52                                       # 2.6 s at 20 fps, maybe rounded up to whole tokens
    assert indices == list(range(T))
    joints = asm.result(time.perf_counter()).joints
    assert joints.shape == (T, 21, 3) and np.isfinite(joints).all()
    assert asm.summary.order == order and asm.summary.iterations == 2
    if order == "left_to_right":
        assert asm.messages > 2                          # frames really streamed in several messages


def test_same_seed_same_motion_and_unity_frame(client):
    kw = dict(duration_s=2.0, seed=11, guidance=False, **FAST)
    a = client.generate("a person jumps", **kw)
    b = client.generate("a person jumps", **kw)
    u = client.generate("a person jumps", coordinates="unity", **kw)
    np.testing.assert_allclose(a.joints, b.joints, atol=1e-5)
    np.testing.assert_allclose(u.joints[..., 0], -a.joints[..., 0], atol=1e-5)
    np.testing.assert_allclose(u.joints[..., 1:], a.joints[..., 1:], atol=1e-5)
    c = client.generate("a person jumps", **{**kw, "seed": 12})
    assert np.abs(c.joints - a.joints).mean() > 1e-4


def test_guided_request_reports_guidance(client):
    r = client.generate("a person kicks angrily", duration_s=2.0, seed=1, guidance=True, **FAST)
    assert r.summary["guidance_applied"] is True and r.summary["guidance_scale"] > 0
    off = client.generate("a person kicks angrily", duration_s=2.0, seed=1, guidance=False, **FAST)
    assert off.summary["guidance_applied"] is False and "off" in off.summary["guidance_note"]


def test_cleanup_on_by_default_and_off_gives_the_raw_frames(client):
    """Default: the server cleans the frames (summary says so); CLEANUP_OFF streams the model's
    raw frames, and cleaning those offline gives the default stream's frames."""
    from coamd.sampling.cleanup import clean_motion

    kw = dict(duration_s=3.0, seed=5, guidance=False, skeleton="raw", **FAST)
    on = client.generate("a person walks forward", **kw)
    raw = client.generate("a person walks forward", cleanup=False, **kw)
    assert on.summary["cleanup_applied"] is True and raw.summary["cleanup_applied"] is False
    assert np.abs(on.joints - raw.joints).max() > 1e-3
    np.testing.assert_allclose(clean_motion(raw.joints), on.joints, atol=1e-4)
    cool = client.generate("a person walks forward", temperature=0.5, **kw)
    assert cool.summary["temperature"] == pytest.approx(0.5) and on.summary["temperature"] == pytest.approx(1.0)
    assert np.abs(cool.joints - on.joints).mean() > 1e-4


# ------------------------------------------------------------------ cancellation and deadlines
def test_cancel_stops_work(client):
    req = build_generate_request("a person walks in a circle", duration_s=12.0, guidance=True,
                                 iterations=48, ode_steps=8)
    stream = client.stream(req, timeout=120)
    t0 = time.monotonic()
    stream.cancel()
    with pytest.raises(grpc.RpcError) as exc:
        next(stream)
    assert exc.value.code() == grpc.StatusCode.CANCELLED
    time.sleep(0.5)
    # If the cancelled job were still being stepped, this request would share its batch.
    r = client.generate("a person waves", duration_s=1.0, guidance=False, **FAST)
    assert r.summary["max_batch"] == 1
    assert time.monotonic() - t0 < 30


def test_deadline_exceeded(client):
    req = build_generate_request("a person dances", duration_s=12.0, guidance=True, iterations=48, ode_steps=16)
    with pytest.raises(grpc.RpcError) as exc:
        collect(client.stream(req, timeout=0.2))
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(0.3)
    assert client.generate("a person waves", duration_s=1.0, guidance=False, **FAST).summary["max_batch"] == 1


# ------------------------------------------------------------------ validation
def _req(**kw):
    base = dict(text="a person walks", duration_s=2.0)
    base.update(kw)
    return pb.GenerateRequest(**base)


def _edit_frames(n, bad=None):
    frames = [pb.Frame(index=i, positions=[0.1] * 63) for i in range(n)]
    if bad == "short":
        frames[0] = pb.Frame(index=0, positions=[0.1] * 60)
    if bad == "nan":
        frames[1] = pb.Frame(index=1, positions=[math.nan] + [0.1] * 62)
    return frames


INVALID = [
    ("text", _req(text="")),
    ("text", _req(text="   ")),
    ("text", _req(text="x" * 513)),
    ("duration_s", _req(duration_s=0.1)),
    ("duration_s", _req(duration_s=30.0)),
    ("duration_s", _req(duration_s=math.nan)),
    ("cfg_scale", _req(cfg_scale=math.nan)),
    ("cfg_scale", _req(cfg_scale=-1.0)),
    ("cfg_scale", _req(cfg_scale=math.inf)),
    ("guidance_scale", _req(guidance_scale=math.nan)),
    ("guidance_scale", _req(guidance_scale=-0.5)),
    ("iterations", _req(iterations=1000)),
    ("ode_steps", _req(ode_steps=1000)),
    ("guidance", _req(guidance=7)),
    ("order", _req(order=9)),
    ("coordinates", _req(coordinates=5)),
    ("solver", _req(solver=4)),
    ("cleanup", _req(cleanup=3)),
    ("temperature", _req(temperature=-0.5)),
    ("temperature", _req(temperature=5.0)),
    ("temperature", _req(temperature=math.nan)),
    ("edit.mode", _req(edit=pb.Edit(mode=12, frames=_edit_frames(4)))),
    ("edit.frames[0].positions", _req(edit=pb.Edit(mode=pb.EDIT_MODE_PREFIX, frames=_edit_frames(4, "short")))),
    ("edit.frames[1].positions", _req(edit=pb.Edit(mode=pb.EDIT_MODE_PREFIX, frames=_edit_frames(4, "nan")))),
    ("edit.frames", _req(edit=pb.Edit(mode=pb.EDIT_MODE_SUFFIX, frames=[]))),
    ("edit.frames", _req(edit=pb.Edit(mode=pb.EDIT_MODE_PREFIX, frames=_edit_frames(2)))),
    ("edit.frames", _req(edit=pb.Edit(mode=pb.EDIT_MODE_PREFIX, frames=_edit_frames(40)))),
    ("edit.inbetween_prefix_frames", _req(edit=pb.Edit(mode=pb.EDIT_MODE_INBETWEEN, frames=_edit_frames(8),
                                                       inbetween_prefix_frames=0))),
    ("edit.inbetween_prefix_frames", _req(edit=pb.Edit(mode=pb.EDIT_MODE_INBETWEEN, frames=_edit_frames(8),
                                                       inbetween_prefix_frames=8))),
]


@pytest.mark.parametrize("field,request_", INVALID, ids=[f"{f}-{i}" for i, (f, _) in enumerate(INVALID)])
def test_invalid_generate_names_field(client, field, request_):
    with pytest.raises(grpc.RpcError) as exc:
        collect(client.stream(request_, timeout=30))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details().startswith(field + ":"), exc.value.details()


def test_invalid_other_rpcs_name_field(client):
    cases = [
        ("frames", lambda: client.stub.Recognize(pb.RecognizeRequest(frames=[]), timeout=10)),
        ("top_k", lambda: client.stub.Recognize(pb.RecognizeRequest(frames=_edit_frames(8), top_k=999), timeout=10)),
        ("frames[0].positions", lambda: client.stub.Recognize(
            pb.RecognizeRequest(frames=_edit_frames(8, "short")), timeout=10)),
        ("text", lambda: client.stub.Retrieve(pb.RetrieveRequest(text=""), timeout=10)),
        ("coordinates", lambda: client.stub.GetSkeleton(pb.GetSkeletonRequest(coordinates=9), timeout=10)),
    ]
    for field, call in cases:
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert exc.value.details().startswith(field + ":"), exc.value.details()
    assert client.health() == "SERVING"


# ------------------------------------------------------------------ isolation and batching
def test_model_error_fails_only_its_stream(client):
    results, errors = {}, {}

    def run(name, text):
        try:
            results[name] = client.generate(text, duration_s=3.0, guidance=False, **FAST)
        except grpc.RpcError as exc:
            errors[name] = exc

    threads = [threading.Thread(target=run, args=("bad", "a person walks [fail-model]")),
               threading.Thread(target=run, args=("good1", "a person walks")),
               threading.Thread(target=run, args=("good2", "a person runs"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(errors) == {"bad"} and errors["bad"].code() == grpc.StatusCode.INTERNAL
    assert results["good1"].joints.shape[0] >= 60 and results["good2"].joints.shape[0] >= 60


def test_guidance_failure_completes_unguided(client):
    r = client.generate("a person waves [fail-guidance]", duration_s=2.0, guidance=True, **FAST)
    assert r.summary["guidance_applied"] is False
    assert "guidance sidecar failed" in r.summary["guidance_note"]
    assert r.joints.shape[0] == r.summary["total_frames"] >= 40


def test_concurrent_clients_share_batches(server):
    n = 6
    out, errs = [None] * n, []

    def run(i):
        try:
            with MotionClient(server.target) as c:
                req = build_generate_request(f"a person walks and turns {i}", duration_s=2.0 + 0.4 * i,
                                             seed=i, guidance=False, **FAST)
                out[i] = collect(c.stream(req, timeout=120))
        except Exception as exc:  # noqa: BLE001
            errs.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errs
    for i, (indices, asm) in enumerate(out):
        assert indices == list(range(asm.summary.total_frames))
        assert asm.summary.total_frames >= round(20 * (2.0 + 0.4 * i))
    assert max(asm.summary.max_batch for _, asm in out) > 1


# ------------------------------------------------------------------ other RPCs on real data
def test_skeleton_and_unity_offsets(client):
    from coamd.skeleton import JOINT_NAMES, PARENTS

    rh, unity = client.skeleton(), client.skeleton("unity")
    assert rh["joint_names"] == list(JOINT_NAMES) and rh["parents"] == list(PARENTS) and rh["fps"] == 20
    assert rh["rest_offsets"].shape == (21, 3) and np.linalg.norm(rh["rest_offsets"][1:], axis=1).min() > 0.01
    np.testing.assert_allclose(unity["rest_offsets"], rh["rest_offsets"] * [-1, 1, 1], atol=1e-6)


def test_recognize_and_retrieve_real_clip(client, dataset):
    clip = next(c for c in dataset.split("test") if c.joints.shape[0] >= 40)
    res = client.recognize(clip.joints, top_k=3)
    assert len(res["content"]) == 3 and len(res["style"]) == 3
    assert {l for l, _ in res["content"]} <= set(dataset.contents)
    assert {l for l, _ in res["style"]} <= set(dataset.styles)
    for kind in ("content", "style"):                    # cosine similarities, best first
        scores = [p for _, p in res[kind]]
        assert all(-1 <= p <= 1 for p in scores) and scores == sorted(scores, reverse=True)
    hits = client.retrieve(clip.caption_texts()[0], top_k=4)
    assert len(hits) == 4 and all(-1 <= h["similarity"] <= 1 for h in hits)
    assert [h["similarity"] for h in hits] == sorted((h["similarity"] for h in hits), reverse=True)


def test_prefix_edit_keeps_real_frames(client, dataset):
    clip = next(c for c in dataset.split("test") if c.joints.shape[0] >= 60)
    keep = clip.joints[:16]
    r = client.generate("a person walks", duration_s=3.0, seed=2, guidance=False, edit_prefix=keep, **FAST)
    assert r.joints.shape[0] >= 60
    # The sampler returns kept frames exactly as given (coamd.sampling.sampler.Edit).
    np.testing.assert_allclose(r.joints[:16], keep, atol=1e-4)
    assert np.abs(r.joints[16:] - r.joints[15]).max() > 1e-3   # the rest is generated, not a freeze
    assert r.summary["cleanup_applied"] is False                 # edits are never cleaned


def test_rotations_on_request(client):
    r = client.generate("a person walks", duration_s=1.6, guidance=False, include_rotations=True, **FAST)
    assert r.rotations is not None and r.rotations.shape == (r.joints.shape[0], 21, 4)
    np.testing.assert_allclose(np.linalg.norm(r.rotations, axis=-1), 1.0, atol=1e-3)


def test_request_cli_saves_npz_bvh_gif(server, tmp_path):
    from coamd.data.bvh import read_bvh
    from coamd.io.motion import load_motion

    out = tmp_path / "walk.npz"
    proc = subprocess.run([COAMD, "request", "a person walks forward", "--server", server.target,
                           "--out", str(out), "--bvh", str(tmp_path / "walk.bvh"), "--gif", str(tmp_path / "walk.gif"),
                           "--glb", str(tmp_path / "walk.glb"),
                           "--duration", "1.2", "--no-guidance", "--iterations", "2", "--seed", "5"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "time to first frame" in proc.stdout and "total" in proc.stdout
    assert "understood as: walk" in proc.stdout and "note:" not in proc.stdout
    flip = subprocess.run([COAMD, "request", "someone does a backflip", "--server", server.target, "--out",
                           str(tmp_path / "flip.npz"), "--duration", "1.0", "--no-guidance", "--iterations", "2"],
                          capture_output=True, text=True, timeout=180)
    assert flip.returncode == 0 and "note: 'backflip' is outside the trained vocabulary" in flip.stdout, flip.stdout
    m = load_motion(out)
    assert m.joints.shape == (24, 21, 3) and m.text == "a person walks forward"
    assert (tmp_path / "walk.gif").stat().st_size > 1000
    assert read_bvh(tmp_path / "walk.bvh").motion.shape[0] == 24
    assert (tmp_path / "walk.glb").read_bytes()[:4] == b"glTF"
    bad = subprocess.run([COAMD, "request", "x", "--server", server.target, "--out", str(out), "--duration", "99"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "INVALID_ARGUMENT: duration_s:" in bad.stderr


# ------------------------------------------------------------------ auth, TLS, queue bound
def test_auth_and_tls(secure_server, tls_files):
    cert, _ = tls_files
    with MotionClient(secure_server.target, tls_ca=str(cert)) as anon:
        assert anon.health() == "SERVING"               # health stays open for probes
        with pytest.raises(grpc.RpcError) as exc:
            anon.skeleton()
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as exc:
            collect(anon.stream(build_generate_request("a person walks", 1.0, **FAST), timeout=30))
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with MotionClient(secure_server.target, tls_ca=str(cert), token="wrong") as wrong:
        with pytest.raises(grpc.RpcError) as exc:
            wrong.skeleton()
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with MotionClient(secure_server.target, tls_ca=str(cert), token=TOKEN) as ok:
        assert len(ok.skeleton()["joint_names"]) == 21
        r = ok.generate("a person walks", duration_s=1.0, guidance=False, **FAST)
        assert r.joints.shape[0] >= 20
    with MotionClient(secure_server.target, token=TOKEN) as plain:  # plaintext to a TLS port
        with pytest.raises(grpc.RpcError) as exc:
            plain.skeleton(timeout=5)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def test_resource_exhausted_when_queue_full(secure_server, tls_files):
    cert, _ = tls_files
    with MotionClient(secure_server.target, tls_ca=str(cert), token=TOKEN) as c:
        # the per-request compute budget's maximum (64 x 16 evaluations per token): several seconds
        # on 2 cores, so both are still in the server when the third arrives 1.5 s later (48 x 8
        # once finished first on a fast run)
        long_req = build_generate_request("a person walks in a circle", duration_s=12.0, guidance=True,
                                          iterations=64, ode_steps=16)
        first = c.stream(long_req, timeout=120)   # takes the one batch slot
        time.sleep(0.5)
        second = c.stream(long_req, timeout=120)  # waits in the queue of one
        time.sleep(1.0)
        with pytest.raises(grpc.RpcError) as exc:
            collect(c.stream(build_generate_request("a person waves", 1.0, **FAST), timeout=30))
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        first.cancel()
        second.cancel()
        time.sleep(0.5)
        r = c.generate("a person waves", duration_s=1.0, guidance=False, **FAST)
        assert r.joints.shape[0] >= 20


def test_sigterm_drains_in_flight_stream(secure_server, tls_files):
    # Runs last: it stops the secure server. The stream in flight at SIGTERM must still complete.
    cert, _ = tls_files
    with MotionClient(secure_server.target, tls_ca=str(cert), token=TOKEN) as c:
        stream = c.stream(build_generate_request("a person walks", duration_s=8.0, guidance=True,
                                                 iterations=24, ode_steps=4), timeout=120)
        it = iter(stream)
        asm = FrameAssembler()
        asm.add(next(it))
        secure_server.proc.send_signal(signal.SIGTERM)
        for resp in it:
            asm.add(resp)
        assert asm.summary is not None and asm.next_index == asm.summary.total_frames == 160
    assert secure_server.proc.wait(60) == 0
    log = secure_server.log_path.read_text()
    assert "draining (1 active" in log, log[-2000:]


# ------------------------------------------------------------------ interpretation and capabilities
def test_capabilities_list_the_trained_vocabulary(client, dataset):
    from coamd.data.vocabulary import build_vocabulary

    caps = client.capabilities()
    truth = build_vocabulary(dataset.root)
    assert [a["label"] for a in caps["actions"]] == list(dataset.contents)
    assert [s["label"] for s in caps["styles"]] == list(dataset.styles)
    assert {a["label"]: a["training_clips"] for a in caps["actions"]} == \
        {a["label"]: a["training_clips"] for a in truth["actions"]}
    walk = next(a for a in caps["actions"] if a["label"] == "walk")
    assert walk["training_clips"] == sum(1 for c in dataset.split("train") if c.content == "walk" and not c.mirrored)
    assert next(a for a in caps["actions"] if a["label"] == "wave-left-hand")["side"] == "left"
    assert caps["min_duration_s"] == pytest.approx(0.4) and caps["max_duration_s"] >= 10 and caps["fps"] == 20
    # which styles each action was recorded in: the train split's source clips of every pair
    pairs = {}
    for c in dataset.split("train"):
        if not c.mirrored:
            pairs[c.content, c.style] = pairs.get((c.content, c.style), 0) + 1
    for a in caps["actions"]:
        assert a["recorded_with"] == {s: n for (ca, s), n in pairs.items() if ca == a["label"]}, a["label"]
        assert sum(a["recorded_with"].values()) == a["training_clips"]
    for st in caps["styles"]:
        assert st["recorded_with"] == {ca: n for (ca, s), n in pairs.items() if s == st["label"]}, st["label"]
    wave = next(a for a in caps["actions"] if a["label"] == "wave-right-hand")
    assert "angry" not in wave["recorded_with"] and wave["recorded_with"]["elderly"] > 0
    assert "angry" in next(a for a in caps["actions"] if a["label"] == "walk")["recorded_with"]


def test_capabilities_cli(server):
    proc = subprocess.run([COAMD, "capabilities", "--server", server.target], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    wave = next(line for line in proc.stdout.splitlines() if line.strip().startswith("wave-right-hand "))
    assert "[right]" in wave and "recorded" in wave and "elderly" in wave and "angry" not in wave, wave
    assert "(rare)" in next(line for line in proc.stdout.splitlines() if line.strip().startswith("kick "))
    as_json = subprocess.run([COAMD, "capabilities", "--server", server.target, "--json"], capture_output=True,
                             text=True, timeout=120)
    caps = json.loads(as_json.stdout)
    walk = next(a for a in caps["actions"] if a["label"] == "walk")
    assert walk["recorded_with"]["angry"] > 0 and sum(walk["recorded_with"].values()) == walk["training_clips"]
    down = subprocess.run([COAMD, "capabilities", "--server", "127.0.0.1:1", "--timeout", "2"], capture_output=True,
                          text=True, timeout=60)
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr and "Traceback" not in down.stderr, down.stderr


def test_every_generation_says_how_its_text_was_understood(client):
    kw = dict(duration_s=1.0, seed=2, guidance=False, **FAST)
    jog = client.generate("an old lady jogs down the road", **kw).summary["interpretation"]
    assert jog["content"][0][0] == "run" and jog["style"][0][0] == "elderly"
    assert not jog["out_of_vocabulary"] and jog["note"] == ""
    assert "elderly" in jog["conditioned_text"].lower() and "run" in jog["conditioned_text"].lower()
    flip = client.generate("a person does a backflip", **kw)
    it = flip.summary["interpretation"]
    assert it["out_of_vocabulary"] and it["out_of_vocabulary_score"] > 0.5
    assert "backflip" in it["note"] and "nearest supported motion" in it["note"]
    assert flip.joints.shape == (20, 21, 3)          # still the nearest supported motion, never nothing
    angry = client.generate("furiously wave your right hand", **kw).summary["interpretation"]
    assert angry["content"][0][0] == "wave-right-hand" and angry["style"][0][0] == "angry"
    assert not angry["out_of_vocabulary"] and "never recorded with wave-right-hand" in angry["note"]
    assert angry["conditioned_text"] == "A person waves the right hand."   # the action, without the style
    raw = client.generate("an old lady jogs down the road", text_conditioning="raw", **kw).summary["interpretation"]
    assert raw["conditioned_text"] == "an old lady jogs down the road" and raw["content"][0][0] == "run"


def test_skeleton_valid_stream_and_root_motion(client):
    """Default frames are forward kinematics of the streamed rotations on GetSkeleton's offsets;
    in-place root motion removes the travel and sends it as velocity and heading."""
    from coamd.io.bvh_export import forward_kinematics

    kw = dict(duration_s=2.0, seed=6, guidance=False, include_rotations=True, **FAST)
    world = client.generate("a person walks forward", **kw)
    assert world.summary["skeleton_applied"] and world.summary["root_motion"] == "world"
    _, fk = forward_kinematics(world.rotations, world.joints[:, 0])
    assert np.abs(fk - world.joints).max() < 1e-3                     # positions == FK(rotations), 1 mm
    from coamd.skeleton import BONE_CHILDREN, BONE_PARENTS

    bones = np.linalg.norm(world.joints[:, BONE_CHILDREN] - world.joints[:, BONE_PARENTS], axis=-1)
    assert (bones.std(0) / bones.mean(0)).max() < 1e-4
    skel = client.skeleton()
    np.testing.assert_allclose(bones[0], np.linalg.norm(skel["rest_offsets"][BONE_CHILDREN], axis=-1), atol=1e-4)
    travel = np.diff(world.joints[:, 0, [0, 2]], axis=0) * 20
    np.testing.assert_allclose(world.root_velocity[1:, [0, 2]], travel, atol=1e-3)
    inplace = client.generate("a person walks forward", root_motion="in_place", **kw)
    assert np.abs(inplace.joints[:, 0, [0, 2]]).max() < 1e-5
    np.testing.assert_allclose(inplace.joints[..., 1], world.joints[..., 1], atol=1e-5)
    np.testing.assert_allclose(inplace.root_velocity, world.root_velocity, atol=1e-5)
    np.testing.assert_allclose(inplace.heading, world.heading, atol=1e-5)
    raw = client.generate("a person walks forward", skeleton="raw", **kw)
    assert not raw.summary["skeleton_applied"] and raw.rotations is not None
