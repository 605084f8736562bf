"""PyTorch implementation of the sampler's :class:`~coamd.sampling.backend.Backend`.

Runs the masked transformer, the diffusion MLP, the AE decoder/encoder and the MiniLM text encoder
eagerly under ``torch.inference_mode``. On the CPU, NumPy inputs are wrapped with
``torch.from_numpy`` and outputs returned with ``Tensor.numpy()``: no copies at the boundary.
"""
from __future__ import annotations

import numpy as np
import torch


def _t(a: np.ndarray, device: torch.device, dtype=None) -> torch.Tensor:
    a = np.ascontiguousarray(a) if dtype is None else np.ascontiguousarray(a, dtype=dtype)
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a).to(device)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu").numpy()


class TorchBackend:
    """Backend on PyTorch modules.

    transformer/diffusion: the generator (``MaskedTransformer``, ``DiffusionMLP``); autoencoder:
    ``MotionAutoencoder``; text_encoder: ``TextEncoder`` (``encode(list[str]) -> (B, 384)``);
    device: torch device (``cpu`` default). ``name`` is ``torch:<device type>``.
    """

    def __init__(self, transformer, diffusion, autoencoder, text_encoder, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.transformer = transformer.to(self.device).eval()
        self.diffusion = diffusion.to(self.device).eval()
        self.autoencoder = autoencoder.to(self.device).eval()
        self.text_encoder = text_encoder
        self.name = f"torch:{self.device.type}"
        self.latent_dim = int(transformer.config.latent_dim)
        self.width = int(transformer.config.width)
        self.max_tokens = int(transformer.config.max_tokens)

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> (B, 384) float32 unit MiniLM features."""
        return _np(self.text_encoder.encode(list(texts)).float())

    @torch.inference_mode()
    def context(self, z, mask, pad, text, drop=None) -> np.ndarray:
        """See :meth:`coamd.sampling.backend.Backend.context`: h (B, L, W) float32."""
        d = self.device
        dr = None if drop is None else _t(drop, d, bool)
        return _np(self.transformer(_t(z, d, np.float32), _t(mask, d, bool), _t(text, d, np.float32),
                                    _t(pad, d, bool), dr))

    @torch.inference_mode()
    def velocity(self, x, t, h) -> np.ndarray:
        """Diffusion MLP: x (N, D), t (N,), h (N, W) -> v (N, D) float32 (v = eps - z0)."""
        d = self.device
        return _np(self.diffusion(_t(x, d, np.float32), _t(t, d, np.float32), _t(h, d, np.float32)))

    @torch.inference_mode()
    def decode(self, z) -> np.ndarray:
        """Generator latents (B, L, D) -> joints (B, 4L, 21, 3) float32 metres at 20 fps."""
        return _np(self.autoencoder.decode(self.transformer.to_ae(_t(z, self.device, np.float32))))

    @torch.inference_mode()
    def encode(self, joints) -> np.ndarray:
        """Joints (B, T, 21, 3) metres, T % 4 == 0 -> generator latents (B, T/4, D) float32."""
        return _np(self.transformer.from_ae(self.autoencoder.encode(_t(joints, self.device, np.float32))))
