"""ONNX Runtime backend of the sampler (CPU by default; CUDA or TensorRT execution providers).

Implements the ``Backend`` protocol of :mod:`coamd.sampling.backend` on NumPy arrays with the
graphs written by :mod:`coamd.export.onnx_export` (text encoder, decoder, masked transformer,
diffusion-MLP velocity, optional fused ODE graphs). ``name`` is taken from
``session.get_providers()`` of the sessions actually created, never assumed: onnxruntime-gpu
silently falls back to the CPU provider when CUDA cannot be loaded.

Threading (DESIGN.md section 5): the sessions run one after another on the same cores, so each
uses ``intra_op_num_threads`` = the usable cores (at most 8 by default), one inter-op thread and
``session.intra_op.allow_spinning = 0`` (spinning pools of several sessions fight over 2 cores).

On a GPU provider, inputs that are reused across calls (the transformer context ``h`` during the
ODE steps of one iteration) are kept on the device with IO binding instead of being copied for
every velocity evaluation.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from coamd.export.manifest import GRAPHS, ExportError, ode_graph_name, read_manifest

DEVICES = ("cpu", "cuda", "tensorrt")


class ProviderUnavailable(ValueError):
    """The requested execution provider is not available in this onnxruntime build/machine
    (a ValueError so that callers reporting bad options report it the same way)."""


def default_threads() -> int:
    """Intra-op threads: the cores this process may use (affinity), capped at 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def session_options(threads: int | None = None, spinning: bool = False):
    """``onnxruntime.SessionOptions`` for latency: all graph optimisations, sequential execution,
    ``threads`` intra-op threads (default :func:`default_threads`), spinning off unless asked."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = int(threads or default_threads())
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def providers_for(device: str, *, trt_cache_dir: str | Path | None = None, fp16: bool = False,
                  device_id: int = 0) -> list:
    """Execution-provider list for ``device`` in ``DEVICES``.

    ``tensorrt``: TensorRT EP with an engine cache (``trt_cache_dir``), optional fp16, then CUDA and
    CPU for nodes TensorRT does not take. Raises ProviderUnavailable when the provider is not in
    ``onnxruntime.get_available_providers()`` (e.g. the CPU-only wheel), ValueError for an
    unknown device.
    """
    import onnxruntime as ort

    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    avail = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in avail:
        raise ProviderUnavailable(
            f"{device}: CUDAExecutionProvider not available (onnxruntime {ort.__version__} has {avail}); "
            "install onnxruntime-gpu on a machine with an NVIDIA GPU")
    cuda = ("CUDAExecutionProvider", {"device_id": device_id})
    if device == "cuda":
        return [cuda, "CPUExecutionProvider"]
    if "TensorrtExecutionProvider" not in avail:
        raise ProviderUnavailable(f"tensorrt: TensorrtExecutionProvider not available (have {avail}); "
                                  "install onnxruntime-gpu with TensorRT libraries")
    cache = Path(trt_cache_dir or Path.home() / ".cache" / "coamd" / "trt")
    cache.mkdir(parents=True, exist_ok=True)
    trt = ("TensorrtExecutionProvider", {
        "device_id": device_id,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
        "trt_fp16_enable": bool(fp16),
        "trt_max_workspace_size": 2 << 30,
    })
    return [trt, cuda, "CPUExecutionProvider"]


class OnnxRuntimeBackend:
    """The sampler's backend on ONNX Runtime sessions of an export folder.

    export_dir: folder written by ``coamd export`` (``manifest.json`` + graphs).
    device: ``cpu`` (default), ``cuda`` or ``tensorrt`` (see :func:`providers_for`).
    threads: intra-op threads per session (default :func:`default_threads`).
    fp16 / trt_cache_dir: TensorRT options. fused_ode: load the fused ODE graphs present in the
    folder (:meth:`solve` then runs all steps of an iteration in one call).
    Raises ExportError for a missing/incomplete export, ProviderUnavailable for a missing provider.
    """

    def __init__(self, export_dir: str | Path, device: str = "cpu", threads: int | None = None,
                 fp16: bool = False, trt_cache_dir: str | Path | None = None, fused_ode: bool = True,
                 text_encoder: bool = True):
        import onnxruntime as ort

        self.export_dir = Path(export_dir)
        need = [g for g in GRAPHS if text_encoder or g != "text_encoder"]
        self.manifest = read_manifest(self.export_dir, need)
        self.device = device
        self.providers = providers_for(device, trt_cache_dir=trt_cache_dir, fp16=fp16)
        so = session_options(threads)
        files = {g: self.manifest["graphs"][g]["file"] for g in need}
        if "encoder" in self.manifest["graphs"]:
            files["encoder"] = self.manifest["graphs"]["encoder"]["file"]
        if fused_ode:
            files.update({g: v["file"] for g, v in self.manifest["graphs"].items() if g.startswith("ode_")})
        self.sessions: dict[str, Any] = {}
        for g, f in files.items():
            self.sessions[g] = ort.InferenceSession(str(self.export_dir / f), sess_options=so,
                                                    providers=self._providers_for_graph(g))
        self._outputs = {g: [o.name for o in s.get_outputs()] for g, s in self.sessions.items()}
        used = self.sessions["transformer"].get_providers()
        self.provider = used[0]
        self.name = f"onnxruntime:{self.provider}"
        self.on_gpu = self.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        self._tokenizer = None
        gen = self.manifest["config"]["generator"]
        self.latent_dim, self.width, self.max_tokens = gen["latent_dim"], gen["width"], gen["max_tokens"]
        self._dev_cache: tuple[Any, Any] | None = None  # (host array, OrtValue on device)

    # -- helpers
    def _providers_for_graph(self, graph: str) -> list:
        """Provider list of one graph's session (subclasses add per-graph options)."""
        return self.providers

    def providers_in_use(self) -> dict[str, list[str]]:
        """``session.get_providers()`` of every session (what really runs)."""
        return {g: s.get_providers() for g, s in self.sessions.items()}

    def _run(self, graph: str, feeds: dict[str, np.ndarray], keep_on_device: str | None = None) -> np.ndarray:
        sess = self.sessions[graph]
        if not self.on_gpu:
            return sess.run(self._outputs[graph], feeds)[0]
        import onnxruntime as ort

        b = sess.io_binding()
        for k, v in feeds.items():
            if k == keep_on_device:
                cached = self._dev_cache
                if cached is None or cached[0] is not v:
                    cached = (v, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v), "cuda", 0))
                    self._dev_cache = cached
                b.bind_ortvalue_input(k, cached[1])
            else:
                b.bind_cpu_input(k, np.ascontiguousarray(v))
        b.bind_output(self._outputs[graph][0], "cuda", 0)
        sess.run_with_iobinding(b)
        return b.copy_outputs_to_cpu()[0]

    # -- Backend protocol
    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> (B, 384) float32 unit MiniLM features. Raises ValueError for empty texts."""
        if "text_encoder" not in self.sessions:
            raise RuntimeError("this backend was created with text_encoder=False")
        if self._tokenizer is None:
            from coamd.export.text import Tokenizer

            self._tokenizer = Tokenizer()
        ids, mask = self._tokenizer(texts)
        return self._run("text_encoder", {"input_ids": ids, "attention_mask": mask})

    def context(self, z: np.ndarray, mask: np.ndarray, pad: np.ndarray, text: np.ndarray,
                drop: np.ndarray | None = None) -> np.ndarray:
        """Masked transformer: z (B,L,D) float32, mask (B,L) bool True = unknown, pad (B,L) bool
        True = padding, text (B,384), drop (B,) bool True = null text (unconditional rows of
        classifier-free guidance; None = all conditional) -> h (B,L,W) float32. One call."""
        B, L = mask.shape
        if L > self.max_tokens:
            raise ValueError(f"{L} tokens exceed the model's maximum of {self.max_tokens}")
        if drop is None:
            drop = np.zeros(B, dtype=bool)
        return self._run("transformer", {
            "z": np.ascontiguousarray(z, dtype=np.float32), "mask": np.ascontiguousarray(mask, dtype=bool),
            "text": np.ascontiguousarray(text, dtype=np.float32), "pad": np.ascontiguousarray(pad, dtype=bool),
            "drop": np.ascontiguousarray(drop, dtype=bool)})

    def velocity(self, x: np.ndarray, t: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Diffusion MLP: x (N,D), t (N,) in [0,1], h (N,W) -> v (N,D) float32."""
        return self._run("velocity", {"x": np.ascontiguousarray(x, dtype=np.float32),
                                      "t": np.ascontiguousarray(t, dtype=np.float32),
                                      "h": h if h.dtype == np.float32 and h.flags.c_contiguous
                                      else np.ascontiguousarray(h, dtype=np.float32)},
                         keep_on_device="h")

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Generator latents (B,L,D) -> joints (B,4L,21,3) float32 metres at 20 fps."""
        return self._run("decoder", {"z": np.ascontiguousarray(z, dtype=np.float32)})

    def encode(self, joints: np.ndarray) -> np.ndarray:
        """Joints (B,T,21,3) metres, T % 4 == 0 -> generator latents (B,T/4,D) (editing).
        Raises ValueError for a bad shape, RuntimeError when the export has no encoder graph."""
        if "encoder" not in self.sessions:
            raise RuntimeError(f"{self.export_dir} has no encoder graph; re-export to edit motions")
        j = np.ascontiguousarray(joints, dtype=np.float32)
        if j.ndim != 4 or j.shape[2:] != (21, 3) or j.shape[1] == 0 or j.shape[1] % 4:
            raise ValueError(f"joints must be (B, T, 21, 3) with T a positive multiple of 4, got {j.shape}")
        return self._run("encoder", {"joints": j})

    # -- optional fast path: all ODE steps of one iteration in one call
    def has_fused_ode(self, solver: str, steps: int, cfg: bool) -> bool:
        """Whether a fused ODE graph for these settings was exported and loaded."""
        return ode_graph_name(solver, steps, cfg) in self.sessions

    def solve(self, x: np.ndarray, h: np.ndarray, ts: np.ndarray, cfg_scale: float | None,
              solver: str) -> np.ndarray:
        """All fixed ODE steps at once (``FusedODEGraph``): x (N,D) noise at ts[0] = 1, h (N,W) or
        with CFG (2N,W) conditional rows then unconditional rows, ts (n+1,) -> x (N,D) at ts[-1].
        Raises KeyError when no fused graph matches (check :meth:`has_fused_ode`)."""
        cfg = cfg_scale is not None
        g = ode_graph_name(solver, len(ts) - 1, cfg)
        if g not in self.sessions:
            raise KeyError(f"no fused ODE graph {g} in {self.export_dir}")
        return self._run(g, {"x": np.ascontiguousarray(x, dtype=np.float32),
                             "h": np.ascontiguousarray(h, dtype=np.float32),
                             "ts": np.ascontiguousarray(ts, dtype=np.float32),
                             "cfg": np.asarray([cfg_scale if cfg else 1.0], dtype=np.float32)})


# ----------------------------------------------------------------------------- registry
def export_folder(bundle, progress: bool = True) -> Path:
    """The export folder of ``bundle`` (a :class:`~coamd.runtime.engine.BundleRef` or a loaded
    bundle), exporting on first use (:func:`coamd.export.cache.ensure_export`, keyed by the
    checkpoint files' hashes). A cached export of a ``BundleRef``'s checkpoint loads no models
    and imports no torch. Raises FileNotFoundError for a checkpoint without the generator."""
    from coamd.export.cache import ensure_export
    from coamd.runtime.engine import BundleRef

    if isinstance(bundle, BundleRef):
        return ensure_export(checkpoint=bundle.path, bundle=bundle, progress=progress)
    return ensure_export(bundle=bundle, progress=progress)


def _factory(bundle, device: str = "cpu", threads: int | None = None, fused_ode: bool = False,
             export_dir: str | Path | None = None, progress: bool = True, **_: Any) -> OnnxRuntimeBackend:
    """``load_engine(backend="onnxruntime")``: export the checkpoint on first use (cached by its
    files' hashes, :func:`export_folder`) and open the sessions. ``device`` is
    ``cpu`` (default) or ``cuda``. ``fused_ode`` is off by default: on the 2-core CPU the fused
    ODE graph measured slower than one velocity call per step (benchmarks/results)."""
    d = Path(export_dir) if export_dir is not None else export_folder(bundle, progress)
    dev = "cuda" if str(device).startswith("cuda") else device
    return OnnxRuntimeBackend(d, device=dev, threads=threads, fused_ode=fused_ode)


def _register() -> None:
    from coamd.runtime import register_backend

    register_backend("onnxruntime", _factory)


_register()

__all__ = ["OnnxRuntimeBackend", "ProviderUnavailable", "providers_for", "session_options",
           "default_threads", "export_folder", "ExportError", "DEVICES"]
