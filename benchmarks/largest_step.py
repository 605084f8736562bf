"""Largest frame-to-frame joint steps of fresh motions, before and after the skeleton projection.

Issue-15-style target: no joint moves further in one frame than in any real clip. This
diagnostic generates ``Generate``-like motions (the session benchmark's texts, left-to-right
order, cleanup on, seeds 1000..): the model's cleaned output (``skeleton="raw"``), and the same
motion projected onto the skeleton with :func:`coamd.sampling.skeleton_projection.project_motion`
(the frames a ``skeleton="fk"`` request, what the server streams, releases). It reports, per text, the
action recognizer's top-1 on both, and the largest steps with where they are: the joint, the
frame, and the generated (raw) lengths of the bone into that joint and of its parent's bone
against the skeleton's, since the projection keeps bone lengths fixed and a bone the decoder
shrank turns further than it moves.

    .venv/bin/python -m benchmarks.largest_step --out benchmarks/results/largest_step

Writes OUT.json and OUT.md. Machine-independent except the wall time.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.session_switches import fresh_motions
from benchmarks.sessions import TEXTS


def _steps(j: np.ndarray) -> np.ndarray:
    """(T-1, J) joint displacements between consecutive frames, metres."""
    return np.linalg.norm(np.diff(j, axis=0), axis=-1)


def worst_steps(raw: dict, fk: dict, top: int = 10) -> list[dict]:
    """The ``top`` largest projected steps over all motions, with the raw step of the same joint
    and frame and the raw / rest lengths of the bone into the joint and of its parent's bone."""
    from coamd.io.bvh_export import rest_offsets
    from coamd.skeleton import JOINT_NAMES, PARENTS

    rest = np.linalg.norm(rest_offsets(), axis=-1)
    rows = []
    for t in fk:
        for k, (r, f) in enumerate(zip(raw[t], fk[t])):
            s = _steps(f)
            fr, jt = np.unravel_index(int(s.argmax()), s.shape)
            bones = []
            for b in (jt, PARENTS[jt]):
                if b > 0:
                    obs = float(np.linalg.norm(r[fr + 1, b] - r[fr + 1, PARENTS[b]]))
                    bones.append({"bone": f"{JOINT_NAMES[PARENTS[b]]}->{JOINT_NAMES[b]}", "raw_m": obs,
                                  "rest_m": float(rest[b])})
            rows.append({"text": t, "seed": 1000 + k, "to_frame": int(fr + 1), "joint": JOINT_NAMES[jt],
                         "projected_step_m": float(s.max()), "raw_step_m": float(_steps(r)[fr, jt]),
                         "raw_motion_max_step_m": float(_steps(r).max()), "bones": bones})
    return sorted(rows, key=lambda x: -x["projected_step_m"])[:top]


def limb_turns(joints: np.ndarray) -> dict[str, float]:
    """Largest per-frame turn (degrees) of each upper arm's and thigh's direction in one motion
    (T, 21, 3): what :data:`coamd.io.bvh_export.LIMB_TURN_DEG` limits in the projection."""
    from coamd.io.bvh_export import LIMB_TURN_DEG, LIMBS
    from coamd.skeleton import JOINT_INDEX

    out = {}
    for first in LIMB_TURN_DEG:
        bone = joints[:, JOINT_INDEX[LIMBS[first][0]]] - joints[:, JOINT_INDEX[first]]
        bone = bone / np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-9)
        cos = np.clip(np.sum(bone[1:] * bone[:-1], -1), -1.0, 1.0)
        out[first] = float(np.degrees(np.arccos(cos)).max()) if len(bone) > 1 else 0.0
    return out


def real_clips(dataset_root: str) -> dict:
    """Over every real clip of the train and test splits (mirrors included), read once: the largest
    frame-to-frame joint step (m), overall and in the test split, and the fastest per-frame turn
    of each limb's first bone."""
    from coamd.data.dataset import MotionDataset

    ds = MotionDataset(dataset_root)
    steps = {"train": 0.0, "test": 0.0}
    turns: dict[str, float] = {}
    clips = 0
    for split in steps:
        for c in ds.split(split):
            clips += 1
            if len(c.joints) > 1:
                steps[split] = max(steps[split], float(_steps(c.joints).max()))
            for k, v in limb_turns(c.joints).items():
                turns[k] = max(turns.get(k, 0.0), v)
    return {"clips": clips, "max_step_m": max(steps.values()), "test_max_step_m": steps["test"], "max_turn_deg": turns}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=64, help="motions per text (default %(default)s)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per motion (default %(default)s)")
    p.add_argument("--guided", action="store_true", help="recognizer guidance on (default: off)")
    p.add_argument("--batch", type=int, default=16, help="motions stepped together (default %(default)s)")
    p.add_argument("--dataset", default="data/processed", help="processed dataset (the real test clips' largest step)")
    p.add_argument("--backend", default="onnxruntime", help="runtime backend (default %(default)s)")
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped weights)")
    p.add_argument("--out", default="benchmarks/results/largest_step", help="output prefix for .json and .md")
    a = p.parse_args(argv)
    from coamd.runtime import load_engine
    from coamd.sampling.skeleton_projection import project_motion

    t0 = time.perf_counter()
    engine = load_engine(a.backend, checkpoint=a.checkpoint, guidance=a.guided)
    raw = fresh_motions(engine, a.guided, a.seeds, a.duration, a.batch, skeleton="raw")
    fk = {t: [project_motion(m)[0] for m in ms] for t, ms in raw.items()}
    expected = {t: engine.understand(t, "understood")[0].content for t in TEXTS}

    def top1(j):
        return engine.recognize(np.ascontiguousarray(j, np.float32), top_k=1)["content"][0].label

    every = real_clips(a.dataset) if Path(a.dataset).is_dir() else None
    real = every["test_max_step_m"] if every else None
    per_text = {}
    for t in TEXTS:
        rs, fs = [_steps(m).max() for m in raw[t]], [_steps(m).max() for m in fk[t]]
        per_text[t] = {"expected": expected[t],
                       "recognised_raw_pct": 100 * float(np.mean([top1(m) == expected[t] for m in raw[t]])),
                       "recognised_projected_pct": 100 * float(np.mean([top1(m) == expected[t] for m in fk[t]])),
                       "max_step_raw_m": float(max(rs)), "max_step_projected_m": float(max(fs)),
                       "above_real_raw": int(sum(x > real for x in rs)) if real else None,
                       "above_real_projected": int(sum(x > real for x in fs)) if real else None}
    res = {"args": vars(a), "real_test_clips_max_step_m": real, "real_clips": every, "per_text": per_text,
           "worst": worst_steps(raw, fk),
           "motions": a.seeds * len(TEXTS), "wall_seconds": time.perf_counter() - t0}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    f = lambda x: "-" if x is None else str(x)
    lines = ["# Largest frame-to-frame joint steps, before and after the skeleton projection", "",
             f"{res['motions']} fresh motions ({a.seeds} seeds x {len(TEXTS)} texts, {a.duration:g} s, left-to-right "
             f"order, cleanup on, {'guided' if a.guided else 'unguided'}); the same seeds raw (`skeleton=raw`) and "
             f"projected (`skeleton=fk`). Largest step in the real test clips: {f(real and round(real, 3))} m. "
             f"Command: `python -m benchmarks.largest_step --seeds {a.seeds}{' --guided' if a.guided else ''}`; "
             f"wall {res['wall_seconds']:.0f} s.", ""]
    if every:
        from coamd.io.bvh_export import LIMB_TURN_DEG

        t = every["max_turn_deg"]
        lines += [f"Every real clip ({every['clips']}, train and test splits, mirrors included): largest step "
                  f"{every['max_step_m']:.3f} m; fastest turn of a limb's first bone in one frame: "
                  + ", ".join(f"{k} {v:.1f} deg" for k, v in t.items())
                  + " (the projection's limit, `LIMB_TURN_DEG`: "
                  + ", ".join(f"{k} {v:g}" for k, v in LIMB_TURN_DEG.items()) + ").", ""]
    lines += ["| text | understood as | recognised raw / projected | largest step raw / projected (m) | motions above the "
              "real largest, raw / projected |", "|---|---|---|---|---|"]
    for t, v in per_text.items():
        lines.append(f"| {t} | {v['expected']} | {v['recognised_raw_pct']:.0f} / {v['recognised_projected_pct']:.0f} % | "
                     f"{v['max_step_raw_m']:.3f} / {v['max_step_projected_m']:.3f} | {f(v['above_real_raw'])} / "
                     f"{f(v['above_real_projected'])} |")
    lines += ["", "Largest projected steps (raw lengths of the bone into the joint and of its parent's bone, against the skeleton's):", "",
              "| text | seed | frame | joint | projected step (m) | raw step, same joint (m) | bones raw / rest (m) |", "|---|---|---|---|---|---|---|"]
    for w in res["worst"]:
        b = "; ".join(f"{x['bone']} {x['raw_m']:.3f} / {x['rest_m']:.3f}" for x in w["bones"])
        lines.append(f"| {w['text']} | {w['seed']} | {w['to_frame']} | {w['joint']} | {w['projected_step_m']:.3f} | "
                     f"{w['raw_step_m']:.3f} | {b} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
