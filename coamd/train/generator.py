"""Training the generator (masked transformer + diffusion MLP) on frozen autoencoder latents.

Paper section 3.2 (eq. 3-5). The loop:

1. encode the train (and val) split once with the frozen shipped autoencoder and cache the latent
   tokens; clips longer than ``max_tokens`` tokens are cut into re-canonicalised windows so every
   training sequence starts at the origin facing +Z like a generated motion;
2. encode the captions of the training families (A-D; family E stays held out) once with the
   frozen MiniLM text encoder and cache the 384-d features;
3. each step: a length-bucketed batch, a random masking ratio from the cosine schedule
   (``cos(pi/2 * u)``, u ~ U(0, 1)) applied in one of three patterns (random tokens, a known prefix
   as in left-to-right sampling, a masked span as in editing), condition dropout (null text) for
   classifier-free guidance, and the flow-matching loss (eq. 5, sign of eq. A3) on the masked
   tokens with several (t, noise) draws per token;
4. AdamW, warm-up then cosine decay (finishing by the step or wall-clock budget, whichever is
   first), EMA weights (shipped), a JSON-lines log, periodic checkpoints with resume, seeds.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from coamd.models.generator import DiffusionMLP, GeneratorConfig, MaskedTransformer, generator_preset

FRAMES_PER_TOKEN = 4


@dataclass
class GeneratorTrainConfig:
    """Options of ``coamd train generator`` (see ``--help``)."""

    preset: str = "small"
    dataset: str = "data/processed"
    autoencoder: str = ""            # AE checkpoint; "" = the shipped default
    out: str = "coamd/checkpoints/default/generator.pt"
    work_dir: str = "runs/generator"
    steps: int = 6000
    max_minutes: float = 28.0        # wall-clock budget (the LR schedule ends by then too)
    batch_size: int = 48
    lr: float = 8e-4
    weight_decay: float = 0.01
    warmup: int = 100
    ema: float = 0.999
    cond_drop: float = 0.1           # probability of the null text (classifier-free guidance)
    diff_samples: int = 4            # (t, eps) draws per masked token
    mask_patterns: tuple = (0.7, 0.15, 0.15)  # random / known prefix / masked span
    max_tokens: int = 60
    seed: int = 0
    threads: int = 0                 # 0 = coamd.train.common.default_threads()
    log_every: int = 25
    ckpt_every_min: float = 3.0
    resume: bool = False
    overrides: dict = field(default_factory=dict)  # generator size overrides

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorTrainConfig":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown generator training options {bad}")
        return cls(**d)


# ----------------------------------------------------------------------------- data
def _default_ae_path() -> Path:
    return Path(__file__).resolve().parents[1] / "checkpoints" / "default" / "autoencoder.pt"


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


@torch.inference_mode()
def encode_split(ae, clips, max_tokens: int, progress: bool = True) -> tuple[list[np.ndarray], list[int]]:
    """Latent tokens of every clip window: (list of (L, D) float32, clip index of each)."""
    from tqdm import tqdm

    latents, owner = [], []
    for i, clip in enumerate(tqdm(clips, desc="encoding clips", disable=not progress, unit="clip")):
        for w in clip_windows(clip.joints, max_tokens):
            z = ae.encode(torch.from_numpy(np.ascontiguousarray(w))[None].float())[0]
            latents.append(z.numpy().astype(np.float32))
            owner.append(i)
    return latents, owner


def build_cache(cfg: GeneratorTrainConfig, progress: bool = True) -> dict:
    """Latents of the train/val splits and caption features (families A-D), cached under
    ``work_dir`` keyed by the autoencoder's digest. Returns a dict of arrays."""
    from coamd.data.dataset import MotionDataset

    ae_path = Path(cfg.autoencoder) if cfg.autoencoder else _default_ae_path()
    if not ae_path.exists():
        raise FileNotFoundError(f"autoencoder checkpoint {ae_path} not found; train it with `coamd train ae`")
    key = f"{_file_digest(ae_path)}_{cfg.max_tokens}"
    path = Path(cfg.work_dir) / f"latents_{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    ds = MotionDataset(cfg.dataset)
    ae = load_autoencoder(ae_path)
    out: dict[str, np.ndarray] = {}
    texts: list[str] = []
    text_index: dict[str, int] = {}
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
        out[f"{split}_cap_ids"] = np.array(cap_ids, dtype=np.int64)
        out[f"{split}_cap_offsets"] = np.array(cap_off, dtype=np.int64)
    out["text_feats"] = caption_features(texts, Path(cfg.work_dir), progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


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


class LatentBatches:
    """Length-bucketed random batches of padded latent sequences with one caption each."""

    def __init__(self, cache: dict, split: str, rng: np.random.Generator):
        self.z = cache[f"{split}_z"]
        self.off = cache[f"{split}_offsets"]
        self.cap = cache[f"{split}_cap_ids"]
        self.cap_off = cache[f"{split}_cap_offsets"]
        self.feats = cache["text_feats"]
        self.lens = np.diff(self.off)
        self.rng = rng
        self._queue: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.lens)

    def _refill(self, batch_size: int, pool: int = 8) -> None:
        idx = self.rng.choice(len(self.lens), size=batch_size * pool, replace=len(self.lens) < batch_size * pool)
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
    return m & ~pad


# ----------------------------------------------------------------------------- checkpoints
def generator_checkpoint(transformer: MaskedTransformer, diffusion: DiffusionMLP, extra: dict | None = None) -> dict:
    """The shipped format: ``{"config": dict, "state_dict": {"transformer.*", "diffusion.*"}}``."""
    sd = {f"transformer.{k}": v.detach().clone() for k, v in transformer.state_dict().items()}
    sd.update({f"diffusion.{k}": v.detach().clone() for k, v in diffusion.state_dict().items()})
    return {"config": {**transformer.config.to_dict(), **(extra or {})}, "state_dict": sd}


def _lr(cfg: GeneratorTrainConfig, step: int, elapsed_min: float) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    prog = max((step - cfg.warmup) / max(1, cfg.steps - cfg.warmup), elapsed_min / cfg.max_minutes)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, prog))))


def train_generator(cfg: GeneratorTrainConfig, progress: bool = True, cache: dict | None = None) -> dict:
    """Train (or resume) and write the EMA weights to ``cfg.out``. Returns a summary dict.

    Resumes from ``work_dir/last.pt`` when present (same options). Raises ValueError for an
    unknown preset, FileNotFoundError when the autoencoder checkpoint or dataset is missing.
    """
    from tqdm import tqdm

    generator_preset(cfg.preset)  # ValueError for an unknown preset
    from coamd.train.common import setup_torch

    threads = setup_torch(cfg.seed, cfg.threads or None)
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
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

    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed_before = 0, 0.0
    last = work / "state.pt"
    if cfg.resume:
        if not last.exists():
            raise FileNotFoundError(f"no training state at {last} to resume from")
        ck = torch.load(last, map_location="cpu", weights_only=False)
        if ck["train_config"]["preset"] != cfg.preset:
            raise ValueError(f"{last} was trained with preset {ck['train_config']['preset']!r}; "
                             f"use another --work-dir or the same preset")
        transformer.load_state_dict(ck["transformer"])
        diffusion.load_state_dict(ck["diffusion"])
        ema_t.load_state_dict(ck["ema_transformer"])
        ema_d.load_state_dict(ck["ema_diffusion"])
        opt.load_state_dict(ck["opt"])
        step, elapsed_before = ck["step"], ck["elapsed_s"]
        rng.bit_generator.state = ck["np_rng"]
        gen.set_state(ck["torch_rng"])
    train = LatentBatches({**cache, "train_z": cache["train_zn"]}, "train", rng)
    val = LatentBatches({**cache, "val_z": cache["val_zn"]}, "val", np.random.default_rng(cfg.seed + 1))
    log = open(work / "log.jsonl", "a")
    log.write(json.dumps({"event": "start", "step": step, "config": gcfg.to_dict(), "train_config": asdict(cfg),
                          "threads": threads, "windows": len(train),
                          "params": sum(p.numel() for p in params)}) + "\n")

    def save_last() -> None:
        tmp = last.with_suffix(".tmp")
        torch.save({"transformer": transformer.state_dict(), "diffusion": diffusion.state_dict(),
                    "ema_transformer": ema_t.state_dict(), "ema_diffusion": ema_d.state_dict(),
                    "opt": opt.state_dict(), "step": step, "elapsed_s": elapsed(),
                    "train_config": asdict(cfg), "np_rng": rng.bit_generator.state,
                    "torch_rng": gen.get_state()}, tmp)
        tmp.replace(last)

    t0 = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    @torch.no_grad()
    def val_loss(n_batches: int = 4) -> float:
        ema_t.eval()
        ema_d.eval()
        g = torch.Generator().manual_seed(1234)
        r = np.random.default_rng(1234)
        losses = []
        for _ in range(n_batches):
            items = r.choice(len(val), size=cfg.batch_size)
            z, pad, text = val.batch(cfg.batch_size, items)
            mask = sample_masks(pad, (1.0, 0.0, 0.0), g)
            h = ema_t(z, mask, text, pad)
            losses.append(ema_d.loss(z[mask], h[mask], cfg.diff_samples, generator=g).item())
        return float(np.mean(losses))

    bar = tqdm(total=cfg.steps, initial=step, desc="generator", disable=not progress, unit="step")
    last_ckpt = time.perf_counter()
    first_loss = None
    run_loss = []
    transformer.train()
    diffusion.train()
    while step < cfg.steps and elapsed() < cfg.max_minutes * 60:
        for g_ in opt.param_groups:
            g_["lr"] = _lr(cfg, step, elapsed() / 60)
        z, pad, text = train.batch(cfg.batch_size)
        mask = sample_masks(pad, cfg.mask_patterns, gen)
        drop = torch.rand(z.shape[0], generator=gen) < cfg.cond_drop
        h = transformer(z, mask, text, pad, drop)
        loss = diffusion.loss(z[mask], h[mask], cfg.diff_samples, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            d = min(cfg.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema_params, params, 1 - d)
        step += 1
        run_loss.append(loss.item())
        first_loss = first_loss if first_loss is not None else run_loss[0]
        bar.update(1)
        if step % cfg.log_every == 0:
            rec = {"step": step, "loss": float(np.mean(run_loss)), "lr": opt.param_groups[0]["lr"],
                   "grad_norm": float(gnorm), "elapsed_s": round(elapsed(), 1)}
            if step % (cfg.log_every * 8) == 0:
                rec["val_loss"] = val_loss()
            log.write(json.dumps(rec) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            run_loss = []
        if time.perf_counter() - last_ckpt > cfg.ckpt_every_min * 60:
            save_last()
            last_ckpt = time.perf_counter()
    bar.close()
    save_last()
    final_val = val_loss(8)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ck = generator_checkpoint(ema_t, ema_d, extra=None)
    ck["train"] = {"preset": cfg.preset, "steps": step, "train_minutes": round(elapsed() / 60, 1),
                   "cache_minutes": round(t_cache / 60, 1), "val_loss": final_val, "seed": cfg.seed,
                   "batch_size": cfg.batch_size, "cond_drop": cfg.cond_drop}
    torch.save(ck, out)
    summary = {"step": step, "train_minutes": round(elapsed() / 60, 2), "val_loss": final_val,
               "first_loss": first_loss, "out": str(out)}
    log.write(json.dumps({"final": summary}) + "\n")
    log.close()
    return summary



# ----------------------------------------------------------------------------- command line
def add_args(p) -> None:
    """``coamd train generator`` arguments (the common ones plus the generator's)."""
    from coamd.train import common

    common.add_common_args(p, "generator", "generator.pt")
    p.add_argument("--autoencoder", default="",
                   help="frozen autoencoder checkpoint whose latents are modelled "
                        "(default: coamd/checkpoints/default/autoencoder.pt)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step (default: 48)")


def run(a) -> dict:
    """Train from parsed arguments; ``--eval-only`` prints the validation loss of ``--out``."""
    from coamd.train import common

    overrides = common.parse_overrides(a.overrides)
    train_over = common.parse_overrides(a.train_overrides)
    if a.device != "cpu":
        raise ValueError("the generator trainer runs on the CPU here (--device cpu)")
    kw = dict(preset=a.preset, dataset=a.dataset, autoencoder=a.autoencoder, out=a.out, work_dir=a.run_dir,
              seed=a.seed, threads=a.threads or 0, resume=a.resume, overrides=overrides, **train_over)
    if a.steps:
        kw["steps"] = a.steps
    if a.max_minutes:
        kw["max_minutes"] = a.max_minutes
    if a.batch_size:
        kw["batch_size"] = a.batch_size
    cfg = GeneratorTrainConfig.from_dict(kw)
    if a.eval_only:
        return evaluate_checkpoint(cfg, progress=not a.quiet)
    summary = train_generator(cfg, progress=not a.quiet)
    print(f"generator: {summary['step']} steps in {summary['train_minutes']:.1f} min, "
          f"validation flow-matching loss {summary['val_loss']:.4f} -> {summary['out']}")
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
