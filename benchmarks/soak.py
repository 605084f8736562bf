"""Soak test of `coamd serve` as a hostile client population: counts by status and server RSS over
thousands of requests, plus an overload phase.

Each pass of ``--pass-size`` requests mixes, shared among ``--clients`` concurrent threads:

- ``fuzz``: bytes that are not a valid request (random bytes, bit-flipped valid requests) and valid
  encodings of hostile field values (:func:`fuzz_cases`);
- ``generate``: short valid requests streamed to the end (1 s, unguided, 2 iterations);
- ``cancel``: a long request cancelled before or after its first frames;
- ``deadline``: a long request with a 1-50 ms deadline.

After every pass the server's resident memory (``/proc/PID/status`` VmRSS) is sampled. Then the
overload phase: ``--overload-clients`` clients each send default-setting requests back to back
for ``--overload-s`` seconds against ``--max-queue``; it reports how many were accepted, p50/p99
time to first frame of the accepted ones (client side) and how fast refusals came back.

    .venv/bin/python -m benchmarks.soak --requests 10000 --out benchmarks/results/soak

Writes OUT.json and OUT.md. A run passes when no request ended UNKNOWN, INTERNAL or UNAVAILABLE,
the log holds no traceback, RSS growth after the first pass stays under 50 MB, and accepted
overload requests had a median time to first frame within the server's wait bound (``--max-wait``,
an expected wait, so single requests may exceed it) plus 0.5 s.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import platform
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

from coamd.client.process import ServerProcess  # noqa: E402
from coamd.api import pb, pb_grpc  # noqa: E402
from benchmarks.hardware import cpu_model  # noqa: E402

GENERATE = "/coamd.v1.MotionService/Generate"
RECOGNIZE = "/coamd.v1.MotionService/Recognize"
BROKEN = {"UNKNOWN", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNIMPLEMENTED"}


def fuzz_cases(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``n`` hostile (method, request bytes) pairs, deterministic for ``seed``: a third random
    bytes, a third bit-flipped valid requests, a third valid encodings of out-of-range or
    meaningless field values (empty, control-character and over-long texts, NaN/inf/negative
    numbers, unknown enum values), 20 % of those sent to Recognize."""
    rng = random.Random(seed)
    valid = pb.GenerateRequest(text="a person walks forward", duration_s=1.0, seed=3, guidance=pb.GUIDANCE_OFF,
                               iterations=2, ode_steps=2).SerializeToString()
    weird = ["\x00", "\x00" * 512, "\ufeff", "a" * 600, "\u200b\u200b", "\U0001f483 dance", "", " ",
             "a person\x1b walks", "un homme marche", "walk\x7f"]
    cases = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            cases.append((GENERATE, bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))))
        elif kind == 1:
            b = bytearray(valid)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            cases.append((GENERATE, bytes(b)))
        else:
            req = pb.GenerateRequest(
                text=rng.choice(weird), duration_s=rng.choice([-1.0, 0.0, 0.4, 1.0, 13.0, float("nan"), float("inf")]),
                seed=rng.randint(0, 2**64 - 1), guidance=rng.randint(0, 5),
                cfg_scale=rng.choice([0.0, -1.0, 3.0, 1e9, float("nan")]), iterations=rng.choice([0, 1, 2, 65, 10**6]),
                ode_steps=rng.choice([0, 1, 2, 3, 65]), order=rng.randint(0, 4), solver=rng.randint(0, 4),
                coordinates=rng.randint(0, 4), temperature=rng.choice([0.0, 0.5, 3.0, -1.0]))
            cases.append((GENERATE if rng.random() < 0.8 else RECOGNIZE, req.SerializeToString()))
    return cases


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _code(fn) -> str:
    try:
        fn()
        return "OK"
    except grpc.RpcError as exc:
        return exc.code().name


class Soak:
    def __init__(self, target: str, seed: int):
        self.ch = grpc.insecure_channel(target)
        self.stub = pb_grpc.MotionServiceStub(self.ch)
        self.raw_gen = self.ch.unary_stream(GENERATE, request_serializer=None, response_deserializer=None)
        self.raw_rec = self.ch.unary_unary(RECOGNIZE, request_serializer=None, response_deserializer=None)
        self.seed = seed
        self.long = pb.GenerateRequest(text="a person walks in a circle", duration_s=8.0, guidance=pb.GUIDANCE_OFF,
                                       iterations=16, ode_steps=4, order=pb.TOKEN_ORDER_LEFT_TO_RIGHT)
        self.short = pb.GenerateRequest(text="a person waves", duration_s=1.0, guidance=pb.GUIDANCE_OFF,
                                        iterations=2, ode_steps=2)

    def run(self, kind: str, i: int, case=None) -> str:
        if kind == "fuzz":
            method, data = case
            if method == GENERATE:
                return _code(lambda: list(self.raw_gen(data, timeout=10)))
            return _code(lambda: self.raw_rec(data, timeout=10))
        if kind == "generate":
            return _code(lambda: list(self.stub.Generate(self.short, timeout=30)))
        if kind == "cancel":
            stream = self.stub.Generate(self.long, timeout=30)
            try:
                if i % 2:
                    next(stream)
            except grpc.RpcError as exc:
                return exc.code().name
            stream.cancel()
            return _code(lambda: list(stream))
        if kind == "deadline":
            return _code(lambda: list(self.stub.Generate(self.long, timeout=0.001 + 0.002 * (i % 25))))
        raise ValueError(kind)


def soak_pass(soak: Soak, n: int, clients: int, seed: int) -> dict:
    rng = random.Random(seed)
    kinds = rng.choices(["fuzz", "generate", "cancel", "deadline"], weights=[40, 30, 15, 15], k=n)
    fuzz = iter(fuzz_cases(kinds.count("fuzz"), seed))
    jobs = [(k, i, next(fuzz) if k == "fuzz" else None) for i, k in enumerate(kinds)]
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for (k, _, _), code in zip(jobs, pool.map(lambda j: soak.run(*j), jobs)):
            counts[k][code] += 1
    return {k: dict(v) for k, v in counts.items()}


def overload(target: str, clients: int, seconds: float) -> dict:
    """``clients`` threads sending default-setting 4 s requests back to back for ``seconds``."""
    stop = time.monotonic() + seconds
    ttff, refused_ms, codes = [], [], collections.Counter()
    lock = threading.Lock()
    req = pb.GenerateRequest(text="a person walks forward", duration_s=4.0)

    def client(_):
        with grpc.insecure_channel(target) as ch:
            stub = pb_grpc.MotionServiceStub(ch)
            while time.monotonic() < stop:
                t0 = time.monotonic()
                first = None
                try:
                    for resp in stub.Generate(req, timeout=60):
                        if first is None and len(resp.frames):
                            first = time.monotonic() - t0
                    code = "OK"
                except grpc.RpcError as exc:
                    code = exc.code().name
                with lock:
                    codes[code] += 1
                    if first is not None:
                        ttff.append(first)
                    elif code == "RESOURCE_EXHAUSTED":
                        refused_ms.append(1000 * (time.monotonic() - t0))
                if code == "RESOURCE_EXHAUSTED":
                    time.sleep(0.2)     # a polite client backs off a little before retrying

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    t = np.asarray(ttff) if ttff else np.zeros(1)
    r = np.asarray(refused_ms) if refused_ms else np.zeros(1)
    return {"clients": clients, "seconds": seconds, "codes": dict(codes), "accepted_with_frames": len(ttff),
            "ttff_p50_s": float(np.percentile(t, 50)), "ttff_p99_s": float(np.percentile(t, 99)),
            "ttff_max_s": float(t.max()), "refusal_p50_ms": float(np.percentile(r, 50)),
            "refusal_p99_ms": float(np.percentile(r, 99))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=10000, help="hostile-mix requests in all (default %(default)s)")
    p.add_argument("--pass-size", type=int, default=1000, help="requests between RSS samples (default %(default)s)")
    p.add_argument("--clients", type=int, default=16, help="concurrent client threads (default %(default)s)")
    p.add_argument("--overload-clients", type=int, default=64, help="clients of the overload phase (default %(default)s)")
    p.add_argument("--overload-s", type=float, default=30.0, help="length of the overload phase (default %(default)s)")
    p.add_argument("--max-queue", type=int, default=32, help="the server's --max-queue (default %(default)s)")
    p.add_argument("--max-wait", type=float, default=2.0, help="the server's --max-wait (default %(default)s)")
    p.add_argument("--backend", default="onnxruntime", help="server backend (default %(default)s)")
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped weights)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/soak", help="output prefix for .json and .md")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.with_suffix(".server.log")
    args = ["--backend", a.backend, "--max-queue", str(a.max_queue), "--max-wait", str(a.max_wait), "--grace", "2"]
    if a.checkpoint:
        args += ["--checkpoint", a.checkpoint]
    t_start = time.monotonic()
    srv = ServerProcess(args, log_path=log_path, timeout_s=600)
    passes, totals = [], collections.defaultdict(collections.Counter)
    try:
        soak = Soak(srv.target, a.seed)
        rss0 = rss_mb(srv.proc.pid)
        done = 0
        from tqdm import tqdm

        with tqdm(total=a.requests, unit="req", desc="soak") as bar:
            while done < a.requests:
                n = min(a.pass_size, a.requests - done)
                t = time.monotonic()
                counts = soak_pass(soak, n, a.clients, a.seed + len(passes))
                for k, c in counts.items():
                    totals[k].update(c)
                passes.append({"requests": n, "seconds": time.monotonic() - t, "rss_mb": rss_mb(srv.proc.pid),
                               "counts": counts})
                done += n
                bar.update(n)
                bar.set_postfix(rss_mb=f"{passes[-1]['rss_mb']:.0f}")
        over = overload(srv.target, a.overload_clients, a.overload_s)
        rss_end = rss_mb(srv.proc.pid)
    finally:
        rc = srv.stop()
    log = log_path.read_text()
    broken = {k: {c: n for c, n in v.items() if c in BROKEN} for k, v in totals.items()}
    broken = {k: v for k, v in broken.items() if v}
    growth = passes[-1]["rss_mb"] - passes[0]["rss_mb"] if passes else 0.0
    result = {
        "machine": {"cpu": cpu_model(), "python": platform.python_version()},
        "backend": a.backend, "requests": a.requests, "clients": a.clients, "max_queue": a.max_queue,
        "max_wait_s": a.max_wait,
        "totals": {k: dict(v) for k, v in totals.items()}, "broken_statuses": broken,
        "rss_mb": {"after_start": rss0, "passes": [x["rss_mb"] for x in passes], "end": rss_end,
                   "growth_after_first_pass": growth},
        "log": {"bytes": len(log), "lines": log.count("\n"), "tracebacks": log.count("Traceback")},
        "overload": over, "server_exit_code": rc, "wall_s": time.monotonic() - t_start,
        "passes": passes,
    }
    result["passed"] = (not broken and result["log"]["tracebacks"] == 0 and growth < 50 and rc == 0
                        and over["ttff_p50_s"] <= a.max_wait + 0.5)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0 if result["passed"] else 1



def markdown(r: dict) -> str:
    codes = sorted({c for v in r["totals"].values() for c in v})
    lines = [f"# Soak test: {r['requests']} hostile-mix requests, {r['clients']} clients ({r['backend']})", "",
             f"Machine: {r['machine']['cpu']}; wall {r['wall_s']:.0f} s; passed: **{r['passed']}**", "",
             "| kind | " + " | ".join(codes) + " |", "|---|" + "---|" * len(codes)]
    for k, v in sorted(r["totals"].items()):
        lines.append(f"| {k} | " + " | ".join(str(v.get(c, 0)) for c in codes) + " |")
    rss = r["rss_mb"]
    o = r["overload"]
    lines += ["", f"Server RSS: {rss['after_start']:.0f} MB after start, "
              + ", ".join(f"{x:.0f}" for x in rss["passes"]) + f" MB after each pass, {rss['end']:.0f} MB at the end "
              f"(growth after the first pass: {rss['growth_after_first_pass']:+.1f} MB).",
              f"Server log: {r['log']['lines']} lines, {r['log']['bytes']} bytes, {r['log']['tracebacks']} tracebacks; "
              f"exit code {r['server_exit_code']}.", "",
              f"Overload: {o['clients']} clients (in the same process, on the same cores) for {o['seconds']:.0f} s "
              f"against max_queue {r['max_queue']} and max_wait {r['max_wait_s']:g} s, default settings (guided, 4 s): "
              f"{o['codes']}; accepted requests' time to first frame p50 {o['ttff_p50_s']:.2f} s, "
              f"p99 {o['ttff_p99_s']:.2f} s, max {o['ttff_max_s']:.2f} s; refusals answered in "
              f"p50 {o['refusal_p50_ms']:.0f} ms, p99 {o['refusal_p99_ms']:.0f} ms.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
