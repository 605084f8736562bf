"""ONNX export: parity with PyTorch (max abs error <= 1e-4) at several batch sizes and lengths,
dynamic axes, the manifest and the export cache, TensorRT skipping with its reason.

One small model set (``test_export_fixtures.small_bundle``: the real text encoder, AE with the
real dataset statistics, a small transformer/diffusion MLP with random weights) is exported once per
session. Real clips of the dataset drive the decoder and encoder parity.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from coamd.export import onnx_export as E
from coamd.export.parity import TOLERANCE, check_parity, worst
from test_export_fixtures import FUSED_STEPS, export_small, small_bundle


@pytest.fixture(scope="session")
def exported(tmp_path_factory, dataset):
    """(bundle, export folder) of the small model set, text encoder and one fused ODE graph."""
    b = small_bundle(dataset.stats)
    return b, export_small(tmp_path_factory.getbasetemp(), b)


def test_parity_all_graphs_within_tolerance(exported):
    b, out = exported
    res = check_parity(b, out, sizes=((1, 1), (2, 7), (3, 25), (2, 60)))
    assert set(res) >= {"text_encoder", "decoder", "transformer", "velocity", E.ode_graph_name("euler", FUSED_STEPS, True)}
    # several lengths and batch sizes were really covered
    assert {"B1xL1", "B2xL7", "B3xL25", "B2xL60"} <= set(res["transformer"])
    g, c, err = worst(res)
    assert err <= TOLERANCE, f"{g} {c}: max abs error {err:.2e} > {TOLERANCE}"


def test_decoder_parity_on_real_clips(exported, dataset):
    """Latents of real test clips (through the AE encoder) decode identically in ONNX Runtime."""
    import onnxruntime as ort

    b, out = exported
    s = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    enc = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    clips = [c for c in dataset.split("test") if c.joints.shape[0] >= 40][:3]
    assert clips
    for c in clips:
        T = (c.joints.shape[0] // 4) * 4
        with torch.no_grad():
            z_ae = b.autoencoder.encode(torch.from_numpy(c.joints[None, :T]))
            z = b.transformer.from_ae(z_ae)
            ref = b.autoencoder.decode(z_ae).numpy()
        got = s.run(None, {"z": z.numpy()})[0]
        assert got.shape == (1, T, 21, 3)
        assert np.abs(got - ref).max() <= TOLERANCE
        z_onnx = enc.run(None, {"joints": np.ascontiguousarray(c.joints[None, :T])})[0]
        assert z_onnx.shape == (1, T // 4, b.transformer.config.latent_dim)
        assert np.abs(z_onnx - z.numpy()).max() <= TOLERANCE


def test_text_encoder_graph_matches_encode_and_dynamic_length(exported):
    import onnxruntime as ort

    from coamd.export.text import Tokenizer

    b, out = exported
    s = ort.InferenceSession(str(out / "text_encoder.onnx"), providers=["CPUExecutionProvider"])
    tok = Tokenizer()
    texts = ["a person walks forward", "kick", "an angry man kicks twice with his right leg and then walks away"]
    ids, am = tok(texts)
    assert (ids == b.text_encoder.tokenize(texts)["input_ids"].numpy()).all()
    got = s.run(None, {"input_ids": ids, "attention_mask": am})[0]
    ref = b.text_encoder.encode(texts).numpy()
    assert np.abs(got - ref).max() <= TOLERANCE
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # a single short text (another sequence length) gives the same vector as in the batch
    one = s.run(None, dict(zip(("input_ids", "attention_mask"), tok(texts[1:2]))))[0]
    assert np.abs(one[0] - got[1]).max() <= TOLERANCE
    with pytest.raises(ValueError, match="empty"):
        tok(["  "])


def test_manifest_records_dynamic_axes(exported):
    _, out = exported
    man = json.loads((out / "manifest.json").read_text())
    tr = man["graphs"]["transformer"]
    # batch and token axes are symbolic (strings), feature axes are fixed
    assert all(isinstance(d, str) for d in tr["inputs"]["z"][:2])
    assert tr["inputs"]["z"][2] == man["config"]["generator"]["latent_dim"]
    assert isinstance(man["graphs"]["velocity"]["inputs"]["x"][0], str)
    assert isinstance(man["graphs"]["text_encoder"]["inputs"]["input_ids"][1], str)
    with pytest.raises(E.ExportError, match="lacks graph"):
        E.read_manifest(out, ["no_such_graph"])


def test_checkpoint_hash_changes_with_content(tmp_path):
    d = tmp_path / "ck"
    d.mkdir()
    (d / "a.pt").write_bytes(b"one")
    h1 = E.checkpoint_hash(d)
    (d / "a.pt").write_bytes(b"two")
    assert E.checkpoint_hash(d) != h1
    with pytest.raises(FileNotFoundError):
        E.checkpoint_hash(tmp_path / "missing")


def test_fused_ode_rejects_bad_settings(exported):
    b, _ = exported
    with pytest.raises(ValueError, match="solver"):
        E.FusedODEGraph(b.diffusion, 4, "rk4")
    with pytest.raises(ValueError, match="steps"):
        E.FusedODEGraph(b.diffusion, 0)


def test_tensorrt_engines_skip_without_gpu(exported):
    from coamd.export.tensorrt import TensorRTUnavailable, build_engines, ort_trt_profile_options, tensorrt_status

    _, out = exported
    man = E.read_manifest(out)
    opts = ort_trt_profile_options(man, "transformer")
    assert opts["trt_profile_max_shapes"].startswith("z:32x60x8")
    ok, why = tensorrt_status()
    if not ok:
        with pytest.raises(TensorRTUnavailable):
            build_engines(out)
        pytest.skip(f"TensorRT engines not built: {why}")
    built = build_engines(out, graphs=["velocity"])  # pragma: no cover - GPU machines
    assert built["velocity"].endswith(".plan")
