"""Style fidelity of the frequent actions, pair by pair, and the gait energy of generated locomotion.

The free-phrasing benchmark asks for every motion at 4 s and reports style over sentences; this
diagnostic asks, for each frequent action (at least 15 training clips) and each style recorded
with it at least 15 times, for the runtime's own sentence for the pair (the understood labels in
the training captions' phrasing, :meth:`coamd.models.understanding.TextUnderstanding.canonical_text`)
and reports how often the action recognizer reads the pair's style in the motion:

* at the pair's **typical duration** (the median of its training clips, at most 4 s), and
* at a **fixed duration** (``--duration``, 4 s as in the free-phrasing benchmark), which for some
  pairs is longer than any training clip of the pair (normal runs last 0.8-3.8 s, exhausted ones
  3.1-5.8 s): duration then points the generator at another style.

For the locomotion pairs it also compares the **gait energy** of the generated motions with the
real training clips of the pair (:func:`gait_energy`): the hips' mean horizontal speed, the hips'
vertical bounce and the hands' forward-backward swing relative to the hips. Motions are made as the
server makes them (left-to-right order, cleanup and skeleton projection on), unguided unless
``--guided``.

    .venv/bin/python -m benchmarks.style_fidelity --out benchmarks/results/style_fidelity

Writes OUT.json and OUT.md. Machine-independent except the wall time.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coamd.skeleton import FPS, JOINT_INDEX  # noqa: E402

MIN_CLIPS = 15
GAIT = ("speed_mps", "bounce_cm", "arm_swing_cm")


def gait_energy(joints: np.ndarray, fps: float = FPS) -> dict[str, float]:
    """Gait energy of one motion (T >= 2, 21, 3) metres at ``fps``, y up.

    ``speed_mps``: mean horizontal speed of the hips (m/s); ``bounce_cm``: standard deviation of
    the hips' height (cm); ``arm_swing_cm``: standard deviation of each hand's position relative to
    the hips along the motion's mean walking direction, averaged over both hands (cm). Raises
    ValueError for a bad shape.
    """
    j = np.asarray(joints, np.float64)
    if j.ndim != 3 or j.shape[1:] != (21, 3) or len(j) < 2:
        raise ValueError(f"joints must be (T >= 2, 21, 3), got {j.shape}")
    hips = j[:, JOINT_INDEX["Hips"]]
    step = np.diff(hips[:, [0, 2]], axis=0)
    heading = step.sum(0)
    heading = heading / np.linalg.norm(heading) if np.linalg.norm(heading) > 1e-6 else np.array([0.0, 1.0])
    swing = []
    for hand in ("Hand_L", "Hand_R"):
        rel = (j[:, JOINT_INDEX[hand]] - hips)[:, [0, 2]] @ heading
        swing.append(rel.std())
    return {"speed_mps": float(np.linalg.norm(step, axis=1).mean() * fps),
            "bounce_cm": float(hips[:, 1].std() * 100), "arm_swing_cm": float(np.mean(swing) * 100)}


def pair_durations(dataset) -> dict[tuple[str, str], list[float]]:
    """{(content, style): training-split source clips' durations in seconds} (mirrors not counted)."""
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for c in dataset.split("train"):
        if not c.mirrored:
            out[c.content, c.style].append(len(c.joints) / FPS)
    return out


def measure(engine, dataset, seeds: int = 8, duration: float = 4.0, guided: bool = False, batch_size: int = 16,
            progress: bool = True) -> dict:
    """Per frequent pair: recognised style at the typical and the fixed duration, and gait energy."""
    from tqdm import tqdm

    from coamd.data.captions import LOCOMOTION
    from coamd.models.understanding import Interpretation
    from coamd.sampling.sampler import GenerationRequest

    model = engine.text_understanding()
    if model is None:
        raise RuntimeError("the checkpoint has no text-understanding stage (understanding.npz)")
    train = [c for c in dataset.split("train") if not c.mirrored]
    durs = pair_durations(dataset)
    clips_of: Counter = Counter()
    for (c, _), v in durs.items():
        clips_of[c] += len(v)
    pairs = sorted(p for p, v in durs.items() if clips_of[p[0]] >= MIN_CLIPS and len(v) >= MIN_CLIPS)
    asked: dict[tuple[str, str, str], float] = {}   # (content, style, kind) -> duration asked for
    jobs = []
    for c, s in pairs:
        text = model.canonical_text(Interpretation("", c, [], s, [], None, 0.0, False, None, None))
        asked[c, s, "typical"] = float(min(duration, round(float(np.median(durs[c, s])) * 5) / 5))
        asked[c, s, "fixed"] = float(duration)
        for kind in ("typical", "fixed"):
            jobs += [(c, s, kind, asked[c, s, kind], text, seed) for seed in range(seeds)]
    rec: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    energy: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    bar = tqdm(total=len(jobs), desc="generating", unit="motion", disable=not progress)
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b:b + batch_size]
        reqs = [GenerationRequest(text=t, duration_s=d, seed=seed, guidance=guided, order="left_to_right")
                for (_, _, _, d, t, seed) in chunk]
        for (c, s, kind, _, _, _), m in zip(chunk, engine.sampler.sample_batch(reqs)):
            rec[c, s, kind].append(engine.recognize(m, top_k=1)["style"][0].label)
            if c in LOCOMOTION:
                energy[c, s, kind].append(gait_energy(m))
        bar.update(len(chunk))
    bar.close()
    rows = []
    for c, s in pairs:
        row = {"content": c, "style": s, "training_clips": len(durs[c, s]),
               "training_duration_s": [float(np.min(durs[c, s])), float(np.median(durs[c, s])),
                                       float(np.max(durs[c, s]))]}
        for kind in ("typical", "fixed"):
            got = rec[c, s, kind]
            row[kind] = {"duration_s": asked[c, s, kind],
                         "style_acc": float(np.mean([g == s for g in got])),
                         "read_as": Counter(got).most_common(3)}
            if energy[c, s, kind]:
                row[kind]["gait"] = {k: float(np.mean([e[k] for e in energy[c, s, kind]])) for k in GAIT}
        if c in LOCOMOTION:
            real = [gait_energy(x.joints) for x in train if x.content == c and x.style == s]
            row["real_gait"] = {k: float(np.mean([e[k] for e in real])) for k in GAIT}
        rows.append(row)
    return {"rows": rows, "seeds": seeds, "duration_s": duration, "guided": guided}


def _share(rows: list[dict], kind: str, locomotion: bool | None = None) -> float:
    from coamd.data.captions import LOCOMOTION

    sel = [r for r in rows if locomotion is None or (r["content"] in LOCOMOTION) == locomotion]
    return float(np.mean([r[kind]["style_acc"] for r in sel])) if sel else float("nan")


def _gait_summary(rows: list[dict]) -> list[str]:
    """One line: generated over real gait energy at the typical duration, min / median / max over
    the locomotion pairs (empty when there are none)."""
    ratios = {k: [r["typical"]["gait"][k] / r["real_gait"][k] for r in rows if "real_gait" in r] for k in GAIT}
    if not ratios[GAIT[0]]:
        return []
    cell = lambda v: f"{min(v):.2f} / {float(np.median(v)):.2f} / {max(v):.2f}x"  # noqa: E731
    return [f"Gait energy of the generated locomotion against the real clips of its pair, min / median / max over "
            f"the pairs: speed {cell(ratios['speed_mps'])}, hips bounce {cell(ratios['bounce_cm'])}, "
            f"arm swing {cell(ratios['arm_swing_cm'])}.", ""]


def markdown(res: dict) -> str:
    rows = res["rows"]
    out = [
        "# Style fidelity per frequent (action, style) pair",
        "",
        f"{res['seeds']} seeds per pair and duration, the runtime's sentence for the pair, left-to-right order, "
        f"cleanup and skeleton projection on, {'guided' if res['guided'] else 'unguided'}; backend {res.get('backend')}. "
        f"Machine: {res.get('machine', {}).get('cpu', '?')}. Wall time {res.get('wall_seconds', 0):.0f} s. "
        f"Command: `{res.get('command', '')}`",
        "",
        f"Recognised style, mean over pairs: typical duration {100 * _share(rows, 'typical'):.1f} %, "
        f"{res['duration_s']:g} s {100 * _share(rows, 'fixed'):.1f} %; locomotion pairs "
        f"{100 * _share(rows, 'typical', True):.1f} / {100 * _share(rows, 'fixed', True):.1f} %, the others "
        f"{100 * _share(rows, 'typical', False):.1f} / {100 * _share(rows, 'fixed', False):.1f} %.",
        "",
        *_gait_summary(rows),
        "| action | style | training clips | their duration min / median / max (s) | typical: duration, style, read as | "
        f"{res['duration_s']:g} s: style, read as | gait at the typical duration vs real: speed / bounce / arm swing |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, f = r["typical"], r["fixed"]
        read = lambda x: ", ".join(f"{k} {n}" for k, n in x["read_as"])  # noqa: E731
        gait = "-"
        if "gait" in t:
            g, real = t["gait"], r["real_gait"]
            gait = (f"{g['speed_mps']:.2f} / {real['speed_mps']:.2f} m/s, {g['bounce_cm']:.1f} / {real['bounce_cm']:.1f} cm, "
                    f"{g['arm_swing_cm']:.1f} / {real['arm_swing_cm']:.1f} cm")
        lo, med, hi = r["training_duration_s"]
        out.append(f"| {r['content']} | {r['style']} | {r['training_clips']} | {lo:.1f} / {med:.1f} / {hi:.1f} | "
                   f"{t['duration_s']:.1f} s, {100 * t['style_acc']:.0f} %, {read(t)} | "
                   f"{100 * f['style_acc']:.0f} %, {read(f)} | {gait} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=8, help="motions per pair and duration (default: 8)")
    p.add_argument("--duration", type=float, default=4.0, help="the fixed duration in s (default: 4)")
    p.add_argument("--guided", action="store_true", help="with recognizer guidance (default: unguided)")
    p.add_argument("--backend", default="onnxruntime", help="runtime backend (default: onnxruntime)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    p.add_argument("--dataset", default="data/processed", help="processed dataset (default: data/processed)")
    p.add_argument("--out", default="benchmarks/results/style_fidelity", help="output path without extension")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.seeds < 1 or not 0.4 <= a.duration <= 12:
        p.error("--seeds must be >= 1 and --duration within 0.4-12 s")
    from benchmarks.hardware import machine
    from coamd.data.dataset import MotionDataset
    from coamd.runtime import load_engine

    t0 = time.perf_counter()
    engine = load_engine(backend=a.backend, checkpoint=a.checkpoint, dataset=a.dataset)
    res = measure(engine, MotionDataset(a.dataset), a.seeds, a.duration, a.guided, progress=not a.quiet)
    res.update({"backend": engine.backend_name, "machine": {**machine(), "platform": platform.platform()},
                "wall_seconds": time.perf_counter() - t0,
                "command": "python -m benchmarks.style_fidelity " + " ".join(sys.argv[1:] if argv is None else argv)})
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".json").write_text(json.dumps(res, indent=1))
    md = markdown(res)
    out.with_name(out.name + ".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
