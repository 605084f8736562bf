"""Action recognizer trainer and its test-split measurement (``coamd train recognizer``).

Trains :class:`~coamd.models.recognizer.ActionRecognizer` with eq. 1 on the train split: each
step draws clips (a random window of at most ``max_frames`` frames, padded with a valid mask),
one random caption of the training families A-D per clip (never the held-out family E), and the
content and style label texts. Text features come from the frozen MiniLM encoder, computed once
per distinct string and cached in the run folder (``text_features.pt``). Resume, budgets, the
LR schedule, log and saves are :mod:`coamd.train.loop`'s; ``--out`` gets
``ActionRecognizer.checkpoint()`` plus ``meta`` (with the dataset's label texts).
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from coamd.train import common, loop


@dataclasses.dataclass
class RecognizerTrainConfig(loop.TrainConfig):
    """Training hyper-parameters of the recognizer (override with ``--train-set key=value``);
    the loop's keys are :class:`~coamd.train.loop.TrainConfig`'s."""

    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    steps: int = 3000
    log_every: int = 20


TRAIN_PRESETS = {"small": {}, "paper": {"batch_size": 128, "lr": 2e-4, "steps": 100000}}


def text_features(texts: list[str], cache_path: Path | None = None, encoder=None) -> dict[str, torch.Tensor]:
    """MiniLM features (384,) for every distinct text, cached in ``cache_path`` (a torch file)."""
    cache: dict[str, torch.Tensor] = {}
    if cache_path is not None and Path(cache_path).exists():
        cache = torch.load(cache_path, map_location="cpu", weights_only=False)
    todo = sorted({t for t in texts if t not in cache})
    if todo:
        from coamd.models.text import TextEncoder

        enc = encoder or TextEncoder()
        feats = enc.encode(todo)
        cache.update({t: f for t, f in zip(todo, feats)})
        if cache_path is not None:
            Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
            torch.save(cache, cache_path)
    return cache


def _pad_batch(arrays: list[np.ndarray], multiple: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(a.shape[0] for a in arrays)
    t += (-t) % multiple
    out = np.empty((len(arrays), t, 21, 3), np.float32)
    valid = np.zeros((len(arrays), t), bool)
    for i, a in enumerate(arrays):
        out[i, :len(a)] = a
        out[i, len(a):] = a[-1]
        valid[i, :len(a)] = True
    return torch.from_numpy(out), torch.from_numpy(valid)


@torch.no_grad()
def embed_clips(model, clips, batch: int = 32, progress: bool = False) -> dict[str, torch.Tensor]:
    """Embeddings of whole clips (windowed beyond ``max_frames``), batched by similar length."""
    from tqdm import tqdm

    model.eval()
    order = np.argsort([c.joints.shape[0] for c in clips])
    out: dict[str, list] = {}
    idx_all = []
    for i in tqdm(range(0, len(order), batch), desc="embed clips", disable=not progress, leave=False):
        idx = order[i:i + batch]
        x, v = _pad_batch([clips[j].joints for j in idx])
        e = model.embed_motion(x, v)
        for k, t in e.items():
            out.setdefault(k, []).append(t)
        idx_all.extend(idx.tolist())
    inv = np.argsort(idx_all)
    return {k: torch.cat(v)[inv] for k, v in out.items()}


@torch.no_grad()
def evaluate_recognizer(model, ds, split: str = "test", feats: dict | None = None,
                        weights=None, seed: int = 0, progress: bool = False,
                        cache_path: Path | None = None) -> dict:
    """Test-split metrics of the recognizer.

    * ``content_top1`` / ``style_top1`` (and top-3): nearest label text among the dataset's
      content / style label texts, using eq. 6 with ``weights`` (default: the model's);
      also per embedding kind (``content_top1_fused`` ...).
    * ``r_precision_top1/top3_{train_families,heldout_family}``: text-to-motion R-precision with
      32-clip pools (1 match + 31 random other clips of the split; the field's protocol), for
      one caption of the training families and for the held-out paraphrase family E.
    """
    from coamd.models.recognizer import KINDS

    clips = ds.split(split)
    texts = list(ds.content_texts) + list(ds.style_texts)
    rng = np.random.default_rng(seed)
    cap_tr = [c.caption_texts()[rng.integers(len(c.caption_texts()))] for c in clips]
    cap_he = [c.caption_texts(heldout=True)[0] if c.caption_texts(heldout=True) else cap_tr[i]
              for i, c in enumerate(clips)]
    feats = feats if feats is not None else text_features(texts + cap_tr + cap_he, cache_path)
    emb = embed_clips(model, clips, progress=progress)
    content_t = model.embed_text(torch.stack([feats[t] for t in ds.content_texts]))
    style_t = model.embed_text(torch.stack([feats[t] for t in ds.style_texts]))
    ci = torch.tensor([ds.contents.index(c.content) for c in clips])
    si = torch.tensor([ds.styles.index(c.style) for c in clips])
    res: dict = {"clips": len(clips)}

    def topk(sim, target, k):
        return float((sim.topk(k, dim=1).indices == target[:, None]).any(1).float().mean())

    for name, w in [("", weights)] + [(f"_{k}", [float(k == kk) for kk in KINDS]) for k in model.kinds]:
        sc, ss = model.similarity(emb, content_t, w), model.similarity(emb, style_t, w)
        res[f"content_top1{name}"] = topk(sc, ci, 1)
        res[f"style_top1{name}"] = topk(ss, si, 1)
        if not name:
            res["content_top3"], res["style_top3"] = topk(sc, ci, 3), topk(ss, si, 3)
    for tag, caps in (("train_families", cap_tr), ("heldout_family", cap_he)):
        t_emb = model.embed_text(torch.stack([feats[t] for t in caps]))
        sim = model.similarity(emb, t_emb, weights).T  # (texts, motions)
        hits1 = hits3 = 0
        n = len(clips)
        for i in range(n):
            others = rng.choice(np.delete(np.arange(n), i), size=min(31, n - 1), replace=False)
            pool = np.concatenate([[i], others])
            s = sim[i, torch.from_numpy(pool)]
            rank = int((s > s[0]).sum())
            hits1 += rank < 1
            hits3 += rank < 3
        res[f"r_precision_top1_{tag}"] = hits1 / n
        res[f"r_precision_top3_{tag}"] = hits3 / n
    return res


def add_args(p: argparse.ArgumentParser) -> None:
    common.add_common_args(p, "recognizer", "recognizer.pt")
    p.add_argument("--streams", default=None, metavar="S[,S]",
                   help="input streams for a modality-ablation model, e.g. joint or joint,bone "
                        "(default: joint,bone,motion)")


def _print_metrics(path: str, m: dict) -> None:
    print(f"recognizer {path}, {m['clips']} test clips: content top-1 {100 * m['content_top1']:.1f} % "
          f"(top-3 {100 * m['content_top3']:.1f} %), style top-1 {100 * m['style_top1']:.1f} % "
          f"(top-3 {100 * m['style_top3']:.1f} %); per embedding content/style top-1: "
          + ", ".join(f"{k} {100 * m[f'content_top1_{k}']:.1f}/{100 * m[f'style_top1_{k}']:.1f}"
                      for k in ("fused", "joint", "bone", "motion") if f"content_top1_{k}" in m)
          + f"; R-precision top-1/top-3 (32-clip pools): training-family captions "
            f"{100 * m['r_precision_top1_train_families']:.1f}/{100 * m['r_precision_top3_train_families']:.1f} %, "
            f"held-out family {100 * m['r_precision_top1_heldout_family']:.1f}/"
            f"{100 * m['r_precision_top3_heldout_family']:.1f} %")


def run(a: argparse.Namespace) -> dict:
    """``coamd train recognizer``: train (or with ``--eval-only`` measure ``--out`` on the test split).

    Returns the loop's summary (:func:`coamd.train.loop.train`) or the test metrics. Raises
    ValueError for unknown ``--set`` / ``--train-set`` keys or an unknown preset;
    FileNotFoundError for a missing dataset, checkpoint or state.
    """
    from coamd.data.dataset import MotionDataset
    from coamd.models.recognizer import ActionRecognizer

    if a.eval_only:
        common.setup_torch(a.seed, a.threads)
        ds = MotionDataset(a.dataset)
        ckpt = torch.load(a.out, map_location="cpu", weights_only=False)
        model = ActionRecognizer.from_checkpoint(ckpt)
        t = time.perf_counter()
        m = evaluate_recognizer(model, ds, "test", progress=not a.quiet,
                                cache_path=Path(a.run_dir) / "text_features.pt")
        m["eval_seconds"] = round(time.perf_counter() - t, 1)
        _print_metrics(a.out, m)
        return m

    summary = loop.train("recognizer", lambda spec, rng: build(a, spec, rng), loop.run_options(a))
    if summary["out"]:
        val = summary["val"]
        print(f"trained {summary['step']} steps in {summary['train_seconds'] / 60:.1f} min; val content top-1 "
              f"{100 * val['content_top1']:.1f} %, style top-1 {100 * val['style_top1']:.1f} % -> {summary['out']}")
    else:
        print(f"stopped after step {summary['step']}; continue with --resume --run-dir {a.run_dir}")
    return summary


def build(a: argparse.Namespace, spec: dict | None, rng: loop.Rng) -> loop.Task:
    """The recognizer's :class:`~coamd.train.loop.Task` from the parsed arguments ``a`` (new run)
    or the saved ``spec`` (resume). Each step draws ``batch_size`` distinct train clips (windows
    of at most ``max_frames`` frames, padded, with a valid mask) and one training caption each
    with ``rng.np`` and returns the eq. 1 loss."""
    from coamd.data.dataset import MotionDataset
    from coamd.models.presets import preset_overrides, recognizer_config
    from coamd.models.recognizer import ActionRecognizer, RecognizerConfig

    ds = MotionDataset(a.dataset)
    run_dir = Path(a.run_dir)
    preset_overrides(a.preset, "recognizer")  # validates the preset name
    tcfg = loop.training_config(RecognizerTrainConfig, spec and spec["train"], TRAIN_PRESETS.get(a.preset, {}),
                                common.parse_overrides(a.train_overrides), a.steps)
    if spec is None:
        overrides = common.parse_overrides(a.overrides)
        if a.streams:
            overrides["streams"] = tuple(x.strip() for x in a.streams.split(","))
        mcfg = recognizer_config(a.preset, **overrides)
    train = ds.split("train")
    caps = [common.train_captions(c) for c in train]
    uniq = sorted({t for cs in caps for t in cs})
    cap_id = {t: i for i, t in enumerate(uniq)}
    feats = text_features(uniq + list(ds.content_texts) + list(ds.style_texts), run_dir / "text_features.pt")
    cap_feats = torch.stack([feats[t] for t in uniq])
    content_feats = torch.stack([feats[t] for t in ds.content_texts])
    style_feats = torch.stack([feats[t] for t in ds.style_texts])
    ci = np.array([ds.contents.index(c.content) for c in train])
    si = np.array([ds.styles.index(c.style) for c in train])
    if spec is None:
        model = ActionRecognizer(mcfg, ds.stats)
    else:
        model = ActionRecognizer(RecognizerConfig.from_dict(spec["model"]))  # weights: from state.pt
    model.train().to(a.device)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    max_f = model.config.max_frames
    dev = a.device

    def step(log: bool) -> tuple[torch.Tensor, dict]:
        idx = rng.np.choice(len(train), size=tcfg.batch_size, replace=False)
        arrays = []
        for i in idx:
            j = train[i].joints
            if j.shape[0] > max_f:
                s = int(rng.np.integers(0, j.shape[0] - max_f + 1))
                j = j[s:s + max_f]
            arrays.append(j)
        x, valid = _pad_batch(arrays, model.config.patch)
        texts = [caps[i][rng.np.integers(len(caps[i]))] for i in idx]
        ids = torch.tensor([cap_id[t] for t in texts])
        emb = model.embed_motion(x.to(dev), valid.to(dev))
        loss, parts = model.loss(emb, model.embed_text(cap_feats[ids].to(dev)), ids.to(dev),
                                 model.embed_text(content_feats.to(dev)), torch.from_numpy(ci[idx]).to(dev),
                                 model.embed_text(style_feats.to(dev)), torch.from_numpy(si[idx]).to(dev))
        if not log:
            return loss, {}
        with torch.no_grad():
            fused = emb["fused"]
            acc_c = float(((fused @ model.embed_text(content_feats.to(dev)).T).argmax(1).cpu().numpy() == ci[idx]).mean())
            acc_s = float(((fused @ model.embed_text(style_feats.to(dev)).T).argmax(1).cpu().numpy() == si[idx]).mean())
        return loss, {**parts, "train_content_acc": acc_c, "train_style_acc": acc_s}

    def evaluate(final: bool) -> dict:
        val_clips = ds.split("val")
        vc = embed_clips(model, val_clips)
        ct, stt = model.embed_text(content_feats.to(dev)), model.embed_text(style_feats.to(dev))
        val = {"content_top1": float((model.similarity(vc, ct).argmax(1).cpu().numpy()
                                       == np.array([ds.contents.index(c.content) for c in val_clips])).mean()),
               "style_top1": float((model.similarity(vc, stt).argmax(1).cpu().numpy()
                                     == np.array([ds.styles.index(c.style) for c in val_clips])).mean())}
        model.train()
        return val

    preset = a.preset if spec is None else spec["preset"]

    def export(summary: dict) -> dict:
        meta = {"preset": preset, "steps": summary["step"], "train_seconds": summary["train_seconds"],
                "val": summary["val"], "dataset": str(a.dataset), "threads": summary["threads"],
                "content_texts": list(ds.content_texts), "style_texts": list(ds.style_texts),
                "contents": list(ds.contents), "styles": list(ds.styles)}
        return {**model.checkpoint(), "meta": meta}

    return loop.Task(
        config=tcfg, modules={"model": model}, optimizer=opt,
        spec={"model": model.config.to_dict(), "train": tcfg.to_dict(), "preset": preset},
        step=step, evaluate=evaluate, export=export, show=("train_content_acc", "train_style_acc"),
        info={"params": sum(p.numel() for p in model.parameters()), "config": model.config.to_dict(),
              "train_config": tcfg.to_dict()})
