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

``--ray`` measures the cost of serving through Ray Serve (``coamd deploy``, coamd/serving/)
against direct serving (``coamd serve``, batching on) on a local Ray cluster started here (a head
and a second node, ``--ray-node-cpus``): our gRPC front door calling deployment handles with 1 and
2 replicas (``--ray-replicas``), and Ray Serve's own gRPC proxy in front of the same replicas
(``--ray-proxy``). Modes are interleaved within each repeat. Reported: added p50 time to first
frame and throughput relative to direct serving, per-replica throughput, and the CPU the idle
Ray cluster uses. Targets (issue 16): added p50 TTFF <= 10 ms, throughput >= 90 % of direct with
one replica.

    .venv/bin/python benchmarks/load.py --ray --clients 1 8 --requests 32 --repeats 5 --out bench_out/ray
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
from benchmarks.hardware import cpu_model  # noqa: E402

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
    if getattr(args, "no_guidance_server", False):
        cmd.append("--no-guidance")
    return ServerProcess(cmd, log_path=log_dir / f"server-{int(batching)}.log", timeout_s=300)


async def run_load(target: str, clients: int, requests: int, args, metadata: tuple = ()) -> dict:
    """``requests`` generations shared by ``clients`` concurrent streaming clients (``metadata``:
    extra call metadata, e.g. the application name Ray Serve's gRPC proxy routes by)."""
    counter = iter(range(requests))
    ttff, total, frames, errors, batches = [], [], 0, [], []

    async def worker(w: int):
        nonlocal frames
        c = AsyncMotionClient(target, token=args.token)
        if metadata:
            c.metadata = tuple(c.metadata or ()) + tuple(metadata)
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
                    errors.append(f"{type(exc).__name__}: {exc.details() if hasattr(exc, 'details') else exc}")
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


# ----------------------------------------------------------------------------- --ray
def _warm_up(target: str, args, n: int, metadata: tuple = ()) -> None:
    """``n`` concurrent requests (first calls pay one-off costs on every replica)."""
    async def go():
        cs = [AsyncMotionClient(target, token=args.token) for _ in range(n)]
        for c in cs:
            c.metadata = tuple(c.metadata or ()) + tuple(metadata) or None
        try:
            await asyncio.gather(*(c.generate(PROMPTS[i % len(PROMPTS)], duration_s=args.duration,
                                              guidance=args.guidance, iterations=args.iterations,
                                              ode_steps=args.ode_steps, timeout=args.timeout)
                                   for i, c in enumerate(cs)))
        finally:
            await asyncio.gather(*(c.close() for c in cs))
    asyncio.run(go())


def _cpu_seconds(pids) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            f = stat[stat.rindex(")") + 2:].split()
            total += (int(f[11]) + int(f[12])) / tick
        except (OSError, ValueError, IndexError):
            pass
    return total


def _cpu_groups(cluster, direct_pid: int, app: str | None) -> dict[str, list[int]]:
    """Processes by role: the model (replicas of ``app``, or the direct server), the gRPC entry
    (our front door, or Serve's proxy), and the rest of the cluster."""
    groups: dict[str, list[int]] = {"model": [], "entry": [], "ray_other": []}
    if app is None:
        groups["model"].append(direct_pid)
    for pid, cmd in cluster.processes():
        title = cmd.split(" ")[0]
        if app is not None and title == f"ray::ServeReplica:{app}:MotionReplica":
            groups["model"].append(pid)
        elif (app == "coamd" and title == "ray::ServeReplica:coamd:FrontDoor") or \
                (app == "coamd-proxy" and title.startswith("ray::ProxyActor")):
            groups["entry"].append(pid)
        else:
            groups["ray_other"].append(pid)
    return groups


def run_ray(args, log_dir: Path) -> tuple[list[dict], dict]:
    """Direct serving vs Ray Serve: our front door with each of ``--ray-replicas`` and Ray Serve's
    gRPC proxy in front of one replica of its own, all deployed at once on one local cluster and
    measured interleaved in every repeat. Returns (records, extra facts)."""
    import ray  # noqa: F401
    from ray import serve

    from coamd.serving.app import SERVICER_FUNCTION, build_app
    from coamd.serving.local_cluster import LocalRayCluster, free_port
    from coamd.serving.status import replica_table

    args.no_guidance_server = not args.guidance
    replica = {"backend": args.backend, "guidance": bool(args.guidance), "max_batch": args.max_batch,
               "max_queue": 64, "threads": args.threads}
    if args.checkpoint:
        replica["checkpoint"] = str(Path(args.checkpoint).resolve())
    grpc_port = free_port()
    proxy_md = (("application", "coamd-proxy"),)

    def deploy(name: str, n: int, ingress: str):
        deps = {"MotionReplica": {"num_replicas": n, "autoscaling_config": None,
                                  "ray_actor_options": {"num_cpus": args.ray_replica_cpus}}}
        handle = serve.run(build_app({"replica": replica, "front_door": {"port": 0, "app_name": name},
                                      "ingress": ingress, "deployments": deps}),
                           name=name, route_prefix="/" if ingress == "proxy" else None)
        deadline = time.monotonic() + 120
        while True:
            rows = replica_table(name)
            if len(rows) == n and all(r["state"] == "RUNNING" for r in rows):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} replicas of {name} did not come up: {rows}")
            time.sleep(0.2)
        if ingress == "proxy":
            return f"127.0.0.1:{grpc_port}"
        address = handle.address.remote().result(timeout_s=60)
        deadline = time.monotonic() + 30
        while len(handle.refresh_health.remote().result(timeout_s=30)["running"]) != n:
            if time.monotonic() > deadline:
                raise RuntimeError("the front door does not see every replica")
            time.sleep(0.2)
        return address

    direct = start_server(args, True, log_dir)
    cluster = LocalRayCluster(cpus=tuple(args.ray_node_cpus))
    runs: dict[tuple, list[dict]] = {}
    extra: dict = {}
    left: list = []
    try:
        cluster.start()
        extra["cluster_start_s"] = round(cluster.start_s, 1)
        cluster.connect()
        if args.ray_proxy:
            serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": free_port()},
                        grpc_options={"port": grpc_port, "grpc_servicer_functions": [SERVICER_FUNCTION]})
        else:
            serve.start(proxy_location="Disabled")
        counts = list(args.ray_replicas)
        current = counts[0]
        door = deploy("coamd", current, "front_door")
        proxy = deploy("coamd-proxy", 1, "proxy") if args.ray_proxy else None
        pids = [p for p, _ in cluster.processes()]    # the idle cluster's own CPU use
        c0, t0 = _cpu_seconds(pids), time.monotonic()
        time.sleep(args.ray_idle_s)
        extra["ray_idle_cpu_percent_of_one_core"] = round(100 * (_cpu_seconds(pids) - c0) / (time.monotonic() - t0), 1)
        extra["ray_processes"] = len(pids)
        _warm_up(direct.target, args, 2)
        modes = [("direct", 0)] + [("ray", n) for n in counts[:1]] + ([("ray-proxy", 1)] if proxy else []) + \
                [("ray", n) for n in counts[1:]]
        for r in range(args.repeats):
            for mode, n in modes:   # interleaved: drifting machine load hits every mode alike
                md = proxy_md if mode == "ray-proxy" else ()
                if mode == "direct":
                    target = direct.target
                elif mode == "ray-proxy":
                    target = proxy
                else:
                    if n != current:
                        door, current = deploy("coamd", n, "front_door"), n
                    target = door
                _warm_up(target, args, 2 * max(1, n), md)
                app = {"direct": None, "ray-proxy": "coamd-proxy"}.get(mode, "coamd")
                groups = _cpu_groups(cluster, direct.proc.pid, app)
                for c in args.clients:
                    before = {g: _cpu_seconds(p) for g, p in groups.items()}
                    rec = asyncio.run(run_load(target, c, max(args.requests, c), args, md))
                    rec["cpu_s"] = {g: _cpu_seconds(p) - before[g] for g, p in groups.items()}
                    runs.setdefault((mode, n, c), []).append(rec)
                    print(f"{mode} x{n}, repeat {r + 1}/{args.repeats}, {c} clients: TTFF p50 "
                          f"{rec['ttff_p50_ms']:.1f} ms, {rec['frames_per_s']:.1f} frames/s, {rec['errors']} errors",
                          flush=True)
        serve.shutdown()
    finally:
        try:
            import ray as _ray

            _ray.shutdown()
        finally:
            left = cluster.stop()
            direct.stop()
    extra["processes_left_behind"] = len(left)
    records = []
    for (mode, n, c), rs in runs.items():
        rec = merge(rs)
        rec.update(mode=mode, replicas=n, batching="on")
        frames = sum(r["frames"] for r in rs)
        # CPU milliseconds per 1000 frames delivered, by role, over every repeat of this row
        rec["cpu_ms_per_1000_frames"] = {g: 1e6 * sum(r["cpu_s"][g] for r in rs) / max(1, frames)
                                         for g in rs[0]["cpu_s"]}
        records.append(rec)
    return records, extra



def ray_markdown(records: list[dict], meta: dict, extra: dict) -> str:
    lines = [f"# Ray Serve vs direct serving ({meta['machine']})", "",
             f"Command: `{meta['command']}`", "",
             f"Requests: {meta['duration_s']} s motions, guidance {'on' if meta['guidance'] else 'off'}, "
             f"iterations {meta['iterations'] or 'default'}, backend {meta['backend']}; {meta['repeats']} repeats "
             "with the modes interleaved in each; TTFF percentiles over all requests, frames/s the median of the "
             f"repeats. Local Ray cluster: {meta['ray_nodes']} nodes with {meta['ray_node_cpus']} CPUs, "
             f"{meta['ray_replica_cpus']} CPU reserved per replica. direct = `coamd serve` on the same machine; "
             "ray = our gRPC front door (coamd deploy) calling deployment handles; ray-proxy = Ray Serve's own "
             "gRPC proxy in front of a replica of its own. Everything, the load generator and the idle cluster "
             "included, shares the same cores.", "",
             "| mode | replicas | clients | ok | errors | TTFF p50 ms | TTFF p99 ms | total p50 ms "
             "| frames/s | mean batch |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['mode']} | {r['replicas'] or '-'} | {r['clients']} | {r['ok']} | "
                     f"{r['errors']} | {r['ttff_p50_ms']:.1f} | {r['ttff_p99_ms']:.1f} | {r['total_p50_ms']:.0f} | "
                     f"{r['frames_per_s']:.1f} | {r['mean_max_batch']:.1f} |")
    lines.append("")
    direct = {r["clients"]: r for r in records if r["mode"] == "direct"}
    for r in records:
        if r["mode"] == "direct" or r["clients"] not in direct:
            continue
        d = direct[r["clients"]]
        added = r["ttff_p50_ms"] - d["ttff_p50_ms"]
        ratio = r["frames_per_s"] / d["frames_per_s"]
        check = ""
        if r["replicas"] == 1:
            if r["clients"] == 1:
                check = f" (target added TTFF <= 10 ms: {'met' if added <= 10 else 'MISSED'})"
            else:
                check = f" (target throughput >= 90 %: {'met' if ratio >= 0.9 else 'MISSED'})"
        lines.append(f"- {r['mode']} x{r['replicas']}, {r['clients']} clients: TTFF p50 {added:+.1f} ms and "
                     f"throughput {100 * ratio:.1f} % vs direct{check}")
    lines += ["", "CPU time per 1000 frames delivered (ms, all repeats; model = replicas or the direct server, "
              "entry = our front door or Serve's gRPC proxy, other = the rest of the Ray cluster):", "",
              "| mode | replicas | clients | model | entry | other Ray | total |", "|---|---|---|---|---|---|---|"]
    for r in records:
        cpu = r.get("cpu_ms_per_1000_frames")
        if cpu:
            lines.append(f"| {r['mode']} | {r['replicas'] or '-'} | {r['clients']} | {cpu['model']:.0f} | "
                         f"{cpu['entry']:.0f} | {cpu['ray_other']:.0f} | {sum(cpu.values()):.0f} |")
    lines += ["", f"Idle Ray cluster ({extra.get('ray_processes', '?')} processes, applications deployed, no "
              f"requests): {extra.get('ray_idle_cpu_percent_of_one_core', float('nan')):.1f} % of one core; "
              f"cluster start {extra.get('cluster_start_s', '?')} s; processes left after stopping it: "
              f"{extra.get('processes_left_behind', '?')}. Machine load average (1 min) before and after the "
              f"run: {extra.get('load_average_1min_before_after', '?')} (other jobs on the same 2 cores "
              "show up as load above what this benchmark puts there)."]
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
    p.add_argument("--ray", action="store_true",
                   help="measure Ray Serve (coamd deploy) against direct serving on a local Ray cluster")
    p.add_argument("--ray-replicas", type=int, nargs="+", default=[1, 2],
                   help="replica counts behind our front door (default: 1 2)")
    p.add_argument("--ray-proxy", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure Ray Serve's own gRPC proxy, one replica (default: on)")
    p.add_argument("--ray-node-cpus", type=float, nargs="+", default=[1, 1],
                   help="CPUs of each local Ray node, head first (default: 1 1)")
    p.add_argument("--ray-replica-cpus", type=float, default=0.5,
                   help="CPUs Ray reserves per replica, a scheduling quantity only (default: 0.5, so the largest "
                        "front-door replica count and the proxy's replica fit the nodes together)")
    p.add_argument("--ray-idle-s", type=float, default=10.0, help="seconds to measure the idle cluster's CPU")
    args = p.parse_args(argv)
    if args.ray:
        if args.server:
            p.error("--ray starts its own servers; it does not take --server")
        import signal

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # stop the local cluster on the way out
        log_dir = Path(tempfile.mkdtemp(prefix="coamd-load-ray-"))
        load_before = os.getloadavg()
        records, extra = run_ray(args, log_dir)
        extra["load_average_1min_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
        meta = dict(machine=f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()}; CPU inference only",
                    command="python benchmarks/load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    duration_s=args.duration, guidance=args.guidance, iterations=args.iterations,
                    backend=args.backend, repeats=args.repeats, ray_nodes=len(args.ray_node_cpus),
                    ray_node_cpus=args.ray_node_cpus, ray_replica_cpus=args.ray_replica_cpus)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps({"meta": meta, "extra": extra, "records": records}, indent=2))
        md = ray_markdown(records, meta, extra)
        out.with_suffix(".md").write_text(md)
        print(md)
        return 0

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
