"""One model replica of the Ray Serve deployment: an engine, its continuous-batching ``Scheduler``
and the ordinary ``MotionService`` handlers, reached through Serve deployment handles instead of
a gRPC port.

The replica runs exactly the code of ``coamd serve``: :class:`~coamd.server.service.MotionService`
validates the request, submits it to the :class:`~coamd.server.scheduler.Scheduler` worker thread
and turns its chunks into ``GenerateResponse`` messages. Only the gRPC servicer context is
replaced: :class:`ReplicaCallContext` carries the caller's deadline and turns ``context.abort``
into :class:`Aborted`, which the replica sends back to the front door as a status item, so a
status code crosses the Ray boundary as data (``("status", "INVALID_ARGUMENT", "duration_s: ...", replica_id)``)
instead of as a pickled exception.

Items of :meth:`MotionReplica.generate`, each naming the replica (``replica_id``):

- ``("message", bytes, replica_id)``: serialized ``GenerateResponse`` messages -- several when
  more than one was ready at once (typically the last frames and the summary), concatenated, which
  protobuf parses as one message holding all their frames and the summary (fewer items through Ray:
  each costs CPU on both sides; no message ever waits for another);
- ``("status", code_name, details, replica_id)``: the stream ends with that gRPC status instead.

:meth:`MotionReplica.session` runs one bidirectional ``Session`` for its whole life on the replica
(sessions stay on one replica by construction: one deployment-handle call per session). Serve
handles stream responses but not requests, so the client's later messages reach the replica
through the front door's session mailbox (a small Ray actor), from which the replica pulls them.

Shutdown (Serve calls ``__del__`` after its own graceful wait, see ``graceful_shutdown_timeout_s``):
requests still running get ``grace_s`` seconds, then the scheduler ends the rest with UNAVAILABLE.
The replica's ``check_health`` fails once the scheduler's worker thread has stopped, so Serve
replaces a replica whose worker died.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from dataclasses import dataclass, fields

import grpc

from coamd.api import pb

log = logging.getLogger("coamd.serving")

REPLICA, MESSAGE, STATUS = "replica", "message", "status"


@dataclass
class ReplicaOptions:
    """What one replica loads and how its scheduler admits work (the ``replica`` section of the
    application arguments; same meaning as the ``coamd serve`` options of the same name)."""

    backend: str = "onnxruntime"
    checkpoint: str | None = None
    guidance: bool = True           # load the PyTorch guidance sidecar
    max_batch: int = 8
    max_queue: int = 32
    max_wait_s: float | None = 2.0
    max_request_evals: int | None = None
    threads: int = 0                # 0: the defaults of `coamd serve`
    grace_s: float = 30.0           # requests still running at shutdown get this long
    fault_injection: bool = False   # tests only: texts with [fail-model] make that request's step raise
    step_delay_s: float = 0.0       # tests only: every scheduler step sleeps this long first (holds streams open)

    @classmethod
    def from_dict(cls, values: dict | None) -> "ReplicaOptions":
        """Options from a plain dict (a Serve config's ``args``). Raises ValueError naming
        unknown keys."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown replica option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        opts = cls(**values)
        if opts.max_batch < 1 or opts.max_queue < 0:
            raise ValueError(f"max_batch must be >= 1 and max_queue >= 0, got {opts.max_batch}, {opts.max_queue}")
        if opts.step_delay_s < 0:
            raise ValueError(f"step_delay_s must be >= 0, got {opts.step_delay_s}")
        return opts


class DelayedSteps:
    """A scheduler ``StepModel`` whose every ``step`` first sleeps ``delay_s`` seconds (tests: a
    slower model, so streams stay open while a replica is killed or scaled away)."""

    def __init__(self, model, delay_s: float):
        self._model, self._delay_s = model, delay_s

    def __getattr__(self, name):
        return getattr(self._model, name)

    def step(self, states: list) -> list:
        time.sleep(self._delay_s)
        return self._model.step(states)


class Aborted(grpc.aio.AbortError):
    """``context.abort(code, details)`` of a handler running on a replica (a ``grpc.aio.AbortError``,
    so handlers that let gRPC's own abort pass through treat it the same way)."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code, self.details = code, details


class ReplicaCallContext:
    """Stands in for ``grpc.aio.ServicerContext`` in ``MotionService`` handlers run on a replica:
    the deadline the front door passed (seconds from the call, None for none), ``abort`` raising
    :class:`Aborted`, ``write`` handing a response to ``writer`` (bidirectional streams). Metadata
    setters are kept (nothing reads them back)."""

    def __init__(self, timeout_s: float | None = None, writer=None):
        self._deadline = None if timeout_s is None else time.monotonic() + max(0.0, float(timeout_s))
        self._writer = writer
        self._done = False
        self.code: grpc.StatusCode | None = None
        self.details_text = ""
        self.trailing: tuple = ()

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata=()):
        self._done = True
        raise Aborted(code, details)

    async def write(self, message) -> None:
        if self._writer is None:
            raise RuntimeError("write() on a call without a response stream")
        await self._writer(message)

    def invocation_metadata(self):
        return ()

    def peer(self) -> str:
        return "ray-serve-front-door"

    def set_code(self, code) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details_text = details

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing = tuple(metadata)

    async def send_initial_metadata(self, metadata) -> None:
        return None

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return self._done


class MailboxRequests:
    """The client's messages of one session as an async iterator on the replica: pulled from the
    front door's session mailbox (:class:`coamd.serving.front_door.SessionMailbox`); items are
    parsed ``request_type`` messages, or ``MalformedRequest`` for bytes that did not parse."""

    def __init__(self, mailbox, session_id: str, request_type, poll_s: float = 30.0):
        self.mailbox, self.session_id, self.request_type, self.poll_s = mailbox, session_id, request_type, poll_s

    def __aiter__(self):
        return self

    async def __anext__(self):
        from coamd.server.messages import MalformedRequest

        while True:
            item = await self.mailbox.get.remote(self.session_id, self.poll_s)
            if item[0] == MESSAGE:
                return self.request_type.FromString(item[1])
            if item[0] == "malformed":
                return MalformedRequest(item[1], item[2])
            if item[0] == "end":
                raise StopAsyncIteration
            # "idle": nothing arrived within poll_s; ask again


def register_pickle_alias() -> None:
    """Make the generated message classes picklable by the module name they carry
    (``coamd.v1.motion_pb2``; they are imported as ``coamd._proto.coamd.v1.motion_pb2``). Needed only
    where Ray pickles parsed messages: Ray Serve's own gRPC proxy hands them to the replica."""
    import sys
    import types

    name = pb.DESCRIPTOR.package + "." + pb.DESCRIPTOR.name.rsplit("/", 1)[-1].replace(".proto", "_pb2")
    if name not in sys.modules:
        parent = name.rsplit(".", 1)[0]
        sys.modules.setdefault(parent, types.ModuleType(parent))
        sys.modules[name] = pb


def _replica_id() -> str:
    """Serve's unique id of the replica this code runs in ("local" outside Serve)."""
    try:
        from ray import serve

        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # noqa: BLE001 - not inside a Serve replica (unit use)
        return "local"


class MotionReplica:
    """The model replica (deployed by :mod:`coamd.serving.app` as the ``MotionReplica`` deployment).

    ``options``: a dict of :class:`ReplicaOptions` fields. Loading the engine can raise
    FileNotFoundError (checkpoint) or ValueError (backend); Serve then reports the deployment as
    unhealthy with that message.
    """

    def __init__(self, options: dict | None = None):
        from coamd.server.app import torch_threads
        from coamd.server.engine import load_server_engine
        from coamd.server.scheduler import Scheduler
        from coamd.server.service import MotionService
        from coamd.server.validation import Defaults

        self.options = opts = ReplicaOptions.from_dict(options)
        register_pickle_alias()
        t0 = time.monotonic()
        self.engine = load_server_engine(opts.backend, opts.checkpoint, fault_injection=opts.fault_injection,
                                         threads=opts.threads or None, guidance=opts.guidance,
                                         torch_threads=opts.threads or torch_threads())
        model = self.engine.step_model
        if opts.step_delay_s:
            model = DelayedSteps(model, opts.step_delay_s)
        self.scheduler = Scheduler(model, max_batch=opts.max_batch, max_queue=opts.max_queue,
                                   max_wait_s=opts.max_wait_s)
        defaults = self.engine.defaults() if hasattr(self.engine, "defaults") else Defaults()
        if opts.max_request_evals is not None:
            defaults = dataclasses.replace(defaults, max_request_evals=opts.max_request_evals)
        self.service = MotionService(self.engine, self.scheduler, defaults)
        self.replica_id = _replica_id()
        self.pid = os.getpid()
        self.load_s = time.monotonic() - t0
        log.info("replica %s (pid %d): engine %s ready in %.1f s", self.replica_id, self.pid,
                 self.engine.backend_name, self.load_s)

    # ------------------------------------------------------------------ front door calls
    def _message(self, resp) -> bytes:
        if resp.HasField("summary"):
            resp.summary.replica = self.replica_id
        return resp.SerializeToString()

    @staticmethod
    async def _ready_together(agen):
        """The responses of ``agen`` in lists: each list holds one response and whatever followed
        it without waiting (a message is never held back for a later one)."""
        it = agen.__aiter__()
        nxt = asyncio.ensure_future(it.__anext__())
        try:
            while True:
                try:
                    batch = [await nxt]
                except StopAsyncIteration:
                    return
                while True:
                    nxt = asyncio.ensure_future(it.__anext__())
                    await asyncio.sleep(0)          # one loop turn: enough for a message already queued
                    if not nxt.done() or nxt.cancelled() or nxt.exception() is not None:
                        break
                    batch.append(nxt.result())
                yield batch
        finally:
            if not nxt.done():
                nxt.cancel()

    async def generate(self, payload: bytes, timeout_s: float | None = None):
        """Stream one ``GenerateRequest`` (serialized): yields the items described in the module
        docstring. Cancelling the stream (client gone) cancels the request's job."""
        rid = self.replica_id
        ctx = ReplicaCallContext(timeout_s)
        try:
            request = pb.GenerateRequest.FromString(payload)
            async for batch in self._ready_together(self.service.Generate(request, ctx)):
                yield (MESSAGE, b"".join(self._message(r) for r in batch), rid)
        except Aborted as exc:
            yield (STATUS, exc.code.name, exc.details, rid)

    async def call(self, method: str, payload: bytes, timeout_s: float | None = None) -> tuple:
        """One unary method of the service (``Recognize``, ``Retrieve``, ``GetSkeleton``, ...) on a
        serialized request. Returns ``("message", bytes, replica_id)`` or ``("status", code_name,
        details, replica_id)``."""
        m = pb.DESCRIPTOR.services_by_name["MotionService"].methods_by_name.get(method)
        if m is None or m.client_streaming or m.server_streaming or not hasattr(self.service, method):
            return (STATUS, "UNIMPLEMENTED", f"{method} is not a unary method of this server", self.replica_id)
        ctx = ReplicaCallContext(timeout_s)
        try:
            request = getattr(pb, m.input_type.name).FromString(payload)
            resp = await getattr(self.service, method)(request, ctx)
            return (MESSAGE, resp.SerializeToString(), self.replica_id)
        except Aborted as exc:
            return (STATUS, exc.code.name, exc.details, self.replica_id)

    async def session(self, session_id: str, mailbox):
        """One bidirectional ``Session`` for its whole life on this replica: the client's messages
        come from ``mailbox`` (the front door's :class:`~coamd.serving.front_door.SessionMailbox`,
        key ``session_id``), the responses go back as the items of :meth:`generate`."""
        rid = self.replica_id
        yield (REPLICA, rid)
        if not hasattr(self.service, "Session"):
            yield (STATUS, "UNIMPLEMENTED", "this server has no sessions", rid)
            return
        m = pb.DESCRIPTOR.services_by_name["MotionService"].methods_by_name["Session"]
        out: asyncio.Queue = asyncio.Queue()

        async def writer(message):
            out.put_nowait((MESSAGE, message.SerializeToString(), rid))

        ctx = ReplicaCallContext(None, writer=writer)
        requests = MailboxRequests(mailbox, session_id, getattr(pb, m.input_type.name))
        task = asyncio.ensure_future(self.service.Session(requests, ctx))
        task.add_done_callback(lambda _: out.put_nowait(None))
        try:
            while True:
                item = await out.get()
                if item is None:
                    break
                yield item
            while not out.empty():
                item = out.get_nowait()
                if item is not None:
                    yield item
            exc = None if task.cancelled() else task.exception()
            if isinstance(exc, Aborted):
                yield (STATUS, exc.code.name, exc.details, rid)
            elif exc is not None:
                log.error("session failed: %s: %s", type(exc).__name__, exc)
                yield (STATUS, "INTERNAL", f"session error: {type(exc).__name__}: {exc}", rid)
        finally:
            task.cancel()

    def info(self) -> dict:
        """Replica id, process id, backend, load (active, waiting) and engine load time."""
        active, waiting = self.scheduler.load
        return {"replica_id": self.replica_id, "pid": self.pid, "backend": self.engine.backend_name,
                "active": active, "waiting": waiting, "load_s": self.load_s, "healthy": self.scheduler.healthy}

    # ------------------------------------------------------------------ Ray Serve's gRPC proxy
    async def Generate(self, request, grpc_context=None):  # noqa: N802 - the proto's method name
        """``Generate`` for Ray Serve's own gRPC proxy (``proxy`` front door in
        ``benchmarks/load.py --ray``): parsed request in, ``GenerateResponse`` messages out; a
        status is set on Serve's ``grpc_context``."""
        ctx = ReplicaCallContext(None)
        try:
            async for batch in self._ready_together(self.service.Generate(request, ctx)):
                resp = batch[0]
                for more in batch[1:]:
                    resp.MergeFrom(more)        # the same merging as the items of `generate`
                if resp.HasField("summary"):
                    resp.summary.replica = self.replica_id
                yield resp
        except Aborted as exc:
            if grpc_context is not None:
                grpc_context.set_code(exc.code)
                grpc_context.set_details(exc.details)

    # ------------------------------------------------------------------ Serve hooks
    def check_health(self) -> None:
        """Serve's health probe: raises once the scheduler's worker thread has stopped."""
        if not self.scheduler.healthy:
            raise RuntimeError("generation worker stopped")

    async def __del__(self):
        """Graceful drain when Serve stops this replica (scale-down, redeploy, shutdown): Serve has
        already stopped routing to it and waited for its ongoing requests; whatever still runs gets
        ``grace_s`` more seconds, then ends with UNAVAILABLE."""
        scheduler = getattr(self, "scheduler", None)
        if scheduler is None:
            return
        deadline = time.monotonic() + self.options.grace_s
        active, waiting = scheduler.load
        log.info("replica %s draining (%d active, %d waiting)", self.replica_id, active, waiting)
        while scheduler.load != (0, 0) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        scheduler.close()
