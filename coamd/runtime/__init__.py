"""Inference runtime: backends implementing :class:`coamd.sampling.backend.Backend` behind one
entry point, :func:`load_engine`.

Backends register a factory ``factory(bundle, **options) -> Backend`` with
:func:`register_backend`; ``torch`` is built in, the ONNX Runtime and TensorRT backends add
themselves (see ``_LAZY``: a module imported on first use that calls ``register_backend``).
``bundle`` is a :class:`~coamd.runtime.engine.BundleRef`: the checkpoint folder, whose models load
(torch) on first attribute access. The ONNX Runtime and TensorRT factories only read its ``path``
when the checkpoint's graphs are already exported (:func:`coamd.export.cache.ensure_export`).

Importing this package imports no torch. Torch is imported only when something needs it: the
torch backend, the guidance sidecar (``guidance=True``), recognition/retrieval (first call), or an
export on a cache miss. So unguided generation on ONNX Runtime with exported graphs runs without it.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from coamd.paths import DEFAULT_DATASET
from coamd.runtime.engine import BundleRef, Engine, Match

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


def default_torch_threads() -> int:
    """PyTorch intra-op threads for one-off CLI runs: ``COAMD_THREADS`` if set; else all cores (at
    most 2), but 1 when other work already keeps the cores busy (:func:`coamd.cpu.torch_threads`):
    two OpenMP threads competing with other jobs were measured 6-10x slower on the 2-core box."""
    from coamd.cpu import torch_threads

    return torch_threads(cap=2)[0]


def load_engine(backend: str = "torch", checkpoint: str | Path | None = None, *, guidance: bool = True,
                device: str = "cpu", dataset: str | Path = DEFAULT_DATASET, torch_threads: int | Callable[[], int] | None = None,
                **options: Any) -> Engine:
    """An :class:`Engine` on ``backend`` with the weights in ``checkpoint`` (None = the shipped
    default). ``guidance``: attach the PyTorch recognizer-guidance sidecar (on ``device``).
    ``torch_threads``: intra-op threads torch gets if this engine imports it, or a function that
    chooses them then, such as :func:`default_torch_threads` (None: leave torch's setting).
    ``options`` go to the backend factory.

    With ``backend="onnxruntime"`` (or ``tensorrt``), ``guidance=False`` and the checkpoint's graphs
    already in the export cache, no torch is imported: the backend is built from the export folder
    (manifest + graphs); the models load on the first recognition/retrieval call.
    Loading also compiles the streams' causal solver and foot-contact cleanup
    (:func:`coamd.sampling.skeleton_projection.warm_up`, :func:`coamd.sampling.cleanup.warm_up`:
    numba, a few seconds on a cold cache, then loaded from numba's disk cache), so that no request
    pays it, and encodes every canonical caption of the text-understanding stage once (408
    sentences, about 0.6 s on ONNX Runtime; :meth:`MaskedARSampler.pin_texts`).
    Raises ValueError for an unknown backend, FileNotFoundError for a missing checkpoint.
    """
    if backend not in _BACKENDS and backend in _LAZY:
        importlib.import_module(_LAZY[backend])
    if backend not in _BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(backend_names())}")
    bundle = BundleRef(checkpoint, torch_threads=torch_threads)
    be = _BACKENDS[backend](bundle, device=device, **options)
    guide = None
    if guidance:
        from coamd.sampling.guidance import TorchGuide

        guide = TorchGuide(bundle.autoencoder, bundle.recognizer, bundle.transformer, device)
    engine = Engine(bundle, be, guide, dataset)
    from coamd.sampling.cleanup import warm_up as warm_up_cleanup
    from coamd.sampling.skeleton_projection import warm_up

    warm_up()
    warm_up_cleanup()
    understanding = engine.text_understanding()
    if understanding is not None:   # no request pays the encoding of its conditioned caption
        engine.sampler.pin_texts(understanding.canonical_texts())
    return engine


__all__ = ["load_engine", "register_backend", "backend_names", "default_torch_threads", "Engine", "Match",
           "BundleRef", "DEFAULT_DATASET"]
