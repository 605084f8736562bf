"""Action recognizer trainer and its test-split measurement (``coamd train recognizer``).

Trains :class:`~coamd.models.recognizer.ActionRecognizer` with eq. 1 on the train split: each
step draws clips (a random window of at most ``max_frames`` frames, padded with a valid mask),
one random caption of the training families A-D per clip (never the held-out family E), and the
content and style label texts. Text features come from the frozen MiniLM encoder, computed once
per distinct string and cached in the run folder.
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
class RecognizerTrainConfig(ModelConfig):
    """Training hyper-parameters of the recognizer (override with ``--train-set key=value``)."""

    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    steps: int = 3000
    grad_clip: float = 1.0
    log_every: int = 20
    checkpoint_every_s: float = 60.0


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
    from tqdm import tqdm

    from coamd.data.dataset import MotionDataset
    from coamd.models.presets import preset_overrides, recognizer_config
    from coamd.models.recognizer import ActionRecognizer

    common.setup_torch(a.seed, a.threads)
    ds = MotionDataset(a.dataset)
    run_dir = Path(a.run_dir)
    if a.eval_only:
        ckpt = torch.load(a.out, map_location="cpu", weights_only=False)
        model = ActionRecognizer.from_checkpoint(ckpt)
        t = time.perf_counter()
        m = evaluate_recognizer(model, ds, "test", progress=not a.quiet,
                                cache_path=run_dir / "text_features.pt")
        m["eval_seconds"] = round(time.perf_counter() - t, 1)
        _print_metrics(a.out, m)
        return m

    preset_overrides(a.preset, "recognizer")  # validates the preset name
    tcfg = RecognizerTrainConfig().replace(**TRAIN_PRESETS.get(a.preset, {}))
    tcfg = tcfg.replace(**common.parse_overrides(a.train_overrides))
    if a.steps:
        tcfg = tcfg.replace(steps=a.steps)
    state_path = run_dir / "state.pt"
    log = common.JsonlLog(run_dir / "log.jsonl")

    train = ds.split("train")
    caps = [common.train_captions(c) for c in train]
    uniq = sorted({t for cs in caps for t in cs})
    cap_id = {t: i for i, t in enumerate(uniq)}
    feats = text_features(uniq + list(ds.content_texts) + list(ds.style_texts),
                          run_dir / "text_features.pt")
    cap_feats = torch.stack([feats[t] for t in uniq])
    content_feats = torch.stack([feats[t] for t in ds.content_texts])
    style_feats = torch.stack([feats[t] for t in ds.style_texts])
    ci = np.array([ds.contents.index(c.content) for c in train])
    si = np.array([ds.styles.index(c.style) for c in train])

    if a.resume:
        st = common.load_state(state_path)
        model = ActionRecognizer.from_checkpoint(st["model"]).train()
        tcfg = RecognizerTrainConfig.from_dict(st["train_config"])
        if a.steps:  # a resumed run may be given a longer step budget
            tcfg = tcfg.replace(steps=a.steps)
        step, elapsed, rng = st["step"], st["elapsed"], st["np_rng"]
    else:
        overrides = common.parse_overrides(a.overrides)
        if a.streams:
            overrides["streams"] = tuple(x.strip() for x in a.streams.split(","))
        model = ActionRecognizer(recognizer_config(a.preset, **overrides), ds.stats)
        model.train()
        step, elapsed, rng = 0, 0.0, np.random.default_rng(a.seed)
    model.to(a.device)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    if a.resume:
        opt.load_state_dict(st["optimizer"])
    budget = common.Budget(tcfg.steps, a.max_minutes, elapsed)
    max_f = model.config.max_frames
    log.write(event="start", step=step, preset=a.preset, config=model.config.to_dict(),
              train_config=tcfg.to_dict(), params=sum(p.numel() for p in model.parameters()),
              resume=a.resume, threads=torch.get_num_threads())

    def save() -> None:
        common.save_state(state_path, model=model.checkpoint(), optimizer=opt.state_dict(),
                          train_config=tcfg.to_dict(), step=step, elapsed=budget.elapsed, np_rng=rng)

    bar = tqdm(total=tcfg.steps, initial=step, desc="train recognizer", disable=a.quiet, dynamic_ncols=True)
    last_ckpt = time.perf_counter()
    run_loss, run_n = 0.0, 0
    while not budget.done(step):
        lr = common.lr_at(budget.progress(step), tcfg.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.choice(len(train), size=tcfg.batch_size, replace=False)
        arrays = []
        for i in idx:
            j = train[i].joints
            if j.shape[0] > max_f:
                s = int(rng.integers(0, j.shape[0] - max_f + 1))
                j = j[s:s + max_f]
            arrays.append(j)
        x, valid = _pad_batch(arrays, model.config.patch)
        texts = [caps[i][rng.integers(len(caps[i]))] for i in idx]
        ids = torch.tensor([cap_id[t] for t in texts])
        emb = model.embed_motion(x.to(a.device), valid.to(a.device))
        loss, parts = model.loss(emb, model.embed_text(cap_feats[ids].to(a.device)), ids.to(a.device),
                                 model.embed_text(content_feats.to(a.device)), torch.from_numpy(ci[idx]).to(a.device),
                                 model.embed_text(style_feats.to(a.device)), torch.from_numpy(si[idx]).to(a.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        step += 1
        run_loss += float(loss.detach())
        run_n += 1
        bar.update(1)
        if step % tcfg.log_every == 0:
            with torch.no_grad():
                acc_c = float(((emb["fused"] @ model.embed_text(content_feats).T).argmax(1).cpu().numpy() == ci[idx]).mean())
                acc_s = float(((emb["fused"] @ model.embed_text(style_feats).T).argmax(1).cpu().numpy() == si[idx]).mean())
            rec = {"step": step, "loss": run_loss / run_n, **parts, "train_content_acc": acc_c,
                   "train_style_acc": acc_s, "lr": lr, "elapsed_s": round(budget.elapsed, 1)}
            log.write(**rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", content=f"{acc_c:.2f}", style=f"{acc_s:.2f}")
            run_loss, run_n = 0.0, 0
        if time.perf_counter() - last_ckpt > tcfg.checkpoint_every_s:
            save()
            last_ckpt = time.perf_counter()
    bar.close()
    save()
    train_s = budget.elapsed
    model.eval()
    vfeats = text_features(list(ds.content_texts) + list(ds.style_texts), run_dir / "text_features.pt")
    val_clips = ds.split("val")
    vc = embed_clips(model, val_clips)
    ct, stt = model.embed_text(content_feats), model.embed_text(style_feats)
    val = {"content_top1": float((model.similarity(vc, ct).argmax(1).numpy()
                                   == np.array([ds.contents.index(c.content) for c in val_clips])).mean()),
           "style_top1": float((model.similarity(vc, stt).argmax(1).numpy()
                                 == np.array([ds.styles.index(c.style) for c in val_clips])).mean())}
    del vfeats
    meta = {"preset": a.preset, "steps": step, "train_seconds": round(train_s, 1), "val": val,
            "dataset": str(a.dataset), "threads": torch.get_num_threads(),
            "content_texts": list(ds.content_texts), "style_texts": list(ds.style_texts),
            "contents": list(ds.contents), "styles": list(ds.styles)}
    common.save_model(a.out, model.checkpoint(), meta)
    log.write(event="done", **meta)
    print(f"trained {step} steps in {train_s / 60:.1f} min; val content top-1 {100 * val['content_top1']:.1f} %, "
          f"style top-1 {100 * val['style_top1']:.1f} % -> {a.out}")
    return meta
