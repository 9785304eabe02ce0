"""Keras's padding rules, in one place: how much 'same' pads, and how big the output is."""

from __future__ import annotations

import numpy as np


def same_padding(size: int, kernel: int, stride: int = 1) -> tuple[int, int]:
    """Zeros added (before, after) along one axis by ``padding='same'``.

    'same' makes the output ``ceil(size / stride)`` long. The total padding needed is
    ``max((out - 1) * stride + kernel - size, 0)``; TensorFlow/Keras put the smaller half
    *before* and the extra pixel *after*. For stride 1 that is ``(k - 1) // 2`` before and
    ``k - 1 - (k - 1) // 2`` after: a 3x3 kernel pads (1, 1), a 2x2 kernel pads (0, 1).
    """
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_output_length(size: int, kernel: int, padding: str, stride: int = 1) -> int:
    """Output length of a convolution or pooling window along one axis."""
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1  # 'valid': only windows that fit


def check_padding(padding: str, where: str) -> str:
    """Return ``padding`` if it is 'same' or 'valid', else raise naming ``where``."""
    if padding not in ("same", "valid"):
        raise ValueError(f"{where}: padding must be 'same' or 'valid', got {padding!r}")
    return padding


def pair(value: int | tuple[int, int], what: str, where: str, minimum: int = 1) -> tuple[int, int]:
    """Keras accepts ``3`` or ``(3, 3)`` for sizes: return a pair of ints >= ``minimum``.

    Whole numbers of any integer or float type are accepted (``np.int64(2)``, ``2.0``);
    anything else, or a value below ``minimum``, is a ValueError naming ``where``.
    """
    values = (value, value) if np.ndim(value) == 0 else tuple(np.ravel(value))
    whole = len(values) == 2 and all(
        isinstance(v, (int, float, np.integer, np.floating))
        and not isinstance(v, bool)
        and float(v).is_integer()
        for v in values
    )
    if not whole:
        raise ValueError(f"{where}: {what} must be an int or a pair of ints, got {value!r}")
    a, b = (int(v) for v in values)
    if a < minimum or b < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{where}: {what} must be {bound}, got {value!r}")
    return a, b


def pad_same(x: np.ndarray, kh: int, kw: int, padding: str) -> np.ndarray:
    """Zero-pad (N, H, W, C) as 'same' does for a kh x kw kernel, stride 1 ('valid': as is)."""
    if padding == "valid":
        return x
    n, h, w, c = x.shape
    (top, bottom), (left, right) = same_padding(h, kh), same_padding(w, kw)
    # the image copied into the middle, then zeros written only on the border: one pass
    # over the output (np.zeros first would write the whole array twice; np.pad is slower)
    hp, wp = h + top + bottom, w + left + right
    xp = np.empty((n, hp, wp, c), x.dtype)
    xp[:, top : top + h, left : left + w, :] = x
    xp[:, :top], xp[:, top + h :] = 0, 0  # rows above and below
    xp[:, :, :left], xp[:, :, left + w :] = 0, 0  # columns left and right
    return xp


def unpad_same(dxp: np.ndarray, x_shape: tuple, kh: int, kw: int, padding: str) -> np.ndarray:
    """Cut the padding of :func:`pad_same` off a gradient of the padded input."""
    if padding == "valid":
        return dxp
    _, h, w, _ = x_shape
    top, left = same_padding(h, kh)[0], same_padding(w, kw)[0]
    return dxp[:, top : top + h, left : left + w, :]
