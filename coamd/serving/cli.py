"""``coamd deploy``: run the motion service on a Ray cluster (Ray Serve), in front of one gRPC door.

    ray start --head --num-cpus 4                         # or join an existing cluster
    coamd deploy --address auto --config deploy/ray/serve.yaml --port 50051
    coamd request "a person walks" --server HOST:50051 --out walk.npz

Connects to the cluster as a Ray driver, deploys the ``coamd`` Serve application
(:mod:`coamd.serving.app`: a ``FrontDoor`` deployment and the autoscaled ``MotionReplica``
deployment), waits until the front door serves, prints its address (and writes it to
``--ready-file``), then stays in the foreground: SIGTERM or Ctrl-C deletes the application
gracefully (the front door refuses new calls and gives streams in flight ``--grace`` seconds;
every replica drains) and exits. ``--detach`` leaves the application running instead;
``--stop`` deletes a running one.

Values come from ``--config`` (a Serve config file, the ``coamd`` application's ``args`` and
``deployments``), then from the options given here. Every option is checked before connecting.
"""
from __future__ import annotations

import argparse
import copy
import logging
import signal
import threading
import time
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "ray" / "serve.yaml"


def _cli():
    import coamd.cli_checks as cli   # the shared argument checks and CLIError

    return cli


def load_config(path: str | Path, name: str = "coamd") -> dict:
    """The application ``name`` of a Serve config file as build arguments:
    ``{"front_door": ..., "replica": ..., "deployments": {name: options}, "runtime_env": ...}``.
    Raises ValueError naming the problem."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--config {p} does not exist")
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"--config {p} is not valid YAML: {' '.join(str(exc).split())}") from exc
    apps = doc.get("applications") if isinstance(doc, dict) else None
    if not isinstance(apps, list):
        raise ValueError(f"--config {p} has no 'applications' list (a Ray Serve config file is expected)")
    app = next((a for a in apps if isinstance(a, dict) and a.get("name") == name), None)
    if app is None:
        raise ValueError(f"--config {p} has no application named {name!r}")
    if app.get("import_path", "coamd.serving.app:build_app") != "coamd.serving.app:build_app":
        raise ValueError(f"--config {p}: application {name!r} does not import coamd.serving.app:build_app")
    out = copy.deepcopy(app.get("args") or {})
    deps = out.setdefault("deployments", {})
    for d in app.get("deployments") or []:
        opts = {k: v for k, v in dict(d).items() if k != "name"}
        deps.setdefault(d["name"], {}).update(opts)
    if app.get("runtime_env"):
        out["runtime_env"] = app["runtime_env"]
    return out


def _with_runtime_env(args: dict) -> dict:
    """An application-level ``runtime_env`` goes to every deployment's ``ray_actor_options``
    (``serve run CONFIG`` does the same)."""
    env = args.pop("runtime_env", None)
    if env:
        from coamd.serving.app import FRONT_DOOR_DEPLOYMENT, FRONT_DOOR_OPTIONS, REPLICA_DEPLOYMENT, REPLICA_OPTIONS

        for name, base in ((REPLICA_DEPLOYMENT, REPLICA_OPTIONS), (FRONT_DOOR_DEPLOYMENT, FRONT_DOOR_OPTIONS)):
            dep = args.setdefault("deployments", {}).setdefault(name, {})
            rao = copy.deepcopy(dep.get("ray_actor_options") or base.get("ray_actor_options") or {})
            rao.setdefault("runtime_env", {}).update(env)
            dep["ray_actor_options"] = rao
    return args


def build_arguments(a: argparse.Namespace) -> dict:
    """Application arguments from ``--config`` and the command line (the command line wins).
    Raises the CLI's CLIError for a bad option."""
    cli = _cli()
    try:
        args = load_config(a.config, a.name) if a.config else {}
    except ValueError as exc:
        raise cli.CLIError(str(exc)) from exc
    front = args.setdefault("front_door", {})
    replica = args.setdefault("replica", {})
    deps = args.setdefault("deployments", {})
    front["app_name"] = a.name
    if a.host is not None:
        cli._check_host(a.host)
        front["host"] = a.host
    if a.port is not None:
        front["port"] = a.port
    if a.token is not None and a.token_file:
        raise cli.CLIError("give --token or --token-file, not both")
    if a.token is not None:
        if not a.token.strip():
            raise cli.CLIError("--token is empty")
        for k in ("token_file", "token_env"):
            front.pop(k, None)
        front["token"] = a.token
    if a.token_file:
        cli._read_token_file(a.token_file)          # exists, readable, not empty
        for k in ("token", "token_env"):
            front.pop(k, None)
        front["token_file"] = str(Path(a.token_file).resolve())
    if bool(a.tls_cert) != bool(a.tls_key):
        raise cli.CLIError("--tls-cert and --tls-key go together")
    if a.tls_cert:
        cli._check_tls(a.tls_cert, a.tls_key)
        front["tls_cert"], front["tls_key"] = str(Path(a.tls_cert).resolve()), str(Path(a.tls_key).resolve())
    if a.grace is not None:
        front["grace_s"] = replica["grace_s"] = a.grace
    for opt, key in (("backend", "backend"), ("max_batch", "max_batch"), ("max_queue", "max_queue"),
                     ("threads", "threads")):
        if getattr(a, opt) is not None:
            replica[key] = getattr(a, opt)
    if a.checkpoint:
        if not Path(a.checkpoint).is_dir():
            raise cli.CLIError(f"--checkpoint {a.checkpoint} is not a folder")
        replica["checkpoint"] = str(Path(a.checkpoint).resolve())
    if a.no_guidance:
        replica["guidance"] = False
    if a.fault_injection:
        replica["fault_injection"] = True
    rep = deps.setdefault("MotionReplica", {})
    if a.replicas is not None:
        if a.replicas < 1 or a.min_replicas is not None or a.max_replicas is not None:
            raise cli.CLIError("--replicas N (N >= 1) fixes the replica count; it excludes --min/--max-replicas")
        rep["num_replicas"] = a.replicas
        rep["autoscaling_config"] = None
    elif a.min_replicas is not None or a.max_replicas is not None or a.target_ongoing is not None:
        from coamd.serving.app import REPLICA_OPTIONS

        auto = dict(rep.get("autoscaling_config") or REPLICA_OPTIONS["autoscaling_config"])
        if a.min_replicas is not None:
            auto["min_replicas"] = a.min_replicas
        if a.max_replicas is not None:
            auto["max_replicas"] = a.max_replicas
        if a.target_ongoing is not None:
            auto["target_ongoing_requests"] = a.target_ongoing
        if not 0 <= auto["min_replicas"] <= auto["max_replicas"] or auto["max_replicas"] < 1:
            raise cli.CLIError(f"need 0 <= --min-replicas <= --max-replicas and --max-replicas >= 1, got "
                               f"{auto['min_replicas']} and {auto['max_replicas']}")
        rep["autoscaling_config"] = auto
        rep.pop("num_replicas", None)
    if a.replica_cpus is not None:
        from coamd.serving.app import REPLICA_OPTIONS

        if a.replica_cpus < 0:
            raise cli.CLIError("--replica-cpus must be >= 0")
        rao = dict(rep.get("ray_actor_options") or REPLICA_OPTIONS["ray_actor_options"])
        rao["num_cpus"] = a.replica_cpus
        rep["ray_actor_options"] = rao
    args = _with_runtime_env(args)
    try:   # every option of the application, checked before connecting
        from coamd.serving.app import build_app

        build_app(copy.deepcopy(args))
    except (ValueError, TypeError) as exc:
        raise cli.CLIError(f"bad deployment settings: {exc}") from exc
    return args


def _reachable(address: str, timeout_s: float = 5.0) -> str | None:
    """For a ``HOST:PORT`` address: None when a TCP connection opens, else the reason (Ray itself
    keeps retrying an unreachable GCS for minutes). Other forms (``auto``, ``ray://``) are not checked."""
    import socket

    if address == "auto" or "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except ValueError:
        return f"port {port!r} is not a number"
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def _connect(address: str):
    import ray

    cli = _cli()
    why = _reachable(address)
    if why is not None:
        raise cli.CLIError(f"cannot connect to the Ray cluster at {address}: {why} "
                           "(start one with `ray start --head`, or give --address HEAD_IP:PORT)", status=1)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=True)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ...
        raise cli.CLIError(f"cannot connect to the Ray cluster at {address}: {' '.join(str(exc).split())[:300]}",
                           status=1) from exc


def _stop(name: str, quiet: bool = False) -> float:
    """Delete application ``name`` (graceful: Serve drains it); shut Serve down when nothing else
    runs. Returns the seconds it took."""
    from ray import serve

    t = time.monotonic()
    serve.delete(name)
    try:
        if not serve.status().applications:
            serve.shutdown()
    except Exception:  # noqa: BLE001 - Serve already gone
        pass
    return time.monotonic() - t


def run_deploy(a: argparse.Namespace) -> None:
    cli = _cli()
    if a.stop:
        _connect(a.address)
        dt = _stop(a.name)
        print(f"coamd deploy: application {a.name} deleted in {dt:.1f} s", flush=True)
        return
    args = build_arguments(a)
    if a.ready_file:
        cli._check_outputs(("--ready-file", a.ready_file))
    _connect(a.address)
    from ray import serve

    from coamd.serving.app import build_app

    t0 = time.monotonic()
    serve.start(proxy_location="Disabled")
    try:
        handle = serve.run(build_app(args), name=a.name, route_prefix=None)
        address = handle.address.remote().result(timeout_s=60)
        deadline = time.monotonic() + a.timeout
        while not handle.refresh_health.remote().result(timeout_s=60)["running"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no replica was running after {a.timeout:g} s")
            time.sleep(0.2)
    except Exception as exc:  # noqa: BLE001 - a failed deploy is one line, and nothing is left running
        try:
            _stop(a.name)
        except Exception:  # noqa: BLE001
            pass
        raise cli.CLIError(f"deploy failed: {' '.join(str(exc).split())[:500]}", status=1) from exc
    info = handle.replicas.remote().result()
    front = args.get("front_door", {})
    print(f"coamd deploy: front door at {address} ({'TLS' if front.get('tls_cert') else 'plaintext'}, "
          f"{'bearer token' if any(front.get(k) for k in ('token', 'token_file', 'token_env')) else 'no auth'}); "
          f"{len(info['running'])} replica(s) running ({', '.join(info['running'])}); "
          f"ready in {time.monotonic() - t0:.1f} s", flush=True)
    if a.ready_file:
        Path(a.ready_file).write_text(f"{address}\n")
    if a.detach:
        print(f"coamd deploy: detached; stop with `coamd deploy --address {a.address} --stop`", flush=True)
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    print(f"coamd deploy: stopping {a.name} (graceful drain)", flush=True)
    dt = _stop(a.name)
    print(f"coamd deploy: stopped after {dt:.1f} s", flush=True)


def add_deploy(sub) -> None:
    """Register ``coamd deploy`` on the ``coamd`` subcommand parser ``sub``."""
    cli = _cli()
    p = sub.add_parser("deploy", help="serve on a Ray cluster: replicas behind one gRPC front door (Ray Serve)",
                       description="Deploy the motion service on a Ray cluster (Ray Serve): autoscaled model "
                       "replicas, each with its continuous-batching worker, behind one gRPC front door with the "
                       "coamd.v1.MotionService contract (health per replica, reflection, TLS, bearer token). "
                       "Stays in the foreground; SIGTERM/Ctrl-C drains and deletes it. Needs the optional extra "
                       "`ray` (pip install 'coamd[ray]').",
                       epilog="See docs/scaling.md (capacity plan, KubeRay).")
    p.add_argument("--address", default="auto",
                   help="Ray cluster: 'auto' (the cluster this machine joined) or HEAD_IP:PORT (default: %(default)s)")
    p.add_argument("--config", default=None,
                   help=f"Ray Serve config file with a 'coamd' application (e.g. {DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parents[2])})")
    p.add_argument("--name", default="coamd", help="Serve application name (default: %(default)s)")
    p.add_argument("--host", default=None, help="front door address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=cli._port, default=None, help="front door port (0 = any free port; default 50051)")
    p.add_argument("--token", default=None, help="require 'authorization: Bearer TOKEN' metadata")
    p.add_argument("--token-file", default=None, help="read the bearer token from this file (on the front door's node)")
    p.add_argument("--tls-cert", default=None, help="PEM certificate chain (turns TLS on, with --tls-key)")
    p.add_argument("--tls-key", default=None, help="PEM private key")
    p.add_argument("--backend", default=None, choices=("onnxruntime", "torch", "tensorrt"),
                   help="replica inference backend (default onnxruntime)")
    p.add_argument("--checkpoint", default=None, help="model folder on every node (default: the shipped one)")
    p.add_argument("--no-guidance", action="store_true", help="replicas without the guidance sidecar (no torch)")
    p.add_argument("--max-batch", type=int, default=None, help="per-replica batch size (default 8)")
    p.add_argument("--max-queue", type=int, default=None, help="per-replica waiting requests (default 32)")
    p.add_argument("--threads", type=int, default=None, help="per-replica model threads (0 = coamd serve's default)")
    p.add_argument("--replicas", type=int, default=None, help="a fixed number of replicas (autoscaling off)")
    p.add_argument("--min-replicas", type=int, default=None, help="autoscaling lower bound (default 1)")
    p.add_argument("--max-replicas", type=int, default=None, help="autoscaling upper bound (default 4)")
    p.add_argument("--target-ongoing", type=float, default=None,
                   help="autoscaling target: streams queued and running per replica (default 4)")
    p.add_argument("--replica-cpus", type=float, default=None, help="CPUs Ray reserves per replica (default 2)")
    p.add_argument("--grace", type=float, default=None, help="seconds streams in flight get when stopping (default 30)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the first running replica")
    p.add_argument("--ready-file", default=None, help="write HOST:PORT of the front door here once it serves")
    p.add_argument("--detach", action="store_true", help="deploy, print the address and exit (the application keeps running)")
    p.add_argument("--stop", action="store_true", help="delete the running application (graceful drain) and exit")
    p.add_argument("--fault-injection", action="store_true", help="testing only (as coamd serve --fault-injection)")
    p.set_defaults(func=_cmd_deploy)


def _cmd_deploy(a: argparse.Namespace) -> None:
    cli = _cli()
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError as exc:
        raise cli.CLIError("coamd deploy needs Ray Serve: pip install 'coamd[ray]' (or make setup-ray)",
                           status=1) from exc
    run_deploy(a)
