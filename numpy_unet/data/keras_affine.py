"""Keras's affine transform of one image, as ``scipy.ndimage.affine_transform(order=1)``
computes it: the matrix Keras builds, and the bilinear read with scipy's fill modes.

The rules (the matrix order, the centre, the axis swap, what each fill mode reads) are
explained with examples in :mod:`numpy_unet.data.image_data_generator`, which uses this.

Bit for bit: every operation in scipy's order
---------------------------------------------
Keras's "exact" transforms are not exact: ``cos(deg2rad(90))`` is ``6.1e-17``, not 0, so a
quarter or half turn reads each output pixel at a whole (or, for a non-square image, a
half) coordinate give or take ``1e-16``. Which side of it the point falls is decided by
the last bit of the sums, so this module does every step in the order of scipy's C code
(``NI_GeometricTransform`` and ``map_coordinate`` in ``scipy/ndimage/src/
ni_interpolation.c``):

1. The input coordinate is ``offset + r * m0 + c * m1``, summed in **that** order (scipy
   starts from the offset: ``tmp = shift[hh]; tmp += coordinates[ll] * matrix[...]``).
   Summed as ``r * m0 + c * m1 + offset``, a 6 x 9 image turned by ``theta=180`` with
   ``fill_mode='constant', cval=-1`` reads output pixels ``(3, 4)`` and ``(3, 5)`` at row
   ``5.0``, the last row (values 47 and 46 of ``arange(1, 55)``), where scipy reads
   ``5.000000000000001``, just outside: ``-1``.
2. ``'reflect'`` and ``'wrap'`` fold the *coordinate* first, and the weights ``1 - f``
   and ``f`` come from the folded coordinate (`reflect_coordinate`, `wrap_coordinate`).
   Folding only the two taps reads the same pixels, but with weights that can differ in
   the last bit: a 4 x 3 float32 image turned by ``theta=90``, ``'reflect'``, reads pixel
   ``(3, 2)`` at column ``-0.4999999999999999``, which scipy folds to
   ``-0.5000000000000001`` (weights ``0.5000000000000001, 0.4999999999999999``, not the
   reverse). The value is the mean of two float32 pixels, exactly halfway between two
   float32 numbers, so that ``1e-16`` decides how it rounds: ``162.2123`` in Keras,
   ``162.21231`` with the taps folded (1 ulp). Folding the taps also adds the four of
   them in another order (a mirrored pair comes reversed), which at a halfway value can
   round the other way as well. With step 1 alone, such 1-ulp differences are left in
   ``'reflect'`` only: 24 pixels in 23 of the test fixture's 3,348 exact cases, each a
   point outside the image at a half-integer coordinate (give or take ``1e-16``), from a
   quarter turn of a non-square image or a turn with a zoom.
3. The four taps are added as scipy adds them, each weighted as ``(x * w_row) * w_col``,
   the column index moving fastest; the weights are scipy's ``1 - f`` and ``1 - (1 - f)``.

With all three, Keras's outputs are matched with no difference at all, in the exact cases
(quarter turns, whole-pixel shifts, zooms by 0.5 and 2, sizes 1 to 9, every fill mode) and
in general ones (the seed's arguments on 256 x 256 images in float64); see
``tests/test_keras_exact_transforms.py``.
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


def reflect_coordinate(coord: np.ndarray, n: int) -> np.ndarray:
    """scipy's ``'reflect'``: the *coordinate* mirrored about the pixel edges (period
    ``2 n``) into ``[-1, n)``: ``-1.3 -> 0.3``, ``n + 0.3 -> n - 1.3``, ``-0.3 -> -0.7``.
    A point in ``[-1, 0)`` or ``(n - 1, n)`` lies between the edge pixel and its mirror
    image and reads the edge pixel alone. Each step as scipy's ``map_coordinate`` takes it
    (the module docstring says why that matters), including its guard that sends
    ``(-1e-15, 0)`` to ``1e-15 - 1`` rather than to ``-1``."""
    if n == 1:
        return np.zeros_like(coord)
    period = 2 * n
    below = np.where(coord < -period, period * np.trunc(-coord / period) + coord, coord)
    below = np.where(below < -n, below + period, np.where(below > -1e-15, 1e-15, -below) - 1)
    above = coord - period * np.trunc(coord / period)
    above = np.where(above >= n, period - above - 1, above)
    return np.where(coord < 0, below, np.where(coord > n - 1, above, coord))


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
    elif fill_mode == "reflect":
        coord = reflect_coordinate(coord, n)
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

    Output pixel ``(r, c)`` reads the input at ``matrix @ (r, c, 1)``, bilinearly, every sum
    taken in scipy's order (see the module docstring). Returns ``(H, W, C)`` float64.
    """
    h, w = x.shape[:2]
    r = np.arange(h, dtype=np.float64)[:, None]
    c = np.arange(w, dtype=np.float64)[None, :]
    rows = matrix[0, 2] + r * matrix[0, 0] + c * matrix[0, 1]  # (H, W), the offset first
    cols = matrix[1, 2] + r * matrix[1, 0] + c * matrix[1, 1]  # (H, W)
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
