"""Confidence intervals for the benchmarks' proportions (recognised %, accuracy %).

Both in percent / percentage points, 95 %.
"""
from __future__ import annotations

import math


def wilson(k: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of the proportion ``k / n``, percent (``scipy.stats.binomtest``).
    (nan, nan) when ``n`` is 0."""
    from scipy.stats import binomtest

    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return 100 * ci.low, 100 * ci.high


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """95 % interval of ``k1/n1 - k2/n2`` (percentage points) for two independent proportions:
    Newcombe's hybrid score interval (Newcombe 1998, Stat. Med. 17:873-890, method 10), built
    from the two Wilson intervals. (nan, nan) when either ``n`` is 0."""
    if not n1 or not n2:
        return float("nan"), float("nan")
    p1, p2 = 100 * k1 / n1, 100 * k2 / n2
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)
