"""How busy the CPU is right now, and the PyTorch thread count that follows from it.

Training and one-off CLI runs use two intra-op threads on the 2-core box, but one when other work
already keeps the cores busy: measured there, two OpenMP threads competing with another job ran a
training step 6-10x slower than one thread.

"Busy" is measured over a short window from ``/proc/stat`` (Linux), not from the load average:
the 1-minute load average still reads about 2 for a minute or two after a 2-thread job ends, so
a step of ``make ablation`` or ``make train`` could see the step before it and fall back to one
thread (2 of the 8 steps of one ``make ablation`` run did; a time-budgeted step then also trains
fewer steps). Where ``/proc/stat`` cannot be read, the load average is the fall-back.
"""
from __future__ import annotations

import os
import time

WINDOW_S = 0.2  # /proc/stat counts in 10 ms ticks: 40 ticks on 2 cores, enough to tell busy from idle


def _cpu_times() -> tuple[int, int] | None:
    """(all ticks, idle + iowait ticks) summed over the cores, from the ``cpu`` line of
    ``/proc/stat``; None where there is no such file."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 6:
        return None
    ticks = [int(x) for x in fields[1:9]]   # user nice system idle iowait irq softirq steal
    return sum(ticks), ticks[3] + ticks[4]


def busy_cores(window_s: float = WINDOW_S) -> float | None:
    """Cores kept busy by other work over the next ``window_s`` seconds (the caller sleeps
    meanwhile), in [0, os.cpu_count()]; None where ``/proc/stat`` is not available (not Linux).
    Raises ValueError for a window that is not positive."""
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0, got {window_s!r}")
    a = _cpu_times()
    if a is None:
        return None
    time.sleep(window_s)
    b = _cpu_times()
    if b is None or b[0] <= a[0]:
        return None
    total, idle = b[0] - a[0], b[1] - a[1]
    cores = os.cpu_count() or 1
    return max(0.0, min(float(cores), cores * (total - idle) / total))


def torch_threads(cap: int = 2) -> tuple[int, str | None]:
    """PyTorch intra-op threads for a run starting now, and why it is one when it was cut.

    ``COAMD_THREADS`` if set (reason None); else all cores up to ``cap``, but 1 when other work
    keeps more than ``cores - 0.5`` cores busy (:func:`busy_cores`; where that cannot be measured:
    when the 1-minute load average is above the core count). Returns ``(threads, reason)``: reason
    is a one-line explanation when the count fell back to 1, else None."""
    if os.environ.get("COAMD_THREADS"):
        return max(1, int(os.environ["COAMD_THREADS"])), None
    cores = os.cpu_count() or 1
    busy = busy_cores()
    if busy is not None and busy > cores - 0.5:
        return 1, f"other work keeps {busy:.1f} of the {cores} cores busy"
    load = os.getloadavg()[0] if busy is None and hasattr(os, "getloadavg") else 0.0
    if load > cores:
        return 1, f"the 1-minute load average {load:.1f} is above the {cores} cores"
    return max(1, min(cap, cores)), None


__all__ = ["busy_cores", "torch_threads", "WINDOW_S"]
