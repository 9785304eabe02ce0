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
