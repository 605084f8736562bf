"""Fast tests of the server pieces that need no model: coordinate conversion and the scheduler."""
from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
import pytest

from coamd.server import coords
from coamd.server.scheduler import GuidanceFailed, Job, QueueFull, Scheduler


def _quat_rotate(q, v):
    x, y, z, w = q
    u = np.array([x, y, z])
    return 2 * np.dot(u, v) * u + (w * w - np.dot(u, u)) * v + 2 * w * np.cross(u, v)


def test_unity_conversion_commutes_with_rotation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        v = rng.normal(size=3)
        rotated_then_converted = coords.positions_to(_quat_rotate(q, v), coords.UNITY_LEFT_HANDED_Y_UP)
        converted = _quat_rotate(coords.quaternions_to(q, coords.UNITY_LEFT_HANDED_Y_UP),
                                 coords.positions_to(v, coords.UNITY_LEFT_HANDED_Y_UP))
        np.testing.assert_allclose(rotated_then_converted, converted, atol=1e-5)


def test_conversion_roundtrip_real_clip(dataset):
    j = dataset.clips[0].joints
    u = coords.positions_to(j, coords.UNITY_LEFT_HANDED_Y_UP)
    assert np.allclose(u[..., 0], -j[..., 0]) and np.allclose(u[..., 1:], j[..., 1:])
    np.testing.assert_array_equal(coords.positions_from(u, coords.UNITY_LEFT_HANDED_Y_UP), j)
    np.testing.assert_array_equal(coords.positions_to(j, coords.RIGHT_HANDED_Y_UP), j)
    with pytest.raises(ValueError, match="unknown coordinate system"):
        coords.positions_to(j, "z_up")


class _Chunk:
    def __init__(self, start, n):
        self.start, self.joints = start, np.zeros((n, 21, 3), np.float32)


class _State:
    def __init__(self, p):
        self.p, self.pos, self.guided = p, 0, p.get("guided", False)


class ScriptedModel:
    """A step model whose per-step cost is fixed; records the batch sizes it saw."""

    def __init__(self):
        self.batches = []

    def start(self, p):
        if p.get("bad_start"):
            raise ValueError("edit longer than the motion")
        return _State(p)

    def step(self, states):
        self.batches.append(len(states))
        time.sleep(0.01)
        if any(s.p.get("fail") for s in states):
            raise RuntimeError("boom")
        if any(s.p.get("fail_guide") and s.guided for s in states):
            raise GuidanceFailed("sidecar down")
        out = []
        for s in states:
            out.append([_Chunk(s.pos, 4)])
            s.pos += 4
        return out

    def done(self, s):
        return s.pos >= s.p["frames"]

    def guided(self, s):
        return s.guided

    def disable_guidance(self, s):
        s.guided = False


async def _drain(job):
    frames, end = 0, None
    while end is None:
        item = await job.queue.get()
        if item[0] == "frames":
            assert item[1].start == frames
            frames += item[1].joints.shape[0]
        else:
            end = item
    return frames, end


def _run(coro):
    return asyncio.run(coro)


def test_scheduler_batches_and_isolates_failures():
    model = ScriptedModel()
    sched = Scheduler(model, max_batch=8, max_queue=8)

    async def go():
        loop = asyncio.get_running_loop()
        specs = [dict(frames=40), dict(frames=20), dict(frames=40, fail=True),
                 dict(frames=24, fail_guide=True, guided=True), dict(frames=8, bad_start=True)]
        jobs = [Job(params=s, loop=loop) for s in specs]
        for j in jobs:
            sched.submit(j)
        return jobs, await asyncio.gather(*(_drain(j) for j in jobs))

    jobs, results = _run(go())
    sched.close()
    assert results[0] == (40, ("done", None)) and results[1] == (20, ("done", None))
    assert results[2][1][:2] == ("error", grpc.StatusCode.INTERNAL)
    assert results[3][0] == 24 and results[3][1][0] == "done" and "guidance sidecar failed" in jobs[3].guidance_note
    assert results[4][1][:2] == ("error", grpc.StatusCode.INVALID_ARGUMENT)
    assert max(model.batches) >= 3                      # concurrent jobs shared steps


def test_scheduler_cancel_and_queue_bound():
    model = ScriptedModel()
    sched = Scheduler(model, max_batch=1, max_queue=1)

    async def go():
        loop = asyncio.get_running_loop()
        a, b, c = (Job(params=dict(frames=4000), loop=loop) for _ in range(3))
        sched.submit(a)
        await asyncio.sleep(0.05)
        sched.submit(b)
        with pytest.raises(QueueFull):
            sched.submit(c)
        a.cancel()
        b.cancel()
        ra, rb = await asyncio.gather(_drain(a), _drain(b))
        return ra, rb

    t = time.monotonic()
    ra, rb = _run(go())
    sched.close()
    assert ra[1][1] == grpc.StatusCode.CANCELLED and rb[1][1] == grpc.StatusCode.CANCELLED
    assert ra[0] < 4000 and time.monotonic() - t < 5
    assert set(model.batches) == {1}                    # batching capped at one


def test_scheduler_without_batching_serves_one_at_a_time():
    model = ScriptedModel()
    sched = Scheduler(model, max_batch=8, max_queue=8, batching=False)

    async def go():
        loop = asyncio.get_running_loop()
        jobs = [Job(params=dict(frames=12), loop=loop) for _ in range(3)]
        for j in jobs:
            sched.submit(j)
        return await asyncio.gather(*(_drain(j) for j in jobs))

    res = _run(go())
    sched.close()
    assert all(r == (12, ("done", None)) for r in res) and set(model.batches) == {1}


def test_new_request_first_step_runs_alone():
    model = ScriptedModel()
    sched = Scheduler(model, max_batch=8, max_queue=8)

    async def go():
        loop = asyncio.get_running_loop()
        old = [Job(params=dict(frames=400), loop=loop) for _ in range(3)]
        for j in old:
            sched.submit(j)
        await asyncio.sleep(0.1)                        # the three share steps by now
        n_before = len(model.batches)
        new = Job(params=dict(frames=8), loop=loop)
        sched.submit(new)
        res = await _drain(new)
        for j in old:
            j.cancel()
        await asyncio.gather(*(_drain(j) for j in old))
        return n_before, res

    n_before, res = _run(go())
    sched.close()
    assert res == (8, ("done", None))
    after = model.batches[n_before:]
    assert 1 in after and 4 in after                    # first step alone, then shared with the old three
    assert after.index(1) < after.index(4)
