"""Continuous batching of generation requests, one autoregressive step at a time.

One worker thread owns the model calls, so the asyncio event loop that serves gRPC never blocks on
them. Every request becomes a ``Job``; the worker keeps a list of active jobs and runs one
``step(states)`` of the sampler for all of them together (one batched backend call per stage,
requests of different lengths padded by the sampler). A new request joins the batch at the next
step rather than waiting for the current batch to finish, and a finished, cancelled or expired
request leaves it at once (continuous batching, as in Orca / vLLM). With ``batching=False`` the
batch is capped at one request: requests are served one after another (the baseline of
``benchmarks/load.py``).

First-step priority (``prioritize_new``): a request that has not run any step yet gets its first
step in a batch of the new requests only, so its first frames do not wait for a full batch step
of everyone else (like prefill priority in LLM servers); from its second step on it shares the
batch. This trades a little throughput for time to first frame under load.

Admission is bounded two ways, and ``submit`` raises ``QueueFull`` (the service answers
RESOURCE_EXHAUSTED at once) when either bound would be passed:

- at most ``max_batch`` jobs are active and at most ``max_queue`` wait;
- the **expected wait** of the new request before its first step, estimated from measured step
  times, must not exceed ``max_wait_s`` (default 2 s). The estimate replays the current jobs:
  every active job needs its remaining steps, every waiting job its whole request, slots free up
  as jobs finish (an event simulation), and one step costs the measured wall time between a job's
  consecutive steps (a moving average, so batch interleaving is included). So under overload the requests that are accepted start promptly
  and the rest are told to retry, instead of all waiting tens of seconds for their first frame.

Failure isolation: if a batched step raises, each request of the batch is retried alone so one bad
request fails only its own stream (INTERNAL). Anything else that goes wrong inside the worker's
loop fails only the jobs of that round (INTERNAL) and the worker goes on; should the worker thread
ever stop for another reason, every job still waiting gets UNAVAILABLE, ``submit`` refuses new
ones, ``healthy`` turns False and ``on_failure`` is called (the server then reports NOT_SERVING).
Jobs are compared by identity only (``Job`` is a dataclass with ``eq=False``): two requests with
equal parameters, edit frames included, are two jobs. A failure of the recognizer guidance sidecar
(``GuidanceFailed``) turns guidance off for that request, which then completes unguided with a note.
This relies on the sampler's contract that a step which raises leaves its states unchanged.

Results go back to the event loop with ``loop.call_soon_threadsafe`` into each job's
``asyncio.Queue`` as ``("frames", chunk)``, ``("done", None)`` or ``("error", code, message)``.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading
import heapq
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import grpc

log = logging.getLogger("coamd.server")


class QueueFull(Exception):
    """The waiting queue is at capacity."""


class GuidanceFailed(RuntimeError):
    """The recognizer guidance sidecar raised; the request may continue without guidance."""


class StepModel(Protocol):
    """What the scheduler needs from the model side (implemented in ``coamd.server.engine``)."""

    def start(self, params) -> Any: ...                    # one request -> sampler state
    def step(self, states: list) -> list: ...              # one iteration -> list of chunks per state
    def done(self, state) -> bool: ...
    def disable_guidance(self, state) -> None: ...
    def guided(self, state) -> bool: ...
    # optional: ``steps_needed(params) -> int``, the worker steps a request takes (default: its
    # ``params.iterations``, else 1); used only to estimate waits


@dataclass(eq=False)
class Job:
    """One generation request as the scheduler sees it. Times are ``time.monotonic()`` seconds.

    Compared and hashed by identity (``eq=False``): parameters may hold numpy arrays (edit frames),
    and two identical requests are still two jobs.
    """

    params: Any
    loop: asyncio.AbstractEventLoop
    deadline: float | None = None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    t_submit: float = field(default_factory=time.monotonic)
    t_start: float | None = None
    t_last_step: float | None = None
    state: Any = None
    steps: int = 0
    max_batch: int = 0
    guidance_note: str = ""
    _cancelled: threading.Event = field(default_factory=threading.Event)
    _closed: bool = False

    def cancel(self) -> None:
        """Stop this job's work before the worker's next step (thread-safe, idempotent)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    # -- called by the worker thread only
    def _post(self, item: tuple) -> None:
        if self._closed:
            return
        if item[0] != "frames":
            self._closed = True
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (shutdown)
            self._closed = True


class Scheduler:
    """Batches ``Job``s into shared sampler steps on a worker thread.

    ``max_batch``: most requests per step (1 when ``batching`` is False). ``max_queue``: most
    requests waiting for a slot. ``max_wait_s``: largest expected wait before a new request's
    first step (seconds; None = no bound). ``submit`` raises QueueFull beyond either bound.
    ``on_failure``: called once, from the worker thread, with a message if the worker ever stops
    for a reason other than ``close()``. ``step_time_s``: the step-time estimate used before any
    step was measured (seconds).
    """

    EMA = 0.2   # weight of the newest measured step in the step-time average

    def __init__(self, model: StepModel, max_batch: int = 8, max_queue: int = 32, batching: bool = True,
                 prioritize_new: bool = True, max_wait_s: float | None = 2.0,
                 on_failure: Callable[[str], None] | None = None, step_time_s: float = 0.05):
        if max_batch < 1 or max_queue < 0:
            raise ValueError(f"max_batch must be >= 1 and max_queue >= 0, got {max_batch}, {max_queue}")
        if max_wait_s is not None and not max_wait_s > 0:
            raise ValueError(f"max_wait_s must be > 0 (or None for no bound), got {max_wait_s}")
        self.model = model
        self.max_batch = max_batch if batching else 1
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self.batching = batching
        self.prioritize_new = prioritize_new
        self.on_failure = on_failure
        self.step_time_s = float(step_time_s)   # wall time of one batched model step (moving average)
        self.job_step_s = float(step_time_s)    # a job's active wall time per step (moving average)
        self._pending: collections.deque[Job] = collections.deque()
        self._active: list[Job] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._failed: str | None = None
        self.steps = 0
        self.rejected = collections.Counter()
        self.batch_histogram: collections.Counter = collections.Counter()
        self._thread = threading.Thread(target=self._main, name="coamd-scheduler", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- event-loop side
    def _steps_needed(self, job: Job) -> int:
        fn = getattr(self.model, "steps_needed", None)
        try:
            n = fn(job.params) if fn is not None else getattr(job.params, "iterations", 1)
            return max(1, int(n))
        except Exception:  # noqa: BLE001 - an estimate only
            return 1

    def expected_wait_s(self, extra: Job | None = None) -> float:
        """Expected seconds before a request submitted now (``extra``, or a one-step request) runs
        its first step: an event simulation of the active jobs' remaining steps and the waiting
        jobs' whole requests, each step costing the measured wall time between a job's consecutive
        steps (``job_step_s``, a moving average, which includes the interleaving of batches and of
        new requests' first steps), plus one batch step. Call with the lock held or
        accept a racy estimate."""
        per_step = max(self.step_time_s, self.job_step_s)
        finish = [max(0, self._steps_needed(j) - j.steps) * per_step for j in self._active]
        heapq.heapify(finish)
        start = 0.0
        for job in list(self._pending) + ([extra] if extra is not None else [None]):
            start = 0.0
            if len(finish) >= self.max_batch:
                start = heapq.heappop(finish)
            heapq.heappush(finish, start + (self._steps_needed(job) if job is not None else 1) * per_step)
        busy = bool(self._active or self._pending)
        return start + (self.step_time_s if busy else 0.0)

    def submit(self, job: Job) -> None:
        """Queue ``job``. Raises QueueFull when ``max_queue`` jobs already wait or the expected wait
        exceeds ``max_wait_s``; RuntimeError when the scheduler is closed or its worker stopped."""
        with self._cond:
            if self._failed is not None:
                raise RuntimeError(f"generation worker stopped: {self._failed}")
            if self._stopping:
                raise RuntimeError("server is shutting down")
            if len(self._pending) >= self.max_queue and len(self._active) + len(self._pending) >= self.max_batch:
                self.rejected["queue"] += 1
                raise QueueFull(f"{len(self._pending)} requests waiting (max_queue={self.max_queue})")
            if self.max_wait_s is not None:
                wait = self.expected_wait_s(job)
                if wait > self.max_wait_s:
                    self.rejected["wait"] += 1
                    raise QueueFull(f"expected wait {wait:.1f} s exceeds {self.max_wait_s:g} s "
                                    f"({len(self._active)} active, {len(self._pending)} waiting)")
            self._pending.append(job)
            self._cond.notify()

    @property
    def load(self) -> tuple[int, int]:
        """(active, waiting) job counts."""
        with self._cond:
            return len(self._active), len(self._pending)

    @property
    def healthy(self) -> bool:
        """False once the worker thread has stopped for any reason other than ``close()``."""
        return self._failed is None and (self._thread.is_alive() or self._stopping)

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what is left and stop the worker thread."""
        with self._cond:
            self._stopping = True
            for job in list(self._pending) + list(self._active):
                job.cancel()
            self._cond.notify()
        self._thread.join(timeout)

    # ----------------------------------------------------------------- worker thread
    def _main(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - last line of defence: report, never hang clients
            log.critical("generation worker crashed: %s", traceback.format_exc())
            self._die(f"{type(exc).__name__}: {exc}")

    def _die(self, reason: str) -> None:
        log.critical("generation worker stopped: %s", reason)
        with self._cond:
            self._failed = reason
            jobs = list(self._pending) + list(self._active)
            self._pending.clear()
            self._active = []
        if self.on_failure is not None:   # first, so health is NOT_SERVING before clients hear back
            try:
                self.on_failure(reason)
            except Exception:  # noqa: BLE001
                log.exception("on_failure callback raised")
        for job in jobs:
            job._post(("error", grpc.StatusCode.UNAVAILABLE, "generation worker stopped; retry on another server"))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._active and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    for job in list(self._pending) + self._active:
                        job._post(("error", grpc.StatusCode.UNAVAILABLE, "server is shutting down"))
                    self._pending.clear()
                    self._active = []
                    return
                admitted = []
                while self._pending and len(self._active) + len(admitted) < self.max_batch:
                    admitted.append(self._pending.popleft())
            batch: list[Job] = list(admitted)
            try:
                self._admit(admitted)
                with self._cond:
                    self._active = [j for j in self._active if not self._retire_if_dead(j)]
                    batch = list(self._active)
                    fresh = [j for j in batch if j.steps == 0]
                    if self.prioritize_new and fresh and len(fresh) < len(batch):
                        batch = fresh
                if batch:
                    self._step(batch)
            except Exception:  # noqa: BLE001 - defensive: the worker must survive anything
                log.error("scheduler round crashed: %s", traceback.format_exc())
                dropped = {id(j) for j in batch}
                for job in batch:
                    job._post(("error", grpc.StatusCode.INTERNAL, "scheduler error"))
                with self._cond:
                    self._active = [j for j in self._active if id(j) not in dropped]

    def _admit(self, admitted: list[Job]) -> None:
        for job in admitted:
            if self._retire_if_dead(job):
                continue
            job.t_start = time.monotonic()
            try:
                job.state = self.model.start(job.params)
            except ValueError as exc:  # the sampler rejected a combination the edge let through
                job._post(("error", grpc.StatusCode.INVALID_ARGUMENT, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - never let one request kill the worker
                log.error("start failed: %s", traceback.format_exc())
                job._post(("error", grpc.StatusCode.INTERNAL, f"model error: {type(exc).__name__}: {exc}"))
                continue
            with self._cond:
                self._active.append(job)

    def _retire_if_dead(self, job: Job) -> bool:
        if job.cancelled:
            job._post(("error", grpc.StatusCode.CANCELLED, "cancelled"))
            return True
        if job.expired(time.monotonic()):
            job._post(("error", grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"))
            return True
        return False

    def _measured(self, seconds: float) -> None:
        self.step_time_s = (1 - self.EMA) * self.step_time_s + self.EMA * seconds

    def _step(self, batch: list[Job]) -> None:
        n = len(batch)
        self.steps += 1
        self.batch_histogram[n] += 1
        for job in batch:
            job.max_batch = max(job.max_batch, n)
            job.steps += 1
        t0 = time.monotonic()
        try:
            results = list(zip(batch, self.model.step([j.state for j in batch])))
            t1 = time.monotonic()
            self._measured(t1 - t0)
            gaps = [t1 - j.t_last_step for j in batch if j.t_last_step is not None]
            if gaps:   # wall time between a job's consecutive steps: its real cost per step in this load
                self.job_step_s = (1 - self.EMA) * self.job_step_s + self.EMA * (sum(gaps) / len(gaps))
            for job in batch:
                job.t_last_step = t1
        except Exception as exc:  # noqa: BLE001
            if n > 1:
                log.warning("batched step of %d failed (%s); retrying each request alone", n, exc)
            results = []
            for job in batch:
                chunks = self._step_alone(job, exc if n == 1 else None)
                if chunks is not None:
                    results.append((job, chunks))
        finished = []
        for job, chunks in results:
            for chunk in chunks:
                job._post(("frames", chunk))
            if self.model.done(job.state):
                job._post(("done", None))
                finished.append(job)

        if finished or len(results) != n:
            keep = {id(j) for j, _ in results} - {id(j) for j in finished}
            gone = {id(j) for j in batch} - keep
            with self._cond:
                self._active = [j for j in self._active if id(j) not in gone]

    def _step_alone(self, job: Job, first_exc: Exception | None):
        """One step for ``job`` alone; on guidance failure, retry unguided. None if the job failed."""
        exc = first_exc
        for _attempt in range(2):
            if exc is None:
                try:
                    return self.model.step([job.state])[0]
                except Exception as e:  # noqa: BLE001
                    exc = e
            if isinstance(exc, GuidanceFailed) and self.model.guided(job.state):
                log.warning("guidance sidecar failed, continuing unguided: %s", exc)
                job.guidance_note = f"guidance sidecar failed ({exc}); completed without guidance"
                self.model.disable_guidance(job.state)
                exc = None
                continue
            break
        log.error("model step failed for one request: %s", "".join(traceback.format_exception(exc)))
        job._post(("error", grpc.StatusCode.INTERNAL, f"model error: {type(exc).__name__}: {exc}"))
        return None
