"""Shared helpers: seeded random arrays and the random configurations the sweeps use."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def random_sizes(rng: np.random.Generator, n: int, low: int = 3, high: int = 8):
    """``n`` (height, width) pairs covering odd and even sizes."""
    sizes = [(5, 6), (6, 5), (4, 4), (7, 7)]
    sizes += [tuple(int(v) for v in rng.integers(low, high + 1, 2)) for _ in range(n)]
    return sizes[: max(n, 4)]


def nudge_biases(model, rng: np.random.Generator, scale: float = 0.1) -> None:
    """Give every bias a small random value.

    With zero biases, a conv whose window sees only zeros (a dead ReLU's output, or
    padding) has a pre-activation of exactly 0: right on the ReLU's kink, where finite
    differences and the analytic gradient legitimately disagree.
    """
    for name, p in model.params.items():
        if name.endswith("/bias"):
            p[...] = scale * rng.standard_normal(p.shape)
