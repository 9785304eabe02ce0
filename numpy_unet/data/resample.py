"""Reading an image between its pixels: the package's one resampler and one mirror rule.

:func:`resample` reads an ``(H, W, C)`` image at any points ``(rows, cols)``, the image's
pixel centres sitting at whole numbers. Three orders of interpolation:

- 0: the nearest pixel (values are copied: a binary mask stays binary);
- 1: bilinear, the 2x2 surrounding pixels weighted by closeness;
- 3: cubic convolution (Keys, a = -0.5), the 4x4 surrounding pixels: smoother, what the
  paper's "bicubic interpolation" means.

Points outside the image read, by ``edge``, the nearest edge pixel (``'nearest'``, as Keras's
``fill_mode='nearest'``) or the image mirrored at its border without repeating the edge
pixel (``'reflect'``, :func:`reflect_index`, NumPy's ``np.pad(mode='reflect')``).

The augmentations (``augment.py``, ``elastic.py``), the resizing (``resize.py``) and the
overlap-tile prediction (``train/tiling.py``) all read images through these two functions.
"""

from __future__ import annotations

import numpy as np


def reflect_index(index: np.ndarray, n: int) -> np.ndarray:
    """Fold indices into ``[0, n)`` by mirror reflection about the edge pixels.

    ``-1 -> 1``, ``-2 -> 2``, ``n -> n - 2``: the same as ``np.pad(mode="reflect")``, repeated
    as often as needed, so a kernel or a context may be wider than the image.
    """
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


def clamp_index(index: np.ndarray, n: int) -> np.ndarray:
    """Indices outside ``[0, n)`` moved to the nearest edge pixel."""
    return np.clip(index, 0, n - 1)


EDGES = {"nearest": clamp_index, "reflect": reflect_index}


def keys_weights(f: np.ndarray) -> list[np.ndarray]:
    """Cubic-convolution weights of the taps at ``floor(x) - 1 .. floor(x) + 2``.

    Keys' kernel with ``a = -0.5``: ``k(t) = 1.5|t|^3 - 2.5|t|^2 + 1`` for ``|t| <= 1``,
    ``-0.5|t|^3 + 2.5|t|^2 - 4|t| + 2`` for ``1 < |t| < 2``, evaluated at the tap distances
    ``1 + f, f, 1 - f, 2 - f`` with ``f = x - floor(x)``. They sum to 1; at ``f = 0`` they are
    exactly 0, 1, 0, 0.
    """
    f2, f3 = f**2, f**3
    return [
        -0.5 * f3 + f2 - 0.5 * f,  # k(1 + f)
        1.5 * f3 - 2.5 * f2 + 1,  # k(f)
        -1.5 * f3 + 2 * f2 + 0.5 * f,  # k(1 - f)
        0.5 * f3 - 0.5 * f2,  # k(2 - f)
    ]


def resample(
    x: np.ndarray, rows: np.ndarray, cols: np.ndarray, order: int, edge: str = "nearest"
) -> np.ndarray:
    """Read ``x`` at the points ``(rows, cols)``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(H, W, C)`` image.
    rows, cols : numpy.ndarray
        Coordinates in ``x`` of the points to read, of one shape ``(H', W')`` (or any
        shapes that broadcast together).
    order : {0, 1, 3}
        Nearest pixel, bilinear, or cubic convolution (see the module docstring).
    edge : {'nearest', 'reflect'}
        What points outside the image read.

    Returns
    -------
    numpy.ndarray
        ``(H', W', C)``: ``x``'s own values and dtype for order 0, float64 otherwise.
    """
    if edge not in EDGES:
        raise ValueError(f"resample: edge must be 'nearest' or 'reflect', got {edge!r}")
    fold = EDGES[edge]
    h, w = x.shape[:2]
    rows, cols = np.broadcast_arrays(np.asarray(rows, float), np.asarray(cols, float))
    if order == 0:
        return x[
            fold(np.floor(rows + 0.5).astype(int), h), fold(np.floor(cols + 0.5).astype(int), w)
        ]
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = rows - r0, cols - c0  # where the point sits between its taps, in [0, 1)
    if order == 1:
        taps, wr, wc = (0, 1), [1 - fr, fr], [1 - fc, fc]
    elif order == 3:
        taps, wr, wc = (-1, 0, 1, 2), keys_weights(fr), keys_weights(fc)
    else:
        raise ValueError(f"resample: order must be 0, 1 or 3, got {order!r}")
    r0, c0 = r0.astype(int), c0.astype(int)
    out = np.zeros(rows.shape + x.shape[2:])
    for i, di in enumerate(taps):
        ri = fold(r0 + di, h)
        for j, dj in enumerate(taps):
            out += (wr[i] * wc[j])[..., None] * x[ri, fold(c0 + dj, w)]
    return out
