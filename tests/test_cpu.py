"""coamd.cpu: the busy-core measure that picks PyTorch's thread count, on real busy processes."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from coamd.cpu import busy_cores, torch_threads

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc/stat")


def _spin(n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(0.3)  # let them start spinning
    return procs


def test_busy_cores_sees_other_processes_and_forgets_them_at_once(monkeypatch):
    """Processes spinning on every core read as busy and cut the threads to one; right after they
    stop, the machine reads as idle again (the 1-minute load average would still say busy for a
    minute or two, and made steps of `make ablation` fall back to one thread)."""
    monkeypatch.delenv("COAMD_THREADS", raising=False)
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("needs at least 2 cores to tell one busy core from all of them")
    procs = _spin(cores)
    try:
        busy = busy_cores()
        threads, why = torch_threads(cap=2)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert busy is not None and busy > cores - 0.5
    assert threads == 1 and "other work keeps" in why
    time.sleep(0.1)
    idle = busy_cores()
    assert idle is not None and idle < cores - 0.5
    assert torch_threads(cap=2) == (min(2, cores), None)


def test_busy_cores_rejects_a_bad_window():
    with pytest.raises(ValueError, match="window_s must be > 0"):
        busy_cores(0)


def test_a_thread_chooser_runs_only_when_the_models_load():
    """`coamd generate` hands the engine a function, not a count: the 0.2 s busy measure is taken
    when torch loads the models, never on the torch-free ONNX path."""
    import torch

    from coamd.runtime.engine import BundleRef

    calls = []
    before = torch.get_num_threads()
    ref = BundleRef(None, torch_threads=lambda: calls.append(1) or 1)
    assert calls == [] and not ref.loaded
    try:
        ref.get()
        ref.get()
        assert calls == [1] and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
