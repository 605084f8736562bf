"""The end-to-end demo (``make demo``): serve, request three motions over gRPC, save and time them.

1. make sure the exported ONNX graphs exist (exported once, cached) unless ``--backend torch``;
2. start ``coamd serve`` on loopback (a free port) and wait for grpc.health.v1 to say SERVING;
3. request three prompts through the Python client: one with recognizer guidance, one without,
   and one edit (the first 1.2 s of a real held-out clip kept as a prefix, the rest generated;
   without the processed dataset the prefix is the first 1.2 s of the unguided motion instead,
   so the demo needs only the shipped weights);
4. save each as ``.npz``, ``.bvh`` and a ``.gif`` preview in ``--out`` and print a latency table
   (time to first frame, total, real-time factor) measured by the client;
5. stop the server with SIGTERM (graceful drain) and check it exited cleanly.

Run: ``python -m coamd.demo --out demo_out`` (``--help`` for options).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from coamd.client.process import ServerProcess, ServerStartError
from coamd.paths import DEFAULT_DATASET

ROOT = Path(__file__).resolve().parents[1]
# prompts inside what the shipped model learned (the dataset's actions and styles)
GUIDED = "an energetic person waves the right hand"
UNGUIDED = "an elderly person walks slowly forward"
EDIT = "a person walks and turns left"


def _coamd() -> str:
    return str(Path(sys.executable).with_name("coamd"))


def ensure_export(backend: str, checkpoint: str | None) -> str:
    """Export the ONNX graphs once (cached by checkpoint hash) when the backend needs them.
    Returns the backend to use: ``torch`` when the ONNX path is unavailable (said on stdout)."""
    if backend == "torch":
        return backend
    try:
        from coamd.export.cache import ensure_export as export_once
        from coamd.runtime import backend_names

        if backend not in backend_names():
            raise RuntimeError(f"backend {backend!r} is not available (have {backend_names()})")
        t = time.monotonic()
        print("[demo] ONNX graphs: exporting what the cache lacks (once per checkpoint)", flush=True)
        out = export_once(checkpoint, progress=True)
        print(f"[demo] export ready in {time.monotonic() - t:.1f} s: {out}", flush=True)
        return backend
    except Exception as exc:  # noqa: BLE001 - the demo must still run end to end
        print(f"[demo] ONNX export unavailable ({type(exc).__name__}: {exc}); using the torch backend",
              flush=True)
        return "torch"


def start_server(backend: str, checkpoint: str | None, log_path: Path) -> ServerProcess:
    """`coamd serve` on a free loopback port; exits the demo with the log tail if it fails."""
    args = ["--backend", backend] + (["--checkpoint", checkpoint] if checkpoint else [])
    try:
        srv = ServerProcess(args, log_path=log_path, timeout_s=300)
    except ServerStartError as exc:
        raise SystemExit(f"[demo] {exc}") from exc
    print(f"[demo] server on {srv.target} after {srv.startup_s:.1f} s (log {log_path})", flush=True)
    return srv


def dataset_available(dataset: str | Path) -> bool:
    """Whether ``dataset`` is a built processed dataset (``make data``)."""
    root = Path(dataset)
    return (root / "dataset_card.json").is_file() and (root / "motions.npz").is_file()


def edit_prefix(dataset: str, seconds: float = 1.2):
    """The first ``seconds`` of a real held-out walking clip (frames, 21, 3) and its id.
    Raises FileNotFoundError without the processed dataset."""
    from coamd.data.dataset import MotionDataset

    ds = MotionDataset(dataset)
    n = int(round(seconds * 20))
    clips = [c for c in ds.split("test") if c.joints.shape[0] >= 2 * n and not c.mirrored]
    clip = next((c for c in clips if c.content == "walk"), clips[0])
    return clip.joints[:n], clip.id


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch", "tensorrt"),
                   help="server backend (default: %(default)s)")
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped one)")
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help="processed dataset for the edit prefix, a real held-out clip (default: %(default)s; "
                        "optional: without it the edit starts from the generated unguided motion)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per motion (default: %(default)s)")
    p.add_argument("--no-gif", action="store_true", help="skip the GIF previews")
    a = p.parse_args(argv)

    from coamd.client import MotionClient
    from coamd.client.cli import describe_interpretation, save_result

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.monotonic()
    backend = ensure_export(a.backend, a.checkpoint)
    n_prefix = int(round(1.2 * 20))
    if dataset_available(a.dataset):
        prefix, clip_id = edit_prefix(a.dataset)
        prefix_note = f"first 1.2 s of held-out clip {clip_id}"
    else:
        prefix = None  # taken from the unguided motion below
        prefix_note = "first 1.2 s of the generated unguided motion"
        print(f"[demo] no processed dataset at {a.dataset}: the edit starts from the first 1.2 s of the "
              f"generated unguided motion instead of a real held-out clip (`make data` builds the dataset)",
              flush=True)
    server = start_server(backend, a.checkpoint, out / "server.log")
    target = server.target
    rows = []
    try:
        with MotionClient(target) as client:
            client.wait_ready(30)
            print(f"[demo] health: {client.health()}")
            t = time.monotonic()  # first calls pay one-off costs (sessions, sidecar); keep them out of the table
            client.generate("a person stands", duration_s=0.8, guidance=True, iterations=2, timeout=300)
            print(f"[demo] warm-up request {1000 * (time.monotonic() - t):.0f} ms (not in the table)")
            jobs = [("guided", GUIDED, dict(guidance=True)),
                    ("unguided", UNGUIDED, dict(guidance=False)),
                    ("edit", EDIT, dict(guidance=False))]
            for name, text, kw in jobs:
                if name == "edit":
                    kw["edit_prefix"] = prefix if prefix is not None else unguided_joints[:n_prefix]
                res = client.generate(text, duration_s=a.duration, seed=7, timeout=300, **kw)
                if name == "unguided":
                    unguided_joints = res.joints
                stem = out / name
                t = time.monotonic()
                save_result(res, str(stem.with_suffix(".npz")), bvh=str(stem.with_suffix(".bvh")),
                            gif=None if a.no_gif else str(stem.with_suffix(".gif")))
                s = res.summary
                T = res.joints.shape[0]
                rows.append(dict(name=name, text=text, frames=T, ttff_ms=1000 * res.ttff_s,
                                 total_ms=1000 * res.total_s, rtf=(T / 20) / res.total_s,
                                 guidance=s["guidance_applied"], note=s["guidance_note"], backend=s["backend"],
                                 save_s=time.monotonic() - t))
                print(f"[demo] {name}: {T} frames, first frame {1000 * res.ttff_s:.0f} ms, "
                      f"total {1000 * res.total_s:.0f} ms -> {stem}.npz/.bvh" + ("" if a.no_gif else "/.gif"),
                      flush=True)
                it = s.get("interpretation")
                if it is not None:
                    print("[demo]   " + describe_interpretation(it, it["conditioned_text"]).replace("\n", "\n[demo]   "),
                          flush=True)
    finally:
        code = server.stop(grace_s=60)
    print(f"[demo] server stopped (exit {code})")
    print()
    print(f"| request | prompt | frames | time to first frame (ms) | total (ms) | real-time factor | guidance | backend |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        g = "on" if r["guidance"] else ("off" + (f" ({r['note']})" if r["note"] and "request" not in r["note"] else ""))
        print(f"| {r['name']} | {r['text']} | {r['frames']} | {r['ttff_ms']:.0f} | {r['total_ms']:.0f} | "
              f"{r['rtf']:.1f}x | {g} | {r['backend']} |")
    print(f"\nedit prefix: {prefix_note}; outputs in {out}/; "
          f"demo took {time.monotonic() - t_all:.0f} s")
    (out / "latency.json").write_text(json.dumps(rows, indent=2))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
