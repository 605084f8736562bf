"""A/B latency of the runtime at two revisions: time to first frame (TTFF) and real-time factor
(RTF) of in-process generation, measured interleaved in one run on the same machine.

Each round runs a child process per revision (the working tree, and ``--base`` checked out into a
temporary git worktree); each child loads the ONNX Runtime engine of the shipped checkpoint and
streams ``--requests`` motions of ``--duration`` s (left-to-right order, the server's), unguided
and guided, after a warm-up: TTFF is the time from the call to the first released frames
(text understanding included where the revision has it), RTF the wall time divided by the motion's
duration. Rounds alternate the order of the revisions so drifting machine load hits both alike.

    .venv/bin/python -m benchmarks.latency_ab --base ceba50e --rounds 3 --out benchmarks/results/latency_ab

Writes OUT.json and OUT.md (medians per revision and mode, and head/base ratios).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np
from coamd.runtime import load_engine
from coamd.sampling.sampler import GenerationRequest
n, duration = int(sys.argv[1]), float(sys.argv[2])
eng = load_engine("onnxruntime", guidance=True)
texts = ["a person walks forward", "an old lady jogs down the road", "wave with your right hand",
         "a person bows politely", "someone runs in a circle", "a tired man walks slowly"]
out = {}
for guided in (False, True):
    ttff, rtf = [], []
    for i in range(n + 1):
        t0 = time.perf_counter()
        text = texts[i % len(texts)]
        if hasattr(eng, "understand"):
            _, text = eng.understand(text)
        req = GenerationRequest(text=text, duration_s=duration, seed=i, guidance=guided, order="left_to_right")
        first = None
        frames = 0
        for chunk in eng.sampler.stream(req):
            if first is None:
                first = time.perf_counter() - t0
            frames += len(chunk.joints)
        total = time.perf_counter() - t0
        if i:                                # the first request warms up
            ttff.append(first)
            rtf.append(total / (frames / 20.0))
    out["guided" if guided else "unguided"] = {"ttff_s": ttff, "rtf": rtf}
print(json.dumps(out))
"""


def run_child(src: Path, n: int, duration: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(n), str(duration)], cwd=src, env=env,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise RuntimeError(f"child at {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="git revision to compare the working tree with")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default %(default)s)")
    p.add_argument("--requests", type=int, default=12, help="timed requests per mode per child (default %(default)s)")
    p.add_argument("--duration", type=float, default=4.0, help="motion length in s (default %(default)s)")
    p.add_argument("--out", default="benchmarks/results/latency_ab", help="output prefix for .json and .md")
    a = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="coamd-ab-"))
    base_dir = tmp / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(base_dir), a.base], cwd=ROOT, check=True,
                   capture_output=True)
    results = {"head": [], "base": []}
    try:
        for r in range(a.rounds):
            order = [("head", ROOT), ("base", base_dir)]
            for name, src in (order if r % 2 == 0 else order[::-1]):
                t = time.perf_counter()
                results[name].append(run_child(src, a.requests, a.duration))
                print(f"round {r + 1}/{a.rounds} {name}: {time.perf_counter() - t:.0f} s", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_dir)], cwd=ROOT, capture_output=True)
    summary = {}
    for name, runs in results.items():
        for mode in ("unguided", "guided"):
            ttff = np.concatenate([x[mode]["ttff_s"] for x in runs])
            rtf = np.concatenate([x[mode]["rtf"] for x in runs])
            summary[f"{name} {mode}"] = {"ttff_ms_p50": 1000 * float(np.median(ttff)),
                                         "ttff_ms_p90": 1000 * float(np.percentile(ttff, 90)),
                                         "rtf_p50": float(np.median(rtf)), "n": int(len(ttff))}
    ratios = {mode: {"ttff_p50": summary[f"head {mode}"]["ttff_ms_p50"] / summary[f"base {mode}"]["ttff_ms_p50"],
                     "rtf_p50": summary[f"head {mode}"]["rtf_p50"] / summary[f"base {mode}"]["rtf_p50"]}
              for mode in ("unguided", "guided")}
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    res = {"base": a.base, "rounds": a.rounds, "requests": a.requests, "duration_s": a.duration,
           "machine": platform.processor() or platform.machine(), "loadavg": load, "summary": summary,
           "ratios_head_over_base": ratios}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    lines = [f"# Latency A/B: working tree vs {a.base}", "",
             f"{a.rounds} interleaved rounds x {a.requests} requests of {a.duration:g} s per mode, ONNX Runtime, "
             f"left-to-right, in-process; load average at the end {load}.", "",
             "| revision, mode | TTFF p50 / p90 ms | RTF p50 |", "|---|---|---|"]
    for k, v in summary.items():
        lines.append(f"| {k} | {v['ttff_ms_p50']:.1f} / {v['ttff_ms_p90']:.1f} | {v['rtf_p50']:.4f} |")
    lines += ["", "| mode | TTFF head/base | RTF head/base |", "|---|---|---|"]
    for mode, r in ratios.items():
        lines.append(f"| {mode} | {r['ttff_p50']:.2f}x | {r['rtf_p50']:.2f}x |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
