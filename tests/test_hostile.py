"""A hostile client against the server: fuzzed bytes and fields, identical concurrent edits,
mid-stream cancellations, a deadline storm, worker death, overload, drain with streams in flight.

The scheduler tests use a scripted step model (no weights); the end-to-end tests run one real
``coamd serve`` (torch backend, the shipped checkpoint) on loopback, and check after every storm
that the server still serves and has logged no traceback. The whole module runs in well under a
minute on the 2-core development machine.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from benchmarks.soak import fuzz_cases
from coamd.client.process import ServerProcess, ServerStartError
from coamd.api import SERVICE_NAME, pb, pb_grpc
from coamd.server.scheduler import Job, QueueFull, Scheduler
from coamd.server.validation import ValidationError, check_text

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(iterations=2, ode_steps=2)
GENERATE = "/coamd.v1.MotionService/Generate"
RECOGNIZE = "/coamd.v1.MotionService/Recognize"
# what a hostile request may end with; UNKNOWN, INTERNAL or UNAVAILABLE mean the server broke
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
           grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}


# ------------------------------------------------------------------ scheduler, scripted model
@dataclasses.dataclass
class EditLike:
    """Parameters holding numpy arrays, as the server's GenerateParams with an edit do."""

    text: str
    frames: np.ndarray
    iterations: int = 5


class _State:
    def __init__(self, p):
        self.p, self.steps = p, 0


class ScriptedModel:
    """Each request takes ``params.iterations`` steps of ``step_s`` seconds and emits 4 frames a step."""

    def __init__(self, step_s: float = 0.005, die_on_step: int | None = None):
        self.step_s, self.die_on_step, self.calls = step_s, die_on_step, 0

    def start(self, p):
        return _State(p)

    def step(self, states):
        self.calls += 1
        if self.die_on_step is not None and self.calls >= self.die_on_step:
            raise SystemExit("simulated fatal error in the worker")   # not an Exception: escapes handlers
        time.sleep(self.step_s)
        out = []
        for s in states:
            out.append([type("Chunk", (), {"start": 4 * s.steps, "joints": np.zeros((4, 21, 3), np.float32)})()])
            s.steps += 1
        return out

    def done(self, s):
        return s.steps >= s.p.iterations

    def guided(self, s):
        return False

    def disable_guidance(self, s):
        pass


async def _drain(job, timeout=10.0):
    frames = 0
    while True:
        item = await asyncio.wait_for(job.queue.get(), timeout)
        if item[0] == "frames":
            frames += item[1].joints.shape[0]
        else:
            return frames, item


def test_identical_edit_jobs_do_not_kill_the_worker(dataset):
    """Two jobs whose parameters are equal and hold arrays (the same edit twice) used to make
    ``job in batch`` compare arrays and kill the worker; every later request then hung."""
    keep = dataset.clips[0].joints[:8]
    sched = Scheduler(ScriptedModel(), max_batch=8, max_queue=8)

    async def go():
        loop = asyncio.get_running_loop()
        twins = [Job(params=EditLike("a person walks forward", keep.copy()), loop=loop) for _ in range(2)]
        for j in twins:
            sched.submit(j)
        first = await asyncio.gather(*(_drain(j) for j in twins))
        later = Job(params=EditLike("a person waves", keep.copy(), iterations=3), loop=loop)
        sched.submit(later)
        return first, await _drain(later)

    first, later = asyncio.run(go())
    sched.close()
    assert [f for f, _ in first] == [20, 20] and all(end == ("done", None) for _, end in first)
    assert later == (12, ("done", None)) and sched.healthy


def test_worker_death_fails_jobs_and_reports_unhealthy():
    reasons = []
    sched = Scheduler(ScriptedModel(die_on_step=3), max_batch=2, max_queue=8, max_wait_s=None,
                      on_failure=reasons.append)

    async def go():
        loop = asyncio.get_running_loop()
        jobs = [Job(params=EditLike("a person walks", np.zeros(1), iterations=50), loop=loop) for _ in range(3)]
        for j in jobs:
            sched.submit(j)
        return await asyncio.gather(*(_drain(j) for j in jobs))

    results = asyncio.run(go())
    assert all(end[:2] == ("error", grpc.StatusCode.UNAVAILABLE) for _, end in results)
    assert not sched.healthy and reasons and "SystemExit" in reasons[0]
    with pytest.raises(RuntimeError, match="worker stopped"):
        sched.submit(Job(params=EditLike("a person walks", np.zeros(1)), loop=asyncio.new_event_loop()))


def test_admission_by_expected_wait():
    """With a wait bound, long requests are refused at once while the queue still has room, and the
    estimate grows with the work ahead; without a bound only max_queue refuses."""
    model = ScriptedModel(step_s=0.01)
    sched = Scheduler(model, max_batch=2, max_queue=100, max_wait_s=0.5, step_time_s=0.01)
    loop = asyncio.new_event_loop()
    accepted, waits = [], []
    try:
        with pytest.raises(QueueFull, match="expected wait"):
            for _ in range(100):
                job = Job(params=EditLike("a person walks", np.zeros(1), iterations=20), loop=loop)
                waits.append(sched.expected_wait_s(job))
                sched.submit(job)
                accepted.append(job)
        assert 2 <= len(accepted) < 100 and sched.rejected["wait"] == 1
        assert waits == sorted(waits) and waits[-1] > 0.5
    finally:
        for j in accepted:
            j.cancel()
        sched.close()
        loop.close()
    unbounded = Scheduler(ScriptedModel(step_s=0.01), max_batch=2, max_queue=3, max_wait_s=None)
    loop = asyncio.new_event_loop()
    try:
        jobs = [Job(params=EditLike("a person walks", np.zeros(1), iterations=200), loop=loop) for _ in range(6)]
        n = 0
        with pytest.raises(QueueFull, match="max_queue"):
            for j in jobs:
                unbounded.submit(j)
                n += 1
        assert n >= 3
    finally:
        for j in jobs:
            j.cancel()
        unbounded.close()
        loop.close()


@pytest.mark.parametrize("text", ["\x00", "\x00" * 512, "\u200b\u200b", "\ufeff", "\x07\x1b[0m",
                                  " \t\n", "1234 !?", "walk\x00"])
def test_texts_without_content_are_rejected(text):
    with pytest.raises(ValidationError) as exc:
        check_text(text)
    assert exc.value.field == "text"


def test_real_text_with_invisible_characters_is_kept():
    assert check_text("\ufeffa person\u200b waves ") == "a person waves"
    assert check_text("un homme salue de la main") == "un homme salue de la main"


# ------------------------------------------------------------------ a real server under attack
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ckpt = os.environ.get("COAMD_TEST_CHECKPOINT")
    args = ["--backend", "torch", "--max-batch", "8", "--max-queue", "16", "--grace", "1"]
    args += ["--checkpoint", ckpt] if ckpt else []
    try:
        srv = ServerProcess(args, log_path=tmp_path_factory.mktemp("hostile") / "server.log", timeout_s=120, cwd=ROOT)
    except ServerStartError as exc:
        pytest.fail(str(exc))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.target) as ch:
        yield ch


def _code(fn) -> grpc.StatusCode:
    try:
        fn()
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()


def _assert_still_serving(channel, server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    stub = pb_grpc.MotionServiceStub(channel)
    frames = sum(len(r.frames) for r in stub.Generate(
        pb.GenerateRequest(text="a person waves", duration_s=1.0, guidance=pb.GUIDANCE_OFF, **FAST), timeout=30))
    assert frames == 20
    log = server.log_path.read_text()
    assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]


def test_fuzzed_requests_get_clean_statuses(channel, server):
    calls = {GENERATE: channel.unary_stream(GENERATE, request_serializer=None, response_deserializer=None),
             RECOGNIZE: channel.unary_unary(RECOGNIZE, request_serializer=None, response_deserializer=None)}

    def one(case):
        method, data = case
        if method == GENERATE:
            return _code(lambda: list(calls[method](data, timeout=5)))
        return _code(lambda: calls[method](data, timeout=5))

    cases = fuzz_cases(300)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, cases))
    bad = [(c, cases[i]) for i, c in enumerate(codes) if c not in ALLOWED]
    assert not bad, bad[:5]
    assert codes.count(grpc.StatusCode.INVALID_ARGUMENT) > 100
    log_lines = server.log_path.read_text().count("\n")
    assert log_lines < 60, "malformed requests must be logged rate-limited, one line each at most"
    _assert_still_serving(channel, server)


@pytest.mark.parametrize("mode", ["prefix", "suffix", "inbetween"])
def test_concurrent_identical_edits(channel, server, dataset, mode):
    walk = next(c for c in dataset.split("test") if c.content == "walk")
    frames = [pb.Frame(index=i, positions=walk.joints[i].reshape(-1).tolist()) for i in range(8)]
    edit = pb.Edit(mode={"prefix": pb.EDIT_MODE_PREFIX, "suffix": pb.EDIT_MODE_SUFFIX,
                         "inbetween": pb.EDIT_MODE_INBETWEEN}[mode], frames=frames,
                   inbetween_prefix_frames=4 if mode == "inbetween" else 0)
    req = pb.GenerateRequest(text="a person walks forward", duration_s=4.0, seed=1, guidance=pb.GUIDANCE_OFF,
                             edit=edit, **FAST)
    stub = pb_grpc.MotionServiceStub(channel)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        counts = list(pool.map(lambda _: sum(len(r.frames) for r in stub.Generate(req, timeout=30)), range(3)))
    assert counts == [80, 80, 80]
    _assert_still_serving(channel, server)


def test_cancellations_and_deadline_storm(channel, server):
    stub = pb_grpc.MotionServiceStub(channel)
    long_req = pb.GenerateRequest(text="a person walks in a circle", duration_s=8.0, guidance=pb.GUIDANCE_OFF,
                                  iterations=16, ode_steps=4, order=pb.TOKEN_ORDER_LEFT_TO_RIGHT)

    def cancel_mid_stream(i):
        stream = stub.Generate(long_req, timeout=30)
        try:
            if i % 2:
                next(stream)             # cancel after the first frames arrived
        except grpc.RpcError as exc:
            return exc.code()
        stream.cancel()
        return _code(lambda: list(stream))

    def short_deadline(i):
        return _code(lambda: list(stub.Generate(long_req, timeout=0.001 + 0.002 * (i % 25))))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        cancelled = list(pool.map(cancel_mid_stream, range(40)))
        deadlines = list(pool.map(short_deadline, range(100)))
    assert set(cancelled) <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert cancelled.count(grpc.StatusCode.CANCELLED) >= 20
    assert set(deadlines) <= {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
    time.sleep(0.5)
    _assert_still_serving(channel, server)


def test_edge_errors_name_their_field(channel):
    stub = pb_grpc.MotionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as exc:
        stub.Recognize(pb.RecognizeRequest(frames=[pb.Frame(positions=[0.0] * 63)]), timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and exc.value.details().startswith("frames:")
    heavy = pb.GenerateRequest(text="a person walks", duration_s=2.0, iterations=64, ode_steps=64,
                               solver=pb.SOLVER_HEUN)
    with pytest.raises(grpc.RpcError) as exc:
        list(stub.Generate(heavy, timeout=10))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "budget" in exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        list(stub.Generate(pb.GenerateRequest(text="\ufeff\u200b", duration_s=2.0), timeout=10))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and exc.value.details().startswith("text:")


# ------------------------------------------------------------------ in-process server: auth and health wiring
class _FakeEngine:
    backend_name = "scripted"

    def __init__(self, model):
        self.step_model = model

    def describe(self, state):
        return {"iterations": state.p.iterations}


def test_unknown_method_without_token_is_unauthenticated_and_dead_worker_is_not_serving():
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from coamd.server.app import ServerConfig, start_server

    async def go():
        model = ScriptedModel(die_on_step=2)
        cfg = ServerConfig(host="127.0.0.1", port=0, token="t0ken")
        server, port, _health, scheduler = await start_server(cfg, _FakeEngine(model))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                unknown = ch.unary_unary("/coamd.v1.MotionService/NoSuchMethod", request_serializer=None,
                                         response_deserializer=None)
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await unknown(b"", timeout=5)
                assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await unknown(b"", timeout=5, metadata=(("authorization", "Bearer t0ken"),))
                assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED
                health = health_pb2_grpc.HealthStub(ch)
                check = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
                assert (await health.Check(check, timeout=5)).status == health_pb2.HealthCheckResponse.SERVING
                stub = pb_grpc.MotionServiceStub(ch)
                auth = (("authorization", "Bearer t0ken"),)
                req = pb.GenerateRequest(text="a person walks", duration_s=2.0, guidance=pb.GUIDANCE_OFF, **FAST)
                with pytest.raises(grpc.aio.AioRpcError) as exc:   # the worker dies on its second step
                    async for _ in stub.Generate(req, timeout=10, metadata=auth):
                        pass
                assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
                for _ in range(50):
                    if (await health.Check(check, timeout=5)).status == health_pb2.HealthCheckResponse.NOT_SERVING:
                        break
                    await asyncio.sleep(0.02)
                assert (await health.Check(check, timeout=5)).status == health_pb2.HealthCheckResponse.NOT_SERVING
                with pytest.raises(grpc.aio.AioRpcError) as exc:   # refused at once, not hanging
                    async for _ in stub.Generate(req, timeout=10, metadata=auth):
                        pass
                assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await server.stop(0)
            scheduler.close()

    asyncio.run(go())


# ------------------------------------------------------------------ drain with streams in flight
def test_sigterm_with_long_streams_ends_them_cleanly(tmp_path):
    ckpt = os.environ.get("COAMD_TEST_CHECKPOINT")
    args = ["--backend", "torch", "--grace", "0.5"] + (["--checkpoint", ckpt] if ckpt else [])
    srv = ServerProcess(args, log_path=tmp_path / "server.log", timeout_s=120, cwd=ROOT)
    codes = []
    try:
        with grpc.insecure_channel(srv.target) as ch:
            stub = pb_grpc.MotionServiceStub(ch)
            req = pb.GenerateRequest(text="a person walks", duration_s=12.0, guidance=pb.GUIDANCE_OFF,
                                     iterations=32, ode_steps=16)

            def run():
                codes.append(_code(lambda: list(stub.Generate(req, timeout=60))))

            threads = [threading.Thread(target=run) for _ in range(6)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            srv.proc.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(60)
            rc = srv.proc.wait(60)            # the server exits by itself after the drain
    finally:
        srv.stop()
    assert rc == 0
    assert codes and set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]
