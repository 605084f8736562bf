"""``coamd eval``: score the shipped models with the evaluator and write Markdown + JSON + plots.

Tables (mirroring the CoAMD paper's, on our data; each with a real-motions row scored by the same
evaluator in the same run): generation (Table 1: real, unguided, guided), recognition (Table 3),
retrieval (Table 5), editing (Table 6), modality ablation (Table 7), guidance ablation (Table 8),
plus a quality-versus-latency plot over guidance scale and iteration count.
Sections whose models are not available are reported as missing, with the reason.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from coamd.evaluation import metrics as M
from coamd.evaluation import suite as S
from coamd.paths import DEFAULT_DATASET

GEN_COLS = [("r_top1", "R@1", 3), ("r_top2", "R@2", 3), ("r_top3", "R@3", 3), ("fid", "FID", 3),
            ("mm_dist", "MM-Dist", 3), ("diversity", "Diversity", 3), ("multimodality", "MModality", 3),
            ("cosine", "Cosine", 3), ("content_acc", "Content acc", 3), ("skate_speed", "Skate m/s", 3), ("jitter", "Jitter m/s³", 1),
            ("penetration_m", "Penetr. m", 4)]


def _fmt(v, nd=3) -> str:
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)) and len(v) == 2:
        m, ci = v
        if m is None or (isinstance(m, float) and np.isnan(m)):
            return "–"
        return f"{m:.{nd}f}" + (f" ± {ci:.{nd}f}" if ci else "")
    if isinstance(v, float) and np.isnan(v):
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _gen_rows(rows: dict) -> str:
    headers = ["Motions"] + [c[1] for c in GEN_COLS] + (["s/motion"] if any("sec_per_motion" in r for r in rows.values()) else [])
    body = []
    for name, r in rows.items():
        line = [name] + [_fmt(r.get(k), nd) for k, _, nd in GEN_COLS]
        if "sec_per_motion" in headers[-1:] or headers[-1] == "s/motion":
            line.append(_fmt(r.get("sec_per_motion"), 2))
        body.append(line)
    return _table(headers, body)


# ----------------------------------------------------------------------------- sections
def section_real(ev, data, idx_sets) -> dict:
    """The real row for each repeat's subset."""
    runs = []
    for r, idx in enumerate(idx_sets):
        clips = [data.clips[i] for i in idx]
        runs.append(S.score_generation(ev, data, [data.captions[i] for i in idx], [c.joints for c in clips], seed=r,
                                       contents=[c.content for c in clips],
                                       motion_emb=S.real_test_embeddings(ev, data)[idx]))
    return S.aggregate(runs)


def section_retrieval(ev, data, bundle, seed) -> dict:
    texts = data.captions
    out = {}
    t = S.embed_texts(ev, data, texts)
    m = S.real_test_embeddings(ev, data)
    out["evaluator"] = S.retrieval_table(t, m, texts, seed)
    if bundle is not None and getattr(bundle, "recognizer", None) is not None:
        rec = S.recognizer_embeddings(bundle, data, texts)
        out["recognizer"] = S.retrieval_table(rec["text"], rec["fused"], texts, seed)
    return out


def section_recognition(ev, data, bundle) -> dict:
    """Top-1 content/style by frequency group: the recognizer (fused and single-stream heads) and,
    as an independent reference, the evaluator's zero-shot nearest label text."""
    out = {"evaluator (zero-shot)": S.evaluator_recognition(ev, data)}
    if bundle is not None and getattr(bundle, "recognizer", None) is not None:
        rec = S.recognizer_embeddings(bundle, data, data.captions)
        ds = data.dataset
        for stream in ("fused", "joint", "bone", "motion"):
            if stream not in rec:
                continue
            row = {}
            for kind, names, train in (("content", ds.contents, data.train_contents),
                                       ("style", ds.styles, data.train_styles)):
                pred = S.label_predictions(rec[stream], rec[f"label_{kind}"], names)
                row[kind] = M.grouped_top1([getattr(c, kind) for c in data.clips], pred, M.frequency_groups(train))
            out[f"recognizer ({stream})"] = row
    return out


# ----------------------------------------------------------------------------- main entry
def run_evaluation(out: str | Path, dataset: str = DEFAULT_DATASET, subset: int = 64, repeats: int = 3,
                   seed: int = 0, evaluator_path: str | None = None, checkpoint: str | None = None,
                   backend: str = "torch", mm_texts: int = 16, mm_samples: int = 3, grid: bool = True,
                   generation: bool = True, progress: bool = True, command: str | None = None,
                   sections: tuple[str, ...] | None = None, grid_scales: list[float] | None = None,
                   grid_iterations: list[int] | None = None) -> dict:
    """Run the whole evaluation and write ``report.md``, ``report.json`` and ``plots/*.png`` in ``out``.

    subset: test texts per generation repeat (>= 32, the R-precision batch); repeats: generation
    repeats for the 95 % intervals; sections: subset of ``gen_sections.SECTIONS`` (None = all;
    recognition, retrieval and the real rows are always there). Raises ValueError on bad arguments, FileNotFoundError when the
    dataset or the evaluator is missing.
    """
    from coamd.data.dataset import MotionDataset
    from coamd.evaluation.evaluator import load_evaluator

    from coamd.evaluation.gen_sections import SECTIONS

    sections = tuple(SECTIONS if sections is None else sections)
    bad = [x for x in sections if x not in SECTIONS]
    if bad:
        raise ValueError(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    if subset < 32:
        raise ValueError(f"--subset must be at least 32 (one R-precision batch), got {subset}")
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}")
    t_start = time.perf_counter()
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    ev = load_evaluator(evaluator_path)
    ds = MotionDataset(dataset)
    data = S.prepare(ds, ev, seed=seed)
    n_test = len(data.clips)
    subset = min(subset, n_test)
    idx_sets = [S.subset_indices(n_test, subset, seed + r) for r in range(repeats)]
    report: dict = {"command": command, "settings": dict(subset=subset, repeats=repeats, seed=seed, backend=backend,
                                                          mm_texts=mm_texts, mm_samples=mm_samples, n_test=n_test,
                                                          n_fid_reference=len(data.ref_emb)),
                    "machine": _machine(),
                    "evaluator": _evaluator_meta(evaluator_path), "missing": {}}
    bundle = _load_bundle(checkpoint, report)
    report["retrieval"] = section_retrieval(ev, data, bundle, seed)
    report["recognition"] = section_recognition(ev, data, bundle)
    report["generation"] = {"Real motions": section_real(ev, data, idx_sets)}
    report["real_full_test"] = S.score_generation(ev, data, data.captions, [c.joints for c in data.clips], seed=seed,
                                                  contents=[c.content for c in data.clips],
                                                  motion_emb=S.real_test_embeddings(ev, data))
    if generation:
        from coamd.evaluation import gen_sections

        gen_sections.run_all(report, ev, data, idx_sets, checkpoint=checkpoint, backend=backend, bundle=bundle,
                             mm_texts=mm_texts, mm_samples=mm_samples, grid=grid, progress=progress,
                             sections=sections, grid_scales=grid_scales, grid_iterations=grid_iterations)
    else:
        report["missing"]["generation"] = "skipped (--no-generation)"
    from coamd.evaluation import gen_sections

    if "modality" in sections:
        gen_sections.modality_ablation(report, ev, data, bundle, idx_sets[0])
    report["settings"]["sections"] = list(sections)
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    report = S.to_jsonable(report)
    (out / "report.json").write_text(json.dumps(report, indent=1, allow_nan=True))
    plots = write_plots(report, out / "plots")
    (out / "report.md").write_text(render_markdown(report, plots))
    return report


def _machine() -> str:
    """CPU model and core count (Linux /proc/cpuinfo; platform module elsewhere)."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        pass
    return f"{name}, {_cpu_count()} cores, {gpu}"


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


def _evaluator_meta(path) -> dict:
    import torch

    from coamd.evaluation.evaluator import DEFAULT_CHECKPOINT

    p = Path(path) if path else DEFAULT_CHECKPOINT
    ck = torch.load(p, map_location="cpu", weights_only=False)
    return {"path": str(p.relative_to(Path.cwd()) if p.is_absolute() and p.is_relative_to(Path.cwd()) else p),
            "config": ck["config"], **ck.get("meta", {})}


def _load_bundle(checkpoint, report):
    try:
        from coamd.models.bundle import load_bundle
    except ImportError as exc:
        report["missing"]["recognizer"] = f"coamd.models.bundle not available ({exc})"
        return None
    try:
        bundle = load_bundle(checkpoint)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported, not fatal
        report["missing"]["recognizer"] = f"could not load the model bundle: {type(exc).__name__}: {exc}"
        return None
    if getattr(bundle, "recognizer", None) is None:
        report["missing"]["recognizer"] = f"no recognizer.pt in {getattr(bundle, 'path', checkpoint)}"
    return bundle


# ----------------------------------------------------------------------------- plots
def write_plots(report: dict, folder: Path) -> dict[str, str]:
    """Matplotlib figures (PNG) for the sections that exist; returns {name: relative path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    gen = report.get("generation", {})
    if len(gen) > 1:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        names = list(gen)
        for ax, (k, label) in zip(axes, (("r_top1", "R-precision top-1"), ("fid", "FID"), ("skate_speed", "foot skating (m/s)"))):
            vals = [gen[n].get(k, [np.nan, 0]) for n in names]
            ax.bar(range(len(names)), [v[0] for v in vals], yerr=[v[1] for v in vals], color="#4C72B0", capsize=3)
            ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
            ax.set_title(label, fontsize=10)
        fig.tight_layout()
        fig.savefig(folder / "generation.png", dpi=110)
        plt.close(fig)
        plots["generation"] = "plots/generation.png"
    grid = report.get("latency_grid", {}).get("points")
    if grid:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for ax, (k, label) in zip(axes, (("r_top1", "R-precision top-1 (higher is better)"), ("fid", "FID (lower is better)"))):
            for gs in sorted({p["guidance_scale"] for p in grid}):
                pts = sorted([p for p in grid if p["guidance_scale"] == gs], key=lambda p: p["iterations"])
                ax.plot([p["sec_per_motion"] for p in pts], [p[k] for p in pts], "o-",
                        label=("no guidance" if gs == 0 else f"guidance scale {gs:g}"))
                for p in pts:
                    ax.annotate(f"K={p['iterations']}", (p["sec_per_motion"], p[k]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
            real = report["generation"]["Real motions"].get(k)
            if real:
                ax.axhline(real[0], color="gray", ls="--", lw=1, label="real motions")
            ax.set_xlabel("seconds per motion (batched, CPU)")
            ax.set_title(label, fontsize=10)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "quality_vs_latency.png", dpi=110)
        plt.close(fig)
        plots["quality_vs_latency"] = "plots/quality_vs_latency.png"
    rec = report.get("recognition", {})
    if rec:
        fig, ax = plt.subplots(figsize=(8, 3.4))
        names = list(rec)
        w = 0.8 / 4
        for i, grp in enumerate(("overall", "head", "medium", "tail")):
            ax.bar(np.arange(len(names)) + i * w, [rec[n]["content"][grp] for n in names], w, label=grp)
        ax.set_xticks(np.arange(len(names)) + 1.5 * w, names, rotation=15, ha="right", fontsize=8)
        ax.set_ylabel("content top-1")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "recognition.png", dpi=110)
        plt.close(fig)
        plots["recognition"] = "plots/recognition.png"
    return plots


# ----------------------------------------------------------------------------- markdown
def render_markdown(r: dict, plots: dict[str, str]) -> str:
    """The report as Markdown (tables + plots + notes on what is missing)."""
    s = r["settings"]
    ev = r["evaluator"]
    L = ["# CoAMD evaluation report", ""]
    if r.get("command"):
        L += ["Command:", "", "```", r["command"], "```", ""]
    L += [f"Machine: {r['machine']}. Run time {r.get('seconds', 0):.0f} s. "
          f"Test split: {s['n_test']} clips; generation subset {s['subset']} texts × {s['repeats']} repeat(s) "
          f"(± = 95 % CI over repeats, 1.96·std/√R); FID reference: the {s['n_fid_reference']} real validation clips.",
          "",
          f"Evaluator: `{ev.get('path')}` — temporal-conv motion encoder + projection of frozen all-MiniLM-L6-v2, "
          f"trained contrastively on the train split, caption families A-D "
          f"(validation R-precision top-1 {ev.get('val_r_precision_top1', float('nan')):.3f}, "
          f"{ev.get('train_minutes', '?')} min). Independent of the action recognizer (different architecture and weights).",
          "", "Metric definitions: `coamd/evaluation/metrics.py` (R-precision, MM-Dist, Diversity, MultiModality after "
          "Guo et al. 2022; FID after Heusel et al. 2017 on evaluator embeddings; Cosine = CLIP-score analogue; "
          "foot skating, jitter, penetration after MBench). Chance R-precision top-1/2/3 = 0.031/0.062/0.094.", ""]
    if r.get("missing"):
        L += ["## Missing", ""] + [f"- **{k}**: {v}" for k, v in r["missing"].items()] + [""]
    if r.get("summary"):
        L += ["## Does recognizer guidance help?", "", r["summary"], ""]
    L += ["## Generation (paper Table 1)", "", _gen_rows(r["generation"]), ""]
    if "generation" in plots:
        L += [f"![generation]({plots['generation']})", ""]
    rf = r.get("real_full_test")
    if rf:
        L += [f"Real motions, whole test split ({s['n_test']} clips): R@1 {rf['r_top1']:.3f}, R@3 {rf['r_top3']:.3f}, "
              f"FID {rf['fid']:.3f}, MM-Dist {rf['mm_dist']:.3f}, Diversity {rf['diversity']:.3f}, cosine {rf['cosine']:.3f}.", ""]
    if "guidance_ablation" in r:
        L += ["## Guidance ablation (paper Table 8)", "", _gen_rows(r["guidance_ablation"]), ""]
    if "latency_grid" in r:
        g = r["latency_grid"]
        L += ["## Quality versus latency", "", g.get("note", ""), ""]
        rows = [["Real motions", "–", "–", f"{g['real']['r_top1']:.3f}", f"{g['real']['fid']:.3f}",
                 f"{g['real']['cosine']:.3f}", f"{g['real']['content_acc']:.3f}", "–"]] if "real" in g else []
        rows += [["Generated", f"{p['guidance_scale']:g}", str(p["iterations"]), f"{p['r_top1']:.3f}", f"{p['fid']:.3f}",
                  f"{p['cosine']:.3f}", f"{p.get('content_acc', float('nan')):.3f}", f"{p['sec_per_motion']:.2f}"]
                 for p in g["points"]]
        L += [_table(["Motions", "guidance scale", "iterations K", "R@1", "FID", "Cosine", "Content acc", "s/motion"],
                     rows), ""]
        if "quality_vs_latency" in plots:
            L += [f"![quality vs latency]({plots['quality_vs_latency']})", ""]
    if "editing" in r:
        L += ["## Editing (paper Table 6)", "", r["editing"].get("note", ""), ""]
        for task, rows in r["editing"]["tasks"].items():
            L += [f"### {task}", "", _gen_rows(rows), ""]
    L += ["## Recognition (paper Table 3)", "",
          "Top-1 on the test split; classes split by training frequency (head: top 10 % of classes, medium: next 30 %, "
          "tail: the rest). Content classes absent from the test split do not count.", ""]
    rows = []
    for name, row in r["recognition"].items():
        for kind in ("content", "style"):
            x = row[kind]
            rows.append([name, kind, _fmt(x["overall"]), _fmt(x["head"]) + f" (n={x['n_head']})",
                         _fmt(x["medium"]) + f" (n={x['n_medium']})", _fmt(x["tail"]) + f" (n={x['n_tail']})"])
    L += [_table(["Model", "Label", "Overall", "Head", "Medium", "Tail"], rows), ""]
    if "recognition" in plots:
        L += [f"![recognition]({plots['recognition']})", ""]
    L += ["## Retrieval (paper Table 5)", "",
          "Real test motions with one caption each; identical caption strings count as the same text. "
          "`batch32`: 32 pairs per gallery (chance R@1 = 0.031); `full`: the whole test split as the gallery.", ""]
    rows = []
    for model, tab in r["retrieval"].items():
        for proto, dirs in tab.items():
            for d, rec in dirs.items():
                rows.append([model, proto, "text→motion" if d == "t2m" else "motion→text"] +
                            [f"{rec[str(k)] if str(k) in rec else rec[k]:.3f}" for k in (1, 2, 3, 5, 10)])
    L += [_table(["Model", "Gallery", "Direction", "R@1", "R@2", "R@3", "R@5", "R@10"], rows), ""]
    if "modality_ablation" in r:
        ma = r["modality_ablation"]
        L += ["## Modality ablation (paper Table 7)", "", ma.get("note", ""), ""]
        if ma.get("autoencoder"):
            L += [_table(["Autoencoder streams", "MPJPE cm", "R@1", "R@3", "FID", "Cosine"],
                         [[k, _fmt(v.get("mpjpe_cm"), 2), _fmt(v["r_top1"]), _fmt(v["r_top3"]), _fmt(v["fid"]),
                           _fmt(v["cosine"])] for k, v in ma["autoencoder"].items()]), ""]
        if ma.get("recognizer"):
            L += [_table(["Recognizer", "Content top-1", "Style top-1"],
                         [[k, _fmt(v["content"]), _fmt(v["style"])] for k, v in ma["recognizer"].items()]), ""]
    return "\n".join(L) + "\n"
