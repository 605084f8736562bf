"""Skeleton validity of streamed motion: real clips and generated motions, unprojected vs projected.

For ``--clips`` test clips (seeded choice) one motion is generated per clip from one of its
training-family captions (A-D), with the clip's own duration (clamped to 1-10 s) and the
sampler's default settings (guided), as the model's output (cleanup off, unprojected). The same
motions are scored as

* ``model output``: the decoder's positions;
* ``cleaned``: through the foot-contact cleanup (:mod:`coamd.sampling.cleanup`), what the server
  streamed before the projection (``skeleton="raw"``);
* ``cleaned + projected``: then through the skeleton projection
  (:mod:`coamd.sampling.skeleton_projection`), what the server streams by default
  (``skeleton="fk"``); the sampler's chunks are exactly these frames (``tests``); also without
  the projection's low-pass of arm and neck rotations (``smoothing=0``);
* ``model output + projected``: the projection without the cleanup;

next to the real clips (cut to the same durations) as they are, with the rotations the causal
solver gives them (:class:`coamd.io.bvh_export.RotationStream`, the reference for rotation
steps), and projected. Measured per row:

* bone-length coefficient of variation (std / mean over frames, per bone and motion; mean over
  both, and the worst bone's mean);
* |positions - FK(rotations)|: forward kinematics of the rotations a client gets with the
  positions, on the rest offsets ``GetSkeleton`` returns (:func:`coamd.io.bvh_export.rest_offsets`):
  the projection's own rotations for projected rows; for unprojected rows the rotations the
  server computed separately (``joints_to_local_rotations`` on each 4-frame chunk);
* per-frame rotation change (angular step, degrees at 20 fps) of those rotations: p50 and p99
  per joint, the largest p99 over joints, and the clavicles' step next to the turn of the
  positions' own shoulder bone;
* export round trips against the positions of the row: BVH written with the rotations (projected
  rows) or solved from the positions (unprojected rows, the export before the projection:
  median bone lengths), read back with :func:`coamd.data.bvh.read_bvh`; glTF (``.glb``, written
  with the rotations, or from the positions, which the exporter projects) read back by forward
  kinematics of its nodes;
* foot skating and jitter (:mod:`coamd.evaluation.metrics`), the action recognizer's top-1
  content and style (``Engine.recognize``) against the clip's labels;
* the projection's time per call in chunks of 1, 4 and 20 frames (the sampler releases 1-8 per
  call) and per frame on whole motions (``--timing-only``: just that, on real test clips).

Run: ``python -m benchmarks.skeleton_validity`` (writes ``benchmarks/results/skeleton_validity.json``
and ``.md``; ``--help`` for options).
"""
from __future__ import annotations

import argparse
import json
import platform
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


# ----------------------------------------------------------------------------- measurements
def bone_cv(m: np.ndarray) -> np.ndarray:
    """(20,) coefficient of variation of each bone's length over the frames of m (T, 21, 3)."""
    from coamd.skeleton import BONE_CHILDREN, BONE_PARENTS

    L = np.linalg.norm(m[:, BONE_CHILDREN] - m[:, BONE_PARENTS], axis=-1)
    return L.std(0) / L.mean(0)


def angular_steps(q: np.ndarray) -> np.ndarray:
    """(T, 21, 4) quaternions -> (T - 1, 21) degrees between consecutive frames."""
    dot = np.abs(np.sum(q[1:].astype(np.float64) * q[:-1], axis=-1))
    return 2 * np.degrees(np.arccos(np.clip(dot, 0.0, 1.0)))


def bone_turn(m: np.ndarray, joint: int, child: int) -> np.ndarray:
    """(T - 1,) degrees the bone joint -> child of positions m turns per frame."""
    d = m[:, child] - m[:, joint]
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(d[1:] * d[:-1], -1), -1, 1)))


def knee_bends(m: np.ndarray) -> np.ndarray:
    """Knee bend angles (degrees) of both legs over the frames of m (T, 21, 3)."""
    from coamd.skeleton import JOINT_INDEX

    out = []
    for side in "LR":
        hip, knee, ankle = (JOINT_INDEX[f"{j}_{side}"] for j in ("UpperLeg", "LowerLeg", "Foot"))
        u, v = m[:, knee] - m[:, hip], m[:, ankle] - m[:, knee]
        cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.concatenate(out)


def server_rotations(m: np.ndarray) -> np.ndarray:
    """The rotations the server sent with unprojected positions: each 4-frame chunk converted on
    its own on the rest skeleton (``ServerEngine.rotations``)."""
    from coamd.io.bvh_export import DATASET_SKELETON, joints_to_local_rotations

    return np.concatenate([joints_to_local_rotations(m[s:s + 4], DATASET_SKELETON) for s in range(0, len(m), 4)])


def glb_positions(path: Path) -> np.ndarray:
    """Joint positions (T, 21, 3) at every key of a .glb written by coamd.io.gltf_export: forward
    kinematics of its node translations and animated rotations (read from the file)."""
    from coamd.io.rotations import quat_to_matrix
    from coamd.skeleton import NUM_JOINTS, PARENTS

    data = path.read_bytes()
    jlen = struct.unpack_from("<I", data, 12)[0]
    gltf = json.loads(data[20:20 + jlen])
    binary = data[28 + jlen:]

    def acc(i):
        a = gltf["accessors"][i]
        v = gltf["bufferViews"][a["bufferView"]]
        w = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[a["type"]]
        return np.frombuffer(binary, "<f4", a["count"] * w, v.get("byteOffset", 0)).reshape(a["count"], w)

    anim = gltf["animations"][0]
    rot = {ch["target"]["node"]: acc(anim["samplers"][ch["sampler"]]["output"])
           for ch in anim["channels"] if ch["target"]["path"] == "rotation"}
    hips = next(acc(anim["samplers"][ch["sampler"]]["output"]) for ch in anim["channels"]
                if ch["target"]["path"] == "translation")
    T = len(hips)
    G = np.zeros((T, NUM_JOINTS, 3, 3))
    P = np.zeros((T, NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        R = quat_to_matrix(rot[j].astype(np.float64))
        if j == 0:
            G[:, 0], P[:, 0] = R, hips
        else:
            t = np.asarray(gltf["nodes"][j]["translation"], np.float64)
            P[:, j] = P[:, PARENTS[j]] + np.einsum("tab,b->ta", G[:, PARENTS[j]], t)
            G[:, j] = G[:, PARENTS[j]] @ R
    return P


def export_errors(m: np.ndarray, rot: np.ndarray | None, tmp: Path) -> dict:
    """Max and mean distance (m) between m and what its BVH and glTF exports play back."""
    from coamd.data.bvh import canonical_joint_positions, read_bvh
    from coamd.io.bvh_export import write_bvh
    from coamd.io.gltf_export import write_glb

    bvh = canonical_joint_positions(read_bvh(write_bvh(tmp / "m.bvh", m, rotations=rot))) / 100.0
    glb = glb_positions(write_glb(tmp / "m.glb", m, rotations=rot, mesh=False))
    e_bvh, e_glb = np.linalg.norm(bvh - m, axis=-1), np.linalg.norm(glb - m, axis=-1)
    return {"bvh_max": float(e_bvh.max()), "bvh_mean": float(e_bvh.mean()),
            "bvh_worst_joint_p99": float(np.percentile(e_bvh, 99, axis=0).max()),
            "glb_max": float(e_glb.max()), "glb_mean": float(e_glb.mean())}


def score_row(motions: list[np.ndarray], rotations: list[np.ndarray], engine, contents, styles,
              tmp: Path, exports: bool = True) -> dict:
    """Every measurement of one row (see the module docstring)."""
    from coamd.evaluation.metrics import foot_skating, jitter
    from coamd.io.bvh_export import DATASET_SKELETON, forward_kinematics
    from coamd.skeleton import JOINT_INDEX, JOINT_NAMES

    cv = np.stack([bone_cv(m) for m in motions])
    fk_err = np.concatenate([np.linalg.norm(forward_kinematics(q, m[:, 0], DATASET_SKELETON)[1] - m, axis=-1).ravel()
                             for m, q in zip(motions, rotations)])
    steps = np.concatenate([angular_steps(q) for q in rotations])
    p50, p99 = np.percentile(steps, 50, axis=0), np.percentile(steps, 99, axis=0)
    clav = {}
    for side in "LR":
        j, c = JOINT_INDEX[f"Shoulder_{side}"], JOINT_INDEX[f"UpperArm_{side}"]
        turn = np.concatenate([bone_turn(m, j, c) for m in motions])
        clav[side] = {"rotation_p50": float(p50[j]), "rotation_p99": float(p99[j]),
                      "positions_bone_turn_p50": float(np.percentile(turn, 50)),
                      "positions_bone_turn_p99": float(np.percentile(turn, 99))}
    rec = [engine.recognize(m.astype(np.float32), top_k=1) for m in motions]
    row = {
        "n": len(motions), "frames": int(sum(len(m) for m in motions)),
        "bone_cv_mean": float(cv.mean()), "bone_cv_worst_bone": float(cv.mean(0).max()),
        "bone_cv_worst_bone_name": JOINT_NAMES[1 + int(cv.mean(0).argmax())],
        "fk_error_max_m": float(fk_err.max()), "fk_error_mean_m": float(fk_err.mean()),
        "fk_error_p99_m": float(np.percentile(fk_err, 99)),
        "angular_step_p50_deg": dict(zip(JOINT_NAMES, map(float, p50))),
        "angular_step_p99_deg": dict(zip(JOINT_NAMES, map(float, p99))),
        "angular_step_p99_max_deg": float(p99.max()), "angular_step_p99_max_joint": JOINT_NAMES[int(p99.argmax())],
        "angular_step_max_deg": float(steps.max()),
        "clavicle": clav,
        "knee_bend_median_deg": float(np.median(np.concatenate([knee_bends(m) for m in motions]))),
        "skate_speed": float(np.mean([foot_skating(m)["skate_speed"] for m in motions])),
        "jitter": float(np.mean([jitter(m) for m in motions])),
        "content_acc": float(np.mean([r["content"][0].label == c for r, c in zip(rec, contents)])),
        "style_acc": float(np.mean([r["style"][0].label == s for r, s in zip(rec, styles)])),
    }
    if exports:
        errs = [export_errors(m, q if rotations_are_exact(m, q) else None, tmp) for m, q in zip(motions, rotations)]
        row["export"] = {k: float(max(e[k] for e in errs)) if "max" in k or "p99" in k else
                         float(np.mean([e[k] for e in errs])) for k in errs[0]}
    return row


def rotations_are_exact(m: np.ndarray, q: np.ndarray) -> bool:
    """Whether q drives the rest skeleton onto m (a projected motion: export its rotations)."""
    from coamd.io.bvh_export import DATASET_SKELETON, forward_kinematics

    return bool(np.abs(forward_kinematics(q, m[:, 0], DATASET_SKELETON)[1] - m).max() < 1e-4)


CALL_CHUNKS = (1, 4, 20)
"""Chunk sizes (frames per call) the projection is timed at: the server releases 1-8 per call."""


def time_projection(motions: list[np.ndarray], chunk: int, per: str = "call") -> float:
    """ms per call (``per="call"``) or per frame (``per="frame"``) of SkeletonProjection.apply in
    chunks of ``chunk`` frames, one projection per motion (best of 3; the solver compiled first)."""
    from coamd.sampling.skeleton_projection import SkeletonProjection, warm_up

    warm_up()
    best = float("inf")
    count = sum(len(m) for m in motions) if per == "frame" else sum(-(-len(m) // chunk) for m in motions)
    for _ in range(3):
        t = time.perf_counter()
        for m in motions:
            proj = SkeletonProjection()
            for s in range(0, len(m), chunk):
                proj.apply(m[s:s + chunk])
        best = min(best, (time.perf_counter() - t) / count * 1000)
    return best


def projection_timing(motions: list[np.ndarray]) -> dict:
    """{"projection_ms_per_call": {chunk: ms} for :data:`CALL_CHUNKS`,
    "projection_ms_per_frame_whole_motions": ms}."""
    return {"projection_ms_per_call": {str(c): time_projection(motions, c) for c in CALL_CHUNKS},
            "projection_ms_per_frame_whole_motions": time_projection(motions, 10_000, per="frame")}


def measure(engine, dataset: str = "data/processed", clips: int = 120, seed: int = 0, batch_size: int = 16,
            progress: bool = True, **settings) -> dict:
    """Generate, project and score (see the module docstring). Returns {rows, timing, ...}."""
    from tqdm import tqdm

    from coamd.data.dataset import MotionDataset
    from coamd.sampling.cleanup import clean_motion
    from coamd.sampling.sampler import GenerationRequest
    from coamd.io.bvh_export import RotationStream
    from coamd.sampling.skeleton_projection import SMOOTHING, project_motion

    ds = MotionDataset(dataset)
    test = ds.split("test")
    rng = np.random.default_rng(seed)
    pick = [test[i] for i in rng.choice(len(test), size=min(clips, len(test)), replace=False)]
    durs = [float(np.clip(len(c.joints) / 20.0, 1.0, 10.0)) for c in pick]
    texts = [str(rng.choice(c.caption_texts(heldout=False))) for c in pick]
    contents, styles = [c.content for c in pick], [c.style for c in pick]
    reqs = [GenerationRequest(text=t, duration_s=d, seed=seed * 100003 + i,
                              **{**settings, "cleanup": False, "skeleton": "raw"})
            for i, (t, d) in enumerate(zip(texts, durs))]
    model = []
    t0 = time.perf_counter()
    for s in tqdm(range(0, len(reqs), batch_size), desc="generating", disable=not progress):
        model += [m.astype(np.float64) for m in engine.sampler.sample_batch(reqs[s:s + batch_size])]
    gen_seconds = time.perf_counter() - t0
    real = [c.joints[: len(m)].astype(np.float64) for c, m in zip(pick, model)]
    t0 = time.perf_counter()
    cleaned = [clean_motion(m).astype(np.float64) for m in model]
    cleanup_ms = (time.perf_counter() - t0) / sum(len(m) for m in model) * 1000

    def projected(ms, smoothing=SMOOTHING):
        out = [project_motion(m, smoothing=smoothing) for m in ms]
        return [p.astype(np.float64) for p, _ in out], [q for _, q in out]

    sets = {"real test clips": (real, [RotationStream().push(m) for m in real]),
            "real test clips, projected": projected(real),
            "model output": (model, [server_rotations(m) for m in model]),
            "model output, projected": projected(model),
            "cleaned (skeleton=raw)": (cleaned, [server_rotations(m) for m in cleaned]),
            "cleaned + projected, no low-pass (smoothing=0)": projected(cleaned, 0.0),
            "cleaned + projected (skeleton=fk, default)": projected(cleaned)}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (ms, qs) in tqdm(sets.items(), desc="scoring", disable=not progress):
            rows[name] = score_row(ms, qs, engine, contents if "real" not in name else [c.content for c in pick],
                                   styles, Path(tmp))
    # the projection's displacement of the cleaned frames (what it changes in the stream)
    disp = np.concatenate([np.linalg.norm(p - m, axis=-1) for p, m in zip(sets["cleaned + projected (skeleton=fk, default)"][0], cleaned)])
    from coamd.skeleton import JOINT_NAMES, TOE_JOINTS
    timing = {**projection_timing(cleaned),
              "cleanup_ms_per_frame_whole_motions": cleanup_ms,
              "generation_seconds_per_motion": gen_seconds / len(model)}
    return {"rows": rows, "timing": timing,
            "projection_displacement_m": {"mean": float(disp.mean()), "p99": float(np.percentile(disp, 99)),
                                          "per_joint_mean": dict(zip(JOINT_NAMES, map(float, disp.mean(0)))),
                                          "toes_median": float(np.median(disp[:, list(TOE_JOINTS)]))},
            "clips": len(pick), "frames": int(sum(len(m) for m in model))}


# ----------------------------------------------------------------------------- report
def projection_time_text(t: dict) -> str:
    """The projection's timing of a result (older results: ms per frame in 4-frame chunks)."""
    whole = f"{t['projection_ms_per_frame_whole_motions']:.4f} ms per frame on whole motions"
    if "projection_ms_per_call" not in t:
        return f"{t['projection_ms_per_frame_4_frame_chunks']:.3f} ms per frame in 4-frame chunks, {whole}"
    calls = ", ".join(f"{v:.4f} ms per call of {c} frame{'s' * (c != '1')}"
                      for c, v in t["projection_ms_per_call"].items())
    return f"{calls}; {whole}"


def markdown(res: dict, header: str) -> str:
    rows = res["rows"]
    real = rows["real test clips"]
    fk, raw = rows["cleaned + projected (skeleton=fk, default)"], rows["cleaned (skeleton=raw)"]
    nolp = rows["cleaned + projected, no low-pass (smoothing=0)"]
    out = [f"# Skeleton validity of streamed motion", "", header, "",
           "| row | bone-length CV mean (worst bone) | \\|pos - FK(rot)\\| max / mean | angular step p99, max over joints (joint) | largest step | BVH round trip max / worst-joint p99 | glTF round trip max | foot skating m/s | jitter m/s^3 | content top-1 | style top-1 |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        e = r["export"]
        out.append(f"| {name} | {r['bone_cv_mean']:.2e} ({r['bone_cv_worst_bone']:.2e} {r['bone_cv_worst_bone_name']}) "
                   f"| {r['fk_error_max_m'] * 1000:.3f} / {r['fk_error_mean_m'] * 1000:.3f} mm "
                   f"| {r['angular_step_p99_max_deg']:.1f} deg ({r['angular_step_p99_max_joint']}) "
                   f"| {r['angular_step_max_deg']:.1f} deg "
                   f"| {e['bvh_max'] * 1000:.3f} / {e['bvh_worst_joint_p99'] * 1000:.3f} mm | {e['glb_max'] * 1000:.3f} mm "
                   f"| {r['skate_speed']:.4f} | {r['jitter']:.1f} | {100 * r['content_acc']:.1f} % | {100 * r['style_acc']:.1f} % |")
    from coamd.skeleton import JOINT_NAMES
    out += ["", "Unprojected rows: rotations as the server sent them (each 4-frame chunk solved on its own), "
            "BVH solved from the positions with median bone lengths (the export before), glTF of the "
            "positions' projection; real clips: rotations from the causal solver, no low-pass.", ""]
    out += ["", "Angular step per joint (degrees per frame at 20 fps), p50 / p99; joints whose rotation the "
            "projection keeps constant (Head, Hand, Toes: no child to aim at) are left out:", "",
            "| joint | real clips | cleaned + projected (default) | p99 ratio | no low-pass: p50 / p99 (ratio) | cleaned, rotations per chunk (before) |",
            "|---|---|---|---|---|---|"]
    for n in JOINT_NAMES:
        a, b, c = (real["angular_step_p99_deg"][n], fk["angular_step_p99_deg"][n], raw["angular_step_p99_deg"][n])
        e = nolp["angular_step_p99_deg"][n]
        if a < 1e-3 and b < 1e-3:
            continue
        out.append(f"| {n} | {real['angular_step_p50_deg'][n]:.2f} / {a:.1f} | {fk['angular_step_p50_deg'][n]:.2f} / {b:.1f} "
                   f"| {b / max(a, 1e-9):.2f} | {nolp['angular_step_p50_deg'][n]:.2f} / {e:.1f} ({e / max(a, 1e-9):.2f}) "
                   f"| {raw['angular_step_p50_deg'][n]:.2f} / {c:.1f} |")
    out += ["", "Clavicles: per-frame turn of the rotation vs of the positions' own shoulder bone (p99, degrees):", ""]
    for name in ("cleaned (skeleton=raw)", "cleaned + projected (skeleton=fk, default)"):
        c = rows[name]["clavicle"]
        out.append(f"- {name}: left {c['L']['rotation_p99']:.1f} (positions {c['L']['positions_bone_turn_p99']:.1f}), "
                   f"right {c['R']['rotation_p99']:.1f} (positions {c['R']['positions_bone_turn_p99']:.1f})")
    t, d = res["timing"], res["projection_displacement_m"]
    ratio = lambda k: fk[k] / max(raw[k], 1e-12)  # noqa: E731
    p99_ratio = {n: fk["angular_step_p99_deg"][n] / real["angular_step_p99_deg"][n]
                 for n in JOINT_NAMES if real["angular_step_p99_deg"][n] > 1e-3}
    worst = max(p99_ratio, key=p99_ratio.get)
    out += ["", "Targets (default stream = cleaned + projected; reference = real clips or the cleaned stream before):", "",
            f"- bone-length CV: {fk['bone_cv_mean']:.2e} vs real {real['bone_cv_mean']:.2e} "
            f"({fk['bone_cv_mean'] / max(real['bone_cv_mean'], 1e-12):.2f}x; target <= 2x); before: {raw['bone_cv_mean']:.4f}",
            f"- |pos - FK(rot)|: max {fk['fk_error_max_m'] * 1e6:.2f} um over every frame (target <= 1 mm); before: "
            f"max {raw['fk_error_max_m'] * 1000:.1f} mm, mean {raw['fk_error_mean_m'] * 1000:.1f} mm",
            f"- angular step p99: worst joint {worst} {p99_ratio[worst]:.2f}x real; max over joints "
            f"{fk['angular_step_p99_max_deg']:.1f} vs {real['angular_step_p99_max_deg']:.1f} deg "
            f"({fk['angular_step_p99_max_deg'] / real['angular_step_p99_max_deg']:.2f}x; target <= 1.5x); largest "
            f"single step {fk['angular_step_max_deg']:.0f} deg (real {real['angular_step_max_deg']:.0f}, before "
            f"{raw['angular_step_max_deg']:.0f})",
            f"- exports of the default stream: BVH max {fk['export']['bvh_max'] * 1e6:.2f} um, glTF max "
            f"{fk['export']['glb_max'] * 1e6:.2f} um (target <= 1 mm); before (BVH solved from the positions, "
            f"median lengths): max {raw['export']['bvh_max'] * 1000:.1f} mm, worst joint p99 "
            f"{raw['export']['bvh_worst_joint_p99'] * 1000:.1f} mm",
            f"- foot skating {raw['skate_speed']:.4f} -> {fk['skate_speed']:.4f} m/s ({ratio('skate_speed'):.3f}x); "
            f"jitter {raw['jitter']:.1f} -> {fk['jitter']:.1f} m/s^3 ({ratio('jitter'):.3f}x) (target: not higher); "
            f"without the low-pass: skating {nolp['skate_speed']:.4f}, jitter {nolp['jitter']:.1f} "
            f"({nolp['jitter'] / raw['jitter']:.3f}x)",
            f"- content top-1 {100 * raw['content_acc']:.1f} -> {100 * fk['content_acc']:.1f} %, style "
            f"{100 * raw['style_acc']:.1f} -> {100 * fk['style_acc']:.1f} % (target: content not lower; without the "
            f"low-pass {100 * nolp['content_acc']:.1f} / {100 * nolp['style_acc']:.1f} %)",
            f"- projection time: {projection_time_text(t)} (cleanup "
            f"{t['cleanup_ms_per_frame_whole_motions']:.3f} ms per frame; a frame lasts 50 ms)",
            f"- the projection moves the cleaned joints by {d['mean'] * 1000:.1f} mm on average (p99 "
            f"{d['p99'] * 1000:.1f} mm; toes median {d['toes_median'] * 1e6:.2f} um); knee bend median "
            f"{raw['knee_bend_median_deg']:.1f} -> {fk['knee_bend_median_deg']:.1f} deg (real clips "
            f"{real['knee_bend_median_deg']:.1f})"]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=120, help="test clips, one generated motion each (default: 120)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clip/caption choice and sampling (default: 0)")
    p.add_argument("--dataset", default="data/processed", help="processed dataset (default: data/processed)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    p.add_argument("--backend", default="torch", help="runtime backend (default: torch)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--no-guidance", action="store_true", help="generate without recognizer guidance")
    p.add_argument("--out", default=str(RESULTS / "skeleton_validity"),
                   help="output path without extension: .json and .md are written (default: benchmarks/results/skeleton_validity)")
    p.add_argument("--markdown-only", action="store_true",
                   help="rebuild the .md from the .json at --out without measuring again")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--timing-only", action="store_true",
                   help="only time the projection, on --clips real test clips (no generation, nothing written)")
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.timing_only:
        from benchmarks.hardware import machine
        from coamd.data.dataset import MotionDataset

        test = MotionDataset(a.dataset).split("test")
        pick = np.random.default_rng(a.seed).choice(len(test), size=min(a.clips, len(test)), replace=False)
        motions = [test[i].joints[:200].astype(np.float64) for i in pick]
        print(f"{machine()['cpu']}, {len(motions)} real test clips ({sum(map(len, motions))} frames): "
              f"projection {projection_time_text(projection_timing(motions))}")
        return 0
    if a.markdown_only:
        res = json.loads(out.with_suffix(".json").read_text())
        out.with_suffix(".md").write_text(markdown(res, res["header"]))
        print(out.with_suffix(".md").read_text())
        return 0
    import torch

    from benchmarks.hardware import machine
    from coamd.runtime import load_engine

    torch.set_num_threads(a.threads)
    eng = load_engine(backend=a.backend, checkpoint=a.checkpoint, dataset=a.dataset, guidance=not a.no_guidance)
    t = time.perf_counter()
    res = measure(eng, a.dataset, a.clips, a.seed, progress=not a.quiet, guidance=not a.no_guidance)
    res.update(backend=eng.backend_name, guidance=not a.no_guidance, seed=a.seed, machine=machine(),
               seconds=time.perf_counter() - t)
    m = res["machine"]
    header = (f"{res['clips']} test clips (seed {a.seed}), one motion each from a caption of families A-D with the "
              f"clip's duration ({res['frames']} frames), {eng.backend_name}, "
              f"{'guided' if res['guidance'] else 'unguided'}, default sampler settings; {m['cpu']}, "
              f"{m['torch_threads']} torch thread(s), Python {platform.python_version()}. "
              f"`python -m benchmarks.skeleton_validity --clips {a.clips} --seed {a.seed}`")
    res["header"] = header
    md = markdown(res, header)
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    out.with_suffix(".md").write_text(md)
    print(f"-> {out.with_suffix('.json')}, {out.with_suffix('.md')} ({res['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
