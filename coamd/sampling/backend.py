"""The interfaces between the sampler and whatever runs the networks.

The sampler (:mod:`coamd.sampling.sampler`) is backend-agnostic: it only calls a :class:`Backend`
on NumPy float32 arrays, so PyTorch, ONNX Runtime and TensorRT implementations plug in unchanged,
and optionally a :class:`Guide` (the recognizer guidance of paper eq. 6-8, which needs gradients
and therefore runs in PyTorch).

Latent convention: every ``z`` here is the generator's latent space, i.e. autoencoder tokens
standardised by the statistics saved with the generator (``MaskedTransformer.latent_mean/std``).
A backend's ``decode``/``encode`` apply that affine map on their side of the boundary.
Frames: 20 fps, 4 frames per latent token, joints in metres (21 joints, DESIGN.md section 4).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Backend(Protocol):
    """What the sampler needs from an inference backend. All arrays are NumPy float32 (bool masks).

    Attributes:
        name: what really runs, e.g. ``"torch:cpu"`` or ``"onnxruntime:CPUExecutionProvider"``.
        latent_dim: D of the latent tokens.
        max_tokens: longest sequence the transformer accepts (4 frames per token).
    """

    name: str
    latent_dim: int
    max_tokens: int

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """(B,) strings -> (B, 384) L2-normalised MiniLM features."""
        ...

    def context(self, z: np.ndarray, mask: np.ndarray, pad: np.ndarray, text: np.ndarray,
                drop: np.ndarray | None = None) -> np.ndarray:
        """Masked-transformer context (paper eq. 3), one call.

        z (B, L, D) latents (ignored where ``mask``), mask (B, L) bool True = unknown, pad (B, L)
        bool True = padding, text (B, 384), drop (B,) bool True = use the learned null text (the
        unconditional rows of classifier-free guidance; None = all conditional). For CFG the
        sampler stacks the conditional and unconditional copies of the batch into one call.
        Returns h (B, L, W).
        """
        ...

    def velocity(self, x: np.ndarray, t: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Diffusion MLP: x (N, D) at flow time t (N,) in [0, 1] (1 = noise), context h (N, W)
        -> velocity (N, D) = d x_t / d t = eps - z0 (paper eq. A2)."""
        ...

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Latents (B, L, D) -> joints (B, 4L, 21, 3) metres. Causal: frames of token i depend only
        on tokens <= i, so right-padding and later tokens never change earlier frames."""
        ...

    def encode(self, joints: np.ndarray) -> np.ndarray:
        """Joints (B, T, 21, 3) metres, T % 4 == 0 -> latents (B, T/4, D). Only editing requests
        need it; a backend without ``encode`` serves every other request."""
        ...


@runtime_checkable
class Guide(Protocol):
    """Recognizer guidance (paper eq. 6-8) applied once per autoregressive iteration."""

    def guide(self, z: np.ndarray, fill: np.ndarray, text_feats: np.ndarray, gamma: float | np.ndarray,
              weights: dict[str, float] | None = None, pad: np.ndarray | None = None) -> np.ndarray:
        """z (B, L, D) the complete preliminary latents z'; fill (B, L) bool, the tokens filled in
        this iteration (M_t); text_feats (B, 384); gamma scalar or (B,) step sizes; weights w_k for
        k in {fused, joint, bone, motion}; pad (B, L) bool True = padding.
        Returns z_new (B, L, D) = z' + gamma * g / (||g||_2 + eps) * M_t (eq. 8)."""
        ...
