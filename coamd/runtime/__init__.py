"""Inference runtime: backends implementing :class:`coamd.sampling.backend.Backend` behind one
entry point, :func:`load_engine`.

Backends register a factory ``factory(bundle, **options) -> Backend`` with
:func:`register_backend`; ``torch`` is built in, the ONNX Runtime and TensorRT backends add
themselves (see ``_LAZY``: a module imported on first use that calls ``register_backend``).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from coamd.runtime.engine import DEFAULT_DATASET, Engine, Match

BackendFactory = Callable[..., Any]
_BACKENDS: dict[str, BackendFactory] = {}
# backend name -> module that registers it when imported (added by the backend owners)
_LAZY: dict[str, str] = {"onnxruntime": "coamd.runtime.onnx_backend",
                         "tensorrt": "coamd.runtime.tensorrt_backend"}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``load_engine(backend=name)`` build its backend with ``factory(bundle, **options)``."""
    _BACKENDS[name] = factory


def _torch_factory(bundle, device: str = "cpu", **_: Any):
    from coamd.runtime.torch_backend import TorchBackend

    return TorchBackend(bundle.transformer, bundle.diffusion, bundle.autoencoder, bundle.text_encoder, device)


register_backend("torch", _torch_factory)


def backend_names() -> list[str]:
    return sorted(set(_BACKENDS) | set(_LAZY))


def load_engine(backend: str = "torch", checkpoint: str | Path | None = None, *, guidance: bool = True,
                device: str = "cpu", dataset: str | Path = DEFAULT_DATASET, **options: Any) -> Engine:
    """An :class:`Engine` on ``backend`` with the weights in ``checkpoint`` (None = the shipped
    default). ``guidance``: attach the PyTorch recognizer-guidance sidecar (on ``device``).
    ``options`` go to the backend factory. Raises ValueError for an unknown backend,
    FileNotFoundError for a missing checkpoint.
    """
    if backend not in _BACKENDS and backend in _LAZY:
        importlib.import_module(_LAZY[backend])
    if backend not in _BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(backend_names())}")
    from coamd.models.bundle import load_bundle

    bundle = load_bundle(checkpoint)
    be = _BACKENDS[backend](bundle, device=device, **options)
    guide = None
    if guidance:
        from coamd.sampling.guidance import TorchGuide

        guide = TorchGuide(bundle.autoencoder, bundle.recognizer, bundle.transformer, device)
    return Engine(bundle, be, guide, dataset)


__all__ = ["load_engine", "register_backend", "backend_names", "Engine", "Match"]
