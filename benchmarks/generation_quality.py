"""Generation quality of the shipped model on the test split: recognised content, foot skating, jitter.

For ``--clips`` test clips (seeded choice; ``--split val`` takes the validation clips instead, the
split on which sampler settings are chosen, so that the test split is only ever reported) each motion is generated twice per phrasing: from one
caption of the training families (A-D) and from the held-out family E, guided and unguided, with
the clip's own duration (clamped to 1-10 s). Measured:

* hips travel: mean horizontal distance between the first and last frame's hips (m), to show
  how much the cleanup's foot-driven root motion shortens or lengthens the path;
* content accuracy: the action recognizer's top-1 content of the generated motion equals the
  clip's content (the recognizer scores the real clips in the same run as the reference row);
* style accuracy the same way (reported, no target);
* the independent evaluator's view (:mod:`coamd.evaluation`, trained apart from the recognizer
  that guides sampling): FID of the motions' embeddings against the real training clips',
  R-precision top-1 (Guo et al. 2022, batches of 32) of the captions asked for, and its zero-shot
  content (nearest content label text). ``--no-evaluator`` skips them;
* foot skating (mean horizontal toe speed in floor contact, m/s) and jitter (mean jerk, m/s^3)
  from :mod:`coamd.evaluation.metrics`, as ratios to the same real clips;
* the same for the real clips encoded and decoded by the autoencoder, so the decoder's share of
  skating and jitter is visible next to the generator's;
* every generated set twice: the model's raw output (``cleanup=False``) and the same motions
  after the runtime's causal foot-contact cleanup (:mod:`coamd.sampling.cleanup`, on by default
  in the sampler and the server), plus the real clips through that cleanup for reference.

Run: ``python -m benchmarks.generation_quality --json bench_out/generation_quality.json``
(``--help`` for options). Reusable: :func:`measure_generation_quality`.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def _metrics(joints: np.ndarray) -> tuple[float, float]:
    from coamd.evaluation.metrics import foot_skating, jitter

    return foot_skating(joints)["skate_speed"], jitter(joints)


def measure_generation_quality(engine, dataset: str = "data/processed", clips: int = 96, seed: int = 0,
                               batch_size: int = 16, progress: bool = True, guided_rows: bool = True,
                               conditionings: tuple = ("raw", "understood"), split: str = "test",
                               evaluator=None, **settings) -> dict:
    """Generate for ``clips`` clips of ``split`` (``test``, or ``val`` to choose settings) (families A-D and E captions, guided and unguided) and
    score them (``guided_rows=False``: unguided only). ``settings`` are extra :class:`GenerationRequest` fields (iterations, cfg_scale...).
    ``conditionings``: what the generator follows, the caption as written (``raw``) and/or the
    runtime's text understanding of it (``understood``, :meth:`Engine.understand`).
    Rows per set: the model's raw output, cleaned (foot-contact cleanup) and what the runtime
    ships (cleaned, then projected onto the skeleton).
    ``evaluator``: a :class:`coamd.evaluation.evaluator.MotionTextEvaluator` adds ``fid`` (against
    the train split's real clips), ``r_top1`` and ``evaluator_content_acc`` to every row.
    Returns a dict of rows {name: {content_acc, style_acc, skate_speed, jitter, n, seconds}}."""
    from tqdm import tqdm

    from coamd.data.captions import HELDOUT_FAMILY
    from coamd.data.dataset import MotionDataset
    from coamd.sampling.cleanup import clean_motion
    from coamd.sampling.sampler import GenerationRequest

    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    ds = MotionDataset(dataset)
    pool = ds.split(split)
    rng = np.random.default_rng(seed)
    pick = [pool[i] for i in rng.choice(len(pool), size=min(clips, len(pool)), replace=False)]
    durs = [float(np.clip(len(c.joints) / 20.0, 1.0, 10.0)) for c in pick]
    seen = [str(rng.choice(c.caption_texts(heldout=False))) for c in pick]
    held = [next(x["text"] for x in c.captions if x["family"] == HELDOUT_FAMILY) for c in pick]

    if evaluator is not None:
        from coamd.evaluation import metrics as M
        from coamd.evaluation.suite import TEXT_CACHE, label_predictions
        from coamd.evaluation.text_features import encode_texts

        def text_emb(texts):
            import torch

            with torch.no_grad():
                return evaluator.embed_text(encode_texts(list(texts), cache=TEXT_CACHE)).numpy()

        ref_emb = evaluator.embed_clips([c.joints for c in ds.split("train")])
        label_emb = text_emb(ds.content_texts)

    def judged(motions, texts):
        if evaluator is None:
            return {}
        m = evaluator.embed_clips(motions)
        pred = label_predictions(m, label_emb, ds.contents)
        return {"fid": float(M.frechet_distance(ref_emb, m)),
                "r_top1": float(M.r_precision(text_emb(texts), m, 32, 1, seed=seed)[0]),
                "evaluator_content_acc": float(np.mean([p == c.content for p, c in zip(pred, pick)]))}

    def score(motions, name, seconds=None, texts=None):
        rec = [engine.recognize(m, top_k=1) for m in motions]
        ms = [_metrics(m) for m in motions]
        return {**judged(motions, texts or seen),"content_acc": float(np.mean([r["content"][0].label == c.content for r, c in zip(rec, pick)])),
                "style_acc": float(np.mean([r["style"][0].label == c.style for r, c in zip(rec, pick)])),
                "skate_speed": float(np.mean([m[0] for m in ms])), "jitter": float(np.mean([m[1] for m in ms])),
                "travel_m": float(np.mean([np.linalg.norm(m[-1, 0, [0, 2]] - m[0, 0, [0, 2]]) for m in motions])),
                "n": len(motions), **({"seconds_per_motion": seconds} if seconds is not None else {})}

    real = [c.joints[: int(d * 20)] for c, d in zip(pick, durs)]
    real_name = f"real {split} clips"
    rows = {real_name: score(real, "real")}
    # the decoder's share: the same real clips through the autoencoder (encode, decode)
    recon = []
    for j in real:
        T = (len(j) // 4) * 4
        recon.append(np.asarray(engine.sampler.backend.decode(engine.sampler.backend.encode(j[None, :T])), np.float32)[0])
    rows["autoencoder reconstructions of the real clips"] = score(recon, "recon")
    rows[f"{real_name}, cleaned"] = score([clean_motion(j) for j in real], "real cleaned")
    from coamd.sampling.skeleton_projection import project_motion

    modes = (False, True) if guided_rows else (False,)
    total = 2 * len(modes) * len(pick) * len(conditionings)
    bar = tqdm(total=total, desc="generating", disable=not progress, unit="motion")
    for conditioning in conditionings:
        for guided in modes:
            for fam, texts in (("A-D", seen), ("E (held out)", held)):
                if conditioning == "understood":
                    texts = [engine.understand(t, "understood")[1] for t in texts]
                reqs = [GenerationRequest(text=t, duration_s=d, seed=seed * 100003 + i, guidance=guided,
                                          **{**settings, "cleanup": False, "skeleton": "raw"})
                        for i, (t, d) in enumerate(zip(texts, durs))]
                motions, t0 = [], time.perf_counter()
                for s in range(0, len(reqs), batch_size):
                    motions += engine.sampler.sample_batch(reqs[s:s + batch_size])
                    bar.update(len(reqs[s:s + batch_size]))
                sec = (time.perf_counter() - t0) / len(reqs)
                name = f"{'guided' if guided else 'unguided'}, captions {fam}"
                if conditioning == "understood":
                    name += ", understood"
                asked = seen if fam == "A-D" else held
                rows[f"{name}, raw"] = score(motions, fam, sec, asked)
                t0 = time.perf_counter()
                cleaned = [clean_motion(m) for m in motions]
                ms_per_frame = 1000 * (time.perf_counter() - t0) / sum(len(m) for m in motions)
                rows[f"{name}, cleaned"] = {**score(cleaned, fam, sec, asked), "cleanup_ms_per_frame": ms_per_frame}
                rows[f"{name}, runtime (cleaned + skeleton)"] = score([project_motion(m)[0] for m in cleaned], fam, sec,
                                                                     asked)
    bar.close()
    real = rows[real_name]
    for r in rows.values():
        r["skate_ratio_vs_real"] = r["skate_speed"] / max(real["skate_speed"], 1e-9)
        r["jitter_ratio_vs_real"] = r["jitter"] / max(real["jitter"], 1e-9)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=96, help="clips of the split (default: 96)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="dataset split of the clips (default: test; val to choose settings without the test split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clip/caption choice and sampling (default: 0)")
    p.add_argument("--dataset", default="data/processed", help="processed dataset (default: data/processed)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    p.add_argument("--backend", default="torch", help="runtime backend (default: torch)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--iterations", type=int, default=None, help="sampler iterations (default: the sampler's)")
    p.add_argument("--ode-steps", type=int, default=None, help="ODE steps (default: the sampler's)")
    p.add_argument("--cfg-scale", type=float, default=None, help="CFG scale (default: the sampler's)")
    p.add_argument("--guidance-scale", type=float, default=None, help="gamma (default: the sampler's)")
    p.add_argument("--temperature", type=float, default=None,
                   help="flow-ODE starting-noise temperature (default: the sampler's)")
    p.add_argument("--order", choices=("random", "left_to_right"), default=None,
                   help="token order (default: the sampler's, random, as every earlier result here; the server "
                        "streams left_to_right)")
    p.add_argument("--unguided-only", action="store_true", help="skip the guided rows (3x faster)")
    p.add_argument("--conditioning", choices=("both", "raw", "understood"), default="both",
                   help="generate from the captions as written (raw), from the runtime's understanding of "
                        "them (understood, the server's default), or both (default)")
    p.add_argument("--no-evaluator", action="store_true",
                   help="skip the independent evaluator's FID, R-precision and content")
    p.add_argument("--json", default=None, help="write the rows here as JSON")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    import torch

    from coamd.runtime import load_engine

    if a.threads:
        torch.set_num_threads(a.threads)
    settings = {k: v for k, v in dict(iterations=a.iterations, ode_steps=a.ode_steps, cfg_scale=a.cfg_scale,
                                      guidance_scale=a.guidance_scale,
                                      temperature=a.temperature, order=a.order).items() if v is not None}
    eng = load_engine(backend=a.backend, checkpoint=a.checkpoint, dataset=a.dataset)
    evaluator = None
    if not a.no_evaluator:
        from coamd.evaluation.evaluator import load_evaluator

        evaluator = load_evaluator()
    t = time.perf_counter()
    rows = measure_generation_quality(eng, a.dataset, a.clips, a.seed, progress=not a.quiet,
                                      guided_rows=not a.unguided_only,
                                      conditionings=("raw", "understood") if a.conditioning == "both" else (a.conditioning,),
                                      split=a.split, evaluator=evaluator, **settings)
    print(f"| rows ({a.clips} {a.split} clips, {eng.backend_name}, {platform.machine()} "
          f"{torch.get_num_threads()} threads, settings {settings or 'defaults'}) | content top-1 | style top-1 "
          f"| foot skating m/s (x real) | jitter m/s^3 (x real) | hips travel m | s/motion "
          f"| evaluator: FID / R@1 / content |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        ev = (f"{r['fid']:.3f} / {r['r_top1']:.3f} / {100 * r['evaluator_content_acc']:.1f} %" if "fid" in r else "-")
        print(f"| {name} | {100 * r['content_acc']:.1f} % | {100 * r['style_acc']:.1f} % | "
              f"{r['skate_speed']:.3f} ({r['skate_ratio_vs_real']:.2f}x) | {r['jitter']:.1f} "
              f"({r['jitter_ratio_vs_real']:.2f}x) | {r['travel_m']:.2f} | {r.get('seconds_per_motion', float('nan')):.2f} "
              f"| {ev} |")
    cost = [r["cleanup_ms_per_frame"] for r in rows.values() if "cleanup_ms_per_frame" in r]
    print(f"foot-contact cleanup: {np.mean(cost):.3f} ms per frame (one core, Python); total {time.perf_counter() - t:.0f} s")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"settings": settings, "split": a.split, "clips": a.clips, "seed": a.seed,
                                            "backend": eng.backend_name, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
