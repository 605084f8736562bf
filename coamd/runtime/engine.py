"""The inference engine: a sampler on one backend plus the recognizer for understanding.

``Engine`` is what the CLI and the server use: ``sampler`` (a
:class:`~coamd.sampling.sampler.MaskedARSampler`), ``backend_name`` (what really runs),
``recognize`` (top-k content and style of a motion) and ``retrieve`` (closest test-split motions to
a text), plus ``generate`` as a one-call convenience.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from coamd.sampling.sampler import GenerationRequest, MaskedARSampler

DEFAULT_DATASET = "data/processed"


@dataclass
class Match:
    """One ranked answer: ``label`` (class name or clip id), cosine ``score``, and for retrieval
    the clip's ``content``, ``style`` and ``caption``."""

    label: str
    score: float
    content: str | None = None
    style: str | None = None
    caption: str | None = None


class Engine:
    """Generation, recognition and retrieval on one backend.

    bundle: ``ModelBundle`` (``coamd.models.bundle.load_bundle``); backend: a
    :class:`~coamd.sampling.backend.Backend`; guide: the recognizer guidance or None;
    dataset: processed dataset folder used by :meth:`retrieve`.
    """

    def __init__(self, bundle, backend, guide=None, dataset: str | Path = DEFAULT_DATASET):
        self.bundle = bundle
        self.backend = backend
        self.guide = guide
        self.sampler = MaskedARSampler(backend, guide)
        self.dataset = Path(dataset)
        self._labels: dict[str, tuple[list[str], torch.Tensor]] | None = None
        self._retrieval: dict | None = None

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # ------------------------------------------------------------------ generation
    def generate(self, text: str, duration_s: float = 4.0, seed: int = 0, **options) -> np.ndarray:
        """Joints (T, 21, 3) float32 metres at 20 fps for ``text``; ``options`` are the other
        :class:`GenerationRequest` fields. Raises ValueError for a bad request."""
        return self.sampler.sample(GenerationRequest(text=text, duration_s=duration_s, seed=seed, **options))

    # ------------------------------------------------------------------ understanding
    def _label_embeddings(self) -> dict[str, tuple[list[str], torch.Tensor]]:
        if self._labels is None:
            lab = self.bundle.labels
            rec, te = self.bundle.recognizer, self.bundle.text_encoder
            out = {}
            with torch.inference_mode():
                for kind in ("content", "style"):
                    names, texts = list(lab[f"{kind}s"]), list(lab[f"{kind}_texts"])
                    out[kind] = (names, rec.embed_text(te.encode(texts).float()))
            self._labels = out
        return self._labels

    @staticmethod
    def _check_joints(joints: np.ndarray) -> np.ndarray:
        j = np.asarray(joints, np.float32)
        if j.ndim != 3 or j.shape[1:] != (21, 3):
            raise ValueError(f"joints must have shape (T, 21, 3), got {j.shape}")
        if j.shape[0] < 2 or not np.isfinite(j).all():
            raise ValueError("joints must be at least 2 finite frames")
        return j

    @torch.inference_mode()
    def embed_motion(self, joints: np.ndarray) -> dict[str, torch.Tensor]:
        """Recognizer embeddings {fused, joint, bone, motion} (1, E) of one motion (T, 21, 3)."""
        j = torch.from_numpy(self._check_joints(joints))[None]
        return self.bundle.recognizer.embed_motion(j, torch.ones(j.shape[:2], dtype=torch.bool))

    @torch.inference_mode()
    def recognize(self, joints: np.ndarray, top_k: int = 3) -> dict[str, list[Match]]:
        """Top-k content and style of a motion (T, 21, 3) metres at 20 fps by cosine similarity of
        the fused motion embedding to the label-text embeddings (paper section 3.1).
        Returns {"content": [Match...], "style": [Match...]}. Raises ValueError on bad input."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        e = self.embed_motion(joints)["fused"]
        out = {}
        for kind, (names, emb) in self._label_embeddings().items():
            sims = torch.nn.functional.cosine_similarity(e, emb, dim=-1)
            idx = torch.argsort(sims, descending=True)[:top_k]
            out[kind] = [Match(names[i], float(sims[i])) for i in idx.tolist()]
        return out

    def _retrieval_index(self) -> dict:
        """Fused embeddings of the test split (cached next to the dataset, keyed by the weights)."""
        if self._retrieval is not None:
            return self._retrieval
        from coamd.data.dataset import MotionDataset

        rec = self.bundle.recognizer
        h = hashlib.sha256()
        for k, v in sorted(rec.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
        cache = self.dataset / f"retrieval_{h.hexdigest()[:16]}.npz"
        if cache.exists():
            with np.load(cache) as f:
                self._retrieval = {"emb": f["emb"], "ids": list(f["ids"]), "content": list(f["content"]),
                                   "style": list(f["style"]), "caption": list(f["caption"])}
            return self._retrieval
        ds = MotionDataset(self.dataset)
        clips = ds.split("test")
        embs = []
        with torch.inference_mode():
            for c in clips:
                embs.append(self.embed_motion(c.joints)["fused"][0].numpy())
        idx = {"emb": np.stack(embs).astype(np.float32), "ids": [c.id for c in clips],
               "content": [c.content for c in clips], "style": [c.style for c in clips],
               "caption": [(c.caption_texts() or [""])[0] for c in clips]}
        np.savez(cache, **{k: np.asarray(v) for k, v in idx.items()})
        self._retrieval = idx
        return idx

    @torch.inference_mode()
    def retrieve(self, text: str, top_k: int = 5) -> list[Match]:
        """The ``top_k`` test-split motions closest to ``text`` (cosine of the recognizer's text and
        fused motion embeddings). The first call embeds the test split (cached on disk).
        Raises ValueError for empty text or top_k < 1; FileNotFoundError without the dataset."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text is empty")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        idx = self._retrieval_index()
        c = self.bundle.recognizer.embed_text(self.bundle.text_encoder.encode([text]).float())[0].numpy()
        emb = idx["emb"]
        sims = emb @ c / (np.linalg.norm(emb, axis=1) * np.linalg.norm(c) + 1e-12)
        order = np.argsort(-sims)[:top_k]
        return [Match(str(idx["ids"][i]), float(sims[i]), str(idx["content"][i]), str(idx["style"][i]),
                      str(idx["caption"][i])) for i in order]
