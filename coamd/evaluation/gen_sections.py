"""Report sections that need the generator: generation rows, editing, guidance ablation, the
quality-versus-latency grid; and the modality ablation (autoencoder reconstructions, recognizer
streams). Each section records why it is missing instead of failing the whole report.
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from coamd.evaluation import suite as S
from coamd.evaluation.generation import GenerationRunner, GeneratorUnavailable
from coamd.paths import DEFAULT_RUNS
from coamd.sampling.cleanup import clean_motion
from coamd.skeleton import FPS

EDIT_TASKS = {
    # task: (kept frames described as fractions of the clip): the paper's Table 6 settings,
    # with the usual split of the text-to-motion editing literature (MoMask/MMM): keep 50 %
    "prefix": "keep the first 50 % of the real clip, generate the rest",
    "suffix": "keep the last 50 % of the real clip, generate the beginning",
    "in-between": "keep the first 25 % and the last 25 %, generate the middle 50 %",
}


def _bar(total, desc, progress):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, unit="set")


def _texts(data, idx):
    clips = [data.clips[i] for i in idx]
    return [data.captions[i] for i in idx], S.durations_for(clips), [c.content for c in clips]


def _generate(runner, texts, durs, seed, sampler=None, **settings):
    reqs = [runner.request(t, d, seed * 100003 + i, **settings) for i, (t, d) in enumerate(zip(texts, durs))]
    motions, sec = runner.run(reqs, sampler=sampler)
    return motions, sec / max(len(reqs), 1)


def _score(ev, data, texts, motions, contents, sec=None, mm=None, seed=0):
    row = S.score_generation(ev, data, texts, motions, mm_motions=mm, seed=seed, contents=contents)
    if sec is not None:
        row["sec_per_motion"] = sec
    return row


SECTIONS = ("generation", "guidance", "editing", "grid", "modality")
CLEANED = ", foot-contact cleanup"  # row-name suffix of the cleaned rows


def run_all(report, ev, data, idx_sets, checkpoint=None, backend="torch", bundle=None, mm_texts=16,
            mm_samples=3, grid=True, progress=True, sections=SECTIONS, grid_scales=None, grid_iterations=None) -> None:
    """Fill report["generation"] (unguided, guided: the model's raw output; each also with
    the runtime's foot-contact cleanup applied to the same motions) and, when in ``sections``,
    "guidance_ablation" ("guidance"), "editing" and "latency_grid" ("grid")."""
    try:
        runner = GenerationRunner(backend=backend, checkpoint=checkpoint)
    except GeneratorUnavailable as exc:
        report["missing"]["generation"] = str(exc)
        return
    report["settings"]["generation_backend"] = runner.backend_name
    defaults = runner.request("a person walks", 2.0, 0)
    report["settings"]["sampler_defaults"] = {k: getattr(defaults, k) for k in
                                              ("cfg_scale", "iterations", "ode_steps", "solver", "order",
                                               "guidance", "guidance_scale") if hasattr(defaults, k)}
    modes = {"Unguided (w/o recognizer)": dict(guidance=False), "Guided (recognizer J+B+M)": dict(guidance=True)}
    runs = {k: [] for k in modes}
    first: dict = {}
    bar = _bar(len(idx_sets) * len(modes), "generation", progress)
    for r, idx in enumerate(idx_sets):
        texts, durs, contents = _texts(data, idx)
        for name, st in modes.items():
            motions, sec = _generate(runner, texts, durs, seed=r, **st)
            states = list(runner.last_states)
            mm = None
            if mm_samples >= 2 and mm_texts > 0:
                k = min(mm_texts, len(texts))
                extra = []
                for s in range(1, mm_samples):
                    m2, _ = _generate(runner, texts[:k], durs[:k], seed=10_000 * s + r, **st)
                    extra.append(m2)
                mm = [[motions[i]] + [e[i] for e in extra] for i in range(k)]
            runs[name].append(_score(ev, data, texts, motions, contents, sec, mm, seed=r))
            # the same motions through the runtime's foot-contact cleanup (on by default for users)
            cm = [[clean_motion(x) for x in g] for g in mm] if mm is not None else None
            runs.setdefault(name + CLEANED, []).append(
                _score(ev, data, texts, [clean_motion(x) for x in motions], contents, sec, cm, seed=r))
            if r == 0:
                first[name] = (motions, sec, states)
            bar.update(1)
    bar.close()
    for name in runs:
        report["generation"][name] = S.aggregate(runs[name])
    report["generation_runs"] = runs
    report["summary"] = guidance_summary(report["generation"])

    idx = idx_sets[0]
    texts, durs, contents = _texts(data, idx)
    if "editing" in sections:
        try:
            report["editing"] = editing(runner, ev, data, idx, guidance=(False, True))
        except Exception as exc:  # noqa: BLE001
            report["missing"]["editing"] = f"{type(exc).__name__}: {exc}"
    if grid and "grid" in sections:
        d = report["settings"]["sampler_defaults"]
        K, g = int(d.get("iterations", 8)), float(d.get("guidance_scale", 1.0))
        reuse = {(0.0, K): first["Unguided (w/o recognizer)"][:2], (g, K): first["Guided (recognizer J+B+M)"][:2]}
        report["latency_grid"] = latency_grid(runner, ev, data, idx, d, progress, reuse=reuse,
                                              scales=grid_scales, iterations=grid_iterations)
    if "guidance" not in sections:
        return
    real_row = S.score_generation(ev, data, texts, [data.clips[i].joints for i in idx], seed=0, contents=contents)
    # guidance ablation (repeat 0's texts and seeds)
    abl = {"Real motions": real_row}
    abl["No guidance"] = runs["Unguided (w/o recognizer)"][0]
    try:
        m, sec = _generate(runner, texts, durs, seed=0, guidance=True, guidance_weights=JOINTS_ONLY)
        abl["Guidance, joint head of the J+B+M recognizer"] = _score(ev, data, texts, m, contents, sec)
    except Exception as exc:  # noqa: BLE001
        report["missing"]["guidance_joints_only"] = f"{type(exc).__name__}: {exc}"
    j_path = Path(ABLATION_DIR) / "recognizer_j.pt"
    if j_path.exists():
        try:
            ck = _load(j_path)
            m, sec = _generate(runner, texts, durs, seed=0, sampler=_sampler_with_recognizer(runner, ck),
                               guidance=True)
            abl[f"Guidance, separately trained J recognizer ({_budget(ck)})"] = _score(ev, data, texts, m,
                                                                                          contents, sec)
        except Exception as exc:  # noqa: BLE001
            report["missing"]["guidance_separate_j"] = f"{type(exc).__name__}: {exc}"
    else:
        report["missing"]["guidance_separate_j"] = f"{j_path} not found (run `make ablation`)"
    abl["Guidance, full recognizer (J+B+M)"] = runs["Guided (recognizer J+B+M)"][0]
    try:
        _, sec0, states0 = first["Unguided (w/o recognizer)"]
        t0 = time.perf_counter()
        m1 = _guide_once(runner, states0)
        sec1 = sec0 + (time.perf_counter() - t0) / len(texts)
        abl["Guidance once, without the AR loop"] = _score(ev, data, texts, m1, contents, sec1)
    except Exception as exc:  # noqa: BLE001
        report["missing"]["guidance_once"] = f"{type(exc).__name__}: {exc}"
    report["guidance_ablation"] = abl


def _sampler_with_recognizer(runner, ckpt: dict):
    """A copy of the runner's sampler whose guidance sidecar uses the recognizer checkpoint ``ckpt``."""
    import copy

    from coamd.models.recognizer import ActionRecognizer
    from coamd.sampling.guidance import TorchGuide

    guide = runner.sampler.guide
    rec = ActionRecognizer.from_checkpoint(ckpt)
    sampler = copy.copy(runner.sampler)
    stats = SimpleNamespace(latent_mean=guide.latent_mean, latent_std=guide.latent_std)  # what TorchGuide reads
    sampler.guide = TorchGuide(guide.autoencoder, rec, stats, guide.device)
    return sampler


def guidance_summary(gen: dict) -> str:
    """One paragraph: guided minus unguided for the headline metrics, with the CIs."""
    u, g = gen.get("Unguided (w/o recognizer)"), gen.get("Guided (recognizer J+B+M)")
    if not u or not g:
        return "Not measured."
    parts = []
    for k, label, better in (("r_top1", "R-precision top-1", 1), ("r_top3", "R-precision top-3", 1),
                             ("fid", "FID", -1), ("cosine", "cosine score", 1), ("content_acc", "content accuracy (evaluator)", 1),
                             ("sec_per_motion", "seconds per motion", -1)):
        if k in u and k in g:
            d = g[k][0] - u[k][0]
            sig = abs(d) > (u[k][1] + g[k][1]) if (u[k][1] or g[k][1]) else None
            verdict = ("better" if d * better > 0 else "worse") if d != 0 else "equal"
            parts.append(f"{label}: {u[k][0]:.3f} → {g[k][0]:.3f} ({d:+.3f}, {verdict}"
                         + ("" if sig is None else (", outside the overlapping CIs" if sig else ", within the CIs")) + ")")
    return "Guided vs unguided on the same texts and seeds — " + "; ".join(parts) + "."


JOINTS_ONLY = {"fused": 0.0, "joint": 1.0, "bone": 0.0, "motion": 0.0}


def _guide_once(runner, states):
    """Guidance applied ONCE, after an unguided run, to all tokens (no autoregressive loop): the
    finished generator latents of each state get one eq. 6-8 step (default scale and weights)
    and are decoded again."""
    sampler = runner.sampler
    if sampler.guide is None:
        raise GeneratorUnavailable("the engine has no recognizer guide")
    out = []
    for st in states:
        z = st.z[None].astype(np.float32)
        fill = np.ones(z.shape[:2], bool)
        z2 = sampler.guide.guide(z, fill, st.text_feat[None], float(st.request.guidance_scale), None)
        out.append(np.asarray(sampler.backend.decode(z2), np.float32)[0])
    return out


def editing(runner, ev, data, idx, guidance=(False, True)) -> dict:
    """Prefix, suffix and in-between generation on repeat 0's texts (sampler defaults), one row per
    recognizer-guidance setting in ``guidance`` (a bool or a tuple of bools), same seeds."""
    texts, durs, contents = _texts(data, idx)
    clips = [data.clips[i] for i in idx]
    real = S.score_generation(ev, data, texts, [c.joints for c in clips], seed=0, contents=contents)
    settings = (guidance,) if isinstance(guidance, bool) else tuple(guidance)
    tasks = {task: {"Real motions": real} for task in EDIT_TASKS}
    for guided in settings:
        _edit_rows(runner, ev, data, texts, contents, clips, guided, tasks)
    on = " and ".join("on" if g else "off" for g in settings)
    return {"note": "; ".join(f"{k}: {v}" for k, v in EDIT_TASKS.items()) + ". Clips capped at 10 s; "
                    + f"recognizer guidance {on}; `kept_frames_error_cm` in the JSON is the error on the kept "
                      "frames.", "tasks": tasks}


def _edit_rows(runner, ev, data, texts, contents, clips, guidance, tasks) -> None:
    for task in EDIT_TASKS:
        reqs, keep_err = [], []
        for i, (t, c) in enumerate(zip(texts, clips)):
            T = min((len(c.joints) // 4) * 4, 200)
            j = c.joints[:T]
            reqs.append(runner.request(t, T / FPS, 7 * 100003 + i, edit=_edit_spec(task, j), guidance=guidance))
        motions, sec = runner.run(reqs)
        for m, c in zip(motions, clips):
            T = min((len(c.joints) // 4) * 4, 200)
            keep = _kept_mask(task, T)
            n = min(len(m), T)
            keep_err.append(float(np.linalg.norm(m[:n][keep[:n]] - c.joints[:n][keep[:n]], axis=-1).mean() * 100))
        row = _score(ev, data, texts, motions, contents, sec / len(reqs))
        row["kept_frames_error_cm"] = float(np.mean(keep_err))
        tasks[task]["CoAMD, guided" if guidance else "CoAMD, unguided"] = row


def _kept_mask(task, T):
    keep = np.zeros(T, bool)
    if task == "prefix":
        keep[: T // 2] = True
    elif task == "suffix":
        keep[T - T // 2:] = True
    else:
        keep[: T // 4] = True
        keep[T - T // 4:] = True
    return keep


def _edit_spec(task, joints):
    from coamd.sampling.sampler import EditSpec

    T = len(joints)
    keep = _kept_mask(task, T)
    return EditSpec(joints=joints, keep=keep)


def latency_grid(runner, ev, data, idx, defaults, progress, reuse=None, scales=None, iterations=None) -> dict:
    """Quality (R@1, FID, cosine) and seconds per motion over guidance scale x iterations K.

    Default grid: scales {0 (off), default, 2 x default} x K {default / 2, default}. ``reuse``
    {(scale, K): (motions, seconds per motion)} holds runs already made with the same texts and
    seeds (the first generation repeat), which are not generated again."""
    texts, durs, contents = _texts(data, idx)
    K = int(defaults.get("iterations", 8))
    g = float(defaults.get("guidance_scale", 1.0))
    its = sorted(set(iterations or [max(2, K // 2), K]))
    scales = list(scales or [0.0, g, 2 * g])
    reuse = reuse or {}
    pts = []
    bar = _bar(len(its) * len(scales), "quality vs latency", progress)
    for gs in scales:
        for k in its:
            if (gs, k) in reuse:
                m, sec = reuse[(gs, k)]
            else:
                m, sec = _generate(runner, texts, durs, seed=0, iterations=k, guidance=gs > 0,
                                   guidance_scale=gs if gs > 0 else g)
            row = S.score_generation(ev, data, texts, m, seed=0, contents=contents)
            pts.append({"guidance_scale": gs, "iterations": k, "sec_per_motion": sec, **row})
            bar.update(1)
    bar.close()
    real = S.score_generation(ev, data, texts, [data.clips[i].joints for i in idx], seed=0, contents=contents)
    return {"points": pts, "real": real, "note": f"{len(texts)} texts of the first repeat, same seeds at every point; "
                                   "seconds per motion = wall time of the batched run / number of motions."}


# ----------------------------------------------------------------------------- modality ablation
ABLATION_DIR = f"{DEFAULT_RUNS}/ablation"
"""Where ``make ablation`` writes the modality-ablation models (``autoencoder_<v>.pt`` and
``recognizer_<v>.pt``, v in j, jb, jm, jbm), each variant trained with the same budget and seed."""
ABLATION_VARIANTS = {"j": "J", "jb": "J+B", "jm": "J+M", "jbm": "J+B+M"}


def modality_ablation(report, ev, data, bundle, idx, ablation_dir: str = ABLATION_DIR) -> None:
    """Paper Table 7 on our data: autoencoder and recognizer variants trained on stream subsets
    with equal budgets (``make ablation``), next to the shipped models as a reference.

    Autoencoder rows: MPJPE of the first repeat's real test clips (up to 10 s) and the evaluator's
    generation metrics on their reconstructions. Recognizer rows: content/style top-1 on the whole
    test split (nearest label text, each variant's fused embedding)."""
    from coamd.models.autoencoder import MotionAutoencoder
    from coamd.models.recognizer import ActionRecognizer

    out = {"autoencoder": {}, "recognizer": {}}
    notes = []
    texts, _, contents = _texts(data, idx)
    clips = [data.clips[i].joints for i in idx]
    out["autoencoder"]["Real motions"] = S.score_generation(ev, data, texts, clips, seed=0, contents=contents)

    def ae_row(ae) -> dict:
        rec, err = _reconstruct(ae, clips)
        return {**S.score_generation(ev, data, texts, rec, seed=0, contents=contents), "mpjpe_cm": err}

    found = []
    for v, label in ABLATION_VARIANTS.items():
        p = Path(ablation_dir) / f"autoencoder_{v}.pt"
        if not p.exists():
            continue
        ck = _load(p)
        out["autoencoder"][f"{label} ({_budget(ck)})"] = ae_row(MotionAutoencoder.from_checkpoint(ck))
        found.append(f"autoencoder {label}")
    if bundle is not None and getattr(bundle, "autoencoder", None) is not None:
        out["autoencoder"]["J+B+M shipped (reference, longer training)"] = ae_row(bundle.autoencoder)
    ds = data.dataset
    variants = []
    for v, label in ABLATION_VARIANTS.items():
        p = Path(ablation_dir) / f"recognizer_{v}.pt"
        if p.exists():
            ck = _load(p)
            variants.append((f"{label} ({_budget(ck)})", v, ActionRecognizer.from_checkpoint(ck)))
            found.append(f"recognizer {label}")
    if bundle is not None and getattr(bundle, "recognizer", None) is not None:
        variants.append(("J+B+M shipped (reference, longer training)", "shipped", bundle.recognizer))
    for name, key, model in variants:
        emb = S.recognizer_embeddings(bundle, data, data.captions, recognizer=model, name=key)
        row = {}
        for kind, names in (("content", ds.contents), ("style", ds.styles)):
            pred = S.label_predictions(emb["fused"], emb[f"label_{kind}"], names)
            row[kind] = float(np.mean([p == getattr(c, kind) for p, c in zip(pred, data.clips)]))
        out["recognizer"][name] = row
    missing = [f"{m} {label}" for m in ("autoencoder", "recognizer") for label in ABLATION_VARIANTS.values()
               if f"{m} {label}" not in found]
    if missing:
        notes.append(f"not found in {ablation_dir} (run `make ablation`): " + ", ".join(missing))
    notes.append("Variants are trained by `make ablation` with the same step budget and seed each (budget in "
                 "the row name); the shipped models had longer training and are a reference, not a row of the "
                 "comparison. Autoencoder rows: MPJPE (cm) and evaluator metrics of the reconstructions of the "
                 "first repeat's real test clips (up to 10 s). Recognizer rows: top-1 of each variant's fused "
                 "embedding against the label texts over the whole test split")
    out["note"] = ". ".join(notes) + "."
    report["modality_ablation"] = out


def _load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _budget(ckpt: dict) -> str:
    """'N steps' from the training metadata a trainer stores in its checkpoint (``meta``)."""
    meta = ckpt.get("meta") or {}
    return f"{meta['steps']} steps" if "steps" in meta else "budget unknown"


@torch.no_grad()
def _reconstruct(ae, clips):
    ae.eval()
    out, errs = [], []
    for j in clips:
        T = min((len(j) // 4) * 4, 200)
        x = torch.from_numpy(np.ascontiguousarray(j[:T]))[None]
        y = ae.decode(ae.encode(x)).numpy()[0]
        out.append(y)
        errs.append(float(np.linalg.norm(y - j[:T], axis=-1).mean() * 100))
    return out, float(np.mean(errs))
