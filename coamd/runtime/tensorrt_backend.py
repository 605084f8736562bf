"""TensorRT backend: the ONNX Runtime backend on the TensorRT execution provider.

Engines are built by ONNX Runtime on first use with explicit optimisation profiles for the dynamic
axes (:func:`coamd.export.tensorrt.profile_shapes`) and cached on disk (engine + timing cache), so
later processes start fast. ``fp16=True`` lets TensorRT use half precision. The provider really in
use is read back from ``session.get_providers()``: when the TensorRT provider cannot start, this
backend raises instead of silently running on CUDA or the CPU.
"""
from __future__ import annotations

from pathlib import Path

from coamd.runtime.onnx_backend import OnnxRuntimeBackend, ProviderUnavailable, export_folder


class TensorRTBackend(OnnxRuntimeBackend):
    """``OnnxRuntimeBackend`` with ``device="tensorrt"`` and per-graph optimisation profiles.

    Raises ProviderUnavailable where the TensorRT execution provider is missing or fell back.
    """

    def __init__(self, export_dir: str | Path, fp16: bool = False, trt_cache_dir: str | Path | None = None,
                 threads: int | None = None, fused_ode: bool = True):
        self.fp16 = fp16
        self._trt_cache_dir = trt_cache_dir or Path(export_dir) / "trt_cache"
        super().__init__(export_dir, device="tensorrt", threads=threads, fp16=fp16,
                         trt_cache_dir=self._trt_cache_dir, fused_ode=fused_ode)
        if self.provider != "TensorrtExecutionProvider":
            raise ProviderUnavailable(f"the TensorRT execution provider did not start (session uses "
                                      f"{self.sessions['transformer'].get_providers()})")
        self.name = f"tensorrt:{self.provider}{':fp16' if fp16 else ''}"

    def _providers_for_graph(self, graph: str) -> list:
        from coamd.export.tensorrt import ort_trt_profile_options

        provs = []
        for p in self.providers:
            if isinstance(p, tuple) and p[0] == "TensorrtExecutionProvider":
                opts = dict(p[1])
                try:
                    opts.update(ort_trt_profile_options(self.manifest, graph))
                except KeyError:
                    pass
                provs.append((p[0], opts))
            else:
                provs.append(p)
        return provs


def _factory(bundle, device: str = "cuda", fp16: bool = False, trt_cache_dir: str | Path | None = None,
             threads: int | None = None, export_dir: str | Path | None = None, progress: bool = True,
             **_) -> TensorRTBackend:
    """``load_engine(backend="tensorrt")``: export on first use (cached, no torch on a hit), then
    TensorRT EP sessions.
    Raises ProviderUnavailable on machines without the TensorRT execution provider."""
    d = Path(export_dir) if export_dir is not None else export_folder(bundle, progress)
    return TensorRTBackend(d, fp16=fp16, trt_cache_dir=trt_cache_dir, threads=threads)


def _register() -> None:
    from coamd.runtime import register_backend

    register_backend("tensorrt", _factory)


_register()
