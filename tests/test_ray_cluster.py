"""The Ray Serve deployment (``coamd deploy``) on a real local Ray cluster: a head and a second node
started with ``ray start`` (1 CPU each), replicas on the unguided ONNX Runtime backend (loads in
about a second from the export cache; no torch in the replicas).

Phase 1 (``coamd deploy --replicas 2`` with TLS and a bearer token): requests spread over both
replicas; the front door keeps the ``coamd.v1.MotionService`` contract (health per replica,
reflection, auth, statuses from the replica); a steered session runs on one replica through the
front door; a replica killed mid-stream ends its streams with
UNAVAILABLE after a clean prefix of frames, the next requests succeed on another replica and Serve
replaces the dead one; SIGTERM drains a stream in flight and deletes the application.
Phase 2 (``coamd deploy --config`` with autoscaling 1..2 on queue length): load scales it 1 -> 2,
a lighter load back to 1 while streams run on the replica being removed, which finish (drain).
Finally the cluster is stopped and none of its processes may be left.

The replicas run with ``step_delay_s`` (a test option: every scheduler step sleeps first) so that
long streams stay open for a few seconds on this fast small model. The module took 45-65 s on the
2-core development machine, other jobs running (budget: 3 minutes).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (optional extra `ray`: make setup-ray, "
                                        "or pip install 'coamd[ray]'); the Ray Serve cluster tests need it")
pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'coamd[ray]'")

from coamd.api import SERVICE_NAME, pb  # noqa: E402
from coamd.client import FrameAssembler, MotionClient, build_generate_request  # noqa: E402
from coamd.serving.front_door import REPLICA_METADATA_KEY, replica_health_name  # noqa: E402
from coamd.serving.local_cluster import LocalRayCluster  # noqa: E402
from coamd.serving.status import replica_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COAMD = str(Path(sys.executable).with_name("coamd"))
TOKEN = "ray-s3cret"
FAST = dict(duration_s=2.0, guidance=False, iterations=2, ode_steps=2)
LONG = dict(duration_s=12.0, guidance=False, iterations=48, ode_steps=2)     # 48 steps: a few seconds
FAST_METRICS = {"RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.25",
                "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.25"}


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def cluster():
    c = LocalRayCluster(cpus=(1, 1), env=FAST_METRICS)
    c.start()
    c.connect()
    yield c
    ray.shutdown()
    c.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """Self-signed certificate for 127.0.0.1, or None without openssl (phase 1 is then plaintext)."""
    if shutil.which("openssl") is None:
        return None
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


class Deploy:
    """``coamd deploy ... --ready-file`` as a child process; ``.target`` is the front door."""

    def __init__(self, tmp: Path, address: str, *args: str, name: str = "deploy"):
        self.ready = tmp / f"{name}.ready"
        self.log_path = tmp / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([COAMD, "deploy", "--address", address, "--port", "0", "--no-guidance",
                                      "--ready-file", str(self.ready), *args],
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        t0 = time.monotonic()
        while not (self.ready.exists() and self.ready.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() - t0 > 150:
                self.stop()
                pytest.fail(f"coamd deploy did not get ready:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        self.startup_s = time.monotonic() - t0
        self.target = self.ready.read_text().strip()

    def stop(self, timeout: float = 90.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def deployed(cluster, tls, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("phase1")
    config = tmp / "serve.yaml"
    # a file for what the command line has no option for; the command line adds the rest
    config.write_text("applications:\n  - name: coamd\n    import_path: coamd.serving.app:build_app\n"
                      "    args:\n      replica: {step_delay_s: 0.06, max_wait_s: null}\n")
    extra = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
    d = Deploy(tmp, cluster.address, "--config", str(config), "--replicas", "2", "--replica-cpus", "1",
               "--token", TOKEN, *extra, name="phase1")
    print(f"\ncluster of 2 nodes up in {cluster.start_s:.1f} s; coamd deploy (2 replicas) ready in {d.startup_s:.1f} s")
    yield d
    d.stop()


@pytest.fixture
def client(deployed, tls):
    with MotionClient(deployed.target, token=TOKEN, tls_ca=str(tls[0]) if tls else None) as c:
        yield c


def running(timeout: float = 60.0, n: int | None = None, gone: str | None = None) -> list[dict]:
    """The RUNNING replicas, waiting (up to ``timeout``) until there are ``n`` and no other state,
    and (``gone``) none of them is that replica id (Serve's controller notices a killed replica
    only at its next health check, so right after a kill it may still list it as running)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = replica_table()
        run = [r for r in rows if r["state"] == "RUNNING"]
        if (n is None or (len(run) == n and len(rows) == n)) and all(r["replica_id"] != gone for r in rows):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {n} running replicas, have {rows}")
        time.sleep(0.1)


def collect(stream):
    """Read a stream to its end: (frame indices in arrival order, FrameAssembler, RpcError or None)."""
    indices, asm = [], FrameAssembler()
    try:
        for resp in stream:
            indices.extend(f.index for f in resp.frames)
            asm.add(resp)
        return indices, asm, None
    except grpc.RpcError as exc:
        return indices, asm, exc


# ------------------------------------------------------------------ units (no cluster)
def test_ready_messages_travel_together_and_parse_as_one():
    import asyncio

    from coamd.serving.replica import MotionReplica

    async def responses():
        yield pb.GenerateResponse(frames=[pb.Frame(index=0), pb.Frame(index=1)])
        await asyncio.sleep(0.02)                      # the next one is not ready yet: no waiting for it
        yield pb.GenerateResponse(frames=[pb.Frame(index=2)])
        yield pb.GenerateResponse(summary=pb.GenerateSummary(total_frames=3))   # ready at once: same item

    async def collect_batches():
        return [b async for b in MotionReplica._ready_together(responses())]

    batches = asyncio.run(collect_batches())
    assert [len(b) for b in batches] == [1, 2]
    merged = pb.GenerateResponse.FromString(b"".join(m.SerializeToString() for m in batches[1]))
    assert [f.index for f in merged.frames] == [2] and merged.summary.total_frames == 3


# ------------------------------------------------------------------ phase 1: two replicas
def test_requests_spread_over_both_replicas(deployed, tls):
    rows = running(n=2)
    ids = {r["replica_id"] for r in rows}
    assert len({r["pid"] for r in rows}) == 2 and len({r["node_id"] for r in rows}) == 2  # one per node
    results = {}

    def one(i):
        with MotionClient(deployed.target, token=TOKEN, tls_ca=str(tls[0]) if tls else None) as c:
            stream = c.stream(build_generate_request("a person walks", seed=i, **FAST), timeout=60)
            indices, asm, err = collect(stream)
            results[i] = (indices, asm, err, dict(stream.trailing_metadata()).get(REPLICA_METADATA_KEY))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join(90) for t in threads]
    served = set()
    for indices, asm, err, meta in results.values():
        assert err is None, err
        assert indices == list(range(40)) and asm.summary.total_frames == 40
        assert asm.summary.replica in ids and meta == asm.summary.replica   # trailing metadata too
        served.add(asm.summary.replica)
    assert len(results) == 8 and served == ids, f"8 concurrent requests all went to {served}"


def test_front_door_keeps_the_contract(deployed, tls):
    ca = str(tls[0]) if tls else None
    with MotionClient(deployed.target, tls_ca=ca) as anon:          # health is open, the rest needs the token
        assert anon.health() == "SERVING" and anon.health(SERVICE_NAME) == "SERVING"
        for r in running(n=2):
            assert anon.health(replica_health_name(r["replica_id"])) == "SERVING"
        with pytest.raises(grpc.RpcError) as exc:
            anon.skeleton()
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as exc:
            collect_or_raise(anon.stream(build_generate_request("a person walks", **FAST), timeout=30))
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with MotionClient(deployed.target, token=TOKEN, tls_ca=ca) as c:
        assert len(c.skeleton()["joint_names"]) == 21                  # unary calls through a replica
        assert c.capabilities()["actions"]
        with pytest.raises(grpc.RpcError) as exc:                      # the replica's validation, unchanged
            collect_or_raise(c.stream(build_generate_request("a person walks", duration_s=30.0), timeout=30))
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "duration_s" in exc.value.details()
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(c.channel)
        resp = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              metadata=c.metadata))
        assert {SERVICE_NAME, "grpc.health.v1.Health"} <= {s.name for s in resp.list_services_response.service}
    if tls:
        with MotionClient(deployed.target, token=TOKEN) as plain:   # plaintext to the TLS port
            with pytest.raises(grpc.RpcError) as exc:
                plain.skeleton(timeout=5)
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def collect_or_raise(stream):
    indices, asm, err = collect(stream)
    if err is not None:
        raise err
    return indices, asm


def test_session_lives_on_one_replica(client):
    ids = {r["replica_id"] for r in running(n=2)}
    s = client.session("a person walks", guidance=False, iterations=2, ode_steps=2, timeout=90)
    instructed = closed = False
    for _update in s:
        if s.next_index >= 30 and not instructed:
            s.instruct("a person waves the right hand")
            instructed = True
        if not closed and any(e["kind"] == "INSTRUCTION" for e in s.events):
            s.close()
            closed = True
    kinds = [e["kind"] for e in s.events]
    assert kinds[0] == "OPENED" and "INSTRUCTION" in kinds and kinds[-1] == "CLOSED", kinds
    closed_event = s.events[-1]
    assert closed_event["first_frame"] == s.next_index > 30           # every frame once, in order (client-checked)
    assert dict(s._call.initial_metadata())[REPLICA_METADATA_KEY] in ids


def test_replica_killed_mid_stream(client, deployed):
    before = {r["replica_id"]: r["pid"] for r in running(n=2)}
    door = ray.serve.get_app_handle("coamd")
    streams = [client.stream(build_generate_request("a person walks in a circle", seed=i, **LONG), timeout=90)
               for i in range(4)]
    its = [iter(s) for s in streams]
    firsts = [next(it) for it in its]                 # every stream has sent frames
    on = door.replicas.remote().result()["streams"]   # replica id -> streams in flight
    victim = max(on, key=on.get)
    os.kill(before[victim], signal.SIGKILL)
    t_kill = time.monotonic()
    interrupted = 0
    for s, it, first in zip(streams, its, firsts):
        indices, asm, err = collect(_chain(first, it))
        assert indices == list(range(len(indices))), "a gap or a repeated frame"
        rid = dict(s.trailing_metadata() or ()).get(REPLICA_METADATA_KEY)
        if err is not None:   # every interrupted stream ends with a status, after a clean prefix
            interrupted += 1
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err
            assert rid == victim and victim in err.details() and f"after {len(indices)} frames" in err.details()
            assert 0 < len(indices) < 240 and asm.summary is None
        else:
            assert rid != victim and asm.summary.replica == rid
            assert asm.summary.total_frames == len(indices) == 240
    assert interrupted == on[victim]
    for i in range(4):      # the front door keeps serving; no request goes to the dead replica
        r = client.generate("a person waves", seed=i, timeout=60, **FAST)
        assert r.joints.shape[0] == 40 and r.summary["replica"] != victim
    assert client.health(replica_health_name(victim)) == "NOT_SERVING"
    assert client.health() == "SERVING"
    new = running(n=2, timeout=60, gone=victim)   # Serve replaced it
    assert victim not in {r["replica_id"] for r in new}
    print(f"replacement running {time.monotonic() - t_kill:.1f} s after the kill")
    deadline = time.monotonic() + 10
    fresh = [r["replica_id"] for r in new if r["replica_id"] not in before][0]
    while client.health(replica_health_name(fresh)) != "SERVING":
        assert time.monotonic() < deadline, "the replacement never became SERVING at the front door"
        time.sleep(0.2)


def test_sigterm_drains_then_deletes(client, deployed):
    pids = [r["pid"] for r in running(n=2)]
    stream = client.stream(build_generate_request("a person walks", seed=7, **LONG), timeout=90)
    it = iter(stream)
    asm = FrameAssembler()
    asm.add(next(it))
    deployed.proc.send_signal(signal.SIGTERM)
    for resp in it:
        asm.add(resp)
    assert asm.summary is not None and asm.next_index == asm.summary.total_frames == 240
    assert deployed.proc.wait(90) == 0
    log = deployed.log_path.read_text()
    assert "stopping coamd (graceful drain)" in log and "stopped after" in log, log[-2000:]
    assert replica_table() == []
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, "replica processes outlived the application"
        time.sleep(0.2)


def _chain(first, rest):
    yield first
    yield from rest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------ phase 2: autoscaling 1 -> 2 -> 1
AUTOSCALE_CONFIG = """\
applications:
  - name: coamd
    import_path: coamd.serving.app:build_app
    args:
      replica: {step_delay_s: 0.1, max_wait_s: null}
    deployments:
      - name: MotionReplica
        ray_actor_options: {num_cpus: 1}
        autoscaling_config:
          min_replicas: 1
          max_replicas: 2
          target_ongoing_requests: 3
          upscale_delay_s: 0.5
          downscale_delay_s: 2
          look_back_period_s: 1
          metrics_interval_s: 0.25
        graceful_shutdown_wait_loop_s: 0.2
        graceful_shutdown_timeout_s: 30
"""


def test_autoscale_one_two_one_with_graceful_drain(cluster, tmp_path):
    config = tmp_path / "autoscale.yaml"
    config.write_text(AUTOSCALE_CONFIG)
    d = Deploy(tmp_path, cluster.address, "--config", str(config), name="phase2")
    try:
        first = running(n=1)[0]["replica_id"]
        seen: list[tuple[float, dict]] = []        # (time, {replica id: state}) every 0.1 s
        watching = threading.Event()

        def watch():
            while not watching.is_set():
                seen.append((time.monotonic(), {r["replica_id"]: r["state"] for r in replica_table()}))
                time.sleep(0.1)

        done: list[tuple[float, str, int, int]] = []   # (end time, replica, frames, summary frames)
        errors: list[str] = []
        stop = threading.Event()

        def loop(seed: int, iterations: int):
            with MotionClient(d.target) as c:
                while not stop.is_set():
                    try:
                        r = c.generate("a person walks", duration_s=4.0, guidance=False, iterations=iterations,
                                       ode_steps=2, seed=seed, timeout=60)
                        done.append((time.monotonic(), r.summary["replica"], r.joints.shape[0],
                                     r.summary["total_frames"]))
                    except Exception as exc:  # noqa: BLE001 - counted, asserted below
                        errors.append(f"{type(exc).__name__}: {exc}")

        watcher = threading.Thread(target=watch)
        watcher.start()
        burst = [threading.Thread(target=loop, args=(i, 12)) for i in range(7)]   # 7 streams > 3 per replica
        [t.start() for t in burst]
        two = running(n=2, timeout=60)
        stop.set()
        [t.join(60) for t in burst]
        stop.clear()
        t_up = time.monotonic()
        # a lighter load (3 streams = the target of ONE replica) keeps both busy while Serve scales down
        probes = [threading.Thread(target=loop, args=(100 + i, 24)) for i in range(3)]
        [t.start() for t in probes]
        one = running(n=1, timeout=60)
        t_one = time.monotonic()
        stop.set()
        [t.join(60) for t in probes]
        watching.set()
        watcher.join(10)
    finally:
        rc = d.stop()
    assert rc == 0, d.log_path.read_text()[-2000:]
    assert not errors, errors[:3]
    assert all(frames == total == 80 for _, _, frames, total in done)
    ids_up = {r["replica_id"] for r in two}
    assert first in ids_up and len(ids_up) == 2
    removed = (ids_up - {one[0]["replica_id"]}).pop()
    t_stopping = min(t for t, states in seen if states.get(removed) == "STOPPING")
    drained = [x for x in done if x[1] == removed and x[0] > t_stopping]
    assert drained, "no stream finished on the replica being removed (graceful drain not observed)"
    counts = [sum(s == "RUNNING" for s in states.values()) for _, states in seen]
    assert max(counts) == 2 and counts[-1] == 1
    up_s = min(t for t, states in seen if sum(x == "RUNNING" for x in states.values()) == 2) - seen[0][0]
    print(f"autoscaling: coamd deploy --config ready in {d.startup_s:.1f} s; "
          f"2 replicas running {up_s:.1f} s after the load began; back to 1 "
          f"{t_one - t_up:.1f} s after the lighter load began; {len(done)} streams, {len(drained)} finished "
          f"on the replica being removed while it drained")


def test_no_processes_left_behind(cluster):
    assert cluster.processes(), "the cluster should still be running here"
    ray.shutdown()
    left = cluster.stop()
    assert left == [], f"processes left behind: {left}"
