"""Where a session's root speed comes from: the hips' horizontal speed at each frame position of
a committed session window, as the kept history, the decoder and the seam easing make it.

``benchmarks/session_switches`` shows the session's root speed pulsing with its 0.4 s windows
(the first committed token slower than the second) and continuations off the fresh motions'
speed. This diagnostic runs sessions of one text (in-process, unguided, the same window sizes)
and records, for every window from the second on (2 s of history or more), over the 8 frames
before and the first 8 frames after the kept history (mm per frame):

* ``kept``: the session's raw frames the window continues from (its last 8);
* ``decoded``: the decoder's frames (ONNX Runtime, the shipped autoencoder's ``filtered`` hips
  path: a complementary filter of the absolute hips head and the integrated displacement head,
  :meth:`coamd.models.autoencoder.MotionAutoencoder._complementary`);
* ``sent``: after :func:`coamd.sampling.sampler.paste_kept_frames` eased the seam offset out;
* ``displacement head``: the same latents' displacement head alone (torch decoder), integrated
  from the last kept frame.

and, for fresh motions of the text (4 s, left-to-right, seeds 1000..), the decoded speed and the
displacement head's speed over frames 8 on. Needs torch (the autoencoder checkpoint).

    .venv/bin/python -m benchmarks.session_root --out benchmarks/results/session_root

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

DEFAULT_TEXTS = ["a person runs", "a person walks backwards", "a person walks forward"]


def _speed(xz: np.ndarray) -> np.ndarray:
    """(n, 2) metres -> (n - 1,) metres per frame."""
    return np.linalg.norm(np.diff(xz, axis=0), axis=-1)


class _Heads:
    """The shipped autoencoder's displacement head (torch,
    :meth:`coamd.models.autoencoder.MotionAutoencoder.root_steps`): latents (L, D) -> per-frame
    hips steps (4L - 1, 2) metres (step t - 1 moves onto frame t)."""

    def __init__(self):
        import torch

        from coamd.models.bundle import load_bundle

        self.torch = torch
        self.ae = load_bundle().autoencoder
        if self.ae.config.root == "absolute":
            raise SystemExit("this autoencoder has no displacement head (root='absolute')")

    def steps(self, z: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.ae.root_steps(self.torch.from_numpy(np.asarray(z, np.float32)[None]))[0].numpy()


def session_windows(engine, heads: _Heads, text: str, sessions: int, windows: int) -> dict:
    """Per-position mean speeds (m/frame) over the windows of ``sessions`` sessions of ``text``."""
    import coamd.sampling.sampler as sampler_module
    from coamd.sampling.sampler import GenerationRequest
    from coamd.sampling.session import MotionSession

    conditioned = engine.understand(text, "understood")[1]
    backend = engine.sampler.backend
    latest = {"z": None, "row": 0}
    rows: dict[str, list] = {"kept": [], "decoded": [], "sent": [], "displacement head": []}
    paste = sampler_module.paste_kept_frames
    decode = backend.decode

    def recording_decode(z):
        latest["z"], latest["row"] = np.array(z), 0
        return decode(z)

    def recording_paste(decoded, kept):
        z = latest["z"][latest["row"]]
        latest["row"] += 1
        out = paste(decoded, kept)
        b = int(np.flatnonzero(~np.isnan(kept[:, 0, 0]))[-1]) + 1
        if b >= 40 and len(decoded) >= b + 8:       # windows with a full history, 8 new frames out
            step = heads.steps(z[: len(decoded) // 4])
            integ = kept[b - 1, 0, [0, 2]] + np.concatenate([[np.zeros(2)], np.cumsum(step[b - 1:b + 7], axis=0)])
            rows["kept"].append(_speed(kept[b - 9:b, 0][:, [0, 2]]))
            rows["decoded"].append(_speed(decoded[b - 1:b + 8, 0][:, [0, 2]]))
            rows["sent"].append(_speed(out[b - 1:b + 8, 0][:, [0, 2]]))
            rows["displacement head"].append(_speed(integ))
        return out

    sampler_module.paste_kept_frames, backend.decode = recording_paste, recording_decode
    try:
        live = [MotionSession(GenerationRequest(text="x", seed=i, guidance=False, cleanup=True, skeleton="fk"))
                for i in range(sessions)]
        for _ in range(windows):
            ws = [s.window_request(conditioned) for s in live]
            states = [engine.sampler.start(w.request) for w in ws]
            while True:
                todo = [(s, w, x) for s, w, x in zip(live, ws, states) if not (x.done or w.complete)]
                if not todo:
                    break
                for (s, w, _), chunk in zip(todo, engine.sampler.step([x for _, _, x in todo])):
                    if len(chunk.joints):
                        s.accept(w, chunk.start, chunk.joints)
    finally:
        sampler_module.paste_kept_frames, backend.decode = paste, decode
    return {k: np.mean(v, axis=0).tolist() for k, v in rows.items()} | {"windows": len(rows["kept"])}


def fresh(engine, heads: _Heads, text: str, seeds: int) -> dict:
    """Mean decoded and displacement-head speeds (m/frame, frames 8 on) of fresh motions."""
    from coamd.sampling.sampler import GenerationRequest

    conditioned = engine.understand(text, "understood")[1]
    states = [engine.sampler.start(GenerationRequest(text=conditioned, duration_s=4.0, seed=1000 + s, guidance=False,
                                                     order="left_to_right", cleanup=False, skeleton="raw"))
              for s in range(seeds)]
    frames = [[] for _ in states]
    while not all(s.done for s in states):
        todo = [i for i, s in enumerate(states) if not s.done]
        for i, chunk in zip(todo, engine.sampler.step([states[i] for i in todo])):
            frames[i].append(chunk.joints)
    decoded = [_speed(np.concatenate(f)[8:, 0][:, [0, 2]]).mean() for f in frames]
    head = [np.linalg.norm(heads.steps(s.z)[7:], axis=-1).mean() for s in states]
    return {"decoded": float(np.mean(decoded)), "displacement head": float(np.mean(head)), "motions": len(states)}


def markdown(r: dict) -> str:
    a = r["args"]
    lines = ["# Session root speed by source", "",
             f"Machine: {r['machine']}; backend {r['backend']}; wall {r['wall_seconds']:.0f} s.", "",
             f"Command: `python -m benchmarks.session_root {' '.join(r['argv'])}`", "",
             (f"{a['sessions']} unguided sessions x {a['windows']} windows per text (windows from the second on, "
              "2 s of history or more); hips' horizontal speed in mm per frame at the 8 frames before "
              "the window's new frames (`kept`) and its first 8 new frames (the others); fresh: "
              f"{a['fresh']} motions of 4 s, frames 8 on."), "",
             "| text | source | by position (mm/frame) | mean | fresh mean |", "|---|---|---|---|---|"]
    for t, v in r["texts"].items():
        for src in ("kept", "decoded", "sent", "displacement head"):
            sp = v["session"][src]
            fr = v["fresh"].get(src)
            lines.append(f"| {t} | {src} | {' '.join(f'{1000 * x:.0f}' for x in sp)} | {1000 * np.mean(sp):.0f} | "
                         f"{'-' if fr is None else f'{1000 * fr:.0f}'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", nargs="+", default=DEFAULT_TEXTS, help="session texts (default: %(default)s)")
    p.add_argument("--sessions", type=int, default=16, help="sessions per text (default %(default)s)")
    p.add_argument("--windows", type=int, default=40, help="windows per session (default %(default)s)")
    p.add_argument("--fresh", type=int, default=16, help="fresh motions per text (default %(default)s)")
    p.add_argument("--out", default="benchmarks/results/session_root", help="output prefix for .json and .md")
    a = p.parse_args(argv)
    if min(a.sessions, a.fresh) < 1 or a.windows < 2:
        p.error("--sessions and --fresh must be at least 1 and --windows at least 2")
    from benchmarks.hardware import cpu_model
    from coamd.runtime import load_engine

    t0 = time.perf_counter()
    engine = load_engine("onnxruntime", guidance=False)
    heads = _Heads()
    res = {"args": vars(a), "argv": list(argv if argv is not None else sys.argv[1:]), "backend": engine.backend_name,
           "machine": f"{cpu_model()}", "texts": {}}
    for t in a.texts:
        res["texts"][t] = {"session": session_windows(engine, heads, t, a.sessions, a.windows),
                           "fresh": fresh(engine, heads, t, a.fresh)}
        s = res["texts"][t]["session"]
        print(f"{t}: {s['windows']} windows; sent {1000 * np.mean(s['sent']):.0f}, displacement head "
              f"{1000 * np.mean(s['displacement head']):.0f} mm/frame", flush=True)
    res["wall_seconds"] = time.perf_counter() - t0
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    out.with_suffix(".md").write_text(markdown(res))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
