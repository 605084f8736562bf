"""Latency benchmark of text-to-motion generation: time to first frame, total latency, real-time
factor, per backend, guidance on/off, token order and motion length; sweeps over iterations and
ODE steps; FLOPs of one generation and achieved FLOP/s against a matmul peak measured in the same
run; where the time goes (per-stage profile).

Run: ``coamd bench latency --json benchmarks/results/latency.json`` (``--help`` for options).

Definitions
    TTFF      time from the request (text not yet encoded; a fresh sampler, so no cached text
              features) to the first non-empty FrameChunk of ``MaskedARSampler.stream``.
    total     time until the last frame.  RTF = motion seconds / total seconds.
    FLOPs     counted with ``torch.utils.flop_counter.FlopCounterMode`` on the torch backend for
              the same request (PyTorch's MHA fast path disabled so attention is counted; the
              guidance backward pass is included). Achieved FLOP/s = FLOPs / total latency.
Each configuration: one warm-up, then the median of ``--repeats`` runs. Timings are only
comparable within one run (machine load changes between runs): the ratios are the result.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hardware import machine, matmul_peak  # noqa: E402

DURATIONS = (2.0, 5.0, 10.0)
ORDERS = ("left_to_right", "random")
TEXTS = ("a person walks forward happily", "an angry man kicks with the right leg",
         "someone waves the left hand", "an elderly person walks slowly and turns left")


class _Timed:
    """Wraps a backend or guide; accumulates wall time per method into ``stages``."""

    def __init__(self, inner, stages: dict, prefix: str = ""):
        self._inner, self._stages, self._prefix = inner, stages, prefix
        for a in ("name", "latent_dim", "max_tokens"):
            if hasattr(inner, a):
                setattr(self, a, getattr(inner, a))

    def __getattr__(self, k):
        f = getattr(self._inner, k)
        if not callable(f) or k.startswith("has_"):
            return f

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return f(*a, **kw)
            finally:
                self._stages[self._prefix + k] += time.perf_counter() - t
        return timed


def _request(duration: float, guidance: bool, order: str, seed: int, **kw):
    from coamd.sampling.sampler import GenerationRequest

    return GenerationRequest(text=TEXTS[seed % len(TEXTS)], duration_s=duration, seed=seed, order=order,
                             guidance=guidance, **kw)


def time_generation(backend, guide, req) -> dict:
    """One generation on a fresh sampler: {ttff_ms, total_ms, frames, stages_ms}."""
    from coamd.sampling.sampler import MaskedARSampler

    stages: dict[str, float] = defaultdict(float)
    sampler = MaskedARSampler(_Timed(backend, stages), _Timed(guide, stages, "guide.") if guide else None)
    t0 = time.perf_counter()
    ttff, frames = None, 0
    for chunk in sampler.stream(req):
        if ttff is None:
            ttff = time.perf_counter() - t0
        frames += len(chunk.joints)
    total = time.perf_counter() - t0
    return {"ttff_ms": ttff * 1e3, "total_ms": total * 1e3, "frames": frames,
            "stages_ms": {k: v * 1e3 for k, v in stages.items()}}


def measure(backend, guide, req_kw: dict, repeats: int) -> dict:
    """Warm-up + median of ``repeats`` runs (seeds vary so texts and noise vary)."""
    time_generation(backend, guide, _request(seed=100, **req_kw))
    runs = [time_generation(backend, guide, _request(seed=i, **req_kw)) for i in range(repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("ttff_ms", "total_ms")}
    stages = {k: statistics.median(r["stages_ms"].get(k, 0.0) for r in runs)
              for k in sorted({k for r in runs for k in r["stages_ms"]})}
    return {**{k: round(v, 2) for k, v in med.items()}, "frames": runs[0]["frames"],
            "rtf": round(req_kw["duration"] / (med["total_ms"] / 1e3), 2),
            "stages_ms": {k: round(v, 2) for k, v in stages.items()},
            "runs_total_ms": [round(r["total_ms"], 2) for r in runs]}


def count_flops(bundle, req_kw: dict) -> float:
    """FLOPs of one generation on the torch backend (FlopCounterMode; MHA fast path off)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from coamd.runtime.torch_backend import TorchBackend
    from coamd.sampling.guidance import TorchGuide
    from coamd.sampling.sampler import MaskedARSampler

    be = TorchBackend(bundle.transformer, bundle.diffusion, bundle.autoencoder, bundle.text_encoder)
    guide = TorchGuide(bundle.autoencoder, bundle.recognizer, bundle.transformer) if req_kw["guidance"] else None
    prev = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        fc = FlopCounterMode(display=False)
        with fc:
            MaskedARSampler(be, guide).sample(_request(seed=0, **req_kw))
        return float(fc.get_total_flops())
    finally:
        torch.backends.mha.set_fastpath_enabled(prev)


def build_backends(bundle, names: list[str], threads: int | None = None, progress: bool = True) -> dict:
    """{label: backend}: ``torch`` (eager), ``onnxruntime`` (one velocity call per ODE step, the
    default), ``onnxruntime-fused`` (the fused 8-step Euler ODE graph, to measure what fusing pays),
    ``tensorrt`` (skipped with the reason where the provider is missing)."""
    from coamd.runtime.torch_backend import TorchBackend

    out, skipped = {}, {}
    export_dir = None
    for n in names:
        if n == "torch":
            out[n] = TorchBackend(bundle.transformer, bundle.diffusion, bundle.autoencoder, bundle.text_encoder)
            continue
        from coamd.export.cache import ensure_export
        from coamd.runtime.onnx_backend import OnnxRuntimeBackend, ProviderUnavailable

        export_dir = export_dir or ensure_export(bundle=bundle, progress=progress)
        try:
            if n == "onnxruntime":  # as load_engine builds it (one velocity call per ODE step)
                out[n] = OnnxRuntimeBackend(export_dir, threads=threads, fused_ode=False)
            elif n == "onnxruntime-fused":  # all ODE steps of an iteration in one graph
                fused_dir = ensure_export(bundle=bundle, fused_ode=(("euler", 8),), progress=progress)
                out[n] = OnnxRuntimeBackend(fused_dir, threads=threads, fused_ode=True)
            elif n == "tensorrt":
                from coamd.runtime.tensorrt_backend import TensorRTBackend

                out[n] = TensorRTBackend(export_dir)
            else:
                raise ValueError(f"unknown backend {n!r}")
        except ProviderUnavailable as exc:
            skipped[n] = str(exc)
    return out, skipped


def run(json_path: str | Path, md_path: str | Path | None = None, plots_dir: str | Path | None = None,
        backends=("torch", "onnxruntime", "onnxruntime-fused", "tensorrt"), durations=DURATIONS,
        orders=ORDERS, guidance=(False, True), repeats: int = 3, sweep: bool = True,
        checkpoint: str | None = None, bundle=None, iterations: int | None = None,
        ode_steps: int | None = None, threads: int | None = None, progress: bool = True,
        command: str | None = None, sweep_values=(2, 4, 8, 16), random_init: str | None = None, dataset: str = "data/processed") -> dict:
    """Run the benchmark, write JSON (+ markdown and plots); returns the JSON dict."""
    from tqdm import tqdm

    from coamd.sampling.sampler import GenerationRequest

    if bundle is None and random_init:
        bundle = random_bundle(random_init, dataset)
    if bundle is None:
        from coamd.models.bundle import load_bundle

        bundle = load_bundle(checkpoint)
    from coamd.sampling.guidance import TorchGuide

    defaults = GenerationRequest(text="x")
    settings = {"iterations": iterations or defaults.iterations, "ode_steps": ode_steps or defaults.ode_steps,
                "cfg_scale": defaults.cfg_scale, "solver": defaults.solver,
                "guidance_scale": defaults.guidance_scale}
    result: dict[str, Any] = {"command": command, "machine": machine(), "settings": settings,
                              "weights": f"random init of preset {random_init}" if random_init
                              else str(getattr(bundle, "path", checkpoint)),
                              "model_configs": {k: getattr(bundle, k).config.to_dict()
                                                for k in ("autoencoder", "recognizer", "transformer")},
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    result["matmul"] = matmul_peak()
    bes, skipped = build_backends(bundle, list(backends), threads, progress)
    result["backends"] = {k: b.name for k, b in bes.items()}
    result["skipped_backends"] = skipped
    guide = TorchGuide(bundle.autoencoder, bundle.recognizer, bundle.transformer)
    jobs = [(b, g, o, d) for b in bes for g in guidance for o in orders for d in durations
            if not (b == "onnxruntime-fused" and (d != max(durations)))]
    records = []
    for b, g, o, d in tqdm(jobs, desc="latency", disable=not progress):
        kw = dict(duration=d, guidance=g, order=o, iterations=settings["iterations"],
                  ode_steps=settings["ode_steps"])
        m = measure(bes[b], guide if g else None, kw, repeats)
        records.append({"backend": b, "backend_name": bes[b].name, "guidance": g, "order": o,
                        "duration_s": d, **m, "iterations": settings["iterations"],
                        "ode_steps": settings["ode_steps"]})
    result["records"] = records
    # FLOPs of one 10 s generation, achieved FLOP/s per backend
    dmax = max(durations)
    flops = {}
    for g in guidance:
        f = count_flops(bundle, dict(duration=dmax, guidance=g, order="left_to_right",
                                     iterations=settings["iterations"], ode_steps=settings["ode_steps"]))
        flops["guided" if g else "unguided"] = f
    peak = result["matmul"]["peak_gflops"]
    result["flops"] = {"duration_s": dmax, "flops": flops, "matmul_peak_gflops": peak, "achieved": []}
    for r in records:
        if r["duration_s"] == dmax and r["order"] == "left_to_right":
            f = flops["guided" if r["guidance"] else "unguided"]
            gf = f / (r["total_ms"] / 1e3) / 1e9
            result["flops"]["achieved"].append({"backend": r["backend"], "guidance": r["guidance"],
                                                "gflops_per_s": round(gf, 2),
                                                "fraction_of_peak": round(gf / peak, 4)})
    if sweep and "onnxruntime" in bes:
        result["sweeps"] = run_sweeps(bes, settings, repeats, progress, sweep_values)
    result["targets"] = check_targets(result)
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(result, indent=1))
    if md_path:
        Path(md_path).write_text(markdown(result))
    if plots_dir:
        plot(result, plots_dir)
    return result


def random_bundle(preset: str, dataset: str = "data/processed"):
    """A ModelBundle of ``preset``'s architecture with random weights (real dataset statistics).

    Latency and FLOPs depend on the shapes, not on the weight values, so this times the shipped
    architecture before (or without) its trained checkpoint. Raises ValueError for an unknown preset."""
    from coamd.data.dataset import MotionDataset
    from coamd.models.bundle import ModelBundle
    from coamd.models.generator import build_generator
    from coamd.models.presets import build_autoencoder, build_recognizer

    import torch

    torch.manual_seed(0)  # the same random weights every run: the export cache is reused
    stats = MotionDataset(dataset).stats
    ae = build_autoencoder(preset, stats).eval()
    rec = build_recognizer(preset, stats).eval()
    tr, df = build_generator(preset, latent_dim=ae.config.latent_dim)
    return ModelBundle(Path(f"random-init:{preset}"), ae, rec, tr.eval(), df.eval())


def run_sweeps(bes: dict, settings: dict, repeats: int, progress: bool = True,
               values=(2, 4, 8, 16)) -> list[dict]:
    """Unguided 10 s, left_to_right, on onnxruntime and torch: latency vs iterations and ODE steps."""
    from tqdm import tqdm

    out = []
    jobs = [(b, "iterations", v) for b in ("onnxruntime", "torch") if b in bes for v in values]
    jobs += [(b, "ode_steps", v) for b in ("onnxruntime", "torch") if b in bes for v in values]
    for b, knob, v in tqdm(jobs, desc="sweeps", disable=not progress):
        kw = dict(duration=10.0, guidance=False, order="left_to_right", iterations=settings["iterations"],
                  ode_steps=settings["ode_steps"])
        kw[knob] = v
        m = measure(bes[b], None, kw, max(1, repeats - 1))
        fused = bool(getattr(bes[b], "has_fused_ode", lambda *a: False)(settings["solver"], kw["ode_steps"], True))
        out.append({"backend": b, "knob": knob, "value": v, "iterations": kw["iterations"],
                    "ode_steps": kw["ode_steps"], "fused_ode": fused, "total_ms": m["total_ms"],
                    "ttff_ms": m["ttff_ms"], "rtf": m["rtf"]})
    return out


def _rec(result, backend, guidance, order, d):
    for r in result["records"]:
        if (r["backend"], r["guidance"], r["order"], r["duration_s"]) == (backend, guidance, order, d):
            return r
    return None


def check_targets(result: dict) -> list[dict]:
    """The issue's targets (2-core CPU): unguided 10 s RTF >= 20, guided >= 5, ORT >= 2x torch,
    TTFF <= 100 ms in left_to_right order; each with the measured value and met/missed."""
    out = []
    dmax = max(r["duration_s"] for r in result["records"])
    for b in ("onnxruntime", "torch"):
        for g, target in ((False, 20.0), (True, 5.0)):
            rs = [r for r in result["records"] if r["backend"] == b and r["guidance"] == g and r["duration_s"] == dmax]
            if rs:
                best = max(r["rtf"] for r in rs)
                out.append({"target": f"{b} {'guided' if g else 'unguided'} {dmax:g} s RTF >= {target:g}",
                            "measured": best, "met": best >= target,
                            "ratio_to_target": round(best / target, 2)})
    for g in (False, True):
        for o in ORDERS:
            a, t = _rec(result, "onnxruntime", g, o, dmax), _rec(result, "torch", g, o, dmax)
            if a and t:
                sp = t["total_ms"] / a["total_ms"]
                out.append({"target": f"onnxruntime >= 2x torch ({'guided' if g else 'unguided'}, {o}, {dmax:g} s)",
                            "measured": round(sp, 2), "met": sp >= 2.0, "ratio_to_target": round(sp / 2.0, 2)})
    for g in (False, True):
        rs = [r for r in result["records"] if r["backend"] == "onnxruntime" and r["guidance"] == g
              and r["order"] == "left_to_right"]
        if rs:
            worst = max(r["ttff_ms"] for r in rs)
            out.append({"target": f"onnxruntime TTFF <= 100 ms, left_to_right, {'guided' if g else 'unguided'}",
                        "measured": worst, "met": worst <= 100.0, "ratio_to_target": round(100.0 / worst, 2)})
    return out


def markdown(result: dict) -> str:
    """The results as markdown: machine, settings, latency table, targets, FLOPs, profile."""
    m, s = result["machine"], result["settings"]
    lines = [f"# Latency benchmark ({result['started']})", "", f"Weights: {result.get('weights')}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, no GPU={not m['gpu']}; torch {m['torch']}, "
             f"onnxruntime {m['onnxruntime']}. fp32 matmul peak measured in this run: "
             f"{result['matmul']['peak_gflops']} GFLOP/s (squares {result['matmul']['square']}, "
             f"10x512: {result['matmul']['thin_10x512']}).", "",
             f"Settings: {s['iterations']} iterations, {s['ode_steps']} {s['solver']} ODE steps, CFG "
             f"{s['cfg_scale']:g}, guidance scale {s['guidance_scale']:g}. Backends: "
             + ", ".join(f"`{k}` = {v}" for k, v in result["backends"].items()), ""]
    if result.get("skipped_backends"):
        lines += ["Skipped: " + "; ".join(f"`{k}`: {v}" for k, v in result["skipped_backends"].items()), ""]
    if result.get("command"):
        lines += [f"Command: `{result['command']}`", ""]
    lines += ["| backend | guidance | order | motion (s) | TTFF (ms) | total (ms) | RTF | speed-up vs torch |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in result["records"]:
        t = _rec(result, "torch", r["guidance"], r["order"], r["duration_s"])
        sp = f"{t['total_ms'] / r['total_ms']:.2f}x" if t else "-"
        lines.append(f"| {r['backend']} | {'on' if r['guidance'] else 'off'} | {r['order']} | {r['duration_s']:g} | "
                     f"{r['ttff_ms']:.0f} | {r['total_ms']:.0f} | {r['rtf']:.1f} | {sp} |")
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---:|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no (x' + str(t['ratio_to_target']) + ')'} |")
    f = result["flops"]
    lines += ["", f"## FLOPs of one {f['duration_s']:g} s generation", "",
              ", ".join(f"{k}: {v / 1e9:.2f} GFLOP" for k, v in f["flops"].items())
              + f"; matmul peak {f['matmul_peak_gflops']} GFLOP/s.", "",
              "| backend | guidance | achieved GFLOP/s | of peak |", "|---|---|---:|---:|"]
    for a in f["achieved"]:
        lines.append(f"| {a['backend']} | {'on' if a['guidance'] else 'off'} | {a['gflops_per_s']} | "
                     f"{100 * a['fraction_of_peak']:.1f} % |")
    lines += ["", "## Where the time goes (10 s, left_to_right, median ms per generation)", "",
              "| backend | guidance | " + " | ".join(_STAGES) + " | total |", "|---|---|" + "---:|" * (len(_STAGES) + 1)]
    dmax = f["duration_s"]
    for r in result["records"]:
        if r["duration_s"] == dmax and r["order"] == "left_to_right":
            st = r["stages_ms"]
            lines.append(f"| {r['backend']} | {'on' if r['guidance'] else 'off'} | "
                         + " | ".join(f"{st.get(k, 0):.0f}" for k in _STAGES) + f" | {r['total_ms']:.0f} |")
    if result.get("sweeps"):
        lines += ["", "## Sweeps (unguided 10 s, left_to_right)", "",
                  "| backend | iterations | ODE steps | fused ODE graph | total (ms) | RTF |", "|---|---:|---:|---|---:|---:|"]
        for w in result["sweeps"]:
            lines.append(f"| {w['backend']} | {w['iterations']} | {w['ode_steps']} | {'yes' if w['fused_ode'] else 'no'} | "
                         f"{w['total_ms']:.0f} | {w['rtf']:.1f} |")
    return "\n".join(lines) + "\n"


_STAGES = ("encode_text", "context", "velocity", "solve", "decode", "guide.guide")


def plot(result: dict, out_dir: str | Path) -> list[Path]:
    """latency_vs_length.png and latency_vs_steps.png in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    series = defaultdict(list)
    for r in result["records"]:
        if r["order"] == "left_to_right":
            series[(r["backend"], r["guidance"])].append((r["duration_s"], r["total_ms"]))
    for (b, g), pts in sorted(series.items()):
        if len(pts) > 1:
            pts.sort()
            ax.plot(*zip(*pts), marker="o", label=f"{b}, guidance {'on' if g else 'off'}")
    ds = sorted({r["duration_s"] for r in result["records"]})
    ax.plot(ds, [d * 1e3 for d in ds], "k:", label="real time (RTF 1)")
    ax.plot(ds, [d * 1e3 / 20 for d in ds], "k--", label="RTF 20")
    ax.set_xlabel("motion length (s)")
    ax.set_ylabel("total latency (ms)")
    ax.set_yscale("log")
    ax.set_title("Latency vs motion length (left_to_right)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "latency_vs_length.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    if result.get("sweeps"):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
        for ax, knob in zip(axes, ("iterations", "ode_steps")):
            for b in ("onnxruntime", "torch"):
                pts = sorted((w["value"], w["total_ms"]) for w in result["sweeps"] if w["knob"] == knob and w["backend"] == b)
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=b)
            ax.axhline(500, color="k", ls="--", lw=0.8, label="RTF 20 (10 s)")
            ax.set_xscale("log", base=2)
            ax.set_xlabel(knob.replace("_", " "))
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        axes[0].set_ylabel("total latency (ms), 10 s unguided")
        fig.tight_layout()
        paths.append(out / "latency_vs_steps.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line (also reached through ``coamd bench latency``)."""
    import argparse

    p = argparse.ArgumentParser(prog="coamd bench latency", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    a = p.parse_args(argv)
    return run_from_args(a, " ".join(["coamd bench latency"] + (argv or sys.argv[1:])))


def add_arguments(p) -> None:
    p.add_argument("--json", required=True, help="output JSON file")
    p.add_argument("--markdown", default=None, help="markdown table (default: the JSON path with .md)")
    p.add_argument("--plots", default=None, help="folder for the plots (default: <json stem>_plots next to the JSON)")
    p.add_argument("--backends", default="torch,onnxruntime,onnxruntime-fused,tensorrt",
                   help="comma list of torch, onnxruntime, onnxruntime-fused, tensorrt (default: all; "
                        "missing providers are skipped with the reason)")
    p.add_argument("--durations", default="2,5,10", help="motion lengths in seconds (default: 2,5,10)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per configuration, median (default: 3)")
    p.add_argument("--iterations", type=int, default=None, help="AR iterations (default: the sampler's)")
    p.add_argument("--ode-steps", type=int, default=None, help="ODE steps (default: the sampler's)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: cores)")
    p.add_argument("--no-sweep", action="store_true", help="skip the iterations/ODE-steps sweeps")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    p.add_argument("--random-init", default=None, metavar="PRESET",
                   help="time PRESET's architecture (small|paper) with random weights instead of a checkpoint "
                        "(latency and FLOPs depend on shapes, not weight values)")
    p.add_argument("--sweep-values", default="2,4,8,16", help="iterations / ODE steps of the sweeps (default: 2,4,8,16)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_from_args(a, command: str) -> int:
    jp = Path(a.json)
    res = run(jp, a.markdown or jp.with_suffix(".md"), a.plots or jp.parent / f"{jp.stem}_plots",
              backends=[b.strip() for b in a.backends.split(",") if b.strip()],
              durations=tuple(float(x) for x in a.durations.split(",")), repeats=a.repeats,
              sweep=not a.no_sweep, checkpoint=a.checkpoint, iterations=a.iterations, ode_steps=a.ode_steps,
              threads=a.threads, progress=not a.quiet, command=command, random_init=a.random_init,
              sweep_values=tuple(int(v) for v in a.sweep_values.split(",")))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
