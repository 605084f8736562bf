"""The generator of CoAMD: a masked transformer over latent tokens and a flow-matching diffusion MLP.

Paper section 3.2 (eq. 3-5) and appendix A.1; structure after the masked autoregressive model with
a per-token diffusion head (the transformer and its diffusion head are separate modules, sizes come
from presets).

Latent space
    The generator works on *standardised* autoencoder latents ``z = (z_ae - latent_mean) /
    latent_std`` (per channel statistics of the training split, stored as buffers of
    :class:`MaskedTransformer`), so that the Gaussian prior of the flow matches their scale. Every
    ``z`` below is in this space; :meth:`MaskedTransformer.to_ae` / :meth:`from_ae` convert.

Velocity sign convention (the paper's eq. 5 and eq. A3 disagree on the sign; we follow appendix
A.1, eq. A1-A6, which is the one its sampler uses)
    path    ``x_t = (1 - t) * z0 + t * eps``,  t in [0, 1], t = 0 data, t = 1 noise   (eq. 4 / A1)
    target  ``v = dx_t/dt = eps - z0``                                                (eq. A2 / A3)
    sample  integrate from t = 1 to t = 0: ``x <- x - dt * v_theta(x, t, h)``          (eq. A6)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

TEXT_DIM = 384  # all-MiniLM-L6-v2 sentence features (DESIGN.md section 4)


# ----------------------------------------------------------------------------- configs
@dataclass
class GeneratorConfig:
    """Sizes of the masked transformer and the diffusion MLP (saved with the weights).

    latent_dim: D of the autoencoder tokens; width: W of the transformer (and of ``h``);
    depth/heads: transformer layers and attention heads; max_tokens: longest sequence (positional
    table; 60 tokens = 12 s at 20 fps with 4 frames per token); mlp_width/mlp_depth: the diffusion
    MLP's residual blocks; dropout: attention/MLP dropout in training.
    """

    latent_dim: int = 16
    width: int = 256
    depth: int = 4
    heads: int = 4
    max_tokens: int = 60
    mlp_width: int = 256
    mlp_depth: int = 3
    dropout: float = 0.1
    text_dim: int = TEXT_DIM

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        """Build from a dict, rejecting unknown keys (ValueError names them)."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown generator config keys {bad}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


# Size presets. ``small`` trains on a 2-core CPU in about half an hour; ``paper`` has the paper's
# widths (appendix B: 6-layer transformer of width 1024) and needs a GPU.
GENERATOR_PRESETS: dict[str, dict] = {
    "small": dict(width=128, depth=4, heads=4, mlp_width=192, mlp_depth=3, dropout=0.1),
    "paper": dict(width=1024, depth=6, heads=16, mlp_width=1024, mlp_depth=6, dropout=0.1),
}


def generator_preset(preset: str) -> dict:
    """Config overrides of ``preset`` (from the shared :mod:`coamd.models.presets` table when it
    has a ``generator`` entry). Raises ValueError for an unknown preset."""
    try:
        from coamd.models.presets import PRESETS
    except ImportError:  # pragma: no cover
        PRESETS = {}
    if preset in PRESETS and "generator" in PRESETS[preset]:
        return dict(PRESETS[preset]["generator"])
    if preset not in GENERATOR_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(sorted(GENERATOR_PRESETS))}")
    return dict(GENERATOR_PRESETS[preset])


# ----------------------------------------------------------------------------- helpers
def timestep_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of flow time ``t`` (N,) in [0, 1] -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.float() * scale)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class _Block(nn.Module):
    """Pre-norm transformer block with adaLN modulation from the text embedding (zero-initialised
    gates, so an untrained block is the identity)."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"),
                                 nn.Dropout(dropout), nn.Linear(4 * width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        s1, g1, b1, s2, g2, b2 = self.ada(c)[:, None].chunk(6, dim=-1)
        y = _modulate(self.norm1(x), s1, g1)
        y = self.attn(y, y, y, key_padding_mask=pad, need_weights=False)[0]
        x = x + b1 * y
        y = _modulate(self.norm2(x), s2, g2)
        return x + b2 * self.mlp(y)


# ----------------------------------------------------------------------------- transformer
class MaskedTransformer(nn.Module):
    """Bidirectional transformer over latent tokens: ``h = T(z_um, c)`` (paper eq. 3).

    Unknown tokens are replaced by a learned mask token; the text feature (384-d MiniLM, or the
    learned null embedding for classifier-free guidance) enters as a prefix token and through
    adaLN modulation of every block. Buffers ``latent_mean``/``latent_std`` (D,) hold the
    standardisation of the AE latents (see the module docstring).
    """

    def __init__(self, config: GeneratorConfig | dict | None = None):
        super().__init__()
        cfg = config if isinstance(config, GeneratorConfig) else GeneratorConfig.from_dict(config or {})
        self.config = cfg
        W, D = cfg.width, cfg.latent_dim
        self.z_proj = nn.Linear(D, W)
        self.mask_token = nn.Parameter(torch.zeros(W))
        self.pos = nn.Parameter(torch.zeros(cfg.max_tokens + 1, W))  # +1: the text prefix token
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, W), nn.SiLU(), nn.Linear(W, W))
        self.null_text = nn.Parameter(torch.zeros(W))
        self.blocks = nn.ModuleList(_Block(W, cfg.heads, cfg.dropout) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(W, eps=1e-6)
        self.register_buffer("latent_mean", torch.zeros(D))
        self.register_buffer("latent_std", torch.ones(D))
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.null_text, std=0.02)

    # -- latent standardisation
    def from_ae(self, z_ae: torch.Tensor) -> torch.Tensor:
        """AE latents (..., D) -> generator latents (..., D)."""
        return (z_ae - self.latent_mean) / self.latent_std

    def to_ae(self, z: torch.Tensor) -> torch.Tensor:
        """Generator latents (..., D) -> AE latents (..., D) (what the AE decoder takes)."""
        return z * self.latent_std + self.latent_mean

    def forward(self, z: torch.Tensor, mask: torch.Tensor, text: torch.Tensor,
                pad: torch.Tensor | None = None, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Context for every token.

        z (B, L, D) float32 generator latents (values at unknown positions are ignored);
        mask (B, L) bool, True = unknown (replaced by the mask token); text (B, 384) float32 MiniLM
        features; pad (B, L) bool, True = padding (ignored as keys; outputs there are junk);
        drop (B,) bool, True = use the learned null text (unconditional pass for classifier-free
        guidance; None = all conditional). Returns h (B, L, W) float32.
        Raises ValueError when L exceeds ``max_tokens`` or shapes disagree.
        """
        B, L, D = z.shape
        if L > self.config.max_tokens:
            raise ValueError(f"{L} tokens exceed the model's maximum of {self.config.max_tokens}")
        if mask.shape != (B, L) or text.shape != (B, self.config.text_dim) or D != self.config.latent_dim:
            raise ValueError(f"shape mismatch: z {tuple(z.shape)}, mask {tuple(mask.shape)}, "
                             f"text {tuple(text.shape)} (latent_dim {self.config.latent_dim})")
        c = self.text_proj(text)
        if drop is not None:
            c = torch.where(drop[:, None], self.null_text[None].to(c.dtype), c)
        x = self.z_proj(z)
        x = torch.where(mask[..., None], self.mask_token.to(x.dtype), x)
        x = torch.cat([c[:, None], x], dim=1) + self.pos[: L + 1][None]
        if pad is None:
            pad = torch.zeros(B, L, dtype=torch.bool, device=z.device)
        key_pad = torch.cat([torch.zeros(B, 1, dtype=torch.bool, device=z.device), pad], dim=1)
        for blk in self.blocks:
            x = blk(x, c, key_pad)
        return self.norm(x[:, 1:])


# ----------------------------------------------------------------------------- diffusion MLP
class _ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada(y).chunk(3, dim=-1)
        return x + gate * self.mlp(_modulate(self.norm(x), shift, scale))


class DiffusionMLP(nn.Module):
    """Velocity network ``v_theta(x_t, t, h)`` of the flow (paper eq. 5, appendix A.1).

    Residual MLP blocks with adaLN modulation from ``emb(t) + proj(h)``; zero-initialised output.
    Sign convention: the target velocity is ``eps - z0`` (module docstring).
    """

    def __init__(self, config: GeneratorConfig | dict | None = None):
        super().__init__()
        cfg = config if isinstance(config, GeneratorConfig) else GeneratorConfig.from_dict(config or {})
        self.config = cfg
        M, D = cfg.mlp_width, cfg.latent_dim
        self.x_proj = nn.Linear(D, M)
        self.t_embed = nn.Sequential(nn.Linear(M, M), nn.SiLU(), nn.Linear(M, M))
        self.h_proj = nn.Linear(cfg.width, M)
        self.blocks = nn.ModuleList(_ResBlock(M) for _ in range(cfg.mlp_depth))
        self.final_norm = nn.LayerNorm(M, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(M, 2 * M))
        self.out = nn.Linear(M, D)
        for m in (self.final_ada[1], self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """x (N, D) noisy latents at time t; t (N,) float in [0, 1] (1 = pure noise);
        h (N, W) transformer context of each token. Returns the velocity (N, D) = d x_t / d t."""
        if x.ndim != 2 or t.shape != x.shape[:1] or h.shape[:1] != x.shape[:1]:
            raise ValueError(f"shape mismatch: x {tuple(x.shape)}, t {tuple(t.shape)}, h {tuple(h.shape)}")
        y = self.t_embed(timestep_embedding(t, self.config.mlp_width)) + self.h_proj(h)
        x = self.x_proj(x)
        for blk in self.blocks:
            x = blk(x, y)
        shift, scale = self.final_ada(y).chunk(2, dim=-1)
        return self.out(_modulate(self.final_norm(x), shift, scale))

    def loss(self, z0: torch.Tensor, h: torch.Tensor, samples: int = 4,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching loss (paper eq. 5 with the eq. A3 sign) for clean tokens z0 (N, D) with
        context h (N, W), ``samples`` draws of (t, eps) per token. Returns a scalar tensor."""
        z0 = z0.repeat(samples, 1)
        h = h.repeat(samples, 1)
        t = torch.rand(z0.shape[0], device=z0.device, generator=generator)
        eps = torch.randn(z0.shape, device=z0.device, generator=generator)
        xt = (1 - t[:, None]) * z0 + t[:, None] * eps
        return F.mse_loss(self.forward(xt, t, h), eps - z0)


def build_generator(preset: str = "small", latent_dim: int = 16, **overrides) -> tuple[MaskedTransformer, DiffusionMLP]:
    """A fresh (transformer, diffusion MLP) pair of preset ``small`` or ``paper`` plus overrides.

    Raises ValueError for an unknown preset or unknown config keys.
    """
    cfg = GeneratorConfig.from_dict({**generator_preset(preset), "latent_dim": latent_dim, **overrides})
    return MaskedTransformer(cfg), DiffusionMLP(cfg)


def load_generator(path) -> tuple[MaskedTransformer, DiffusionMLP]:
    """(transformer, diffusion MLP) in eval mode from a generator checkpoint
    ``{"config": dict, "state_dict": {"transformer.*": ..., "diffusion.*": ...}}``.

    Raises FileNotFoundError when ``path`` is missing, ValueError for an unknown config key.
    """
    from pathlib import Path

    if not Path(path).exists():
        raise FileNotFoundError(f"generator checkpoint {path} not found; train it with `coamd train generator`")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = GeneratorConfig.from_dict(ck["config"])
    t, d = MaskedTransformer(cfg), DiffusionMLP(cfg)
    sd = ck["state_dict"]
    t.load_state_dict({k[len("transformer."):]: v for k, v in sd.items() if k.startswith("transformer.")})
    d.load_state_dict({k[len("diffusion."):]: v for k, v in sd.items() if k.startswith("diffusion.")})
    return t.eval(), d.eval()
