"""ONNX Runtime backend: same motion as the torch backend for the same seed/settings (within 1 cm
mean joint error, guided and unguided, fused and per-step ODE), streaming semantics (left_to_right
releases finished tokens at once and earlier frames never change; random order releases after the
last iteration), provider reporting, editing through the exported encoder, bad input.

Uses the small model set exported once per session (``test_export_fixtures``).
"""
from __future__ import annotations

import numpy as np
import pytest

from coamd.runtime.onnx_backend import OnnxRuntimeBackend, ProviderUnavailable, providers_for
from coamd.runtime.torch_backend import TorchBackend
from coamd.sampling.guidance import TorchGuide
from coamd.sampling.sampler import Edit, GenerationRequest, MaskedARSampler
from test_export_fixtures import FUSED_STEPS, export_small, small_bundle

TEXT = "a person walks forward and waves the right hand"


@pytest.fixture(scope="session")
def engines(tmp_path_factory, dataset):
    b = small_bundle(dataset.stats)
    out = export_small(tmp_path_factory.getbasetemp(), b)
    ort_be = OnnxRuntimeBackend(out)
    torch_be = TorchBackend(b.transformer, b.diffusion, b.autoencoder, b.text_encoder)
    guide = TorchGuide(b.autoencoder, b.recognizer, b.transformer)
    return b, ort_be, torch_be, guide


def _mean_joint_error_cm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1).mean() * 100)


@pytest.mark.parametrize("guidance,steps,order", [(False, FUSED_STEPS, "random"), (False, 3, "left_to_right"),
                                                  (True, FUSED_STEPS, "left_to_right")])
def test_same_motion_as_torch(engines, guidance, steps, order):
    _, ort_be, torch_be, guide = engines
    req = dict(text=TEXT, duration_s=3.0, seed=7, iterations=4, ode_steps=steps, order=order,
               guidance=guidance, guidance_scale=1.0, cfg_scale=3.0)
    a = MaskedARSampler(ort_be, guide).sample(GenerationRequest(**req))
    b = MaskedARSampler(torch_be, guide).sample(GenerationRequest(**req))
    assert a.shape == b.shape == (60, 21, 3)
    assert _mean_joint_error_cm(a, b) <= 1.0
    # and another seed gives another motion (the comparison is not vacuous)
    c = MaskedARSampler(torch_be, guide).sample(GenerationRequest(**{**req, "seed": 8}))
    assert _mean_joint_error_cm(b, c) > 1.0


def test_fused_ode_is_used_and_matches_per_step(engines):
    _, ort_be, _, _ = engines
    assert ort_be.has_fused_ode("euler", FUSED_STEPS, True)
    assert not ort_be.has_fused_ode("heun", FUSED_STEPS, True)
    calls = {"solve": 0, "velocity": 0}

    class Counting:
        def __init__(self, be, fused):
            self.be, self.fused = be, fused
            self.name, self.latent_dim, self.max_tokens = be.name, be.latent_dim, be.max_tokens

        def __getattr__(self, k):
            if k == "has_fused_ode" and not self.fused:
                raise AttributeError(k)
            f = getattr(self.be, k)
            if k in calls:
                def wrapped(*a, **kw):
                    calls[k] += 1
                    return f(*a, **kw)
                return wrapped
            return f

    req = dict(text=TEXT, duration_s=2.0, seed=3, iterations=3, ode_steps=FUSED_STEPS, guidance=False)
    fused = MaskedARSampler(Counting(ort_be, True)).sample(GenerationRequest(**req))
    assert calls == {"solve": 3, "velocity": 0}
    per_step = MaskedARSampler(Counting(ort_be, False)).sample(GenerationRequest(**req))
    assert calls["velocity"] == 3 * FUSED_STEPS
    assert np.abs(fused - per_step).max() < 1e-4


def test_left_to_right_streams_each_token_and_never_changes_frames(engines):
    _, ort_be, _, guide = engines
    sampler = MaskedARSampler(ort_be, guide)
    # raw frames (cleanup=False): compared below with the decoder's output of the final latents;
    # that the causal cleanup keeps streamed frames final is tested in test_cleanup.py
    req = GenerationRequest(text=TEXT, duration_s=4.0, seed=1, iterations=10, ode_steps=FUSED_STEPS,
                            order="left_to_right", guidance=True, cleanup=False, skeleton="raw")
    state = sampler.start(req)
    chunks, released_at = [], []
    while not state.done:
        c = sampler.step([state])[0]
        # every finished token's 4 frames are released in the iteration that finished it
        assert c.start + len(c.joints) == 4 * int(np.argmin(np.append(state.known, False)))
        if len(c.joints):
            chunks.append(c)
            released_at.append(state.iteration)
    assert released_at[0] == 1 and len(chunks) == 10  # first frames after the first iteration
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and starts[0] == 0
    streamed = np.concatenate([c.joints for c in chunks])
    assert streamed.shape == (80, 21, 3)
    # frames released early equal the decode of the final latents: they never changed afterwards
    final = ort_be.decode(state.z[None])[0]
    assert np.abs(streamed - final).max() < 1e-5


def test_random_order_releases_after_last_iteration(engines):
    _, ort_be, _, _ = engines
    sampler = MaskedARSampler(ort_be)
    req = GenerationRequest(text=TEXT, duration_s=4.0, seed=2, iterations=6, ode_steps=FUSED_STEPS,
                            order="random", guidance=False)
    state = sampler.start(req)
    released = []
    while not state.done:
        c = sampler.step([state])[0]
        released.append(len(c.joints))
        # never more than the fully known prefix
        assert c.start + len(c.joints) == 4 * int(np.argmin(np.append(state.known, False)))
    assert len(released) == 6 and sum(released) == 80
    assert released[-1] > 40  # the bulk arrives with the last iteration


def test_backend_reports_provider_from_session(engines):
    _, ort_be, _, _ = engines
    used = ort_be.providers_in_use()
    assert ort_be.name == f"onnxruntime:{used['transformer'][0]}"
    assert all(p[0] == "CPUExecutionProvider" for p in used.values())
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ProviderUnavailable, match="CUDAExecutionProvider"):
            providers_for("cuda")
        with pytest.raises(ProviderUnavailable):
            providers_for("tensorrt")
    with pytest.raises(ValueError, match="unknown device"):
        providers_for("tpu")


@pytest.mark.gpu
def test_cuda_provider_really_runs(engines):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no GPU: onnxruntime has no CUDAExecutionProvider here "
                    f"({ort.get_available_providers()})")
    _, ort_be, _, _ = engines  # pragma: no cover - GPU machines
    gpu = OnnxRuntimeBackend(ort_be.export_dir, device="cuda")
    assert gpu.name == "onnxruntime:CUDAExecutionProvider"


def test_editing_keeps_prefix_through_exported_encoder(engines, dataset):
    _, ort_be, torch_be, _ = engines
    clip = next(c for c in dataset.split("test") if c.joints.shape[0] >= 60)
    prefix = clip.joints[:20]
    req = dict(text=TEXT, duration_s=3.0, seed=4, iterations=4, ode_steps=FUSED_STEPS, guidance=False,
               edit=Edit(prefix=prefix))
    a = MaskedARSampler(ort_be).sample(GenerationRequest(**req))
    b = MaskedARSampler(torch_be).sample(GenerationRequest(**req))
    assert _mean_joint_error_cm(a, b) <= 1.0
    assert np.abs(ort_be.encode(prefix[None]) - torch_be.encode(prefix[None])).max() < 1e-4
    with pytest.raises(ValueError, match="multiple of 4"):
        ort_be.encode(prefix[None, :6])


def test_bad_input_errors(engines):
    _, ort_be, _, _ = engines
    with pytest.raises(ValueError, match="empty"):
        ort_be.encode_text([""])
    L = ort_be.max_tokens + 1
    with pytest.raises(ValueError, match="exceed"):
        ort_be.context(np.zeros((1, L, ort_be.latent_dim), np.float32), np.ones((1, L), bool),
                       np.zeros((1, L), bool), np.zeros((1, 384), np.float32))


def test_registered_in_load_engine_registry(engines):
    from coamd.runtime import _BACKENDS, backend_names
    from coamd.runtime.onnx_backend import _factory

    assert {"onnxruntime", "tensorrt", "torch"} <= set(backend_names())
    assert _BACKENDS["onnxruntime"] is _factory
    b, ort_be, _, _ = engines
    be = _factory(b, export_dir=ort_be.export_dir)
    assert be.name == "onnxruntime:CPUExecutionProvider"
    import onnxruntime as ort

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        from coamd.runtime.tensorrt_backend import TensorRTBackend

        with pytest.raises(ProviderUnavailable, match="CUDAExecutionProvider|TensorrtExecutionProvider"):
            TensorRTBackend(ort_be.export_dir)


def test_export_cache_is_keyed_by_weights_and_reused(engines, tmp_path, monkeypatch):
    import shutil

    from coamd.export import cache
    from coamd.export import onnx_export as E

    b, ort_be, _, _ = engines
    monkeypatch.setenv("COAMD_CACHE", str(tmp_path))
    d = cache.export_dir_for(b)
    assert d.parent == tmp_path / "onnx" and d.name == E.bundle_hash(b)
    shutil.copytree(ort_be.export_dir, d)
    calls = []
    monkeypatch.setattr(cache, "export_models", lambda *a, **k: calls.append(k))
    assert cache.ensure_export(bundle=b, fused_ode=(), progress=False) == d
    assert calls == []  # nothing re-exported
    # other weights -> another folder
    import torch

    saved = b.diffusion.out.bias.detach().clone()
    with torch.no_grad():
        b.diffusion.out.bias.add_(1.0)
    try:
        assert cache.export_dir_for(b) != d
    finally:
        with torch.no_grad():
            b.diffusion.out.bias.copy_(saved)
    assert cache.export_dir_for(b) == d
