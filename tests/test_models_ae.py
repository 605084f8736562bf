"""Multi-modal autoencoder: shapes, causality, errors, overfitting real clips, the shipped weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from coamd.models.autoencoder import AEConfig, MotionAutoencoder, pad_to_multiple
from coamd.models.presets import autoencoder_config, build_autoencoder

SHIPPED = Path(__file__).resolve().parents[1] / "coamd" / "checkpoints" / "default" / "autoencoder.pt"
TINY = dict(stream_dim=16, width=32, latent_dim=8, blocks=1)


@pytest.fixture(scope="module")
def real_batch(dataset):
    """Four real train clips cropped to 32 frames: (4, 32, 21, 3) float32 metres."""
    clips = [c for c in dataset.split("train") if c.joints.shape[0] >= 48]
    picks = [clips[i] for i in (0, len(clips) // 3, 2 * len(clips) // 3, len(clips) - 1)]
    return torch.from_numpy(np.stack([c.joints[8:40] for c in picks]))


def test_shapes_and_dtypes(dataset, real_batch):
    torch.manual_seed(0)
    ae = build_autoencoder("small", dataset.stats, **TINY)
    z = ae.encode(real_batch)
    assert z.shape == (4, 8, 8) and z.dtype == torch.float32
    x = ae.decode(z)
    assert x.shape == real_batch.shape and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    # statistics live in the model as buffers, so a checkpoint carries them
    assert torch.allclose(ae.joint_mean, torch.from_numpy(dataset.stats["joint_mean"]))


def test_decoder_is_causal(dataset, real_batch):
    torch.manual_seed(0)
    ae = build_autoencoder("small", dataset.stats, **TINY).eval()
    with torch.no_grad():
        z = ae.encode(real_batch)
        base = ae.decode(z)
        for k in (0, 3, 7):
            z2 = z.clone()
            z2[:, k] += torch.randn_like(z2[:, k])
            out = ae.decode(z2)
            assert torch.equal(out[:, :4 * k], base[:, :4 * k]), f"frames before token {k} changed"
            assert (out[:, 4 * k:4 * k + 4] - base[:, 4 * k:4 * k + 4]).abs().max() > 1e-4


def test_errors(dataset):
    with pytest.raises(ValueError, match="small"):
        build_autoencoder("huge", dataset.stats)
    with pytest.raises(ValueError, match="unknown AEConfig key"):
        autoencoder_config("small", widht=3)
    with pytest.raises(ValueError, match="streams"):
        AEConfig(streams=("bone",))
    ae = build_autoencoder("small", dataset.stats, **TINY)
    with pytest.raises(ValueError, match="multiple of 4"):
        ae.encode(torch.zeros(1, 30, 21, 3))
    with pytest.raises(ValueError, match=r"\(B, T, 21, 3\)"):
        ae.encode(torch.zeros(1, 32, 20, 3))
    with pytest.raises(ValueError, match="z must be"):
        ae.decode(torch.zeros(1, 4, 9))


def test_config_roundtrip_and_joints_only(dataset, real_batch):
    cfg = autoencoder_config("small", streams=["joint"], **TINY)
    assert cfg.streams == ("joint",)
    ae = MotionAutoencoder(cfg, dataset.stats)
    assert list(ae.proj) == ["joint"]
    loss, parts = ae.loss(real_batch, ae(real_batch))
    assert set(parts) == {"joint", "foot_contact"} and torch.isfinite(loss)  # the preset adds the foot term
    full = build_autoencoder("small", dataset.stats, **TINY)
    back = MotionAutoencoder.from_checkpoint(full.checkpoint())
    assert back.config == full.config
    with torch.no_grad():
        assert torch.equal(back(real_batch), full.eval()(real_batch))
    _, parts = full.loss(real_batch, full(real_batch))
    assert set(parts) == {"joint", "bone", "motion", "foot_contact"}


def test_overfits_real_clips(dataset, real_batch):
    """A few hundred steps on four real clips drive the eq. 2 loss far below its start."""
    torch.manual_seed(0)
    ae = build_autoencoder("small", dataset.stats, **TINY).train()
    opt = torch.optim.AdamW(ae.parameters(), lr=3e-3)
    valid = torch.ones(real_batch.shape[:2], dtype=torch.bool)
    losses = []
    for _ in range(150):
        loss, _ = ae.loss(real_batch, ae(real_batch), valid)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert min(losses[-10:]) < 0.25 * losses[0], (losses[0], losses[-10:])


def test_gradient_through_decoder_is_finite():
    ae = build_autoencoder("small", None, **TINY)
    z = torch.randn(2, 5, 8, requires_grad=True)
    ae.decode(z).square().sum().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_pad_to_multiple():
    x = torch.randn(2, 10, 21, 3)
    p, t = pad_to_multiple(x)
    assert t == 10 and p.shape[1] == 12 and torch.equal(p[:, 10], x[:, -1])


def _test_error(dataset, path) -> dict:
    """A committed autoencoder on 40 real test clips spread over the split (whole clips)."""
    if not path.exists():
        pytest.skip(f"no shipped checkpoint {path.name}")
    from coamd.train.ae import evaluate_autoencoder

    ae = MotionAutoencoder.from_checkpoint(torch.load(path, map_location="cpu", weights_only=False))
    test = dataset.split("test")
    m = evaluate_autoencoder(ae, test[:: max(1, len(test) // 40)])
    print(f"{path.name} on {m['clips']} real test clips: MPJPE {m['mpjpe_cm']:.2f} cm "
          f"(hips {m['root_err_cm']:.2f} cm)")
    return m


def test_shipped_reconstruction_autoencoder_meets_2cm_target(dataset):
    """Issue target: reconstruction MPJPE <= 2 cm. MODEL_CARD.md: 1.39 cm on the whole test split
    for ``autoencoder_reconstruction.pt`` (the autoencoder before its decoder is fine-tuned on
    noisy latents; same encoder as ``autoencoder.pt``)."""
    m = _test_error(dataset, SHIPPED.with_name("autoencoder_reconstruction.pt"))
    assert m["mpjpe_cm"] < 2.0


def test_shipped_generation_decoder_reconstructs_real_test_clips(dataset):
    """Regression guard on the runtime's autoencoder (MODEL_CARD.md: 3.3 cm MPJPE, 1.6 cm
    hips-relative on the whole test split; its decoder trades accuracy for robustness to
    generated latents): the pose under 2.0 cm, the whole under 3.8 cm."""
    m = _test_error(dataset, SHIPPED)
    assert m["local_mpjpe_cm"] < 2.0
    assert m["mpjpe_cm"] < 3.8


def test_velocity_root_decoder_is_causal_and_integrates_displacements(dataset, real_batch):
    """root="velocity": the hips' horizontal path is frame 0's position plus the running sum of the
    predicted per-frame displacements; still causal; loading a root="absolute" model keeps every
    shared weight and starts the displacement rows at zero (hips held at frame 0's position)."""
    torch.manual_seed(0)
    absolute = build_autoencoder("small", dataset.stats, root="absolute", **TINY).eval()
    vel = MotionAutoencoder(absolute.config.replace(root="velocity"), dataset.stats).eval()
    assert vel.load_compatible(absolute.state_dict()) == []
    with torch.no_grad():
        z = absolute.encode(real_batch)
        a, v = absolute.decode(z), vel.decode(z)
        # zero displacement rows: horizontal hips path frozen at frame 0, everything else equal
        assert torch.allclose(v[:, :, 0, 0::2], a[:, :1, 0, 0::2].expand_as(v[:, :, 0, 0::2]), atol=1e-6)
        assert torch.allclose(v[:, :, 0, 1], a[:, :, 0, 1]) and torch.allclose(
            v[:, :, 1:] - v[:, :, :1], a[:, :, 1:] - a[:, :, :1], atol=1e-6)
        vel.to_joints.bias[63:] = torch.tensor([1.0, -2.0])  # a constant displacement per frame
        moved = vel.decode(z)
        step = moved[:, 1:, 0, 0::2] - moved[:, :-1, 0, 0::2]
        expected = torch.tensor([1.0, -2.0]) * vel.config.root_velocity_scale
        assert torch.allclose(step, expected.expand_as(step), atol=1e-5)
        base = vel.decode(z)
        z2 = z.clone()
        z2[:, 5] += torch.randn_like(z2[:, 5])
        out = vel.decode(z2)
        assert torch.equal(out[:, :20], base[:, :20]) and (out[:, 20:] - base[:, 20:]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="root"):
        AEConfig(root="relative")


def test_foot_contact_term_penalises_sliding_planted_toes(dataset):
    """On real clips, sliding the decoded toes while the real toes are on the floor raises only the
    foot-contact part of the loss; moving them while lifted does not."""
    from coamd.skeleton import TOE_JOINTS

    ae = build_autoencoder("small", dataset.stats, foot_contact_weight=1.0, **TINY)
    clips = [c for c in dataset.split("train") if c.joints.shape[0] >= 40][:4]
    x = torch.from_numpy(np.stack([c.joints[:40] for c in clips]))
    _, clean = ae.loss(x, x.clone())  # the real toes' own small residual slide, as a reference
    on_floor = (x[:, :, list(TOE_JOINTS), 1] < ae.config.contact_height)
    assert on_floor.any(), "real clips have planted toes"
    slid = x.clone()
    drift = torch.arange(40, dtype=x.dtype)[None, :, None] * 0.01  # 1 cm per frame along x
    slid[:, :, list(TOE_JOINTS), 0] += drift.expand(-1, -1, 2)
    _, parts = ae.loss(x, slid)
    assert parts["foot_contact"] > 5 * clean["foot_contact"] and parts["foot_contact"] > 0.005
    lifted = x.clone()
    lifted[..., 1] += 1.0  # the target has no contact anywhere
    lifted_slid = slid.clone()
    lifted_slid[..., 1] += 1.0
    _, parts = ae.loss(lifted, lifted_slid)
    assert parts["foot_contact"] == 0.0


def test_filtered_root_is_the_complementary_filter_recursion(dataset, real_batch):
    """root="filtered": p[0] = a[0], p[t] = alpha (p[t-1] + d[t]) + (1 - alpha) a[t], computed by a
    causal convolution that must match the recursion; the decoder stays causal."""
    torch.manual_seed(0)
    ae = build_autoencoder("small", dataset.stats, root="filtered", root_filter=0.8, **TINY).eval()
    a, d = torch.randn(2, 60, 2), torch.randn(2, 59, 2)
    p = ae._complementary(a, d)
    ref = [a[:, 0]]
    for t in range(1, 60):
        ref.append(0.8 * (ref[-1] + d[:, t - 1]) + 0.2 * a[:, t])
    assert torch.allclose(p, torch.stack(ref, 1), atol=1e-4)
    with torch.no_grad():
        z = ae.encode(real_batch)
        base = ae.decode(z)
        z2 = z.clone()
        z2[:, 4] += 1.0
        out = ae.decode(z2)
    assert torch.equal(out[:, :16], base[:, :16]) and (out[:, 16:] - base[:, 16:]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="root_filter"):
        AEConfig(root="filtered", root_filter=1.0)
