"""Recognizer guidance (paper section 3.3, eq. 6-8; derivation in appendix A.2), PyTorch sidecar.

At each autoregressive iteration the sampler hands over the complete preliminary latents z' (all
still-unknown tokens sampled by the flow) and the mask M_t of the tokens filled in this iteration:

    X      = D(z')                                   decode (the AE decoder, differentiable)
    X      = B(X)                                    every bone at the runtime skeleton's length
    S      = sum_k w_k * cos(R^k(X), c)              eq. 6, k in {fused, joint, bone, motion}
    g      = dS/dz',  g_hat = g / (||g||_2 + eps)    eq. 7 (norm over the whole (L, D) of a sample)
    z_new  = z' + gamma * g_hat * M_t                eq. 8

R^k are the action recognizer's motion embeddings and c its text embedding of the prompt. In a
batch, each sample's gradient is normalised on its own, so batching never changes a result.

B (:func:`rest_length_joints`) is this runtime's addition to the paper's step: the decoder's bones
change length from frame to frame, and the runtime releases every frame on one fixed skeleton
(:mod:`coamd.sampling.skeleton_projection`). Scored on the decoded joints as they are, part of the
gradient lengthens or shortens bones (the recognizer's bone stream reads them), which the
projection then undoes; scored with every bone at its rest length along its decoded direction,
the gradient can only move what the released motion keeps. Measured on the shipped weights
(``benchmarks/results/guidance_fixed_bones/README.md``): on the free-phrasing dev split the
guided motions' content rises 73.5 -> 75.1 % (rare actions 55.3 -> 58.3 %) for the independent
evaluator's 82.7 -> 82.0 % on the frequent actions; on the validation clips' template captions
content is unchanged and style and the evaluator's FID move by about one clip and 0.005, up with
one sampling seed and down with the other. It costs no measurable time.
"""
from __future__ import annotations

import numpy as np
import torch

from coamd.sampling.sampler import DEFAULT_WEIGHTS, FRAMES_PER_TOKEN
from coamd.skeleton import PARENTS

EPS = 1e-8


def _path_matrix() -> torch.Tensor:
    """(21, 21) float32: entry (j, k) is 1 when bone k (from ``PARENTS[k]`` to k) lies on the path
    from the hips to joint j (k = j included), else 0; column 0 is zero (the hips have no bone)."""
    n = len(PARENTS)
    m = torch.zeros(n, n)
    for j in range(1, n):
        k = j
        while k > 0:
            m[j, k] = 1.0
            k = PARENTS[k]
    return m


_PATHS = _path_matrix()
_PARENT_INDEX = torch.tensor([max(p, 0) for p in PARENTS])


def rest_length_joints(joints: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Joints (..., 21, 3) metres with every bone given its rest length along its own direction.

    lengths (21,): ``lengths[j]`` is the bone from ``PARENTS[j]`` to joint j (``lengths[0]`` is
    unused; :attr:`coamd.io.bvh_export.BVHSkeleton.lengths`). The hips stay where they are; every
    joint is the hips plus the rest-length bones on its path from the hips, each along the input's
    bone direction (one matrix product over the path matrix), so the bones' directions are the
    input's and their lengths the skeleton's. Differentiable (the guidance's gradient flows through
    it); a zero-length input bone keeps a zero direction. Raises ValueError when the last two
    dimensions are not (21, 3).
    """
    if joints.shape[-2:] != (len(PARENTS), 3):
        raise ValueError(f"joints must be (..., {len(PARENTS)}, 3), got {tuple(joints.shape)}")
    bones = joints - joints[..., _PARENT_INDEX.to(joints.device), :]          # bone 0 is zero
    bones = bones * (lengths.to(joints)[:, None] / (bones.norm(dim=-1, keepdim=True) + EPS))
    return joints[..., :1, :] + torch.einsum("jk,...kd->...jd", _PATHS.to(joints), bones)


class TorchGuide:
    """The :class:`~coamd.sampling.backend.Guide` on PyTorch copies of the AE decoder and the recognizer.

    autoencoder: ``MotionAutoencoder`` (its ``decode``); recognizer: ``ActionRecognizer``
    (``embed_motion``, ``embed_text``); transformer: the ``MaskedTransformer`` whose ``to_ae``
    maps generator latents to AE latents; device: torch device of the sidecar; bone_lengths (21,)
    metres: the skeleton the decoded joints are scored on (:func:`rest_length_joints`; default the
    runtime's one skeleton, :data:`coamd.io.bvh_export.DATASET_SKELETON`; None scores the decoded
    joints as they are, the paper's step).
    After each call ``last_scores`` (B,) holds S of the decoded z' (before the step).
    """

    def __init__(self, autoencoder, recognizer, transformer, device: str | torch.device = "cpu",
                 bone_lengths: np.ndarray | None | str = "runtime"):
        self.device = torch.device(device)
        if isinstance(bone_lengths, str):
            if bone_lengths != "runtime":
                raise ValueError(f"bone_lengths must be 'runtime', None or (21,) metres, got {bone_lengths!r}")
            from coamd.io.bvh_export import DATASET_SKELETON

            bone_lengths = DATASET_SKELETON.lengths
        self.bone_lengths = None if bone_lengths is None else torch.as_tensor(
            np.asarray(bone_lengths, np.float32), device=self.device)
        self.autoencoder = autoencoder.to(self.device).eval()
        self.recognizer = recognizer.to(self.device).eval()
        self.latent_mean = transformer.latent_mean.detach().to(self.device)
        self.latent_std = transformer.latent_std.detach().to(self.device)
        for m in (self.autoencoder, self.recognizer):
            for p in m.parameters():
                p.requires_grad_(False)
        self.last_scores: np.ndarray | None = None

    def score(self, joints: torch.Tensor, valid: torch.Tensor, text_feats: torch.Tensor,
              weights: dict[str, float] | None = None) -> torch.Tensor:
        """Eq. 6: S (B,) for joints (B, T, 21, 3) metres, valid (B, T) bool, text_feats (B, 384)."""
        w = DEFAULT_WEIGHTS if weights is None else weights
        emb = self.recognizer.embed_motion(joints, valid)
        c = self.recognizer.embed_text(text_feats)
        s = joints.new_zeros(joints.shape[0])
        for k, wk in w.items():
            if wk and k in emb:  # a recognizer built on a subset of the streams lacks the others
                s = s + wk * torch.nn.functional.cosine_similarity(emb[k], c, dim=-1)
        return s

    def guide(self, z: np.ndarray, fill: np.ndarray, text_feats: np.ndarray, gamma: float | np.ndarray,
              weights: dict[str, float] | None = None, pad: np.ndarray | None = None) -> np.ndarray:
        """z (B, L, D) generator latents z'; fill (B, L) bool M_t; text_feats (B, 384); gamma scalar
        or (B,); weights w_k (default 0.25 each); pad (B, L) bool True = padding.
        Returns z_new (B, L, D) float32 (eq. 8). Raises ValueError on mismatched shapes."""
        z = np.asarray(z, np.float32)
        B, L, _ = z.shape
        if fill.shape != (B, L) or text_feats.shape[0] != B:
            raise ValueError(f"shape mismatch: z {z.shape}, fill {fill.shape}, text {text_feats.shape}")
        pad_t = torch.zeros(B, L, dtype=torch.bool) if pad is None else torch.from_numpy(np.asarray(pad, bool))
        pad_t = pad_t.to(self.device)
        with torch.enable_grad():
            zt = torch.from_numpy(z).to(self.device).requires_grad_(True)
            joints = self.autoencoder.decode(zt * self.latent_std + self.latent_mean)
            if self.bone_lengths is not None:
                joints = rest_length_joints(joints, self.bone_lengths)
            valid = (~pad_t).repeat_interleave(FRAMES_PER_TOKEN, dim=1)
            s = self.score(joints, valid, torch.from_numpy(np.asarray(text_feats, np.float32)).to(self.device), weights)
            (g,) = torch.autograd.grad(s.sum(), zt)
        g = g.masked_fill(pad_t[..., None], 0.0)
        g_hat = g / (g.flatten(1).norm(dim=1)[:, None, None] + EPS)
        gam = torch.as_tensor(np.broadcast_to(np.asarray(gamma, np.float32), (B,)).copy(), device=self.device)
        m = torch.from_numpy(np.asarray(fill, bool)).to(self.device)[..., None].float()
        self.last_scores = s.detach().cpu().numpy()
        return (zt.detach() + gam[:, None, None] * g_hat * m).cpu().numpy().astype(np.float32)
