"""Resizing a grayscale image: block means to shrink by a whole factor, bilinear otherwise.

:func:`resize` is this package's own: ``load_folder`` and ``numpy-unet predict`` use it. It
shrinks by an exact integer factor ``f`` the simplest way that smooths before it samples, so
that fine detail does not alias: each output pixel is the mean of an ``f`` x ``f`` block of
input pixels. (The seed itself resizes two ways, neither of them this one: its training
images with Pillow's nearest neighbour, its test images with skimage; see below.)

Any other size uses bilinear interpolation with pixel centres at half-integer positions
(``align_corners=False``, as in skimage, OpenCV and PyTorch): output pixel ``i`` of ``n`` is
read at input position ``x = (i + 0.5) * N / n - 0.5`` and interpolated linearly between input
pixels ``floor(x)`` and ``floor(x) + 1``; positions beyond the first or last pixel centre take
that pixel's value.

Both are separable, so the image is resized along the rows, then along the columns, each axis
by whichever of the two methods applies to it.

Two twins of other libraries' resizes reproduce what the seed's Keras pipeline computes:

- :func:`resize_like_pil_nearest` is Pillow's ``Image.resize(..., NEAREST)``, which Keras's
  ``flow_from_directory`` uses when it loads a file (``interpolation="nearest"``);
- :func:`resize_like_skimage` is ``skimage.transform.resize`` with its default arguments,
  which the seed's ``testGenerator`` uses: a Gaussian blur when shrinking, then bilinear.
"""

from __future__ import annotations

import numpy as np

from .resample import reflect_index, resample


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


# -- twins: Pillow's nearest-neighbour resize and skimage's resize -----------------------------


def resize_like_pil_nearest(
    image: np.ndarray, size: int | tuple[int, int], sixteen_bit: bool = False
) -> np.ndarray:
    """Pillow's ``Image.resize((w, h), Image.NEAREST)``, pixel for pixel, in NumPy.

    Output pixel ``i`` of ``n`` copies input pixel ``int(x_i)`` of ``N``, where ``x_i``
    is the centre of output pixel ``i`` in input units, ``(i + 0.5) * N / n``. Pillow
    computes ``x_i`` two ways (``src/libImaging/Geometry.c``), and the float roundings
    differ where ``x_i`` is a whole number (``N = 4``, ``n = 6``, ``i = 4``: ``x = 3``):

    - 8-bit and 32-bit modes (``L``, ``RGB``, ``RGBA``, ``I``, ``F``), in
      ``ImagingScaleAffine``: ``x_0 = step * 0.5``, then ``x_i = x_(i-1) + step`` added one
      pixel after the other, with ``step = N / n`` in double precision;
    - 16-bit modes (``I;16``: a 16-bit grayscale PNG), in ``ImagingGenericTransform``:
      ``x_i = step * (i + 0.5)`` directly.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)``, any dtype; the values are copied, never mixed.
    size : int or (int, int)
        The new size ``(h, w)`` (rows first, as everywhere in this package; Pillow's own
        ``resize`` takes ``(w, h)``), or ``n`` for ``n`` x ``n``.
    sixteen_bit : bool
        Use Pillow's rule for 16-bit images (``I;16``) instead of the 8-bit one.

    Returns
    -------
    numpy.ndarray
        ``(h, w)`` or ``(h, w, C)``, the dtype of ``image``.

    Examples
    --------
    >>> resize_like_pil_nearest(np.arange(4)[None, :], (1, 6))  # x_4: 2.9999999999999996
    array([[0, 1, 1, 2, 2, 3]])
    >>> resize_like_pil_nearest(np.arange(4)[None, :], (1, 6), sixteen_bit=True)  # x_4: 3.0
    array([[0, 1, 1, 2, 3, 3]])
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(
            f"resize_like_pil_nearest: expected a non-empty (H, W) or (H, W, C) image, got "
            f"shape {image.shape}"
        )
    height, width = _parse_size(size, "resize_like_pil_nearest")
    rows = _pil_nearest_indices(image.shape[0], height, sixteen_bit)  # (h,)
    cols = _pil_nearest_indices(image.shape[1], width, sixteen_bit)  # (w,)
    return image[rows][:, cols]  # (h, w) or (h, w, C)


def _pil_nearest_indices(n_in: int, n_out: int, sixteen_bit: bool) -> np.ndarray:
    """The input pixel each of ``n_out`` output pixels copies (see `resize_like_pil_nearest`)."""
    step = n_in / n_out  # Pillow's a[0] = (double)(box[2] - box[0]) / xsize
    if sixteen_bit:  # affine_transform: a[0] * (x + 0.5) + a[1] * (y + 0.5) + a[2]
        centres = step * (np.arange(n_out) + 0.5)
    else:  # ImagingScaleAffine: xo = a[2] + a[0] * 0.5; then xo += a[0] for each pixel
        steps = np.full(n_out, step)
        steps[0] = step * 0.5
        centres = np.add.accumulate(steps)  # a running sum, left to right, as in C
    return centres.astype(np.intp)  # C's (int) cast: truncation, all centres are >= 0


def resize_like_skimage(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """``skimage.transform.resize(image, (h, w))`` with its default arguments, in NumPy.

    What skimage 0.26 computes (``transform/_warps.py``), with ``f = N / n`` per axis:

    1. **Anti-aliasing**, when any axis shrinks (``n < N``): a Gaussian blur along each
       axis with ``sigma = max(0, (f - 1) / 2)`` (axes with ``sigma = 0`` are left alone),
       SciPy's ``gaussian_filter``: weights ``exp(-k^2 / (2 sigma^2))`` for ``|k| <=
       int(4 sigma + 0.5)``, normalised to sum 1, the image mirrored at its border without
       repeating the edge pixel (``mode='mirror'``: ``dcb|abcd|cba``, skimage's 'reflect').
    2. **Bilinear zoom** (``scipy.ndimage.zoom(order=1, grid_mode=True, mode='mirror')``):
       output pixel ``i`` reads the input at ``x = (i + 0.5) * f - 0.5`` (pixel centres
       aligned, ``align_corners=False``), linearly between pixels ``floor(x)`` and
       ``floor(x) + 1``, mirrored as above outside the image.
    3. **Clipping** to the input's ``[min, max]``.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` (each channel resized alike). Floats are used as they
        are; ``uint8`` and ``uint16`` are divided by 255 / 65535 first (skimage's
        ``img_as_float``). Other dtypes are refused.
    size : int or (int, int)
        The new size ``(h, w)``, or ``n`` for ``n`` x ``n``.

    Returns
    -------
    numpy.ndarray
        ``(h, w)`` or ``(h, w, C)``: float32 for a float32 (or float16) image, as skimage
        gives (computed here in float64, so within about 1e-7 of skimage's float32 sums),
        float64 otherwise (equal to skimage's to about 1e-15).

    Examples
    --------
    >>> resize_like_skimage(np.array([[0.0, 1.0]]), (1, 4))  # up: x = -0.25 reads 0.25
    array([[0.25, 0.25, 0.75, 0.75]])
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(
            f"resize_like_skimage: expected a non-empty (H, W) or (H, W, C) image, got "
            f"shape {image.shape}"
        )
    if image.dtype.kind == "f":
        values = image.astype(np.float64)
    elif image.dtype in (np.uint8, np.uint16):
        values = image / np.iinfo(image.dtype).max  # skimage's img_as_float
    else:
        raise ValueError(
            f"resize_like_skimage: expected a float, uint8 or uint16 image, got {image.dtype}"
        )
    out_shape = _parse_size(size, "resize_like_skimage")
    out = values
    shrinking = any(n < n_in for n, n_in in zip(out_shape, image.shape))
    for axis, n in enumerate(out_shape):
        factor = image.shape[axis] / n
        sigma = max(0.0, (factor - 1) / 2)
        if shrinking and sigma > 1e-15:  # SciPy skips axes of sigma <= 1e-15
            out = _gaussian_mirror(out, sigma, axis)
    for axis, n in enumerate(out_shape):
        out = _zoom_linear_mirror(out, n, axis)  # (h, W[, C]), then (h, w[, C])
    out = np.clip(out, values.min(), values.max())
    return out.astype(np.float32) if image.dtype.kind == "f" and image.itemsize < 8 else out


def _gaussian_mirror(a: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """SciPy's ``gaussian_filter1d(a, sigma, axis, mode='mirror')`` (truncate 4)."""
    radius = int(4.0 * sigma + 0.5)
    k = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 / (sigma * sigma) * k**2)
    weights = weights / weights.sum()  # (2 radius + 1,)
    n = a.shape[axis]
    padded = np.take(a, reflect_index(np.arange(-radius, n + radius), n), axis=axis)
    out = np.zeros_like(a)
    for j, w in enumerate(weights):  # out[i] = sum_k w_k a[i + k], a mirrored
        out += w * np.take(padded, np.arange(j, j + n), axis=axis)
    return out


def _zoom_linear_mirror(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """SciPy's ``zoom(order=1, grid_mode=True, mode='mirror')`` along one axis, to ``n``."""
    n_in = a.shape[axis]
    x = (np.arange(n) + 0.5) * (n_in / n) - 0.5  # (n,) where output pixel centres read
    left = np.floor(x)
    t = (x - left).reshape([-1 if d == axis else 1 for d in range(a.ndim)])  # broadcastable
    left = left.astype(np.intp)
    below = np.take(a, reflect_index(left, n_in), axis=axis)
    above = np.take(a, reflect_index(left + 1, n_in), axis=axis)
    return (1 - t) * below + t * above
