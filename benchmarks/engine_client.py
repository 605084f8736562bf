"""Engine-client benchmark: sample() cost and time to first frame, C++ client vs Python client.

Starts `coamd serve` on loopback (or uses --server), then in one run:

1. Time to first frame, end to end, for the native C++ client (libcoamd_client through the
   pybind11 module; the receiver thread stamps the first frame, `client_ttff_ms`) and for the
   Python client (`coamd.client.MotionClient`, `ttff_s`), the same requests (text, seed,
   settings) alternating which client goes first. Also the total stream time of each.
2. Engine-side cost of `coamd_stream_sample()` per call (microseconds), measured in C++ by
   build/bin/coamd_bench_sample on a real stream: while frames are still arriving and after the end.

Prints a table and writes JSON (default bench_out/engine_client.json). Needs `make native`.

    .venv/bin/python benchmarks/engine_client.py [--repeats 5] [--duration 4] [--backend torch]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from coamd.client.process import ServerProcess, ServerStartError  # noqa: E402
from benchmarks.hardware import cpu_model  # noqa: E402

LIB = ROOT / "build" / "lib"
BENCH_EXE = ROOT / "build" / "bin" / "coamd_bench_sample"


def Server(backend: str, log: Path, checkpoint: str | None = None) -> ServerProcess:
    """`coamd serve` on a free loopback port for the benchmark."""
    ckpt = ["--checkpoint", checkpoint] if checkpoint else []
    try:
        return ServerProcess(["--backend", backend, *ckpt], log_path=log, timeout_s=300, cwd=ROOT)
    except ServerStartError as exc:
        raise SystemExit(str(exc)) from exc


def _stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"n": len(xs), "median": statistics.median(xs), "mean": statistics.fmean(xs), "min": xs[0], "max": xs[-1]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=None, help="HOST:PORT of a running server (default: start one)")
    p.add_argument("--backend", default="onnxruntime", help="backend of the started server (default: %(default)s)")
    p.add_argument("--checkpoint", default=None, help="model folder of the started server (default: shipped)")
    p.add_argument("--repeats", type=int, default=8, help="requests per client (default: %(default)s)")
    p.add_argument("--duration", type=float, default=4.0, help="motion seconds (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=0, help="masked-AR iterations, 0 = server default")
    p.add_argument("--ode-steps", type=int, default=0, help="ODE steps, 0 = server default")
    p.add_argument("--guidance", choices=("on", "off"), default="off", help="recognizer guidance (default: %(default)s)")
    p.add_argument("--text", default="a person walks forward and waves with the right hand")
    p.add_argument("--out", default="bench_out/engine_client.json", help="JSON output (default: %(default)s)")
    a = p.parse_args(argv)

    if not BENCH_EXE.exists() or not any(LIB.glob("coamd_native*.so")):
        raise SystemExit("the native client is not built; run `make native`")
    sys.path.insert(0, str(LIB))
    import coamd_native as cn

    from coamd.client import MotionClient

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    server = None if a.server else Server(a.backend, out.with_suffix(".server.log"), a.checkpoint)
    target = a.server or server.target
    try:
        guidance = a.guidance == "on"
        settings = dict(duration_s=a.duration, iterations=a.iterations, ode_steps=a.ode_steps)
        native = cn.Client(target, connect_timeout_s=60.0)
        py = MotionClient(target)
        py.wait_ready(60.0)

        def run_native(seed: int) -> dict:
            t0 = time.perf_counter()
            s = native.generate(a.text, seed=seed, guidance=cn.GUIDANCE_ON if guidance else cn.GUIDANCE_OFF, **settings)
            if not s.wait(600.0) or s.error():
                raise SystemExit(f"native stream failed: {s.error()}")
            info = s.info()
            return {"ttff_ms": info["client_ttff_ms"], "total_ms": (time.perf_counter() - t0) * 1e3,
                    "server_ttff_ms": info["server_ttff_ms"], "frames": info["total_frames"]}

        def run_python(seed: int) -> dict:
            r = py.generate(a.text, seed=seed, guidance=guidance, **settings)
            return {"ttff_ms": r.ttff_s * 1e3, "total_ms": r.total_s * 1e3,
                    "server_ttff_ms": r.summary["time_to_first_frame_ms"], "frames": len(r.joints)}

        run_native(1000)  # warm-up of both paths (first-call costs on the server and the channels)
        run_python(1000)
        rows = {"cpp": [], "python": []}
        for i in range(a.repeats):
            order = (("cpp", run_native), ("python", run_python))
            for name, fn in (order if i % 2 == 0 else order[::-1]):
                rows[name].append(fn(i))
                print(f"  {name:6s} seed {i}: ttff {rows[name][-1]['ttff_ms']:8.1f} ms  "
                      f"total {rows[name][-1]['total_ms']:8.1f} ms", flush=True)

        proc = subprocess.run([str(BENCH_EXE), target, "--text", a.text, "--duration", str(a.duration),
                               "--iterations", str(a.iterations), "--ode-steps", str(a.ode_steps)],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"coamd_bench_sample failed: {proc.stderr}")
        sample = json.loads(proc.stdout)
    finally:
        if server:
            server.stop()

    ttff = {k: _stats([r["ttff_ms"] for r in v]) for k, v in rows.items()}
    # What the client adds on top of the server's own time to first frame (which varies with the
    # machine's load from request to request): client-measured minus server-measured.
    overhead = {k: _stats([r["ttff_ms"] - r["server_ttff_ms"] for r in v]) for k, v in rows.items()}
    total = {k: _stats([r["total_ms"] for r in v]) for k, v in rows.items()}
    result = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform()},
        "settings": {"text": a.text, "guidance": a.guidance, "repeats": a.repeats, "backend": a.backend if server else "external",
                     **settings},
        "time_to_first_frame_ms": ttff,
        "total_ms": total,
        "ttff_ratio_cpp_over_python": ttff["cpp"]["median"] / ttff["python"]["median"],
        "client_overhead_ms": overhead,
        "client_overhead_ratio_cpp_over_python": overhead["cpp"]["median"] / overhead["python"]["median"],
        "sample_us_per_call": sample,
        "runs": rows,
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"\nmachine: {result['machine']['cpu']} ({result['machine']['cores']} cores)")
    print(f"{'client':8s} {'ttff median ms':>15s} {'client part ms':>15s} {'total median ms':>16s}")
    for k in ("cpp", "python"):
        print(f"{k:8s} {ttff[k]['median']:15.1f} {overhead[k]['median']:15.2f} {total[k]['median']:16.1f}")
    print(f"ttff ratio C++ / Python (medians): {result['ttff_ratio_cpp_over_python']:.3f}; "
          f"client part (ttff - server ttff) ratio: {result['client_overhead_ratio_cpp_over_python']:.3f}")
    s = sample
    print(f"sample() per call: {s['after_end']['mean_us']:.3f} us mean, {s['after_end']['p50_us']:.3f} us p50 "
          f"(after the end, {s['frames']} frames); {s['while_receiving']['p50_us']:.3f} us p50 while receiving")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
