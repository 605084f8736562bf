"""Transition sequences for training the generator to follow a new text after a known history.

Every clip of the dataset shows one action from its start, so a generator trained on clips alone
has never seen the text change under a known prefix: asked to continue a walk with "a person walks
backwards", it keeps the walk's momentum and turns instead. A session (``coamd.sampling.session``)
asks exactly that at every switch. Here training sequences are built that show it: the tail of one
training window (action A, 0.6-3 s, cut at a random point, so often mid-motion) followed by the
start of another (action B), B moved so that it starts where A's tail ends, facing A's last
heading, as the session's frames would. The whole is re-canonicalised (hips above the origin,
facing +Z at frame 0, like a generated motion) and encoded with the frozen autoencoder; its
condition is one of B's training captions (families A-D).

In training (:func:`coamd.train.generator.build`, ``transition_share``) such a sequence keeps the
tokens of A as the known prefix and masks the rest. The flow-matching loss skips the first
``JUNCTION_TOKENS`` tokens after the cut: the data jumps there (A's pose at a random instant next
to B's first pose), and the model should not learn that jump; it makes its own bridge, taught by
the ordinary clips, and is trained to be doing B from then on, as a fresh generation of B would
be.

Frames: (T, 21, 3) float32 metres at 20 fps, right-handed Y up; tokens of 4 frames.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from coamd.data.process import canonicalize, facing_angle, rotate_y
from coamd.models.autoencoder import DOWNSAMPLE as FRAMES_PER_TOKEN

JUNCTION_TOKENS = 2          # tokens after the cut without loss (0.4 s)
PREFIX_TOKENS = (3, 15)      # A's tail: 0.6-3 s
MIN_NEW_TOKENS = 6           # at least 1.2 s of B


def join(a_tail: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A's tail (Ta, 21, 3) followed by ``b`` (Tb, 21, 3), which starts canonical (hips above the
    origin, facing +Z): ``b`` rotated to A's last heading and moved to A's last hips position
    (horizontally; heights stay physical), the whole re-canonicalised. Returns (Ta + Tb, 21, 3)."""
    angle = float(facing_angle(a_tail[-1:])[0])
    moved = rotate_y(canonicalize(b), angle)
    moved[..., 0] += a_tail[-1, 0, 0]
    moved[..., 2] += a_tail[-1, 0, 2]
    return canonicalize(np.concatenate([a_tail, moved])).astype(np.float32)


def sample_pairs(content: np.ndarray, lens: np.ndarray, n: int, rng: np.random.Generator,
                 p_b: np.ndarray | None = None, max_tokens: int = 60) -> list[tuple[int, int, int, int]]:
    """``n`` transitions as (A window, A end token, prefix tokens, B window): B drawn with
    probabilities ``p_b`` (N,) (None: uniform), A uniformly among windows of another action at
    least ``PREFIX_TOKENS[0]`` tokens long, the prefix length uniform in ``PREFIX_TOKENS`` (at most
    A's length and leaving ``MIN_NEW_TOKENS`` of ``max_tokens`` for B), its end uniform over A.
    ``content`` (N,) int actions and ``lens`` (N,) tokens of the windows."""
    out = []
    idx = np.arange(len(lens))
    lo, hi = PREFIX_TOKENS
    while len(out) < n:
        b = int(rng.choice(len(lens), p=p_b))
        if lens[b] < MIN_NEW_TOKENS:
            continue
        pool = idx[(content != content[b]) & (lens >= lo)]
        a = int(rng.choice(pool))
        k = int(rng.integers(lo, min(hi, lens[a], max_tokens - MIN_NEW_TOKENS) + 1))
        end = int(rng.integers(k, lens[a] + 1))
        out.append((a, end, k, b))
    return out


def build_transitions(load: Callable[[], tuple], content: np.ndarray, n: int, seed: int,
                      p_b: np.ndarray | None, max_tokens: int, work_dir: Path, key: str,
                      progress: bool = True) -> dict:
    """Encoded transition sequences, cached in ``work_dir`` under ``key`` (the autoencoder's
    digest and the options). ``load()`` -> (``encode``: (T, 21, 3) joints -> (T / 4, D) latent
    tokens of the frozen autoencoder, the train split's windows as a list of (T, 21, 3) in the
    order of the latent cache), called only when the cache is missing;
    ``content`` (N,) the windows' actions, ``p_b`` the draw of B (the generator's class balance).
    Returns ``{"z": (M, D) float32, "offsets": (n + 1,) int64,
    "known": (n,) int64 prefix tokens, "window": (n,) int64 B's window (its captions)}``."""
    from tqdm import tqdm

    path = Path(work_dir) / f"transitions_{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    encode, windows = load()
    lens = np.array([len(w) // FRAMES_PER_TOKEN for w in windows])
    pairs = sample_pairs(content, lens, n, np.random.default_rng(seed), p_b, max_tokens)
    zs, known, win = [], [], []
    for a, end, k, b in tqdm(pairs, desc="encoding transitions", disable=not progress, unit="seq"):
        fa = windows[a][(end - k) * FRAMES_PER_TOKEN:end * FRAMES_PER_TOKEN]
        fb = windows[b][:(max_tokens - k) * FRAMES_PER_TOKEN]
        zs.append(encode(join(fa, fb)))
        known.append(k)
        win.append(b)
    out = {"z": np.concatenate(zs), "offsets": np.concatenate([[0], np.cumsum([len(z) for z in zs])]).astype(np.int64),
           "known": np.array(known, np.int64), "window": np.array(win, np.int64)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def transitions_key(ae_digest: str, n: int, seed: int, max_tokens: int, balance: tuple) -> str:
    """Cache key of :func:`build_transitions` for these options."""
    text = f"{ae_digest}|{n}|{seed}|{max_tokens}|{balance}|{PREFIX_TOKENS}|{MIN_NEW_TOKENS}|v1"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TransitionBatches:
    """Random batches of transition sequences: (z (B, L, D), pad (B, L), text (B, 384), known (B,)
    prefix tokens) as torch tensors; ``zn`` the normalised latents, captions from the latent
    cache's windows (``cap_ids``/``cap_offsets``/``text_feats``)."""

    def __init__(self, trans: dict, zn: np.ndarray, cache: dict, rng: np.random.Generator):
        self.zn, self.off, self.known, self.window = zn, trans["offsets"], trans["known"], trans["window"]
        self.cap, self.cap_off, self.feats = cache["train_cap_ids"], cache["train_cap_offsets"], cache["text_feats"]
        self.rng = rng

    def __len__(self) -> int:
        return len(self.known)

    def batch(self, batch_size: int):
        items = self.rng.choice(len(self), size=batch_size)
        lens = np.diff(self.off)[items]
        L, D = int(lens.max()), self.zn.shape[1]
        z = np.zeros((batch_size, L, D), np.float32)
        pad = np.ones((batch_size, L), bool)
        text = np.zeros((batch_size, self.feats.shape[1]), np.float32)
        for r, i in enumerate(items):
            z[r, :lens[r]] = self.zn[self.off[i]:self.off[i + 1]]
            pad[r, :lens[r]] = False
            w = self.window[i]
            caps = self.cap[self.cap_off[w]:self.cap_off[w + 1]]
            text[r] = self.feats[caps[self.rng.integers(len(caps))]] if len(caps) else 0.0
        return (torch.from_numpy(z), torch.from_numpy(pad), torch.from_numpy(text),
                torch.from_numpy(self.known[items].copy()))


def transition_masks(pad: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, loss_mask) (B, L) bool for transition rows: everything after the ``known`` (B,)
    prefix tokens is unknown; the loss skips the first ``JUNCTION_TOKENS`` of them."""
    pos = torch.arange(pad.shape[1])[None]
    mask = (pos >= known[:, None]) & ~pad
    return mask, mask & (pos >= known[:, None] + JUNCTION_TOKENS)
