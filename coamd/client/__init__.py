"""Python client library for the CoAMD motion server (``coamd serve``).

Kept apart from ``coamd.server`` on purpose: a game tool, a test rig or another service can use it
with only ``grpcio``, ``protobuf`` and ``numpy`` -- it never imports torch, the models or the
server (the dependency flows server -> clients, never back). The native C++/Unity clients in
``bindings/`` and ``unity_client/`` speak the same contract, ``proto/coamd/v1/motion.proto``.

Example::

    from coamd.client import MotionClient
    with MotionClient("127.0.0.1:50051") as client:
        result = client.generate("a person walks forward and waves", duration_s=4.0, seed=1)
    result.joints        # (T, 21, 3) float32 metres, 20 fps
    result.ttff_s, result.total_s, result.summary["guidance_applied"]
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from coamd.api import FPS, NUM_JOINTS, pb, pb_grpc

_GUIDANCE = {None: pb.GUIDANCE_UNSPECIFIED, True: pb.GUIDANCE_ON, False: pb.GUIDANCE_OFF}
_ORDER = {None: pb.TOKEN_ORDER_UNSPECIFIED, "random": pb.TOKEN_ORDER_RANDOM,
          "left_to_right": pb.TOKEN_ORDER_LEFT_TO_RIGHT}
_TEXT_CONDITIONING = {None: pb.TEXT_CONDITIONING_UNSPECIFIED, "understood": pb.TEXT_CONDITIONING_UNDERSTOOD,
                      "raw": pb.TEXT_CONDITIONING_RAW}
_SKELETON = {None: pb.SKELETON_MODE_UNSPECIFIED, "fk": pb.SKELETON_MODE_FK, "raw": pb.SKELETON_MODE_RAW}
_ROOT_MOTION = {None: pb.ROOT_MOTION_UNSPECIFIED, "world": pb.ROOT_MOTION_WORLD, "in_place": pb.ROOT_MOTION_IN_PLACE}
_CLEANUP = {None: pb.CLEANUP_UNSPECIFIED, True: pb.CLEANUP_ON, False: pb.CLEANUP_OFF}
_SOLVER = {None: pb.SOLVER_UNSPECIFIED, "euler": pb.SOLVER_EULER, "heun": pb.SOLVER_HEUN}
_COORDS = {None: pb.COORDINATE_SYSTEM_UNSPECIFIED, "right_handed_y_up": pb.RIGHT_HANDED_Y_UP,
           "unity": pb.UNITY_LEFT_HANDED_Y_UP, "unity_left_handed_y_up": pb.UNITY_LEFT_HANDED_Y_UP}


class StreamError(RuntimeError):
    """The server's frame stream broke the contract (a missing, repeated or out-of-order index)."""


def _frames(joints: np.ndarray) -> list:
    arr = np.asarray(joints, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"frames must have shape (n, {NUM_JOINTS}, 3), got {arr.shape}")
    return [pb.Frame(index=i, time_s=i / FPS, positions=arr[i].reshape(-1).tolist()) for i in range(len(arr))]


def build_generate_request(text: str, duration_s: float = 4.0, seed: int = 0, guidance: bool | None = None,
                           guidance_scale: float = 0.0, cfg_scale: float = 0.0, iterations: int = 0,
                           ode_steps: int = 0, order: str | None = None, solver: str | None = None,
                           coordinates: str | None = None, include_rotations: bool = False,
                           edit_prefix: np.ndarray | None = None, edit_suffix: np.ndarray | None = None,
                           cleanup: bool | None = None, temperature: float = 0.0,
                           text_conditioning: str | None = None, skeleton: str | None = None,
                           root_motion: str | None = None):
    """A ``GenerateRequest``. Zero / None fields mean the server default.

    ``text_conditioning``: ``"understood"`` (the server default: the generator follows the
    server's understanding of the text, see ``GenerateSummary.interpretation``) or ``"raw"``.
    ``skeleton``: ``"fk"`` (default: frames are forward kinematics on ``GetSkeleton``'s offsets)
    or ``"raw"`` (the model's coordinates). ``root_motion``: ``"world"`` (default) or
    ``"in_place"`` (hips x/z removed; travel in each frame's root velocity and heading).

    ``cleanup``: the server's foot-contact cleanup on (True), off (False: the model's raw frames)
    or the server default (None: on). ``temperature``: the flow ODE's noise scale, (0, 2].

    ``edit_prefix`` / ``edit_suffix``: joints (n, 21, 3) metres (in ``coordinates``) to keep at the
    start / end; both given = in-between editing. Raises ValueError/KeyError on bad arguments
    (the server validates everything again).
    """
    req = pb.GenerateRequest(text=text, duration_s=duration_s, seed=seed, guidance=_GUIDANCE[guidance],
                             guidance_scale=guidance_scale, cfg_scale=cfg_scale, iterations=iterations,
                             ode_steps=ode_steps, order=_ORDER[order], solver=_SOLVER[solver],
                             coordinates=_COORDS[coordinates], include_rotations=include_rotations,
                             cleanup=_CLEANUP[cleanup], temperature=temperature,
                             text_conditioning=_TEXT_CONDITIONING[text_conditioning],
                             skeleton=_SKELETON[skeleton], root_motion=_ROOT_MOTION[root_motion])
    if edit_prefix is not None and edit_suffix is not None:
        pre, suf = _frames(edit_prefix), _frames(edit_suffix)
        req.edit.CopyFrom(pb.Edit(mode=pb.EDIT_MODE_INBETWEEN, frames=pre + suf,
                                  inbetween_prefix_frames=len(pre)))
    elif edit_prefix is not None:
        req.edit.CopyFrom(pb.Edit(mode=pb.EDIT_MODE_PREFIX, frames=_frames(edit_prefix)))
    elif edit_suffix is not None:
        req.edit.CopyFrom(pb.Edit(mode=pb.EDIT_MODE_SUFFIX, frames=_frames(edit_suffix)))
    return req


def interpretation_dict(it) -> dict:
    """``Interpretation`` -> dict: ``content``/``style`` lists of (label, probability) best first,
    ``side``, ``out_of_vocabulary``, ``out_of_vocabulary_score``, ``note``, ``conditioned_text``."""
    return {"content": [(s.label, s.score) for s in it.content], "style": [(s.label, s.score) for s in it.style],
            "side": it.side, "out_of_vocabulary": it.out_of_vocabulary,
            "out_of_vocabulary_score": it.out_of_vocabulary_score, "note": it.note,
            "conditioned_text": it.conditioned_text}


def summary_dict(summary) -> dict:
    """``GenerateSummary`` -> plain dict (field names of the proto; ``interpretation`` as
    :func:`interpretation_dict`, or None when the server sent none)."""
    out = {f.name: getattr(summary, f.name) for f in summary.DESCRIPTOR.fields}
    out["interpretation"] = interpretation_dict(summary.interpretation) if summary.HasField("interpretation") else None
    return out


def capabilities_dict(c) -> dict:
    """``Capabilities`` -> dict: ``actions``/``styles`` lists of dicts (label, description,
    training_clips, side, recorded_with), ``min_duration_s``, ``max_duration_s``, ``fps``,
    ``max_text_chars``, ``rare_below_clips``. ``recorded_with``: {style: training clips} of the
    styles an action was recorded in (for a style: {action: clips}); an action with at least
    ``rare_below_clips`` clips is never generated in a style missing there."""
    def entries(xs):
        return [{"label": x.label, "description": x.description, "training_clips": x.training_clips,
                 "side": x.side, "recorded_with": {r.label: r.training_clips for r in x.recorded_with}}
                for x in xs]
    return {"actions": entries(c.actions), "styles": entries(c.styles), "min_duration_s": c.min_duration_s,
            "max_duration_s": c.max_duration_s, "fps": c.fps, "max_text_chars": c.max_text_chars,
            "rare_below_clips": c.rare_below_clips}


@dataclass
class GenerationResult:
    """A whole generated motion as received. ``joints`` (T, 21, 3) float32 metres at 20 fps."""

    joints: np.ndarray
    rotations: np.ndarray | None
    summary: dict
    ttff_s: float                 # client-side: request sent -> first frame received
    total_s: float                # client-side: request sent -> summary received
    messages: int = 0
    text: str = ""
    extra: dict = field(default_factory=dict)
    root_velocity: np.ndarray | None = None   # (T, 3) m/s, the hips' horizontal velocity per frame
    heading: np.ndarray | None = None         # (T,) radians about +Y from +Z towards +X


class FrameAssembler:
    """Collects streamed ``GenerateResponse``s and checks indices 0..T-1 arrive once, in order."""

    def __init__(self):
        self.positions: list[np.ndarray] = []
        self.rotations: list[np.ndarray] = []
        self.next_index = 0
        self.summary = None
        self.messages = 0
        self.first_frame_t: float | None = None
        self.root_velocity: list = []
        self.heading: list = []

    def add(self, response) -> None:
        self.messages += 1
        for fr in response.frames:
            if fr.index != self.next_index:
                raise StreamError(f"expected frame {self.next_index}, got {fr.index}")
            if len(fr.positions) != NUM_JOINTS * 3:
                raise StreamError(f"frame {fr.index} has {len(fr.positions)} position floats")
            if self.first_frame_t is None:
                self.first_frame_t = time.perf_counter()
            self.positions.append(np.asarray(fr.positions, dtype=np.float32).reshape(NUM_JOINTS, 3))
            if fr.rotations:
                self.rotations.append(np.asarray(fr.rotations, dtype=np.float32).reshape(NUM_JOINTS, 4))
            self.root_velocity.append(tuple(fr.root_velocity) if len(fr.root_velocity) == 3 else (0.0, 0.0, 0.0))
            self.heading.append(fr.heading)
            self.next_index += 1
        if response.HasField("summary"):
            self.summary = response.summary

    def result(self, t0: float, text: str = "") -> GenerationResult:
        if self.summary is None:
            raise StreamError("stream ended without a summary")
        if self.summary.total_frames != self.next_index:
            raise StreamError(f"summary says {self.summary.total_frames} frames, received {self.next_index}")
        joints = np.stack(self.positions) if self.positions else np.zeros((0, NUM_JOINTS, 3), np.float32)
        rot = np.stack(self.rotations) if self.rotations and len(self.rotations) == len(self.positions) else None
        end = time.perf_counter()
        return GenerationResult(joints=joints, rotations=rot, summary=summary_dict(self.summary),
                                ttff_s=(self.first_frame_t or end) - t0, total_s=end - t0,
                                messages=self.messages, text=text,
                                root_velocity=np.asarray(self.root_velocity, np.float32).reshape(-1, 3),
                                heading=np.asarray(self.heading, np.float32))


def _metadata(token: str | None):
    return (("authorization", f"Bearer {token}"),) if token else None


def _credentials(tls_ca: str | None, tls: bool):
    import grpc

    if not (tls or tls_ca):
        return None
    root = open(tls_ca, "rb").read() if tls_ca else None
    return grpc.ssl_channel_credentials(root_certificates=root)


class MotionClient:
    """Blocking client. ``target`` is ``HOST:PORT``; ``tls_ca`` a PEM file of the CA (or the
    self-signed certificate) to trust, which turns TLS on; ``tls`` with the system roots;
    ``token`` a bearer token. Calls raise ``grpc.RpcError`` with the server's status and message."""

    def __init__(self, target: str, token: str | None = None, tls_ca: str | None = None, tls: bool = False,
                 server_name: str | None = None):
        import grpc

        creds = _credentials(tls_ca, tls)
        opts = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
        self.channel = grpc.secure_channel(target, creds, opts) if creds else grpc.insecure_channel(target, opts)
        self.stub = pb_grpc.MotionServiceStub(self.channel)
        self.metadata = _metadata(token)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.channel.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the channel connects; raises grpc.FutureTimeoutError."""
        import grpc

        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def health(self, service: str = "", timeout: float = 5.0) -> str:
        """Status name from grpc.health.v1 (e.g. ``SERVING``)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        resp = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    def stream(self, request, timeout: float | None = None) -> Iterator:
        """Raw ``GenerateResponse`` iterator for a ``GenerateRequest`` (cancel with ``.cancel()``)."""
        return self.stub.Generate(request, timeout=timeout, metadata=self.metadata)

    def generate(self, text: str, timeout: float | None = None, **kwargs) -> GenerationResult:
        """Generate and collect a whole motion; kwargs as ``build_generate_request``."""
        req = build_generate_request(text, **kwargs)
        t0 = time.perf_counter()
        asm = FrameAssembler()
        for resp in self.stream(req, timeout=timeout):
            asm.add(resp)
        return asm.result(t0, text)

    def recognize(self, joints: np.ndarray, top_k: int = 5, coordinates: str | None = None,
                  timeout: float | None = 30.0) -> dict:
        """Top-k content and style labels of joints (T, 21, 3) metres at 20 fps."""
        resp = self.stub.Recognize(pb.RecognizeRequest(frames=_frames(joints), top_k=top_k,
                                                       coordinates=_COORDS[coordinates]),
                                   timeout=timeout, metadata=self.metadata)
        return {"content": [(s.label, s.score) for s in resp.content],
                "style": [(s.label, s.score) for s in resp.style]}

    def retrieve(self, text: str, top_k: int = 5, timeout: float | None = 30.0) -> list[dict]:
        """Held-out motions closest to ``text``: dicts with clip_id, caption, similarity, frames."""
        resp = self.stub.Retrieve(pb.RetrieveRequest(text=text, top_k=top_k), timeout=timeout,
                                  metadata=self.metadata)
        return [{"clip_id": m.clip_id, "caption": m.caption, "similarity": m.similarity, "frames": m.frames}
                for m in resp.motions]

    def session(self, text: str, seed: int = 0, guidance: bool | None = None, iterations: int = 0,
                ode_steps: int = 0, coordinates: str | None = None, include_rotations: bool = False,
                cleanup: bool | None = None, temperature: float = 0.0, text_conditioning: str | None = None,
                lookahead_s: float = 0.0, root_motion: str | None = None,
                timeout: float | None = None) -> "MotionSession":
        """Open an endless motion session (the ``Session`` RPC) with ``text`` as the first
        instruction; see :class:`MotionSession`. Zero / None fields mean the server default
        (``lookahead_s`` 0 = 1 s). ``timeout``: deadline of the whole session (None = none)."""
        open_ = pb.SessionOpen(text=text, seed=seed, guidance=_GUIDANCE[guidance], iterations=iterations,
                               ode_steps=ode_steps, coordinates=_COORDS[coordinates],
                               include_rotations=include_rotations, cleanup=_CLEANUP[cleanup],
                               temperature=temperature, text_conditioning=_TEXT_CONDITIONING[text_conditioning],
                               lookahead_s=lookahead_s, root_motion=_ROOT_MOTION[root_motion])
        return MotionSession(self.stub, open_, self.metadata, timeout)

    def capabilities(self, timeout: float | None = 10.0) -> dict:
        """What the server's model knows: actions and styles with training-clip counts, the
        duration range (:func:`capabilities_dict`)."""
        return capabilities_dict(self.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=timeout,
                                                           metadata=self.metadata))

    def skeleton(self, coordinates: str | None = None, timeout: float | None = 10.0) -> dict:
        """Joint names, parents, rest offsets (21, 3) metres and fps."""
        s = self.stub.GetSkeleton(pb.GetSkeletonRequest(coordinates=_COORDS[coordinates]),
                                  timeout=timeout, metadata=self.metadata)
        return {"joint_names": list(s.joint_names), "parents": list(s.parents),
                "rest_offsets": np.asarray(s.rest_offsets, dtype=np.float32).reshape(-1, 3), "fps": s.fps}


class MotionSession:
    """An open ``Session``: iterate it for :class:`SessionUpdate`s as they arrive; call
    :meth:`instruct` any time to change the instruction, :meth:`close` to end it (the stream then
    finishes with a ``CLOSED`` event), :meth:`cancel` to drop it at once. Checks that frame
    indices arrive once and in order (:class:`StreamError` otherwise). Thread-safe for
    ``instruct``/``close`` from another thread than the one iterating.
    """

    def __init__(self, stub, open_msg, metadata=None, timeout: float | None = None):
        import queue

        self._q: "queue.Queue" = queue.Queue()
        self._q.put(pb.SessionRequest(open=open_msg))
        self._call = stub.Session(self._requests(), metadata=metadata, timeout=timeout)
        self.next_index = 0
        self.events: list = []

    def _requests(self):
        while True:
            msg = self._q.get()
            if msg is None:
                return
            yield msg
            if msg.WhichOneof("kind") == "close":
                return

    def instruct(self, text: str) -> None:
        """Send a new instruction; an ``INSTRUCTION`` event later names its first frame."""
        self._q.put(pb.SessionRequest(instruction=pb.SessionInstruction(text=text)))

    def close(self) -> None:
        """Ask the server to end the session after the frames in flight."""
        self._q.put(pb.SessionRequest(close=pb.SessionClose()))

    def cancel(self) -> None:
        """Drop the session at once (the server frees it)."""
        self._call.cancel()
        self._q.put(None)

    def __iter__(self):
        for resp in self._call:
            idx = [f.index for f in resp.frames]
            if idx and idx != list(range(self.next_index, self.next_index + len(idx))):
                raise StreamError(f"session frames {idx[:3]}... arrived, expected {self.next_index}")
            self.next_index += len(idx)
            joints = (np.asarray([f.positions for f in resp.frames], np.float32).reshape(-1, NUM_JOINTS, 3)
                      if idx else np.zeros((0, NUM_JOINTS, 3), np.float32))
            rot = None
            if idx and len(resp.frames[0].rotations):
                rot = np.asarray([f.rotations for f in resp.frames], np.float32).reshape(-1, NUM_JOINTS, 4)
            events = [session_event_dict(e) for e in resp.events]
            self.events.extend(events)
            yield SessionUpdate(idx[0] if idx else self.next_index, joints, rot, events, time.perf_counter())


@dataclass
class SessionUpdate:
    """One ``SessionResponse``: ``joints`` (n, 21, 3) float32 metres from session frame ``start``,
    ``rotations`` (n, 21, 4) or None, ``events`` (dicts of :func:`session_event_dict`),
    ``received`` (``time.perf_counter()`` on arrival)."""

    start: int
    joints: np.ndarray
    rotations: np.ndarray | None
    events: list
    received: float


def session_event_dict(e) -> dict:
    """``SessionEvent`` -> dict: kind (``OPENED``/``INSTRUCTION``/``CLOSED``), instruction, text,
    first_frame, latency_ms, interpretation (:func:`interpretation_dict` or None)."""
    return {"kind": pb.SessionEvent.Kind.Name(e.kind), "instruction": e.instruction, "text": e.text,
            "first_frame": e.first_frame, "latency_ms": e.latency_ms,
            "interpretation": interpretation_dict(e.interpretation) if e.HasField("interpretation") else None}


class AsyncMotionClient:
    """asyncio client (grpc.aio) with the same arguments as ``MotionClient``; used by the load test."""

    def __init__(self, target: str, token: str | None = None, tls_ca: str | None = None, tls: bool = False):
        import grpc

        creds = _credentials(tls_ca, tls)
        self.channel = grpc.aio.secure_channel(target, creds) if creds else grpc.aio.insecure_channel(target)
        self.stub = pb_grpc.MotionServiceStub(self.channel)
        self.metadata = _metadata(token)

    async def close(self) -> None:
        await self.channel.close()

    async def generate(self, text: str, timeout: float | None = None, **kwargs) -> GenerationResult:
        req = build_generate_request(text, **kwargs)
        t0 = time.perf_counter()
        asm = FrameAssembler()
        async for resp in self.stub.Generate(req, timeout=timeout, metadata=self.metadata):
            asm.add(resp)
        return asm.result(t0, text)


__all__ = ["AsyncMotionClient", "FrameAssembler", "GenerationResult", "MotionClient", "MotionSession", "SessionUpdate", "StreamError",
           "build_generate_request", "summary_dict"]
