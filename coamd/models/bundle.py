"""All trained models of one checkpoint folder, loaded together (DESIGN.md: weights layout).

A checkpoint folder (default: the shipped ``coamd/checkpoints/default``) holds
``autoencoder.pt``, ``recognizer.pt`` and ``generator.pt`` (masked transformer + diffusion MLP),
each ``{"config": dict, "state_dict": ...}``. The label texts the recognizer was trained with
travel in ``recognizer.pt``'s ``meta``.

Importing this module imports no torch (:func:`load_bundle` does), so the runtime can check a
checkpoint folder (:func:`checkpoint_folder`) without loading it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from coamd.paths import DEFAULT_CHECKPOINT

__all__ = ["DEFAULT_CHECKPOINT", "ModelBundle", "checkpoint_folder", "load_bundle"]


class ModelBundle:
    """The models of a checkpoint folder (eval mode, CPU, no gradients on parameters).

    Attributes:
        autoencoder: :class:`~coamd.models.autoencoder.MotionAutoencoder`.
        recognizer: :class:`~coamd.models.recognizer.ActionRecognizer` (None if absent).
        transformer, diffusion: the generator's ``MaskedTransformer`` / ``DiffusionMLP`` (None
            until ``generator.pt`` exists).
        text_encoder: the frozen :class:`~coamd.models.text.TextEncoder` (loaded on first use).
        labels: ``{"contents", "styles", "content_texts", "style_texts"}`` lists.
        config: ``{model name: config dict}`` plus ``path``.
    """

    def __init__(self, path: Path, autoencoder, recognizer=None, transformer=None, diffusion=None,
                 labels: dict[str, list[str]] | None = None, config: dict[str, Any] | None = None):
        self.path = Path(path)
        self.autoencoder = autoencoder
        self.recognizer = recognizer
        self.transformer = transformer
        self.diffusion = diffusion
        self.labels = labels or {}
        self.config = config or {}
        self._text_encoder = None

    @property
    def text_encoder(self):
        if self._text_encoder is None:
            from coamd.models.text import TextEncoder

            self._text_encoder = TextEncoder()
        return self._text_encoder

    @text_encoder.setter
    def text_encoder(self, enc) -> None:
        self._text_encoder = enc

    def __repr__(self) -> str:
        have = [k for k in ("autoencoder", "recognizer", "transformer", "diffusion") if getattr(self, k) is not None]
        return f"ModelBundle({self.path}, models={have})"


def _freeze(m):
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def checkpoint_folder(path: str | Path | None = None) -> Path:
    """The checkpoint folder ``path`` (None = the shipped default), checked without loading it.

    Raises FileNotFoundError when the folder or its ``autoencoder.pt`` is missing."""
    root = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint folder {root} does not exist")
    ae_path = root / "autoencoder.pt"
    if not ae_path.exists():
        raise FileNotFoundError(f"{ae_path} is missing; train it with `coamd train ae --out {ae_path}`")
    return root


def load_bundle(path: str | Path | None = None, text_encoder=None) -> ModelBundle:
    """Load the models of checkpoint folder ``path`` (None = the shipped default).

    Raises FileNotFoundError when the folder or its ``autoencoder.pt`` is missing (the other
    files are optional: absent models are None).
    """
    import torch

    from coamd.models.autoencoder import MotionAutoencoder
    from coamd.models.recognizer import ActionRecognizer

    root = checkpoint_folder(path)
    ae_path = root / "autoencoder.pt"
    load = lambda p: torch.load(p, map_location="cpu", weights_only=False)  # noqa: E731
    ck = load(ae_path)
    config: dict[str, Any] = {"path": str(root), "autoencoder": ck["config"]}
    ae = _freeze(MotionAutoencoder.from_checkpoint(ck))
    rec, labels = None, {}
    if (root / "recognizer.pt").exists():
        ck = load(root / "recognizer.pt")
        rec = _freeze(ActionRecognizer.from_checkpoint(ck))
        config["recognizer"] = ck["config"]
        meta = ck.get("meta", {})
        labels = {k: list(meta[k]) for k in ("contents", "styles", "content_texts", "style_texts") if k in meta}
    tr = df = None
    if (root / "generator.pt").exists():
        from coamd.models.generator import load_generator

        tr, df = load_generator(root / "generator.pt")
        tr, df = _freeze(tr), _freeze(df)
        config["generator"] = load(root / "generator.pt").get("config", {})
    bundle = ModelBundle(root, ae, rec, tr, df, labels, config)
    if text_encoder is not None:
        bundle.text_encoder = text_encoder
    return bundle
