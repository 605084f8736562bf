"""Validation of requests at the edge: every field is checked before any work is queued.

A bad field raises ``ValidationError`` whose message starts with the field's name as written in
``proto/coamd/v1/motion.proto`` (e.g. ``duration_s: must be between 0.4 and 12 s, got 30``); the
service answers it with INVALID_ARGUMENT. The result is a plain ``GenerateParams`` in the project
frame (right-handed Y up) with server defaults resolved, so nothing past this point deals with
protobuf or with enum numbers a newer client might send.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from coamd.api import pb
from coamd.sampling.sampler import GenerationRequest
from coamd.server import coords
from coamd.skeleton import FPS, NUM_JOINTS

MAX_TEXT_CHARS = 512
MIN_DURATION_S = 0.4
MAX_DURATION_S = 12.0
MAX_CFG_SCALE = 20.0
MAX_GUIDANCE_SCALE = 100.0
MAX_ITERATIONS = 64
MAX_ODE_STEPS = 64
MAX_TEMPERATURE = 2.0
MAX_TOP_K = 50
MAX_COORD_M = 100.0          # no joint of a real skeleton is 100 m from the origin
MAX_RECOGNIZE_FRAMES = int(60 * FPS)
MIN_RECOGNIZE_FRAMES = 2     # the motion stream (frame differences) needs two frames
# Per-request compute budget: velocity evaluations of the flow ODE per token, iterations x
# ode_steps x solver stages (Euler 1, Heun 2). The defaults (8 x 8 x 1 = 64) cost 1/16 of it; the
# heaviest settings the field ranges allow (64 x 64 Heun = 8192) took 12.7 s alone on 2 cores and
# slowed every request sharing the batch 9x.
MAX_REQUEST_EVALS = 1024
SOLVER_STAGES = {"euler": 1, "heun": 2}


class ValidationError(ValueError):
    """A request field is invalid. ``field`` is its proto name; str() is ``"field: problem"``."""

    def __init__(self, field_name: str, problem: str):
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name


@dataclass
class Defaults:
    """Server defaults used where a request leaves a field at 0 / UNSPECIFIED.

    The sampling settings follow the sampler's own defaults (:class:`GenerationRequest`), except
    the token order: the server streams, so it defaults to ``left_to_right``.
    """

    guidance: bool = GenerationRequest.guidance
    guidance_scale: float = GenerationRequest.guidance_scale
    cfg_scale: float = GenerationRequest.cfg_scale
    iterations: int = GenerationRequest.iterations
    ode_steps: int = GenerationRequest.ode_steps
    order: str = "left_to_right"
    solver: str = GenerationRequest.solver
    cleanup: bool = GenerationRequest.cleanup
    temperature: float = GenerationRequest.temperature
    text_conditioning: str = "understood"
    max_duration_s: float = MAX_DURATION_S
    min_edit_frames: int = 4
    max_request_evals: int = MAX_REQUEST_EVALS


@dataclass
class EditParams:
    """Frames to keep, project frame (n, 21, 3) metres. ``mode`` is prefix, suffix or inbetween."""

    mode: str
    prefix: np.ndarray | None = None
    suffix: np.ndarray | None = None


@dataclass
class GenerateParams:
    text: str
    duration_s: float
    seed: int
    guidance: bool
    guidance_scale: float
    cfg_scale: float
    iterations: int
    ode_steps: int
    order: str
    solver: str
    coordinates: str
    include_rotations: bool
    cleanup: bool = GenerationRequest.cleanup
    temperature: float = GenerationRequest.temperature
    text_conditioning: str = "understood"
    skeleton: str = "fk"
    root_motion: str = "world"
    edit: EditParams | None = None
    extra: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """Frames the motion will have: whole latent tokens of 4 frames (0.2 s) at 20 fps."""
        return 4 * max(1, int(round(self.duration_s * FPS / 4)))


_COORDS = {pb.COORDINATE_SYSTEM_UNSPECIFIED: coords.RIGHT_HANDED_Y_UP,
           pb.RIGHT_HANDED_Y_UP: coords.RIGHT_HANDED_Y_UP,
           pb.UNITY_LEFT_HANDED_Y_UP: coords.UNITY_LEFT_HANDED_Y_UP}
_ORDERS = {pb.TOKEN_ORDER_RANDOM: "random", pb.TOKEN_ORDER_LEFT_TO_RIGHT: "left_to_right"}
_SOLVERS = {pb.SOLVER_EULER: "euler", pb.SOLVER_HEUN: "heun"}
_EDIT_MODES = {pb.EDIT_MODE_PREFIX: "prefix", pb.EDIT_MODE_SUFFIX: "suffix",
               pb.EDIT_MODE_INBETWEEN: "inbetween"}


def _enum(value: int, enum_name: str, field_name: str) -> int:
    enum = pb.DESCRIPTOR.enum_types_by_name[enum_name]
    if value not in enum.values_by_number:
        names = ", ".join(v.name for v in enum.values)
        raise ValidationError(field_name, f"unknown {enum_name} value {value}; expected one of {names}")
    return value


_ALLOWED_CONTROLS = {"\t", "\n", "\r"}


def check_text(text: str, field_name: str = "text") -> str:
    """Strip ``text`` and check that it is a sentence: at most MAX_TEXT_CHARS characters, no
    control characters (Unicode category Cc other than tab, newline and carriage return), and at
    least one letter (category L*) once invisible format characters (Cf: zero-width spaces, byte
    order marks, ...) are ignored. Raises ValidationError naming ``field_name``."""
    if len(text) > MAX_TEXT_CHARS:
        raise ValidationError(field_name, f"must be at most {MAX_TEXT_CHARS} characters, got {len(text)}")
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS:
            raise ValidationError(field_name, f"contains the control character U+{ord(ch):04X} at position {i}")
    stripped = text.strip()
    if not stripped:
        raise ValidationError(field_name, "must not be empty")
    if not any(unicodedata.category(ch).startswith("L") for ch in stripped):
        raise ValidationError(field_name, "must contain words (no letters found); describe the motion, "
                              "e.g. 'a person walks forward'")
    return "".join(ch for ch in stripped if unicodedata.category(ch) != "Cf").strip()


def _scale(value: float, field_name: str, maximum: float, default: float) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ValidationError(field_name, f"must be a finite number, got {value}")
    if value < 0:
        raise ValidationError(field_name, f"must not be negative, got {value:g}")
    if value > maximum:
        raise ValidationError(field_name, f"must be at most {maximum:g}, got {value:g}")
    return default if value == 0 else float(value)


def _count(value: int, field_name: str, maximum: int, default: int) -> int:
    if value > maximum:
        raise ValidationError(field_name, f"must be between 1 and {maximum} (0 = server default), got {value}")
    return default if value == 0 else int(value)


def frames_to_joints(frames, field_name: str, system: str) -> np.ndarray:
    """Proto ``Frame`` list -> project-frame joints (n, 21, 3) float32; raise on a malformed frame."""
    n = len(frames)
    out = np.empty((n, NUM_JOINTS, 3), dtype=np.float32)
    for i, fr in enumerate(frames):
        if len(fr.positions) != NUM_JOINTS * 3:
            raise ValidationError(f"{field_name}[{i}].positions",
                                  f"must hold {NUM_JOINTS} x 3 = {NUM_JOINTS * 3} floats, got {len(fr.positions)}")
        out[i] = np.asarray(fr.positions, dtype=np.float32).reshape(NUM_JOINTS, 3)
    if n:
        bad = ~np.isfinite(out).all(axis=(1, 2))
        if bad.any():
            raise ValidationError(f"{field_name}[{int(np.argmax(bad))}].positions", "contains NaN or infinite values")
        far = (np.abs(out) > MAX_COORD_M).any(axis=(1, 2))
        if far.any():
            raise ValidationError(f"{field_name}[{int(np.argmax(far))}].positions",
                                  f"has a coordinate beyond {MAX_COORD_M:g} m")
    return coords.positions_from(out, system)


def _edit(req, system: str, num_frames: int, min_frames: int) -> EditParams | None:
    if not req.HasField("edit"):
        return None
    e = req.edit
    mode = _enum(e.mode, "EditMode", "edit.mode")
    if mode == pb.EDIT_MODE_UNSPECIFIED:
        if len(e.frames):
            raise ValidationError("edit.mode", "frames were given but mode is EDIT_MODE_UNSPECIFIED")
        return None
    joints = frames_to_joints(e.frames, "edit.frames", system)
    n = joints.shape[0]
    if n == 0:
        raise ValidationError("edit.frames", f"{pb.EditMode.Name(mode)} needs at least one frame to keep")
    if n >= num_frames:
        raise ValidationError("edit.frames", f"keeps {n} frames but the motion has only {num_frames} "
                              f"(duration_s x 20 fps); leave some frames to generate")
    name = _EDIT_MODES[mode]
    if name in ("prefix", "suffix") and n < min_frames:
        raise ValidationError("edit.frames", f"keep at least {min_frames} frames (one latent token), got {n}")
    if name == "prefix":
        return EditParams("prefix", prefix=joints)
    if name == "suffix":
        return EditParams("suffix", suffix=joints)
    k = e.inbetween_prefix_frames
    if not min_frames <= k <= n - min_frames:
        raise ValidationError("edit.inbetween_prefix_frames",
                              f"must leave at least {min_frames} frames at each end: between {min_frames} "
                              f"and {n - min_frames} (frames given: {n}), got {k}")
    return EditParams("inbetween", prefix=joints[:k], suffix=joints[k:])


def _common(req, d: Defaults, prefix: str = "") -> dict:
    """The fields ``GenerateRequest`` and ``SessionOpen`` share, checked and resolved; field names
    in errors are ``prefix + name`` (``open.`` for a session)."""
    guidance = _enum(req.guidance, "Guidance", prefix + "guidance")
    solver = _enum(req.solver, "Solver", prefix + "solver")
    cleanup = _enum(req.cleanup, "Cleanup", prefix + "cleanup")
    conditioning = _enum(req.text_conditioning, "TextConditioning", prefix + "text_conditioning")
    root_motion = _enum(req.root_motion, "RootMotion", prefix + "root_motion")
    return dict(
        text=check_text(req.text, prefix + "text"), seed=int(req.seed),
        guidance={pb.GUIDANCE_ON: True, pb.GUIDANCE_OFF: False}.get(guidance, d.guidance),
        guidance_scale=_scale(req.guidance_scale, prefix + "guidance_scale", MAX_GUIDANCE_SCALE, d.guidance_scale),
        cfg_scale=_scale(req.cfg_scale, prefix + "cfg_scale", MAX_CFG_SCALE, d.cfg_scale),
        iterations=_count(req.iterations, prefix + "iterations", MAX_ITERATIONS, d.iterations),
        ode_steps=_count(req.ode_steps, prefix + "ode_steps", MAX_ODE_STEPS, d.ode_steps),
        solver=_SOLVERS.get(solver, d.solver),
        coordinates=_COORDS[_enum(req.coordinates, "CoordinateSystem", prefix + "coordinates")],
        include_rotations=bool(req.include_rotations),
        cleanup={pb.CLEANUP_ON: True, pb.CLEANUP_OFF: False}.get(cleanup, d.cleanup),
        temperature=_scale(req.temperature, prefix + "temperature", MAX_TEMPERATURE, d.temperature),
        text_conditioning={pb.TEXT_CONDITIONING_UNDERSTOOD: "understood",
                           pb.TEXT_CONDITIONING_RAW: "raw"}.get(conditioning, d.text_conditioning),
        root_motion={pb.ROOT_MOTION_IN_PLACE: "in_place"}.get(root_motion, "world"))


def _check_budget(p, d: Defaults, field_name: str) -> None:
    """Per-request compute budget: ``p.iterations x p.ode_steps x solver stages`` at most
    ``d.max_request_evals``; raises ValidationError naming ``field_name``."""
    stages = SOLVER_STAGES.get(p.solver, 1)
    evals = p.iterations * p.ode_steps * stages
    if evals > d.max_request_evals:
        raise ValidationError(field_name, f"iterations x ode_steps x solver stages = {p.iterations} x "
                              f"{p.ode_steps} x {stages} = {evals} velocity evaluations per token exceed this "
                              f"server's per-request budget of {d.max_request_evals}; lower iterations or "
                              "ode_steps, or use the Euler solver")


def validate_generate(req, defaults: Defaults | None = None) -> GenerateParams:
    """Check a ``GenerateRequest``; return resolved ``GenerateParams``. Raises ValidationError."""
    d = defaults or Defaults()
    common = _common(req, d)
    dur = req.duration_s
    max_dur = min(MAX_DURATION_S, d.max_duration_s)
    if not math.isfinite(dur) or not MIN_DURATION_S <= dur <= max_dur:
        raise ValidationError("duration_s", f"must be between {MIN_DURATION_S:g} and {max_dur:g} s, got {dur:g}")
    order = _enum(req.order, "TokenOrder", "order")
    skeleton = _enum(req.skeleton, "SkeletonMode", "skeleton")
    params = GenerateParams(duration_s=float(dur), order=_ORDERS.get(order, d.order),
                            skeleton={pb.SKELETON_MODE_RAW: "raw"}.get(skeleton, "fk"), **common)
    _check_budget(params, d, "iterations")
    params.edit = _edit(req, params.coordinates, params.num_frames, d.min_edit_frames)
    return params


def validate_top_k(top_k: int) -> int:
    """``top_k`` 0 -> 5; raise ValidationError above MAX_TOP_K."""
    if top_k > MAX_TOP_K:
        raise ValidationError("top_k", f"must be at most {MAX_TOP_K}, got {top_k}")
    return top_k or 5


def coordinate_system(value: int, field_name: str = "coordinates") -> str:
    """Proto CoordinateSystem number -> coords system name; raise ValidationError if unknown."""
    return _COORDS[_enum(value, "CoordinateSystem", field_name)]


MAX_LOOKAHEAD_S = 10.0
DEFAULT_LOOKAHEAD_S = 1.0


@dataclass
class SessionParams:
    """A validated ``SessionOpen``: the sampling settings every window uses (server defaults
    resolved), the output options, and the lookahead in seconds."""

    text: str
    seed: int
    guidance: bool
    guidance_scale: float
    cfg_scale: float
    iterations: int
    ode_steps: int
    solver: str
    coordinates: str
    include_rotations: bool
    cleanup: bool
    temperature: float
    text_conditioning: str
    lookahead_s: float
    root_motion: str = "world"


def validate_session_open(req, defaults: Defaults | None = None) -> SessionParams:
    """Check a ``SessionOpen``; return resolved ``SessionParams``. Raises ValidationError naming
    the field as ``open.<field>``."""
    d = defaults or Defaults()
    common = _common(req, d, "open.")
    look = req.lookahead_s
    if not math.isfinite(look) or look < 0 or look > MAX_LOOKAHEAD_S:
        raise ValidationError("open.lookahead_s", f"must be between 0 and {MAX_LOOKAHEAD_S:g} s (0 = server "
                              f"default {DEFAULT_LOOKAHEAD_S:g} s), got {look:g}")
    p = SessionParams(lookahead_s=float(look) if look > 0 else DEFAULT_LOOKAHEAD_S, **common)
    _check_budget(p, d, "open.iterations")
    return p
