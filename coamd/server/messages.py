"""What the service's handlers share, below them in the dependency chain: malformed-request
handling (a never-raising deserializer, one rate-limited log line, INVALID_ARGUMENT), the end of a
stream whose client may be gone, and the conversion of frames, root motion and interpretations to
their proto messages. ``coamd.server.service`` (Generate and the unary methods) and
``coamd.server.session`` (Session) both import it; it imports neither.
"""
from __future__ import annotations

import logging
import time

import grpc
import numpy as np

from coamd.api import pb
from coamd.server import coords
from coamd.skeleton import FPS, NUM_JOINTS

log = logging.getLogger("coamd.server")


class RateLimitedLog:
    """Logs at most one line per ``interval_s`` seconds for one kind of event; the next line that
    gets through says how many were suppressed in between. Thread-safe enough for counters."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0):
        self.logger, self.interval_s = logger, interval_s
        self._next = 0.0
        self._suppressed = 0

    def warning(self, msg: str, *args) -> bool:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return False
        extra = f" ({self._suppressed} more suppressed)" if self._suppressed else ""
        self._suppressed = 0
        self._next = now + self.interval_s
        self.logger.warning(msg + extra, *args)
        return True


class MalformedRequest:
    """Stands in for a request whose bytes did not parse as the method's message type."""

    __slots__ = ("type_name", "reason")

    def __init__(self, type_name: str, reason: str):
        self.type_name, self.reason = type_name, reason


def _safe_deserializer(cls):
    def parse(data: bytes):
        try:
            return cls.FromString(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError and anything else upb may raise
            return MalformedRequest(cls.DESCRIPTOR.full_name, str(exc) or type(exc).__name__)
    return parse


_bad_request_log = RateLimitedLog(log)


async def _reject_malformed(request: MalformedRequest, context, method: str):
    _bad_request_log.warning("%s: request is not a valid %s (%s)", method, request.type_name, request.reason)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"request is not a valid {request.type_name} message: {request.reason} "
                        "(string fields must be UTF-8)")


async def _end_stream(context, code: grpc.StatusCode, message: str) -> None:
    """Abort a streaming call with ``code`` unless the call is already over: a client that cancelled
    or whose deadline passed has its status already (gRPC's own), and sending a second one fails
    inside gRPC with a logged ``ExecuteBatchError``."""
    done, cancelled = getattr(context, "done", None), getattr(context, "cancelled", None)
    if (done is not None and done()) or (cancelled is not None and cancelled()):
        return
    try:
        await context.abort(code, message)
    except grpc.aio.AbortError:
        raise
    except Exception as exc:  # noqa: BLE001 - the call ended between the check and the abort
        log.debug("could not send %s to a finished call: %s", code.name, exc)


def interpretation_message(it, conditioned_text: str = ""):
    """A :class:`coamd.models.understanding.Interpretation` (or None) -> proto ``Interpretation``
    (None when the server has no text-understanding stage)."""
    if it is None:
        return None
    return pb.Interpretation(
        content=[pb.LabelScore(label=l, score=float(p)) for l, p in it.contents],
        style=[pb.LabelScore(label=l, score=float(p)) for l, p in it.styles],
        side=it.side or "", out_of_vocabulary=bool(it.oov), out_of_vocabulary_score=float(it.oov_score),
        note=it.note or "", conditioned_text=conditioned_text)


class RootMotion:
    """Per-stream root motion (``RootMotion`` in the proto): each frame's hips horizontal velocity
    (m/s, difference to the previous frame, 0 on frame 0) and heading (radians about +Y from +Z
    towards +X, :func:`coamd.data.process.facing_angle`); with ``in_place`` the hips' x/z are
    subtracted from every joint, so the positions hold the pose without the travel. Frames must
    come in order (one instance per stream)."""

    def __init__(self, in_place: bool = False):
        self.in_place = in_place
        self._prev: np.ndarray | None = None

    def apply(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """joints (n, 21, 3) project frame -> (joints (n, 21, 3), velocity (n, 3), heading (n,))."""
        from coamd.data.process import facing_angle

        j = np.asarray(joints, np.float32)
        hips = j[:, 0].copy()
        hips[:, 1] = 0.0
        prev = np.concatenate([hips[:1] if self._prev is None else self._prev[None], hips[:-1]])
        vel = (hips - prev) * FPS
        self._prev = hips[-1].copy()
        heading = facing_angle(j).astype(np.float32)
        if self.in_place:
            j = j - hips[:, None, :]
        return j, vel.astype(np.float32), heading


def frames_message(start: int, joints: np.ndarray, system: str, rotations: np.ndarray | None,
                   root: RootMotion | None = None) -> list:
    """Project-frame ``joints`` (n, 21, 3) starting at frame ``start`` -> proto ``Frame``s in
    ``system``, with root velocity and heading per frame from ``root`` (the stream's
    :class:`RootMotion`; a world-space one when None)."""
    if not len(joints):
        return []
    joints, vel, heading = (root or RootMotion()).apply(joints)
    pos = coords.positions_to(joints, system).reshape(len(joints), NUM_JOINTS * 3)
    vel = coords.positions_to(vel, system)
    heading = coords.heading_to(heading, system)
    rot = None
    if rotations is not None:
        rot = coords.quaternions_to(rotations, system).reshape(len(joints), NUM_JOINTS * 4)
    out = []
    for i in range(len(joints)):
        idx = start + i
        out.append(pb.Frame(index=idx, time_s=idx / FPS, positions=pos[i].tolist(),
                            rotations=rot[i].tolist() if rot is not None else (),
                            root_velocity=vel[i].tolist(), heading=float(heading[i])))
    return out
