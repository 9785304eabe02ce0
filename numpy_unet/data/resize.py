"""Resizing a grayscale image: block means to shrink by a whole factor, bilinear otherwise.

The seed shrinks the 512x512 ISBI images to 256x256 with ``skimage.transform.resize``, which
smooths before it samples so that fine detail does not alias. Shrinking by an exact integer
factor ``f`` is done here the simplest way that has the same effect: each output pixel is the
mean of an ``f`` x ``f`` block of input pixels.

Any other size uses bilinear interpolation with pixel centres at half-integer positions
(``align_corners=False``, as in skimage, OpenCV and PyTorch): output pixel ``i`` of ``n`` is
read at input position ``x = (i + 0.5) * N / n - 0.5`` and interpolated linearly between input
pixels ``floor(x)`` and ``floor(x) + 1``; positions beyond the first or last pixel centre take
that pixel's value.

Both are separable, so the image is resized along the rows, then along the columns, each axis
by whichever of the two methods applies to it.
"""

from __future__ import annotations

import numpy as np

from .resample import resample


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a 2-D image.

    Parameters
    ----------
    image : np.ndarray
        The image, shape ``(H, W)``, any real dtype.
    size : int or (int, int)
        The new size: ``n`` for ``n`` x ``n``, or ``(h, w)``.

    Returns
    -------
    np.ndarray
        The resized image, shape ``(h, w)``, float32. Along an axis whose length shrinks by an
        exact integer factor (or stays the same), each value is the mean of a block of input
        values; along any other axis, values are interpolated bilinearly. Either way, every
        output value is a weighted mean of input values, so an image in [0, 1] stays in [0, 1].

    Examples
    --------
    >>> resize(np.arange(16.0).reshape(4, 4), 2)  # 2x2 block means
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    >>> resize(np.array([[0.0, 1.0]]), (1, 4))  # bilinear
    array([[0.  , 0.25, 0.75, 1.  ]], dtype=float32)
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(
            f"resize: expected a non-empty 2-D image (H, W), got shape {image.shape}. "
            "For a stack of images, resize each one: [resize(x, size) for x in images]"
        )
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise ValueError(f"resize: expected a numeric image, got dtype {image.dtype}")
    height, width = _parse_size(size, "resize")
    out = _resize_axis(image.astype(np.float64), height, axis=0)
    out = _resize_axis(out, width, axis=1)
    return out.astype(np.float32)


def _resize_axis(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Resize ``a`` to length ``n`` along ``axis`` (0 or 1 of a 2-D array)."""
    length = a.shape[axis]
    if length == n:
        return a
    if length % n == 0:  # shrink by the whole factor f: mean of each block of f values
        f = length // n
        blocks = a.reshape((n, f, -1) if axis == 0 else (-1, n, f))
        return blocks.mean(axis=axis + 1)
    # bilinear: the position in the input of each output pixel centre, clamped to the image;
    # the other axis is read at whole positions, where bilinear weights are exactly 1 and 0
    x = np.clip((np.arange(n) + 0.5) * (length / n) - 0.5, 0, length - 1)
    other = np.arange(a.shape[1 - axis])
    rows, cols = (x[:, None], other[None, :]) if axis == 0 else (other[:, None], x[None, :])
    return resample(a[..., None], rows, cols, order=1)[..., 0]


def _parse_size(size: object, where: str) -> tuple[int, int]:
    """Return ``size`` (``n`` or ``(h, w)``) as ``(h, w)``, refusing anything else."""
    pair = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    if len(pair) == 2 and all(_is_positive_int(v) for v in pair):
        return int(pair[0]), int(pair[1])
    raise ValueError(
        f"{where}: size must be a positive int n (for n x n) or a pair (height, width) of "
        f"positive ints, got {size!r}"
    )


def _is_positive_int(value: object) -> bool:
    """True for 1, 2, ... (Python or NumPy integers), False for bools, floats and the rest."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
