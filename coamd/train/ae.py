"""Autoencoder trainer and its test-split measurement (``coamd train ae``).

Trains :class:`~coamd.models.autoencoder.MotionAutoencoder` with the eq. 2 loss on random
fixed-length crops of the train split, AdamW, warm-up + cosine LR over the step/time budget.
``evaluate_autoencoder`` measures the mean per-joint position error (MPJPE) of whole clips.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from coamd.models.config import ModelConfig
from coamd.train import common


@dataclasses.dataclass
class AETrainConfig(ModelConfig):
    """Training hyper-parameters of the autoencoder (override with ``--train-set key=value``)."""

    batch_size: int = 16
    crop: int = 64              # frames per training crop (multiple of 4)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    steps: int = 12000
    grad_clip: float = 1.0
    log_every: int = 50
    checkpoint_every_s: float = 60.0
    decoder_only: bool = False  # fine-tune the decoder of --init with the encoder frozen
    latent_noise: float = 0.0   # decoder input noise: z + u * latent_noise * std(z) * N(0, 1), u ~ U(0, 1)
                                # per clip, so the decoder stays smooth on generated (imperfect) latents

    def __post_init__(self):
        if self.crop % 4 or self.crop <= 0:
            raise ValueError(f"crop must be a positive multiple of 4, got {self.crop}")


TRAIN_PRESETS = {"small": {}, "paper": {"batch_size": 64, "lr": 2e-4, "steps": 200000}}


@torch.no_grad()
def evaluate_autoencoder(model, clips, device: str = "cpu", progress: bool = False) -> dict:
    """MPJPE of whole clips reconstructed through the autoencoder.

    Each clip (T, 21, 3) is padded to a multiple of 4 by repeating its last frame, encoded and
    decoded; the error is measured on its real frames. Returns ``mpjpe_cm`` (mean over every
    joint of every frame, cm), ``clip_mpjpe_cm_p95`` (95th percentile of per-clip MPJPE),
    ``root_err_cm`` (hips) and ``local_mpjpe_cm`` (hips-relative), ``clips``, ``frames``.
    """
    from tqdm import tqdm

    from coamd.models.autoencoder import pad_to_multiple

    model.eval()
    tot = root = local = 0.0
    frames = 0
    per_clip = []
    for c in tqdm(clips, desc="eval ae", disable=not progress, leave=False):
        x = torch.from_numpy(c.joints)[None].to(device)
        xp, t = pad_to_multiple(x)
        r = model(xp)[:, :t]
        err = (r - x).norm(dim=-1)[0]  # (T, 21)
        tot += float(err.sum())
        root += float(err[:, 0].sum())
        rl, xl = r - r[:, :, :1], x - x[:, :, :1]
        local += float((rl - xl).norm(dim=-1)[0, :, 1:].sum())
        frames += t
        per_clip.append(float(err.mean()))
    j = 21
    return {"mpjpe_cm": 100 * tot / (frames * j), "clip_mpjpe_cm_p95": 100 * float(np.percentile(per_clip, 95)),
            "root_err_cm": 100 * root / frames, "local_mpjpe_cm": 100 * local / (frames * (j - 1)),
            "clips": len(clips), "frames": frames}


def add_args(p: argparse.ArgumentParser) -> None:
    common.add_common_args(p, "ae", "autoencoder.pt")
    p.add_argument("--joints-only", action="store_true",
                   help="the joints-only ablation: joint stream for input and loss (streams=joint)")
    p.add_argument("--streams", default=None, metavar="S[,S]",
                   help="input/loss streams for a modality-ablation model, e.g. joint,bone "
                        "(default: joint,bone,motion; --joints-only is the same as --streams joint)")
    p.add_argument("--init", default=None,
                   help="start from this autoencoder checkpoint instead of random weights")
    p.add_argument("--decoder-only", action="store_true",
                   help="with --init: train only the decoder, the encoder frozen, so the latent space "
                        "(and a generator trained on it) stays valid")


def run(a: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from coamd.data.dataset import MotionDataset
    from coamd.models.autoencoder import MotionAutoencoder
    from coamd.models.presets import autoencoder_config, preset_overrides

    common.setup_torch(a.seed, a.threads)
    ds = MotionDataset(a.dataset)
    if a.eval_only:
        ckpt = torch.load(a.out, map_location="cpu", weights_only=False)
        model = MotionAutoencoder.from_checkpoint(ckpt).to(a.device)
        t = time.perf_counter()
        m = evaluate_autoencoder(model, ds.split("test"), a.device, progress=not a.quiet)
        m["eval_seconds"] = round(time.perf_counter() - t, 1)
        print(f"autoencoder {a.out} ({'+'.join(model.config.streams)}), test split: "
              f"MPJPE {m['mpjpe_cm']:.3f} cm (hips {m['root_err_cm']:.3f} cm, hips-relative "
              f"{m['local_mpjpe_cm']:.3f} cm, per-clip p95 {m['clip_mpjpe_cm_p95']:.3f} cm) "
              f"over {m['clips']} clips / {m['frames']} frames")
        return m

    overrides = common.parse_overrides(a.overrides)
    if a.joints_only:
        overrides["streams"] = ["joint"]
    elif a.streams:
        overrides["streams"] = [x.strip() for x in a.streams.split(",")]
    preset_overrides(a.preset, "autoencoder")  # validates the preset name
    tcfg = AETrainConfig().replace(**TRAIN_PRESETS.get(a.preset, {}))
    tcfg = tcfg.replace(**common.parse_overrides(a.train_overrides))
    if a.steps:
        tcfg = tcfg.replace(steps=a.steps)
    if a.decoder_only:
        if not a.init and not a.resume:
            raise ValueError("--decoder-only needs --init CHECKPOINT (the autoencoder whose encoder stays)")
        tcfg = tcfg.replace(decoder_only=True)
    run_dir = Path(a.run_dir)
    state_path = run_dir / "state.pt"
    log = common.JsonlLog(run_dir / "log.jsonl")

    if a.resume:
        st = common.load_state(state_path)
        model = MotionAutoencoder.from_checkpoint(st["model"]).to(a.device).train()
        tcfg = AETrainConfig.from_dict(st["train_config"])
        if a.steps:  # a resumed run may be given a longer step budget
            tcfg = tcfg.replace(steps=a.steps)
        step, elapsed = st["step"], st["elapsed"]
        np_rng = st["np_rng"]
    elif a.init:
        init = torch.load(a.init, map_location="cpu", weights_only=False)
        model = MotionAutoencoder.from_checkpoint(init)
        if overrides:  # e.g. a decoder with another root representation on the same encoder
            model = MotionAutoencoder(model.config.replace(**overrides))
            skipped = model.load_compatible(init["state_dict"])
            if skipped:
                raise ValueError(f"--set {overrides} changes weights that cannot be carried over: {skipped}")
        model = model.to(a.device).train()
        step, elapsed, np_rng = 0, 0.0, np.random.default_rng(a.seed)
    else:
        cfg = autoencoder_config(a.preset, **overrides)
        model = MotionAutoencoder(cfg, ds.stats).to(a.device).train()
        step, elapsed, np_rng = 0, 0.0, np.random.default_rng(a.seed)
    if tcfg.decoder_only:
        for mod in (model.proj, model.fuse, model.encoder, model.to_latent):
            mod.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    if a.resume:
        opt.load_state_dict(st["optimizer"])
    budget = common.Budget(tcfg.steps, a.max_minutes, elapsed)
    sampler = common.CropSampler(ds.split("train"), tcfg.crop, np_rng)
    n_params = sum(p.numel() for p in model.parameters())
    log.write(event="start", step=step, preset=a.preset, config=model.config.to_dict(),
              train_config=tcfg.to_dict(), params=n_params, resume=a.resume, threads=torch.get_num_threads())

    def save() -> None:
        common.save_state(state_path, model=model.checkpoint(), optimizer=opt.state_dict(),
                          train_config=tcfg.to_dict(), step=step, elapsed=budget.elapsed, np_rng=np_rng)

    bar = tqdm(total=tcfg.steps, initial=step, desc=f"train ae ({'+'.join(model.config.streams)})",
               disable=a.quiet, dynamic_ncols=True)
    last_ckpt = time.perf_counter()
    run_loss, run_n = 0.0, 0
    while not budget.done(step):
        lr = common.lr_at(budget.progress(step), tcfg.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        x, valid, _ = sampler.sample(tcfg.batch_size)
        x, valid = x.to(a.device), valid.to(a.device)
        with torch.set_grad_enabled(not tcfg.decoder_only):
            z = model.encode(x)
        if tcfg.latent_noise > 0:
            std = z.detach().flatten(0, 1).std(0)  # (D,)
            u = torch.rand(z.shape[0], 1, 1, device=z.device) * tcfg.latent_noise
            z = z + u * std * torch.randn_like(z)
        recon = model.decode(z)
        loss, parts = model.loss(x, recon, valid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
        opt.step()
        step += 1
        run_loss += float(loss.detach())
        run_n += 1
        bar.update(1)
        if step % tcfg.log_every == 0:
            with torch.no_grad():
                err = ((recon - x).norm(dim=-1).mean(-1) * valid).sum() / valid.sum()
            rec = {"step": step, "loss": run_loss / run_n, **{f"loss_{k}": v for k, v in parts.items()},
                   "train_mpjpe_cm": 100 * float(err), "lr": lr, "elapsed_s": round(budget.elapsed, 1)}
            log.write(**rec)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", mpjpe=f"{rec['train_mpjpe_cm']:.2f}cm")
            run_loss, run_n = 0.0, 0
        if time.perf_counter() - last_ckpt > tcfg.checkpoint_every_s:
            save()
            last_ckpt = time.perf_counter()
    bar.close()
    save()
    train_s = budget.elapsed
    model.eval()
    val = evaluate_autoencoder(model, ds.split("val"), a.device, progress=not a.quiet)
    meta = {"preset": a.preset, "steps": step, "decoder_only": tcfg.decoder_only, "init": a.init, "train_seconds": round(train_s, 1),
            "val": val, "dataset": str(a.dataset), "threads": torch.get_num_threads()}
    common.save_model(a.out, model.checkpoint(), meta)
    log.write(event="done", **meta)
    print(f"trained {step} steps in {train_s / 60:.1f} min; val MPJPE {val['mpjpe_cm']:.3f} cm -> {a.out}")
    return meta
