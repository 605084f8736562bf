"""Metric definitions of the text-to-motion literature, on evaluator embeddings and on joints.

Embedding metrics take NumPy arrays of evaluator embeddings (N, E) (unit vectors from
:mod:`coamd.evaluation.evaluator`); distances are Euclidean, as in the reference code of
Guo et al., "Generating Diverse and Natural 3D Human Motions from Text", CVPR 2022 (HumanML3D),
which defines R-precision, MM-Dist, Diversity and MultiModality.

Physical metrics take joints (T, 21, 3) in metres at 20 fps, Y up, floor at y = 0, following the
motion-quality axis of MBench (ViMoGen; ../shared/papers/vimogen-generalizable-motion-generation-summary.md):
foot sliding, jitter and penetration. In this skeleton the toe joints carry ground contact.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from coamd.skeleton import FPS, TOE_JOINTS, check_joints

# ----------------------------------------------------------------------------- embeddings


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected two (N, E) arrays of the same shape, got {a.shape} and {b.shape}")
    return a, b


def euclidean_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances: a (N, E), b (M, E) -> (N, M)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d2 = (a ** 2).sum(1)[:, None] - 2 * a @ b.T + (b ** 2).sum(1)[None]
    return np.sqrt(np.maximum(d2, 0.0))


def r_precision(text_emb: np.ndarray, motion_emb: np.ndarray, batch_size: int = 32, top_k: int = 3,
                seed: int | None = 0) -> np.ndarray:
    """R-precision top-1..top_k (Guo et al. 2022): pairs are shuffled (``seed``; None keeps the
    order) and cut into batches of ``batch_size`` (an incomplete last batch is dropped, as in the
    reference code); within a batch every text ranks the ``batch_size`` motions by Euclidean
    distance and a hit at k means its own motion is among the k closest. Chance level is
    k / batch_size. text_emb, motion_emb: (N, E), row i of both is one pair. Returns (top_k,)
    fractions in [0, 1]. Raises ValueError when N < batch_size.
    """
    t, m = _check_pair(text_emb, motion_emb)
    n = (len(t) // batch_size) * batch_size
    if n == 0:
        raise ValueError(f"R-precision needs at least {batch_size} pairs, got {len(t)}")
    order = np.arange(len(t)) if seed is None else np.random.default_rng(seed).permutation(len(t))
    hits = np.zeros(top_k)
    for s in range(0, n, batch_size):
        idx = order[s:s + batch_size]
        d = euclidean_matrix(t[idx], m[idx])
        # rank of the matching motion for each text (0 = closest); ties count against the match
        rank = (d < np.diag(d)[:, None]).sum(1)
        hits += np.array([(rank < k).sum() for k in range(1, top_k + 1)])
    return hits / n


def mm_dist(text_emb: np.ndarray, motion_emb: np.ndarray) -> float:
    """Multimodal distance (Guo et al. 2022): mean Euclidean distance between each text embedding
    and the embedding of its motion. (N, E) each -> float (embedding units; 0..2 for unit vectors)."""
    t, m = _check_pair(text_emb, motion_emb)
    return float(np.linalg.norm(t - m, axis=1).mean())


def cosine_score(text_emb: np.ndarray, motion_emb: np.ndarray) -> float:
    """Embedding cosine score, the analogue of the CoAMD paper's CLIP-score (Hessel et al. 2021,
    CLIPScore, without its 2.5 rescale and clipping): mean cosine similarity of each text with its
    motion. (N, E) each -> float in [-1, 1]."""
    t, m = _check_pair(text_emb, motion_emb)
    t = t / np.linalg.norm(t, axis=1, keepdims=True).clip(1e-12)
    m = m / np.linalg.norm(m, axis=1, keepdims=True).clip(1e-12)
    return float((t * m).sum(1).mean())


def gaussian_stats(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (E,) and covariance (E, E) of embeddings (N, E), N >= 2."""
    x = np.asarray(emb, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need (N >= 2, E) embeddings, got {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(real_emb: np.ndarray, gen_emb: np.ndarray) -> float:
    """FID (Heusel et al. 2017, "GANs trained by a two time-scale update rule ...") on evaluator
    embeddings: ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2}) of Gaussians fitted to the
    two sets (N_r, E) and (N_g, E). The matrix square root follows the reference implementation
    (scipy ``sqrtm``; a small diagonal offset when it is singular, imaginary residue dropped)."""
    mu1, s1 = gaussian_stats(real_emb)
    mu2, s2 = gaussian_stats(gen_emb)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean), 0.0))


def diversity(emb: np.ndarray, pairs: int = 300, seed: int | None = 0) -> float:
    """Diversity (Guo et al. 2020 Action2Motion; 2022): mean Euclidean distance between ``pairs``
    random pairs of embeddings (two index sets drawn without replacement). (N, E) with
    N >= pairs -> float. Raises ValueError when N < pairs."""
    x = np.asarray(emb, np.float64)
    if len(x) < pairs:
        raise ValueError(f"diversity with {pairs} pairs needs at least {pairs} motions, got {len(x)}")
    rng = np.random.default_rng(seed)
    a = rng.choice(len(x), pairs, replace=False)
    b = rng.choice(len(x), pairs, replace=False)
    return float(np.linalg.norm(x[a] - x[b], axis=1).mean())


def multimodality(emb_per_text: np.ndarray, pairs: int | None = None, seed: int | None = 0) -> float:
    """MultiModality (Guo et al. 2022): for every text, the mean Euclidean distance between pairs
    of motions generated from that same text, averaged over texts. ``emb_per_text`` is
    (N_texts, S, E) with S >= 2 samples per text; ``pairs`` random pairs per text (None = all
    S(S-1)/2 distinct pairs; the reference uses 10 samples and 10 pairs)."""
    x = np.asarray(emb_per_text, np.float64)
    if x.ndim != 3 or x.shape[1] < 2:
        raise ValueError(f"need (N_texts, S >= 2, E) embeddings, got {x.shape}")
    S = x.shape[1]
    ii, jj = np.triu_indices(S, 1)
    if pairs is not None:
        rng = np.random.default_rng(seed)
        sel = rng.choice(len(ii), min(pairs, len(ii)), replace=False)
        ii, jj = ii[sel], jj[sel]
    return float(np.linalg.norm(x[:, ii] - x[:, jj], axis=-1).mean())


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % confidence interval over repeated runs,
    1.96 * std / sqrt(R) (the convention of Guo et al. 2022, 20 repeats there). R = 1 gives 0."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        raise ValueError("no values")
    return float(v.mean()), float(1.96 * v.std() / np.sqrt(v.size)) if v.size > 1 else 0.0


def retrieval_recall(query_emb: np.ndarray, gallery_emb: np.ndarray, ks=(1, 2, 3, 5, 10),
                     batch_size: int | None = 32, seed: int | None = 0,
                     gallery_groups: np.ndarray | None = None) -> dict[int, float]:
    """Cross-modal retrieval recall R@k (TMR, Petrovich et al. 2023; TEMOS/Guo protocols):
    query i's correct item is gallery i; items are ranked by cosine similarity. With
    ``batch_size`` the pairs are shuffled and cut into batches (the "batch of 32" protocol, last
    incomplete batch dropped); ``None`` ranks against the whole gallery. ``gallery_groups`` (N,)
    optional ids: gallery items with the same id as the correct one (e.g. the identical caption
    text) also count as correct, as in TMR's handling of duplicate texts.
    Returns {k: fraction}."""
    q, g = _check_pair(query_emb, gallery_emb)
    q = q / np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
    g = g / np.linalg.norm(g, axis=1, keepdims=True).clip(1e-12)
    N = len(q)
    if batch_size is None:
        batches = [np.arange(N)]
    else:
        if N < batch_size:
            raise ValueError(f"retrieval in batches of {batch_size} needs at least {batch_size} pairs, got {N}")
        order = np.arange(N) if seed is None else np.random.default_rng(seed).permutation(N)
        batches = [order[s:s + batch_size] for s in range(0, (N // batch_size) * batch_size, batch_size)]
    hits = {k: 0 for k in ks}
    total = 0
    for idx in batches:
        sim = q[idx] @ g[idx].T
        if gallery_groups is not None:
            grp = np.asarray(gallery_groups)[idx]
            correct = grp[:, None] == grp[None, :]
        else:
            correct = np.eye(len(idx), dtype=bool)
        # best rank of any correct item: number of wrong items scoring strictly higher
        best_correct = np.where(correct, sim, -np.inf).max(1)
        rank = ((sim > best_correct[:, None]) & ~correct).sum(1)
        for k in ks:
            hits[k] += int((rank < k).sum())
        total += len(idx)
    return {k: hits[k] / total for k in ks}


# ----------------------------------------------------------------------------- physical (MBench)
CONTACT_HEIGHT_M = 0.06
"""A toe joint is in contact with the floor when its height is below this (metres). The toe joint
centre of this skeleton rests about 4 cm above the floor in standing real clips."""


def _joints(j: np.ndarray) -> np.ndarray:
    return check_joints(j, min_frames=0, dtype=np.float64)


def foot_skating(joints: np.ndarray, fps: float = FPS, contact_height: float = CONTACT_HEIGHT_M,
                 speed_threshold: float = 0.5) -> dict[str, float]:
    """Foot sliding (MBench "foot sliding"; GMD/Karunratanakul et al. 2023 skate ratio) from the
    toe joints: a toe is in contact on a frame pair when its height is below ``contact_height`` (m)
    on both frames; its horizontal speed (x, z; m/s) on those pairs is the sliding speed.
    joints (T >= 2, 21, 3) metres at ``fps``. Returns ``{"skate_speed": mean horizontal toe speed
    in contact (m/s, 0 when never in contact), "skate_ratio": fraction of contact pairs faster
    than ``speed_threshold`` m/s, "contact_frac": fraction of toe-frame pairs in contact}``."""
    j = _joints(joints)
    if len(j) < 2:
        raise ValueError("foot skating needs at least 2 frames")
    toes = j[:, list(TOE_JOINTS)]                       # (T, 2, 3)
    h = toes[..., 1]
    contact = (h[1:] < contact_height) & (h[:-1] < contact_height)
    speed = np.linalg.norm(toes[1:, :, [0, 2]] - toes[:-1, :, [0, 2]], axis=-1) * fps
    n = int(contact.sum())
    return {"skate_speed": float(speed[contact].mean()) if n else 0.0,
            "skate_ratio": float((speed[contact] > speed_threshold).mean()) if n else 0.0,
            "contact_frac": float(contact.mean())}


def jitter(joints: np.ndarray, fps: float = FPS) -> float:
    """Jitter (MBench "jitter degree"): mean magnitude of the jerk, the third time derivative of
    joint positions by finite differences, over all joints and frames, in m/s^3.
    joints (T >= 4, 21, 3) metres at ``fps``."""
    j = _joints(joints)
    if len(j) < 4:
        raise ValueError("jitter needs at least 4 frames")
    jerk = np.diff(j, n=3, axis=0) * fps ** 3
    return float(np.linalg.norm(jerk, axis=-1).mean())


def floor_penetration(joints: np.ndarray, floor: float = 0.0) -> dict[str, float]:
    """Floor penetration (MBench "penetration"): per frame, the depth of the lowest joint below the
    floor plane y = ``floor`` (0 when above). joints (T, 21, 3) metres. Returns
    ``{"penetration_m": mean depth over frames (m), "penetration_frac": fraction of frames with
    any joint below the floor}``."""
    j = _joints(joints)
    depth = np.maximum(floor - j[..., 1].min(1), 0.0)
    return {"penetration_m": float(depth.mean()), "penetration_frac": float((depth > 0).mean())}


def physical_metrics(clips: list[np.ndarray], fps: float = FPS) -> dict[str, float]:
    """Frame-weighted means of :func:`foot_skating`, :func:`jitter` and :func:`floor_penetration`
    over motions (each (T_i >= 4, 21, 3))."""
    if not clips:
        raise ValueError("no motions")
    acc: dict[str, list[tuple[float, float]]] = {}
    for c in clips:
        n = len(c)
        fs = foot_skating(c, fps)
        vals = {**fs, "jitter": jitter(c, fps), **floor_penetration(c)}
        # skate speed and ratio are weighted by contact pairs, the rest by frames
        for k, v in vals.items():
            w = fs["contact_frac"] * n if k in ("skate_speed", "skate_ratio") else n
            acc.setdefault(k, []).append((v, w))
    return {k: float(sum(v * w for v, w in x) / max(sum(w for _, w in x), 1e-12)) for k, x in acc.items()}


# ----------------------------------------------------------------------------- recognition
def frequency_groups(train_labels: list[str], head: float = 0.1, medium: float = 0.3) -> dict[str, str]:
    """Split classes by training frequency as in the CoAMD paper (section 4.1): the most frequent
    ``head`` fraction of classes is "head", the next ``medium`` fraction "medium", the rest "tail"
    (at least one class in each group when there are three or more classes). Returns {class: group}."""
    from collections import Counter

    counts = Counter(train_labels)
    classes = sorted(counts, key=lambda c: (-counts[c], c))
    n = len(classes)
    nh = max(1, int(round(head * n)))
    nm = max(1, int(round(medium * n))) if n >= 3 else 0
    return {c: ("head" if i < nh else "medium" if i < nh + nm else "tail") for i, c in enumerate(classes)}


def grouped_top1(true: list[str], pred: list[str], groups: dict[str, str]) -> dict[str, float | int]:
    """Top-1 accuracy overall and per frequency group ({"overall", "head", "medium", "tail"} plus
    ``n_*`` counts); a group with no test sample gets NaN."""
    if len(true) != len(pred) or not true:
        raise ValueError("true and pred must be non-empty and of equal length")
    t, p = np.asarray(true), np.asarray(pred)
    out: dict[str, float | int] = {"overall": float((t == p).mean()), "n_overall": len(t)}
    g = np.asarray([groups.get(x, "tail") for x in true])
    for name in ("head", "medium", "tail"):
        m = g == name
        out[name] = float((t[m] == p[m]).mean()) if m.any() else float("nan")
        out[f"n_{name}"] = int(m.sum())
    return out
