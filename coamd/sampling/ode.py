"""Fixed-step ODE solvers for the flow-matching sampler (paper appendix A.1, eq. A4-A6).

The learned velocity is ``v = d x_t / d t = eps - z0`` with t = 1 noise and t = 0 data, so a sample
integrates from t = 1 down to t = 0: Euler ``x <- x - v(x, t) / N`` (eq. A6) or Heun's second-order
method. Fixed steps keep the computation graph static for export.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

SOLVERS = ("euler", "heun")


def time_grid(steps: int) -> np.ndarray:
    """t_i = 1 - i/N for i = 0..N, float32 (N+1,)."""
    return (1.0 - np.arange(steps + 1, dtype=np.float64) / steps).astype(np.float32)


def solve(velocity: Callable[[np.ndarray, float], np.ndarray], x: np.ndarray, steps: int,
          solver: str = "euler") -> np.ndarray:
    """Integrate from t = 1 (x = noise, (N, D) float32) to t = 0 with ``steps`` fixed steps.

    ``velocity(x, t)`` returns v (N, D) at scalar time t. Euler uses ``steps`` velocity calls,
    Heun ``2 * steps`` (the last corrector is evaluated at t = 0). Raises ValueError for an unknown
    solver or steps < 1.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r}; expected one of {SOLVERS}")
    if steps < 1:
        raise ValueError(f"ODE steps must be >= 1, got {steps}")
    ts = time_grid(steps)
    x = x.astype(np.float32, copy=True)
    for i in range(steps):
        t, t_next = float(ts[i]), float(ts[i + 1])
        dt = t - t_next
        v = velocity(x, t)
        if solver == "euler":
            x = x - dt * v
        else:
            x_pred = x - dt * v
            v2 = velocity(x_pred, t_next)
            x = x - dt * 0.5 * (v + v2)
    return x.astype(np.float32, copy=False)
