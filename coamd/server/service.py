"""The ``coamd.v1.MotionService`` implementation (grpc.aio).

Every handler validates its request first (INVALID_ARGUMENT naming the field), runs model work off
the event loop (the scheduler's worker thread for generation, a one-thread executor for
Recognize/Retrieve), converts coordinates in ``coamd.server.coords`` only, and turns any model
exception into INTERNAL for that call alone.

Requests are registered with :func:`add_to_server`, not the generated ``add_..._to_server``: its
deserializer never raises, so bytes that are not a valid message of the method's request type
(e.g. invalid UTF-8 in a ``string`` field) reach the handler as :class:`MalformedRequest` and end
with INVALID_ARGUMENT and one rate-limited log line, instead of gRPC's UNKNOWN plus a traceback.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
import traceback

import grpc
import numpy as np

from coamd.api import pb, pb_grpc
from coamd.server import coords
from coamd.server.messages import (MalformedRequest, RootMotion, _end_stream, _reject_malformed,
                                   _safe_deserializer, frames_message, interpretation_message)
from coamd.server.scheduler import Job, QueueFull, Scheduler
from coamd.server.validation import (MAX_DURATION_S, MAX_RECOGNIZE_FRAMES, MAX_TEXT_CHARS, MIN_DURATION_S,
                                     MIN_RECOGNIZE_FRAMES, Defaults, ValidationError,
                                     check_text, coordinate_system, frames_to_joints, validate_generate,
                                     validate_top_k)
from coamd.skeleton import FPS, JOINT_NAMES, PARENTS

log = logging.getLogger("coamd.server")


def add_to_server(servicer, server) -> None:
    """Register ``servicer``'s ``coamd.v1.MotionService`` methods on a grpc.aio ``server`` with
    never-raising deserializers (see the module docstring). Methods are read from the service
    descriptor, so a new RPC in the proto needs only its handler on the servicer."""
    service = pb.DESCRIPTOR.services_by_name["MotionService"]
    handlers = {}
    for m in service.methods:
        req_cls, resp_cls = getattr(pb, m.input_type.name), getattr(pb, m.output_type.name)
        fn = getattr(servicer, m.name)
        kw = dict(request_deserializer=_safe_deserializer(req_cls), response_serializer=resp_cls.SerializeToString)
        if m.client_streaming and m.server_streaming:
            # the handler receives the request iterator and checks each message for MalformedRequest
            async def bidi(request_iterator, context, _fn=fn):
                await _fn(request_iterator, context)
            handlers[m.name] = grpc.stream_stream_rpc_method_handler(bidi, **kw)
        elif m.client_streaming:
            raise NotImplementedError(f"{m.name}: client-streaming methods need their own malformed-message check")
        elif m.server_streaming:
            async def stream(request, context, _fn=fn, _name=m.name):
                if isinstance(request, MalformedRequest):
                    await _reject_malformed(request, context, _name)
                    return
                async for item in _fn(request, context):
                    yield item
            handlers[m.name] = grpc.unary_stream_rpc_method_handler(stream, **kw)
        else:
            async def unary(request, context, _fn=fn, _name=m.name):
                if isinstance(request, MalformedRequest):
                    await _reject_malformed(request, context, _name)
                return await _fn(request, context)
            handlers[m.name] = grpc.unary_unary_rpc_method_handler(unary, **kw)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


class MotionService(pb_grpc.MotionServiceServicer):
    """Serves an ``Engine`` (see ``coamd.server.engine``) through a ``Scheduler``."""

    def __init__(self, engine, scheduler: Scheduler, defaults: Defaults | None = None, max_sessions: int = 64,
                 session_idle_s: float = 60.0, session_config=None):
        self.engine = engine
        self.scheduler = scheduler
        self.defaults = defaults or Defaults()
        self.max_sessions = max_sessions
        self.session_idle_s = session_idle_s
        self.sessions_open = 0
        self.session_config = session_config       # coamd.sampling.session.SessionConfig or None (default)
        self._aux = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="coamd-aux")

    async def _abort_invalid(self, context, exc: ValidationError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    # ------------------------------------------------------------------ Generate
    async def Generate(self, request, context):
        t0 = time.monotonic()
        try:
            params = validate_generate(request, self.defaults)
        except ValidationError as exc:
            await self._abort_invalid(context, exc)
        loop = asyncio.get_running_loop()
        remaining = context.time_remaining()
        job = Job(params=params, loop=loop,
                  deadline=None if remaining is None else time.monotonic() + remaining)
        try:
            self.scheduler.submit(job)
        except QueueFull as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"server busy: {exc}; retry later")
        except RuntimeError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        ttff = None
        frames_sent = 0
        rot_stream = None
        root = RootMotion(in_place=params.root_motion == "in_place")
        try:
            while True:
                item = await job.queue.get()
                kind = item[0]
                if kind == "frames":
                    chunk = item[1]
                    start, joints = int(chunk.start), np.asarray(chunk.joints, dtype=np.float32)
                    if start != frames_sent:  # the sampler's contract: in order, each frame once
                        log.error("sampler delivered frame %d, expected %d", start, frames_sent)
                        await context.abort(grpc.StatusCode.INTERNAL, "frame order violated by the sampler")
                    rot = None
                    if params.include_rotations and len(joints):
                        rot = getattr(chunk, "rotations", None)   # the skeleton projection's (FK mode)
                        if rot is None:                           # raw frames: solved per stream, causally
                            if rot_stream is None:
                                rot_stream = self.engine.rotation_stream()
                            try:
                                rot = await loop.run_in_executor(self._aux, rot_stream.push, joints)
                            except Exception as exc:  # noqa: BLE001
                                log.error("rotations failed: %s", traceback.format_exc())
                                await context.abort(grpc.StatusCode.INTERNAL, f"rotations failed: {exc}")
                    if len(joints):
                        if ttff is None:
                            ttff = time.monotonic() - t0
                        frames_sent += len(joints)
                        yield pb.GenerateResponse(frames=frames_message(start, joints, params.coordinates, rot,
                                                                        root))
                elif kind == "done":
                    total = time.monotonic() - t0
                    info = self.engine.describe(job.state)
                    guided = bool(info.get("guidance_applied", params.guidance)) and not job.guidance_note
                    note = job.guidance_note or info.get("guidance_note", "")
                    if not params.guidance:
                        note = note or "guidance off in the request"
                    summary = pb.GenerateSummary(
                        total_frames=frames_sent, fps=FPS, seed=params.seed, guidance_applied=guided,
                        guidance_note=note, time_to_first_frame_ms=1000.0 * (ttff if ttff is not None else total),
                        total_ms=1000.0 * total,
                        queue_ms=1000.0 * ((job.t_start or t0) - job.t_submit),
                        backend=self.engine.backend_name, iterations=info.get("iterations", params.iterations),
                        order=params.order, ode_steps=params.ode_steps, cfg_scale=params.cfg_scale,
                        guidance_scale=params.guidance_scale if guided else 0.0,
                        max_batch=job.max_batch, solver=params.solver,
                        cleanup_applied=bool(info.get("cleanup_applied", False)), temperature=params.temperature,
                        skeleton_applied=bool(info.get("skeleton_applied", False)), root_motion=params.root_motion)
                    it = interpretation_message(info.get("interpretation"), info.get("conditioned_text", ""))
                    if it is not None:
                        summary.interpretation.CopyFrom(it)
                    yield pb.GenerateResponse(summary=summary)
                    return
                else:
                    await _end_stream(context, item[1], item[2])
                    return
        finally:
            job.cancel()  # client gone, deadline hit or an abort: the worker drops it at its next step

    # ------------------------------------------------------------------ Session
    async def Session(self, request_iterator, context):
        """Endless, steerable motion (``coamd.server.session``); writes with ``context.write``."""
        from coamd.server.session import serve_session

        import dataclasses

        config = dataclasses.replace(self.session_config) if self.session_config is not None else None
        await serve_session(self, request_iterator, context, config=config, idle_s=self.session_idle_s)

    def session_frames(self, out, params, root: RootMotion | None = None) -> list:
        """Session frames (``coamd.sampling.session.SessionFrames``) -> proto ``Frame``s in the
        session's coordinate system, with the skeleton projection's rotations when asked for
        (sessions always project: ``coamd.server.session.base_request``) and root motion from the
        session's ``root`` (:class:`RootMotion`)."""
        rot = out.rotations if params.include_rotations else None
        return frames_message(out.start, out.joints, params.coordinates, rot, root)

    # ------------------------------------------------------------------ Recognize / Retrieve
    async def _aux_call(self, context, fn, *args, missing: str | None = None):
        """Run ``fn(*args)`` on the auxiliary thread. ValueError -> INVALID_ARGUMENT; with ``missing``,
        FileNotFoundError -> FAILED_PRECONDITION with that explanation; anything else -> INTERNAL."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._aux, fn, *args)
        except FileNotFoundError as exc:
            if missing is not None:
                log.warning("%s: %s", getattr(fn, "__name__", fn), exc)
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{missing}: {exc}")
            log.error("%s failed: %s", getattr(fn, "__name__", fn), traceback.format_exc())
            await context.abort(grpc.StatusCode.INTERNAL, f"model error: {type(exc).__name__}: {exc}")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:  # noqa: BLE001
            log.error("%s failed: %s", getattr(fn, "__name__", fn), traceback.format_exc())
            await context.abort(grpc.StatusCode.INTERNAL, f"model error: {type(exc).__name__}: {exc}")

    async def Recognize(self, request, context):
        try:
            system = coordinate_system(request.coordinates)
            top_k = validate_top_k(request.top_k)
            if len(request.frames) < MIN_RECOGNIZE_FRAMES:
                raise ValidationError("frames", f"must hold at least {MIN_RECOGNIZE_FRAMES} frames "
                                      f"({MIN_RECOGNIZE_FRAMES / FPS:g} s at {FPS:g} fps), got {len(request.frames)}")
            if len(request.frames) > MAX_RECOGNIZE_FRAMES:
                raise ValidationError("frames", f"at most {MAX_RECOGNIZE_FRAMES} frames (60 s), got {len(request.frames)}")
            joints = frames_to_joints(request.frames, "frames", system)
        except ValidationError as exc:
            await self._abort_invalid(context, exc)
        content, style = await self._aux_call(context, self.engine.recognize, joints, top_k)
        return pb.RecognizeResponse(content=[pb.LabelScore(label=l, score=s) for l, s in content],
                                    style=[pb.LabelScore(label=l, score=s) for l, s in style])

    async def Retrieve(self, request, context):
        try:
            text = check_text(request.text)
            top_k = validate_top_k(request.top_k)
        except ValidationError as exc:
            await self._abort_invalid(context, exc)
        hits = await self._aux_call(context, self.engine.retrieve, text, top_k, missing=(
            "Retrieve ranks the processed dataset's test split, which this server does not have "
            "(build it with `make data`, or start the server with --dataset DIR)"))
        return pb.RetrieveResponse(motions=[pb.RetrievedMotion(clip_id=h["clip_id"], caption=h["caption"],
                                                               similarity=h["similarity"], frames=h["frames"])
                                            for h in hits])

    async def GetCapabilities(self, request, context):
        try:
            vocab = self.engine.capabilities()
        except FileNotFoundError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"this server's checkpoint has no vocabulary: {exc}")

        def caps(entries):
            return [pb.Capability(label=e["label"], description=e.get("description", ""),
                                  training_clips=int(e.get("training_clips", 0)), side=e.get("side", ""),
                                  recorded_with=[pb.LabelCount(label=k, training_clips=int(v))
                                                 for k, v in e.get("recorded_with", {}).items()])
                    for e in entries]

        return pb.Capabilities(actions=caps(vocab["actions"]), styles=caps(vocab["styles"]),
                               min_duration_s=MIN_DURATION_S,
                               max_duration_s=min(MAX_DURATION_S, self.defaults.max_duration_s), fps=FPS,
                               max_text_chars=MAX_TEXT_CHARS, rare_below_clips=int(vocab.get("rare_below_clips", 0)))

    async def GetSkeleton(self, request, context):
        try:
            system = coordinate_system(request.coordinates)
        except ValidationError as exc:
            await self._abort_invalid(context, exc)
        offsets = coords.positions_to(self.engine.rest_offsets(), system)
        return pb.Skeleton(joint_names=list(JOINT_NAMES), parents=list(PARENTS),
                           rest_offsets=offsets.reshape(-1).tolist(), fps=FPS,
                           coordinates=pb.UNITY_LEFT_HANDED_Y_UP if system == coords.UNITY_LEFT_HANDED_Y_UP
                           else pb.RIGHT_HANDED_Y_UP)
