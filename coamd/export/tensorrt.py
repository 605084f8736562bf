"""TensorRT: optimisation profiles for the dynamic axes, and prebuilt engines.

Two ways to run the exported graphs on TensorRT:

1. ONNX Runtime's TensorRT execution provider (:mod:`coamd.runtime.tensorrt_backend`): engines are
   built by ONNX Runtime on first use and cached on disk; :func:`profile_shapes` gives the
   explicit min/opt/max profile of every graph so one engine covers all request sizes instead of
   being rebuilt when a new shape arrives.
2. Prebuilt serialized engines (:func:`build_engines`, needs the ``tensorrt`` Python package and an
   NVIDIA GPU): one ``<graph>.plan`` per graph with the same optimisation profiles, fp16 optional.

Without a GPU or the package both raise :class:`TensorRTUnavailable` naming what is missing.
"""
from __future__ import annotations

import json
from pathlib import Path

from coamd.export.manifest import read_manifest


class TensorRTUnavailable(RuntimeError):
    """TensorRT (the Python package, a CUDA GPU, or the execution provider) is not present."""


def tensorrt_status() -> tuple[bool, str]:
    """(available, reason): whether prebuilt engines can be built here, and why not."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False, "the `tensorrt` Python package is not installed (pip install coamd[tensorrt])"
    try:
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    except ImportError:  # pragma: no cover
        pass
    return True, "tensorrt " + __import__("tensorrt").__version__


def profile_shapes(manifest: dict, graph: str, max_batch: int = 16, opt_tokens: int = 25,
                   max_text_tokens: int = 64) -> dict[str, dict[str, tuple[int, ...]]]:
    """Optimisation profile ``{"min"|"opt"|"max": {input: shape}}`` of one exported graph.

    Batch up to ``max_batch`` requests (x2 rows for classifier-free guidance), sequences up to the
    model's ``max_tokens`` latent tokens, ``opt_tokens`` tokens as the tuned size (5 s motions),
    text up to ``max_text_tokens`` word pieces. Raises KeyError for an unknown graph."""
    g = manifest["config"]["generator"]
    D, W, Lmax = g["latent_dim"], g["width"], g["max_tokens"]
    B2 = 2 * max_batch
    opt_b = 2
    if graph == "text_encoder":
        return {"min": {"input_ids": (1, 2), "attention_mask": (1, 2)},
                "opt": {"input_ids": (1, 16), "attention_mask": (1, 16)},
                "max": {"input_ids": (B2, max_text_tokens), "attention_mask": (B2, max_text_tokens)}}
    if graph == "decoder":
        return {"min": {"z": (1, 1, D)}, "opt": {"z": (1, opt_tokens, D)}, "max": {"z": (B2, Lmax, D)}}
    if graph == "transformer":
        def t(b, l):
            return {"z": (b, l, D), "mask": (b, l), "text": (b, 384), "pad": (b, l), "drop": (b,)}
        return {"min": t(1, 1), "opt": t(opt_b, opt_tokens), "max": t(B2, Lmax)}
    if graph == "velocity":
        def v(n):
            return {"x": (n, D), "t": (n,), "h": (n, W)}
        return {"min": v(1), "opt": v(2 * 8), "max": v(B2 * Lmax)}
    if graph.startswith("ode_"):
        C = 2 if graph.endswith("_cfg") else 1
        n_ts = manifest["graphs"][graph]["inputs"]["ts"][0]  # steps + 1 times

        def o(n):
            return {"x": (n, D), "h": (C * n, W), "ts": (int(n_ts),), "cfg": (1,)}
        return {"min": o(1), "opt": o(8), "max": o(max_batch * Lmax)}
    raise KeyError(f"no optimisation profile for graph {graph!r}")


def ort_trt_profile_options(manifest: dict, graph: str, **kw) -> dict[str, str]:
    """The TensorRT execution provider's ``trt_profile_{min,opt,max}_shapes`` option strings."""
    prof = profile_shapes(manifest, graph, **kw)
    return {f"trt_profile_{k}_shapes": ",".join(f"{n}:{'x'.join(str(d) for d in s)}" for n, s in prof[k].items())
            for k in ("min", "opt", "max")}


def build_engines(export_dir: str | Path, out_dir: str | Path | None = None, fp16: bool = False,
                  workspace_gb: float = 2.0, graphs: list[str] | None = None) -> dict[str, str]:
    """Build serialized TensorRT engines (``<graph>.plan``) with optimisation profiles.

    Returns {graph: plan path}; writes ``engines.json`` (profiles, precision, TensorRT version).
    Raises TensorRTUnavailable without the package or a GPU, RuntimeError when parsing fails.
    """
    ok, why = tensorrt_status()
    if not ok:
        raise TensorRTUnavailable(why)
    import tensorrt as trt

    export_dir = Path(export_dir)
    out = Path(out_dir or export_dir / "tensorrt")
    out.mkdir(parents=True, exist_ok=True)
    man = read_manifest(export_dir, require=())
    logger = trt.Logger(trt.Logger.WARNING)
    built, info = {}, {"tensorrt": trt.__version__, "fp16": fp16, "graphs": {}}
    for g in graphs or list(man["graphs"]):
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(export_dir / man["graphs"][g]["file"])):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {g}: {errs}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        prof = profile_shapes(man, g)
        p = builder.create_optimization_profile()
        for name in prof["min"]:
            p.set_shape(name, prof["min"][name], prof["opt"][name], prof["max"][name])
        config.add_optimization_profile(p)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(f"TensorRT failed to build an engine for {g}")
        path = out / f"{g}.plan"
        path.write_bytes(bytes(plan))
        built[g] = str(path)
        info["graphs"][g] = {"plan": path.name, "profile": {k: {n: list(s) for n, s in v.items()}
                                                            for k, v in prof.items()}}
    (out / "engines.json").write_text(json.dumps(info, indent=1))
    return built
