"""Metric definitions checked against independent hand computations on REAL test-split data
(evaluator embeddings of real clips and their captions; real joints for the physical metrics)."""
from __future__ import annotations

import numpy as np
import pytest

from coamd.evaluation import metrics as M
from coamd.skeleton import TOE_JOINTS


@pytest.fixture(scope="module")
def evaluator():
    from coamd.evaluation.evaluator import load_evaluator

    return load_evaluator()


@pytest.fixture(scope="module")
def real(dataset, evaluator):
    """Evaluator embeddings of the first 256 test clips and one training-family caption each."""
    clips = dataset.split("test")[:256]
    texts = [c.caption_texts()[0] for c in clips]
    t = evaluator.embed_texts(texts)
    m = evaluator.embed_clips([c.joints for c in clips])
    return clips, texts, t, m


def test_r_precision_matches_hand_ranking_and_beats_chance(real):
    _, _, t, m = real
    got = M.r_precision(t, m, batch_size=32, top_k=3, seed=None)
    hits = np.zeros(3)
    for s in range(0, 256, 32):
        for i in range(32):
            d = [np.sqrt(((t[s + i] - m[s + j]) ** 2).sum()) for j in range(32)]
            order = sorted(range(32), key=lambda j: (d[j], j != i))
            pos = order.index(i)
            hits += [pos < 1, pos < 2, pos < 3]
    np.testing.assert_allclose(got, hits / 256, atol=1e-9)
    assert got[0] > 5 * (1 / 32), f"real pairs R@1 {got[0]:.3f} not far above chance 1/32"
    assert got[0] <= got[1] <= got[2]
    mismatched = M.r_precision(t, np.roll(m, 7, axis=0), 32, 3, seed=None)
    assert mismatched[0] < got[0] / 2


def test_mm_dist_cosine_and_multimodality_by_hand(real):
    _, _, t, m = real
    # float32 embeddings: the vectorised mean and the per-pair loop differ in the last bits
    assert M.mm_dist(t, m) == pytest.approx(np.mean([np.linalg.norm(a - b) for a, b in zip(t, m)]), rel=1e-6)
    cos = np.mean([a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(t, m)])
    assert M.cosine_score(t, m) == pytest.approx(cos, rel=1e-6)
    assert M.mm_dist(t, m) < M.mm_dist(t, np.roll(m, 7, axis=0))
    groups = m[:60].reshape(20, 3, -1)
    hand = np.mean([np.mean([np.linalg.norm(g[a] - g[b]) for a in range(3) for b in range(a + 1, 3)]) for g in groups])
    assert M.multimodality(groups) == pytest.approx(hand, rel=1e-6)


def test_fid_against_independent_eigen_formula_and_self(real, dataset, evaluator):
    _, _, _, m = real
    val = evaluator.embed_clips([c.joints for c in dataset.split("val")[:256]])
    assert M.frechet_distance(m, m) < 1e-6
    mu1, mu2 = m.astype(np.float64).mean(0), val.astype(np.float64).mean(0)
    s1, s2 = np.cov(m.astype(np.float64), rowvar=False), np.cov(val.astype(np.float64), rowvar=False)
    # Tr((S1 S2)^1/2) = sum of square roots of the eigenvalues of S1 S2 (real, non-negative)
    ev = np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)
    hand = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev).sum()
    assert M.frechet_distance(m, val) == pytest.approx(hand, rel=1e-3, abs=1e-4)
    # two real sets are closer than real vs the same clips with the time axis reversed
    rev = evaluator.embed_clips([c.joints[::-1].copy() for c in dataset.split("test")[:256]])
    assert M.frechet_distance(m, val) < M.frechet_distance(m, rev)


def test_diversity_approximates_mean_pairwise_distance(real):
    _, _, _, m = real
    allpairs = M.euclidean_matrix(m, m)[np.triu_indices(len(m), 1)].mean()
    assert M.diversity(m, 256, seed=1) == pytest.approx(allpairs, rel=0.1)
    assert M.diversity(np.repeat(m[:1], 300, 0), 300) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        M.diversity(m[:10], 300)


def test_retrieval_recall_matches_argsort(real):
    _, texts, t, m = real
    got = M.retrieval_recall(t, m, ks=(1, 5), batch_size=None)
    tn = t / np.linalg.norm(t, axis=1, keepdims=True)
    mn = m / np.linalg.norm(m, axis=1, keepdims=True)
    ranks = [int(np.where(np.argsort(-(tn[i] @ mn.T), kind="stable") == i)[0][0]) for i in range(len(t))]
    assert got[1] == pytest.approx(np.mean([r < 1 for r in ranks]), abs=1.5 / len(t))
    assert got[5] == pytest.approx(np.mean([r < 5 for r in ranks]), abs=1.5 / len(t))
    b = M.retrieval_recall(t, m, ks=(1,), batch_size=32)
    assert b[1] > 5 / 32 and b[1] >= got[1]


def test_foot_skating_rises_with_injected_toe_sliding(dataset):
    clips = [c.joints for c in dataset.split("test")[:40]]
    base = M.physical_metrics(clips)
    assert base["contact_frac"] > 0.3, "real clips should have the toes on the floor much of the time"
    slid = []
    for j in clips:
        j = j.copy()
        T = len(j)
        drift = 0.05 * np.arange(T)  # toes slide 5 cm per frame = 1 m/s along x
        for k in TOE_JOINTS:
            j[:, k, 0] += drift
        slid.append(j)
    s = M.physical_metrics(slid)
    assert s["skate_speed"] > base["skate_speed"] + 0.5
    assert s["skate_ratio"] > base["skate_ratio"]
    one = M.foot_skating(slid[0])
    toes = slid[0][:, list(TOE_JOINTS)]
    c = (toes[1:, :, 1] < M.CONTACT_HEIGHT_M) & (toes[:-1, :, 1] < M.CONTACT_HEIGHT_M)
    v = np.hypot(*(toes[1:, :, [0, 2]] - toes[:-1, :, [0, 2]]).transpose(2, 0, 1)) * 20
    assert one["skate_speed"] == pytest.approx(v[c].mean(), rel=1e-6)


def test_jitter_and_penetration_on_real_clips(dataset):
    j = dataset.split("test")[0].joints.astype(np.float64)
    hand = np.mean(np.linalg.norm(j[3:] - 3 * j[2:-1] + 3 * j[1:-2] - j[:-3], axis=-1)) * 20 ** 3
    assert M.jitter(j) == pytest.approx(hand, rel=1e-9)
    noisy = j + np.random.default_rng(0).normal(0, 0.01, j.shape)
    assert M.jitter(noisy) > 2 * M.jitter(j)
    assert M.floor_penetration(j)["penetration_m"] == 0.0
    low = j - np.array([0, 0.1, 0])
    depth = np.maximum(-low[..., 1].min(1), 0)
    assert M.floor_penetration(low)["penetration_m"] == pytest.approx(depth.mean())
    assert M.floor_penetration(low)["penetration_frac"] > 0.5
    with pytest.raises(ValueError):
        M.jitter(j[:, :20])


def test_frequency_groups_on_train_labels(dataset):
    labels = [c.content for c in dataset.split("train")]
    g = M.frequency_groups(labels)
    n = len(set(labels))
    heads = [c for c, x in g.items() if x == "head"]
    assert len(heads) == max(1, round(0.1 * n))
    from collections import Counter

    cnt = Counter(labels)
    assert min(cnt[c] for c in heads) >= max(cnt[c] for c, x in g.items() if x == "tail")
    acc = M.grouped_top1(["walk", "run", "bow"], ["walk", "walk", "bow"], g)
    assert acc["overall"] == pytest.approx(2 / 3)


def test_confidence_interval():
    m, ci = M.mean_ci95([0.4, 0.5, 0.6])
    assert m == pytest.approx(0.5)
    assert ci == pytest.approx(1.96 * np.std([0.4, 0.5, 0.6]) / np.sqrt(3))
