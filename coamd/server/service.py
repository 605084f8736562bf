"""The ``coamd.v1.MotionService`` implementation (grpc.aio).

Every handler validates its request first (INVALID_ARGUMENT naming the field), runs model work off
the event loop (the scheduler's worker thread for generation, a one-thread executor for
Recognize/Retrieve), converts coordinates in ``coamd.server.coords`` only, and turns any model
exception into INTERNAL for that call alone.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
import traceback

import grpc
import numpy as np

from coamd.client.proto import pb, pb_grpc
from coamd.server import coords
from coamd.server.scheduler import Job, QueueFull, Scheduler
from coamd.server.validation import (MAX_RECOGNIZE_FRAMES, Defaults, ValidationError, check_text,
                                     coordinate_system, frames_to_joints, validate_generate,
                                     validate_top_k)
from coamd.skeleton import FPS, JOINT_NAMES, NUM_JOINTS, PARENTS

log = logging.getLogger("coamd.server")


def frames_message(start: int, joints: np.ndarray, system: str, rotations: np.ndarray | None) -> list:
    """Project-frame ``joints`` (n, 21, 3) starting at frame ``start`` -> proto ``Frame``s in ``system``."""
    pos = coords.positions_to(joints, system).reshape(len(joints), NUM_JOINTS * 3)
    rot = None
    if rotations is not None:
        rot = coords.quaternions_to(rotations, system).reshape(len(joints), NUM_JOINTS * 4)
    out = []
    for i in range(len(joints)):
        idx = start + i
        out.append(pb.Frame(index=idx, time_s=idx / FPS, positions=pos[i].tolist(),
                            rotations=rot[i].tolist() if rot is not None else ()))
    return out


class MotionService(pb_grpc.MotionServiceServicer):
    """Serves an ``Engine`` (see ``coamd.server.engine``) through a ``Scheduler``."""

    def __init__(self, engine, scheduler: Scheduler, defaults: Defaults | None = None):
        self.engine = engine
        self.scheduler = scheduler
        self.defaults = defaults or Defaults()
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
                        try:
                            rot = await loop.run_in_executor(self._aux, self.engine.rotations, joints)
                        except Exception as exc:  # noqa: BLE001
                            log.error("rotations failed: %s", traceback.format_exc())
                            await context.abort(grpc.StatusCode.INTERNAL, f"rotations failed: {exc}")
                    if len(joints):
                        if ttff is None:
                            ttff = time.monotonic() - t0
                        frames_sent += len(joints)
                        yield pb.GenerateResponse(frames=frames_message(start, joints, params.coordinates, rot))
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
                        cleanup_applied=bool(info.get("cleanup_applied", False)), temperature=params.temperature)
                    yield pb.GenerateResponse(summary=summary)
                    return
                else:
                    await context.abort(item[1], item[2])
        finally:
            job.cancel()  # client gone, deadline hit or an abort: the worker drops it at its next step

    # ------------------------------------------------------------------ Recognize / Retrieve
    async def _aux_call(self, context, fn, *args):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._aux, fn, *args)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:  # noqa: BLE001
            log.error("%s failed: %s", getattr(fn, "__name__", fn), traceback.format_exc())
            await context.abort(grpc.StatusCode.INTERNAL, f"model error: {type(exc).__name__}: {exc}")

    async def Recognize(self, request, context):
        try:
            system = coordinate_system(request.coordinates)
            top_k = validate_top_k(request.top_k)
            if not request.frames:
                raise ValidationError("frames", "must hold at least one frame")
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
        hits = await self._aux_call(context, self.engine.retrieve, text, top_k)
        return pb.RetrieveResponse(motions=[pb.RetrievedMotion(clip_id=h["clip_id"], caption=h["caption"],
                                                               similarity=h["similarity"], frames=h["frames"])
                                            for h in hits])

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
