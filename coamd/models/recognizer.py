"""Multi-modal action recognizer (CoAMD paper section 3.1, eq. 1; guidance score eq. 6).

Motion side: the joint, bone and motion streams (:mod:`coamd.data.streams`) of a clip each go
through their own small Transformer encoder over 4-frame patches; the per-stream token features
are fused (concatenation + linear) and pass through a fused Transformer. Masked mean pooling and
a linear head give four unit embeddings ``fused``, ``joint``, ``bone``, ``motion`` (e_f, e_j, e_b,
e_m), shape (B, E). Inputs are first put in a canonical frame (hips of the first valid frame
above the origin, facing +Z), with differentiable operations only, so gradients flow back to the
joints (recognizer guidance, eq. 7).

A recognizer built with a subset of the streams (``RecognizerConfig.streams``, e.g. ``("joint",)``
for the paper's J row of Table 7) has encoders and heads for those streams only; the absent
streams' embeddings are not produced and their eq. 6 weights are ignored.

Text side: frozen all-MiniLM-L6-v2 features (:mod:`coamd.models.text`, (B, 384)) through a
trained projection to (B, E) unit vectors.

Training (eq. 1): InfoNCE with temperature tau between each of the four motion embeddings and
(a) the fine-grained captions of the batch and (b) the content and style label texts.
Classification picks the nearest label text, so label texts never seen in training work too.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coamd.data.streams import STREAM_JOINTS, bone_stream, motion_stream, register_stream_stats
from coamd.models.config import ModelConfig
from coamd.models.text import TEXT_DIM
from coamd.skeleton import HIP_L, HIP_R, NUM_JOINTS, SHOULDER_L, SHOULDER_R

KINDS = ("fused", "joint", "bone", "motion")
_STREAM_JOINTS = STREAM_JOINTS


@dataclasses.dataclass
class RecognizerConfig(ModelConfig):
    """Recognizer hyper-parameters (``coamd.models.presets`` holds the named presets)."""

    width: int = 128
    embed_dim: int = 256        # E
    layers: int = 2             # per-stream Transformer layers
    heads: int = 4
    fused_layers: int = 1
    patch: int = 4              # frames per token
    max_frames: int = 160       # longer inputs are split into windows whose features are averaged
    dropout: float = 0.1
    temperature: float = 0.1    # tau of eq. 1
    score_weights: tuple = (1.0, 1.0, 1.0, 1.0)  # default w_k of eq. 6 (fused, joint, bone, motion)
    streams: tuple = ("joint", "bone", "motion")  # input streams; a subset is a modality-ablation model

    def __post_init__(self):
        self.streams = tuple(self.streams)
        if not self.streams or any(s not in _STREAM_JOINTS for s in self.streams) \
                or len(set(self.streams)) != len(self.streams):
            raise ValueError(f"streams must be distinct names among joint/bone/motion, got {self.streams}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")
        if self.max_frames % self.patch:
            raise ValueError(f"max_frames must be a multiple of patch ({self.patch})")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")


def canonicalize_torch(joints: torch.Tensor) -> torch.Tensor:
    """Differentiable canonical frame: translate so the first frame's hips are above the origin
    (x = z = 0) and rotate about +Y so the first frame faces +Z (same facing definition as
    :func:`coamd.data.process.facing_angle`). (B, T, 21, 3) metres -> same shape."""
    first = joints[:, 0]
    across = (first[:, HIP_L] - first[:, HIP_R]) + (first[:, SHOULDER_L] - first[:, SHOULDER_R])
    fx, fz = -across[:, 2], across[:, 0]
    norm = torch.sqrt(fx * fx + fz * fz + 1e-8)
    c, s = fz / norm, fx / norm  # cos/sin of the heading; rotate by -heading
    origin = torch.stack([first[:, 0, 0], torch.zeros_like(fx), first[:, 0, 2]], dim=-1)
    x = joints - origin[:, None, None, :]
    c, s = c[:, None, None], s[:, None, None]
    nx = c * x[..., 0] - s * x[..., 2]
    nz = s * x[..., 0] + c * x[..., 2]
    return torch.stack([nx, x[..., 1], nz], dim=-1)


class _Encoder(nn.Module):
    """Pre-norm Transformer encoder over tokens with a key-padding mask."""

    def __init__(self, cfg: RecognizerConfig, layers: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, 2 * cfg.width, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.net = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        return self.norm(self.net(x, src_key_padding_mask=pad))


def _pool(h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    w = valid.to(h.dtype)[..., None]
    return (h * w).sum(1) / w.sum(1).clamp_min(1.0)


class ActionRecognizer(nn.Module):
    """The action recognizer R_phi of the paper (section 3.1).

    Args:
        config: :class:`RecognizerConfig`.
        stats: dataset statistics (``MotionDataset.stats``) for input normalisation (buffers);
            None gives neutral statistics, to be overwritten by ``load_state_dict``.
    """

    def __init__(self, config: RecognizerConfig | None = None, stats: dict[str, Any] | None = None):
        super().__init__()
        self.config = cfg = config or RecognizerConfig()
        register_stream_stats(self, stats, zero_joint_xz=True)  # canonical frame: no absolute x/z
        w, p = cfg.width, cfg.patch
        n_tok = cfg.max_frames // p
        self.kinds = tuple(k for k in KINDS if k == "fused" or k in cfg.streams)
        """The embeddings this model produces: ``fused`` and one per configured stream."""
        self.embed = nn.ModuleDict({s: nn.Linear(p * _STREAM_JOINTS[s] * 3, w) for s in cfg.streams})
        self.pos = nn.Parameter(torch.randn(3, n_tok, w) * 0.02)
        self.encoders = nn.ModuleDict({s: _Encoder(cfg, cfg.layers) for s in cfg.streams})
        self.fuse = nn.Linear(len(cfg.streams) * w, w)
        self.fused_encoder = _Encoder(cfg, cfg.fused_layers)
        self.heads = nn.ModuleDict({k: nn.Linear(w, cfg.embed_dim) for k in self.kinds})
        self.text_proj = nn.Sequential(nn.Linear(TEXT_DIM, cfg.embed_dim), nn.GELU(),
                                       nn.Linear(cfg.embed_dim, cfg.embed_dim))
        self.text_skip = nn.Linear(TEXT_DIM, cfg.embed_dim, bias=False)

    # --------------------------------------------------------------------- motion side
    def _check(self, joints: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        if joints.ndim != 4 or tuple(joints.shape[2:]) != (NUM_JOINTS, 3) or joints.shape[1] < 2:
            raise ValueError(f"joints must be (B, T>=2, {NUM_JOINTS}, 3), got {tuple(joints.shape)}")
        if valid is None:
            return torch.ones(joints.shape[:2], dtype=torch.bool, device=joints.device)
        if tuple(valid.shape) != tuple(joints.shape[:2]):
            raise ValueError(f"valid must be (B, T) = {tuple(joints.shape[:2])}, got {tuple(valid.shape)}")
        valid = valid.to(torch.bool)
        if not bool(valid[:, 0].all()):
            raise ValueError("valid must mark at least the first frame of every sequence "
                             "(padding goes at the end)")
        return valid

    def _features(self, joints: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pooled per-kind features (B, W) and the number of valid tokens (B,) for T <= max_frames."""
        cfg = self.config
        b, t = joints.shape[:2]
        # fill padding with the last valid frame so streams stay finite and quiet there
        last = (valid.long().sum(1) - 1).clamp_min(0)
        idx = torch.minimum(torch.arange(t, device=joints.device)[None], last[:, None])
        joints = torch.gather(joints, 1, idx[..., None, None].expand(-1, -1, NUM_JOINTS, 3))
        extra = (-t) % cfg.patch
        if extra:
            joints = torch.cat([joints, joints[:, -1:].expand(-1, extra, -1, -1)], 1)
            valid = torch.cat([valid, valid.new_zeros(b, extra)], 1)
        x = canonicalize_torch(joints)
        streams = {"joint": x, "bone": bone_stream(x), "motion": motion_stream(x)}
        n = x.shape[1] // cfg.patch
        tok_valid = valid.reshape(b, n, cfg.patch).any(-1)
        pad = ~tok_valid
        outs = []
        feats = {}
        for i, s in enumerate(("joint", "bone", "motion")):
            if s not in self.config.streams:
                continue
            z = (streams[s] - getattr(self, f"{s}_mean")) / getattr(self, f"{s}_std")
            z = z.reshape(b, n, -1)
            h = self.embed[s](z) + self.pos[i, :n]
            h = self.encoders[s](h, pad)
            outs.append(h)
            feats[s] = _pool(h, tok_valid)
        h = self.fused_encoder(self.fuse(torch.cat(outs, -1)), pad)
        feats["fused"] = _pool(h, tok_valid)
        feats["_n"] = tok_valid.sum(1).to(h.dtype)
        return feats

    def embed_motion(self, joints: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Motion embeddings e_f, e_j, e_b, e_m.

        Args:
            joints: (B, T, 21, 3) metres at 20 fps, T >= 2 (any start position/heading: the
                recognizer canonicalises). Differentiable w.r.t. ``joints``.
            valid: (B, T) bool, True on real frames (padding at the end); None = all valid.
        Returns:
            dict ``fused``, ``joint``, ``bone``, ``motion`` of (B, E) unit vectors (only
            ``self.kinds`` for a model with a subset of the streams). Inputs longer
            than ``max_frames`` are cut into windows whose pooled features are averaged
            (weighted by their valid tokens).
        Raises:
            ValueError on bad shapes or a ``valid`` without the first frame.
        """
        valid = self._check(joints, valid)
        cfg = self.config
        t = joints.shape[1]
        if t <= cfg.max_frames:
            feats = self._features(joints, valid)
        else:
            win = cfg.max_frames
            n_w = math.ceil(t / win)
            b = joints.shape[0]
            extra = n_w * win - t
            jp = torch.cat([joints, joints[:, -1:].expand(-1, extra, -1, -1)], 1) if extra else joints
            vp = torch.cat([valid, valid.new_zeros(b, extra)], 1) if extra else valid
            jw = jp.reshape(b * n_w, win, NUM_JOINTS, 3)
            vw = vp.reshape(b * n_w, win)
            has = vw[:, 0].clone()
            vw = vw.clone()
            vw[:, 0] = True  # windows entirely past the end get weight 0 below
            fw = self._features(jw, vw)
            wts = (fw["_n"] * has.to(fw["_n"].dtype)).reshape(b, n_w, 1)
            feats = {k: (v.reshape(b, n_w, -1) * wts).sum(1) / wts.sum(1).clamp_min(1e-6)
                     for k, v in fw.items() if k != "_n"}
        return {k: F.normalize(self.heads[k](feats[k]), dim=-1) for k in self.kinds}

    # --------------------------------------------------------------------- text side
    def embed_text(self, text_feats: torch.Tensor) -> torch.Tensor:
        """Frozen MiniLM features (B, 384) -> (B, E) unit vectors (trained projection)."""
        if text_feats.ndim != 2 or text_feats.shape[1] != TEXT_DIM:
            raise ValueError(f"text_feats must be (B, {TEXT_DIM}), got {tuple(text_feats.shape)}")
        return F.normalize(self.text_proj(text_feats) + self.text_skip(text_feats), dim=-1)

    # --------------------------------------------------------------------- eq. 6
    def _weights(self, weights) -> list[float]:
        w = self.config.score_weights if weights is None else weights
        if isinstance(w, dict):
            w = [float(w.get(k, 0.0)) for k in KINDS]
        w = [float(v) for v in w]
        if len(w) != 4:
            raise ValueError(f"weights must have 4 entries (fused, joint, bone, motion), got {len(w)}")
        return w

    def _terms(self, weights) -> list[tuple[float, str]]:
        """(w_k, kind) pairs of eq. 6 for the kinds this model has (absent streams drop out)."""
        return [(w, k) for w, k in zip(self._weights(weights), KINDS) if k in self.kinds]

    def score(self, joints: torch.Tensor, valid: torch.Tensor | None, text_feats: torch.Tensor,
              weights=None) -> torch.Tensor:
        """Eq. 6: S(X, c) = sum_k w_k cos(R^k(X), c) for k in (fused, joint, bone, motion).

        Args: joints (B, T, 21, 3) metres; valid (B, T) bool or None; text_feats (B, 384) MiniLM
        features (one text per motion); weights: 4 floats or a dict by kind (default: config's).
        Returns (B,) scores, differentiable w.r.t. ``joints``.
        """
        if text_feats.shape[0] != joints.shape[0]:
            raise ValueError(f"{joints.shape[0]} motions but {text_feats.shape[0]} texts")
        emb = self.embed_motion(joints, valid)
        c = self.embed_text(text_feats)
        return sum(w * (emb[k] * c).sum(-1) for w, k in self._terms(weights))

    def similarity(self, emb: dict[str, torch.Tensor], text_emb: torch.Tensor, weights=None) -> torch.Tensor:
        """All-pairs eq. 6 from precomputed embeddings: (B, E) dict x (N, E) -> (B, N)."""
        return sum(w * emb[k] @ text_emb.T for w, k in self._terms(weights))

    @torch.no_grad()
    def classify(self, joints: torch.Tensor, valid: torch.Tensor | None, label_feats: torch.Tensor,
                 weights=None, top_k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest label texts: returns (indices (B, top_k), scores (B, top_k)) into the rows of
        ``label_feats`` ((N, 384) MiniLM features of any label texts, seen in training or not)."""
        sim = self.similarity(self.embed_motion(joints, valid), self.embed_text(label_feats), weights)
        s, i = sim.topk(min(top_k, sim.shape[1]), dim=1)
        return i, s

    @torch.no_grad()
    def rank(self, motion_emb: dict[str, torch.Tensor], text_emb: torch.Tensor, weights=None) -> torch.Tensor:
        """Retrieval ranking: for every text (N, E) the motion indices sorted best first, (N, B)."""
        return self.similarity(motion_emb, text_emb, weights).T.argsort(dim=1, descending=True)

    # --------------------------------------------------------------------- eq. 1
    def loss(self, emb: dict[str, torch.Tensor], caption_emb: torch.Tensor, caption_ids: torch.Tensor,
             content_emb: torch.Tensor, content_idx: torch.Tensor, style_emb: torch.Tensor,
             style_idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 1 (InfoNCE, temperature tau) for every motion embedding kind against
        (a) the batch's captions (B, E), symmetric, captions with the same id count as positives,
        (b) all content label texts (C, E) and (c) all style label texts (S, E).

        ``caption_ids`` (B,) identifies identical caption strings; ``content_idx``/``style_idx``
        (B,) are each motion's label rows. Returns (scalar loss, parts).
        """
        tau = self.config.temperature
        pos = (caption_ids[:, None] == caption_ids[None, :]).float()
        target = pos / pos.sum(1, keepdim=True)
        total = caption_emb.new_zeros(())
        parts: dict[str, float] = {}
        for k in self.kinds:
            e = emb[k]
            logits = e @ caption_emb.T / tau
            l_cap = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
            l_con = F.cross_entropy(e @ content_emb.T / tau, content_idx)
            l_sty = F.cross_entropy(e @ style_emb.T / tau, style_idx)
            total = total + l_cap + l_con + l_sty
            parts[f"{k}_caption"] = float(l_cap.detach())
            parts[f"{k}_content"] = float(l_con.detach())
            parts[f"{k}_style"] = float(l_sty.detach())
        return total / len(self.kinds), parts

    # --------------------------------------------------------------------- persistence
    def checkpoint(self) -> dict[str, Any]:
        """``{"config": dict, "state_dict": ...}``."""
        return {"config": self.config.to_dict(), "state_dict": self.state_dict(), "kind": "recognizer"}

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> "ActionRecognizer":
        model = cls(RecognizerConfig.from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()
