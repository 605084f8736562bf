"""Load test of `coamd serve`: N concurrent streaming clients, batching on and off.

For each server mode (continuous batching on / off: `coamd serve --no-batching`) and each client
count, a bounded number of requests is shared among that many concurrent streaming clients (each
with its own channel, each sending its next request when the previous one finished). Reported per
run: p50/p99 time to first frame (client side: request sent -> first frame received), p50/p99
total latency, aggregate frames per second (frames received / wall time) and errors.

Targets (issue 5): with 8 clients, p99 time to first frame at most 4x the single-client figure
and aggregate throughput at least 3x single-client.

    .venv/bin/python benchmarks/load.py --clients 1 8 --requests 16 --out bench_out/load

starts its own servers on loopback (or use --server HOST:PORT to test a running one, one mode).
Writes OUT.json (one record per run) and OUT.md (table + target check).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coamd.client import AsyncMotionClient, MotionClient  # noqa: E402
from coamd.client.process import ServerProcess  # noqa: E402

PROMPTS = ["a person walks forward", "a person runs in a circle", "a person waves with the right hand",
           "a person kicks angrily", "a person jumps happily", "an elderly person walks slowly",
           "a person dances", "a person turns left while walking"]


def start_server(args, batching: bool, log_dir: Path) -> ServerProcess:
    cmd = ["--backend", args.backend, "--max-batch", str(args.max_batch), "--max-queue", "64"]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if not batching:
        cmd.append("--no-batching")
    return ServerProcess(cmd, log_path=log_dir / f"server-{int(batching)}.log", timeout_s=300)


async def run_load(target: str, clients: int, requests: int, args) -> dict:
    """``requests`` generations shared by ``clients`` concurrent streaming clients."""
    counter = iter(range(requests))
    ttff, total, frames, errors, batches = [], [], 0, [], []

    async def worker(w: int):
        nonlocal frames
        c = AsyncMotionClient(target, token=args.token)
        try:
            for i in counter:
                try:
                    r = await c.generate(PROMPTS[i % len(PROMPTS)], duration_s=args.duration, seed=i,
                                         guidance=args.guidance, iterations=args.iterations,
                                         ode_steps=args.ode_steps, timeout=args.timeout)
                    ttff.append(r.ttff_s)
                    total.append(r.total_s)
                    frames += r.joints.shape[0]
                    batches.append(r.summary["max_batch"])
                except Exception as exc:  # noqa: BLE001 - errors are counted, not fatal
                    errors.append(f"{type(exc).__name__}: {getattr(exc, 'details', lambda: exc)()}")
        finally:
            await c.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    wall = time.perf_counter() - t0
    pct = lambda xs, q: float(1000 * np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    return dict(clients=clients, requests=requests, ok=len(ttff), errors=len(errors), _ttff=ttff, _total=total,
                error_samples=errors[:3], ttff_p50_ms=pct(ttff, 50), ttff_p99_ms=pct(ttff, 99),
                total_p50_ms=pct(total, 50), total_p99_ms=pct(total, 99), wall_s=wall,
                frames=frames, frames_per_s=frames / wall, mean_max_batch=float(np.mean(batches)) if batches else 0.0)


def merge(rs: list[dict]) -> dict:
    """One record from repeats: percentiles over every request, median throughput over repeats."""
    ttff = [x for r in rs for x in r["_ttff"]]
    total = [x for r in rs for x in r["_total"]]
    pct = lambda xs, q: float(1000 * np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    fps = [r["frames_per_s"] for r in rs]
    return dict(clients=rs[0]["clients"], requests=sum(r["requests"] for r in rs), repeats=len(rs),
                ok=sum(r["ok"] for r in rs), errors=sum(r["errors"] for r in rs),
                error_samples=[e for r in rs for e in r["error_samples"]][:3],
                ttff_p50_ms=pct(ttff, 50), ttff_p99_ms=pct(ttff, 99), total_p50_ms=pct(total, 50),
                total_p99_ms=pct(total, 99), frames_per_s=float(np.median(fps)), frames_per_s_runs=fps,
                frames=sum(r["frames"] for r in rs), wall_s=sum(r["wall_s"] for r in rs),
                mean_max_batch=float(np.mean([r["mean_max_batch"] for r in rs])))


def markdown(records: list[dict], meta: dict) -> str:
    lines = [f"# Load test ({meta['machine']})", "",
             f"Command: `{meta['command']}`", "",
             f"Requests: {meta['duration_s']} s motions, guidance {'on' if meta['guidance'] else 'off'}, "
             f"iterations {meta['iterations'] or 'default'}, backend {meta['backend']}; {meta['repeats']} "
             "interleaved repeats: TTFF percentiles over all requests, frames/s the median of the repeats.", "",
             "| batching | clients | ok | errors | TTFF p50 ms | TTFF p99 ms | total p50 ms | total p99 ms "
             "| frames/s | mean batch |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        mode = r["batching"] if isinstance(r["batching"], str) else ("on" if r["batching"] else "off")
        lines.append(f"| {mode} | {r['clients']} | {r['ok']} | {r['errors']} | "
                     f"{r['ttff_p50_ms']:.0f} | {r['ttff_p99_ms']:.0f} | {r['total_p50_ms']:.0f} | "
                     f"{r['total_p99_ms']:.0f} | {r['frames_per_s']:.1f} | {r['mean_max_batch']:.1f} |")
    lines.append("")
    for b in (True, False):
        rs = {r["clients"]: r for r in records if r["batching"] == b}
        if 1 in rs and len(rs) > 1:
            n = max(rs)
            ttff_ratio = rs[n]["ttff_p99_ms"] / rs[1]["ttff_p99_ms"]
            thr_ratio = rs[n]["frames_per_s"] / rs[1]["frames_per_s"]
            lines.append(f"- batching {'on' if b else 'off'}: {n} clients vs 1: p99 TTFF x{ttff_ratio:.2f} "
                         f"(target <= 4: {'met' if ttff_ratio <= 4 else 'MISSED'}), throughput x{thr_ratio:.2f} "
                         f"(target >= 3: {'met' if thr_ratio >= 3 else 'MISSED'})")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--server", default=None, help="HOST:PORT of a running server (default: start our own)")
    p.add_argument("--modes", nargs="+", choices=("on", "off"), default=["on", "off"],
                   help="batching modes to start servers for (default: on off)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent clients (default: 1 8)")
    p.add_argument("--requests", type=int, default=16, help="requests per run (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3,
                   help="repeat the client counts, interleaved; throughput is the median (default: %(default)s)")
    p.add_argument("--duration", type=float, default=4.0, help="motion seconds per request (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=0, help="masked-AR iterations (0 = server default)")
    p.add_argument("--ode-steps", type=int, default=0, help="ODE steps (0 = server default)")
    p.add_argument("--guidance", action=argparse.BooleanOptionalAction, default=False,
                   help="recognizer guidance (default: off)")
    p.add_argument("--backend", default="onnxruntime", help="server backend when we start it (default: %(default)s)")
    p.add_argument("--checkpoint", default=None, help="server --checkpoint (default: the shipped one)")
    p.add_argument("--threads", type=int, default=0, help="server --threads (0 = its default)")
    p.add_argument("--max-batch", type=int, default=8, help="server --max-batch (default: %(default)s)")
    p.add_argument("--token", default=None, help="bearer token for --server")
    p.add_argument("--timeout", type=float, default=300.0, help="per-request deadline in seconds")
    p.add_argument("--out", default="bench_out/load", help="output prefix for .json and .md (default: %(default)s)")
    args = p.parse_args(argv)

    records = []
    log_dir = Path(tempfile.mkdtemp(prefix="coamd-load-"))
    modes = [None] if args.server else [m == "on" for m in args.modes]
    for batching in modes:
        server = None if args.server else start_server(args, batching, log_dir)
        target = args.server or server.target
        try:
            with MotionClient(target, token=args.token) as c:  # warm-up: first calls pay one-off costs
                c.wait_ready(60)
                c.generate(PROMPTS[0], duration_s=args.duration, guidance=args.guidance,
                           iterations=args.iterations, ode_steps=args.ode_steps, timeout=args.timeout)
            runs: dict[int, list[dict]] = {n: [] for n in args.clients}
            for r in range(args.repeats):  # client counts interleaved, so drifting load hits all alike
                for n in args.clients:
                    rec = asyncio.run(run_load(target, n, max(args.requests, n), args))
                    runs[n].append(rec)
                    print(f"batching {batching}, repeat {r + 1}/{args.repeats}, {n} clients: TTFF p50 "
                          f"{rec['ttff_p50_ms']:.0f} ms, p99 {rec['ttff_p99_ms']:.0f} ms, "
                          f"{rec['frames_per_s']:.1f} frames/s, {rec['errors']} errors", flush=True)
            for n, rs in runs.items():
                rec = merge(rs)
                rec["batching"] = batching if batching is not None else "external"
                records.append(rec)
        finally:
            if server is not None:
                server.stop()
    meta = dict(machine=f"{platform.machine()} {os.cpu_count()}-core CPU, {platform.system()}",
                command="python benchmarks/load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                duration_s=args.duration, guidance=args.guidance, iterations=args.iterations, backend=args.backend,
                repeats=args.repeats)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "records": records}, indent=2))
    md = markdown(records, meta)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
