"""Export on first use, cached in the user's cache folder keyed by the checkpoint's hash.

The key is :func:`coamd.export.onnx_export.bundle_hash`: a hash of the loaded weights and configs
of the generation models, so it does not matter where the checkpoint lives.
Layout: ``$COAMD_CACHE`` (default ``$XDG_CACHE_HOME/coamd`` or ``~/.cache/coamd``)
``/onnx/<weights hash>/`` holds the graphs and ``manifest.json`` of one checkpoint;
``/onnx/text-minilm-<version>/text_encoder.onnx`` is shared by all checkpoints (the frozen text
encoder does not depend on them) and hard-linked (or copied) into each checkpoint's folder.
A changed checkpoint has another hash, so a stale export is never used.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from coamd.export.onnx_export import GRAPHS, OPTIONAL_GRAPHS, ExportError, bundle_hash, export_models, \
    export_text_encoder, read_manifest

# Fused ODE graphs exported on first use: none. On the 2-core CPU the fused 8-step graph measured
# slower than 8 velocity calls (benchmarks/results/latency_small_random.md); `coamd export
# --fused-ode euler:8` still writes it for providers where per-call overhead dominates (GPUs).
DEFAULT_FUSED_ODE: tuple = ()


def cache_root() -> Path:
    """``$COAMD_CACHE``, else ``$XDG_CACHE_HOME/coamd``, else ``~/.cache/coamd``."""
    if os.environ.get("COAMD_CACHE"):
        return Path(os.environ["COAMD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coamd"


def default_checkpoint() -> Path:
    """The shipped default checkpoint folder inside the package."""
    return Path(__file__).resolve().parents[1] / "checkpoints" / "default"


def export_dir_for(bundle) -> Path:
    """The cache folder of a loaded bundle's graphs (it may not exist yet)."""
    return cache_root() / "onnx" / bundle_hash(bundle)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def ensure_export(checkpoint: str | Path | None = None, bundle=None, fused_ode=DEFAULT_FUSED_ODE,
                  progress: bool = True) -> Path:
    """The export folder of ``checkpoint`` (default: the shipped one), exporting what is missing.

    ``bundle``: the already loaded ``ModelBundle`` (else ``checkpoint`` is loaded).
    ``fused_ode``: (solver, steps) pairs of fused ODE graphs to have as well.
    Returns the folder. Raises FileNotFoundError for a missing checkpoint, ExportError on failure.
    """
    from coamd.export.onnx_export import ode_graph_name
    from coamd.export.text import minilm_version

    if bundle is None:
        from coamd.models.bundle import load_bundle

        bundle = load_bundle(checkpoint)
    ckpt = checkpoint
    out = export_dir_for(bundle)
    want = list(GRAPHS) + list(OPTIONAL_GRAPHS) + [ode_graph_name(s, n, c) for s, n in fused_ode for c in (True, False)]
    try:
        read_manifest(out, want)
        return out
    except ExportError:
        pass
    text_dir = cache_root() / "onnx" / f"text-minilm-{minilm_version()}"
    text_file = text_dir / "text_encoder.onnx"
    if not text_file.exists():
        if progress:
            print(f"exporting the text encoder to {text_dir} (once per machine)", flush=True)
        export_text_encoder(bundle.text_encoder, text_dir)
    _link_or_copy(text_file, out / "text_encoder.onnx")
    have = {}
    try:
        have = read_manifest(out, ()).get("graphs", {})
    except ExportError:
        pass
    graphs = [g for g in GRAPHS + OPTIONAL_GRAPHS if g != "text_encoder" and g not in have]
    odes = [(s, n) for s, n in fused_ode if ode_graph_name(s, n, True) not in have]
    if progress:
        print(f"exporting the generation graphs to {out} (first use of these weights)", flush=True)
    export_models(bundle, out, checkpoint=ckpt, graphs=graphs, fused_ode=odes, progress=progress)
    # register the linked text encoder in the manifest
    man = read_manifest(out, ())
    if "text_encoder" not in man["graphs"]:
        import json

        from coamd.export.onnx_export import MANIFEST, _io_spec

        man["graphs"]["text_encoder"] = {"file": "text_encoder.onnx", "bytes": text_file.stat().st_size,
                                         **_io_spec(out / "text_encoder.onnx")}
        (out / MANIFEST).write_text(json.dumps(man, indent=1))
    read_manifest(out, want)
    return out
