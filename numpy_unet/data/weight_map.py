"""The U-Net paper's pixel weight map: balance the classes, stress the thin gaps between cells.

Ronneberger et al. (2015) weight the cross-entropy of every pixel ``x`` with

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))``

- ``w_c`` balances the class frequencies: membranes are rarer than cell interiors, so without
  it the network could score well by painting everything "cell";
- the second term, the *separation* term, is large on background pixels that lie in a narrow
  gap between two cells: ``d1`` and ``d2`` are the distances to the nearest and the
  second-nearest cell, so ``d1 + d2`` is about the width of the gap there. A thin membrane
  between two touching cells is the pixel that decides whether they come out as one object
  or two, and the paper (w0 = 10, sigma = 5 pixels) makes the network pay for it.

Here a *cell* is a 4-connected component of the mask's 1-pixels
(:func:`numpy_unet.metrics.connected_components`), distances are Euclidean between pixel
centres, and the separation term is added on background (0) pixels only.

How `weight_map` computes ``d1`` and ``d2`` fast
------------------------------------------------
The direct way (`weight_map_bruteforce`) measures, for every pixel and every cell, the
distance to every pixel of that cell. That is exact but grows like (image pixels) x (cell
pixels). Two observations make it cheap:

1. **Far cells do not matter.** If the second-nearest cell is farther than ``R`` pixels, then
   ``d1 + d2 > R`` and the separation term is below ``w0 * exp(-R**2 / (2 sigma**2))``. With
   ``R`` chosen so that this is under ``TOLERANCE`` (1e-6), each cell only needs its
   distances inside a *window*: its bounding box grown by ``R`` pixels on every side.
2. **A distance transform splits into columns, then rows.** Inside the window, the squared
   distance to the cell is ``min over cell pixels (r', c') of (r - r')**2 + (c - c')**2``.
   First, per column, find the vertical distance ``g`` to the nearest cell pixel in that
   same column (two running max/min scans). Then combine along the rows:
   ``D(r, c) = min over columns c' of g(r, c')**2 + (c - c')**2``. This is exact: the
   nearest pixel of the cell lies in *some* column ``c'``, and in that column it is the
   one nearest in the vertical direction.

Each cell's distances are folded into two running arrays, the smallest and the second
smallest squared distance seen so far at every pixel, with ``np.minimum`` and
``np.maximum`` (a cell that comes closer than the current nearest pushes that one down to
second place).
"""

from __future__ import annotations

import numpy as np

from ..metrics import connected_components

__all__ = ["TOLERANCE", "truncation_radius", "weight_map", "weight_map_bruteforce"]

TOLERANCE = 1e-6  # the largest separation term `weight_map` may leave out
_CHUNK = 2**21  # elements per broadcast block in the row pass (16 MB of float64)


# -- checks and the class-balancing term ---------------------------------------------------------
def _check(where: str, mask: object, w0: object, sigma: object, class_weights: object):
    """Validate the arguments; return ``(cells, w0, sigma, class_weights)``.

    ``cells`` is the mask as a boolean ``(H, W)`` array (True = cell).
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]  # (H, W, 1) -> (H, W)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(
            f"{where}: mask must be a non-empty (H, W) or (H, W, 1) array, got shape {mask.shape}"
        )
    if mask.dtype != bool:
        if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
            raise ValueError(f"{where}: mask must be bool, int or float, got dtype {mask.dtype}")
        bad = ~np.isin(mask, (0, 1))
        if bad.any():
            raise ValueError(
                f"{where}: mask must hold only 0 (membrane/background) and 1 (cell), got also "
                f"{np.unique(mask[bad])[:5].tolist()}; threshold it first (e.g. mask >= 0.5), "
                "or divide a 0/255 mask by 255"
            )
    numbers = {}
    for name, value in (("w0", w0), ("sigma", sigma)):
        try:
            numbers[name] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {name} must be a number, got {value!r}") from None
    w0, sigma = numbers["w0"], numbers["sigma"]
    if not (np.isfinite(w0) and w0 >= 0):
        raise ValueError(f"{where}: w0 must be a finite number >= 0, got {w0!r}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"{where}: sigma must be a finite number > 0 (pixels), got {sigma!r}")
    if class_weights is not None:
        try:
            pair = tuple(float(v) for v in class_weights)
        except (TypeError, ValueError):
            pair = ()
        if len(pair) != 2 or not all(np.isfinite(v) and v > 0 for v in pair):
            raise ValueError(
                f"{where}: class_weights must be two positive finite numbers "
                f"(w_background, w_cell), got {class_weights!r}"
            )
        class_weights = pair
    return mask == 1, w0, sigma, class_weights


def _class_weight_map(cells: np.ndarray, class_weights: tuple[float, float] | None) -> np.ndarray:
    """``w_c``: the weight of each pixel's class, as an ``(H, W)`` float64 array.

    By default each class present gets ``0.5 / (its fraction of the pixels)``: both classes
    then carry half of the total weight, and the mean over the image is 1.
    """
    if class_weights is None:
        n_cell = np.count_nonzero(cells)
        n_background = cells.size - n_cell
        if n_cell == 0 or n_background == 0:  # one class only: nothing to balance
            class_weights = (1.0, 1.0)
        else:
            class_weights = (0.5 * cells.size / n_background, 0.5 * cells.size / n_cell)
    w_background, w_cell = class_weights
    return np.where(cells, w_cell, w_background)  # (H, W)


def _separation(d1: np.ndarray, d2: np.ndarray, cells: np.ndarray, w0: float, sigma: float):
    """``w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` on background pixels, 0 on cells."""
    term = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    return np.where(cells, 0.0, term)


# -- the reference: every pixel against every cell pixel ----------------------------------------
def weight_map_bruteforce(
    mask: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: tuple[float, float] | None = None,
) -> np.ndarray:
    """The paper's weight map computed directly, for small masks: the reference for tests.

    For every cell, the distance from every pixel to every pixel of that cell is computed
    and the smallest kept, giving a ``(cells, H, W)`` stack; sorting it along the cells gives
    ``d1`` and ``d2`` at every pixel. Memory grows like ``H * W * (pixels of a cell)``, so
    keep this to masks of a few thousand pixels. Same arguments and result as `weight_map`,
    without its truncation.
    """
    cells, w0, sigma, class_weights = _check(
        "weight_map_bruteforce", mask, w0, sigma, class_weights
    )
    labels, count = connected_components(cells)
    pixels = np.argwhere(np.ones(cells.shape, dtype=bool))  # (H*W, 2) every (row, col)
    distances = np.full((max(count, 2), cells.size), np.inf)  # (cells, H*W), inf: no cell
    for k in range(1, count + 1):
        members = np.argwhere(labels == k)  # (n_k, 2) the pixels of cell k
        offsets = pixels[:, None, :] - members[None, :, :]  # (H*W, n_k, 2)
        distances[k - 1] = np.sqrt((offsets**2).sum(axis=-1)).min(axis=1)
    distances.sort(axis=0)
    d1, d2 = distances[0].reshape(cells.shape), distances[1].reshape(cells.shape)
    weights = _class_weight_map(cells, class_weights) + _separation(d1, d2, cells, w0, sigma)
    return weights.astype(np.float32)


# -- the fast version -----------------------------------------------------------------------------
def truncation_radius(w0: float, sigma: float, tolerance: float = TOLERANCE) -> int:
    """The smallest whole ``R`` with ``w0 * exp(-R**2 / (2 sigma**2)) <= tolerance``.

    That is ``R = ceil(sigma * sqrt(2 ln(w0 / tolerance)))``, or 0 when ``w0 <= tolerance``.
    The paper's ``w0 = 10``, ``sigma = 5`` give ``R = 29``.
    """
    if w0 <= tolerance:
        return 0
    return int(np.ceil(sigma * np.sqrt(2 * np.log(w0 / tolerance))))


def _window_distance2(inside: np.ndarray, first_col: int, last_col: int) -> np.ndarray:
    """Exact squared distance from every pixel of a window to its ``inside`` pixels.

    ``inside`` is a boolean ``(h, w)`` window; only columns ``first_col..last_col`` hold
    inside pixels. Columns first, then rows (see the module docstring).
    """
    h, w = inside.shape
    r = np.arange(h, dtype=np.float64)[:, None]  # (h, 1)
    # Column pass: the nearest inside row at or above, and at or below, each pixel.
    above = np.maximum.accumulate(np.where(inside, r, -np.inf), axis=0)  # (h, w)
    below = np.minimum.accumulate(np.where(inside, r, np.inf)[::-1], axis=0)[::-1]  # (h, w)
    g2 = np.minimum(r - above, below - r)[:, first_col : last_col + 1] ** 2  # (h, w')
    # Row pass: D(r, c) = min over columns c' of g(r, c')**2 + (c - c')**2.
    c = np.arange(w)[:, None] - np.arange(first_col, last_col + 1)[None, :]  # (w, w')
    dc2 = (c**2).astype(np.float64)
    out = np.empty((h, w))
    step = max(1, _CHUNK // dc2.size)
    for start in range(0, h, step):  # blocks of rows, to bound the memory
        block = g2[start : start + step, None, :] + dc2[None]  # (rows, w, w')
        out[start : start + step] = block.min(axis=-1)
    return out


def weight_map(
    mask: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: tuple[float, float] | None = None,
) -> np.ndarray:
    """Per-pixel loss weights of the U-Net paper: class balance plus cell separation.

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2))``, the second term on
    background pixels only (see the module docstring for the meaning and the algorithm).

    Parameters
    ----------
    mask : numpy.ndarray
        ``(H, W)`` or ``(H, W, 1)`` binary mask: 1 = cell, 0 = membrane/background. Bool,
        integers or floats that are exactly 0 or 1.
    w0 : float
        Height of the separation term, ``>= 0`` (the paper: 10). 0 turns it off.
    sigma : float
        Width of the separation term in pixels, ``> 0`` (the paper: about 5).
    class_weights : (float, float) or None
        ``(w_background, w_cell)``, two positive numbers. ``None``: each class present gets
        ``0.5 / (fraction of pixels in that class)``, so that each carries half of the total
        weight and ``w_c`` averages to 1 over the image; a mask with a single class gets 1.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 weights.

    Raises
    ------
    ValueError
        If the mask is not ``(H, W)`` or ``(H, W, 1)``, or holds values other than 0 and 1;
        if ``w0 < 0``, ``sigma <= 0``, or ``class_weights`` is not two positive numbers.

    Notes
    -----
    Cells are the 4-connected components of the 1-pixels; with fewer than two cells there is
    no second-nearest cell (``d2 = inf``) and no separation term. The distances of a cell are
    only computed within ``R = truncation_radius(w0, sigma)`` pixels of its bounding box
    (``R = 29`` for the defaults), so the result differs from the exact formula
    (`weight_map_bruteforce`) by at most ``TOLERANCE = 1e-6`` at any pixel.

    Examples
    --------
    >>> mask = np.ones((5, 7), dtype=int)
    >>> mask[:, 3] = 0  # two cells, one membrane column between them
    >>> w = weight_map(mask)
    >>> w.dtype, w.shape, round(float(w[0, 3]), 2), round(float(w[0, 0]), 3)
    (dtype('float32'), (5, 7), 12.73, 0.583)
    """
    cells, w0, sigma, class_weights = _check("weight_map", mask, w0, sigma, class_weights)
    height, width = cells.shape
    labels, count = connected_components(cells)
    d1 = np.full(cells.shape, np.inf)  # squared distance to the nearest cell so far
    d2 = np.full(cells.shape, np.inf)  # ... and to the second nearest
    R = truncation_radius(w0, sigma)
    if count >= 2 and R > 0:
        # Why the windows are enough: a pixel outside cell k's window is more than R pixels
        # from every pixel of k in one coordinate, so its distance to k is > R, and only
        # cells whose windows hold it enter its d1, d2. If its true d2 <= R, both nearest
        # cells hold it in their windows and d1, d2 come out exact. Otherwise the true
        # d1 + d2 >= d2 > R, and the computed d2 (second smallest over fewer cells) is no
        # smaller, so both the true and the computed term lie in [0, w0 exp(-R**2 / (2
        # sigma**2))] = [0, TOLERANCE]: they differ by at most TOLERANCE.
        rows, cols = np.nonzero(labels)
        k = labels[rows, cols] - 1  # cell index of every cell pixel
        top, bottom = np.full(count, height), np.full(count, -1)
        left, right = np.full(count, width), np.full(count, -1)
        np.minimum.at(top, k, rows)  # the bounding boxes, all cells at once
        np.maximum.at(bottom, k, rows)
        np.minimum.at(left, k, cols)
        np.maximum.at(right, k, cols)
        for i in range(count):
            r0, r1 = max(top[i] - R, 0), min(bottom[i] + R + 1, height)  # the window
            c0, c1 = max(left[i] - R, 0), min(right[i] + R + 1, width)
            inside = labels[r0:r1, c0:c1] == i + 1  # (h, w)
            dist2 = _window_distance2(inside, left[i] - c0, right[i] - c0)  # (h, w)
            near, second = d1[r0:r1, c0:c1], d2[r0:r1, c0:c1]  # views, updated in place
            np.minimum(second, np.maximum(near, dist2), out=second)
            np.minimum(near, dist2, out=near)
    d1, d2 = np.sqrt(d1), np.sqrt(d2)
    weights = _class_weight_map(cells, class_weights) + _separation(d1, d2, cells, w0, sigma)
    return weights.astype(np.float32)
