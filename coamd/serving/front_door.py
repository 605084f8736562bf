"""The gRPC front door of the Ray Serve deployment: one ``coamd.v1.MotionService`` endpoint in front
of the model replicas.

It is the same contract as ``coamd serve`` (the handlers are registered with
:func:`coamd.server.service.add_to_server`, so malformed requests are answered the same way),
with grpc.health.v1, server reflection, TLS and the bearer token of
:class:`coamd.server.auth.BearerTokenInterceptor`. Each call goes to a replica through a Serve
deployment handle (``handle.options(stream=True)`` for ``Generate``), so Serve's router picks the
replica (the less loaded of two random ones) and Serve's autoscaler sees every request.

Failure handling:

- a replica that dies (or whose node dies) before any frame of a stream was forwarded: the call
  is retried on another replica (``retries`` times), invisibly to the client;
- a replica that dies mid-stream: the stream ends with UNAVAILABLE naming the replica and the
  frames already sent. Frames are forwarded as they arrive and their indices are checked here
  (0, 1, 2, ... each once), so a client never sees a gap or a repeated frame: it sees a clean
  prefix and a status, and may retry the request (same seed: same motion);
- every other status comes from the replica's ``MotionService`` unchanged.

Health: ``""`` and ``coamd.v1.MotionService`` are SERVING while at least one replica is running;
each replica has its own entry ``coamd.v1.MotionService/replica/<replica id>`` (the id the summary's
``replica`` field and the ``coamd-replica`` metadata carry), SERVING while Serve reports it RUNNING
and NOT_SERVING from the moment a call saw it die. The table is refreshed from the Serve
controller every ``health_interval_s``.

The replica of a ``Generate`` stream is in its trailing metadata ``coamd-replica`` (with the final
status, also when the replica failed) and in the summary; a ``Session`` sends it as initial
metadata (on ``Generate`` it would be a separate write in front of the first frame, adding to the
time to first frame).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from coamd.api import MAX_MESSAGE_BYTES, SERVICE_NAME, pb, pb_grpc
from coamd.serving.replica import MESSAGE, REPLICA, STATUS

log = logging.getLogger("coamd.serving")

REPLICA_METADATA_KEY = "coamd-replica"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def replica_health_name(replica_id: str) -> str:
    """The grpc.health.v1 service name of one replica."""
    return f"{SERVICE_NAME}/replica/{replica_id}"


@dataclass
class FrontDoorOptions:
    """The ``front_door`` section of the application arguments.

    ``port`` 0 picks a free port (ask the FrontDoor deployment's ``address`` method). The token
    comes from ``token``, the file ``token_file`` or the environment variable ``token_env`` (at
    most one). ``retries``: how many other replicas a call may try when its replica died before
    anything was sent to the client.
    """

    host: str = "127.0.0.1"
    port: int = 50051
    token: str | None = None
    token_file: str | None = None
    token_env: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    retries: int = 2
    health_interval_s: float = 2.0
    grace_s: float = 30.0
    app_name: str = "coamd"
    replica_deployment: str = "MotionReplica"

    @classmethod
    def from_dict(cls, values: dict | None) -> "FrontDoorOptions":
        """Options from a plain dict. Raises ValueError naming unknown keys or a bad combination."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown front_door option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        opts = cls(**values)
        if sum(x is not None for x in (opts.token, opts.token_file, opts.token_env)) > 1:
            raise ValueError("give one of token, token_file and token_env")
        if bool(opts.tls_cert) != bool(opts.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        if not 0 <= int(opts.port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {opts.port}")
        return opts

    def resolve_token(self) -> str | None:
        """The bearer token, read from wherever it comes from. Raises ValueError if empty/missing."""
        if self.token is not None:
            token = self.token
        elif self.token_file:
            p = Path(self.token_file)
            if not p.is_file():
                raise ValueError(f"token_file {p} does not exist")
            token = p.read_text(encoding="utf-8")
        elif self.token_env:
            if self.token_env not in os.environ:
                raise ValueError(f"token_env: environment variable {self.token_env} is not set")
            token = os.environ[self.token_env]
        else:
            return None
        token = token.strip()
        if not token:
            raise ValueError("the bearer token is empty")
        return token


def _ray_failure_types() -> tuple:
    """Exceptions meaning "the replica (or its node) is gone": the call may go to another one."""
    import ray.exceptions as rex
    from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

    return (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError,
            rex.LocalRayletDiedError, ReplicaUnavailableError, DeploymentUnavailableError)


def _status(code_name: str) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, code_name, grpc.StatusCode.UNKNOWN)


class ReplicaHealth:
    """Per-replica health entries on a grpc.health.v1 servicer, from the Serve controller's view
    (refreshed every ``interval_s``) and from calls that saw a replica die."""

    def __init__(self, servicer, app_name: str, deployment: str, interval_s: float = 1.0):
        self.servicer, self.app_name, self.deployment, self.interval_s = servicer, app_name, deployment, interval_s
        self.states: dict[str, str] = {}          # replica id -> Serve state ("RUNNING", ...)
        self.actors: dict[str, str] = {}          # Ray actor id -> replica id
        self.failed: set[str] = set()
        self._reported: dict[str, int] = {}
        self._task: asyncio.Task | None = None
        self._draining = False

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        self._draining = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    def replica_of(self, exc: BaseException) -> str | None:
        """The replica a Ray failure names (by its actor id), if the table knows it."""
        actor_id = getattr(exc, "actor_id", None)
        return self.actors.get(actor_id) if actor_id else None

    def running(self) -> list[str]:
        return sorted(r for r, s in self.states.items() if s == "RUNNING" and r not in self.failed)

    async def mark_failed(self, replica_id: str | None) -> None:
        if replica_id and replica_id not in self.failed:
            self.failed.add(replica_id)
            await self._publish()

    async def refresh(self) -> None:
        from coamd.serving.status import replica_table

        rows = await asyncio.to_thread(replica_table, self.app_name, self.deployment)
        self.states = {r["replica_id"]: r["state"] for r in rows}
        self.actors.update({r["actor_id"]: r["replica_id"] for r in rows if r.get("actor_id")})
        await self._publish()

    async def _publish(self) -> None:
        if self._draining:
            return
        want = {rid: (SERVING if state == "RUNNING" and rid not in self.failed else NOT_SERVING)
                for rid, state in self.states.items()}
        for rid in self._reported:
            if rid not in want:   # gone from the deployment
                want[rid] = NOT_SERVING if rid in self.failed else SERVICE_UNKNOWN
        for rid, status in want.items():
            if self._reported.get(rid) != status:
                await self.servicer.set(replica_health_name(rid), status)
                self._reported[rid] = status
        overall = SERVING if self.running() else NOT_SERVING
        for name in ("", SERVICE_NAME):
            if self._reported.get(name) != overall:
                await self.servicer.set(name, overall)
                self._reported[name] = overall

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the controller may be restarting; keep the last view
                log.warning("replica health refresh failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.interval_s)


_MAILBOX_CLASS = None


def session_mailbox_class():
    """The Ray actor class that carries session messages from the front door to the replica
    running the session (Serve handles stream responses, not requests): one per front door, created
    on the first session, owned by it (it ends with the front door). Per session a queue of
    ``("message", bytes)``, ``("malformed", type, reason)`` and finally ``("end",)``; ``get``
    answers ``("idle",)`` after ``timeout_s`` without a message."""
    global _MAILBOX_CLASS
    if _MAILBOX_CLASS is None:
        import ray

        @ray.remote(num_cpus=0, max_concurrency=10000)
        class SessionMailbox:
            def __init__(self):
                self.boxes: dict[str, asyncio.Queue] = {}

            def _box(self, sid: str) -> asyncio.Queue:
                if sid not in self.boxes:
                    self.boxes[sid] = asyncio.Queue()
                return self.boxes[sid]

            async def put(self, sid: str, item: tuple) -> None:
                self._box(sid).put_nowait(item)

            async def get(self, sid: str, timeout_s: float) -> tuple:
                try:
                    return await asyncio.wait_for(self._box(sid).get(), timeout_s)
                except asyncio.TimeoutError:
                    return ("idle",)

            async def drop(self, sid: str) -> None:
                self.boxes.pop(sid, None)

            async def open_sessions(self) -> int:
                return len(self.boxes)

        _MAILBOX_CLASS = SessionMailbox
    return _MAILBOX_CLASS


class RayMotionService(pb_grpc.MotionServiceServicer):
    """``coamd.v1.MotionService`` handlers that forward every call to a replica through ``handle``
    (a Serve ``DeploymentHandle`` of :class:`coamd.serving.replica.MotionReplica`): ``Generate``
    and ``Session`` as streams, every unary method of the service through the replica's ``call``."""

    def __init__(self, handle, health_table: ReplicaHealth | None = None, retries: int = 2):
        self.handle = handle
        self.stream_handle = handle.options(stream=True)
        self.health = health_table
        self.retries = max(0, int(retries))
        self.failures = _ray_failure_types()
        self.interrupted = 0   # streams ended with UNAVAILABLE after frames went out
        self.retried = 0       # calls moved to another replica before anything was sent
        self.streams: dict[str, int] = {}   # replica id -> streams (Generate and Session) in flight
        self._mailbox = None
        for m in pb.DESCRIPTOR.services_by_name["MotionService"].methods:
            if not (m.client_streaming or m.server_streaming):   # any unary method, present or future
                setattr(self, m.name, self._unary_handler(m.name))

    def _unary_handler(self, method: str):
        async def handler(request, context):
            return await self._unary(method, request, context)
        handler.__name__ = method
        return handler

    async def _lost(self, replica_id: str | None, exc: BaseException) -> None:
        log.warning("replica %s is gone: %s", replica_id or "?", type(exc).__name__)
        if self.health is not None:
            await self.health.mark_failed(replica_id)

    async def _backpressure(self, context, exc) -> None:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"all replicas are busy: {exc}; retry later")

    def _streaming(self, replica_id: str | None, delta: int) -> None:
        if replica_id:
            n = self.streams.get(replica_id, 0) + delta
            if n > 0:
                self.streams[replica_id] = n
            else:
                self.streams.pop(replica_id, None)

    async def Generate(self, request, context):  # noqa: N802
        from ray.serve.exceptions import BackPressureError

        payload = request.SerializeToString()
        next_index = 0
        attempt = 0
        while True:
            remaining = context.time_remaining()
            stream = self.stream_handle.generate.remote(payload, remaining)
            replica_id = None
            finished = False
            try:
                async for item in stream:
                    kind = item[0]
                    if replica_id is None:
                        replica_id = item[-1]
                        self._streaming(replica_id, +1)
                        context.set_trailing_metadata(((REPLICA_METADATA_KEY, replica_id),))
                    if kind == MESSAGE:
                        resp = pb.GenerateResponse.FromString(item[1])
                        for fr in resp.frames:
                            if fr.index != next_index:
                                log.error("replica %s sent frame %d, expected %d", replica_id, fr.index, next_index)
                                await context.abort(grpc.StatusCode.INTERNAL,
                                                    f"replica {replica_id} broke the frame order")
                            next_index += 1
                        yield resp
                    elif kind == STATUS:
                        finished = True
                        await context.abort(_status(item[1]), item[2])
                finished = True
                return
            except self.failures as exc:
                finished = True
                replica_id = replica_id or (self.health.replica_of(exc) if self.health else None)
                await self._lost(replica_id, exc)
                if next_index == 0 and attempt < self.retries:
                    attempt += 1
                    self.retried += 1
                    continue
                self.interrupted += 1
                where = f"after {next_index} frames" if next_index else "before the first frame"
                await context.abort(grpc.StatusCode.UNAVAILABLE,
                                    f"replica {replica_id or '?'} failed {where} ({type(exc).__name__}); "
                                    "the stream ends here, retry the request")
            except BackPressureError as exc:
                finished = True
                await self._backpressure(context, exc)
            finally:
                self._streaming(replica_id, -1)
                if not finished:   # the client went away or the deadline hit: stop the replica's work
                    stream.cancel()

    async def _unary(self, method: str, request, context):
        from ray.serve.exceptions import BackPressureError

        payload = request.SerializeToString()
        resp_cls = getattr(pb, pb.DESCRIPTOR.services_by_name["MotionService"].methods_by_name[method].output_type.name)
        for attempt in range(self.retries + 1):
            try:
                out = await self.handle.call.remote(method, payload, context.time_remaining())
            except self.failures as exc:
                await self._lost(None, exc)
                if attempt < self.retries:
                    self.retried += 1
                    continue
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"no replica answered {method} ({type(exc).__name__})")
            except BackPressureError as exc:
                await self._backpressure(context, exc)
            if out[0] == STATUS:
                await context.abort(_status(out[1]), out[2])
            return resp_cls.FromString(out[1])

    async def Session(self, request_iterator, context):  # noqa: N802
        """A bidirectional session on one replica for its whole life. The client's messages go to
        the session mailbox as they arrive; the replica's responses are written back with their
        frame indices checked. A replica lost mid-session ends it with UNAVAILABLE (the session's
        state lived there; the client opens a new one)."""
        import uuid

        from ray.serve.exceptions import BackPressureError

        from coamd.server.messages import MalformedRequest

        if self._mailbox is None:
            self._mailbox = session_mailbox_class().remote()
        mailbox = self._mailbox
        sid = uuid.uuid4().hex
        resp_cls = getattr(pb, pb.DESCRIPTOR.services_by_name["MotionService"].methods_by_name["Session"]
                           .output_type.name)

        async def pump():
            try:
                async for msg in request_iterator:
                    if isinstance(msg, MalformedRequest):
                        await mailbox.put.remote(sid, ("malformed", msg.type_name, msg.reason))
                    else:
                        await mailbox.put.remote(sid, (MESSAGE, msg.SerializeToString()))
            except Exception as exc:  # noqa: BLE001 - the client went away: the session closes
                log.debug("session %s: client stream ended: %s", sid, exc)
            await mailbox.put.remote(sid, ("end",))

        pumping = asyncio.ensure_future(pump())
        stream = self.stream_handle.session.remote(sid, mailbox)
        replica_id, next_index, finished = None, 0, False
        try:
            async for item in stream:
                kind = item[0]
                if kind == REPLICA:
                    replica_id = item[1]
                    self._streaming(replica_id, +1)
                    await context.send_initial_metadata(((REPLICA_METADATA_KEY, replica_id),))
                elif kind == MESSAGE:
                    resp = resp_cls.FromString(item[1])
                    for fr in resp.frames:
                        if fr.index != next_index:
                            log.error("replica %s sent session frame %d, expected %d", replica_id, fr.index, next_index)
                            finished = True
                            await context.abort(grpc.StatusCode.INTERNAL, f"replica {replica_id} broke the frame order")
                        next_index += 1
                    await context.write(resp)
                elif kind == STATUS:
                    finished = True
                    await context.abort(_status(item[1]), item[2])
            finished = True
        except self.failures as exc:
            finished = True
            await self._lost(replica_id, exc)
            self.interrupted += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"replica {replica_id or '?'} failed after {next_index} session frames "
                                f"({type(exc).__name__}); open a new session")
        except BackPressureError as exc:
            finished = True
            await self._backpressure(context, exc)
        finally:
            self._streaming(replica_id, -1)
            pumping.cancel()
            if not finished:
                stream.cancel()
            try:
                mailbox.drop.remote(sid)
            except Exception:  # noqa: BLE001 - the mailbox may be gone with its node
                pass


def _read(path: str, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    return p.read_bytes()


class FrontDoorServer:
    """A started front door: ``port``, ``health`` (the servicer), ``table`` (:class:`ReplicaHealth`),
    ``service`` (:class:`RayMotionService`). ``drain(grace_s)`` stops it gracefully."""

    def __init__(self, server, port: int, health_servicer, table: ReplicaHealth, service: RayMotionService):
        self.server, self.port, self.health, self.table, self.service = server, port, health_servicer, table, service
        self.stopped = False

    async def drain(self, grace_s: float) -> None:
        """Health NOT_SERVING and new calls refused at once; calls in flight get ``grace_s``."""
        if self.stopped:
            return
        self.stopped = True
        await self.table.stop()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


async def start_front_door(handle, options: FrontDoorOptions) -> FrontDoorServer:
    """Start the gRPC front door on the running event loop around a ``MotionReplica`` handle.
    Raises ValueError (options), FileNotFoundError (TLS files) or OSError (cannot bind)."""
    from coamd.server.auth import BearerTokenInterceptor
    from coamd.server.service import add_to_server

    token = options.resolve_token()
    interceptors = [BearerTokenInterceptor(token)] if token else []
    server = grpc.aio.server(interceptors=interceptors, options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0)])
    health_servicer = health.aio.HealthServicer()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, NOT_SERVING)   # until a running replica is seen
    table = ReplicaHealth(health_servicer, options.app_name, options.replica_deployment, options.health_interval_s)
    service = RayMotionService(handle, table, options.retries)
    add_to_server(service, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    address = f"{options.host}:{options.port}"
    if options.tls_cert:
        creds = grpc.ssl_server_credentials([(_read(options.tls_key, "TLS key"),
                                              _read(options.tls_cert, "TLS certificate"))])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind {address}")
    await server.start()
    table.start()
    return FrontDoorServer(server, port, health_servicer, table, service)


class FrontDoor:
    """Body of the ``FrontDoor`` Serve deployment (see :mod:`coamd.serving.app`): starts the gRPC
    front door in the replica's event loop and keeps it until Serve stops the replica.

    ``replicas``: the ``MotionReplica`` deployment handle (bound by the application builder).
    ``options``: a dict of :class:`FrontDoorOptions` fields.
    """

    async def __init__(self, replicas, options: dict | None = None):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.options = FrontDoorOptions.from_dict(options)
        self.door = await start_front_door(replicas, self.options)
        host = self.options.host
        if host in ("0.0.0.0", "::", "[::]", ""):
            import ray

            host = ray.util.get_node_ip_address()
        self._address = f"{host}:{self.door.port}"
        log.info("front door listening on %s (%s, %s)", self._address, "TLS" if self.options.tls_cert else "plaintext",
                 "bearer token" if self.options.resolve_token() else "no auth")

    def address(self) -> str:
        """``HOST:PORT`` clients connect to."""
        return self._address

    def replicas(self) -> dict:
        """Replica ids Serve reports (with their state), those seen failing, streams in flight per
        replica, and call counters."""
        t = self.door.table
        svc = self.door.service
        return {"states": dict(t.states), "failed": sorted(t.failed), "running": t.running(),
                "streams": dict(svc.streams), "interrupted": svc.interrupted, "retried": svc.retried}

    async def refresh_health(self) -> dict:
        """Refresh the per-replica health table now; returns :meth:`replicas`."""
        await self.door.table.refresh()
        return self.replicas()

    def check_health(self) -> None:
        if self.door.stopped:
            raise RuntimeError("front door stopped")

    async def __del__(self):
        door = getattr(self, "door", None)
        if door is not None:
            t = time.monotonic()
            await door.drain(self.options.grace_s)
            log.info("front door stopped after %.1f s", time.monotonic() - t)
