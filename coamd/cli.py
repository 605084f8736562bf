"""The ``coamd`` command line. Thin: parse arguments, call the modules, report errors in one line.

Each subcommand group registers itself in its own ``_add_*`` function below.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_DATA = "../shared/data/bandai-namco"
DEFAULT_DATASET = "data/processed"


class CLIError(Exception):
    """An error to print as one line (``error: ...``) with exit status 2."""


# ----------------------------------------------------------------------------- data
def _cmd_data_build(a: argparse.Namespace) -> None:
    from coamd.data.build import DataSourceError, build_dataset

    try:
        card = build_dataset(a.source, a.out, workers=a.workers, limit=a.limit, progress=not a.quiet)
    except DataSourceError as exc:
        raise CLIError(str(exc)) from exc
    print(f"built {card['clips_read']} clips ({card['clips_skipped']} skipped), "
          f"{card['clips_with_mirrors']} with mirrors, {card['frames']} frames at {card['fps']:g} fps, "
          f"splits {card['splits']}, {card['captions']} captions in {card['build_seconds']} s -> {a.out}")


def _cmd_data_convert(a: argparse.Namespace) -> None:
    from coamd.data.build import bvh_text_to_canonical
    from coamd.data.bvh import BVHError
    from coamd.io.motion import save_motion

    src = Path(a.file)
    if not src.exists():
        raise CLIError(f"{src} does not exist")
    try:
        joints, src_fps = bvh_text_to_canonical(src.read_text(errors="replace"), src.name)
    except BVHError as exc:
        raise CLIError(str(exc)) from exc
    out = Path(a.out) if a.out else src.with_suffix(".npz")
    save_motion(out, joints, source=str(src.name))
    print(f"{src.name}: {joints.shape[0]} frames at 20 fps (from {src_fps:g} fps) -> {out}")


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="build and convert motion-capture data")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    b = dsub.add_parser("build", help="build the processed dataset from the Bandai Namco BVH files",
                        description="Parse every BVH, run forward kinematics to the 21 canonical joints, "
                        "resample to 20 fps, canonicalise, mirror, caption, split and save.")
    b.add_argument("--source", default=DEFAULT_DATA,
                   help="folder with the two .tar.xz archives or the extracted dataset folders "
                        f"(default: {DEFAULT_DATA})")
    b.add_argument("--out", default=DEFAULT_DATASET, help=f"output folder (default: {DEFAULT_DATASET})")
    b.add_argument("--workers", type=int, default=None, help="parser processes (default: CPU count)")
    b.add_argument("--limit", type=int, default=None, help="read only the first N BVH files (quick checks)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_data_build)
    c = dsub.add_parser("convert", help="one BVH file to the canonical motion file (.npz)")
    c.add_argument("file", help="input .bvh file")
    c.add_argument("--out", help="output .npz (default: next to the input)")
    c.set_defaults(func=_cmd_data_convert)


# ----------------------------------------------------------------------------- render
def _cmd_render(a: argparse.Namespace) -> None:
    from coamd.io.motion import MotionFileError, load_motion
    from coamd.io.render import render_motion

    try:
        m = load_motion(a.file)
    except (FileNotFoundError, MotionFileError) as exc:
        raise CLIError(str(exc)) from exc
    if Path(a.out).suffix.lower() not in (".gif", ".mp4"):
        raise CLIError(f"--out must end in .gif or .mp4, got {a.out}")
    t = time.perf_counter()
    render_motion(m.joints, a.out, fps=m.fps, title=a.title if a.title is not None else m.text,
                  progress=True)
    print(f"rendered {m.joints.shape[0]} frames -> {a.out} ({time.perf_counter() - t:.1f} s)")


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="stick-figure preview (.gif or .mp4) of a motion file")
    p.add_argument("file", help="motion file (.npz)")
    p.add_argument("--out", required=True, help="output .gif or .mp4")
    p.add_argument("--title", default=None, help="caption over the figure (default: the motion's text)")
    p.set_defaults(func=_cmd_render)


# ----------------------------------------------------------------------------- server / request
def _cmd_serve(a: argparse.Namespace) -> None:
    from coamd.server.app import ServerConfig, serve

    if bool(a.tls_cert) != bool(a.tls_key):
        raise CLIError("--tls-cert and --tls-key go together")
    if a.max_batch < 1 or a.max_queue < 0:
        raise CLIError("--max-batch must be >= 1 and --max-queue >= 0")
    token = a.token
    if a.token_file:
        token = Path(a.token_file).read_text().strip()
    try:
        serve(ServerConfig(host=a.host, port=a.port, backend=a.backend, checkpoint=a.checkpoint,
                           batching=not a.no_batching, max_batch=a.max_batch, max_queue=a.max_queue,
                           token=token, tls_cert=a.tls_cert, tls_key=a.tls_key, grace_s=a.grace,
                           ready_file=a.ready_file, fault_injection=a.fault_injection))
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise CLIError(str(exc)) from exc


def _cmd_request(a: argparse.Namespace) -> None:
    import grpc

    from coamd.client.cli import run_request

    try:
        run_request(a)
    except grpc.RpcError as exc:
        raise CLIError(f"{exc.code().name}: {exc.details()}") from exc
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from exc


def _add_server(sub) -> None:
    p = sub.add_parser("serve", help="run the gRPC motion server",
                       description="Serve coamd.v1.MotionService (proto/coamd/v1/motion.proto) with "
                       "grpc.health.v1 and server reflection. Concurrent requests share model calls "
                       "(continuous batching per autoregressive step). SIGTERM drains gracefully.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, loopback only)")
    p.add_argument("--port", type=int, default=50051, help="port (0 = any free port; default: %(default)s)")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch", "tensorrt"),
                   help="inference backend (default: %(default)s)")
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped coamd/checkpoints/default)")
    p.add_argument("--max-batch", type=int, default=8, help="most requests per batched model call (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=32,
                   help="most requests waiting for a batch slot; beyond it RESOURCE_EXHAUSTED (default: %(default)s)")
    p.add_argument("--no-batching", action="store_true", help="serve one request at a time (baseline)")
    p.add_argument("--token", default=None, help="require 'authorization: Bearer TOKEN' metadata")
    p.add_argument("--token-file", default=None, help="read the bearer token from this file")
    p.add_argument("--tls-cert", default=None, help="PEM certificate chain (turns TLS on, with --tls-key)")
    p.add_argument("--tls-key", default=None, help="PEM private key")
    p.add_argument("--grace", type=float, default=10.0, help="seconds in-flight calls get on SIGTERM (default: %(default)s)")
    p.add_argument("--ready-file", default=None, help="write the bound port here once serving")
    p.add_argument("--fault-injection", action="store_true",
                   help="testing only: texts containing [fail-model] / [fail-guidance] make that "
                        "request's model / guidance call raise")
    p.set_defaults(func=_cmd_serve)
    from coamd.client.cli import add_request_arguments

    r = sub.add_parser("request", help="generate one motion from a running server",
                       description="Stream a motion from `coamd serve`, save it, and print the time to "
                       "first frame and the total latency.")
    add_request_arguments(r)
    r.set_defaults(func=_cmd_request)


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coamd",
        description="CoAMD runtime: text-to-motion generation, action recognition and retrieval "
                    "for game engines. Motions are 21-joint skeletons in metres at 20 fps.")
    from coamd import __version__

    parser.add_argument("--version", action="version", version=f"coamd {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for add in _ADDERS:
        add(sub)
    return parser


_ADDERS = [_add_data, _add_render, _add_server]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
