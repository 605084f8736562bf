"""Confidence intervals the benchmarks report (benchmarks/stats.py), against published values."""
from __future__ import annotations

import math

import pytest

from benchmarks.stats import newcombe, wilson


def test_wilson_matches_the_published_example():
    # Newcombe (1998), Stat. Med. 17:857, Table I: 81/263 -> Wilson score interval 0.2553-0.3662
    lo, hi = wilson(81, 263)
    assert lo == pytest.approx(25.53, abs=0.01) and hi == pytest.approx(36.62, abs=0.01)
    lo, hi = wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-9) and 0 < hi < 35
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_newcombe_difference_matches_the_published_example():
    # Newcombe (1998), Stat. Med. 17:873, Table II, example (a): 56/70 - 48/80, method 10
    lo, hi = newcombe(56, 70, 48, 80)
    assert lo == pytest.approx(5.24, abs=0.01) and hi == pytest.approx(33.39, abs=0.01)
    # swapping the samples mirrors the interval
    lo2, hi2 = newcombe(48, 80, 56, 70)
    assert lo2 == pytest.approx(-hi) and hi2 == pytest.approx(-lo)
    assert all(math.isnan(x) for x in newcombe(1, 0, 1, 2))
