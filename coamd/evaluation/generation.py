"""Generating the motions the report scores, through the project's sampler (batched state machine).

:class:`GenerationRunner` wraps ``coamd.runtime.load_engine(...).sampler`` (a
``MaskedARSampler``): it starts one ``GenerationState`` per request and calls ``step`` on all of
them together until every state is finished, so a whole evaluation batch shares each backend call.
Wall time per batch is measured with ``time.perf_counter``.
"""
from __future__ import annotations

import time

import numpy as np


class GeneratorUnavailable(RuntimeError):
    """The generator (sampler, engine or checkpoint) is not available; the message says why."""


class GenerationRunner:
    """Generate motions for lists of texts with one set of sampler settings.

    ``backend``: the runtime backend (``"torch"`` by default: the evaluation needs the PyTorch
    guidance sidecar anyway). Raises :class:`GeneratorUnavailable` when the runtime or the
    checkpoint is missing.
    """

    def __init__(self, backend: str = "torch", checkpoint: str | None = None, batch_size: int = 32):
        try:
            from coamd.runtime import load_engine
            from coamd.sampling.sampler import GenerationRequest, MaskedARSampler  # noqa: F401
        except ImportError as exc:
            raise GeneratorUnavailable(f"sampler/runtime not importable: {exc}") from exc
        try:
            self.engine = load_engine(backend=backend, checkpoint=checkpoint)
        except Exception as exc:  # noqa: BLE001 - a partial checkpoint folder fails in many ways; report it
            raise GeneratorUnavailable(f"could not load the engine ({backend}): {exc}") from exc
        self.sampler = self.engine.sampler
        self.backend_name = getattr(self.engine, "backend_name", backend)
        self.batch_size = batch_size

    def request(self, text: str, duration_s: float, seed: int, **settings):
        """A GenerationRequest; the report scores the model's raw output (``cleanup=False``,
        ``skeleton="raw"``: the paper's protocol) unless ``settings`` say otherwise."""
        from coamd.sampling.sampler import GenerationRequest

        return GenerationRequest(text=text, duration_s=duration_s, seed=seed,
                                 **{"cleanup": False, "skeleton": "raw", **settings})

    def run(self, requests: list, sampler=None) -> tuple[list[np.ndarray], float]:
        """Generate every request, ``batch_size`` at a time, each batch stepped together
        (``MaskedARSampler.start``/``step``: one batched backend call per stage). Returns
        (motions (T_i, 21, 3) float32 metres at 20 fps, wall seconds). The finished
        ``GenerationState`` objects are kept in ``last_states`` (same order)."""
        sampler = sampler or self.sampler
        motions: list[np.ndarray] = []
        self.last_states = []
        t0 = time.perf_counter()
        for s in range(0, len(requests), self.batch_size):
            chunk = requests[s:s + self.batch_size]
            feats = sampler.encode_text([r.text for r in chunk])
            states = [sampler.start(r, f) for r, f in zip(chunk, feats)]
            frames: list[list] = [[] for _ in chunk]
            while not all(st.done for st in states):
                for f, fc in zip(frames, sampler.step(states)):
                    if len(fc.joints):
                        f.append(np.asarray(fc.joints, np.float32))
            motions += [np.concatenate(f) if f else np.zeros((0, 21, 3), np.float32) for f in frames]
            self.last_states += states
        return motions, time.perf_counter() - t0
