"""Assemble and run the gRPC server: engine, scheduler, service, health, reflection, auth, TLS.

``serve(ServerConfig)`` blocks until SIGTERM/SIGINT, then drains: health turns NOT_SERVING, new
calls are refused, calls in flight get ``grace_s`` seconds to finish, then the rest is cancelled.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from coamd.api import SERVICE_NAME
from coamd.server.auth import BearerTokenInterceptor
from coamd.server.scheduler import Scheduler
from coamd.server.service import MotionService, add_to_server
from coamd.server.validation import Defaults

log = logging.getLogger("coamd.server")


@dataclass
class ServerConfig:
    """Everything ``coamd serve`` can set. ``port`` 0 picks a free port (printed at start)."""

    host: str = "127.0.0.1"
    port: int = 50051
    backend: str = "onnxruntime"
    checkpoint: str | None = None
    batching: bool = True
    max_batch: int = 8
    max_queue: int = 32
    max_wait_s: float | None = 2.0      # admission bound on a new request's expected wait (None: off)
    max_sessions: int = 64              # open Session streams; beyond it RESOURCE_EXHAUSTED
    session_idle_s: float = 60.0        # a session whose client reads nothing this long is closed
    session_horizon_s: float | None = None  # frames a session window plans (None: SessionConfig's 1.4 s)
    session_history_s: float | None = None  # longest prefix of an unchanged text (None: SessionConfig's)
    session_commit_s: float | None = None   # frames a session window commits (None: SessionConfig's 0.4 s)
    session_prefix_s: float | None = None   # history a new instruction's window keeps (None: SessionConfig's 0.4 s)
    max_request_evals: int | None = None  # per-request compute budget (None: validation's default)
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    grace_s: float = 10.0
    ready_file: str | None = None
    fault_injection: bool = False
    threads: int = 0
    defaults: Defaults | None = None
    guidance: bool = True  # load the PyTorch guidance sidecar; False: every request runs unguided


def torch_threads() -> int:
    """PyTorch intra-op threads when ``--threads`` is 0 (the torch backend and the guidance
    sidecar): half the usable cores, at least 1. On the loaded 2-core CPU one thread stepped a
    batch 15x faster than two fighting over the cores. ONNX Runtime keeps its own default (all
    usable cores, no spinning), which gave 2.6x the 8-client throughput of one thread in
    ``benchmarks/load.py``."""
    import os

    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n // 2))


def _read(path: str, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    return p.read_bytes()


async def start_server(cfg: ServerConfig, engine):
    """Build and start the server around a loaded ``engine``. Returns (server, port, health, scheduler)."""
    scheduler = Scheduler(engine.step_model, max_batch=cfg.max_batch, max_queue=cfg.max_queue,
                          batching=cfg.batching, max_wait_s=cfg.max_wait_s)
    interceptors = [BearerTokenInterceptor(cfg.token)] if cfg.token else []
    server = grpc.aio.server(interceptors=interceptors, options=[
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.so_reuseport", 0)])
    defaults = cfg.defaults or (engine.defaults() if hasattr(engine, "defaults") else None) or Defaults()
    if cfg.max_request_evals is not None:
        defaults = dataclasses.replace(defaults, max_request_evals=cfg.max_request_evals)
    session_config = None
    if any(v is not None for v in (cfg.session_horizon_s, cfg.session_history_s, cfg.session_commit_s,
                                   cfg.session_prefix_s)):
        from coamd.sampling.session import SessionConfig

        session_config = SessionConfig.from_seconds(cfg.session_horizon_s, cfg.session_commit_s, cfg.session_history_s,
                                                    cfg.session_prefix_s)
    add_to_server(MotionService(engine, scheduler, defaults, max_sessions=cfg.max_sessions,
                                session_idle_s=cfg.session_idle_s, session_config=session_config), server)
    health_servicer = health.aio.HealthServicer()
    loop = asyncio.get_running_loop()

    def worker_failed(reason: str) -> None:  # called from the scheduler's thread
        async def not_serving():
            for name in ("", SERVICE_NAME):
                await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(not_serving()))
        except RuntimeError:  # the loop is closed: nothing left to report to
            pass

    scheduler.on_failure = worker_failed
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server)
    address = f"{cfg.host}:{cfg.port}"
    if cfg.tls_cert or cfg.tls_key:
        if not (cfg.tls_cert and cfg.tls_key):
            raise ValueError("TLS needs both --tls-cert and --tls-key")
        creds = grpc.ssl_server_credentials([(_read(cfg.tls_key, "TLS key"), _read(cfg.tls_cert, "TLS certificate"))])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind {address}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer, scheduler


async def drain(server, health_servicer, scheduler: Scheduler, grace_s: float) -> None:
    """Graceful stop: health NOT_SERVING and new calls refused at once; requests in flight get
    ``grace_s`` seconds to finish; then the scheduler ends what is left with UNAVAILABLE "server is
    shutting down" (a clean status for the client, no cancelled handler tracebacks in the log)
    before the server cancels anything still open."""
    await health_servicer.enter_graceful_shutdown()
    stopped = asyncio.ensure_future(server.stop(grace_s + 2.0))   # refuses new calls now
    deadline = time.monotonic() + grace_s
    while scheduler.load != (0, 0) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    scheduler.close()
    await stopped


async def _serve(cfg: ServerConfig, engine) -> None:
    server, port, health_servicer, scheduler = await start_server(cfg, engine)
    scheme = "TLS" if cfg.tls_cert else "plaintext"
    auth = "bearer token" if cfg.token else "no auth"
    print(f"coamd serve: listening on {cfg.host}:{port} ({scheme}, {auth}); backend {engine.backend_name}; "
          f"batching {'on, max_batch ' + str(scheduler.max_batch) if cfg.batching else 'off'}, "
          f"max_queue {cfg.max_queue}", flush=True)
    if cfg.ready_file:
        Path(cfg.ready_file).write_text(f"{port}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    t = time.monotonic()
    active, waiting = scheduler.load
    print(f"coamd serve: draining ({active} active, {waiting} waiting, grace {cfg.grace_s:g} s)", flush=True)
    await drain(server, health_servicer, scheduler, cfg.grace_s)
    print(f"coamd serve: stopped after {time.monotonic() - t:.1f} s", flush=True)


def serve(cfg: ServerConfig) -> None:
    """Load the engine, serve until SIGTERM/SIGINT, drain gracefully.

    Torch is imported only where the engine needs it (the torch backend, the guidance sidecar,
    an export on a cache miss, the first Recognize/Retrieve) and then gets ``cfg.threads`` (or
    :func:`torch_threads`) intra-op threads. ``cfg.guidance=False`` on ONNX Runtime with exported
    graphs serves generation without torch."""
    from coamd.server.engine import load_server_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    t = time.monotonic()
    engine = load_server_engine(cfg.backend, cfg.checkpoint, fault_injection=cfg.fault_injection,
                                threads=cfg.threads or None, guidance=cfg.guidance,
                                torch_threads=cfg.threads or torch_threads())
    torch = sys.modules.get("torch")
    print(f"coamd serve: engine {engine.backend_name} ready in {time.monotonic() - t:.1f} s "
          f"({'guidance sidecar' if cfg.guidance else 'no guidance'}; "
          f"{f'torch threads {torch.get_num_threads()}' if torch is not None else 'torch not loaded'})",
          flush=True)
    asyncio.run(_serve(cfg, engine))
