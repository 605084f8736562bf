"""Backend-agnostic masked autoregressive sampling (paper sections 3.2-3.3).

``MaskedARSampler`` (state machine: ``start``/``step``, plus ``stream``/``sample``),
``GenerationRequest``, ``Edit``, ``FrameChunk``; the ``Backend``/``Guide`` protocols; schedules and
fixed-step ODE solvers. The PyTorch recognizer guidance is ``coamd.sampling.guidance.TorchGuide``.
"""
from coamd.sampling.backend import Backend, Guide
from coamd.sampling.sampler import Edit, EditSpec, FrameChunk, GenerationRequest, GenerationState, MaskedARSampler

__all__ = ["Backend", "Guide", "MaskedARSampler", "GenerationRequest", "GenerationState", "Edit", "EditSpec", "FrameChunk"]
