"""The text-motion evaluator: a temporal-convolution motion encoder aligned contrastively with the
frozen MiniLM sentence encoder.

It is deliberately independent of the action recognizer used for guidance (different
architecture: 1-D convolutions over root-relative pose + velocities with masked mean/max pooling,
versus the recognizer's per-stream transformers; different weights, trained separately), so that
guidance cannot simply game the metric. Following the "generalised protocol" of Dual Reciprocal
Learning (../shared/papers/drl-dual-reciprocal-learning.md, section 4.1) the text side is a fixed
general-purpose sentence encoder (all-MiniLM-L6-v2) with only a small trained projection; the
motion side is trained with a symmetric InfoNCE loss (CLIP-style) on the train split, caption
families A-D only (family E stays unseen). Embeddings are L2-normalised, (B, 256).

Checkpoint: ``coamd/checkpoints/default/evaluator.pt`` = ``{"config": dict, "state_dict": ...}``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from coamd.paths import DEFAULT_CHECKPOINT as _CHECKPOINT_DIR
from coamd.skeleton import FPS, NUM_JOINTS, check_joints

DEFAULT_CHECKPOINT = _CHECKPOINT_DIR / "evaluator.pt"
"""The shipped evaluator weights (a file in ``coamd.paths.DEFAULT_CHECKPOINT``)."""
FEATURE_DIM = NUM_JOINTS * 3 * 2 + 3  # root-relative pose, its velocity, root velocity


@dataclass
class EvaluatorConfig:
    """Sizes of the evaluator (saved with the weights)."""

    width: int = 128
    embed_dim: int = 256
    text_dim: int = 384
    max_frames: int = 200  # 10 s at 20 fps; longer motions are centre-cropped
    dropout: float = 0.1

    @classmethod
    def from_dict(cls, d: dict) -> "EvaluatorConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown evaluator config keys: {sorted(unknown)}")
        return cls(**d)


def motion_features(joints: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Per-frame evaluator features of joint positions.

    joints: (B, T, 21, 3) or (T, 21, 3) metres at 20 fps, Y up. Returns (B, T, 129) float32:
    pose relative to the hips on the ground plane (x, z minus the hips' x, z; y kept, so height
    above the floor stays visible), its per-second velocity (forward difference, last frame
    repeated) and the hips' velocity (m/s). Raises ValueError on a wrong shape or non-finite values.
    """
    x = torch.as_tensor(np.asarray(joints) if not torch.is_tensor(joints) else joints, dtype=torch.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (B, T, {NUM_JOINTS}, 3), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("joints contain NaN or infinite values")
    B, T = x.shape[:2]
    root = x[:, :, :1, :].clone()
    root[..., 1] = 0.0
    local = x - root
    if T > 1:
        vel = torch.cat([local[:, 1:] - local[:, :-1], local[:, -1:] - local[:, -2:-1]], 1) * FPS
        rvel = torch.cat([x[:, 1:, 0] - x[:, :-1, 0], x[:, -1:, 0] - x[:, -2:-1, 0]], 1) * FPS
    else:
        vel = torch.zeros_like(local)
        rvel = torch.zeros_like(x[:, :, 0])
    return torch.cat([local.reshape(B, T, -1), vel.reshape(B, T, -1), rvel], -1)


class _Block(nn.Module):
    def __init__(self, width: int, dilation: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(width, width, 3, padding=1)
        self.norm = nn.GroupNorm(8, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.conv1(self.norm(x)))
        return x + self.drop(self.conv2(h))


class MotionTextEvaluator(nn.Module):
    """Motion encoder (temporal convolutions) + text projection into one 256-d unit sphere.

    ``embed_motion(joints (B,T,21,3), valid (B,T) bool) -> (B, E)``;
    ``embed_text(text_feats (B,384) MiniLM features) -> (B, E)``; both L2-normalised.
    Normalisation statistics of the input features are buffers (set from the train split).
    """

    def __init__(self, config: EvaluatorConfig | dict | None = None):
        super().__init__()
        cfg = config if isinstance(config, EvaluatorConfig) else EvaluatorConfig.from_dict(config or {})
        self.config = cfg
        W = cfg.width
        self.register_buffer("feat_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("feat_std", torch.ones(FEATURE_DIM))
        self.inp = nn.Conv1d(FEATURE_DIM, W, 4, stride=2, padding=1)  # 20 fps -> 10 fps
        self.stage1 = nn.Sequential(_Block(W, 1, cfg.dropout))
        self.down = nn.Conv1d(W, W, 4, stride=2, padding=1)  # -> 5 fps
        self.stage2 = nn.Sequential(_Block(W, 1, cfg.dropout), _Block(W, 2, cfg.dropout))
        self.head = nn.Sequential(nn.Linear(2 * W, W), nn.GELU(), nn.Linear(W, cfg.embed_dim))
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, 512), nn.GELU(), nn.Linear(512, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def embed_features(self, feats: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """feats (B, T, 129) from :func:`motion_features`, valid (B, T) bool -> (B, E) unit."""
        x = ((feats - self.feat_mean) / self.feat_std) * valid[..., None]
        h = self.stage1(self.inp(x.transpose(1, 2)))
        h = self.stage2(self.down(h))
        m = valid[:, None, :].float()
        m = F.max_pool1d(F.max_pool1d(m, 2, 2, ceil_mode=True), 2, 2, ceil_mode=True)[..., : h.shape[-1]]
        if m.shape[-1] < h.shape[-1]:
            m = F.pad(m, (0, h.shape[-1] - m.shape[-1]))
        mean = (h * m).sum(-1) / m.sum(-1).clamp_min(1.0)
        mx = h.masked_fill(m == 0, -1e4).amax(-1)
        return F.normalize(self.head(torch.cat([mean, mx], -1)), dim=-1)

    def embed_motion(self, joints: torch.Tensor | np.ndarray, valid: torch.Tensor | None = None) -> torch.Tensor:
        """joints (B, T, 21, 3) metres at 20 fps; valid (B, T) bool (None = all frames) -> (B, E)."""
        feats = motion_features(joints)
        if valid is None:
            valid = torch.ones(feats.shape[:2], dtype=torch.bool)
        return self.embed_features(feats, torch.as_tensor(valid, dtype=torch.bool))

    def embed_text(self, text_feats: torch.Tensor | np.ndarray) -> torch.Tensor:
        """text_feats (B, 384) MiniLM features -> (B, E) unit vectors."""
        t = torch.as_tensor(np.asarray(text_feats) if not torch.is_tensor(text_feats) else text_feats,
                            dtype=torch.float32)
        if t.ndim != 2 or t.shape[1] != self.config.text_dim:
            raise ValueError(f"text_feats must be (B, {self.config.text_dim}), got {tuple(t.shape)}")
        return F.normalize(self.text_proj(t), dim=-1)

    # ------------------------------------------------------------------ convenience (NumPy in/out)
    @torch.no_grad()
    def embed_clips(self, clips: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """Embed a list of motions, each (T_i, 21, 3) metres at 20 fps (T_i >= 2), in batches.

        Motions longer than ``max_frames`` are centre-cropped. Returns (N, E) float32.
        """
        self.eval()
        out = []
        Tm = self.config.max_frames
        for i in range(0, len(clips), batch_size):
            chunk = []
            for j in clips[i:i + batch_size]:
                j = check_joints(j, min_frames=2, name="each motion")
                if j.shape[0] > Tm:
                    s = (j.shape[0] - Tm) // 2
                    j = j[s:s + Tm]
                chunk.append(j)
            T = max(c.shape[0] for c in chunk)
            feats = torch.zeros(len(chunk), T, FEATURE_DIM)
            valid = torch.zeros(len(chunk), T, dtype=torch.bool)
            for k, c in enumerate(chunk):
                feats[k, : c.shape[0]] = motion_features(c)[0]
                valid[k, : c.shape[0]] = True
            out.append(self.embed_features(feats, valid).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.config.embed_dim), np.float32)

    @torch.no_grad()
    def embed_texts(self, texts: list[str], cache: str | Path | None = None) -> np.ndarray:
        """Embed caption strings (frozen MiniLM, then the trained projection): (N, E) float32."""
        from coamd.evaluation.text_features import encode_texts

        self.eval()
        return self.embed_text(encode_texts(texts, cache=cache)).numpy().astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """Write ``{"config", "state_dict", **extra}`` to ``path``."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"config": asdict(self.config), "state_dict": self.state_dict(), **(extra or {})}, path)


def load_evaluator(path: str | Path | None = None) -> MotionTextEvaluator:
    """Load the evaluator (default: the shipped ``coamd/checkpoints/default/evaluator.pt``).

    Raises FileNotFoundError naming the training command when the file is missing.
    """
    path = Path(path) if path else DEFAULT_CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no evaluator checkpoint at {path}; train one with `coamd train evaluator`")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = MotionTextEvaluator(ck["config"])
    model.load_state_dict(ck["state_dict"])
    return model.eval()
