"""Training the generator (masked transformer + diffusion MLP) on frozen autoencoder latents.

Paper section 3.2 (eq. 3-5). The loop:

1. encode the train (and val) split once with the frozen shipped autoencoder and cache the latent
   tokens; clips longer than ``max_tokens`` tokens are cut into re-canonicalised windows so every
   training sequence starts at the origin facing +Z like a generated motion;
2. encode the captions of the training families (A-D; family E stays held out) once with the
   frozen MiniLM text encoder and cache the 384-d features;
3. each step: a length-bucketed batch (windows drawn class-balanced over actions, ``balance``, and
   over the styles within an action, ``style_balance``), a random masking ratio from the cosine
   schedule (``cos(pi/2 * u)``, u ~ U(0, 1)) applied in one of three patterns (random tokens, a
   known prefix as in left-to-right sampling, a masked span as in editing; ``continue_crop`` cuts
   some known-prefix rows short), condition dropout (null text) for classifier-free guidance, and
   the flow-matching loss (eq. 5, sign of eq. A3) on the masked tokens with several (t, noise)
   draws per token; ``open_end`` (off by default) gives a share of rows (``open_end_below``: of
   the rows shorter than that many tokens) unknown, unscored tokens after the clip's end
   (:func:`open_ends`); a share of steps (``transition_share``) trains on
   transition sequences instead, one action's tail known and another action's text
   (:mod:`coamd.train.transitions`);
4. AdamW (betas 0.9/0.95, no decay on biases and norms) and EMA weights (shipped); resume from
   ``RUN_DIR/state.pt``, the step and wall-clock budgets, warm-up then cosine decay, the JSON-lines
   log and saves are :mod:`coamd.train.loop`'s.

``--out`` gets :func:`generator_checkpoint` of the EMA weights plus a ``train`` summary.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from coamd.models.generator import DiffusionMLP, GeneratorConfig, MaskedTransformer, generator_preset
from coamd.paths import DEFAULT_CHECKPOINT, DEFAULT_DATASET, DEFAULT_RUNS
from coamd.train import loop

FRAMES_PER_TOKEN = 4


@dataclass
class GeneratorTrainConfig(loop.TrainConfig):
    """Options of ``coamd train generator`` (see ``--help``): where the data, the frozen
    autoencoder and the outputs are, the run options (``work_dir`` is the run folder, ``resume``,
    ``seed``, ``threads``, ``max_minutes``), the generator size (``preset`` + ``overrides``) and the
    training settings (the loop's keys are :class:`~coamd.train.loop.TrainConfig`'s; ``warmup`` is
    in steps here)."""

    preset: str = "small"
    dataset: str = DEFAULT_DATASET
    autoencoder: str = ""            # AE checkpoint; "" = the shipped default
    out: str = str(DEFAULT_CHECKPOINT / "generator.pt")
    work_dir: str = f"{DEFAULT_RUNS}/generator"
    steps: int = 9760
    max_minutes: float = 40.0        # wall-clock budget (the LR schedule ends by then too)
    batch_size: int = 48
    lr: float = 8e-4
    weight_decay: float = 0.01
    warmup: float = 100              # steps
    final_lr: float = 0.05
    log_every: int = 25
    eval_every: int = 200            # validation flow-matching loss of the EMA weights
    checkpoint_every_s: float = 180.0
    ema: float = 0.999
    cond_drop: float = 0.1           # probability of the null text (classifier-free guidance)
    diff_samples: int = 4            # (t, eps) draws per masked token
    mask_patterns: tuple = (0.55, 0.3, 0.15)  # random / known prefix / masked span
    continue_crop: float = 0.5       # share of known-prefix rows cut short (continuations, not endings)
    open_end: float = 0.0            # share of rows given unknown, unscored tokens after the clip's end
    open_end_below: int = 0          # only rows shorter than this many tokens get them (0: every row)
    transition_share: float = 0.0    # share of steps on transition sequences (coamd.train.transitions)
    transitions: int = 4000          # transition sequences built (encoded once, cached)
    balance: float = 0.5             # class balance: draw an action in proportion to n_action^(1-balance)
    style_balance: float = 0.5       # within an action, draw a style in proportion to n_pair^(1-style_balance)
    max_tokens: int = 60
    seed: int = 0
    threads: int = 0                 # 0 = coamd.train.common.default_threads()
    resume: bool = False
    overrides: dict = field(default_factory=dict)  # generator size overrides

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorTrainConfig":
        """Build from a dict; raises ValueError naming unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown generator training options {bad}; valid: {sorted(known)}")
        return cls().replace(**d)


# ----------------------------------------------------------------------------- data
def _default_ae_path() -> Path:
    return DEFAULT_CHECKPOINT / "autoencoder.pt"


def _ae_path(cfg: GeneratorTrainConfig) -> Path:
    return Path(cfg.autoencoder) if cfg.autoencoder else _default_ae_path()


def load_autoencoder(path: str | Path | None = None):
    """The frozen motion autoencoder from a ``{"config", "state_dict"}`` checkpoint (eval mode).

    Raises FileNotFoundError when the checkpoint is missing.
    """
    path = Path(path) if path else _default_ae_path()
    if not path.exists():
        raise FileNotFoundError(f"autoencoder checkpoint {path} not found; train it with `coamd train ae`")
    from coamd.models.autoencoder import MotionAutoencoder

    ae = MotionAutoencoder.from_checkpoint(torch.load(path, map_location="cpu", weights_only=False))
    ae.eval()
    for p in ae.parameters():
        p.requires_grad_(False)
    return ae


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def clip_windows(joints: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Cut one clip (T, 21, 3) into token-aligned pieces of at most ``max_tokens`` tokens.

    A clip that fits is trimmed to a multiple of 4 frames. Longer clips become windows of
    ``max_tokens`` tokens with 50 % overlap, each re-canonicalised (hips above the origin facing
    +Z at its first frame) like a generated motion. Clips under 8 frames give nothing.
    """
    from coamd.data.process import canonicalize

    T = joints.shape[0] // FRAMES_PER_TOKEN * FRAMES_PER_TOKEN
    if T < 2 * FRAMES_PER_TOKEN:
        return []
    win = max_tokens * FRAMES_PER_TOKEN
    if T <= win:
        return [joints[:T]]
    starts = list(range(0, T - win + 1, win // 2))
    if starts[-1] != T - win:
        starts.append(T - win)
    return [canonicalize(joints[s:s + win]).astype(np.float32) for s in starts]


def split_windows(clips, max_tokens: int) -> tuple[list[np.ndarray], list[int]]:
    """Every clip's :func:`clip_windows`, in order: (list of (T, 21, 3), clip index of each). The
    latent cache's windows and their order."""
    windows, owner = [], []
    for i, clip in enumerate(clips):
        for w in clip_windows(clip.joints, max_tokens):
            windows.append(w)
            owner.append(i)
    return windows, owner


@torch.inference_mode()
def encode_window(ae, joints: np.ndarray) -> np.ndarray:
    """(L, D) float32 latent tokens of one window (T, 21, 3) with the frozen autoencoder."""
    z = ae.encode(torch.from_numpy(np.ascontiguousarray(joints))[None].float())[0]
    return z.numpy().astype(np.float32)


def encode_split(ae, clips, max_tokens: int, progress: bool = True) -> tuple[list[np.ndarray], list[int]]:
    """Latent tokens of every clip window: (list of (L, D) float32, clip index of each)."""
    from tqdm import tqdm

    windows, owner = split_windows(clips, max_tokens)
    latents = [encode_window(ae, w) for w in tqdm(windows, desc="encoding windows", disable=not progress,
                                                  unit="window")]
    return latents, owner


def build_cache(cfg: GeneratorTrainConfig, progress: bool = True) -> dict:
    """Latents of the train/val splits and caption features (families A-D), cached under
    ``work_dir`` keyed by the autoencoder's digest. Returns a dict of arrays."""
    from coamd.data.dataset import MotionDataset

    ae_path = _ae_path(cfg)
    if not ae_path.exists():
        raise FileNotFoundError(f"autoencoder checkpoint {ae_path} not found; train it with `coamd train ae`")
    key = f"{_file_digest(ae_path)}_{cfg.max_tokens}_v3"  # v3: with the action and style of every window
    path = Path(cfg.work_dir) / f"latents_{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    ds = MotionDataset(cfg.dataset)
    ae = load_autoencoder(ae_path)
    out: dict[str, np.ndarray] = {}
    texts: list[str] = []
    text_index: dict[str, int] = {}
    contents = sorted({c.content for c in ds.clips})
    styles = sorted({c.style for c in ds.clips})
    for split in ("train", "val"):
        clips = ds.split(split)
        lat, owner = encode_split(ae, clips, cfg.max_tokens, progress)
        lens = np.array([z.shape[0] for z in lat], dtype=np.int64)
        out[f"{split}_z"] = np.concatenate(lat).astype(np.float32)
        out[f"{split}_offsets"] = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        # caption ids of each window (families A-D only), flattened with offsets
        cap_ids, cap_off = [], [0]
        for o in owner:
            for t in clips[o].caption_texts(heldout=False):
                if t not in text_index:
                    text_index[t] = len(texts)
                    texts.append(t)
                cap_ids.append(text_index[t])
            cap_off.append(len(cap_ids))
        out[f"{split}_content"] = np.array([contents.index(clips[o].content) for o in owner], np.int64)
        out[f"{split}_style"] = np.array([styles.index(clips[o].style) for o in owner], np.int64)
        out[f"{split}_cap_ids"] = np.array(cap_ids, dtype=np.int64)
        out[f"{split}_cap_offsets"] = np.array(cap_off, dtype=np.int64)
    out["text_feats"] = caption_features(texts, Path(cfg.work_dir), progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def transition_cache(cfg: GeneratorTrainConfig, cache: dict, progress: bool = True) -> dict:
    """The encoded transition sequences of :mod:`coamd.train.transitions` for this run, cached
    under ``work_dir`` (built from the train split's windows in the latent cache's order; B drawn
    with the run's class balance)."""
    from coamd.data.dataset import MotionDataset
    from coamd.train import transitions as tr

    ae_path = _ae_path(cfg)
    key = tr.transitions_key(_file_digest(ae_path), cfg.transitions, cfg.seed, cfg.max_tokens,
                             (cfg.balance, cfg.style_balance))

    def load():
        windows, _ = split_windows(MotionDataset(cfg.dataset).split("train"), cfg.max_tokens)
        if len(windows) != len(cache["train_content"]):
            raise ValueError(f"{len(windows)} train windows, but the latent cache has {len(cache['train_content'])}")
        ae = load_autoencoder(ae_path)
        return (lambda joints: encode_window(ae, joints)), windows

    p_b = balance_weights(cache["train_content"], cfg.balance, cache["train_style"], cfg.style_balance)
    return tr.build_transitions(load, cache["train_content"], cfg.transitions, cfg.seed, p_b,
                                cfg.max_tokens, Path(cfg.work_dir), key, progress)


def caption_features(texts: list[str], work_dir: Path, progress: bool = True) -> np.ndarray:
    """(N, 384) float32 MiniLM features of ``texts`` (frozen encoder), cached in ``work_dir`` by
    the texts' digest."""
    from tqdm import tqdm

    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = work_dir / f"captions_{key}.npy"
    if path.exists():
        return np.load(path)
    from coamd.models.text import TextEncoder

    enc = TextEncoder()
    feats = []
    with torch.inference_mode():
        for i in tqdm(range(0, len(texts), 256), desc="encoding captions", disable=not progress):
            feats.append(enc.encode(texts[i:i + 256]).float().numpy())
    out = np.concatenate(feats).astype(np.float32)
    work_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def balance_weights(labels: np.ndarray, balance: float, styles: np.ndarray | None = None,
                    style_balance: float = 0.0) -> np.ndarray | None:
    """Sampling probabilities (N,) of N windows with action ``labels`` (N,) int and, optionally,
    style ``styles`` (N,) int.

    An action ``a`` is drawn in proportion to ``n_a ** (1 - balance)`` (``n_a``: its windows; 0:
    the data's own frequencies; 0.5: square-root balance, as in class-balanced sampling of
    long-tailed data; 1: every action equally often). Within the action, a style ``s`` is drawn in
    proportion to ``n_as ** (1 - style_balance)`` (``n_as``: windows of that action and style), then
    a window of the pair uniformly. With ``style_balance`` 0 a window's weight is ``n_a ** -balance``.
    None when both are 0 (uniform over windows). Raises ValueError for a value outside [0, 1] or
    ``styles`` of another length."""
    for name, v in (("balance", balance), ("style_balance", style_balance)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v}")
    if styles is None:
        styles = np.zeros_like(labels)
        style_balance = 0.0
    if len(styles) != len(labels):
        raise ValueError(f"styles has {len(styles)} entries for {len(labels)} windows")
    if balance == 0.0 and style_balance == 0.0:
        return None
    n_a = np.bincount(labels).astype(np.float64)
    pair = labels * (int(styles.max()) + 1) + styles
    _, pair_id, n_p = np.unique(pair, return_inverse=True, return_counts=True)
    n_p = n_p.astype(np.float64)
    pair_action = np.zeros(len(n_p), np.int64)
    pair_action[pair_id] = labels
    # P(style | action) for every pair, then P(window) = P(action) P(style | action) / n_pair
    m = n_p ** (1.0 - style_balance)
    p_style = m / np.bincount(pair_action, weights=m, minlength=len(n_a))[pair_action]
    p_action = n_a ** (1.0 - balance)      # actions without windows are never indexed
    w = p_action[labels] * p_style[pair_id] / n_p[pair_id]
    return w / w.sum()


class LatentBatches:
    """Length-bucketed random batches of padded latent sequences with one caption each.

    ``balance`` / ``style_balance``: class balance of the draws over the windows' actions and, within
    an action, over its styles (:func:`balance_weights`; 0 and 0 = uniform over windows)."""

    def __init__(self, cache: dict, split: str, rng: np.random.Generator, balance: float = 0.0,
                 style_balance: float = 0.0):
        self.z = cache[f"{split}_z"]
        self.off = cache[f"{split}_offsets"]
        self.cap = cache[f"{split}_cap_ids"]
        self.cap_off = cache[f"{split}_cap_offsets"]
        self.feats = cache["text_feats"]
        self.lens = np.diff(self.off)
        self.p = (balance_weights(cache[f"{split}_content"], balance, cache.get(f"{split}_style"), style_balance)
                  if balance or style_balance else None)
        self.rng = rng
        self._queue: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.lens)

    def _refill(self, batch_size: int, pool: int = 8) -> None:
        idx = self.rng.choice(len(self.lens), size=batch_size * pool, p=self.p,
                              replace=self.p is not None or len(self.lens) < batch_size * pool)
        idx = idx[np.argsort(self.lens[idx], kind="stable")]
        batches = [idx[i * batch_size:(i + 1) * batch_size] for i in range(pool)]
        self.rng.shuffle(batches)
        self._queue.extend(batches)

    def batch(self, batch_size: int, items: np.ndarray | None = None):
        """(z (B, L, D), pad (B, L) bool, text (B, 384)) as torch tensors."""
        if items is None:
            if not self._queue:
                self._refill(batch_size)
            items = self._queue.pop()
        L = int(self.lens[items].max())
        D = self.z.shape[1]
        z = np.zeros((len(items), L, D), np.float32)
        pad = np.ones((len(items), L), bool)
        text = np.zeros((len(items), self.feats.shape[1]), np.float32)
        for b, i in enumerate(items):
            n = self.lens[i]
            z[b, :n] = self.z[self.off[i]:self.off[i + 1]]
            pad[b, :n] = False
            caps = self.cap[self.cap_off[i]:self.cap_off[i + 1]]
            text[b] = self.feats[caps[self.rng.integers(len(caps))]] if len(caps) else 0.0
        return torch.from_numpy(z), torch.from_numpy(pad), torch.from_numpy(text)


def sample_masks(pad: torch.Tensor, patterns: tuple, gen: torch.Generator) -> torch.Tensor:
    """Training masks (B, L) bool, True = unknown, never on padding, at least one per row.

    Masking ratio ``cos(pi/2 * u)``, u ~ U(0, 1) (the cosine schedule); pattern per row drawn
    with probabilities ``patterns`` = (random tokens, unknown suffix after a known prefix,
    unknown span inside known frames).
    """
    return training_masks(pad, patterns, gen)[0]


def training_masks(pad: torch.Tensor, patterns: tuple, gen: torch.Generator,
                   continue_crop: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (B, L), pad (B, L)) bool: :func:`sample_masks`' masks, and with probability
    ``continue_crop`` a known-prefix row is cut short after a random number (at least one) of its
    unknown tokens: the tokens after the cut become padding. A clip's last tokens are its ending
    (the actor slows down, lowers the hand, comes to rest), so without crops a known prefix is
    always followed by the rest of the clip up to its end; with them the model also learns to
    continue an action for a while without ending it, which is what a session window (a known
    history, then a plan of which only the first part is kept) asks for. Raises ValueError for
    ``continue_crop`` outside [0, 1]."""
    if not 0.0 <= continue_crop <= 1.0:
        raise ValueError(f"continue_crop must be in [0, 1], got {continue_crop}")
    B, L = pad.shape
    lens = (~pad).sum(1)
    u = torch.rand(B, generator=gen)
    n_mask = torch.clamp(torch.ceil(torch.cos(math.pi / 2 * u) * lens), min=1)
    n_mask = torch.minimum(n_mask, lens.float()).long()
    kind = torch.multinomial(torch.tensor(patterns, dtype=torch.float), B, replacement=True, generator=gen)
    pos = torch.arange(L)[None].expand(B, L)
    # random: rank of a random score among the valid tokens
    score = torch.rand(B, L, generator=gen).masked_fill(pad, 2.0)
    rank = score.argsort(1).argsort(1)
    m_random = rank < n_mask[:, None]
    m_prefix = pos >= (lens - n_mask)[:, None]
    start = (torch.rand(B, generator=gen) * (lens - n_mask + 1).float()).long()
    m_span = (pos >= start[:, None]) & (pos < (start + n_mask)[:, None])
    m = torch.where((kind == 0)[:, None], m_random, torch.where((kind == 1)[:, None], m_prefix, m_span))
    if continue_crop > 0.0:
        crop = (kind == 1) & (torch.rand(B, generator=gen) < continue_crop)
        keep_unknown = 1 + (torch.rand(B, generator=gen) * n_mask.float()).long().clamp(max=n_mask - 1)
        end = torch.where(crop, lens - n_mask + keep_unknown, lens)
        pad = pad | (pos >= end[:, None])
    return m & ~pad, pad


def open_ends(z: torch.Tensor, mask: torch.Tensor, pad: torch.Tensor, share: float, max_tokens: int,
              gen: torch.Generator, below: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Give a ``share`` of the rows (with ``below`` > 0: of the rows shorter than ``below``
    tokens) unknown tokens after their last one, which the loss never scores: (z, mask, pad,
    loss_mask), the first three widened to the new length.

    A row of n tokens gets k ~ U{1..min(n, max_tokens - n)} more positions, marked unknown (the
    mask token) but not padding, so the transformer sees a sequence longer than the clip, as it
    does when a request is longer than the recordings of its (action, style) pair: an energetic
    run is 2.0-2.9 s long in the data, and without open ends a 4 s request reads, from its
    length alone, as one of the long, tired styles. Only the clip's own tokens are scored, so
    the model learns that a long sequence does not change how its first seconds look, and never
    learns a target for the open tail. Off by default: at 0.3 it fixed the 4 s energetic hand
    raise but cost unguided walks 5-10 points of style in two training seeds, and limited to
    rows shorter than 20 tokens (``below``; 1 % of the walk clips) it cost them as much
    (``benchmarks/results/open_end/README.md``). z (B, L, D), mask / pad (B, L) bool as from
    :func:`training_masks`; ``share`` in [0, 1] and ``below`` >= 0 (ValueError otherwise)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"open_end must be in [0, 1], got {share}")
    if below < 0:
        raise ValueError(f"open_end_below must be >= 0 tokens, got {below}")
    B, L = pad.shape
    lens = (~pad).sum(1)
    room = torch.minimum(lens, max_tokens - lens).clamp(min=0)
    if below > 0:
        room = torch.where(lens < below, room, 0)
    chosen = (torch.rand(B, generator=gen) < share) & (room > 0)
    extra = torch.where(chosen, 1 + (torch.rand(B, generator=gen) * room.float()).long().clamp(max=room - 1), 0)
    L2 = max(L, int((lens + extra).max()))
    if L2 > L:
        z = torch.cat([z, z.new_zeros(B, L2 - L, z.shape[2])], 1)
        mask = torch.cat([mask, mask.new_zeros(B, L2 - L)], 1)
        pad = torch.cat([pad, pad.new_ones(B, L2 - L)], 1)
    pos = torch.arange(L2)[None]
    tail = (pos >= lens[:, None]) & (pos < (lens + extra)[:, None])
    return z, mask | tail, pad & ~tail, mask & ~tail


# ----------------------------------------------------------------------------- checkpoints
def generator_checkpoint(transformer: MaskedTransformer, diffusion: DiffusionMLP, extra: dict | None = None) -> dict:
    """The shipped format: ``{"config": dict, "state_dict": {"transformer.*", "diffusion.*"}}``."""
    sd = {f"transformer.{k}": v.detach().clone() for k, v in transformer.state_dict().items()}
    sd.update({f"diffusion.{k}": v.detach().clone() for k, v in diffusion.state_dict().items()})
    return {"config": {**transformer.config.to_dict(), **(extra or {})}, "state_dict": sd}


def train_generator(cfg: GeneratorTrainConfig, progress: bool = True, cache: dict | None = None,
                    stop_after: int | None = None) -> dict:
    """Train (or with ``cfg.resume`` continue ``work_dir/state.pt``) and write the EMA weights to
    ``cfg.out``; ``cache``: a :func:`build_cache` dict to use instead of building one;
    ``stop_after``: end this session after that many steps (:class:`~coamd.train.loop.RunOptions`).

    Returns the loop's summary (``step``, ``train_seconds``, ``val`` = ``{"val_loss"}``, ``out``,
    ...; :func:`coamd.train.loop.train`). Raises ValueError for an unknown preset or when the saved
    state was trained with another generator config, FileNotFoundError when the autoencoder
    checkpoint, the dataset or the state to resume is missing.
    """
    opts = loop.RunOptions(run_dir=cfg.work_dir, out=cfg.out, seed=cfg.seed, max_minutes=cfg.max_minutes,
                           resume=cfg.resume, stop_after=stop_after, threads=cfg.threads or None,
                           progress=progress)
    return loop.train("generator", lambda spec, rng: build(cfg, spec, rng, progress, cache), opts)


def build(cfg: GeneratorTrainConfig, spec: dict | None, rng: loop.Rng, progress: bool = True,
          cache: dict | None = None) -> loop.Task:
    """The generator's :class:`~coamd.train.loop.Task`: latents of the split (cached), the masked
    transformer, the diffusion MLP and their EMA copies. Each step draws a length-bucketed batch
    (``rng.np``), masks, condition dropout and flow-matching noise (``rng.torch``) and returns the
    eq. 5 loss. ``spec`` (on resume) must describe the same generator config as ``cfg``
    (ValueError otherwise)."""
    generator_preset(cfg.preset)  # ValueError for an unknown preset
    GeneratorConfig.from_dict(cfg.overrides)  # ValueError naming unknown keys, before the slow cache
    Path(cfg.work_dir).mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    cache = cache if cache is not None else build_cache(cfg, progress)
    t_cache = time.perf_counter() - t_start
    D = cache["train_z"].shape[1]
    mean = cache["train_z"].mean(0)
    std = cache["train_z"].std(0) + 1e-6
    for k in ("train", "val"):
        cache[f"{k}_zn"] = ((cache[f"{k}_z"] - mean) / std).astype(np.float32)

    gcfg = GeneratorConfig.from_dict({**generator_preset(cfg.preset), "latent_dim": D,
                                      "max_tokens": cfg.max_tokens, **cfg.overrides})
    if spec is not None and spec["model"] != gcfg.to_dict():
        raise ValueError(f"{Path(cfg.work_dir) / 'state.pt'} was trained with generator config {spec['model']}, "
                         f"not {gcfg.to_dict()}; use the same options or another --run-dir")
    transformer, diffusion = MaskedTransformer(gcfg), DiffusionMLP(gcfg)
    transformer.latent_mean.copy_(torch.from_numpy(mean))
    transformer.latent_std.copy_(torch.from_numpy(std))
    params = list(transformer.parameters()) + list(diffusion.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    ema_t, ema_d = MaskedTransformer(gcfg), DiffusionMLP(gcfg)
    ema_t.load_state_dict(transformer.state_dict())
    ema_d.load_state_dict(diffusion.state_dict())
    ema_params = list(ema_t.parameters()) + list(ema_d.parameters())
    train = LatentBatches({**cache, "train_z": cache["train_zn"]}, "train", rng.np, cfg.balance, cfg.style_balance)
    val = LatentBatches({**cache, "val_z": cache["val_zn"]}, "val", np.random.default_rng(cfg.seed + 1))
    trans = None
    if cfg.transition_share > 0:
        from coamd.train.transitions import TransitionBatches, transition_masks

        t = transition_cache(cfg, cache, progress)
        trans = TransitionBatches(t, ((t["z"] - mean) / std).astype(np.float32), cache, rng.np)
    transformer.train()
    diffusion.train()

    def step(log: bool) -> tuple[torch.Tensor, dict]:
        if trans is not None and rng.np.random() < cfg.transition_share:
            z, pad, text, known = trans.batch(cfg.batch_size)
            mask, loss_mask = transition_masks(pad, known)
        else:
            z, pad, text = train.batch(cfg.batch_size)
            mask, pad = training_masks(pad, cfg.mask_patterns, rng.torch, cfg.continue_crop)
            loss_mask = mask
            if cfg.open_end > 0:
                z, mask, pad, loss_mask = open_ends(z, mask, pad, cfg.open_end, cfg.max_tokens, rng.torch,
                                                    cfg.open_end_below)
        drop = torch.rand(z.shape[0], generator=rng.torch) < cfg.cond_drop
        h = transformer(z, mask, text, pad, drop)
        return diffusion.loss(z[loss_mask], h[loss_mask], cfg.diff_samples, generator=rng.torch), {}

    @torch.no_grad()
    def after_step(i: int) -> None:
        d = min(cfg.ema, (1 + i) / (10 + i))
        torch._foreach_lerp_(ema_params, params, 1 - d)

    @torch.no_grad()
    def evaluate(final: bool) -> dict:
        """Flow-matching loss of the EMA weights on random masks of 4 (final: 8) val batches."""
        ema_t.eval()
        ema_d.eval()
        g = torch.Generator().manual_seed(1234)
        r = np.random.default_rng(1234)
        losses = []
        for _ in range(8 if final else 4):
            items = r.choice(len(val), size=cfg.batch_size)
            z, pad, text = val.batch(cfg.batch_size, items)
            mask = sample_masks(pad, (1.0, 0.0, 0.0), g)
            h = ema_t(z, mask, text, pad)
            losses.append(ema_d.loss(z[mask], h[mask], cfg.diff_samples, generator=g).item())
        return {"val_loss": float(np.mean(losses))}

    def export(summary: dict) -> dict:
        ck = generator_checkpoint(ema_t, ema_d)
        ck["train"] = {"preset": cfg.preset, "steps": summary["step"],
                       "train_minutes": round(summary["train_seconds"] / 60, 1),
                       "cache_minutes": round(t_cache / 60, 1), "val_loss": summary["val"]["val_loss"],
                       "seed": cfg.seed, "batch_size": cfg.batch_size, "cond_drop": cfg.cond_drop,
                       "balance": cfg.balance, "style_balance": cfg.style_balance,
                       "mask_patterns": list(cfg.mask_patterns), "continue_crop": cfg.continue_crop,
                       "open_end": cfg.open_end, "open_end_below": cfg.open_end_below,
                       "transition_share": cfg.transition_share, "transitions": cfg.transitions}
        return ck

    def state() -> dict:
        return {"queue": list(train._queue), "val_rng": val.rng.bit_generator.state}

    def load_state(st: dict) -> None:
        train._queue[:] = st["queue"]
        val.rng.bit_generator.state = st["val_rng"]

    return loop.Task(
        config=cfg, modules={"transformer": transformer, "diffusion": diffusion, "ema_transformer": ema_t,
                             "ema_diffusion": ema_d},
        optimizer=opt, params=params, spec={"model": gcfg.to_dict(), "train": cfg.to_dict()},
        step=step, after_step=after_step, evaluate=evaluate, export=export, state=state, load_state=load_state,
        info={"windows": len(train), "params": sum(p.numel() for p in params), "config": gcfg.to_dict(),
              "cache_seconds": round(t_cache, 1)})


# ----------------------------------------------------------------------------- command line
def add_args(p) -> None:
    """``coamd train generator`` arguments (the common ones plus the generator's)."""
    from coamd.train import common

    common.add_common_args(p, "generator", "generator.pt", GeneratorTrainConfig.max_minutes)
    p.add_argument("--autoencoder", default="",
                   help="frozen autoencoder checkpoint whose latents are modelled "
                        "(default: coamd/checkpoints/default/autoencoder.pt)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step (default: 48)")


def run(a) -> dict:
    """``coamd train generator`` from parsed arguments; ``--eval-only`` prints the validation loss
    of ``--out``. With ``--resume`` the saved training config is used, changed only by
    ``--steps``, ``--max-minutes``, ``--batch-size`` and ``--train-set``. Raises ValueError for
    unknown keys, a device other than the CPU or ``--set`` with ``--resume``."""
    from coamd.train import common

    overrides = common.parse_overrides(a.overrides)
    train_over = common.parse_overrides(a.train_overrides)
    if a.device != "cpu":
        raise ValueError("the generator trainer runs on the CPU here (--device cpu)")
    run_kw = dict(out=a.out, work_dir=a.run_dir, threads=a.threads or 0, resume=a.resume)
    if a.resume:
        loop.run_options(a)  # rejects --set with --resume
        saved = GeneratorTrainConfig.from_dict(loop.load_state(a.run_dir, "generator")["spec"]["train"])
        kw = {**saved.to_dict(), **run_kw, **train_over}
    else:
        kw = dict(preset=a.preset, dataset=a.dataset, autoencoder=a.autoencoder, seed=a.seed,
                  overrides=overrides, **run_kw, **train_over)
    if a.steps:
        kw["steps"] = a.steps
    if a.max_minutes:
        kw["max_minutes"] = a.max_minutes
    if a.batch_size:
        kw["batch_size"] = a.batch_size
    cfg = GeneratorTrainConfig.from_dict(kw)
    if a.eval_only:
        return evaluate_checkpoint(cfg, progress=not a.quiet)
    summary = train_generator(cfg, progress=not a.quiet, stop_after=a.stop_after)
    if summary["out"]:
        print(f"generator: {summary['step']} steps in {summary['train_seconds'] / 60:.1f} min, "
              f"validation flow-matching loss {summary['val']['val_loss']:.4f} -> {summary['out']}")
    else:
        print(f"stopped after step {summary['step']}; continue with --resume --run-dir {a.run_dir}")
    return summary


@torch.no_grad()
def evaluate_checkpoint(cfg: GeneratorTrainConfig, progress: bool = True) -> dict:
    """Validation flow-matching loss of the checkpoint ``cfg.out`` (random masks, fixed seed)."""
    from coamd.models.generator import load_generator

    torch.set_num_threads(max(1, cfg.threads or 1))
    cache = build_cache(cfg, progress)
    tr, df = load_generator(cfg.out)
    zn = tr.from_ae(torch.from_numpy(cache["val_z"])).numpy()
    val = LatentBatches({**cache, "val_z": zn}, "val", np.random.default_rng(1234))
    g = torch.Generator().manual_seed(1234)
    losses = []
    for _ in range(8):
        items = val.rng.choice(len(val), size=cfg.batch_size)
        z, pad, text = val.batch(cfg.batch_size, items)
        mask = sample_masks(pad, (1.0, 0.0, 0.0), g)
        losses.append(df.loss(z[mask], tr(z, mask, text, pad)[mask], cfg.diff_samples, generator=g).item())
    out = {"val_loss": float(np.mean(losses))}
    print(f"generator {cfg.out}: validation flow-matching loss {out['val_loss']:.4f}")
    return out
