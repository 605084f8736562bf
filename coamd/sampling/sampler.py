"""Masked autoregressive sampling with flow matching, classifier-free guidance and recognizer
guidance (paper sections 3.2-3.3), written as a state machine so a server can batch requests.

One iteration (``MaskedARSampler.step``) for a batch of states:

1. context ``h`` of every token from the masked transformer; conditional and unconditional
   (null text) passes in ONE backend call when classifier-free guidance is on (eq. 3);
2. the tokens scheduled for this iteration (cosine schedule, ``random`` or ``left_to_right``
   order) are sampled by integrating the flow ODE from noise (eq. A4-A6, Euler or Heun, fixed
   steps), with the CFG velocity ``v_u + s * (v_c - v_u)``; with recognizer guidance on, all
   still-unknown tokens are sampled so the preliminary sequence z' is complete (section 3.3);
3. recognizer guidance (eq. 6-8): ``z_new = z' + gamma * g/||g|| * M_t`` on this iteration's
   tokens only;
4. the newly final frames are decoded and returned: because the decoder is causal, the frames of
   the longest fully known token prefix never change afterwards, so they are released at once
   (each frame exactly once, in order). In ``left_to_right`` order this streams the motion token
   by token; in ``random`` order frames mostly come after the last iteration.

Randomness: each request's token order and noise come from ``numpy.random.default_rng(seed)``
in the host, so the same seed, text and settings give the same noise on any backend and the same
motion on the same backend, whatever else shares the batch.

Failures: a step is transactional per state. It works on copies of each state's mutable parts
(random generator, latents, known tokens, counters, recognizer scores, cleanup state) and
commits them only after every backend and guide call of the step has returned, so **a step that
raises leaves every state of the batch unchanged**. Stepping a state again after a failure (alone
or in another batch; a server retries each request of a failed batch alone) therefore draws the
same noise and gives the same motion as a run that never failed.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, fields, replace
from typing import Iterator

import numpy as np

from coamd.sampling.backend import Backend, Guide
from coamd.sampling.cleanup import MotionCleanup
from coamd.sampling.ode import SOLVERS, solve, time_grid
from coamd.sampling.schedules import ORDERS, cosine_schedule, token_order
from coamd.sampling.skeleton_projection import SKELETON_MODES, SkeletonProjection

from coamd.skeleton import FPS  # frames per second of every model input/output (20.0), re-exported
FRAMES_PER_TOKEN = 4
DEFAULT_WEIGHTS = {"fused": 0.25, "joint": 0.25, "bone": 0.25, "motion": 0.25}


@dataclass
class Edit:
    """Frames to keep (editing by in-painting in latent space).

    prefix (n, 21, 3) metres: the motion starts with these frames; suffix (m, 21, 3): it ends with
    these frames; both: generate the in-between. Only whole latent tokens (4 frames) inside the
    given frames are kept: they are encoded with the autoencoder and stay fixed while the masked
    transformer fills the rest (in-painting in latent space). The output returns the kept frames
    exactly as given and eases the generated frames into them at the seams
    (:func:`paste_kept_frames`): decoding alone would not keep them, because the causal decoder's
    frames of a kept token also depend on the generated tokens before it.
    """

    prefix: np.ndarray | None = None
    suffix: np.ndarray | None = None


@dataclass
class EditSpec:
    """General editing form: ``joints`` (T, 21, 3) metres, the motion's whole timeline at 20 fps
    (T = 4 * the request's tokens), and ``keep`` (T,) bool, the frames to keep (values elsewhere
    are ignored). Any pattern works (prefix, suffix, in-between, several spans); only whole tokens
    (4 aligned frames all kept) are kept in latent space."""

    joints: np.ndarray
    keep: np.ndarray


def _as_spec(edit, frames: int) -> EditSpec:
    """Edit or EditSpec -> EditSpec over ``frames`` frames (ValueError on bad shapes)."""
    if isinstance(edit, EditSpec):
        j, keep = np.asarray(edit.joints, np.float32), np.asarray(edit.keep, bool)
        if j.shape != (frames, 21, 3) or keep.shape != (frames,):
            raise ValueError(f"edit joints/keep must be ({frames}, 21, 3)/({frames},) for this duration, "
                             f"got {j.shape}/{keep.shape}")
        if not np.isfinite(j[keep]).all():
            raise ValueError("edit joints contain NaN or infinite values in kept frames")
        return EditSpec(j, keep)
    if not isinstance(edit, Edit):
        raise ValueError(f"edit must be an Edit or EditSpec, got {type(edit).__name__}")
    j = np.zeros((frames, 21, 3), np.float32)
    keep = np.zeros(frames, bool)
    for name in ("prefix", "suffix"):
        a = getattr(edit, name)
        if a is None:
            continue
        a = np.asarray(a, np.float32)
        if a.ndim != 3 or a.shape[1:] != (21, 3) or not np.isfinite(a).all():
            raise ValueError(f"edit {name} must be finite joints of shape (n, 21, 3), got {a.shape}")
        if a.shape[0] < FRAMES_PER_TOKEN:
            raise ValueError(f"edit {name} needs at least {FRAMES_PER_TOKEN} frames, got {a.shape[0]}")
        if a.shape[0] > frames:
            raise ValueError(f"edit {name} has {a.shape[0]} frames but the motion has only {frames}")
        if name == "prefix":
            j[: len(a)], keep[: len(a)] = a, True
        else:
            j[frames - len(a):], keep[frames - len(a):] = a, True
    return EditSpec(j, keep)


@dataclass
class GenerationRequest:
    """One text-to-motion request. ``validate`` raises ValueError naming a bad field.

    text: the description; duration_s: seconds (rounded to whole tokens of 0.2 s, at most
    max_tokens * 0.2 s); seed: int; cfg_scale: classifier-free guidance scale (1 = off);
    iterations: masked autoregressive iterations K; ode_steps: N fixed ODE steps per iteration;
    solver: ``euler`` or ``heun``; order: ``random`` or ``left_to_right``; guidance: recognizer
    guidance on/off; guidance_scale: gamma of eq. 8 (default 2: chosen on the free-phrasing dev
    split and the validation clips, ``benchmarks/results/guidance_scale_dev.md``); guidance_weights:
    w_k of eq. 6;
    edit: frames to keep (:class:`Edit`) or None; temperature: scale of the starting noise of the
    flow ODE (the diffusion head's temperature tau of MAR, Li et al. 2024; 1 = the learned
    distribution, < 1 trades diversity for cleaner samples), in (0, 2]; cleanup: the causal
    foot-contact cleanup of the decoded frames (:mod:`coamd.sampling.cleanup`: smoothing,
    foot-driven root motion, foot IK); False gives the model's raw output. Edits are never
    cleaned (their kept frames come back exactly as given). skeleton: ``fk`` (default) releases
    every frame as forward kinematics of local rotations on the one rest skeleton
    (:mod:`coamd.sampling.skeleton_projection`, after the cleanup; the chunks carry the
    rotations; an edit's kept frames come back as given); ``raw`` releases the positions
    unprojected (a research option).
    """

    text: str
    duration_s: float = 4.0
    seed: int = 0
    cfg_scale: float = 3.0
    iterations: int = 8
    ode_steps: int = 8
    solver: str = "euler"
    order: str = "random"
    guidance: bool = True
    guidance_scale: float = 2.0
    guidance_weights: dict | None = None
    edit: Edit | EditSpec | None = None
    temperature: float = 1.0
    cleanup: bool = True
    skeleton: str = "fk"

    def tokens(self) -> int:
        return int(round(self.duration_s * FPS / FRAMES_PER_TOKEN))

    def validate(self, max_tokens: int) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError("text is empty; describe the motion, e.g. 'a person walks forward'")
        if not isinstance(self.duration_s, (int, float)) or not np.isfinite(self.duration_s) or self.duration_s <= 0:
            raise ValueError(f"duration must be a positive number of seconds, got {self.duration_s!r}")
        max_s = max_tokens * FRAMES_PER_TOKEN / FPS
        if self.duration_s > max_s + 1e-9:
            raise ValueError(f"duration {self.duration_s:g} s is too long; the model generates at most {max_s:g} s")
        if self.tokens() < 2:
            raise ValueError(f"duration {self.duration_s:g} s is too short; at least "
                             f"{2 * FRAMES_PER_TOKEN / FPS:g} s")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not np.isfinite(self.cfg_scale) or self.cfg_scale < 0:
            raise ValueError(f"cfg_scale must be >= 0, got {self.cfg_scale!r}")
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {self.iterations!r}")
        if int(self.ode_steps) != self.ode_steps or self.ode_steps < 1:
            raise ValueError(f"ode_steps must be a positive integer, got {self.ode_steps!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown ODE solver {self.solver!r}; expected one of {SOLVERS}")
        if self.order not in ORDERS:
            raise ValueError(f"unknown token order {self.order!r}; expected one of {ORDERS}")
        if not np.isfinite(self.guidance_scale) or self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale!r}")
        if not isinstance(self.temperature, (int, float)) or not (0 < self.temperature <= 2):
            raise ValueError(f"temperature must be in (0, 2], got {self.temperature!r}")
        if not isinstance(self.cleanup, (bool, np.bool_)):
            raise ValueError(f"cleanup must be True or False, got {self.cleanup!r}")
        if self.skeleton not in SKELETON_MODES:
            raise ValueError(f"skeleton must be one of {SKELETON_MODES}, got {self.skeleton!r}")
        if self.guidance_weights is not None:
            bad = set(self.guidance_weights) - set(DEFAULT_WEIGHTS)
            if bad:
                raise ValueError(f"unknown guidance weight keys {sorted(bad)}; expected {sorted(DEFAULT_WEIGHTS)}")
        if self.edit is not None:
            T = self.tokens() * FRAMES_PER_TOKEN
            spec = _as_spec(self.edit, T)
            kept_tokens = spec.keep.reshape(-1, FRAMES_PER_TOKEN).all(1)
            if not kept_tokens.any():
                raise ValueError(f"the edit keeps no whole token ({FRAMES_PER_TOKEN} aligned frames); "
                                 "give at least 4 aligned frames to keep")
            if kept_tokens.all():
                raise ValueError(f"the edit keeps all {T} frames; nothing to generate")


@dataclass
class FrameChunk:
    """Frames that are final: ``joints`` (n, 21, 3) float32 metres at 20 fps starting at frame
    ``start``; ``done`` is True on the request's last chunk. n may be 0 (nothing new yet).
    ``rotations`` (n, 21, 4) float32 quaternions (x, y, z, w): the local rotations whose forward
    kinematics on :func:`coamd.io.bvh_export.rest_offsets` from ``joints[:, 0]`` gives ``joints``
    (requests with ``skeleton="fk"``; None for ``raw``)."""

    start: int
    joints: np.ndarray
    done: bool = False
    rotations: np.ndarray | None = None


@dataclass
class GenerationState:
    """Per-request sampling state (create with :meth:`MaskedARSampler.start`).

    A successful :meth:`MaskedARSampler.step` replaces the mutable members (``rng``, ``z``,
    ``known``, ``scores``, ``cleaner``) with updated copies instead of changing them in place, so
    read them from the state after a step rather than keeping references across steps."""

    request: GenerationRequest
    text_feat: np.ndarray            # (384,)
    z: np.ndarray                    # (L, D) generator latents (valid where known)
    known: np.ndarray                # (L,) bool
    order: np.ndarray                # unknown token indices in fill order
    schedule: list[int]              # tokens filled per iteration
    rng: np.random.Generator
    iteration: int = 0
    filled: int = 0                  # tokens of ``order`` filled so far
    released_tokens: int = 0
    scores: list[float] = field(default_factory=list)  # recognizer score S after each guided step
    kept: np.ndarray | None = None   # (T, 21, 3) given frames of an edit (NaN where generated)
    cleaner: MotionCleanup | None = None  # causal foot-contact cleanup of the released frames
    projector: SkeletonProjection | None = None  # causal skeleton projection, after the cleanup

    @property
    def length(self) -> int:
        return self.z.shape[0]

    @property
    def frames(self) -> int:
        return self.z.shape[0] * FRAMES_PER_TOKEN

    @property
    def done(self) -> bool:
        return self.released_tokens == self.length


SEAM_BEFORE = FRAMES_PER_TOKEN      # generated frames eased into a following kept span
SEAM_AFTER = 2 * FRAMES_PER_TOKEN   # generated frames eased out of a preceding kept span


def paste_kept_frames(decoded: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Editing output: the given frames where kept, decoded frames elsewhere, with the seams eased.

    decoded (n, 21, 3) decoded frames 0..n-1; kept (n, 21, 3) given frames, NaN where generated.
    At each kept span [a, b): the offset ``kept[a] - decoded[a]`` is added to the SEAM_BEFORE
    generated frames before ``a`` with weights rising to 1, and ``kept[b-1] - decoded[b-1]`` to
    the SEAM_AFTER frames after ``b`` with weights falling to 0, so the motion meets the kept
    frames without a jump. Only frames < n are used: with the causal decoder, and because the
    token before a kept span is released together with it, a frame's value never changes once
    released (streaming stays exact).
    """
    out = decoded.copy()
    n = len(decoded)
    keep = ~np.isnan(kept[:, 0, 0])
    if not keep.any():
        return out
    edges = np.flatnonzero(np.diff(np.concatenate([[False], keep, [False]]).astype(np.int8)))
    for a, b in zip(edges[::2], edges[1::2]):
        d0 = kept[a] - decoded[a]
        for f in range(max(0, a - SEAM_BEFORE), a):
            if not keep[f]:
                out[f] += d0 * (f - (a - SEAM_BEFORE - 1)) / (SEAM_BEFORE + 1)
        d1 = kept[b - 1] - decoded[b - 1]
        for f in range(b, min(n, b + SEAM_AFTER)):
            if not keep[f]:
                out[f] += d1 * (1 - (f - b + 1) / (SEAM_AFTER + 1))
    out[keep] = kept[keep]
    return out


def encoder_timeline(joints: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The timeline the (non-causal) encoder sees for an edit: kept frames as given, every other
    frame a stand-in, so the kept tokens' latents describe the kept motion as it goes on.

    joints (T, 21, 3) metres, keep (T,) bool with at least one True -> (T, 21, 3) float32.
    Between two kept spans a frame holds the nearest kept frame. Before the first and after the
    last kept span, the nearest kept pose moves on at the hips' mean horizontal velocity over
    that span's outer token (4 frames; the pose holds where that token is not wholly kept).
    Holding the pose there reads to the encoder as the body stopping, so the last kept tokens
    decode behind and slower than the kept frames (on real runs with 1 s kept, the moving
    stand-in keeps the last kept token's hips at least a fifth closer to the kept ones:
    ``tests/test_sampling.py``),
    and a session window's new tokens then catch up: in
    ``benchmarks/session_switches`` this fill cut the pulse of a run's root speed at the 0.4 s
    window period from 1.48 to 1.33 and the largest frame-to-frame step from 0.538 to 0.487 m.
    """
    j = np.asarray(joints, np.float32)
    idx = np.flatnonzero(keep)
    T = len(j)
    nearest = idx[np.abs(np.arange(T)[:, None] - idx[None]).argmin(1)]
    out = j[nearest].copy()
    for end, sign in ((idx[-1], 1), (idx[0], -1)):
        span = [end - sign * k for k in range(FRAMES_PER_TOKEN)]
        if min(span) < 0 or max(span) >= T or not keep[span].all():
            continue
        v = sign * (j[end, 0, [0, 2]] - j[span[-1], 0, [0, 2]]) / (FRAMES_PER_TOKEN - 1)  # m/frame
        free = np.arange(end + 1, T) if sign > 0 else np.arange(0, end)
        steps = (free - end).astype(np.float32)[:, None]
        out[free, :, 0] += steps * v[0]
        out[free, :, 2] += steps * v[1]
    return out


def _draft(s: GenerationState) -> GenerationState:
    """A copy of ``s`` that one step may change freely: the random generator (same bit generator
    type and state), latents, known mask, recognizer scores, cleanup and skeleton-projection
    state are copied; the request, text features, token order, schedule and kept frames, which a
    step only reads, are shared."""
    bg = s.rng.bit_generator
    rng_bg = type(bg)(0)
    rng_bg.state = bg.state
    return replace(s, z=s.z.copy(), known=s.known.copy(), rng=np.random.Generator(rng_bg),
                   scores=list(s.scores), cleaner=None if s.cleaner is None else s.cleaner.copy(),
                   projector=None if s.projector is None else s.projector.copy())


def _commit(s: GenerationState, draft: GenerationState) -> None:
    """Make ``draft`` (from :func:`_draft`, after a successful step) the state of ``s``."""
    for f in fields(GenerationState):
        setattr(s, f.name, getattr(draft, f.name))


def _prefix_known(known: np.ndarray) -> int:
    """Length of the leading run of True."""
    idx = np.flatnonzero(~known)
    return int(idx[0]) if idx.size else int(known.size)


class MaskedARSampler:
    """Masked autoregressive text-to-motion sampler over a :class:`Backend` (+ optional :class:`Guide`).

    Use ``sample(request) -> (T, 21, 3)``, ``stream(request)`` (FrameChunks as frames become
    final) or, for batching servers, ``start``/``step``. Errors for bad requests are ValueError.
    """

    def __init__(self, backend: Backend, guide: Guide | None = None, text_cache: int = 256):
        self.backend = backend
        self.guide = guide
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache
        self._pinned: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ helpers
    def pin_texts(self, texts: list[str]) -> None:
        """Encode ``texts`` now (one batched call) and keep their features for good, outside the
        LRU cache: for the sentences requests are conditioned on most (the runtime pins every
        canonical caption of its text-understanding stage, so no request pays their encoding)."""
        new = [t for t in dict.fromkeys(texts) if t not in self._pinned]
        if new:
            feats = np.asarray(self.backend.encode_text(new), dtype=np.float32)
            self._pinned.update(zip(new, feats))

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """(B, 384) features: pinned ones (:meth:`pin_texts`), else a small LRU cache (the text
        encoder is the slowest call)."""
        if all(t in self._pinned for t in texts):
            return np.stack([self._pinned[t] for t in texts])
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache and t not in self._pinned]
        if missing:
            feats = np.asarray(self.backend.encode_text(missing), dtype=np.float32)
            for t, f in zip(missing, feats):
                self._text_cache[t] = f
        out = np.stack([self._pinned[t] if t in self._pinned else self._text_cache[t] for t in texts])
        for t in texts:
            if t in self._text_cache:
                self._text_cache.move_to_end(t)
        while len(self._text_cache) > self._text_cache_size:
            self._text_cache.popitem(last=False)
        return out

    def _edit_latents(self, req: GenerationRequest, L: int) -> tuple[np.ndarray, np.ndarray]:
        """(latents (L, D), known (L,) bool) of the kept tokens of an edit."""
        encode = getattr(self.backend, "encode", None)
        if encode is None:
            raise ValueError(f"backend {self.backend.name} has no encoder; editing needs one (use the torch backend)")
        T = L * FRAMES_PER_TOKEN
        spec = _as_spec(req.edit, T)
        timeline = encoder_timeline(spec.joints, spec.keep)
        known = spec.keep.reshape(L, FRAMES_PER_TOKEN).all(1)
        z = np.zeros((L, self.backend.latent_dim), np.float32)
        z[known] = np.asarray(encode(timeline[None]), np.float32)[0][known]
        return z, known, spec

    def _edit_frames(self, spec: "EditSpec", L: int) -> np.ndarray:
        """(T, 21, 3) given frames of the whole kept tokens, NaN elsewhere."""
        keep = np.repeat(spec.keep.reshape(L, FRAMES_PER_TOKEN).all(1), FRAMES_PER_TOKEN)
        kept = np.full((L * FRAMES_PER_TOKEN, 21, 3), np.nan, np.float32)
        kept[keep] = spec.joints[keep]
        return kept

    # ------------------------------------------------------------------ state machine
    def start(self, request: GenerationRequest, text_feat: np.ndarray | None = None) -> GenerationState:
        """Validate the request and set up its state. Raises ValueError for a bad request (and
        when guidance is requested but this sampler has no guide)."""
        request.validate(self.backend.max_tokens)
        if request.guidance and request.guidance_scale > 0 and self.guide is None:
            raise ValueError("recognizer guidance requested but this sampler has no guide; "
                             "set guidance=False")
        L = request.tokens()
        if text_feat is None:
            text_feat = self.encode_text([request.text])[0]
        kept = None
        if request.edit is not None:
            z, known, spec = self._edit_latents(request, L)
            kept = self._edit_frames(spec, L)
        else:
            z, known = np.zeros((L, self.backend.latent_dim), np.float32), np.zeros(L, bool)
        rng = np.random.default_rng(int(request.seed))
        order = token_order(np.flatnonzero(~known), request.order, rng)
        cleaner = MotionCleanup() if request.cleanup and request.edit is None else None
        projector = None if request.skeleton == "raw" else SkeletonProjection(
            keep=None if kept is None else ~np.isnan(kept[:, 0, 0]))
        return GenerationState(request, np.asarray(text_feat, np.float32), z, known, order,
                               cosine_schedule(len(order), int(request.iterations)), rng, kept=kept,
                               cleaner=cleaner, projector=projector)

    def step(self, states: list[GenerationState]) -> list[FrameChunk]:
        """One masked autoregressive iteration for every state (finished states are skipped).

        Returns one :class:`FrameChunk` per state, in order: the frames that became final.
        Raises whatever a backend or guide call raises; a step that raises leaves every state of
        the batch unchanged (its random generator included), so any of them can be stepped again,
        alone or batched, and gives the motion of a run that never failed.
        """
        drafts = [s if s.done else _draft(s) for s in states]  # the step changes only these copies
        active = [d for d in drafts if not d.done and d.iteration < len(d.schedule)]
        if active:
            self._iterate(active)
        chunks = self._release(drafts)
        for s, d in zip(states, drafts):  # every call succeeded: commit
            if d is not s:
                _commit(s, d)
        return chunks

    def _iterate(self, active: list[GenerationState]) -> None:
        """One iteration for ``active`` (step's drafts), changing them in place."""
        be = self.backend
        B, D = len(active), be.latent_dim
        Lmax = max(s.length for s in active)
        z = np.zeros((B, Lmax, D), np.float32)
        mask = np.zeros((B, Lmax), bool)
        pad = np.ones((B, Lmax), bool)
        for b, s in enumerate(active):
            z[b, : s.length] = s.z
            mask[b, : s.length] = ~s.known
            pad[b, : s.length] = False
        text = np.stack([s.text_feat for s in active])
        cfg = any(s.request.cfg_scale != 1.0 for s in active)
        if cfg:  # conditional rows [:B], unconditional rows [B:], one call
            drop = np.repeat(np.array([False, True]), B)
            h = np.asarray(be.context(np.concatenate([z, z]), np.concatenate([mask, mask]),
                                      np.concatenate([pad, pad]), np.concatenate([text, text]), drop), np.float32)
        else:
            h = np.asarray(be.context(z, mask, pad, text, None), np.float32)

        # which tokens to sample: this iteration's; with guidance every unknown one (complete z')
        fills, targets, noises = [], [], []
        for b, s in enumerate(active):
            n = s.schedule[s.iteration]
            fill = np.sort(s.order[s.filled: s.filled + n])
            unknown = np.flatnonzero(~s.known)
            noise = s.rng.standard_normal((unknown.size, D)).astype(np.float32)  # one draw per unknown token
            noise *= np.float32(s.request.temperature)
            guided = s.request.guidance and s.request.guidance_scale > 0
            tgt = unknown if guided else fill
            noises.append(noise[np.searchsorted(unknown, tgt)])
            fills.append(fill)
            targets.append(tgt)

        # one ODE per (solver, steps) group; every velocity call is batched over the group
        groups: dict[tuple[str, int], list[int]] = {}
        for b, s in enumerate(active):
            groups.setdefault((s.request.solver, int(s.request.ode_steps)), []).append(b)
        results: dict[int, np.ndarray] = {}
        for (solver, steps), members in groups.items():
            rows = np.concatenate([np.full(len(targets[b]), b) for b in members])
            cols = np.concatenate([targets[b] for b in members])
            x0 = np.concatenate([noises[b] for b in members])
            hc = h[rows, cols]
            x = self._solve(x0, hc, h[rows + B, cols] if cfg else None,
                            [(len(targets[b]), active[b].request.cfg_scale) for b in members], steps, solver)
            off = 0
            for b in members:
                results[b] = x[off: off + len(targets[b])]
                off += len(targets[b])

        guided = [b for b, s in enumerate(active) if s.request.guidance and s.request.guidance_scale > 0]
        if guided:
            zg = z[guided].copy()
            fm = np.zeros((len(guided), Lmax), bool)
            for i, b in enumerate(guided):
                zg[i, targets[b]] = results[b]
                fm[i, fills[b]] = True
            gam = np.array([active[b].request.guidance_scale for b in guided], np.float32)
            w = [active[b].request.guidance_weights or DEFAULT_WEIGHTS for b in guided]
            weights = w[0] if all(x == w[0] for x in w) else None
            if weights is None:  # different weights in one batch: one call per weight set
                znew = np.empty_like(zg)
                for key in {tuple(sorted(x.items())) for x in w}:
                    sel = [i for i, x in enumerate(w) if tuple(sorted(x.items())) == key]
                    znew[sel] = self.guide.guide(zg[sel], fm[sel], text[[guided[i] for i in sel]], gam[sel],
                                                 dict(key), pad[[guided[i] for i in sel]])
            else:
                znew = self.guide.guide(zg, fm, text[guided], gam, weights, pad[guided])
            last = getattr(self.guide, "last_scores", None)
            for i, b in enumerate(guided):
                results[b] = znew[i, fills[b]]
                targets[b] = fills[b]
                if last is not None and len(last) == len(guided):
                    active[b].scores.append(float(last[i]))

        for b, s in enumerate(active):
            sel = np.searchsorted(targets[b], fills[b])
            s.z[fills[b]] = results[b][sel]
            s.known[fills[b]] = True
            s.filled += len(fills[b])
            s.iteration += 1

    def _solve(self, x0: np.ndarray, hc: np.ndarray, hu: np.ndarray | None, scales: list[tuple[int, float]],
               steps: int, solver: str) -> np.ndarray:
        """Flow ODE from noise x0 (N, D) to t = 0 with conditional context hc (N, W) and, for CFG,
        unconditional context hu (N, W): velocity ``v_u + s (v_c - v_u)`` with per-token s
        (``scales``: (count, s) runs). Each velocity evaluation is one backend call (cond and
        uncond stacked); a backend offering a fused ODE graph (``has_fused_ode``/``solve``) does
        all steps in one call when the batch shares one scale."""
        be = self.backend
        if len(x0) == 0:
            return x0
        cfg = hu is not None
        uniq = {s for _, s in scales}
        hh = np.concatenate([hc, hu]) if cfg else hc
        fused = getattr(be, "has_fused_ode", None)
        if fused is not None and len(uniq) == 1 and fused(solver, steps, cfg):
            return np.asarray(be.solve(x0, hh, time_grid(steps), next(iter(uniq)) if cfg else None, solver),
                              np.float32)
        n = len(x0)
        if cfg:
            scale = np.concatenate([np.full(c, s, np.float32) for c, s in scales])[:, None]

            def vel(x, t):
                v = np.asarray(be.velocity(np.concatenate([x, x]), np.full(2 * n, t, np.float32), hh), np.float32)
                return v[n:] + scale * (v[:n] - v[n:])
        else:
            def vel(x, t):
                return np.asarray(be.velocity(x, np.full(n, t, np.float32), hh), np.float32)
        return solve(vel, x0, steps, solver)

    def _release(self, states: list[GenerationState]) -> list[FrameChunk]:
        """Decode and release the newly final frames of ``states`` (step's drafts), in place."""
        need = [(i, s, _prefix_known(s.known)) for i, s in enumerate(states)]
        need = [(i, s, k) for i, s, k in need if k > s.released_tokens]
        chunks = [FrameChunk(s.released_tokens * FRAMES_PER_TOKEN, np.zeros((0, 21, 3), np.float32), s.done,
                             None if s.projector is None else np.zeros((0, 21, 4), np.float32))
                  for s in states]
        if not need:
            return chunks
        Lmax = max(k for _, _, k in need)
        z = np.zeros((len(need), Lmax, self.backend.latent_dim), np.float32)
        for b, (_, s, k) in enumerate(need):
            z[b, :k] = s.z[:k]  # right-padding is harmless: the decoder is causal
        joints = np.asarray(self.backend.decode(z), np.float32)
        for b, (i, s, k) in enumerate(need):
            a, e = s.released_tokens * FRAMES_PER_TOKEN, k * FRAMES_PER_TOKEN
            frames = joints[b, :e] if s.kept is None else paste_kept_frames(joints[b, :e], s.kept[:e])
            s.released_tokens = k
            new = frames[a:e] if s.cleaner is None else s.cleaner.apply(frames[a:e])
            rot = None
            if s.projector is not None:
                new, rot = s.projector.apply(new, start=a)
            chunks[i] = FrameChunk(a, np.ascontiguousarray(new, dtype=np.float32), s.done, rot)
        return chunks

    # ------------------------------------------------------------------ conveniences
    def stream(self, request: GenerationRequest) -> Iterator[FrameChunk]:
        """Yield FrameChunks (non-empty) as frames become final; frames in order, each once."""
        state = self.start(request)
        while not state.done:
            chunk = self.step([state])[0]
            if len(chunk.joints):
                yield chunk

    def sample(self, request: GenerationRequest) -> np.ndarray:
        """The whole motion: joints (T, 21, 3) float32 metres at 20 fps, T = 4 * round(5 * duration_s)."""
        return np.concatenate([c.joints for c in self.stream(request)])

    def sample_batch(self, requests: list[GenerationRequest]) -> list[np.ndarray]:
        """Several requests stepped together (batched backend calls); one (T_i, 21, 3) each."""
        feats = self.encode_text([r.text for r in requests])
        states = [self.start(r, f) for r, f in zip(requests, feats)]
        parts: list[list[np.ndarray]] = [[] for _ in states]
        while not all(s.done for s in states):
            for p, c in zip(parts, self.step(states)):
                if len(c.joints):
                    p.append(c.joints)
        return [np.concatenate(p) for p in parts]
