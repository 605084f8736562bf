"""The ``coamd`` command line. Thin: parse arguments, call the modules, report errors in one line.

Each subcommand group registers itself in its own ``_add_*`` function below.

Errors: a bad argument (option value, input file, output path, server address, token or TLS
file) is found before any model is loaded and printed as one ``error: ...`` line with exit
status 2; an expected failure while working (a file or network error, a value the models
reject) is one ``error: ...`` line with exit status 1. Anything else is a bug and keeps its
traceback; ``coamd --debug ...`` shows the traceback of expected errors too.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from coamd.cli_checks import (CLIError, _check_bind, _check_host, _check_outputs, _check_tls, _one_line,  # noqa: F401
                              _port, _read_token_file)
from coamd.paths import DEFAULT_DATASET  # noqa: F401 - also importable from coamd.cli

DEFAULT_DATA = "../shared/data/bandai-namco"


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
    _check_outputs(("--out", str(out)))
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

    if Path(a.out).suffix.lower() not in (".gif", ".mp4"):
        raise CLIError(f"--out must end in .gif or .mp4, got {a.out}")
    try:
        m = load_motion(a.file)
    except (FileNotFoundError, MotionFileError) as exc:
        raise CLIError(str(exc)) from exc
    _check_outputs(("--out", a.out))
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
    # every argument is checked here, before any model is loaded
    if bool(a.tls_cert) != bool(a.tls_key):
        raise CLIError("--tls-cert and --tls-key go together")
    if a.max_batch < 1 or a.max_queue < 0:
        raise CLIError("--max-batch must be >= 1 and --max-queue >= 0")
    if a.token is not None and a.token_file:
        raise CLIError("give --token or --token-file, not both")
    if a.token is not None and not a.token.strip():
        raise CLIError("--token is empty")
    if a.max_wait is not None and not a.max_wait > 0:
        raise CLIError(f"--max-wait must be > 0 seconds (0 turns the bound off), got {a.max_wait:g}")
    if a.max_sessions < 0 or not a.session_idle > 0:
        raise CLIError("--max-sessions must be >= 0 and --session-idle > 0")
    if not 0.6 <= a.session_horizon <= 6.0:
        raise CLIError(f"--session-horizon must be between 0.6 and 6 seconds, got {a.session_horizon:g}")
    if not 0.2 <= a.session_commit <= a.session_horizon:
        raise CLIError(f"--session-commit must be between 0.2 seconds and --session-horizon "
                       f"({a.session_horizon:g}), got {a.session_commit:g}")
    if not 0.2 <= a.session_prefix <= 2.0:
        raise CLIError(f"--session-prefix must be between 0.2 and 2 seconds, got {a.session_prefix:g}")
    if not max(0.6, a.session_prefix) <= a.session_history <= 6.0:
        raise CLIError(f"--session-history must be between {max(0.6, a.session_prefix):g} seconds "
                       f"(and --session-prefix) and 6 seconds, got {a.session_history:g}")
    if a.max_request_evals < 1:
        raise CLIError(f"--max-request-evals must be >= 1, got {a.max_request_evals}")
    _check_host(a.host)
    token = _read_token_file(a.token_file) if a.token_file else a.token
    if token is None and os.environ.get("COAMD_TOKEN", "").strip():
        token = os.environ["COAMD_TOKEN"].strip()
    if a.tls_cert:
        _check_tls(a.tls_cert, a.tls_key)
    _check_outputs(("--ready-file", a.ready_file))
    _check_bind(a.host, a.port)

    from coamd.server.app import ServerConfig, serve

    try:
        serve(ServerConfig(host=a.host, port=a.port, backend=a.backend, checkpoint=a.checkpoint,
                           batching=not a.no_batching, max_batch=a.max_batch, max_queue=a.max_queue,
                           token=token, tls_cert=a.tls_cert, tls_key=a.tls_key, grace_s=a.grace,
                           ready_file=a.ready_file, fault_injection=a.fault_injection, threads=a.threads,
                           guidance=not a.no_guidance, max_wait_s=a.max_wait,
                           max_request_evals=a.max_request_evals, max_sessions=a.max_sessions,
                           session_idle_s=a.session_idle, session_horizon_s=a.session_horizon,
                           session_history_s=a.session_history, session_commit_s=a.session_commit,
                           session_prefix_s=a.session_prefix))
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise CLIError(str(exc)) from exc


def _run_client_command(a: argparse.Namespace, run, check=None, timeout: float | None = None) -> None:
    """Run a command that talks to ``a.server``: ``check(a)`` first (a ValueError or OSError there
    is a bad argument, exit status 2), then ``run(a)``; a failed call becomes one line naming the
    status code (exit 2 when the server rejected the request's values, else 1), a stream that
    breaks the contract exit 1."""
    import grpc

    from coamd.client import StreamError
    from coamd.client.cli import USAGE_CODES, describe_rpc_error

    try:
        if check is not None:
            check(a)
    except (ValueError, OSError) as exc:
        raise CLIError(_one_line(exc)) from exc
    try:
        run(a)
    except grpc.RpcError as exc:
        msg = describe_rpc_error(exc, a.server, timeout)
        raise CLIError(msg, status=2 if msg.split(":")[0] in USAGE_CODES else 1) from exc
    except StreamError as exc:
        raise CLIError(f"the server at {a.server} broke the stream contract: {exc}", status=1) from exc


def _cmd_request(a: argparse.Namespace) -> None:
    from coamd.client.cli import check_request_arguments, run_request

    _run_client_command(a, run_request, check_request_arguments, a.timeout)


def _cmd_session(a: argparse.Namespace) -> None:
    from coamd.client.cli import run_session

    def run(args):
        try:
            run_session(args)
        except (ValueError, OSError) as exc:   # arguments and standard input are checked as they are read
            raise CLIError(_one_line(exc)) from exc

    _run_client_command(a, run)


def _cmd_capabilities(a: argparse.Namespace) -> None:
    from coamd.client.cli import check_tls_ca, run_capabilities

    _run_client_command(a, run_capabilities, lambda args: check_tls_ca(args.tls_ca), a.timeout)


def _add_server(sub) -> None:
    p = sub.add_parser("serve", help="run the gRPC motion server",
                       description="Serve coamd.v1.MotionService (proto/coamd/v1/motion.proto) with "
                       "grpc.health.v1 and server reflection. Concurrent requests share model calls "
                       "(continuous batching per autoregressive step). SIGTERM drains gracefully.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, loopback only)")
    p.add_argument("--port", type=_port, default=50051, help="port 0..65535 (0 = any free port; default: %(default)s)")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch", "tensorrt"),
                   help="inference backend (default: %(default)s)")
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped coamd/checkpoints/default)")
    p.add_argument("--max-batch", type=int, default=8, help="most requests per batched model call (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=32,
                   help="most requests waiting for a batch slot; beyond it RESOURCE_EXHAUSTED (default: %(default)s)")
    p.add_argument("--no-batching", action="store_true", help="serve one request at a time (baseline)")
    p.add_argument("--max-wait", type=lambda v: None if float(v) == 0 else float(v), default=2.0,
                   help="refuse (RESOURCE_EXHAUSTED, at once) a request whose expected wait before its first "
                        "step, from measured step times, exceeds this many seconds; 0 = no bound (default: %(default)s)")
    p.add_argument("--max-sessions", type=int, default=64,
                   help="most open Session streams (endless motions); beyond it RESOURCE_EXHAUSTED (default: %(default)s)")
    p.add_argument("--session-horizon", type=float, default=1.4,
                   help="seconds each session window plans before committing --session-commit of them: longer "
                        "follows new instructions more faithfully, 0.6 holds about twice the sessions "
                        "(default: %(default)s)")
    p.add_argument("--session-commit", type=float, default=0.4,
                   help="seconds of each session window's plan that are kept and sent (the rest is re-planned "
                        "by the next window; default: %(default)s)")
    p.add_argument("--session-history", type=float, default=3.0,
                   help="longest motion history (seconds) a session window continues from while the text is "
                        "unchanged: the frames since the instruction began, and --session-prefix before it "
                        "(default: %(default)s)")
    p.add_argument("--session-prefix", type=float, default=0.4,
                   help="seconds of motion before a new instruction that its first window continues from: "
                        "shorter turns to the new action sooner, longer holds the old motion's momentum "
                        "(default: %(default)s)")
    p.add_argument("--session-idle", type=float, default=60.0,
                   help="close a session whose frames could not be written for this many seconds (its client stopped reading and the transport buffers are full; default: %(default)s)")
    p.add_argument("--max-request-evals", type=int, default=1024,
                   help="per-request compute budget: iterations x ode_steps x solver stages (Heun 2); above it "
                        "INVALID_ARGUMENT (default: %(default)s, 16x the default settings)")
    p.add_argument("--token", default=None,
                   help="require 'authorization: Bearer TOKEN' metadata; visible in the process list, so "
                        "prefer --token-file or the COAMD_TOKEN environment variable")
    p.add_argument("--token-file", default=None, help="read the bearer token from this file (keep it mode 600)")
    p.add_argument("--tls-cert", default=None, help="PEM certificate chain (turns TLS on, with --tls-key)")
    p.add_argument("--tls-key", default=None, help="PEM private key")
    p.add_argument("--grace", type=float, default=10.0, help="seconds in-flight calls get on SIGTERM (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0,
                   help="model threads (0 = torch: half the usable cores; ONNX Runtime: its default, all cores)")
    p.add_argument("--no-guidance", action="store_true",
                   help="no recognizer-guidance sidecar: every request runs unguided; with the ONNX Runtime "
                        "backend and exported graphs the server runs without torch")
    p.add_argument("--ready-file", default=None, help="write the bound port here once serving")
    p.add_argument("--fault-injection", action="store_true",
                   help="testing only: texts containing [fail-model] / [fail-guidance] make that "
                        "request's model / guidance call raise")
    p.set_defaults(func=_cmd_serve)
    from coamd.client.cli import add_capabilities_arguments, add_request_arguments, add_session_arguments

    r = sub.add_parser("request", help="generate one motion from a running server",
                       description="Stream a motion from `coamd serve`, save it, and print the time to "
                       "first frame and the total latency.")
    add_request_arguments(r)
    r.set_defaults(func=_cmd_request)

    q = sub.add_parser("session", help="an endless motion from a running server, steered line by line",
                       description="Open a Session on `coamd serve`: the first line of standard input is "
                       "the first instruction, every later line changes it as soon as it is read, end of "
                       "input closes the session; the whole motion is saved at the end.")
    add_session_arguments(q)
    q.set_defaults(func=_cmd_session)

    c = sub.add_parser("capabilities", help="what a running server's model knows",
                       description="Ask `coamd serve` (GetCapabilities) which actions and styles its model "
                       "was trained on, with training-clip counts, sides and the styles each action was "
                       "recorded in, and the duration range.")
    add_capabilities_arguments(c)
    c.set_defaults(func=_cmd_capabilities)


# ----------------------------------------------------------------------------- train
def _cmd_train(a: argparse.Namespace) -> None:
    from coamd.train import trainer

    _, _, run = trainer(a.train_cmd)
    try:
        run(a)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from exc


def _add_train(sub) -> None:
    from coamd.train import trainer, trainer_help

    p = sub.add_parser("train", help="train a model (ae, recognizer, generator, evaluator)",
                       description="Train one model on the processed dataset with progress bars, "
                       "periodic resumable checkpoints (RUN_DIR/state.pt, --resume), JSON-lines logs "
                       "(RUN_DIR/log.jsonl) and seeds; the trained weights go to --out. "
                       "`--eval-only` measures a checkpoint on the test split.")
    tsub = p.add_subparsers(dest="train_cmd", required=True)
    # only the chosen trainer's module is imported (trainers import torch: seconds)
    chosen = _ARGV[_ARGV.index("train") + 1] if "train" in _ARGV[:-1] else None
    for name, help_ in trainer_help().items():
        t = tsub.add_parser(name, help=help_, description=f"Train {help_}.")
        if name == chosen:
            trainer(name)[1](t)
        t.set_defaults(func=_cmd_train)


# ----------------------------------------------------------------------------- eval
def _cmd_eval(a: argparse.Namespace) -> None:
    from coamd.evaluation.report import run_evaluation

    cmd = "coamd eval " + " ".join(sys.argv[2:]) if a.command_line is None else a.command_line
    try:
        r = run_evaluation(a.out, dataset=a.dataset, subset=a.subset, repeats=a.repeats, seed=a.seed,
                           evaluator_path=a.evaluator, checkpoint=a.checkpoint, backend=a.backend,
                           mm_texts=a.mm_texts, mm_samples=a.mm_samples, grid=not a.no_grid,
                           generation=not a.no_generation, progress=not a.quiet, command=cmd,
                           sections=tuple(x for x in a.sections.split(",") if x) if a.sections else None,
                           grid_scales=a.grid_scales, grid_iterations=a.grid_iterations)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    g = r["generation"]
    for name, row in g.items():
        print(f"{name:32s} R@1 {row['r_top1'][0]:.3f}  R@3 {row['r_top3'][0]:.3f}  FID {row['fid'][0]:.3f}  "
              f"cosine {row['cosine'][0]:.3f}")
    for k, v in r.get("missing", {}).items():
        print(f"missing {k}: {v}")
    print(f"report -> {Path(a.out) / 'report.md'} ({r['seconds']:.0f} s)")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="score the models with the evaluator; Markdown + JSON + plots",
                       description="Evaluate the shipped (or given) checkpoint on the test split with the "
                       "independent text-motion evaluator: generation (R-precision, FID, MM-Dist, Diversity, "
                       "MultiModality, cosine score, foot skating, jitter, penetration), recognition, retrieval, "
                       "editing, modality and guidance ablations, quality versus latency. Every table has a "
                       "real-motions row. Writes OUT/report.md, OUT/report.json and OUT/plots/*.png.")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help=f"processed dataset (default: {DEFAULT_DATASET})")
    p.add_argument("--subset", type=int, default=64,
                   help="test texts per generation repeat, at least 32 (default: 64; the test split has 624)")
    p.add_argument("--repeats", type=int, default=3, help="generation repeats for the 95%% CIs (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of caption choice, subsets and sampling (default: 0)")
    p.add_argument("--evaluator", default=None, help="evaluator weights (default: the shipped evaluator.pt)")
    p.add_argument("--checkpoint", default=None, help="model checkpoint folder (default: the shipped one)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "tensorrt"],
                   help="generation backend (default: torch)")
    p.add_argument("--mm-texts", type=int, default=16, help="texts per repeat used for MultiModality (default: 16)")
    p.add_argument("--mm-samples", type=int, default=3, help="motions per text for MultiModality (default: 3)")
    p.add_argument("--no-grid", action="store_true", help="skip the quality-versus-latency grid")
    p.add_argument("--grid-scales", type=float, nargs="+", default=None,
                   help="guidance scales of the grid, 0 = off (default: 0, the sampler's, twice the sampler's)")
    p.add_argument("--grid-iterations", type=int, nargs="+", default=None,
                   help="iteration counts K of the grid (default: half the sampler's, the sampler's)")
    p.add_argument("--no-generation", action="store_true", help="only the real-data tables (no generator needed)")
    p.add_argument("--sections", default=None,
                   help="comma list of generation, guidance, editing, grid, modality (default: all); "
                        "recognition, retrieval and the real rows are always computed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_eval)


# ----------------------------------------------------------------------------- generate / recognize / retrieve
def _engine(a: argparse.Namespace, guidance: bool = True):
    from coamd.runtime import default_torch_threads, load_engine

    # torch, where the command needs it, gets one thread when the machine is busy (two competing
    # OpenMP threads were measured 6-10x slower on the loaded 2-core box), else up to two
    try:
        return load_engine(backend=a.backend, checkpoint=a.checkpoint, guidance=guidance, dataset=a.dataset,
                           torch_threads=default_torch_threads)  # measured only if torch loads
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from exc


def _cmd_generate(a: argparse.Namespace) -> None:
    from coamd.io.motion import save_motion
    from coamd.sampling.sampler import GenerationRequest

    for name, path, exts in (("--out", a.out, (".npz",)), ("--gif", a.gif, (".gif", ".mp4")),
                             ("--bvh", a.bvh, (".bvh",)), ("--glb", a.glb, (".glb",))):
        if path is not None and Path(path).suffix.lower() not in exts:
            raise CLIError(f"{name} must end in {' or '.join(exts)}, got {path}")
    _check_outputs(("--out", a.out), ("--bvh", a.bvh), ("--gif", a.gif), ("--glb", a.glb))  # before the models load
    req = GenerationRequest(text=a.text, duration_s=a.duration, seed=a.seed, cfg_scale=a.cfg_scale,
                            iterations=a.iterations, ode_steps=a.ode_steps, solver=a.solver, order=a.order,
                            guidance=not a.no_guidance,
                            **({} if a.guidance_scale is None else {"guidance_scale": a.guidance_scale}),
                            temperature=a.temperature, cleanup=not a.no_cleanup, skeleton=a.skeleton)
    try:
        req.validate(60)  # cheap checks before loading models (the sampler checks again)
    except ValueError as exc:
        if "too long" not in str(exc):
            raise CLIError(str(exc)) from exc
    eng = _engine(a, guidance=not a.no_guidance)
    t = time.perf_counter()
    try:
        it, req.text = eng.understand(a.text, a.text_conditioning)
        chunks = list(eng.sampler.stream(req))
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    joints = np.concatenate([c.joints for c in chunks])
    rotations = (np.concatenate([c.rotations for c in chunks])
                 if chunks and all(c.rotations is not None for c in chunks) else None)
    dt = time.perf_counter() - t
    from coamd.client.cli import describe_interpretation

    print(describe_interpretation(it, req.text))
    save_motion(a.out, joints, text=a.text)
    print(f"generated {joints.shape[0]} frames ({joints.shape[0] / 20:.1f} s at 20 fps) in {dt:.2f} s "
          f"on {eng.backend_name} ({'guided' if req.guidance else 'unguided'}, {req.order} order, "
          f"{req.iterations} iterations x {req.ode_steps} {req.solver} steps, cfg {req.cfg_scale:g}, "
          f"{'cleaned' if req.cleanup else 'raw'}) -> {a.out}")
    if a.bvh:
        from coamd.io.bvh_export import write_bvh

        write_bvh(a.bvh, joints, 20.0, rotations=rotations, tpose=a.tpose)
        print(f"BVH -> {a.bvh}{' (T-pose rest)' if a.tpose else ''}")
    if a.glb:
        from coamd.io.gltf_export import write_glb

        write_glb(a.glb, joints, rotations=rotations, name=a.text[:64])
        print(f"glTF -> {a.glb}")
    if a.gif:
        from coamd.io.render import render_motion

        render_motion(joints, a.gif, fps=20.0, title=a.text)
        print(f"preview -> {a.gif}")


def _engine_args(p: argparse.ArgumentParser, default_backend: str = "torch") -> None:
    from coamd.runtime import backend_names

    extra = (" (ONNX Runtime on the CPU; the graphs are exported on first use and cached in "
             "~/.cache/coamd)" if default_backend == "onnxruntime" else "")
    p.add_argument("--backend", default=default_backend,
                   help=f"inference backend: {', '.join(backend_names())} (default: {default_backend}){extra}")
    p.add_argument("--checkpoint", default=None, help="model checkpoint folder (default: the shipped one)")
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help=f"processed dataset, for retrieval (default: {DEFAULT_DATASET})")


def _cmd_recognize(a: argparse.Namespace) -> None:
    from coamd.io.motion import MotionFileError, load_motion

    try:
        m = load_motion(a.file)
    except (FileNotFoundError, MotionFileError) as exc:
        raise CLIError(str(exc)) from exc
    if abs(m.fps - 20.0) > 1e-6:
        raise CLIError(f"{a.file} is at {m.fps:g} fps; the recognizer expects 20 fps")
    eng = _engine(a, guidance=False)
    try:
        res = eng.recognize(m.joints, top_k=a.top_k)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    for kind in ("content", "style"):
        print(f"{kind}: " + ", ".join(f"{r.label} {r.score:.3f}" for r in res[kind]))


def _cmd_retrieve(a: argparse.Namespace) -> None:
    if not a.text.strip():
        raise CLIError("text is empty; describe a motion, e.g. 'a person waves the right hand'")
    eng = _engine(a, guidance=False)
    try:
        res = eng.retrieve(a.text, top_k=a.top_k)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    for i, r in enumerate(res, 1):
        print(f"{i}. {r.label} ({r.content}, {r.style}) {r.score:.3f}  \"{r.caption}\"")


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="text to motion with the shipped model",
                       description="Generate a motion (21 joints, metres, 20 fps) from text with masked "
                       "autoregressive flow-matching sampling, classifier-free guidance and (unless "
                       "--no-guidance) recognizer guidance. Prints the time taken.")
    p.add_argument("text", help="what the person does, e.g. 'an energetic person waves the right hand'")
    p.add_argument("--duration", type=float, default=4.0, help="seconds, up to 12 (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed and settings, same motion (default: 0)")
    p.add_argument("--no-guidance", action="store_true", help="skip recognizer guidance (faster)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="gamma of the guidance step (default: the sampler's, 2)")
    p.add_argument("--cfg-scale", type=float, default=3.0, help="classifier-free guidance scale, 1 = off (default: 3)")
    p.add_argument("--iterations", type=int, default=8, help="masked autoregressive iterations (default: 8)")
    p.add_argument("--ode-steps", type=int, default=8, help="fixed ODE steps per iteration (default: 8)")
    p.add_argument("--solver", choices=["euler", "heun"], default="euler", help="ODE solver (default: euler)")
    p.add_argument("--order", choices=["random", "left_to_right"], default="random",
                   help="token order; left_to_right finalises the start first for streaming (default: random)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="scale of the flow ODE's starting noise in (0, 2]; < 1 is calmer, less varied (default: 1)")
    p.add_argument("--no-cleanup", action="store_true",
                   help="the model's raw frames: skip the foot-contact cleanup (smoothing, foot-driven "
                        "root motion, foot IK) that is on by default")
    p.add_argument("--text-conditioning", choices=("understood", "raw"), default="understood",
                   help="what the generator follows: the understood action and style in the training "
                        "captions' phrasing (default; follows free phrasing far better) or the raw text")
    _engine_args(p, default_backend="onnxruntime")
    p.add_argument("--out", required=True, help="output motion file (.npz)")
    p.add_argument("--bvh", default=None, help="also write a BVH file (the streamed rotations on the runtime's skeleton)")
    p.add_argument("--tpose", action="store_true", help="BVH rest pose: a T-pose (facing +Z, arms along x) "
                   "instead of the dataset's; the file plays back the same positions")
    p.add_argument("--glb", default=None, help="also write a glTF 2.0 binary (.glb: skeleton, skin, a simple "
                   "mesh, rotation and hips translation channels at 20 fps)")
    p.add_argument("--skeleton", choices=("fk", "raw"), default="fk",
                   help="fk (default): frames are forward kinematics on the runtime's skeleton; raw: the "
                        "model's decoded coordinates (research; bone lengths drift)")
    p.add_argument("--gif", default=None, help="also render a stick-figure preview (.gif or .mp4)")
    p.set_defaults(func=_cmd_generate)

    r = sub.add_parser("recognize", help="top-k content and style of a motion file",
                       description="Classify a motion (.npz, 20 fps) with the action recognizer: nearest "
                       "content and style label texts by cosine similarity.")
    r.add_argument("file", help="motion file (.npz)")
    r.add_argument("--top-k", type=int, default=3, help="how many answers per label kind (default: 3)")
    _engine_args(r)
    r.set_defaults(func=_cmd_recognize)

    q = sub.add_parser("retrieve", help="closest test-split motions to a text",
                       description="Rank the test-split motions of the processed dataset by the recognizer's "
                       "text-motion similarity (the first call embeds the split and caches it).")
    q.add_argument("text", help="a description of a motion")
    q.add_argument("--top-k", type=int, default=5, help="how many motions (default: 5)")
    _engine_args(q)
    q.set_defaults(func=_cmd_retrieve)


# ----------------------------------------------------------------------------- export / bench
def _cmd_export(a: argparse.Namespace) -> None:
    from coamd.export.onnx_export import GRAPHS, OPTIONAL_GRAPHS, ExportError, export_models
    from coamd.export.parity import TOLERANCE, check_parity, worst

    fused = []
    for item in (a.fused_ode or "").split(","):
        item = item.strip()
        if not item:
            continue
        solver, _, steps = item.partition(":")
        if solver not in ("euler", "heun") or not steps.isdigit() or int(steps) < 1:
            raise CLIError(f"--fused-ode items look like euler:8 or heun:4, got {item!r}")
        fused.append((solver, int(steps)))
    try:
        from coamd.models.bundle import load_bundle

        bundle = load_bundle(a.checkpoint)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from exc
    if bundle.transformer is None or bundle.diffusion is None:
        raise CLIError(f"{bundle.path} has no generator.pt; nothing to export")
    t = time.perf_counter()
    try:
        man = export_models(bundle, a.out, checkpoint=bundle.path, graphs=GRAPHS + OPTIONAL_GRAPHS,
                            fused_ode=fused, progress=not a.quiet)
    except ExportError as exc:
        raise CLIError(str(exc)) from exc
    print(f"exported {len(man['graphs'])} graphs of {bundle.path} -> {a.out} in {time.perf_counter() - t:.0f} s")
    if not a.no_check:
        res = check_parity(bundle, a.out)
        g, c, err = worst(res)
        print(f"parity vs PyTorch: max abs error {err:.2e} ({g} {c}); tolerance {TOLERANCE:g}")
        if err > TOLERANCE:
            raise CLIError(f"parity check failed: {g} {c} max abs error {err:.2e} > {TOLERANCE:g}")
    if a.tensorrt:
        from coamd.export.tensorrt import TensorRTUnavailable, build_engines

        try:
            built = build_engines(a.out, fp16=a.fp16)
        except TensorRTUnavailable as exc:
            raise CLIError(f"TensorRT engines not built: {exc}") from exc
        print(f"TensorRT engines: {', '.join(sorted(built))}")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export the generation models to ONNX (and TensorRT engines)",
                       description="Export the text encoder, AE decoder/encoder, masked transformer and "
                       "diffusion-MLP velocity of a checkpoint to ONNX (dynamo exporter, dynamic batch/"
                       "sequence/token axes), optionally fused ODE graphs and TensorRT engines, then check "
                       "parity with PyTorch (max abs error <= 1e-4). `coamd generate --backend onnxruntime` "
                       "exports on first use by itself (cached under ~/.cache/coamd).")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    p.add_argument("--out", required=True, help="output folder for the .onnx graphs and manifest.json")
    p.add_argument("--fused-ode", default="euler:8",
                   help="comma list of solver:steps fused ODE graphs to add, '' for none (default: euler:8)")
    p.add_argument("--no-check", action="store_true", help="skip the parity check against PyTorch")
    p.add_argument("--tensorrt", action="store_true", help="also build TensorRT engines (needs tensorrt + GPU)")
    p.add_argument("--fp16", action="store_true", help="TensorRT engines in fp16")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_export)


def _bench_module(name: str):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    if not path.exists():
        raise CLIError(f"{path} not found: benchmarks run from a source checkout of coamd")
    spec = importlib.util.spec_from_file_location(f"coamd_bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cmd_bench_latency(a: argparse.Namespace) -> None:
    mod = _bench_module("latency")
    try:
        mod.run_from_args(a, "coamd bench latency " + " ".join(sys.argv[3:]))
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from exc


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks (latency)")
    bsub = p.add_subparsers(dest="bench_cmd", required=True)
    lat = bsub.add_parser("latency", help="time to first frame, latency and real-time factor per backend",
                          description="Generate 2/5/10 s motions on each backend (torch eager, ONNX Runtime "
                          "with and without the fused ODE graph, TensorRT where present), guidance on/off, "
                          "both token orders; writes JSON records, a markdown table and plots, the FLOPs of "
                          "one generation and the achieved FLOP/s against a matmul peak measured in the same run.")
    _bench_module_args(lat)
    lat.set_defaults(func=_cmd_bench_latency)


def _bench_module_args(p) -> None:
    try:
        _bench_module("latency").add_arguments(p)
    except CLIError:
        p.add_argument("--json", required=True, help="output JSON file")


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coamd",
        description="CoAMD runtime: text-to-motion generation, action recognition and retrieval "
                    "for game engines. Motions are 21-joint skeletons in metres at 20 fps.")
    from coamd import __version__

    parser.add_argument("--version", action="version", version=f"coamd {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of errors that are otherwise one 'error:' line")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for add in _ADDERS:
        add(sub)
    return parser


def _add_deploy(sub) -> None:
    from coamd.serving.cli import add_deploy  # `coamd deploy`: Ray Serve cluster (optional extra `ray`)

    add_deploy(sub)


_ADDERS = [_add_data, _add_render, _add_server, _add_train, _add_eval, _add_generate, _add_export, _add_bench,
           _add_deploy]


_ARGV: list[str] = []


# what a command may raise for reasons outside the program: one line, exit status 1
EXPECTED_ERRORS = (ValueError, OSError, EOFError)


def main(argv: list[str] | None = None) -> int:
    """Run ``coamd ARGS``. Returns the exit status: 0, 2 for a bad argument (``CLIError``,
    argparse), 1 for an expected failure (``EXPECTED_ERRORS``), 130 when interrupted."""
    global _ARGV
    _ARGV = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in _ARGV[1:]:  # accepted after the subcommand too
        _ARGV = ["--debug"] + [x for x in _ARGV if x != "--debug"]
    args = build_parser().parse_args(_ARGV)
    try:
        args.func(args)
    except CLIError as exc:
        if args.debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return exc.status
    except EXPECTED_ERRORS as exc:
        if args.debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
