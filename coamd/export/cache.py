"""Export on first use, cached in the user's cache folder keyed by the checkpoint's file hashes.

The key of a checkpoint folder is :func:`coamd.export.manifest.checkpoint_key`: SHA-256 of the
bytes of its ``autoencoder.pt`` and ``generator.pt`` plus the exporter version, the ONNX opset and
the text-encoder package version. Deciding whether the graphs of a checkpoint are cached hashes
files and reads ``manifest.json``: no torch, no weights loaded. Only a miss imports torch, loads
the checkpoint and exports. Where the checkpoint lives does not matter; a changed file has
another key, so a stale export is never used.

A bundle that exists only in memory (random weights for timing, tests: its ``path`` is not a
checkpoint folder) is keyed by :func:`coamd.export.onnx_export.bundle_hash`, a hash of its loaded
weights and configs (torch). A bundle loaded from a folder is keyed by that folder's files, so
weights changed in memory after loading are not seen: export those with ``coamd export --out``.

Layout: ``$COAMD_CACHE`` (default ``$XDG_CACHE_HOME/coamd`` or ``~/.cache/coamd``)
``/onnx/<key>/`` holds the graphs and ``manifest.json`` of one checkpoint;
``/onnx/text-minilm-<version>/text_encoder.onnx`` is shared by all checkpoints (the frozen text
encoder does not depend on them) and hard-linked (or copied) into each checkpoint's folder.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from coamd.export.manifest import GRAPHS, KEY_FILES, MANIFEST, OPTIONAL_GRAPHS, ExportError, checkpoint_key, \
    io_spec, ode_graph_name, read_manifest
from coamd.paths import DEFAULT_CHECKPOINT

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
    """The shipped default checkpoint folder inside the package (``coamd.paths.DEFAULT_CHECKPOINT``)."""
    return DEFAULT_CHECKPOINT


def bundle_folder(bundle) -> Path | None:
    """The checkpoint folder a bundle was loaded from (its ``path`` holding ``KEY_FILES``), else None."""
    p = getattr(bundle, "path", None)
    if p is None:
        return None
    p = Path(p)
    return p if all((p / f).is_file() for f in KEY_FILES) else None


def cache_key(bundle=None, checkpoint: str | Path | None = None) -> str:
    """The cache key: of ``checkpoint`` (a folder; file hashes), else of the folder ``bundle`` was
    loaded from, else of ``bundle``'s weights in memory; the shipped checkpoint when both are None.
    Raises FileNotFoundError for a missing checkpoint folder or file."""
    if checkpoint is None and bundle is not None:
        checkpoint = bundle_folder(bundle)
        if checkpoint is None:
            from coamd.export.onnx_export import bundle_hash

            return bundle_hash(bundle)
    return checkpoint_key(checkpoint if checkpoint is not None else DEFAULT_CHECKPOINT)


def export_dir_for(bundle=None, checkpoint: str | Path | None = None) -> Path:
    """The cache folder of a checkpoint's (or a bundle's) graphs; it may not exist yet
    (see :func:`cache_key`)."""
    return cache_root() / "onnx" / cache_key(bundle, checkpoint)


def export_models(*args, **kwargs) -> dict:
    """:func:`coamd.export.onnx_export.export_models`, imported on first use (it needs torch)."""
    from coamd.export.onnx_export import export_models as _export_models

    return _export_models(*args, **kwargs)


def export_text_encoder(*args, **kwargs) -> Path:
    """:func:`coamd.export.onnx_export.export_text_encoder`, imported on first use (torch)."""
    from coamd.export.onnx_export import export_text_encoder as _export_text_encoder

    return _export_text_encoder(*args, **kwargs)


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

    ``bundle``: the models of ``checkpoint`` if already loaded (or an in-memory bundle without a
    checkpoint; see the module docstring); on a miss without it, ``checkpoint`` is loaded (torch).
    ``fused_ode``: (solver, steps) pairs of fused ODE graphs to have as well.
    A cache hit imports no torch. Returns the folder. Raises FileNotFoundError for a missing
    checkpoint, ExportError on failure.
    """
    from coamd.export.text import minilm_version

    if checkpoint is None and bundle is None:
        checkpoint = DEFAULT_CHECKPOINT
    out = export_dir_for(bundle, checkpoint)
    want = list(GRAPHS) + list(OPTIONAL_GRAPHS) + [ode_graph_name(s, n, c) for s, n in fused_ode for c in (True, False)]
    try:
        read_manifest(out, want)
        return out
    except ExportError:
        pass
    # a miss: from here on torch and the model code are needed
    if bundle is None:
        from coamd.models.bundle import load_bundle

        bundle = load_bundle(checkpoint)
    ckpt = checkpoint if checkpoint is not None else bundle_folder(bundle)
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
        man["graphs"]["text_encoder"] = {"file": "text_encoder.onnx", "bytes": text_file.stat().st_size,
                                         **io_spec(out / "text_encoder.onnx")}
        (out / MANIFEST).write_text(json.dumps(man, indent=1))
    read_manifest(out, want)
    return out
