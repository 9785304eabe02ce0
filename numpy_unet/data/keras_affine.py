"""Keras's affine transform of one image, as ``scipy.ndimage.affine_transform(order=1)``
computes it: the matrix Keras builds, and the bilinear read with scipy's fill modes.

The rules (the matrix order, the centre, the axis swap, what each fill mode reads) are
explained with examples in :mod:`numpy_unet.data.image_data_generator`, which uses this.
"""

from __future__ import annotations

import numpy as np

from .resample import clamp_index, reflect_index

# -- the transform matrix ---------------------------------------------------------------------


def transform_matrix(
    theta: float, tx: float, ty: float, shear: float, zx: float, zy: float, h: int, w: int
) -> np.ndarray | None:
    """Keras's 3 x 3 inverse map in ``(row, col)``: output pixel ``(r, c, 1)`` reads the input
    at ``M @ (r, c, 1)``. ``None`` when there is nothing to do (Keras then skips scipy).

    Built as Keras builds it, with the same products in the same order (see the module
    docstring): rotation @ shift @ shear @ zoom, about ``(h/2 - 0.5, w/2 - 0.5)`` in Keras's
    ``(x, y)``, then the axes swapped into ``(row, col)``.
    """
    parts = []
    if theta != 0:
        a = np.deg2rad(theta)
        parts.append([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    if tx != 0 or ty != 0:
        parts.append([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    if shear != 0:
        s = np.deg2rad(shear)
        parts.append([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    if zx != 1 or zy != 1:
        parts.append([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    if not parts:
        return None
    m = np.array(parts[0], dtype=np.float64)
    for part in parts[1:]:
        m = m @ np.array(part, dtype=np.float64)
    o_x, o_y = h / 2 - 0.5, w / 2 - 0.5
    to_centre = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    from_centre = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    m = to_centre @ m @ from_centre  # still in Keras's (x, y) = (col, row)
    return m[[1, 0, 2]][:, [1, 0, 2]]  # P M P: into (row, col)


# -- reading the input between its pixels, scipy's way ----------------------------------------


def half_sample_index(index: np.ndarray, n: int) -> np.ndarray:
    """Fold indices by mirroring about the pixel edges: ``-1 -> 0``, ``n -> n - 1``."""
    index = index % (2 * n)
    return np.where(index >= n, 2 * n - 1 - index, index)


def wrap_coordinate(coord: np.ndarray, n: int) -> np.ndarray:
    """scipy's ``'wrap'``: coordinates wrapped with period ``n - 1`` into ``[0, n - 1]``."""
    if n == 1:
        return np.zeros_like(coord)
    period = n - 1
    below = coord + period * (np.trunc(-coord / period) + 1)  # lands in (0, n - 1]
    above = coord - period * np.trunc(coord / period)  # lands in [0, n - 1)
    return np.where(coord < 0, below, np.where(coord > period, above, coord))


TAP_FOLDS = {  # where the 2 taps read, once the coordinate is mapped (scipy's rules)
    "nearest": clamp_index,
    "reflect": half_sample_index,
    "constant": reflect_index,  # only the zero-weight tap at n can fall outside
    "wrap": reflect_index,
}


def axis_taps(coord: np.ndarray, n: int, fill_mode: str) -> tuple[np.ndarray, ...]:
    """Along one axis: the two input indices each coordinate reads, their weights, and
    whether the point is outside (``'constant'`` only: it then reads ``cval``)."""
    outside = np.zeros(coord.shape, bool)
    if fill_mode == "wrap":
        coord = wrap_coordinate(coord, n)
    elif fill_mode == "constant":
        outside = (coord < 0) | (coord > n - 1)
        coord = np.where(outside, 0.0, coord)
    start = np.floor(coord)
    weight0 = 1.0 - (coord - start)
    weight1 = 1.0 - weight0  # scipy's rule: the weights sum to exactly 1
    start = start.astype(np.intp)
    fold = TAP_FOLDS[fill_mode]
    return fold(start, n), fold(start + 1, n), weight0, weight1, outside


def affine_read(x: np.ndarray, matrix: np.ndarray, fill_mode: str, cval: float) -> np.ndarray:
    """``scipy.ndimage.affine_transform(order=1)`` of each channel of an ``(H, W, C)`` array.

    Output pixel ``(r, c)`` reads the input at ``matrix @ (r, c, 1)``, bilinearly, the sums
    taken in scipy's order. Returns ``(H, W, C)`` float64.
    """
    h, w = x.shape[:2]
    r = np.arange(h, dtype=np.float64)[:, None]
    c = np.arange(w, dtype=np.float64)[None, :]
    rows = r * matrix[0, 0] + c * matrix[0, 1] + matrix[0, 2]  # (H, W)
    cols = r * matrix[1, 0] + c * matrix[1, 1] + matrix[1, 2]  # (H, W)
    r0, r1, wr0, wr1, out_r = axis_taps(rows, h, fill_mode)
    c0, c1, wc0, wc1, out_c = axis_taps(cols, w, fill_mode)
    x = x.astype(np.float64)
    wr0, wr1, wc0, wc1 = (v[..., None] for v in (wr0, wr1, wc0, wc1))  # (H, W, 1)
    out = x[r0, c0] * wr0 * wc0 + x[r0, c1] * wr0 * wc1 + x[r1, c0] * wr1 * wc0
    out = out + x[r1, c1] * wr1 * wc1  # (H, W, C)
    out[out_r | out_c] = cval
    return out


def cast_like_scipy(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Store float64 results in ``dtype`` as scipy does: integers rounded half away from 0
    and clipped to the type's range, bools ``!= 0``, floats rounded to nearest."""
    if dtype == np.bool_:
        return values != 0
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        rounded = np.where(values > 0, values + 0.5, values - 0.5)
        return np.clip(rounded, info.min, info.max).astype(dtype)  # astype truncates
    return values.astype(dtype)
