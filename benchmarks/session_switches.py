"""Session switches in-process: how often the motion after a new instruction shows the new action,
and how smooth the seams are, on many more switches than the real-time server benchmark can afford.

``benchmarks/sessions.py`` measures sessions through a real ``coamd serve`` at real-time pace, so
8 sessions x 60 s give about 190 switches, and its recognition numbers move by about +-5 points
between runs. This benchmark drives the same session machinery
(:class:`coamd.sampling.session.MotionSession`, the runtime's cleanup and skeleton projection,
the text-understanding rewrite the server applies) in-process and as fast as the CPU allows,
with the same texts, the same instruction rhythm (a new text every 2-3 s, cycling through
``benchmarks.sessions.TEXTS``) and the same judges (:func:`benchmarks.sessions.recognition`,
:func:`benchmarks.sessions.seam_metrics`). A switch takes effect at the next window boundary, as
in the server (the ``INSTRUCTION`` event's first frame). Fresh motions are ``Generate``-like
requests (4 s, left-to-right, cleanup and skeleton projection on, seeds 1000..).

Reported, with 95 % confidence intervals: recognised after a switch (Wilson score interval),
fresh first 2 s (Wilson), and their gap (Newcombe's hybrid score interval for a difference of
two independent proportions, Newcombe 1998, method 10), plus the seam ratios and the largest
frame-to-frame step. Window sizes come from :class:`coamd.sampling.session.SessionConfig`
(``--prefix``, ``--horizon``, ``--commit``, ``--history`` in seconds override them), so
settings can be compared before a server run confirms them.

    .venv/bin/python -m benchmarks.session_switches --out benchmarks/results/session_switches

Writes OUT.json and OUT.md. Machine-independent numbers except the wall time.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hardware import cpu_model
from benchmarks.sessions import TEXTS, matched_ratios_cell, recognition, seam_metrics
from benchmarks.text_following import parse_settings

FPS = 20


@dataclasses.dataclass
class OfflineSession:
    """One in-process session: the duck type :func:`benchmarks.sessions.recognition` and
    :func:`benchmarks.sessions.seam_metrics` read (``joints()``, ``switches``, ``_text``, ``seed``)."""

    seed: int
    offset: int
    session: object
    next_switch: int
    instruction: int = 0
    frames: list = dataclasses.field(default_factory=list)
    switches: list = dataclasses.field(default_factory=list)
    window: object = None
    state: object = None

    def _text(self, i: int) -> str:
        return TEXTS[(self.offset + i) % len(TEXTS)]

    def joints(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros((0, 21, 3), np.float32)


def run_sessions(engine, n: int, seconds: float, every: tuple[float, float], seed: int, guided: bool,
                 config, batch: int, progress=None, **settings) -> list[OfflineSession]:
    """``n`` sessions of ``seconds`` each, stepped together in batches of ``batch`` windows;
    ``settings``: other :class:`~coamd.sampling.sampler.GenerationRequest` fields of every window."""
    from coamd.sampling.sampler import GenerationRequest
    from coamd.sampling.session import MotionSession

    rng = random.Random(seed)
    conditioned = {t: engine.understand(t, "understood")[1] for t in TEXTS}
    total = int(round(seconds * FPS))
    sessions = []
    for i in range(n):
        base = GenerationRequest(**{"cleanup": True, "skeleton": "fk", **settings, "text": "x",
                                    "seed": seed * 1000 + i, "guidance": guided})
        sessions.append(OfflineSession(seed * 1000 + i, i, MotionSession(base, dataclasses.replace(config)),
                                       next_switch=int(round(rng.uniform(*every) * FPS))))
    sampler = engine.sampler
    while True:
        live = [s for s in sessions if s.session.emitted < total]
        if not live:
            return sessions
        for s in live:
            if s.window is None:
                if s.session.emitted >= s.next_switch:
                    s.instruction += 1
                    s.switches.append({"instruction": s.instruction, "text": s._text(s.instruction),
                                       "first_frame": s.session.emitted})
                    s.next_switch = s.session.emitted + int(round(rng.uniform(*every) * FPS))
                s.window = s.session.window_request(conditioned[s._text(s.instruction)])
                s.state = sampler.start(s.window.request)
        for k in range(0, len(live), batch):
            group = live[k:k + batch]
            for s, chunk in zip(group, sampler.step([s.state for s in group])):
                if len(chunk.joints):
                    before = s.session.emitted
                    f = s.session.accept(s.window, chunk.start, chunk.joints)
                    if f is not None:
                        s.frames.append(f.joints)
                        if progress is not None:
                            progress(s.session.emitted - before)
                if s.state.done or s.window.complete:
                    s.window = s.state = None


def fresh_motions(engine, guided: bool, seeds: int, duration_s: float, batch: int,
                  **settings) -> dict[str, list[np.ndarray]]:
    """``Generate``-like motions of every text: left-to-right, cleanup and skeleton projection on."""
    from coamd.sampling.sampler import GenerationRequest

    reqs = [(t, GenerationRequest(text=engine.understand(t, "understood")[1], duration_s=duration_s,
                                  seed=1000 + s, guidance=guided, **{"order": "left_to_right", **settings}))
            for s in range(seeds) for t in TEXTS]
    out: dict[str, list[np.ndarray]] = {t: [] for t in TEXTS}
    for k in range(0, len(reqs), batch):
        part = reqs[k:k + batch]
        for (t, _), j in zip(part, engine.sampler.sample_batch([r for _, r in part])):
            out[t].append(j)
    return out


def root_speed_by_window_position(sessions: list[OfflineSession], config, fresh: dict, settle: int = 16) -> dict:
    """Per text, the hips' mean horizontal step (m per frame) at each frame position within the
    session's committed windows (``(frame - first_frames) % commit_frames``; frames of a segment's
    first ``settle`` frames and of the first window left out), and the same texts' fresh motions'
    mean step (frames from 8 on). A session's root should not know where its windows begin:
    ``pulse`` is the largest position's mean over the smallest's (1 = even)."""
    first, commit = config.first_frames, config.commit
    total = {t: np.zeros(commit) for t in TEXTS}
    count = {t: np.zeros(commit) for t in TEXTS}
    for s in sessions:  # each session's steps once, added to its segments' texts
        j = s.joints()
        step = np.linalg.norm(np.diff(j[:, 0, [0, 2]], axis=0), axis=-1)  # step[f - 1]: onto frame f
        starts = [0] + [x["first_frame"] for x in s.switches] + [len(j)]
        texts = [s._text(0)] + [x["text"] for x in s.switches]
        for a, b, text in zip(starts[:-1], starts[1:], texts):
            f = np.arange(max(a + settle, first + 1), b)
            np.add.at(total[text], (f - first) % commit, step[f - 1])
            np.add.at(count[text], (f - first) % commit, 1)
    out = {}
    for t in TEXTS:
        mean = total[t] / np.maximum(count[t], 1)
        fresh_steps = [np.linalg.norm(np.diff(m[8:, 0, [0, 2]], axis=0), axis=-1).mean() for m in fresh.get(t, [])]
        out[t] = {"by_position_m": mean.tolist(), "frames": int(count[t].sum()),
                  "pulse": float(mean.max() / max(mean.min(), 1e-9)) if count[t].min() > 0 else None,
                  "session_mean_m": float(total[t].sum() / max(count[t].sum(), 1)),
                  "fresh_mean_m": float(np.mean(fresh_steps)) if fresh_steps else None}
    return out


def markdown(r: dict) -> str:
    a = r["args"]
    lines = ["# Session switches, in-process", "",
             f"Machine: {r['machine']['cpu']} ({r['machine']['cores']} cores); backend {r['backend']}; "
             f"wall {r['wall_seconds']:.0f} s.", "",
             f"Command: `python -m benchmarks.session_switches {' '.join(r['argv'])}`", "",
             f"{a['sessions']} sessions x {a['seconds']:g} s, a new text every {a['every'][0]:g}-{a['every'][1]:g} s "
             f"cycling through {len(TEXTS)} texts, seed {a['seed']}; window sizes (frames at 20 fps): "
             f"{r['config']}; settings {r['settings'] or 'defaults'}. Fresh: {a['fresh_seeds']} x {len(TEXTS)} motions of {a['fresh_duration']:g} s. "
             "Recognised = the action recognizer's top-1 on the 2 s after a switch (to the next switch if "
             "sooner, at least 1 s) equals the text's understood action. Intervals: 95 % (Wilson; "
             "Newcombe's hybrid score interval for the gap).", "",
             "| mode | after a switch | n | fresh first 2 s | fresh whole | n | gap (points) | seam jitter / skate speed / skate ratio | same, against the same texts inside | largest step (m) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for mode, m in r["modes"].items():
        g, s = m["recognition"], m["seams"]
        lines.append(f"| {mode} | {g['after_switch_pct']:.1f} % ({g['after_switch_ci95'][0]:.1f}-{g['after_switch_ci95'][1]:.1f}) "
                     f"| {g['after_switch_n']} | {g['fresh_2s_pct']:.1f} % ({g['fresh_2s_ci95'][0]:.1f}-{g['fresh_2s_ci95'][1]:.1f}) "
                     f"| {g['fresh_full_pct']:.1f} % | {g['fresh_n']} | {g['gap_points']:+.1f} ({g['gap_ci95'][0]:+.1f} to {g['gap_ci95'][1]:+.1f}) "
                     f"| {s['jitter_ratio']:.2f} / {s['skate_speed_ratio']:.2f} / {s['skate_ratio_ratio']:.2f} | {matched_ratios_cell(s)} | {s['max_step_m']:.3f} |")
    lines += ["", "Seams: the 1 s around a switch over 1 s windows inside segments, pooled; \"against the same texts "
              "inside\": each seam over the inside windows of its own two texts (`benchmarks.sessions.seam_metrics`). "
              "Target: <= 1.5.", "",
              "Per text (after a switch / fresh first 2 s / fresh whole; what the motion after a switch was recognised as):", "",
              "| mode | text | understood as | after a switch | n | fresh 2 s | fresh whole | recognised as |", "|---|---|---|---|---|---|---|---|"]
    for mode, m in r["modes"].items():
        for t, v in m["recognition"]["per_text"].items():
            f = lambda x: "-" if x is None else f"{x:.0f} %"
            lines.append(f"| {mode} | {t} | {v['expected']} | {f(v['after_switch_pct'])} | {v['after_switch_n']} | "
                         f"{f(v['fresh_2s_pct'])} | {f(v['fresh_full_pct'])} | "
                         f"{', '.join(f'{k} {c}' for k, c in v['after_switch_recognised_as'].items())} |")
    lines += ["", "Root speed by position in the committed windows (hips' horizontal step, mm per frame; frames "
              "16 or more into a segment; `pulse` = largest position over smallest; fresh = the same text's fresh "
              "motions):", "", "| mode | text | by position | pulse | session mean | fresh mean |", "|---|---|---|---|---|---|"]
    for mode, m in r["modes"].items():
        for t, v in m.get("root_speed", {}).items():
            f = lambda x: "-" if x is None else f"{1000 * x:.0f}"
            lines.append(f"| {mode} | {t} | {' '.join(f'{1000 * x:.0f}' for x in v['by_position_m'])} | "
                         f"{'-' if v['pulse'] is None else format(v['pulse'], '.2f')} | {f(v['session_mean_m'])} | "
                         f"{f(v['fresh_mean_m'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from coamd.sampling.session import SessionConfig

    d = SessionConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", nargs="+", choices=("unguided", "guided"), default=["unguided"],
                   help="guidance modes (default: unguided; guided needs the PyTorch sidecar and is about 3x slower)")
    p.add_argument("--sessions", type=int, default=32, help="sessions per mode (default %(default)s)")
    p.add_argument("--seconds", type=float, default=60.0, help="motion per session, s (default %(default)s)")
    p.add_argument("--every", type=float, nargs=2, default=[2.0, 3.0], metavar=("LO", "HI"),
                   help="seconds between instructions (default 2 3, as benchmarks/sessions.py)")
    p.add_argument("--fresh-seeds", type=int, default=24, help="fresh motions per text (default %(default)s)")
    p.add_argument("--fresh-duration", type=float, default=4.0, help="fresh motion length, s (default %(default)s)")
    p.add_argument("--prefix", type=float, default=d.prefix_frames / FPS,
                   help="history a window keeps after a switch, s (default %(default)s)")
    p.add_argument("--horizon", type=float, default=d.window_frames / FPS, help="frames each window plans, s (default %(default)s)")
    p.add_argument("--commit", type=float, default=d.commit / FPS, help="frames each window commits, s (default %(default)s)")
    p.add_argument("--history", type=float, default=d.history / FPS,
                   help="longest history while the text is unchanged, s (default %(default)s)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="a GenerationRequest setting for every window and fresh motion, e.g. --set cfg_scale=4 "
                        "(repeatable)")
    p.add_argument("--batch", type=int, default=16, help="windows stepped together (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="onnxruntime", help="runtime backend (default %(default)s)")
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped weights)")
    p.add_argument("--out", default="benchmarks/results/session_switches", help="output prefix for .json and .md")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        config = SessionConfig.from_seconds(a.horizon, a.commit, a.history, a.prefix)
        settings = parse_settings(a.settings)
    except ValueError as e:
        p.error(str(e))
    frames = lambda s: int(round(s * FPS))
    from tqdm import tqdm

    from coamd.runtime import load_engine

    t0 = time.perf_counter()
    result = {"argv": list(sys.argv[1:] if argv is None else argv), "args": vars(a), "config": dataclasses.asdict(config),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
              "settings": settings, "modes": {}}
    for mode in a.modes:
        engine = load_engine(a.backend, checkpoint=a.checkpoint, guidance=mode == "guided")
        result["backend"] = engine.backend_name
        bar = tqdm(total=a.sessions * frames(a.seconds), unit="frame", desc=f"sessions ({mode})", disable=a.quiet)
        sessions = run_sessions(engine, a.sessions, a.seconds, tuple(a.every), a.seed, mode == "guided", config,
                                a.batch, progress=bar.update, **settings)
        bar.close()
        fresh = fresh_motions(engine, mode == "guided", a.fresh_seeds, a.fresh_duration, a.batch, **settings)
        rec = recognition(engine, sessions, fresh)
        result["modes"][mode] = {"recognition": rec, "seams": seam_metrics(sessions, config),
                                 "switches": sum(len(s.switches) for s in sessions),
                                 "root_speed": root_speed_by_window_position(sessions, config, fresh)}
        g = rec
        print(f"{mode}: after a switch {g['after_switch_pct']:.1f} % (n {g['after_switch_n']}), fresh first 2 s "
              f"{g['fresh_2s_pct']:.1f} % (n {g['fresh_n']}), gap {g['gap_points']:+.1f} points "
              f"(95 % CI {g['gap_ci95'][0]:+.1f} to {g['gap_ci95'][1]:+.1f})", file=sys.stderr)
    result["wall_seconds"] = time.perf_counter() - t0
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=float))
    out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
