"""ONNX export of the generation graphs (torch dynamo exporter, dynamic axes) and a manifest.

Graphs (DESIGN.md section 2; all float32, opset 18):

``text_encoder.onnx``  input_ids (B,S) int64, attention_mask (B,S) int64 -> text_feats (B,384)
                       all-MiniLM-L6-v2 with mean pooling and L2 normalisation inside; the
                       tokenizer runs on the host (:class:`coamd.export.text.Tokenizer`).
``decoder.onnx``       z (B,L,D) generator latents -> joints (B,4L,21,3) metres at 20 fps
                       (de-standardisation ``to_ae`` and the causal AE decoder).
``transformer.onnx``   z (B,L,D), mask (B,L) bool (True = unknown), text (B,384), pad (B,L) bool
                       (True = padding), drop (B,) bool (True = learned null text) -> h (B,L,W).
                       Classifier-free guidance runs the conditional and unconditional rows in
                       ONE call: the host stacks them on the batch axis with ``drop``.
``velocity.onnx``      x (N,D), t (N,), h (N,W) -> v (N,D): one evaluation of the diffusion MLP
                       (paper eq. 5, velocity ``eps - z0``, appendix A.1).
``ode_<solver><n>.onnx`` optional: all n fixed steps of the flow ODE for one iteration fused in
                       one graph: x1 (N,D) noise, h (C*N,W) (C = 2 with CFG: conditional rows
                       then unconditional rows), ts (n+1,) times from 1 to 0, cfg (1,) scale
                       -> x0 (N,D). One call instead of n (or 2n for Heun).

Dynamic axes: batch B, sequence L (1..max_tokens), tokens N, text length S. The dynamo exporter is
used because the legacy TorchScript exporter bakes sequence lengths into reshapes.
A ``manifest.json`` next to the graphs records the checkpoint hash and files, the cache key,
configs, graph inputs/outputs and the torch/onnx versions, so a cache can be checked before use.
Reading a manifest and keying the cache need no torch: :mod:`coamd.export.manifest` (whose names
this module re-exports).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from coamd.export.manifest import (EXPORTER_VERSION, FORMAT_VERSION, GRAPHS, MANIFEST, OPSET, OPTIONAL_GRAPHS,
                                   ExportError, checkpoint_files, checkpoint_hash, checkpoint_key, io_spec,
                                   ode_graph_name, read_manifest)

__all__ = ["EXPORTER_VERSION", "FORMAT_VERSION", "GRAPHS", "MANIFEST", "OPSET", "OPTIONAL_GRAPHS", "ExportError",
           "checkpoint_hash", "checkpoint_key", "ode_graph_name", "read_manifest", "bundle_hash", "export_models",
           "export_text_encoder", "export_decoder", "export_encoder", "export_transformer", "export_velocity",
           "export_fused_ode", "DecoderGraph", "EncoderGraph", "ContextGraph", "VelocityGraph", "FusedODEGraph"]


# ----------------------------------------------------------------------------- wrappers
class DecoderGraph(nn.Module):
    """Generator latents (B,L,D) -> joints (B,4L,21,3): ``ae.decode(transformer.to_ae(z))``.

    ``latent_mean``/``latent_std`` are the transformer's standardisation buffers (D,); pass None
    for both to export the plain AE decoder (AE-space input)."""

    def __init__(self, autoencoder: nn.Module, latent_mean: torch.Tensor | None = None,
                 latent_std: torch.Tensor | None = None):
        super().__init__()
        self.ae = autoencoder
        D = autoencoder.config.latent_dim
        self.register_buffer("mean", torch.zeros(D) if latent_mean is None else latent_mean.detach().clone())
        self.register_buffer("std", torch.ones(D) if latent_std is None else latent_std.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.ae.decode(z * self.std + self.mean)


class EncoderGraph(nn.Module):
    """Joints (B,T,21,3) metres, T % 4 == 0 -> generator latents (B,T/4,D) (editing requests)."""

    def __init__(self, autoencoder: nn.Module, latent_mean: torch.Tensor, latent_std: torch.Tensor):
        super().__init__()
        self.ae = autoencoder
        self.register_buffer("mean", latent_mean.detach().clone())
        self.register_buffer("std", latent_std.detach().clone())

    def forward(self, joints: torch.Tensor) -> torch.Tensor:
        return (self.ae.encode(joints) - self.mean) / self.std


class ContextGraph(nn.Module):
    """``MaskedTransformer(z, mask, text, pad, drop) -> h`` with every argument explicit."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(self, z, mask, text, pad, drop):
        return self.transformer(z, mask, text, pad, drop)


class VelocityGraph(nn.Module):
    """One diffusion-MLP evaluation ``v(x, t, h)``."""

    def __init__(self, diffusion: nn.Module):
        super().__init__()
        self.diffusion = diffusion

    def forward(self, x, t, h):
        return self.diffusion(x, t, h)


class FusedODEGraph(nn.Module):
    """All ``steps`` fixed steps of the flow ODE from t = 1 (noise) to t = 0 (data) in one graph.

    forward(x (N,D) noise, h (C*N,W), ts (steps+1,) decreasing times, cfg (1,) scale) -> (N,D).
    With ``cfg=True`` (C = 2) rows ``h[:N]`` are conditional and ``h[N:]`` unconditional and the
    velocity is ``v_u + s (v_c - v_u)`` (classifier-free guidance); both halves in one MLP call.
    Solver ``euler``: ``x <- x + (t1 - t0) v(x, t0)``; ``heun``: the trapezoidal correction with
    a second evaluation at t1 (appendix A.1, eq. A6, fixed steps).
    """

    def __init__(self, diffusion: nn.Module, steps: int, solver: str = "euler", cfg: bool = True):
        super().__init__()
        if solver not in ("euler", "heun"):
            raise ValueError(f"solver must be 'euler' or 'heun', got {solver!r}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.diffusion, self.steps, self.solver, self.cfg = diffusion, int(steps), solver, bool(cfg)

    def _v(self, x, t, h, s):
        n = x.shape[0]
        if self.cfg:
            v = self.diffusion(torch.cat([x, x]), t.expand(2 * n), h)
            vc, vu = v[:n], v[n:]
            return vu + s * (vc - vu)
        return self.diffusion(x, t.expand(n), h)

    def forward(self, x, h, ts, cfg):
        s = cfg.reshape(())
        for i in range(self.steps):
            t0, t1 = ts[i:i + 1], ts[i + 1:i + 2]
            v0 = self._v(x, t0, h, s)
            xe = x + (t1 - t0) * v0
            if self.solver == "heun":
                v1 = self._v(xe, t1, h, s)
                xe = x + (t1 - t0) * 0.5 * (v0 + v1)
            x = xe
        return x


# ----------------------------------------------------------------------------- exporter
def _export(module: nn.Module, args: tuple, path: Path, input_names: list[str],
            output_names: list[str], dynamic_shapes: dict, verbose: bool = False) -> Path:
    """torch.onnx.export(dynamo=True) into one self-contained .onnx file, checked by onnx."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    sink = io.StringIO()
    module = module.eval()
    quiet = contextlib.redirect_stdout(sink) if not verbose else contextlib.nullcontext()
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    with torch.no_grad(), warnings.catch_warnings(), quiet:
        warnings.simplefilter("ignore")
        if not verbose:
            logger.setLevel(logging.ERROR)
        try:
            torch.onnx.export(module, args, str(tmp), dynamo=True, input_names=input_names,
                              output_names=output_names, dynamic_shapes=dynamic_shapes,
                              opset_version=OPSET, external_data=False, optimize=True,
                              verbose=verbose)
        except Exception as exc:  # the exporter's own errors are long; keep the cause
            raise ExportError(f"exporting {path.name} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            logger.setLevel(level)
    onnx.checker.check_model(str(tmp))
    os.replace(tmp, path)
    return path


def _dims(**bounds: tuple[int, int]) -> dict[str, Any]:
    return {k: torch.export.Dim(k, min=lo, max=hi) for k, (lo, hi) in bounds.items()}


def export_text_encoder(text_encoder: nn.Module, out_dir: str | Path, verbose: bool = False) -> Path:
    """Export ``TextEncoder.forward(input_ids, attention_mask)`` -> ``out_dir/text_encoder.onnx``.

    Dynamic batch (1..1024) and token count (2..512)."""
    d = _dims(batch=(1, 1024), tokens=(2, 512))
    ids = torch.tensor([[101, 1037, 2711, 7365, 2830, 102], [101, 5926, 102, 0, 0, 0],
                        [101, 4400, 2192, 102, 0, 0]], dtype=torch.int64)
    am = (ids != 0).to(torch.int64)
    return _export(text_encoder, (ids, am), Path(out_dir) / "text_encoder.onnx",
                   ["input_ids", "attention_mask"], ["text_feats"],
                   {"input_ids": {0: d["batch"], 1: d["tokens"]},
                    "attention_mask": {0: d["batch"], 1: d["tokens"]}}, verbose)


def export_decoder(autoencoder: nn.Module, transformer: nn.Module | None, out_dir: str | Path,
                   max_tokens: int = 512, verbose: bool = False) -> Path:
    """Export the decoder graph (generator latents when ``transformer`` is given, else AE latents)."""
    mean = transformer.latent_mean if transformer is not None else None
    std = transformer.latent_std if transformer is not None else None
    g = DecoderGraph(autoencoder, mean, std)
    D = autoencoder.config.latent_dim
    d = _dims(batch=(1, 4096), tokens=(1, max_tokens))
    z = torch.randn(3, 7, D)
    return _export(g, (z,), Path(out_dir) / "decoder.onnx", ["z"], ["joints"],
                   {"z": {0: d["batch"], 1: d["tokens"]}}, verbose)


def export_encoder(autoencoder: nn.Module, transformer: nn.Module, out_dir: str | Path,
                   max_tokens: int = 512, verbose: bool = False) -> Path:
    """Export the AE encoder into generator latents; frames T = 4 * tokens, tokens dynamic."""
    tok = torch.export.Dim("tokens", min=2, max=max_tokens)
    b = torch.export.Dim("batch", min=1, max=4096)
    g = EncoderGraph(autoencoder, transformer.latent_mean, transformer.latent_std)
    j = torch.randn(2, 28, 21, 3) * 0.3
    return _export(g, (j,), Path(out_dir) / "encoder.onnx", ["joints"], ["z"],
                   {"joints": {0: b, 1: 4 * tok}}, verbose)


def export_transformer(transformer: nn.Module, out_dir: str | Path, verbose: bool = False) -> Path:
    """Export the masked transformer with the CFG ``drop`` input; L in 1..max_tokens."""
    cfg = transformer.config
    d = _dims(batch=(1, 4096), tokens=(1, cfg.max_tokens))
    B, L = 4, min(7, cfg.max_tokens)
    z = torch.randn(B, L, cfg.latent_dim)
    mask = torch.rand(B, L) < 0.5
    text = torch.nn.functional.normalize(torch.randn(B, cfg.text_dim), dim=-1)
    pad = torch.zeros(B, L, dtype=torch.bool)
    pad[1, -2:] = True
    drop = torch.tensor([False, True, False, True])
    ax = {0: d["batch"], 1: d["tokens"]}
    return _export(ContextGraph(transformer), (z, mask, text, pad, drop), Path(out_dir) / "transformer.onnx",
                   ["z", "mask", "text", "pad", "drop"], ["h"],
                   {"z": ax, "mask": ax, "text": {0: d["batch"]}, "pad": ax, "drop": {0: d["batch"]}},
                   verbose)


def export_velocity(diffusion: nn.Module, out_dir: str | Path, verbose: bool = False) -> Path:
    """Export one velocity evaluation ``v(x, t, h)`` with a dynamic token axis N."""
    cfg = diffusion.config
    n = _dims(tokens=(1, 1 << 20))["tokens"]
    x, t, h = torch.randn(5, cfg.latent_dim), torch.rand(5), torch.randn(5, cfg.width)
    return _export(VelocityGraph(diffusion), (x, t, h), Path(out_dir) / "velocity.onnx",
                   ["x", "t", "h"], ["v"], {"x": {0: n}, "t": {0: n}, "h": {0: n}}, verbose)


def export_fused_ode(diffusion: nn.Module, out_dir: str | Path, steps: int, solver: str = "euler",
                     cfg: bool = True, verbose: bool = False) -> Path:
    """Export :class:`FusedODEGraph` for a fixed ``steps``/``solver``/``cfg`` (N dynamic)."""
    c = diffusion.config
    n = _dims(tokens=(1, 1 << 19))["tokens"]
    C = 2 if cfg else 1
    x = torch.randn(5, c.latent_dim)
    h = torch.randn(C * 5, c.width)
    ts = torch.linspace(1.0, 0.0, steps + 1)
    s = torch.tensor([2.5])
    return _export(FusedODEGraph(diffusion, steps, solver, cfg), (x, h, ts, s),
                   Path(out_dir) / f"{ode_graph_name(solver, steps, cfg)}.onnx",
                   ["x", "h", "ts", "cfg"], ["x0"],
                   {"x": {0: n}, "h": {0: C * n}, "ts": None, "cfg": None}, verbose)


# ----------------------------------------------------------------------------- checkpoints
def bundle_hash(bundle) -> str:
    """SHA-256 (hex, first 16 chars) of the weights and configs of the generation models of a
    loaded bundle (transformer, diffusion MLP, autoencoder): the export cache key."""
    h = hashlib.sha256()
    for name in ("transformer", "diffusion", "autoencoder"):
        m = getattr(bundle, name)
        cfg = m.config.to_dict() if hasattr(m.config, "to_dict") else vars(m.config)
        h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
        for k, v in sorted(m.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def export_models(bundle, out_dir: str | Path, *, checkpoint: str | Path | None = None,
                  graphs: Iterable[str] = GRAPHS + OPTIONAL_GRAPHS, fused_ode: Iterable[tuple[str, int]] = (),
                  fused_cfg: Iterable[bool] = (True, False), progress: bool = True,
                  verbose: bool = False) -> dict:
    """Export the graphs of a loaded ``ModelBundle`` into ``out_dir`` and write ``manifest.json``.

    ``graphs``: subset of ``GRAPHS``; ``fused_ode``: (solver, steps) pairs to also export as fused
    ODE graphs, with and/or without CFG as ``fused_cfg`` says. Returns the manifest dict. Raises ExportError.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    graphs = list(graphs)
    bad = sorted(set(graphs) - set(GRAPHS) - set(OPTIONAL_GRAPHS))
    if bad:
        raise ExportError(f"unknown graph(s) {bad}; known: {list(GRAPHS)}")
    jobs: list[tuple[str, Any]] = []
    tr, df, ae = bundle.transformer.eval(), bundle.diffusion.eval(), bundle.autoencoder.eval()
    if "text_encoder" in graphs:
        jobs.append(("text_encoder", lambda: export_text_encoder(bundle.text_encoder, out, verbose)))
    if "decoder" in graphs:
        jobs.append(("decoder", lambda: export_decoder(ae, tr, out, verbose=verbose)))
    if "encoder" in graphs:
        jobs.append(("encoder", lambda: export_encoder(ae, tr, out, verbose=verbose)))
    if "transformer" in graphs:
        jobs.append(("transformer", lambda: export_transformer(tr, out, verbose)))
    if "velocity" in graphs:
        jobs.append(("velocity", lambda: export_velocity(df, out, verbose)))
    for solver, steps in fused_ode:
        for cfg in fused_cfg:
            jobs.append((ode_graph_name(solver, steps, cfg),
                         lambda s=solver, n=steps, c=cfg: export_fused_ode(df, out, n, s, c, verbose)))
    man_path = out / MANIFEST
    manifest = json.loads(man_path.read_text()) if man_path.exists() else {}
    import onnx

    from coamd.export.text import minilm_version

    files = key = None
    if checkpoint is not None and Path(checkpoint).is_dir():
        try:
            files, key = checkpoint_files(checkpoint), checkpoint_key(checkpoint)
        except FileNotFoundError:
            pass
    manifest.update({
        "format": FORMAT_VERSION, "exporter": EXPORTER_VERSION, "opset": OPSET, "torch": torch.__version__,
        "onnx": onnx.__version__, "text_encoder_package": minilm_version(),
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "checkpoint_hash": checkpoint_hash(checkpoint) if checkpoint is not None else None,
        "checkpoint_files": files, "cache_key": key,
        "weights_hash": bundle_hash(bundle),
        "config": {"generator": tr.config.to_dict() if hasattr(tr.config, "to_dict") else dict(vars(tr.config)),
                   "autoencoder": ae.config.to_dict()},
    })
    manifest.setdefault("graphs", {})
    bar = tqdm(jobs, desc="export", unit="graph", disable=not progress)
    for name, fn in bar:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        path = fn()
        manifest["graphs"][name] = {"file": path.name, "seconds": round(time.perf_counter() - t0, 1),
                                    "bytes": path.stat().st_size, **io_spec(path)}
        man_path.write_text(json.dumps(manifest, indent=1))
    return manifest
