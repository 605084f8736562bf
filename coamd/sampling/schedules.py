"""Masking schedule and token orders of masked autoregressive sampling.

The cosine schedule (as in MaskGIT and the masked autoregressive model the paper builds on): after
iteration k of K, ``floor(U * cos(pi/2 * (k+1)/K))`` of the U unknown tokens stay unknown.
"""
from __future__ import annotations

import math

import numpy as np

ORDERS = ("random", "left_to_right")


def cosine_schedule(n_unknown: int, iterations: int) -> list[int]:
    """How many tokens to fill at each iteration: a list of positive ints summing to
    ``n_unknown``, at most ``iterations`` long (shorter when there are fewer tokens than iterations).

    Raises ValueError when ``iterations`` < 1 or ``n_unknown`` < 0.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if n_unknown < 0:
        raise ValueError(f"n_unknown must be >= 0, got {n_unknown}")
    counts, remaining = [], n_unknown
    for k in range(iterations):
        if remaining == 0:
            break
        target = 0 if k == iterations - 1 else math.floor(n_unknown * math.cos(math.pi / 2 * (k + 1) / iterations))
        target = min(target, remaining - 1)  # fill at least one token per iteration
        counts.append(remaining - target)
        remaining = target
    return counts


def token_order(unknown: np.ndarray, order: str, rng: np.random.Generator) -> np.ndarray:
    """The order in which the unknown token indices (1-D int array) get filled.

    ``random``: a permutation drawn from ``rng`` (the paper); ``left_to_right``: ascending, so
    the beginning of the motion is final first and can be streamed. Raises ValueError otherwise.
    """
    if order == "random":
        return rng.permutation(unknown)
    if order == "left_to_right":
        return np.sort(unknown)
    raise ValueError(f"unknown token order {order!r}; expected one of {ORDERS}")
