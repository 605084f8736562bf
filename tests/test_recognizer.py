"""Action recognizer and text encoder: shapes, masks, eq. 6, gradients, errors, real clips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from coamd.models.presets import build_recognizer
from coamd.models.recognizer import KINDS, ActionRecognizer, canonicalize_torch

SHIPPED = Path(__file__).resolve().parents[1] / "coamd" / "checkpoints" / "default" / "recognizer.pt"
TINY = dict(width=32, embed_dim=16, layers=1, heads=2, fused_layers=1, max_frames=64, dropout=0.0)


@pytest.fixture(scope="module")
def text_encoder():
    from coamd.models.text import TextEncoder

    return TextEncoder()


@pytest.fixture(scope="module")
def tiny(dataset):
    torch.manual_seed(0)
    return build_recognizer("small", dataset.stats, **TINY).eval()


def _clip(dataset, n: int = 40, i: int = 0) -> torch.Tensor:
    clips = [c for c in dataset.split("test") if c.joints.shape[0] >= n]
    return torch.from_numpy(clips[i].joints[:n])[None]


def test_text_encoder(text_encoder):
    texts = ["a person walks", "A person kicks angrily.", "a person walks"]
    e = text_encoder.encode(texts)
    assert e.shape == (3, 384) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(e[0], e[2]) and not torch.allclose(e[0], e[1])
    tok = text_encoder.tokenize(texts)
    assert tok["input_ids"].shape == tok["attention_mask"].shape and tok["input_ids"].dtype == torch.int64
    with torch.no_grad():
        direct = text_encoder(tok["input_ids"], tok["attention_mask"])
    assert torch.allclose(direct, e, atol=1e-5)
    # paraphrases are closer than unrelated sentences
    a, b, c = text_encoder.encode(["a person walks slowly", "someone is walking slowly", "a person throws a punch"])
    assert a @ b > a @ c
    with pytest.raises(ValueError):
        text_encoder.encode([])
    with pytest.raises(ValueError):
        text_encoder.encode([""])
    with pytest.raises(ValueError):
        text_encoder.encode("not a list")


def test_shapes_and_unit_norm(dataset, tiny):
    x = torch.cat([_clip(dataset, 40, 0), _clip(dataset, 40, 5)])
    emb = tiny.embed_motion(x)
    assert set(emb) == set(KINDS)
    for k in KINDS:
        assert emb[k].shape == (2, 16) and emb[k].dtype == torch.float32
        assert torch.allclose(emb[k].norm(dim=1), torch.ones(2), atol=1e-5)
    assert tiny.embed_text(torch.randn(3, 384)).shape == (3, 16)


def test_padding_does_not_change_embedding(dataset, tiny):
    x = _clip(dataset, 36)
    padded = torch.cat([x, torch.randn(1, 12, 21, 3)], 1)  # garbage after the end
    valid = torch.zeros(1, 48, dtype=torch.bool)
    valid[:, :36] = True
    a, b = tiny.embed_motion(x), tiny.embed_motion(padded, valid)
    for k in KINDS:
        assert torch.allclose(a[k], b[k], atol=1e-5)


def test_translation_and_heading_invariance(dataset, tiny):
    from coamd.data.process import rotate_y

    x = _clip(dataset, 40, 3)
    moved = torch.from_numpy(rotate_y(x[0].numpy(), 1.1) + np.array([3.0, 0, -2.0], np.float32))[None]
    assert torch.allclose(canonicalize_torch(x), canonicalize_torch(moved), atol=1e-4)
    a, b = tiny.embed_motion(x), tiny.embed_motion(moved)
    assert torch.allclose(a["fused"], b["fused"], atol=1e-4)


def test_long_inputs_are_windowed(dataset, tiny):
    long = max(dataset.split("test"), key=lambda c: c.joints.shape[0])
    x = torch.from_numpy(long.joints)[None]
    assert x.shape[1] > tiny.config.max_frames
    emb = tiny.embed_motion(x)
    assert torch.isfinite(emb["fused"]).all() and emb["fused"].shape == (1, 16)


def test_score_is_eq6_and_differentiable(dataset, tiny):
    x = torch.cat([_clip(dataset, 40, 1), _clip(dataset, 40, 2)]).requires_grad_(True)
    text = torch.nn.functional.normalize(torch.randn(2, 384), dim=1)
    w = [0.5, 0.2, 0.2, 0.1]
    s = tiny.score(x, None, text, w)
    emb, c = tiny.embed_motion(x), tiny.embed_text(text)
    manual = sum(wk * (emb[k] * c).sum(1) for wk, k in zip(w, KINDS))
    assert torch.allclose(s, manual, atol=1e-5)
    s.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_errors(dataset, tiny):
    with pytest.raises(ValueError, match="small"):
        build_recognizer("tiny", dataset.stats)
    with pytest.raises(ValueError, match="unknown RecognizerConfig key"):
        build_recognizer("small", dataset.stats, nlayers=2)
    with pytest.raises(ValueError, match=r"\(B, T>=2, 21, 3\)"):
        tiny.embed_motion(torch.zeros(1, 8, 20, 3))
    with pytest.raises(ValueError, match="valid"):
        tiny.embed_motion(torch.zeros(1, 8, 21, 3), torch.ones(1, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="first frame"):
        tiny.embed_motion(torch.zeros(1, 8, 21, 3), torch.zeros(1, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="384"):
        tiny.embed_text(torch.zeros(2, 100))
    with pytest.raises(ValueError, match="4 entries"):
        tiny.score(torch.zeros(1, 8, 21, 3), None, torch.zeros(1, 384), [1.0, 2.0])


def test_training_reduces_loss_on_real_clips(dataset, text_encoder):
    """Eq. 1 on eight real clips with their captions and labels: the loss falls well below its start."""
    torch.manual_seed(0)
    model = build_recognizer("small", dataset.stats, **TINY).train()
    train = dataset.split("train")
    picks = [train[i] for i in np.linspace(0, len(train) - 1, 8).astype(int)]
    x = torch.from_numpy(np.stack([c.joints[:32] if c.joints.shape[0] >= 32 else
                                   np.concatenate([c.joints, np.repeat(c.joints[-1:], 32 - len(c.joints), 0)])
                                   for c in picks]))
    valid = torch.from_numpy(np.stack([np.arange(32) < len(c.joints) for c in picks]))
    caps = [c.caption_texts()[0] for c in picks]
    cap_f = text_encoder.encode(caps)
    ids = torch.tensor([caps.index(t) for t in caps])
    con_f, sty_f = text_encoder.encode(dataset.content_texts), text_encoder.encode(dataset.style_texts)
    ci = torch.tensor([dataset.contents.index(c.content) for c in picks])
    si = torch.tensor([dataset.styles.index(c.style) for c in picks])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss, _ = model.loss(model.embed_motion(x, valid), model.embed_text(cap_f), ids,
                             model.embed_text(con_f), ci, model.embed_text(sty_f), si)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert min(losses[-5:]) < 0.4 * losses[0], (losses[0], losses[-5:])


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped recognizer checkpoint yet")
def test_shipped_recognizer_classifies_real_test_clips(dataset, text_encoder):
    """One real test clip per content class: the shipped weights name most contents right."""
    model = ActionRecognizer.from_checkpoint(torch.load(SHIPPED, map_location="cpu", weights_only=False))
    picked = {}
    for c in dataset.split("test"):
        picked.setdefault(c.content, c)
    clips = list(picked.values())
    labels = text_encoder.encode(dataset.content_texts)
    right = 0
    for c in clips:
        idx, _ = model.classify(torch.from_numpy(c.joints)[None], None, labels)
        right += dataset.contents[int(idx[0, 0])] == c.content
    print(f"shipped recognizer: {right}/{len(clips)} test clips (one per content) classified right")
    assert right >= 0.8 * len(clips)


def test_stream_subset_model_has_only_its_streams(dataset):
    """A modality-ablation recognizer (streams J+B) builds, embeds and scores with its own kinds
    only; weights of absent streams are ignored; bad stream names are rejected."""
    from coamd.models.recognizer import RecognizerConfig

    torch.manual_seed(0)
    jb = build_recognizer("small", dataset.stats, streams=("joint", "bone"), **TINY).eval()
    assert jb.kinds == ("fused", "joint", "bone") and set(jb.encoders) == {"joint", "bone"}
    x = _clip(dataset, 40)
    emb = jb.embed_motion(x)
    assert set(emb) == {"fused", "joint", "bone"}
    text = torch.randn(1, 384)
    only_motion = jb.score(x, None, text, weights={"motion": 1.0})
    assert float(only_motion.detach()) == 0.0
    assert torch.allclose(jb.score(x, None, text, weights=[1, 0, 0, 5]), jb.score(x, None, text, weights=[1, 0, 0, 0]))
    back = ActionRecognizer.from_checkpoint(jb.checkpoint())
    assert back.kinds == jb.kinds
    with torch.no_grad():
        assert torch.allclose(back.embed_motion(x)["fused"], emb["fused"])
    with pytest.raises(ValueError, match="streams"):
        RecognizerConfig(streams=("joint", "hands"))
