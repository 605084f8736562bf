"""Causal foot-contact cleanup (coamd.sampling.cleanup) on real clips and on the shipped model's output."""
from __future__ import annotations

import numpy as np
import pytest

from coamd.evaluation.metrics import foot_skating, jitter
from coamd.sampling.cleanup import LEGS, CleanupConfig, MotionCleanup, clean_motion, two_bone_ik
from coamd.skeleton import BONE_CHILDREN, BONE_PARENTS


@pytest.fixture(scope="module")
def walks(dataset):
    """Four real walking clips of the test split (not mirrored), at most 8 s each."""
    clips = [c for c in dataset.split("test") if c.content == "walk" and not c.mirrored][:4]
    assert len(clips) == 4
    return [c.joints[:160].astype(np.float64) for c in clips]


def _bone_lengths(j):
    return np.linalg.norm(j[:, BONE_CHILDREN] - j[:, BONE_PARENTS], axis=-1)


def test_two_bone_ik_reaches_the_target_and_keeps_lengths(walks):
    f = walks[0][40]
    hip, knee, ankle, _ = LEGS[0]
    target = f[ankle] + np.array([0.08, 0.0, -0.05])
    k, a = two_bone_ik(f[hip], f[knee], f[ankle], target)
    np.testing.assert_allclose(a, target, atol=1e-9)
    assert abs(np.linalg.norm(k - f[hip]) - np.linalg.norm(f[knee] - f[hip])) < 1e-9
    assert abs(np.linalg.norm(a - k) - np.linalg.norm(f[ankle] - f[knee])) < 1e-9
    # out of reach: the ankle stops on the reach sphere, towards the target
    far = f[hip] + np.array([0.0, -5.0, 0.0])
    k, a = two_bone_ik(f[hip], f[knee], f[ankle], far, reach=0.99)
    leg = np.linalg.norm(f[knee] - f[hip]) + np.linalg.norm(f[ankle] - f[knee])
    assert abs(np.linalg.norm(a - f[hip]) - 0.99 * leg) < 1e-9
    assert a[1] < f[hip, 1]


def test_cleanup_removes_sliding_added_to_real_walks(walks):
    """A real walk whose body drifts sideways (every joint, 0.4 m/s) skates; the cleanup
    takes the drift out of the planted frames, so skating goes back to the real level."""
    for j in walks:
        drifted = j.copy()
        drifted[..., 0] += 0.4 * np.arange(len(j))[:, None] / 20.0
        real, raw, cleaned = (foot_skating(m)["skate_speed"] for m in (j, drifted, clean_motion(drifted)))
        assert raw > 3 * real
        assert cleaned < 1.5 * real


def test_cleanup_keeps_the_pose_and_only_moves_legs(walks):
    """Without smoothing: the body above the legs keeps its pose relative to the hips, the hips
    keep their height, and every bone keeps its length (the IK keeps thigh and shin)."""
    cfg = CleanupConfig(smoothing=0.0)
    legs = sorted({i for leg in LEGS for i in leg[1:]})
    others = [i for i in range(21) if i not in legs]
    for j in walks:
        out = clean_motion(j, cfg).astype(np.float64)
        np.testing.assert_allclose(out[:, others] - out[:, :1], j[:, others] - j[:, :1], atol=1e-5)
        np.testing.assert_allclose(out[:, 0, 1], j[:, 0, 1], atol=1e-6)
        np.testing.assert_allclose(_bone_lengths(out), _bone_lengths(j), atol=1e-5)


def test_cleanup_is_causal_and_chunking_does_not_change_it(walks):
    j = walks[1]
    whole = clean_motion(j)
    for size in (1, 4, 7):
        cl = MotionCleanup()
        parts = np.concatenate([cl.apply(j[s:s + size]) for s in range(0, len(j), size)])
        np.testing.assert_array_equal(parts, whole)
    np.testing.assert_array_equal(clean_motion(j[:50]), whole[:50])  # frame t depends on frames <= t only


def test_cleanup_lowers_skating_and_jitter_of_generated_walks(dataset):
    """The shipped model's raw walks skate and jitter more than real ones; cleaned, the same
    motions skate at most 1.5x and jitter at most 1.5x as much as real test walks."""
    import torch

    from coamd.runtime import load_engine
    from coamd.sampling import GenerationRequest

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    eng = load_engine("torch", dataset=dataset.root)
    texts = ["a person walks forward", "someone runs ahead", "a person walks and turns left",
             "a person walks forward happily"]
    reqs = [GenerationRequest(t, duration_s=6.0, seed=i, guidance=False, cleanup=False, skeleton="raw")
            for i, t in enumerate(texts)]
    raw = eng.sampler.sample_batch(reqs)
    cleaned = [clean_motion(m) for m in raw]
    real = [c.joints[:120] for c in dataset.split("test") if c.content in ("walk", "run") and not c.mirrored][:8]
    skate = {k: np.mean([foot_skating(m)["skate_speed"] for m in v]) for k, v in
             (("real", real), ("raw", raw), ("cleaned", cleaned))}
    jit = {k: np.mean([jitter(m) for m in v]) for k, v in (("real", real), ("raw", raw), ("cleaned", cleaned))}
    assert skate["raw"] > 2 * skate["real"]
    assert skate["cleaned"] < 1.5 * skate["real"]
    assert jit["cleaned"] < min(jit["raw"], 1.5 * jit["real"])
    # the sampler's own cleanup (default on) gives exactly these frames
    on = eng.sampler.sample(GenerationRequest(texts[0], duration_s=6.0, seed=0, guidance=False, skeleton="raw"))
    np.testing.assert_allclose(on, cleaned[0], atol=1e-5)  # float32 at metres from the origin
    torch.set_num_threads(threads)


def test_bad_input_and_settings_raise():
    with pytest.raises(ValueError, match="smoothing"):
        MotionCleanup(CleanupConfig(smoothing=1.0))
    with pytest.raises(ValueError, match="lock_height"):
        MotionCleanup(CleanupConfig(lock_height=0.1, unlock_height=0.05))
    with pytest.raises(ValueError, match="reach"):
        MotionCleanup(CleanupConfig(reach=0))
    with pytest.raises(ValueError, match=r"\(n, 21, 3\)"):
        clean_motion(np.zeros((10, 20, 3)))
    bad = np.zeros((4, 21, 3))
    bad[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clean_motion(bad)
