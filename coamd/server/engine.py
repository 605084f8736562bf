"""The server's view of the runtime: ``coamd.runtime.load_engine`` wrapped for the scheduler.

``ServerEngine`` adapts the runtime engine (``.sampler``, ``.backend_name``, ``.recognize``,
``.retrieve``) to what ``Scheduler`` and ``MotionService`` call:

- ``step_model``: ``start(GenerateParams) -> state``, ``step(states) -> chunks per state``,
  ``done(state)``, ``guided(state)``, ``disable_guidance(state)``, on top of
  ``MaskedARSampler.start/step`` (``coamd/sampling/sampler.py``).
- the recognizer guidance sidecar is wrapped so that any exception it raises surfaces as
  ``GuidanceFailed`` (the scheduler then completes that request unguided).
- ``rotation_stream()``: a causal per-stream rotation solver for raw-mode frames (FK-mode frames carry
  the skeleton projection's rotations).

Torch: a server on ONNX Runtime without the guidance sidecar (``coamd serve --no-guidance``, graphs
already exported) generates without importing torch. Recognize and Retrieve use the PyTorch action
recognizer: their first call loads it (torch + the checkpoint, 1-2 s once), later calls reuse it.

With ``fault_injection`` (tests only) a request whose text contains ``[fail-model]`` makes the
model step raise, and ``[fail-guidance]`` makes the guidance of that request raise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coamd.server.scheduler import GuidanceFailed
from coamd.server.validation import GenerateParams

FAIL_MODEL = "[fail-model]"
FAIL_GUIDANCE = "[fail-guidance]"
NO_SIDECAR_NOTE = "this server runs without the recognizer-guidance sidecar (coamd serve --no-guidance)"


class _GuideGuard:
    """Wraps the sampler's ``Guide``: any exception becomes GuidanceFailed."""

    def __init__(self, guide):
        self._guide = guide

    def __getattr__(self, name):
        return getattr(self._guide, name)

    def guide(self, *args, **kwargs):
        try:
            return self._guide.guide(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the sidecar may fail in any way
            raise GuidanceFailed(f"{type(exc).__name__}: {exc}") from exc


@dataclass(eq=False)
class ServedRequest:
    """The scheduler's state of one request: the sampler's ``GenerationState`` plus what the
    server knows of the request (its text, how it was understood, what the generator follows)."""

    state: Any
    text: str
    interpretation: Any = None        # coamd.models.understanding.Interpretation or None
    conditioned_text: str = ""


class SamplerStepModel:
    """``StepModel`` for the scheduler on top of ``MaskedARSampler``.

    ``understand(text, text_conditioning) -> (interpretation, conditioned_text)``: the runtime
    engine's text-understanding stage (:meth:`coamd.runtime.engine.Engine.understand`), run when a
    request starts (on the worker thread, which owns the sampler's text encoder); None = the text
    is generated from as given.
    """

    def __init__(self, sampler, fault_injection: bool = False, understand=None):
        self.sampler = sampler
        self.fault_injection = fault_injection
        self.understand = understand
        if getattr(sampler, "guide", None) is not None:
            sampler.guide = _GuideGuard(sampler.guide)

    def to_request(self, p: GenerateParams):
        """GenerateParams -> ``GenerationRequest``; guidance is off when the sampler has no guide
        (a server started with ``--no-guidance``)."""
        from coamd.sampling.sampler import GenerationRequest

        kw = request_kwargs(p)
        if getattr(self.sampler, "guide", None) is None:
            kw["guidance"] = False
        return GenerationRequest(**kw)

    def start(self, params) -> ServedRequest:
        """Start a request: ``GenerateParams``, or anything with ``prepared_request() ->
        GenerationRequest`` plus ``text`` and ``text_conditioning`` (a session window)."""
        interpretation, conditioned = None, params.text
        if self.understand is not None:
            interpretation, conditioned = self.understand(params.text, params.text_conditioning)
        if hasattr(params, "prepared_request"):
            req = params.prepared_request()
            if getattr(self.sampler, "guide", None) is None:
                req.guidance = False
        else:
            req = self.to_request(params)
        req.text = conditioned
        return ServedRequest(self.sampler.start(req), params.text, interpretation, conditioned)

    def steps_needed(self, params: GenerateParams) -> int:
        """Worker steps a request takes (its masked-AR iterations), for the scheduler's wait estimate."""
        return int(params.iterations)

    def _inject(self, served) -> None:
        for s in served:
            if FAIL_MODEL in s.text:
                raise RuntimeError("injected model failure")
            if FAIL_GUIDANCE in s.text and self.guided(s):
                raise GuidanceFailed("injected guidance failure")

    def step(self, served: list) -> list:
        if self.fault_injection:
            self._inject(served)
        out = self.sampler.step([s.state for s in served])
        chunks = []
        for c in out:
            if c is None:
                chunks.append([])
            elif isinstance(c, (list, tuple)):
                chunks.append([x for x in c if x is not None])
            else:
                chunks.append([c])
        return chunks

    def done(self, served: ServedRequest) -> bool:
        return bool(served.state.done)

    def guided(self, served: ServedRequest) -> bool:
        return bool(served.state.request.guidance)

    def disable_guidance(self, served: ServedRequest) -> None:
        served.state.request.guidance = False


def request_kwargs(p: GenerateParams) -> dict:
    """GenerateParams -> keyword arguments of ``coamd.sampling.sampler.GenerationRequest``."""
    kw = dict(text=p.text, duration_s=p.duration_s, seed=p.seed, cfg_scale=p.cfg_scale,
              iterations=p.iterations, ode_steps=p.ode_steps, solver=p.solver, order=p.order,
              guidance=p.guidance, guidance_scale=p.guidance_scale, cleanup=p.cleanup,
              temperature=p.temperature, skeleton=getattr(p, "skeleton", "fk"))
    if p.edit is not None:
        kw["edit"] = make_edit(p.edit)
    return kw


def make_edit(e):
    """EditParams -> ``coamd.sampling.sampler.Edit`` (prefix/suffix frames, project frame)."""
    from coamd.sampling.sampler import Edit

    return Edit(prefix=e.prefix, suffix=e.suffix)


class ServerEngine:
    """What ``MotionService`` needs, around a runtime engine from ``coamd.runtime.load_engine``."""

    def __init__(self, runtime_engine, fault_injection: bool = False):
        self.runtime = runtime_engine
        self.backend_name = runtime_engine.backend_name
        self.step_model = SamplerStepModel(runtime_engine.sampler, fault_injection,
                                           understand=getattr(runtime_engine, "understand", None))
        self._frames: dict | None = None
        self._vocabulary: dict | None = None

    def describe(self, served: ServedRequest) -> dict:
        """Facts about a finished request for the summary (iterations really run, whether guidance
        and the foot-contact cleanup ran, how the text was understood)."""
        state = served.state
        req = state.request
        out = {"iterations": len(state.schedule),
               "guidance_applied": bool(req.guidance and req.guidance_scale > 0 and self.runtime.guide is not None),
               "cleanup_applied": state.cleaner is not None,
               "skeleton_applied": getattr(state, "projector", None) is not None,
               "interpretation": served.interpretation, "conditioned_text": served.conditioned_text}
        if self.runtime.guide is None:
            out["guidance_note"] = NO_SIDECAR_NOTE
        return out

    def capabilities(self) -> dict:
        """The checkpoint's vocabulary (``coamd.data.vocabulary``: actions and styles with
        descriptions, training-clip counts and sides). Raises FileNotFoundError when the checkpoint
        folder has no ``vocabulary.json``."""
        if self._vocabulary is None:
            from coamd.data.vocabulary import load_vocabulary
            from coamd.paths import DEFAULT_CHECKPOINT

            self._vocabulary = load_vocabulary(getattr(self.runtime.bundle, "checkpoint", None) or DEFAULT_CHECKPOINT)
        return self._vocabulary

    def recognize(self, joints: np.ndarray, top_k: int):
        """joints (T, 21, 3) project frame -> ([(content, cosine)], [(style, cosine)]), best first."""
        res = self.runtime.recognize(joints, top_k)
        return ([(str(m.label), float(m.score)) for m in res["content"]],
                [(str(m.label), float(m.score)) for m in res["style"]])

    def retrieve(self, text: str, top_k: int) -> list[dict]:
        """Held-out clips closest to ``text``: dicts clip_id, caption, similarity (cosine), frames."""
        hits = self.runtime.retrieve(text, top_k)
        frames = self._clip_frames()
        return [dict(clip_id=str(m.label), caption=str(m.caption or ""), similarity=float(m.score),
                     frames=int(frames.get(str(m.label), 0))) for m in hits]

    def _clip_frames(self) -> dict:
        if self._frames is None:
            frames = {}
            try:
                from coamd.data.dataset import MotionDataset

                ds = MotionDataset(self.runtime.dataset)
                frames = {c.id: int(c.joints.shape[0]) for c in ds.split("test")}
            except Exception:  # noqa: BLE001 - frames are informative only (0 = unknown)
                pass
            self._frames = frames
        return self._frames

    def defaults(self):
        """Server defaults: the sampler's ``GenerationRequest`` defaults (guidance only where the
        guidance sidecar is loaded), left-to-right order (streams), and the longest duration the
        model accepts."""
        import dataclasses

        from coamd.sampling.sampler import FPS as SFPS, FRAMES_PER_TOKEN, GenerationRequest
        from coamd.server.validation import Defaults

        f = {x.name: x.default for x in dataclasses.fields(GenerationRequest)}
        max_s = self.runtime.backend.max_tokens * FRAMES_PER_TOKEN / SFPS
        return Defaults(guidance=self.runtime.guide is not None, guidance_scale=f["guidance_scale"], cfg_scale=f["cfg_scale"],
                        iterations=f["iterations"], ode_steps=f["ode_steps"], order="left_to_right",
                        solver=f["solver"], cleanup=f["cleanup"], temperature=f["temperature"],
                        max_duration_s=max_s, min_edit_frames=FRAMES_PER_TOKEN)

    def rest_offsets(self) -> np.ndarray:
        """(21, 3) parent-relative rest offsets in metres, project frame: the runtime's one skeleton
        (``coamd.io.bvh_export.rest_offsets``): every frame in FK mode is forward kinematics of
        the streamed rotations on these offsets."""
        from coamd.io.bvh_export import rest_offsets

        return np.asarray(rest_offsets(), dtype=np.float32)

    def rotation_stream(self):
        """A causal joints -> local rotations converter for one raw-mode stream
        (``coamd.io.bvh_export.RotationStream``: ``push(joints (n, 21, 3)) -> (n, 21, 4)``)."""
        from coamd.io.bvh_export import RotationStream

        return RotationStream()


def load_server_engine(backend: str = "onnxruntime", checkpoint: str | None = None,
                       fault_injection: bool = False, threads: int | None = None, *, guidance: bool = True,
                       torch_threads: int | None = None) -> ServerEngine:
    """Load the runtime (``coamd.runtime.load_engine``) and wrap it for the server.

    ``threads``: intra-op threads of the backend (ONNX Runtime sessions). ``guidance``: load the
    PyTorch recognizer-guidance sidecar; without it every request runs unguided. ``torch_threads``:
    torch's intra-op threads, set if the engine imports torch (torch backend, sidecar, the first
    Recognize/Retrieve, an export on a cache miss). With ``backend="onnxruntime"``,
    ``guidance=False`` and the checkpoint's graphs in the export cache, loading imports no torch;
    Recognize and Retrieve then load the PyTorch recognizer on their first call (1-2 s once).
    Raises FileNotFoundError when the checkpoint folder lacks a model file.
    """
    from pathlib import Path

    from coamd.paths import DEFAULT_CHECKPOINT
    from coamd.runtime import load_engine

    root = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    missing = [f for f in ("autoencoder.pt", "recognizer.pt", "generator.pt") if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"checkpoint folder {root} lacks {', '.join(missing)}; the server needs the "
                                "autoencoder, the action recognizer and the generator (`coamd train ...`), "
                                "or pass --checkpoint DIR")
    opts = {"threads": threads} if threads and backend != "torch" else {}
    return ServerEngine(load_engine(backend=backend, checkpoint=checkpoint, guidance=guidance,
                                    torch_threads=torch_threads, **opts),
                        fault_injection=fault_injection)
