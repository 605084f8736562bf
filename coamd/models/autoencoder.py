"""Multi-modal motion autoencoder (CoAMD paper section 3.2, eq. 2; appendix B).

Encoder: shallow, independent 1-D convolutional projections of the joint, bone and motion
streams (:mod:`coamd.data.streams`), early fusion by concatenation and a 1x1 convolution, then a
shared ResNet-style 1-D convolutional encoder that halves time twice: joints (B, T, 21, 3) metres at
20 fps with T % 4 == 0 -> latent tokens z (B, T/4, D), one token per 4 frames (0.2 s).

Decoder: CAUSAL in time. Every convolution pads on the left only and upsampling repeats a token
onto its own 4 frames before the next causal convolution, so the frames of token i depend only
on tokens 0..i: frames streamed after token i is final never change when later tokens arrive.
It predicts the other joints relative to the hips and, with ``root="absolute"``, the hips
position (normalised by the dataset's hips statistics) on every frame; with ``root="velocity"``
the hips' horizontal position is the frame-0 position plus the running sum of predicted per-frame
displacements, as in HumanML3D's root-velocity representation, so noise in generated latents
becomes a small velocity error instead of a jump of the whole body (measured: absolute positions
made generated hips jitter 8x real clips); ``root="filtered"`` blends both with a causal
complementary filter (the integrated displacements for high frequencies, the absolute
prediction against drift). Both are causal. Returns absolute joints (B, 4L, 21, 3) in metres.

Loss (eq. 2): the sum over streams k of Smooth L1 between the target stream X_k and the stream
re-derived from the decoded joints, each divided by a per-stream scale taken from the dataset
statistics (buffers). An optional foot-contact term (``foot_contact_weight``; the contact
consistency loss of Tevet et al. 2023, MDM) adds the horizontal toe displacement of the decoded
motion on frame pairs where the target's toe is on the floor. The joints-only ablation (``streams=("joint",)``) uses only the joint stream
for both the input and the loss.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coamd.data.streams import STREAM_JOINTS, bone_stream, motion_stream, register_stream_stats
from coamd.models.config import ModelConfig
from coamd.skeleton import NUM_JOINTS, TOE_JOINTS

DOWNSAMPLE = 4
"""Frames per latent token."""
_STREAM_JOINTS = STREAM_JOINTS
ROOTS = ("absolute", "velocity", "filtered")
"""Hips-path representations of the decoder (``AEConfig.root``)."""


@dataclasses.dataclass
class AEConfig(ModelConfig):
    """Autoencoder hyper-parameters (``coamd.models.presets`` holds the named presets)."""

    streams: tuple = ("joint", "bone", "motion")  # ("joint",) is the joints-only ablation
    stream_dim: int = 64        # channels of each per-stream projection
    width: int = 128            # channels of the shared encoder/decoder
    latent_dim: int = 32        # D
    blocks: int = 2             # residual blocks per resolution (encoder and decoder)
    kernel: int = 3
    local_scale: float = 0.5    # metres; scale of the hips-relative joint offsets the decoder emits
    loss_beta: float = 0.02     # Smooth L1 beta in normalised units
    loss_weights: tuple = (8.0, 1.0, 1.0)  # joint, bone, motion (bone/motion unused if absent)
    root: str = "absolute"      # hips path: "absolute", "velocity" (running sum) or "filtered" (both)
    root_velocity_scale: float = 0.05  # metres per frame; scale of the predicted hips displacement
    root_filter: float = 0.9           # alpha of the "filtered" root (weight of the integrated path)
    foot_contact_weight: float = 0.0   # weight of the foot-contact term of the loss
    contact_height: float = 0.06       # metres; a target toe below this on both frames is in contact

    def __post_init__(self):
        if self.root not in ROOTS:
            raise ValueError(f"root must be one of {', '.join(ROOTS)}, got {self.root!r}")
        if not 0.0 < self.root_filter < 1.0:
            raise ValueError(f"root_filter must be in (0, 1), got {self.root_filter}")
        bad = [s for s in self.streams if s not in _STREAM_JOINTS]
        if not self.streams or bad or self.streams[0] != "joint":
            raise ValueError(f"streams must start with 'joint' and use joint/bone/motion, got {self.streams}")
        for k in ("stream_dim", "width", "latent_dim", "blocks", "kernel"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"{k} must be positive, got {getattr(self, k)}")


# ----------------------------------------------------------------------------- building blocks
class CausalConv1d(nn.Conv1d):
    """Conv1d over (B, C, T) padded on the left only (replicating the first frame): output t
    depends on inputs <= t."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int = 1):
        super().__init__(cin, cout, kernel, dilation=dilation)
        self.left = (kernel - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.left:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.left), x], dim=2)
        return super().forward(x)


def _conv(cin: int, cout: int, kernel: int, dilation: int = 1, causal: bool = False) -> nn.Module:
    if causal:
        return CausalConv1d(cin, cout, kernel, dilation)
    return nn.Conv1d(cin, cout, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2,
                     padding_mode="replicate")


class ResBlock(nn.Module):
    """x + W2 act(conv_k,dilated(act(x))): a ResNet block over time (no normalisation across time,
    so the causal variant stays causal)."""

    def __init__(self, width: int, kernel: int, dilation: int, causal: bool):
        super().__init__()
        self.conv = _conv(width, width, kernel, dilation, causal)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.silu(self.conv(F.silu(x))))


def _stage(width: int, n: int, kernel: int, causal: bool) -> list[nn.Module]:
    return [ResBlock(width, kernel, 3 ** (i % 3), causal) for i in range(n)]


class RepeatUpsample(nn.Module):
    """(B, C, T) -> (B, C, 2T), each step repeated twice (keeps causality)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(2, dim=2)


# ----------------------------------------------------------------------------- the model
class MotionAutoencoder(nn.Module):
    """Multi-modal AE: ``encode`` joints -> tokens, causal ``decode`` tokens -> joints, ``loss``.

    Args:
        config: :class:`AEConfig`.
        stats: the dataset statistics (``MotionDataset.stats``: ``{joint,bone,motion}_{mean,std}``
            arrays, (21|20, 3) metres); stored as buffers so a checkpoint carries them. None gives
            neutral statistics (zero mean, unit std), to be overwritten by ``load_state_dict``.
    """

    def __init__(self, config: AEConfig | None = None, stats: dict[str, Any] | None = None):
        super().__init__()
        self.config = cfg = config or AEConfig()
        register_stream_stats(self, stats)
        w, k = cfg.width, cfg.kernel
        # encoder: per-stream projections, early fusion, shared downsampling ResNet
        self.proj = nn.ModuleDict({s: _conv(_STREAM_JOINTS[s] * 3, cfg.stream_dim, k) for s in cfg.streams})
        self.fuse = nn.Conv1d(cfg.stream_dim * len(cfg.streams), w, 1)
        enc: list[nn.Module] = [*_stage(w, cfg.blocks, k, False)]
        for _ in range(2):
            enc += [nn.Conv1d(w, w, 4, stride=2, padding=1, padding_mode="replicate"),
                    *_stage(w, cfg.blocks, k, False)]
        self.encoder = nn.Sequential(*enc)
        self.to_latent = nn.Conv1d(w, cfg.latent_dim, 1)
        # decoder: causal convolutions, upsampling by repetition
        dec: list[nn.Module] = [CausalConv1d(cfg.latent_dim, w, k), *_stage(w, cfg.blocks, k, True)]
        for _ in range(2):
            dec += [RepeatUpsample(), CausalConv1d(w, w, k), *_stage(w, cfg.blocks, k, True)]
        self.decoder = nn.Sequential(*dec)
        self.to_joints = nn.Conv1d(w, NUM_JOINTS * 3 + (0 if cfg.root == "absolute" else 2), 1)
        if cfg.root == "filtered":  # causal exponential kernel alpha^k, truncated below 1e-5
            taps = int(np.ceil(np.log(1e-5) / np.log(cfg.root_filter)))
            kernel = cfg.root_filter ** np.arange(taps - 1, -1, -1, dtype=np.float64)  # oldest tap first
            self.register_buffer("root_kernel", torch.tensor(kernel, dtype=torch.float32).view(1, 1, -1),
                                 persistent=False)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    # --------------------------------------------------------------------- encode / decode
    def _normalised_streams(self, joints: torch.Tensor) -> list[torch.Tensor]:
        streams = {"joint": joints}
        if "bone" in self.config.streams:
            streams["bone"] = bone_stream(joints)
        if "motion" in self.config.streams:
            streams["motion"] = motion_stream(joints)
        out = []
        for s in self.config.streams:
            x = (streams[s] - getattr(self, f"{s}_mean")) / getattr(self, f"{s}_std")
            out.append(x.flatten(2).transpose(1, 2))  # (B, J*3, T)
        return out

    def encode(self, joints: torch.Tensor) -> torch.Tensor:
        """Joints (B, T, 21, 3) metres at 20 fps, T a positive multiple of 4 -> z (B, T/4, D).

        Raises ValueError on another shape or a T that is not a multiple of 4.
        """
        if joints.ndim != 4 or tuple(joints.shape[2:]) != (NUM_JOINTS, 3):
            raise ValueError(f"joints must be (B, T, {NUM_JOINTS}, 3), got {tuple(joints.shape)}")
        if joints.shape[1] == 0 or joints.shape[1] % DOWNSAMPLE:
            raise ValueError(f"the number of frames must be a positive multiple of {DOWNSAMPLE}, "
                             f"got {joints.shape[1]}")
        x = torch.cat([self.proj[s](x) for s, x in zip(self.config.streams, self._normalised_streams(joints))], 1)
        h = self.encoder(self.fuse(F.silu(x)))
        return self.to_latent(h).transpose(1, 2)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Tokens z (B, L, D) -> joints (B, 4L, 21, 3) metres at 20 fps. Causal: frames
        4i..4i+3 depend only on z[:, :i+1]. Raises ValueError on a bad shape."""
        out = self._decoded_channels(z)  # (B, T, 63 [+ 2])
        b, t = out.shape[:2]
        n = NUM_JOINTS * 3
        joints = out[..., :n].reshape(b, t, NUM_JOINTS, 3)
        hips = joints[:, :, :1] * self.joint_std[0] + self.joint_mean[0]  # (B, T, 1, 3)
        if self.config.root != "absolute":
            step = out[:, 1:, n:n + 2] * self.config.root_velocity_scale  # (B, T-1, 2) m/frame
            absolute = hips[:, :, 0, 0::2]  # (B, T, 2)
            if self.config.root == "velocity":
                xz = absolute[:, :1] + torch.cat([torch.zeros_like(absolute[:, :1]),
                                                  torch.cumsum(step, dim=1)], dim=1)  # (B, T, 2)
            else:
                xz = self._complementary(absolute, step)
            hips = torch.stack([xz[..., 0], hips[:, :, 0, 1], xz[..., 1]], dim=-1)[:, :, None]
        local = joints[:, :, 1:] * self.config.local_scale
        return torch.cat([hips, hips + local], dim=2)

    def _decoded_channels(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output channels (B, 4L, 63 [+ 2]) of tokens z (B, L, D): normalised joints,
        then (``root`` other than ``"absolute"``) the hips' per-frame displacement / scale.
        Raises ValueError on a bad shape."""
        if z.ndim != 3 or z.shape[-1] != self.config.latent_dim or z.shape[1] == 0:
            raise ValueError(f"z must be (B, L>0, {self.config.latent_dim}), got {tuple(z.shape)}")
        h = self.decoder(z.transpose(1, 2))
        return self.to_joints(F.silu(h)).transpose(1, 2)

    def root_steps(self, z: torch.Tensor) -> torch.Tensor:
        """The displacement head alone: the hips' horizontal step onto each frame 1..4L-1,
        (B, 4L - 1, 2) metres (x, z), of tokens z (B, L, D); what ``root="velocity"`` integrates
        and ``root="filtered"`` blends with the absolute head. Raises ValueError for a decoder
        with ``root="absolute"`` (no such head) or a bad shape."""
        if self.config.root == "absolute":
            raise ValueError("this decoder has no displacement head (root='absolute')")
        n = NUM_JOINTS * 3
        return self._decoded_channels(z)[:, 1:, n:n + 2] * self.config.root_velocity_scale

    def _complementary(self, absolute: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """The "filtered" hips path, a complementary filter: p[0] = a[0] and
        p[t] = alpha (p[t-1] + d[t]) + (1 - alpha) a[t], with a the predicted absolute and d the
        predicted per-frame displacement, so high-frequency noise of a is damped by (1 - alpha) and
        the drift of the integrated d stays bounded. Computed as a causal convolution of
        u[0] = a[0], u[t] = alpha d[t] + (1 - alpha) a[t] with the kernel alpha^k (truncated where
        alpha^k < 1e-5). absolute (B, T, 2), step (B, T-1, 2) metres -> (B, T, 2) metres."""
        alpha = self.config.root_filter
        u = torch.cat([absolute[:, :1], alpha * step + (1 - alpha) * absolute[:, 1:]], dim=1)  # (B, T, 2)
        b, t, _ = u.shape
        k = self.root_kernel.shape[-1]
        x = F.pad(u.transpose(1, 2).reshape(b * 2, 1, t), (k - 1, 0))
        return F.conv1d(x, self.root_kernel).reshape(b, 2, t).transpose(1, 2)

    def forward(self, joints: torch.Tensor) -> torch.Tensor:
        """Reconstruction: decode(encode(joints)), same shape as ``joints``."""
        return self.decode(self.encode(joints))

    # --------------------------------------------------------------------- loss (eq. 2)
    def stream_scales(self) -> dict[str, torch.Tensor]:
        """Per-stream scalar loss scale (metres): the mean of that stream's dataset std."""
        return {s: getattr(self, f"{s}_std").mean() for s in self.config.streams}

    def loss(self, joints: torch.Tensor, recon: torch.Tensor,
             valid: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 2: sum over the configured streams of the normalised Smooth L1 between the target
        stream and the stream re-derived from ``recon``.

        Args:
            joints, recon: (B, T, 21, 3) metres. valid: (B, T) bool, False on padding frames
                (the motion stream of the last valid frame is compared too: with last-frame
                padding it is zero in both). Returns (scalar loss, per-stream floats).
        """
        if joints.shape != recon.shape:
            raise ValueError(f"target {tuple(joints.shape)} and reconstruction {tuple(recon.shape)} differ")
        m = torch.ones(joints.shape[:2], dtype=torch.bool, device=joints.device) if valid is None else valid
        m = m.to(joints.dtype)[..., None, None]
        scales = self.stream_scales()
        fns = {"joint": lambda x: x, "bone": bone_stream, "motion": motion_stream}
        total, parts = joints.new_zeros(()), {}
        for s, w in zip(self.config.streams, self._weights()):
            a, b = fns[s](joints) / scales[s], fns[s](recon) / scales[s]
            err = F.smooth_l1_loss(b, a, beta=self.config.loss_beta, reduction="none")
            val = (err * m).sum() / (m.sum() * err.shape[2] * 3).clamp_min(1)
            parts[s] = float(val.detach())
            total = total + w * val
        if self.config.foot_contact_weight > 0 and joints.shape[1] > 1:
            toes = list(TOE_JOINTS)
            h = joints[:, :, toes, 1]
            pair = m[:, 1:, 0, 0, None] * m[:, :-1, 0, 0, None]
            contact = ((h[:, 1:] < self.config.contact_height) & (h[:, :-1] < self.config.contact_height)) * pair
            slide = (recon[:, 1:, toes][..., 0::2] - recon[:, :-1, toes][..., 0::2]).norm(dim=-1)  # (B, T-1, 2)
            val = (slide * contact).sum() / contact.sum().clamp_min(1) / scales["joint"]
            parts["foot_contact"] = float(val.detach())
            total = total + self.config.foot_contact_weight * val
        return total, parts

    def _weights(self) -> list[float]:
        order = {"joint": 0, "bone": 1, "motion": 2}
        return [float(self.config.loss_weights[order[s]]) for s in self.config.streams]

    # --------------------------------------------------------------------- persistence
    def checkpoint(self) -> dict[str, Any]:
        """``{"config": dict, "state_dict": ...}`` (the project's checkpoint layout)."""
        return {"config": self.config.to_dict(), "state_dict": self.state_dict(), "kind": "autoencoder"}

    def load_compatible(self, state_dict: dict[str, torch.Tensor]) -> list[str]:
        """Load another autoencoder's weights where shapes allow: every tensor of equal shape is
        copied; the output layer ``to_joints`` of a decoder with the other ``root`` keeps its
        joint rows (the extra hips-displacement rows start at zero). Returns the keys not loaded
        (for fine-tuning a decoder with a new ``root`` on a frozen encoder)."""
        own = self.state_dict()
        skipped = []
        with torch.no_grad():
            for k, v in state_dict.items():
                if k not in own:
                    skipped.append(k)
                elif own[k].shape == v.shape:
                    own[k].copy_(v)
                elif k.startswith("to_joints.") and own[k].shape[1:] == v.shape[1:]:
                    n = min(len(v), len(own[k]), NUM_JOINTS * 3)
                    own[k].zero_()
                    own[k][:n].copy_(v[:n])
                else:
                    skipped.append(k)
        return skipped

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> "MotionAutoencoder":
        """Rebuild from :meth:`checkpoint`'s dict (e.g. ``torch.load(path)``)."""
        model = cls(AEConfig.from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()


def pad_to_multiple(joints: torch.Tensor, multiple: int = DOWNSAMPLE) -> tuple[torch.Tensor, int]:
    """Pad (B, T, 21, 3) at the end by repeating the last frame up to a multiple of ``multiple``;
    returns (padded, original T)."""
    t = joints.shape[1]
    extra = (-t) % multiple
    if extra:
        joints = torch.cat([joints, joints[:, -1:].expand(-1, extra, -1, -1)], dim=1)
    return joints, t
