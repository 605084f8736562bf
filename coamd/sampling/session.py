"""Endless motion sessions: one continuous motion made of prefix-conditioned windows whose text
can change at any time (the editing machinery of :mod:`coamd.sampling.sampler`, reused).

A session never regenerates what it has sent. Each window is an ordinary generation request with
an :class:`~coamd.sampling.sampler.Edit` prefix: the last ``prefix_frames`` raw frames the session
produced, moved to the canonical start (hips above the origin, facing +Z, as every training clip
and every fresh request starts), followed by ``window_frames`` new frames for the current text.
The masked transformer in-paints the new tokens after the kept ones, so a switch of text is a
transition the model makes itself, conditioned on the motion so far (as DART and NVIDIA's ARDY
continue from history frames), not a cross-fade. The new frames go back to the world frame with
the inverse of the prefix's transform, so the raw motion is continuous across windows.

The runtime's causal post-processing runs over the session's whole raw stream, not per window:
one :class:`~coamd.sampling.cleanup.MotionCleanup` (foot-contact cleanup) and one
:class:`~coamd.sampling.skeleton_projection.SkeletonProjection` (one fixed skeleton, rotations
whose forward kinematics are the positions) carry their state from window to window. Window
requests therefore ask the sampler for raw frames (``cleanup=False``, ``skeleton="raw"``).

Backend-agnostic and synchronous: :meth:`MotionSession.window_request` builds the next window's
request, :meth:`MotionSession.accept` turns that window's released chunks into session frames.
The server (``coamd.server.session``) decides when to run windows (pacing) and streams them.
Frames: (n, 21, 3) float32 metres at 20 fps, right-handed Y up; indices count from 0 over the
whole session, each exactly once and in order.
"""
from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass

import numpy as np

from coamd.data.process import facing_angle, rotate_y
from coamd.sampling.cleanup import MotionCleanup
from coamd.sampling.sampler import FRAMES_PER_TOKEN, Edit, GenerationRequest

SEED_STRIDE = 1_000_003   # window w of a session with seed s uses seed s + w * SEED_STRIDE (mod 2**63)


@dataclass
class SessionConfig:
    """Window sizes in frames at 20 fps, multiples of 4 (one latent token).

    ``first_frames``: the first window (no history): 2 s, a motion the model generates as usual.
    ``prefix_frames``: history kept at the start of the first window of a new text (the model's
    context for the transition). ``window_frames``: new frames each later window plans (the
    horizon); ``commit_frames``: how many of them it commits to the session, the pacing's refill
    step (None = all). ``history_frames`` (None = ``prefix_frames``): while the text stays the
    same, a window continues from every frame since that text began (and the ``prefix_frames``
    before it), up to this many, so the model sees the action it is making from its start, as a
    fresh request would; a new text starts again from ``prefix_frames``.

    How the defaults were chosen (``benchmarks/results/sessions_notes.md``):

    * horizon 1.4 s and history 3 s: the motion after a switch is recognised as the new action
      more often than with windows committed whole (39 %) or the prefix alone as history (36.5 %),
      measured through the server with earlier generators; a 3 s history makes a window 22
      tokens instead of 10;
    * commit 0.4 s (against 0.6 s): seam jitter / skate speed / skating contact share 1.49 / 1.21 /
      1.19x of inside segments against 1.35 / 1.42 / 1.60x (186 switches through the server),
      at the price of 1.5x as many windows per second of motion;
    * prefix 0.4 s (against 0.6 s): recognised after a switch 54.0 % against 45.6 % (1,370
      switches each; fresh motions' first 2 s 50.5 %), seams 1.24 / 1.14 / 1.33x against
      1.35 / 1.24 / 1.44x (``python -m benchmarks.session_switches --prefix S``, seed 0; chosen
      on seed 1: 53.4 against 44.5 %; 0.2 s gave 51.7 %, 0.8 s 42.0 %). The old motion's last
      0.4 s carry its position, velocity and phase into the transition; more of it holds the
      new window to the old action.
    """

    first_frames: int = 40
    prefix_frames: int = 8
    window_frames: int = 28
    commit_frames: int | None = 8
    history_frames: int | None = 60

    @classmethod
    def from_seconds(cls, horizon_s: float | None = None, commit_s: float | None = None,
                     history_s: float | None = None, prefix_s: float | None = None) -> "SessionConfig":
        """The default sizes with those given in seconds replaced, each rounded to whole latent
        tokens (0.2 s, at least one); the horizon is raised to the commit and the history to the
        prefix when shorter. Raises ValueError for sizes :meth:`validate` rejects."""
        def frames(seconds: float | None, default: int) -> int:
            return default if seconds is None else FRAMES_PER_TOKEN * max(1, int(round(seconds * 20 / FRAMES_PER_TOKEN)))

        base = cls()
        commit = frames(commit_s, base.commit)
        prefix = frames(prefix_s, base.prefix_frames)
        out = dataclasses.replace(base, commit_frames=commit, prefix_frames=prefix,
                                  window_frames=max(frames(horizon_s, base.window_frames), commit),
                                  history_frames=max(prefix, frames(history_s, base.history)))
        out.validate()
        return out

    @property
    def commit(self) -> int:
        """New frames a later window commits to the session (``commit_frames``, default all of
        ``window_frames``); the rest of the window is the model's planning horizon, discarded."""
        return self.window_frames if self.commit_frames is None else self.commit_frames

    @property
    def history(self) -> int:
        """Longest prefix a window of an unchanged text keeps (``history_frames``, default
        ``prefix_frames``)."""
        return self.prefix_frames if self.history_frames is None else self.history_frames

    def validate(self) -> None:
        for name in ("first_frames", "prefix_frames", "window_frames", "history"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < FRAMES_PER_TOKEN or v % FRAMES_PER_TOKEN:
                raise ValueError(f"{name} must be a positive multiple of {FRAMES_PER_TOKEN} frames, got {v!r}")
        if not isinstance(self.commit, int) or not 1 <= self.commit <= self.window_frames:
            raise ValueError(f"commit_frames must be between 1 and window_frames ({self.window_frames}), "
                             f"got {self.commit_frames!r}")
        if self.history < self.prefix_frames:
            raise ValueError(f"history_frames must be at least prefix_frames ({self.prefix_frames}), "
                             f"got {self.history_frames!r}")


@dataclass
class Window:
    """One window in flight: its request, where its new frames start in the window (``skip``)
    and in the session (``first_index``), and the prefix's transform (hips xz ``origin``, facing
    ``angle`` radians) that maps the window's canonical frame back to the world."""

    request: GenerationRequest
    text: str
    skip: int
    first_index: int
    origin: np.ndarray
    angle: float
    emitted: int = 0          # new frames of this window accepted so far
    limit: int | None = None  # most new frames this window commits (None: all)

    @property
    def complete(self) -> bool:
        """The window has committed all the frames it may (the rest is horizon: stop it)."""
        return self.limit is not None and self.emitted >= self.limit


@dataclass
class SessionFrames:
    """Frames ready to send: ``joints`` (n, 21, 3) float32 metres starting at session frame
    ``start``; ``rotations`` (n, 21, 4) unit quaternions (x, y, z, w) on the skeleton's rest
    offsets when the session projects onto the skeleton, else None."""

    start: int
    joints: np.ndarray
    rotations: np.ndarray | None = None


class MotionSession:
    """One endless motion.

    Args:
        base: a :class:`GenerationRequest` whose settings every window uses (seed, guidance, cfg,
            iterations, ODE steps, solver, temperature; ``cleanup`` and ``skeleton`` choose the
            session's post-processing). Its text, duration, order and edit are ignored.
        config: window sizes (:class:`SessionConfig`).
    Raises:
        ValueError: bad window sizes or settings.
    """

    def __init__(self, base: GenerationRequest, config: SessionConfig | None = None):
        self.config = config or SessionConfig()
        self.config.validate()
        self.base = base
        self.cleaner = MotionCleanup() if base.cleanup else None
        self.projector = None
        if base.skeleton == "fk":
            from coamd.sampling.skeleton_projection import SkeletonProjection

            self.projector = SkeletonProjection()
        self.emitted = 0                     # session frames produced so far
        self.windows = 0                     # windows started so far
        self._raw: collections.deque = collections.deque(maxlen=self.config.history)
        self._segment: tuple[str, int] | None = None  # the current text and its first session frame

    def window_request(self, text: str) -> Window:
        """The next window for ``text``: from the canonical start for the first one, else
        continuing the last ``prefix_frames`` raw frames. Raises ValueError for empty text."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text is empty")
        c = self.config
        seed = (int(self.base.seed) + self.windows * SEED_STRIDE) % (2 ** 63)
        common = dict(text=text, seed=seed, order="left_to_right", cleanup=False, skeleton="raw")
        if self._segment is None or self._segment[0] != text:
            self._segment = (text, self.emitted)
        if len(self._raw) < c.prefix_frames:      # the first window (or a session too young to continue)
            req = dataclasses.replace(self.base, duration_s=c.first_frames / 20.0, edit=None, **common)
            w = Window(req, text, skip=0, first_index=self.emitted, origin=np.zeros(2, np.float32), angle=0.0)
        else:
            # the frames since this text began (and prefix_frames before), at most history frames
            keep = min(len(self._raw), c.history, c.prefix_frames + self.emitted - self._segment[1])
            keep = max(c.prefix_frames, keep // FRAMES_PER_TOKEN * FRAMES_PER_TOKEN)
            prefix = np.stack(list(self._raw)[-keep:]).astype(np.float32)
            origin = prefix[0, 0, [0, 2]].copy()
            moved = prefix.copy()
            moved[..., 0] -= origin[0]
            moved[..., 2] -= origin[1]
            angle = float(facing_angle(moved[:1])[0])
            canon = rotate_y(moved, -angle).astype(np.float32)
            req = dataclasses.replace(self.base, duration_s=(keep + c.window_frames) / 20.0,
                                      edit=Edit(prefix=canon), **common)
            w = Window(req, text, skip=keep, first_index=self.emitted, origin=origin, angle=angle,
                       limit=c.commit)
        self.windows += 1
        return w

    def accept(self, window: Window, start: int, joints: np.ndarray) -> SessionFrames | None:
        """Turn a chunk the sampler released for ``window`` (window frames ``start`` ..) into the
        session's next frames: drops the kept prefix, maps back to the world, appends the raw
        frames to the history, runs the session's cleanup and skeleton projection. Returns None
        when the chunk holds no new frame. Raises ValueError for a chunk out of order or when the
        window is not the latest one (its frames would not follow the session's)."""
        if window.first_index + window.emitted != self.emitted:
            raise ValueError("chunk of a window that is not the session's latest; start a new window instead")
        if window.complete:           # horizon frames past the commit: never part of the session
            return None
        j = np.asarray(joints, np.float32)
        expected = window.skip + window.emitted
        lo = max(expected - start, 0)
        if start > expected:
            raise ValueError(f"window frames must come in order: expected frame {expected}, got {start}")
        new = j[lo:]
        if window.limit is not None:
            new = new[: max(0, window.limit - window.emitted)]
        if not len(new):
            return None
        world = rotate_y(new, window.angle).astype(np.float32)
        world[..., 0] += window.origin[0]
        world[..., 2] += window.origin[1]
        self._raw.extend(world)
        out, rot = world, None
        if self.cleaner is not None:
            out = self.cleaner.apply(out)
        if self.projector is not None:
            out, rot = self.projector.apply(out)
        frames = SessionFrames(self.emitted, np.asarray(out, np.float32), rot)
        window.emitted += len(new)
        self.emitted += len(new)
        return frames
