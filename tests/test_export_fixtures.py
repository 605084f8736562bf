"""Helpers shared by the export and runtime tests (no tests here).

``small_bundle(stats)``: a ModelBundle-like namespace of small models (the real MiniLM text
encoder; autoencoder and recognizer with the real dataset statistics; a small transformer and
diffusion MLP) with seeded random weights, so the same models are rebuilt in every test module.
``export_small(base, bundle)``: export it once per test session into ``base/onnx_small`` (the
second module finds the graphs there and reuses them).
"""
from __future__ import annotations

import types
from pathlib import Path

import torch

from coamd.export import onnx_export as E

FUSED_STEPS = 2  # the fused ODE graph exported for the tests (CFG on)
_TE = None


def text_encoder():
    global _TE
    if _TE is None:
        from coamd.models.text import TextEncoder

        _TE = TextEncoder()
    return _TE


def small_bundle(stats, seed: int = 0):
    from coamd.models.autoencoder import AEConfig, MotionAutoencoder
    from coamd.models.generator import build_generator
    from coamd.models.recognizer import ActionRecognizer, RecognizerConfig

    torch.manual_seed(seed)
    ae = MotionAutoencoder(AEConfig(stream_dim=16, width=32, latent_dim=8, blocks=1), stats).eval()
    tr, df = build_generator("small", latent_dim=8, width=64, depth=2, heads=2, mlp_width=64,
                             mlp_depth=2, max_tokens=60)
    for m in (tr, df):  # zero-initialised gates/outputs would make parity and sampling trivial
        for p in m.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
    with torch.no_grad():
        tr.latent_mean.normal_(0, 0.1)
        tr.latent_std.uniform_(0.5, 1.5)
    rec = ActionRecognizer(RecognizerConfig(width=32, embed_dim=32, layers=1, heads=2, fused_layers=1), stats).eval()
    return types.SimpleNamespace(autoencoder=ae, transformer=tr.eval(), diffusion=df.eval(),
                                 recognizer=rec, text_encoder=text_encoder())


def export_small(base: Path, bundle) -> Path:
    out = Path(base) / "onnx_small"
    try:
        E.read_manifest(out, list(E.GRAPHS) + ["encoder", E.ode_graph_name("euler", FUSED_STEPS, True)])
        return out
    except E.ExportError:
        pass
    E.export_models(bundle, out, fused_ode=[("euler", FUSED_STEPS)], fused_cfg=(True,), progress=False)
    return out
