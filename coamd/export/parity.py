"""Parity of the exported graphs with PyTorch: max absolute error at several batch sizes/lengths.

``check_parity(bundle, export_dir)`` runs every graph of an export folder in ONNX Runtime (CPU)
and the same PyTorch modules on identical inputs, and returns the max absolute error per graph and
case; ``coamd export`` runs it after exporting and fails above the tolerance (1e-4).
Padded positions of the transformer output are excluded (they are junk in both).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from coamd.export.onnx_export import DecoderGraph, FusedODEGraph, read_manifest

TOLERANCE = 1e-4
TEXTS = (["a person kicks"], ["someone walks forward slowly, then turns left and waves with the right hand",
                              "run", "an elderly man raises his left hand"])


def _session(path: Path):
    import onnxruntime as ort

    from coamd.runtime.onnx_backend import session_options

    return ort.InferenceSession(str(path), sess_options=session_options(), providers=["CPUExecutionProvider"])


def check_parity(bundle, export_dir: str | Path, sizes=((1, 1), (2, 7), (3, 25)), seed: int = 0) -> dict:
    """{graph: {case: max abs error}} for the graphs present in ``export_dir``.

    sizes: (batch, tokens) cases, tokens clipped to the model's ``max_tokens``.
    """
    d = Path(export_dir)
    man = read_manifest(d, ())
    g = torch.Generator().manual_seed(seed)
    tr, df, ae = bundle.transformer.eval(), bundle.diffusion.eval(), bundle.autoencoder.eval()
    cfg = tr.config
    res: dict[str, dict[str, float]] = {}
    graphs = man["graphs"]
    with torch.no_grad():
        if "text_encoder" in graphs:
            s = _session(d / graphs["text_encoder"]["file"])
            from coamd.export.text import Tokenizer

            tok = Tokenizer()
            res["text_encoder"] = {}
            for texts in TEXTS:
                ids, am = tok(texts)
                ref = bundle.text_encoder(torch.from_numpy(ids), torch.from_numpy(am)).numpy()
                out = s.run(None, {"input_ids": ids, "attention_mask": am})[0]
                res["text_encoder"][f"B{len(texts)}xS{ids.shape[1]}"] = float(np.abs(out - ref).max())
        for B, L in sizes:
            L = min(L, cfg.max_tokens)
            z = torch.randn(B, L, cfg.latent_dim, generator=g)
            if "decoder" in graphs:
                s = _session(d / graphs["decoder"]["file"])
                ref = DecoderGraph(ae, tr.latent_mean, tr.latent_std)(z).numpy()
                out = s.run(None, {"z": z.numpy()})[0]
                res.setdefault("decoder", {})[f"B{B}xL{L}"] = float(np.abs(out - ref).max())
            if "transformer" in graphs:
                s = _session(d / graphs["transformer"]["file"])
                mask = torch.rand(B, L, generator=g) < 0.5
                text = torch.nn.functional.normalize(torch.randn(B, cfg.text_dim, generator=g), dim=-1)
                pad = torch.zeros(B, L, dtype=torch.bool)
                if B > 1 and L > 2:
                    pad[-1, L // 2:] = True
                drop = torch.arange(B) % 2 == 1
                ref = tr(z, mask, text, pad, drop).numpy()
                out = s.run(None, {"z": z.numpy(), "mask": mask.numpy(), "text": text.numpy(),
                                   "pad": pad.numpy(), "drop": drop.numpy()})[0]
                keep = ~pad.numpy()
                res.setdefault("transformer", {})[f"B{B}xL{L}"] = float(np.abs(out - ref)[keep].max())
            N = B * L
            x = torch.randn(N, cfg.latent_dim, generator=g)
            h = torch.randn(2 * N, cfg.width, generator=g)
            if "velocity" in graphs:
                s = _session(d / graphs["velocity"]["file"])
                t = torch.rand(N, generator=g)
                ref = df(x, t, h[:N]).numpy()
                out = s.run(None, {"x": x.numpy(), "t": t.numpy(), "h": h[:N].numpy()})[0]
                res.setdefault("velocity", {})[f"N{N}"] = float(np.abs(out - ref).max())
            for name, info in graphs.items():
                if not name.startswith("ode_"):
                    continue
                s = _session(d / info["file"])
                steps = int(info["inputs"]["ts"][0]) - 1  # ts holds steps + 1 times
                solver = "heun" if name.startswith("ode_heun") else "euler"
                use_cfg = name.endswith("_cfg")
                hh = h if use_cfg else h[:N]
                ts = torch.linspace(1.0, 0.0, steps + 1)
                sc = torch.tensor([3.0])
                ref = FusedODEGraph(df, steps, solver, use_cfg)(x, hh, ts, sc).numpy()
                out = s.run(None, {"x": x.numpy(), "h": hh.numpy(), "ts": ts.numpy(), "cfg": sc.numpy()})[0]
                res.setdefault(name, {})[f"N{N}"] = float(np.abs(out - ref).max())
    return res


def worst(res: dict) -> tuple[str, str, float]:
    """(graph, case, error) of the largest error in a ``check_parity`` result."""
    return max(((g, c, e) for g, cases in res.items() for c, e in cases.items()), key=lambda r: r[2])
