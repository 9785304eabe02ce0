"""Keras's weight initializers: ``he_normal`` and ``glorot_uniform``.

Fans are computed from the kernel's shape as Keras does: for a kernel
``(kh, kw, a, b)``, ``fan_in = kh * kw * a`` and ``fan_out = kh * kw * b``.
"""

from __future__ import annotations

import numpy as np

# stddev of a standard normal truncated to [-2, 2]; Keras divides by it so that the
# truncated samples come out with the intended stddev.
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a kernel of shape ``(kh, kw, a, b)``."""
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def he_normal(shape: tuple[int, ...], rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Truncated normal (cut at 2 scale parameters) with stddev ``sqrt(2 / fan_in)``."""
    fan_in, _ = fans(shape)
    scale = np.sqrt(2.0 / fan_in) / _TRUNCATED_NORMAL_STD
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2
    while bad.any():  # redraw the tails: rejection sampling of the truncated normal
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2
    return (scale * z).astype(dtype)


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Uniform on ``[-limit, limit]`` with ``limit = sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


INITIALIZERS = {"he_normal": he_normal, "glorot_uniform": glorot_uniform}


def get_initializer(name: str, where: str):
    """Look up an initializer by its Keras name."""
    if name not in INITIALIZERS:
        raise ValueError(
            f"{where}: kernel_initializer must be one of {sorted(INITIALIZERS)}, got {name!r}"
        )
    return INITIALIZERS[name]
