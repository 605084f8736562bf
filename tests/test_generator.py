"""Masked transformer, diffusion MLP and their trainer (paper eq. 3-5) on real clips' latents."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from coamd.models.generator import (DiffusionMLP, GeneratorConfig, MaskedTransformer, build_generator,
                                    load_generator)
from coamd.train.generator import (GeneratorTrainConfig, LatentBatches, clip_windows, load_autoencoder,
                                   sample_masks, train_generator)

TINY = dict(width=64, depth=2, heads=4, mlp_width=96, mlp_depth=2, dropout=0.0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small graphs: one intra-op thread is faster than two on the shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def autoencoder():
    return load_autoencoder()  # the shipped default


@pytest.fixture(scope="module")
def real_latents(dataset, autoencoder):
    """AE latents (L, D) of a few real training clips, 8-20 tokens long, different contents."""
    out, seen = [], set()
    for c in dataset.split("train"):
        T = len(c.joints) // 4 * 4
        if 32 <= T <= 80 and c.content not in seen and not c.mirrored:
            seen.add(c.content)
            with torch.no_grad():
                out.append((c, autoencoder.encode(torch.from_numpy(c.joints[:T])[None])[0]))
        if len(out) == 4:
            break
    return out


def test_shapes_dtypes_and_padding(real_latents):
    torch.manual_seed(0)
    D = real_latents[0][1].shape[1]
    tr, df = build_generator("small", D, **TINY)
    tr.eval()
    z = torch.nn.utils.rnn.pad_sequence([r[1] for r in real_latents[:2]], batch_first=True)
    L = z.shape[1]
    pad = torch.tensor([[i >= len(r[1]) for i in range(L)] for r in real_latents[:2]])
    mask = torch.zeros_like(pad)
    mask[:, ::2] = True
    text = torch.nn.functional.normalize(torch.randn(2, 384), dim=-1)
    h = tr(z, mask, text, pad)
    assert h.shape == (2, L, 64) and h.dtype == torch.float32
    # the padded sequence gives the same context on its valid tokens as when run alone
    n1 = len(real_latents[1][1])
    alone = tr(z[1:2, :n1], mask[1:2, :n1], text[1:2], pad[1:2, :n1])
    assert torch.allclose(alone[0], h[1, :n1], atol=1e-5)
    v = df(z[0], torch.rand(L), h[0])
    assert v.shape == (L, D) and v.dtype == torch.float32
    with pytest.raises(ValueError, match="exceed"):
        tr(torch.zeros(1, 61, D), torch.zeros(1, 61, dtype=torch.bool), text[:1])


def test_null_text_ignores_the_text(real_latents):
    torch.manual_seed(0)
    D = real_latents[0][1].shape[1]
    tr, _ = build_generator("small", D, **TINY)
    torch.nn.init.normal_(tr.blocks[0].ada[1].weight, std=0.1)  # make the text matter
    tr.eval()
    z = real_latents[0][1][None].repeat(2, 1, 1)
    mask = torch.zeros(z.shape[:2], dtype=torch.bool)
    text = torch.nn.functional.normalize(torch.randn(2, 384), dim=-1)
    cond = tr(z, mask, text)
    uncond = tr(z, mask, text, drop=torch.tensor([True, True]))
    assert not torch.allclose(cond[0], cond[1], atol=1e-4)      # the text changes the context
    assert torch.allclose(uncond[0], uncond[1], atol=1e-6)      # the null text does not depend on it
    assert not torch.allclose(cond[0], uncond[0], atol=1e-4)


def test_overfits_a_few_real_clips(real_latents):
    """Flow-matching loss on 4 real clips' latents with their captions falls well below its start."""
    from coamd.models.text import TextEncoder

    torch.manual_seed(0)
    zs = [r[1] for r in real_latents]
    allz = torch.cat(zs)
    mean, std = allz.mean(0), allz.std(0) + 1e-6
    z = torch.nn.utils.rnn.pad_sequence([(x - mean) / std for x in zs], batch_first=True)
    pad = torch.tensor([[i >= len(x) for i in range(z.shape[1])] for x in zs])
    text = TextEncoder().encode([r[0].caption_texts()[0] for r in real_latents])
    tr, df = build_generator("small", z.shape[2], **TINY)
    opt = torch.optim.AdamW(list(tr.parameters()) + list(df.parameters()), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(200):
        mask = sample_masks(pad, (1.0, 0.0, 0.0), gen)
        loss = df.loss(z[mask], tr(z, mask, text, pad)[mask], samples=8, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    start, end = np.mean(losses[:10]), np.mean(losses[-20:])
    assert end < 0.5 * start, (start, end)


def test_masks_cover_only_valid_tokens():
    gen = torch.Generator().manual_seed(0)
    lens = torch.tensor([3, 10, 1, 25, 60])
    pad = torch.arange(60)[None] >= lens[:, None]
    for pattern in ((1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)):
        for _ in range(20):
            m = sample_masks(pad, pattern, gen)
            assert not (m & pad).any()
            assert (m.sum(1) >= 1).all()
            if pattern[1]:  # known prefix, unknown suffix: contiguous up to the end
                for row, n in zip(m, lens):
                    idx = torch.nonzero(row).flatten()
                    assert idx[-1] == n - 1 and len(idx) == idx[-1] - idx[0] + 1


def test_long_clips_become_canonical_windows(dataset):
    clip = max(dataset.split("train"), key=lambda c: len(c.joints))
    wins = clip_windows(clip.joints, 60)
    assert len(wins) >= 2 and all(w.shape == (240, 21, 3) for w in wins)
    for w in wins:  # each window starts with the hips above the origin like a generated motion
        assert np.abs(w[0, 0, [0, 2]]).max() < 1e-4
    short = next(c for c in dataset.split("train") if 40 < len(c.joints) < 200)
    (w,) = clip_windows(short.joints, 60)
    assert len(w) == len(short.joints) // 4 * 4 and np.array_equal(w, short.joints[: len(w)])


def test_config_and_preset_errors():
    with pytest.raises(ValueError, match="unknown preset"):
        build_generator("huge", 32)
    with pytest.raises(ValueError, match="unknown generator config keys"):
        GeneratorConfig.from_dict({"widht": 3})
    with pytest.raises(ValueError, match="unknown generator training options"):
        GeneratorTrainConfig.from_dict({"stepz": 3})


def test_trainer_runs_resumes_and_ships_a_loadable_checkpoint(tmp_path, real_latents, dataset):
    """Two steps, then a resumed third, on a cache of real latents; the checkpoint loads."""
    zs = [r[1].numpy() for r in real_latents]
    lens = np.array([len(z) for z in zs])
    from coamd.models.text import TextEncoder

    texts = [r[0].caption_texts()[0] for r in real_latents]
    cache = {"train_z": np.concatenate(zs), "train_offsets": np.concatenate([[0], np.cumsum(lens)]),
             "train_cap_ids": np.arange(4), "train_cap_offsets": np.arange(5),
             "text_feats": TextEncoder().encode(texts).numpy()}
    names = sorted({r[0].content for r in real_latents})
    cache["train_content"] = np.array([names.index(r[0].content) for r in real_latents])
    for k in ("z", "offsets", "cap_ids", "cap_offsets", "content"):
        cache[f"val_{k}"] = cache[f"train_{k}"]
    cfg = GeneratorTrainConfig(out=str(tmp_path / "g.pt"), work_dir=str(tmp_path / "run"), steps=2, batch_size=4,
                               warmup=1, log_every=1, threads=1, overrides=TINY)
    s1 = train_generator(cfg, progress=False, cache=dict(cache))
    assert s1["step"] == 2
    cfg.steps, cfg.resume = 3, True
    s2 = train_generator(cfg, progress=False, cache=dict(cache))
    assert s2["step"] == 3
    tr, df = load_generator(tmp_path / "g.pt")
    assert isinstance(tr, MaskedTransformer) and isinstance(df, DiffusionMLP)
    allz = np.concatenate(zs)
    assert np.allclose(tr.latent_mean.numpy(), allz.mean(0), atol=1e-4)
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert any('"step": 3' in line for line in log)


def test_latent_batches_pad_and_pick_training_captions():
    rng = np.random.default_rng(0)
    cache = {"train_z": np.arange(10 * 2, dtype=np.float32).reshape(10, 2), "train_offsets": np.array([0, 3, 10]),
             "train_cap_ids": np.array([0, 1, 2]), "train_cap_offsets": np.array([0, 1, 3]),
             "text_feats": np.eye(3, 384, dtype=np.float32)}
    b = LatentBatches(cache, "train", rng)
    z, pad, text = b.batch(2, np.array([0, 1]))
    assert z.shape == (2, 7, 2) and pad[0].tolist() == [False] * 3 + [True] * 4 and not pad[1].any()
    assert text[0].argmax() == 0 and text[1].argmax() in (1, 2)


def test_continuation_crops_cut_only_known_prefix_rows_after_an_unknown_token():
    """``continue_crop`` 1: every known-prefix row is cut after 1..n of its unknown tokens (the
    rest becomes padding, the prefix stays whole); random and span rows are untouched; 0 gives
    exactly :func:`sample_masks`' masks."""
    from coamd.train.generator import training_masks

    lens = torch.tensor([3, 10, 1, 25, 60] * 8)
    pad = torch.arange(60)[None] >= lens[:, None]
    m0, p0 = training_masks(pad, (0.7, 0.15, 0.15), torch.Generator().manual_seed(3))
    assert torch.equal(m0, sample_masks(pad, (0.7, 0.15, 0.15), torch.Generator().manual_seed(3)))
    assert torch.equal(p0, pad)
    full, _ = training_masks(pad, (0, 1.0, 0), torch.Generator().manual_seed(5))
    m, p = training_masks(pad, (0, 1.0, 0), torch.Generator().manual_seed(5), continue_crop=1.0)
    new_lens = (~p).sum(1)
    known = lens - full.sum(1)
    assert (new_lens > known).all() and (new_lens <= lens).all()
    assert (new_lens < lens).sum() >= 10                       # many rows really cut
    assert not (m & p).any()
    for row, k, n in zip(m, known, new_lens):                  # unknown = known .. new end
        assert torch.equal(torch.nonzero(row).flatten(), torch.arange(int(k), int(n)))
    for pattern in ((1.0, 0, 0), (0, 0, 1.0)):
        a = training_masks(pad, pattern, torch.Generator().manual_seed(7), continue_crop=1.0)
        assert torch.equal(a[1], pad)
    with pytest.raises(ValueError, match="continue_crop"):
        training_masks(pad, (0, 1.0, 0), torch.Generator(), continue_crop=2.0)


def test_transition_sequences_continue_where_the_first_clip_ends(dataset):
    """A real walk's tail followed by a real walk-back: the second clip starts at the first's last
    hips position and heading (no jump in the root path or the facing), walks backwards relative
    to that heading, and the whole starts canonical like a generated motion."""
    from coamd.data.process import facing_angle
    from coamd.train.transitions import join

    train = dataset.split("train")
    walk = next(c for c in train if c.content == "walk-turn-left" and len(c.joints) >= 100)
    back = next(c for c in train if c.content == "walk-back" and len(c.joints) >= 60)
    a, b = walk.joints[40:100], back.joints[:60]
    s = join(a, b)
    assert s.shape == (120, 21, 3)
    assert np.abs(s[0, 0, [0, 2]]).max() < 1e-5 and abs(facing_angle(s[:1])[0]) < 1e-5
    steps = np.linalg.norm(np.diff(s[:, 0, [0, 2]], axis=0), axis=1)
    assert steps[59] <= 1.5 * np.median(steps[:59]) + 1e-6                   # the root path goes on
    heading = facing_angle(s)
    assert abs(np.angle(np.exp(1j * (heading[60] - heading[59])))) < np.radians(15)
    f = heading[59]
    travel = (s[-1, 0, [0, 2]] - s[60, 0, [0, 2]]) @ np.array([np.sin(f), np.cos(f)])
    assert travel < -0.5                                                     # B walks backwards


def test_transition_pairs_and_masks():
    """Pairs join two different actions with a prefix inside the bounds and room for the new
    action; transition masks keep the prefix known and skip the junction in the loss."""
    from coamd.train.transitions import (JUNCTION_TOKENS, MIN_NEW_TOKENS, PREFIX_TOKENS, sample_pairs,
                                         transition_masks)

    rng = np.random.default_rng(0)
    content = rng.integers(0, 5, 300)
    lens = rng.integers(2, 61, 300)
    for a, end, k, b in sample_pairs(content, lens, 500, rng, max_tokens=60):
        assert content[a] != content[b] and lens[b] >= MIN_NEW_TOKENS
        assert PREFIX_TOKENS[0] <= k <= min(PREFIX_TOKENS[1], lens[a]) and k <= 60 - MIN_NEW_TOKENS
        assert k <= end <= lens[a]
    pad = torch.arange(20)[None] >= torch.tensor([20, 12])[:, None]
    mask, loss = transition_masks(pad, torch.tensor([5, 3]))
    assert mask[0].nonzero().flatten().tolist() == list(range(5, 20))
    assert mask[1].nonzero().flatten().tolist() == list(range(3, 12))
    assert loss[0].nonzero().flatten().tolist() == list(range(5 + JUNCTION_TOKENS, 20))
    assert not (loss & ~mask).any()


def test_transition_cache_builds_from_the_real_train_split_and_reuses_its_file(tmp_path, dataset):
    """A few transition sequences from the real train split with the shipped autoencoder: each is
    a known prefix inside the bounds plus at least ``MIN_NEW_TOKENS`` tokens of a window of another
    action, at most ``max_tokens`` long; a second call reads the cached file."""
    from coamd.train.generator import split_windows, transition_cache
    from coamd.train.transitions import MIN_NEW_TOKENS, PREFIX_TOKENS

    train = dataset.split("train")
    _, owner = split_windows(train, 60)
    names = sorted({c.content for c in dataset.clips})
    styles = sorted({c.style for c in dataset.clips})
    cache = {"train_content": np.array([names.index(train[o].content) for o in owner]),
             "train_style": np.array([styles.index(train[o].style) for o in owner])}
    cfg = GeneratorTrainConfig(work_dir=str(tmp_path), transitions=12, transition_share=0.2)
    t = transition_cache(cfg, cache, progress=False)
    lens = np.diff(t["offsets"])
    assert len(lens) == 12 and t["z"].shape == (lens.sum(), 32)
    assert ((t["known"] >= PREFIX_TOKENS[0]) & (t["known"] <= PREFIX_TOKENS[1])).all()
    assert (lens - t["known"] >= MIN_NEW_TOKENS).all() and (lens <= 60).all()
    (file,) = tmp_path.glob("transitions_*.npz")
    written = file.stat().st_mtime_ns
    again = transition_cache(cfg, cache, progress=False)
    assert all(np.array_equal(t[k], again[k]) for k in t)
    assert file.stat().st_mtime_ns == written                 # read back, not rebuilt


def test_open_ends_add_unknown_unscored_tokens_after_real_clips(real_latents):
    """``open_end`` 1 on real clips' latents: every row that has room gets 1..min(n, max - n)
    unknown tokens after its last one, which are neither padding nor scored; the clip's own
    tokens, masks and scoring are untouched; the widened batch runs through the transformer; 0
    changes nothing; with ``below`` only rows shorter than it get a tail; a share outside [0, 1]
    or a negative ``below`` raises."""
    from coamd.train.generator import open_ends, training_masks

    zs = [z for _, z in real_latents]
    lens = torch.tensor([len(z) for z in zs])
    L, D, max_tokens = int(lens.max()), zs[0].shape[1], int(lens.max()) + 6
    z = torch.zeros(len(zs), L, D)
    for b, x in enumerate(zs):
        z[b, :len(x)] = x
    pad = torch.arange(L)[None] >= lens[:, None]
    mask, pad = training_masks(pad, (0.55, 0.3, 0.15), torch.Generator().manual_seed(0))
    z2, m2, p2, loss = open_ends(z, mask, pad, 1.0, max_tokens, torch.Generator().manual_seed(1))
    extra = (~p2).sum(1) - lens
    room = torch.minimum(lens, max_tokens - lens)
    assert ((extra >= 1) & (extra <= room)).all()
    assert z2.shape[1] == int((lens + extra).max()) <= max_tokens
    for b, n in enumerate(lens.tolist()):
        assert torch.equal(z2[b, :n], z[b, :n])                      # the clip itself is kept
        assert torch.equal(m2[b, :n], mask[b, :n]) and torch.equal(loss[b, :n], mask[b, :n])
        tail = slice(n, n + int(extra[b]))
        assert m2[b, tail].all() and not p2[b, tail].any() and not loss[b, tail].any()
        assert p2[b, n + int(extra[b]):].all()
    assert not (loss & ~m2).any()
    model = MaskedTransformer(GeneratorConfig(latent_dim=D, max_tokens=max_tokens, **TINY))
    h = model(z2, m2, torch.zeros(len(zs), 384), p2)
    assert h.shape[:2] == z2.shape[:2] and torch.isfinite(h[~p2]).all()
    same = open_ends(z, mask, pad, 0.0, max_tokens, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(same, (z, mask, pad, mask)))
    full = torch.zeros(len(zs), L, dtype=torch.bool)               # no padding: rows at the limit
    assert torch.equal(open_ends(z, mask, full, 1.0, L, torch.Generator())[2], full)
    cut = int(lens.median())                                       # open_end_below: short rows only
    assert (lens < cut).any() and (lens >= cut).any()
    p3 = open_ends(z, mask, pad, 1.0, max_tokens, torch.Generator().manual_seed(1), below=cut)[2]
    extra3 = (~p3).sum(1) - lens
    assert (extra3[lens >= cut] == 0).all() and (extra3[lens < cut] >= 1).all()
    with pytest.raises(ValueError, match="open_end"):
        open_ends(z, mask, pad, 1.5, max_tokens, torch.Generator())
    with pytest.raises(ValueError, match="open_end_below"):
        open_ends(z, mask, pad, 0.5, max_tokens, torch.Generator(), below=-1)
