"""Hardware reference numbers measured in the same run as a benchmark: fp32 matmul peak.

``matmul_peak()`` times ``torch.mm`` on square fp32 matrices (and a thin 10 x 512 case, the shape
of one autoregressive step) with the threads torch uses, and returns GFLOP/s (2 n^3 FLOPs per
square product). DESIGN.md section 5 lists what this machine reached before (about 105-117
GFLOP/s on 1024-2048 squares, about 42 GFLOP/s for 10 x 512).
"""
from __future__ import annotations

import os
import platform
import time


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; elsewhere the platform module's, or
    ``"unknown"``). Imports no torch."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict:
    """CPU model, usable cores, torch threads and onnxruntime version of this machine."""
    import torch

    model = cpu_model()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    try:
        import onnxruntime as ort

        ort_v = ort.__version__
        providers = ort.get_available_providers()
    except ImportError:  # pragma: no cover
        ort_v, providers = None, []
    return {"cpu": model, "cores": cores, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "onnxruntime": ort_v, "ort_available_providers": providers,
            "gpu": torch.cuda.is_available(), "python": platform.python_version()}


def _time_mm(a, b, seconds: float) -> float:
    import torch

    torch.mm(a, b)
    n, t0 = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return dt / n


def matmul_peak(sizes=(1024, 2048), seconds: float = 0.5) -> dict:
    """fp32 matmul throughput in GFLOP/s: ``{"square": {n: gflops}, "peak_gflops": best square,
    "thin_10x512": gflops of (10,512)x(512,512)}``."""
    import torch

    out: dict = {"square": {}}
    with torch.no_grad():
        for n in sizes:
            a, b = torch.randn(n, n), torch.randn(n, n)
            out["square"][str(n)] = round(2 * n ** 3 / _time_mm(a, b, seconds) / 1e9, 1)
        a, b = torch.randn(10, 512), torch.randn(512, 512)
        out["thin_10x512"] = round(2 * 10 * 512 * 512 / _time_mm(a, b, seconds / 2) / 1e9, 1)
    out["peak_gflops"] = max(out["square"].values())
    return out


if __name__ == "__main__":
    import json

    print(json.dumps({"machine": machine(), "matmul": matmul_peak()}, indent=1))
