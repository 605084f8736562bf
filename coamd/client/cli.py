"""``coamd request``: generate one motion from a running server and save it (npz, optional BVH/GIF);
``coamd session``: an endless motion steered line by line; ``coamd capabilities``: what the
server's model knows.

Errors: the arguments (output paths, ``--tls-ca``) are checked before connecting and raise
ValueError or OSError; a failed call raises ``grpc.RpcError``, which :func:`describe_rpc_error`
turns into one line naming the status code.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# status codes that mean the request itself was wrong (the command line's exit status 2)
USAGE_CODES = ("INVALID_ARGUMENT", "OUT_OF_RANGE")


def add_request_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", help="what the character should do, e.g. 'a person walks forward happily'")
    p.add_argument("--server", default="127.0.0.1:50051", help="HOST:PORT of `coamd serve` (default: %(default)s)")
    p.add_argument("--out", required=True, help="output motion file (.npz: joints (T,21,3) metres, 20 fps)")
    p.add_argument("--bvh", default=None, help="also write a BVH file here")
    p.add_argument("--gif", default=None, help="also render a stick-figure preview here (.gif or .mp4)")
    p.add_argument("--glb", default=None, help="also write a glTF 2.0 binary here (the streamed rotations)")
    p.add_argument("--tpose", action="store_true", help="BVH rest pose: a T-pose instead of the dataset's")
    p.add_argument("--skeleton", choices=("fk", "raw"), default=None,
                   help="fk: frames are forward kinematics on GetSkeleton's offsets (server default); raw: "
                        "the model's coordinates")
    p.add_argument("--duration", type=float, default=4.0, help="motion length in seconds, 0.4..12 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--no-guidance", action="store_true", help="skip the action-recognizer guidance (faster)")
    p.add_argument("--iterations", type=int, default=0, help="masked-AR iterations (0 = server default)")
    p.add_argument("--no-cleanup", action="store_true",
                   help="ask for the model's raw frames (no foot-contact cleanup on the server)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="flow ODE noise scale in (0, 2] (0 = server default, 1)")
    p.add_argument("--order", choices=("left_to_right", "random"), default=None,
                   help="token order (default: the server's, left_to_right, which streams)")
    p.add_argument("--text-conditioning", choices=("understood", "raw"), default=None,
                   help="what the generator follows: the server's understanding of the text (its "
                        "default) or the raw text")
    p.add_argument("--token", default=None, help="bearer token, if the server wants one")
    p.add_argument("--tls-ca", default=None, help="PEM certificate to trust; turns TLS on")
    p.add_argument("--timeout", type=float, default=120.0, help="deadline for the call in seconds (default: %(default)s)")


def describe_interpretation(it, conditioned_text: str) -> str:
    """How a text was understood, for people: ``understood as: run (0.96), style elderly (1.00)
    -> generating from "An elderly person runs."``, plus a ``note:`` line when the interpretation
    carries one (the text is outside the vocabulary, or names a style never recorded with the
    action). ``it``: an ``Interpretation`` (objects of coamd.models.understanding, or the dict of
    coamd.client.interpretation_dict), or None."""
    if it is None:
        return f"generating from {conditioned_text!r} (no text-understanding stage in this checkpoint)"
    if isinstance(it, dict):
        contents, styles, note, side = it["content"], it["style"], it["note"], it["side"]
    else:
        contents, styles, note, side = it.contents, it.styles, it.note, it.side
    style = f", style {styles[0][0]} ({styles[0][1]:.2f})" if styles and styles[0][0] != "none" else ", no style named"
    head = (f"understood as: {contents[0][0]} ({contents[0][1]:.2f}){style}"
            f"{', side ' + side if side else ''} -> generating from {conditioned_text!r}")
    return head + (f"\nnote: {note}" if note else "")


def run_request(a: argparse.Namespace) -> dict:
    """Run ``coamd request``; returns the GenerationResult summary. Raises ValueError or
    OSError for arguments that cannot work (checked before connecting), grpc.RpcError when the
    call fails, coamd.client.StreamError when the stream breaks the contract."""
    from coamd.client import MotionClient

    check_request_arguments(a)
    with MotionClient(a.server, token=a.token, tls_ca=a.tls_ca) as client:
        res = client.generate(a.text, duration_s=a.duration, seed=a.seed,
                              guidance=False if a.no_guidance else None, iterations=a.iterations,
                              order=a.order, cleanup=False if a.no_cleanup else None,
                              temperature=a.temperature, timeout=a.timeout,
                              text_conditioning=getattr(a, "text_conditioning", None),
                              skeleton=a.skeleton, include_rotations=bool(a.bvh or a.glb))
    save_result(res, a.out, bvh=a.bvh, gif=a.gif, glb=a.glb, tpose=a.tpose)
    s = res.summary
    if s.get("interpretation") is not None:
        print(describe_interpretation(s["interpretation"], s["interpretation"]["conditioned_text"]))
    print(f"{res.joints.shape[0]} frames ({res.joints.shape[0] / 20:.2f} s) -> {a.out}")
    print(f"time to first frame {1000 * res.ttff_s:.0f} ms, total {1000 * res.total_s:.0f} ms "
          f"(server: {s['time_to_first_frame_ms']:.0f} / {s['total_ms']:.0f} ms, backend {s['backend']}, "
          f"cleanup {'on' if s['cleanup_applied'] else 'off'}, guidance {'on' if s['guidance_applied'] else 'off'}"
          f"{': ' + s['guidance_note'] if s['guidance_note'] else ''})")
    return s


def add_capabilities_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="127.0.0.1:50051", help="HOST:PORT of `coamd serve` (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON instead of a table")
    p.add_argument("--token", default=None, help="bearer token, if the server wants one")
    p.add_argument("--tls-ca", default=None, help="PEM certificate to trust; turns TLS on")
    p.add_argument("--timeout", type=float, default=10.0, help="deadline for the call in seconds (default: %(default)s)")


def describe_capabilities(caps: dict) -> str:
    """GetCapabilities for people (``caps`` as :func:`coamd.client.capabilities_dict`): one line
    per action with its training clips, side and the styles it was recorded in (clips per pair),
    then the styles, the duration range and which actions are rare."""
    rare = caps["rare_below_clips"]
    lines = [f"{len(caps['actions'])} actions (training clips, mirrored copies not counted; "
             f"fewer than {rare}: followed less reliably):"]
    width = max(len(a["label"]) for a in caps["actions"]) if caps["actions"] else 0
    for a in caps["actions"]:
        rec = ", ".join(f"{k} {v}" for k, v in sorted(a.get("recorded_with", {}).items(), key=lambda kv: -kv[1]))
        side = f" [{a['side']}]" if a["side"] else ""
        tag = " (rare)" if a["training_clips"] < rare else ""
        lines.append(f"  {a['label']:<{width}} {a['training_clips']:>4}{tag}{side}"
                     + (f"  recorded {rec}" if rec else ""))
    lines.append(f"{len(caps['styles'])} styles: " + ", ".join(f"{s['label']} {s['training_clips']}" for s in caps["styles"]))
    lines.append(f"a style not recorded with an action of {rare} or more clips is left out of that action's "
                 f"motion (the response's note says so)")
    lines.append(f"durations {caps['min_duration_s']:g}-{caps['max_duration_s']:g} s at {caps['fps']:g} fps; "
                 f"texts up to {caps['max_text_chars']} characters")
    return "\n".join(lines)


def run_capabilities(a: argparse.Namespace) -> dict:
    """Run ``coamd capabilities``: print what the server's model knows (a table, or JSON with
    ``--json``) and return it. Raises ValueError for an unusable ``--tls-ca``, grpc.RpcError when
    the call fails."""
    import json

    from coamd.client import MotionClient

    check_tls_ca(a.tls_ca)
    with MotionClient(a.server, token=a.token, tls_ca=a.tls_ca) as client:
        caps = client.capabilities(timeout=a.timeout)
    print(json.dumps(caps, indent=1) if a.json else describe_capabilities(caps))
    return caps


def check_request_arguments(a: argparse.Namespace) -> None:
    """Output paths writable and ``--tls-ca`` a readable PEM certificate, before any call.
    Raises ValueError (bad value) or OSError (OutputPathError, unreadable file)."""
    from coamd.io.motion import check_output_path

    for option, path, exts in (("--out", a.out, (".npz",)), ("--bvh", a.bvh, (".bvh",)),
                               ("--gif", a.gif, (".gif", ".mp4")), ("--glb", getattr(a, "glb", None), (".glb",))):
        if path is None:
            continue
        if Path(path).suffix.lower() not in exts:
            raise ValueError(f"{option} must end in {' or '.join(exts)}, got {path}")
        check_output_path(path, option)
    check_tls_ca(a.tls_ca)


def check_tls_ca(path: str | None) -> None:
    """``--tls-ca`` a readable PEM certificate (or None). Raises ValueError or OSError."""
    if path:
        ca = Path(path)
        if not ca.is_file():
            raise ValueError(f"--tls-ca {ca} does not exist" if not ca.exists() else f"--tls-ca {ca} is not a file")
        try:
            data = ca.read_bytes()
        except OSError as exc:
            raise OSError(f"--tls-ca {ca} cannot be read: {exc.strerror or exc}") from exc
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise ValueError(f"--tls-ca {ca} is not a PEM certificate (no 'BEGIN CERTIFICATE' block)")


def describe_rpc_error(exc, server: str, timeout: float | None = None) -> str:
    """One line for a failed gRPC call: the status code name, then what it means here and the
    server's own message (``exc`` a ``grpc.RpcError``, ``server`` the HOST:PORT called)."""
    code = exc.code() if hasattr(exc, "code") else None
    name = code.name if code is not None else "UNKNOWN"
    details = " ".join(str(exc.details() if hasattr(exc, "details") else exc).split())
    if name == "UNAVAILABLE":
        msg = f"cannot reach the server at {server} ({details}); is `coamd serve` running there?"
    elif name == "DEADLINE_EXCEEDED":
        msg = (f"no complete answer from {server} within --timeout {timeout:g} s ({details})"
               if timeout else f"no complete answer from {server} in time ({details})")
    elif name == "UNAUTHENTICATED":
        msg = f"{details} (the server wants a bearer token: --token)"
    else:
        msg = details
    return f"{name}: {msg}"


def save_result(res, out: str, bvh: str | None = None, gif: str | None = None, glb: str | None = None,
                tpose: bool = False) -> None:
    """Write ``res.joints`` to ``out`` (.npz) and optionally a BVH file (``tpose``: T-pose rest),
    a glTF binary and a GIF/MP4 preview; BVH and glTF carry ``res.rotations`` when the stream had
    them (they then play back exactly the streamed positions)."""
    from coamd.io.motion import save_motion

    s = res.summary
    save_motion(out, res.joints, text=res.text, seed=s.get("seed", 0), backend=s.get("backend", ""),
                guidance_applied=s.get("guidance_applied", False), ttff_ms=1000 * res.ttff_s,
                total_ms=1000 * res.total_s)
    if bvh:
        from coamd.io.bvh_export import write_bvh

        write_bvh(bvh, res.joints, rotations=res.rotations, tpose=tpose)
    if glb:
        from coamd.io.gltf_export import write_glb

        write_glb(glb, res.joints, rotations=res.rotations, name=(res.text or "motion")[:64])
    if gif:
        from coamd.io.render import render_motion

        render_motion(res.joints, gif, title=res.text)


def add_session_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="127.0.0.1:50051", help="HOST:PORT of `coamd serve` (default: %(default)s)")
    p.add_argument("--out", required=True, help="the whole session's motion file (.npz), written at the end")
    p.add_argument("--bvh", default=None, help="also write a BVH file here at the end")
    p.add_argument("--gif", default=None, help="also render a stick-figure preview here at the end (.gif or .mp4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--no-guidance", action="store_true", help="skip the action-recognizer guidance (faster)")
    p.add_argument("--lookahead", type=float, default=0.0,
                   help="seconds the server keeps ahead of real time (0 = server default, 1 s)")
    p.add_argument("--token", default=None, help="bearer token, if the server wants one")
    p.add_argument("--tls-ca", default=None, help="PEM certificate to trust; turns TLS on")


def run_session(a: argparse.Namespace, lines=None) -> dict:
    """Run ``coamd session``: the first line of ``lines`` (default: stdin) opens the session, every
    later non-empty line is a new instruction sent as soon as it is read, end of input closes
    it; the motion and its events are saved at the end. Returns counts and the events.
    Raises ValueError/OSError for bad arguments (before connecting), grpc.RpcError when the call
    fails, coamd.client.StreamError when the stream breaks the contract."""
    import threading

    from coamd.client import MotionClient
    from coamd.io.motion import save_motion

    a.duration, a.order = None, None
    check_request_arguments(a)
    src = iter(lines) if lines is not None else iter(sys.stdin)
    first = next((ln.strip() for ln in src if ln.strip()), None)
    if first is None:
        raise ValueError("no instruction: give the first one as the first line of the input")
    chunks = []
    with MotionClient(a.server, token=a.token, tls_ca=a.tls_ca) as client:
        session = client.session(first, seed=a.seed, guidance=False if a.no_guidance else None,
                                 lookahead_s=a.lookahead)

        def feed():
            for ln in src:
                if ln.strip():
                    session.instruct(ln.strip())
            session.close()

        threading.Thread(target=feed, name="coamd-session-input", daemon=True).start()
        for update in session:
            chunks.append(update.joints)
            for e in update.events:
                if e["kind"] == "INSTRUCTION":
                    it = e["interpretation"]
                    print(f"frame {e['first_frame']} ({e['first_frame'] / 20:.2f} s): instruction {e['instruction']} "
                          f"{e['text']!r}, {e['latency_ms']:.0f} ms"
                          + (f"; {describe_interpretation(it, it['conditioned_text'])}" if it else ""), flush=True)
    joints = np.concatenate(chunks) if chunks else np.zeros((0, 21, 3), np.float32)
    texts = [e["text"] for e in session.events if e["kind"] == "INSTRUCTION"]
    save_motion(a.out, joints, text=" | ".join(texts))
    if a.bvh:
        from coamd.io.bvh_export import write_bvh

        write_bvh(a.bvh, joints)
    if a.gif:
        from coamd.io.render import render_motion

        render_motion(joints, a.gif, title=texts[-1] if texts else "")
    print(f"{len(joints)} frames ({len(joints) / 20:.2f} s), {len(texts)} instructions -> {a.out}")
    return {"frames": len(joints), "events": session.events}
