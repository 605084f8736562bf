"""Autoencoder trainer and its test-split measurement (``coamd train ae``).

Trains :class:`~coamd.models.autoencoder.MotionAutoencoder` with the eq. 2 loss on random
fixed-length crops of the train split (AdamW; resume, budgets, warm-up + cosine LR, log and saves
are :mod:`coamd.train.loop`'s). ``--init FILE --decoder-only`` fine-tunes the decoder of an
existing autoencoder with its encoder frozen. ``evaluate_autoencoder`` measures the mean per-joint
position error (MPJPE) of whole clips; ``--out`` gets ``MotionAutoencoder.checkpoint()`` plus
``meta``.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from coamd.train import common, loop


@dataclasses.dataclass
class AETrainConfig(loop.TrainConfig):
    """Training hyper-parameters of the autoencoder (override with ``--train-set key=value``);
    the loop's keys are :class:`~coamd.train.loop.TrainConfig`'s."""

    batch_size: int = 16
    crop: int = 64              # frames per training crop (multiple of 4)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    steps: int = 12000
    decoder_only: bool = False  # fine-tune the decoder of --init with the encoder frozen
    latent_noise: float = 0.0   # decoder input noise: z + u * latent_noise * std(z) * N(0, 1), u ~ U(0, 1)
                                # per clip, so the decoder stays smooth on generated (imperfect) latents

    def __post_init__(self):
        super().__post_init__()
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
    """``coamd train ae``: train (or with ``--eval-only`` measure ``--out`` on the test split).

    Returns the loop's summary (:func:`coamd.train.loop.train`) or the test metrics. Raises
    ValueError for unknown ``--set`` / ``--train-set`` keys, an unknown preset or ``--decoder-only``
    without ``--init``; FileNotFoundError for a missing dataset, checkpoint or state.
    """
    from coamd.data.dataset import MotionDataset
    from coamd.models.autoencoder import MotionAutoencoder

    if a.eval_only:
        common.setup_torch(a.seed, a.threads)
        ds = MotionDataset(a.dataset)
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

    opts = loop.run_options(a)
    summary = loop.train("ae", lambda spec, rng: build(a, spec, rng), opts)
    if summary["out"]:
        print(f"trained {summary['step']} steps in {summary['train_seconds'] / 60:.1f} min; "
              f"val MPJPE {summary['val']['mpjpe_cm']:.3f} cm -> {summary['out']}")
    else:
        print(f"stopped after step {summary['step']}; continue with --resume --run-dir {a.run_dir}")
    return summary


def build(a: argparse.Namespace, spec: dict | None, rng: loop.Rng) -> loop.Task:
    """The autoencoder's :class:`~coamd.train.loop.Task` from the parsed arguments ``a`` (new run)
    or the saved ``spec`` (resume). Each step draws ``batch_size`` crops (B, crop, 21, 3) with
    ``rng.np`` and returns the eq. 2 loss."""
    from coamd.data.dataset import MotionDataset
    from coamd.models.autoencoder import AEConfig, MotionAutoencoder
    from coamd.models.presets import autoencoder_config, preset_overrides

    ds = MotionDataset(a.dataset)
    overrides = common.parse_overrides(a.overrides)
    if a.joints_only:
        overrides["streams"] = ["joint"]
    elif a.streams:
        overrides["streams"] = [x.strip() for x in a.streams.split(",")]
    preset_overrides(a.preset, "autoencoder")  # validates the preset name
    tcfg = loop.training_config(AETrainConfig, spec and spec["train"], TRAIN_PRESETS.get(a.preset, {}),
                                common.parse_overrides(a.train_overrides), a.steps)
    if spec is not None:
        model = MotionAutoencoder(AEConfig.from_dict(spec["model"]))  # weights: from state.pt
        init = spec["init"]
    else:
        init = a.init
        if a.decoder_only:
            if not a.init:
                raise ValueError("--decoder-only needs --init CHECKPOINT (the autoencoder whose encoder stays)")
            tcfg = tcfg.replace(decoder_only=True)
        if a.init:
            ckpt = torch.load(a.init, map_location="cpu", weights_only=False)
            model = MotionAutoencoder.from_checkpoint(ckpt)
            if overrides:  # e.g. a decoder with another root representation on the same encoder
                model = MotionAutoencoder(model.config.replace(**overrides))
                skipped = model.load_compatible(ckpt["state_dict"])
                if skipped:
                    raise ValueError(f"--set {overrides} changes weights that cannot be carried over: {skipped}")
        else:
            model = MotionAutoencoder(autoencoder_config(a.preset, **overrides), ds.stats)
    model = model.to(a.device).train()
    if tcfg.decoder_only:
        for mod in (model.proj, model.fuse, model.encoder, model.to_latent):
            mod.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    sampler = common.CropSampler(ds.split("train"), tcfg.crop, rng.np)
    val_clips = ds.split("val")

    def step(log: bool) -> tuple[torch.Tensor, dict]:
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
        if not log:
            return loss, {}
        with torch.no_grad():
            err = ((recon - x).norm(dim=-1).mean(-1) * valid).sum() / valid.sum()
        return loss, {**{f"loss_{k}": v for k, v in parts.items()}, "train_mpjpe_cm": 100 * float(err)}

    def evaluate(final: bool) -> dict:
        m = evaluate_autoencoder(model, val_clips, a.device, progress=not a.quiet)
        model.train()
        return m

    def export(summary: dict) -> dict:
        meta = {"preset": a.preset if spec is None else spec["preset"], "steps": summary["step"],
                "decoder_only": tcfg.decoder_only, "init": init, "train_seconds": summary["train_seconds"],
                "val": summary["val"], "dataset": str(a.dataset), "threads": summary["threads"]}
        return {**model.checkpoint(), "meta": meta}

    return loop.Task(
        config=tcfg, modules={"model": model}, optimizer=opt, params=params,
        spec={"model": model.config.to_dict(), "train": tcfg.to_dict(), "init": init,
              "preset": a.preset if spec is None else spec["preset"]},
        step=step, evaluate=evaluate, export=export, show=("train_mpjpe_cm",),
        info={"params": sum(p.numel() for p in model.parameters()), "config": model.config.to_dict(),
              "train_config": tcfg.to_dict()},
        label=f" ({'+'.join(model.config.streams)})")
