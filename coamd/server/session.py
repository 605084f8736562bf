"""The ``Session`` RPC: an endless motion whose instruction changes mid-stream.

One :class:`SessionRunner` per open session, on the event loop. It owns a
:class:`coamd.sampling.session.MotionSession` (prefix-conditioned windows, the session's own
cleanup and skeleton projection) and runs its windows as ordinary jobs of the server's
continuous-batching :class:`~coamd.server.scheduler.Scheduler`, so sessions and ``Generate``
requests share the worker and its batches.

Pacing: the client is assumed to play frames at 20 fps from the moment the first one is sent.
The runner keeps the stream between ``lookahead - commit`` and about ``lookahead`` frames ahead of
that playhead: it starts the next window once the buffer has drained to
``max(lookahead - commit, lookahead / 2)`` frames and otherwise sleeps, so compute and memory per session
stay constant however long it runs. A client that disconnects cancels the handler at once and
frees everything. A client that stays connected but stops reading fills gRPC's flow-control
window (transport buffers, at most a few MB: minutes of frames); once a write has then waited
``idle_s`` seconds the session ends with DEADLINE_EXCEEDED and frees everything.

Instructions: the reader task puts every message into an inbox. A new instruction cancels the
window in flight (frames already sent stay sent: indices never repeat) and the next window starts
at once from the last frames sent, with the new text; the first frame of that window carries an
``INSTRUCTION`` event with its index, the server-side latency and how the text was understood.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import grpc
import numpy as np

from coamd.api import pb
from coamd.sampling.sampler import GenerationRequest
from coamd.sampling.session import MotionSession, SessionConfig, Window
from coamd.server.scheduler import Job, QueueFull
from coamd.server.validation import SessionParams, ValidationError, check_text, validate_session_open
from coamd.skeleton import FPS

log = logging.getLogger("coamd.server")


class SessionError(Exception):
    """Ends a session with a gRPC status (``code``, ``details``)."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


@dataclass(eq=False)
class WindowParams:
    """What the scheduler starts for one session window (instead of ``GenerateParams``)."""

    window: Window
    text: str
    text_conditioning: str
    iterations: int

    def prepared_request(self) -> GenerationRequest:
        import dataclasses

        return dataclasses.replace(self.window.request)


@dataclass
class Instruction:
    index: int
    text: str
    received: float                       # time.monotonic()
    announced: bool = False


@dataclass
class SessionStats:
    windows: int = 0
    underruns: int = 0                     # messages whose first frame was due before it was sent
    refused_windows: int = 0               # QueueFull answers (retried)
    latencies_ms: list = field(default_factory=list)


def base_request(p: SessionParams) -> GenerationRequest:
    return GenerationRequest(text=p.text, seed=p.seed, cfg_scale=p.cfg_scale, iterations=p.iterations,
                             ode_steps=p.ode_steps, solver=p.solver, guidance=p.guidance,
                             guidance_scale=p.guidance_scale, temperature=p.temperature, cleanup=p.cleanup,
                             skeleton="fk")


class SessionRunner:
    """Runs one session for ``MotionService.Session``; see the module docstring.

    ``service``: the MotionService (scheduler, engine, defaults); ``write``: coroutine sending one
    ``SessionResponse``; ``config``: window sizes; ``idle_s``: longest a write may wait on a client
    that does not read.
    """

    def __init__(self, service, params: SessionParams, write, config: SessionConfig | None = None,
                 idle_s: float = 60.0):
        self.service = service
        self.params = params
        self.write = write
        self.config = config or SessionConfig()
        self.idle_s = idle_s
        self.session = MotionSession(base_request(params), self.config)
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.instructions = 0
        self.current = Instruction(0, params.text, time.monotonic())
        self.t_play0: float | None = None
        self.stats = SessionStats()
        self.lookahead = max(self.config.commit, int(round(params.lookahead_s * FPS)))
        # refill when the buffer has drained to this many frames (at least half the lookahead, so a
        # small lookahead still leaves time to generate the next window)
        self.refill_at = max(self.lookahead - self.config.commit, self.lookahead // 2)
        from coamd.server.messages import RootMotion

        self.root = RootMotion(in_place=params.root_motion == "in_place")

    # ------------------------------------------------------------------ inbox
    def receive(self, request) -> None:
        """Called by the reader for every message after ``open`` (may raise SessionError)."""
        kind = request.WhichOneof("kind")
        if kind == "instruction":
            try:
                text = check_text(request.instruction.text, "instruction.text")
            except ValidationError as exc:
                raise SessionError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
            self.instructions += 1
            self.inbox.put_nowait(Instruction(self.instructions, text, time.monotonic()))
        elif kind == "close":
            self.inbox.put_nowait("close")
        elif kind == "open":
            raise SessionError(grpc.StatusCode.INVALID_ARGUMENT, "open: a session is opened once, by its first message")
        else:
            raise SessionError(grpc.StatusCode.INVALID_ARGUMENT, "kind: the message sets none of open, instruction, close")

    def _take_inbox(self) -> bool:
        """Apply waiting messages; True when a new instruction arrived (or close)."""
        changed = False
        while not self.inbox.empty():
            item = self.inbox.get_nowait()
            if item == "close":
                raise _Closed()
            self.current = item
            changed = True
        return changed

    # ------------------------------------------------------------------ pacing
    def played(self) -> float:
        if self.t_play0 is None:
            return 0.0
        return (time.monotonic() - self.t_play0) * FPS

    def buffered(self) -> float:
        return self.session.emitted - self.played()

    async def _send(self, frames=(), events=()) -> None:
        msg = pb.SessionResponse(frames=list(frames), events=list(events))
        try:
            await asyncio.wait_for(self.write(msg), self.idle_s)
        except asyncio.TimeoutError:
            raise SessionError(grpc.StatusCode.DEADLINE_EXCEEDED,
                               f"the client read no frames for {self.idle_s:g} s; session closed") from None

    def _event(self, kind, instruction: Instruction | None = None, first_frame: int = 0, served=None,
               latency_ms: float = 0.0):
        from coamd.server.messages import interpretation_message

        ev = pb.SessionEvent(kind=kind, first_frame=first_frame, latency_ms=latency_ms)
        if instruction is not None:
            ev.instruction, ev.text = instruction.index, instruction.text
        if served is not None:
            it = interpretation_message(getattr(served, "interpretation", None),
                                        getattr(served, "conditioned_text", ""))
            if it is not None:
                ev.interpretation.CopyFrom(it)
        return ev

    # ------------------------------------------------------------------ main loop
    async def run(self) -> SessionStats:
        """Stream the session until it is closed; raises SessionError for a status to send."""
        await self._send(events=[self._event(pb.SessionEvent.OPENED, self.current)])
        try:
            fresh = True
            while True:
                fresh = self._take_inbox() or fresh
                due = self.buffered() <= self.refill_at
                if fresh or due or self.session.emitted == 0:
                    fresh = await self._run_window()
                    continue
                wait = (self.buffered() - self.refill_at) / FPS
                try:
                    item = await asyncio.wait_for(self.inbox.get(), max(wait, 0.005))
                except asyncio.TimeoutError:
                    continue
                if item == "close":
                    raise _Closed()
                self.current, fresh = item, True
        except _Closed:
            pass
        await self._send(events=[self._event(pb.SessionEvent.CLOSED, self.current, self.session.emitted)])
        return self.stats

    async def _run_window(self) -> bool:
        """Run one window for the current instruction; returns True when a new instruction
        arrived meanwhile (the window was cut short)."""
        sched = self.service.scheduler
        window = self.session.window_request(self.current.text)
        params = WindowParams(window, self.current.text, self.params.text_conditioning,
                              iterations=min(self.params.iterations, window.request.tokens()))
        job = Job(params=params, loop=asyncio.get_running_loop())
        while True:
            try:
                sched.submit(job)
                break
            except QueueFull:   # the server is saturated: keep the session, retry shortly
                self.stats.refused_windows += 1
                await asyncio.sleep(0.02)
                if not self.inbox.empty():
                    return True
            except RuntimeError as exc:
                raise SessionError(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
        self.stats.windows += 1
        try:
            while True:
                item = await job.queue.get()
                if item[0] == "frames":
                    out = self.session.accept(window, int(item[1].start), item[1].joints)
                    if out is None:
                        continue
                    events = []
                    if not self.current.announced:
                        self.current.announced = True
                        lat = 1000.0 * (time.monotonic() - self.current.received)
                        if self.current.index > 0:
                            self.stats.latencies_ms.append(lat)
                        events.append(self._event(pb.SessionEvent.INSTRUCTION, self.current, out.start,
                                                  job.state, lat))
                    if self.t_play0 is None:
                        self.t_play0 = time.monotonic()
                    elif out.start < self.played():
                        self.stats.underruns += 1      # a client playing at 20 fps would be waiting for it
                    await self._send(self.service.session_frames(out, self.params, self.root), events)
                    if not self.inbox.empty():
                        return True
                    if window.complete:                # the rest of the window is horizon
                        return False
                elif item[0] == "done":
                    return False
                else:
                    raise SessionError(item[1], item[2])
        finally:
            job.cancel()



class _Closed(Exception):
    pass


async def serve_session(service, request_iterator, context, config: SessionConfig | None = None,
                        idle_s: float = 60.0):
    """The body of ``MotionService.Session``: validates the opening message, runs the session and
    ends the call with the right status. ``service`` provides ``scheduler``, ``defaults``,
    ``session_frames`` and the open-session count (``sessions_open`` / ``max_sessions``)."""
    from coamd.server.messages import MalformedRequest, _reject_malformed

    it = request_iterator.__aiter__()
    try:
        first = await it.__anext__()
    except StopAsyncIteration:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "open: the session's first message must open it")
    if isinstance(first, MalformedRequest):
        await _reject_malformed(first, context, "Session")
    if first.WhichOneof("kind") != "open":
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "open: the session's first message must open it")
    try:
        params = validate_session_open(first.open, service.defaults)
    except ValidationError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if service.sessions_open >= service.max_sessions:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"{service.sessions_open} sessions open (max_sessions={service.max_sessions}); retry later")
    service.sessions_open += 1
    runner = SessionRunner(service, params, context.write, config, idle_s)
    failure: list[SessionError] = []

    async def reader():
        try:
            async for msg in it:
                if isinstance(msg, MalformedRequest):
                    raise SessionError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"request is not a valid {msg.type_name} message: {msg.reason}")
                runner.receive(msg)
            runner.inbox.put_nowait("close")          # the client half-closed: end after this window
        except SessionError as exc:
            failure.append(exc)
            runner.inbox.put_nowait("close")
        except (asyncio.CancelledError, grpc.RpcError):
            raise
        except Exception as exc:  # noqa: BLE001 - the client went away mid-message
            log.debug("session reader ended: %s", exc)
            runner.inbox.put_nowait("close")

    task = asyncio.ensure_future(reader())
    try:
        stats = await runner.run()
        if failure:
            raise failure[0]
        log.info("session closed: %d frames, %d windows (%d refused and retried), %d underruns, "
                 "instruction latency p50 %s ms", runner.session.emitted, stats.windows, stats.refused_windows,
                 stats.underruns,
                 f"{np.median(stats.latencies_ms):.0f}" if stats.latencies_ms else "-")
    except SessionError as exc:
        if not (context.done() if hasattr(context, "done") else False):
            await context.abort(exc.code, exc.details)
    finally:
        task.cancel()
        service.sessions_open -= 1
