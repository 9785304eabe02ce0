"""Keras's ``ImageDataGenerator`` augmentation, exactly, in NumPy.

The seed trained its UNet with::

    ImageDataGenerator(rotation_range=0.2, width_shift_range=0.05, height_shift_range=0.05,
                       shear_range=0.05, zoom_range=0.05, horizontal_flip=True,
                       fill_mode="nearest")

drawing one random transform per image, applying the same one to the mask, then
thresholding the mask at 0.5 (its ``adjustData``). `ImageDataGenerator` here computes what
Keras 3's (legacy, Keras 2 style) ``get_random_transform`` and ``apply_transform`` compute,
which call ``scipy.ndimage.affine_transform(order=1)``: same draws for the same ``seed``,
same pixels to float32 rounding. It is tested against Keras's own outputs.

The arguments (Keras's names and units)
---------------------------------------
- ``rotation_range``: degrees; ``theta`` uniform in ``[-r, r]``. The seed's 0.2 is 0.2
  **degrees** (Keras 2.2+ and 3 take degrees), a corner of a 256 x 256 image moves 0.6 px.
- ``height_shift_range`` -> ``tx``, ``width_shift_range`` -> ``ty``, in pixels. A float
  below 1 is a fraction of the size: uniform in ``[-r, r] * size`` (``tx`` uses the height,
  ``ty`` the width). A float >= 1 is pixels: uniform in ``[-r, r]``. An int ``n`` is a
  whole number of pixels: ``choice(n) * choice([-1, 1])``, so in ``-(n-1) .. n-1``. A
  list or tuple: one of its values times ``choice([-1, 1])`` (a fraction if all are < 1).
- ``shear_range``: degrees; ``shear`` uniform in ``[-s, s]`` (the seed's 0.05 is 0.05
  degrees: the far edge of a 256 x 256 image moves by 0.1 px).
- ``zoom_range``: ``z`` means factors in ``[1 - z, 1 + z]``, ``[lo, hi]`` means those;
  ``zx`` and ``zy`` drawn independently. A factor above 1 shows more input: zooms **out**.
  As in Keras, any finite ``z`` (``1.5`` gives ``[-0.5, 2.5]``: negative factors mirror)
  and any pair, larger first or from 0, are taken as given; so are negative rotation and
  shear ranges (``[-r, r]`` drawn as ``uniform(-r, r)`` either way round).
- ``horizontal_flip``, ``vertical_flip``: mirror left-right, up-down, each with p = 1/2.
- ``fill_mode`` and ``cval``: what points outside the input read (below).

The inverse map
---------------
Like every resampler, Keras works backwards: for every output pixel ``(r, c)`` it asks which
input point to read, and interpolates the input there bilinearly (``order=1``). Keras
composes, in its own ``(x, y)`` coordinates, ``A = R(theta) @ T(tx, ty) @ S(shear) @
Z(zx, zy)`` (rotation, then shift, shear, zoom: **that** order), moves it about the centre
``o = (H/2 - 0.5, W/2 - 0.5)`` as ``M = T(o) @ A @ T(-o)``, then swaps the two axes (``P M
P``) because its ``x`` is the column and ``y`` the row. Written out in ``(row, col)``, with
``u = c - (H/2 - 0.5)`` and ``v = r - (W/2 - 0.5)`` (note: rows are centred with the
*width*, columns with the *height*; the same for square images), ``a = theta``, ``s =
shear``, the input point read by output pixel ``(r, c)`` is::

    col = H/2 - 0.5 + cos(a) (zx u - sin(s) zy v) - sin(a) cos(s) zy v + cos(a) tx - sin(a) ty
    row = W/2 - 0.5 + sin(a) (zx u - sin(s) zy v) + cos(a) cos(s) zy v + sin(a) tx + cos(a) ty

So ``tx`` > 0 moves the content **left** and ``ty`` > 0 moves it **up**: ``tx`` (drawn with
``height_shift_range`` and the height) is along the *columns*. Keras up to 2.3 (the seed's
era; keras-preprocessing up to 1.1.2) did not swap the axes, so ``tx`` was along the rows,
and centred at ``size/2 + 0.5``; fixes of late 2020 made today's convention, which this
module follows. The flips are applied **after** the affine, to the resampled image.

The fill modes (scipy's, with ``order=1``)
------------------------------------------
For an input row ``abcd`` (pixels at 0..3), what positions -4..-1 and 4..7 read:

- ``nearest``:  ``aaaa|abcd|dddd``, the edge pixel repeated;
- ``reflect``:  ``dcba|abcd|dcba``, mirrored about the pixel *edges* (half-sample
  symmetric), so -0.5 reads ``a``;
- ``constant``: ``kkkk|abcd|kkkk`` with ``k = cval``, and **no blending**: any point
  outside ``[0, n - 1]`` reads ``k``, even -0.01 (scipy's ``'constant'``, not
  ``'grid-constant'``);
- ``wrap``:     ``cdbc|abcd|bcab``: scipy's ``'wrap'`` wraps the *coordinate* with period
  ``n - 1`` (not ``n``), into ``(0, n - 1]`` from the left and ``[0, n - 1)`` from the
  right: position 3 reads ``d`` but 3.01 reads nearly ``a``, and -0.5 reads ``(c + d) / 2``.

How this differs from the project's `Augmenter`
-----------------------------------------------
`numpy_unet.data.Augmenter` does quarter turns and vertical flips (free for EM images), no
small rotation, its shear along the rows (Keras 2.3's axes), and samples the mask by
**nearest** pixel so it stays binary. This class does exactly Keras 3's: the mask is
interpolated like the image and then thresholded (or, for several classes, each class's
indicator is interpolated and the largest wins).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

from .augment import check_batch
from .keras_affine import affine_read, cast_like_scipy, transform_matrix

NAME = "ImageDataGenerator"
FILL_MODES = ("nearest", "reflect", "constant", "wrap")
NOT_SUPPORTED = (  # Keras's other arguments: normalisation, colour changes, loading
    "featurewise_center samplewise_center featurewise_std_normalization "
    "samplewise_std_normalization zca_whitening zca_epsilon brightness_range "
    "channel_shift_range rescale preprocessing_function data_format validation_split dtype"
).split()
AFFINE_DEFAULTS = {"theta": 0, "tx": 0, "ty": 0, "shear": 0, "zx": 1, "zy": 1}  # no change


# -- checking the arguments -------------------------------------------------------------------


def is_number(value: object) -> bool:
    """A finite real number, not a bool."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(value)
    )


def check_range(name: str, value: object, unit: str) -> None:
    """Any finite number, as Keras takes it: a negative ``r`` draws ``uniform(-r, r)``
    all the same (from ``|r|`` down to ``-|r|``: the same spread, other values per seed)."""
    if not is_number(value):
        raise ValueError(f"{NAME}: {name} must be a finite number ({unit}), got {value!r}")


def check_shift(name: str, value: object) -> None:
    if isinstance(value, (list, tuple)):
        if value and all(is_number(v) and v >= 0 for v in value):
            return
    elif is_number(value) and value >= 0:
        return
    raise ValueError(
        f"{NAME}: {name} must be a number >= 0 (a fraction of the size if < 1, else pixels) "
        f"or a non-empty list of such numbers, got {value!r}"
    )


def zoom_bounds(value: object) -> list:
    """Keras's ``[lo, hi]`` from ``zoom_range``: ``z -> [1 - z, 1 + z]`` or the pair itself.

    Keras takes any number and any pair of numbers, in either order, and draws
    ``uniform(lo, hi)`` as given: ``zoom_range=1.5`` gives ``[-0.5, 2.5]``, ``[1.2, 0.8]``
    draws from 1.2 down to 0.8. A factor of 0 reads one input point for the whole axis
    and a negative one mirrors it; both are Keras's, kept here (only non-finite numbers
    and bools are refused)."""
    if is_number(value):
        return [1 - value, 1 + value]
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(is_number, value)):
        return [value[0], value[1]]
    raise ValueError(
        f"{NAME}: zoom_range must be a finite number z (for [1 - z, 1 + z]) or a pair of "
        f"finite numbers [lo, hi], got {value!r}"
    )


def uniform(
    rng: np.random.RandomState | np.random.Generator,
    low: float,
    high: float,
    size: int | None = None,
) -> float | np.ndarray:
    """``rng.uniform(low, high, size)``, also for ``high < low``: a RandomState (Keras's
    draws) allows it, a Generator refuses it, so it gets the same formula,
    ``low + (high - low) * u``."""
    if isinstance(rng, np.random.Generator) and high < low:
        return low + (high - low) * rng.random(size)
    return rng.uniform(low, high, size)


# -- the generator ----------------------------------------------------------------------------


class ImageDataGenerator:
    """Keras's random affine augmentation (rotation, shift, shear, zoom, flips), exactly.

    Parameters
    ----------
    rotation_range : float
        Degrees; ``theta`` is uniform in ``[-rotation_range, rotation_range]``.
    width_shift_range, height_shift_range : float, int or list of float
        Fraction of the width / height if < 1, pixels otherwise; an int draws whole pixels,
        a list one of its values with a random sign (see the module docstring).
    shear_range : float
        Degrees; ``shear`` is uniform in ``[-shear_range, shear_range]``.
    zoom_range : float or (float, float)
        ``z`` for factors in ``[1 - z, 1 + z]``, or ``[lo, hi]`` (either order, as Keras
        takes them); above 1 zooms out.
    horizontal_flip, vertical_flip : bool
        Mirror left-right / up-down, each with probability 1/2, after the affine.
    fill_mode : {'nearest', 'reflect', 'constant', 'wrap'}
        What points outside the input read (see the module docstring).
    cval : float
        The value read outside with ``fill_mode='constant'``.
    interpolation_order : int
        Only 1 (bilinear, Keras's default) is supported.
    seed : int, numpy.random.Generator or None
        Seed of ``self.rng``, used by `__call__` and by `get_random_transform` without a
        seed. ``None`` draws a fresh seed.

    Attributes
    ----------
    rng : numpy.random.Generator
        To resume a run exactly, save ``rng.bit_generator.state`` and assign it back.
    last_transforms : list of dict
        The parameters of the last `__call__`, one dict per image.

    Examples
    --------
    >>> import numpy as np
    >>> gen = ImageDataGenerator(rotation_range=10, zoom_range=0.1, seed=0)
    >>> images = np.random.default_rng(0).random((2, 16, 16, 1), dtype=np.float32)
    >>> images2, masks2 = gen(images, (images > 0.5).astype(np.float32))
    >>> images2.shape, sorted(np.unique(masks2).tolist())
    ((2, 16, 16, 1), [0.0, 1.0])
    """

    def __init__(
        self,
        rotation_range: float = 0,
        width_shift_range: float | list[float] = 0.0,
        height_shift_range: float | list[float] = 0.0,
        shear_range: float = 0.0,
        zoom_range: float | tuple[float, float] = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        interpolation_order: int = 1,
        seed: int | np.random.Generator | None = None,
        **keras_options: object,
    ) -> None:
        for option in keras_options:
            if option in NOT_SUPPORTED:
                raise ValueError(
                    f"{NAME}: Keras's {option} is not supported here; only the geometric "
                    "augmentation (rotation, shifts, shear, zoom, flips, fill_mode, cval)"
                )
            raise TypeError(f"{NAME}: unexpected argument {option!r}")
        check_range("rotation_range", rotation_range, "degrees")
        check_range("shear_range", shear_range, "degrees")
        check_shift("width_shift_range", width_shift_range)
        check_shift("height_shift_range", height_shift_range)
        self.zoom_bounds = zoom_bounds(zoom_range)
        for name, flag in (("horizontal_flip", horizontal_flip), ("vertical_flip", vertical_flip)):
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(f"{NAME}: {name} must be True or False, got {flag!r}")
        if fill_mode not in FILL_MODES:
            raise ValueError(f"{NAME}: fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
        if not is_number(cval):
            raise ValueError(f"{NAME}: cval must be a finite number, got {cval!r}")
        if interpolation_order != 1 or isinstance(interpolation_order, bool):
            raise ValueError(
                f"{NAME}: only interpolation_order=1 (bilinear) is supported, "
                f"got {interpolation_order!r}"
            )
        self.rotation_range = rotation_range
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.shear_range = shear_range
        self.zoom_range = zoom_range
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.fill_mode = fill_mode
        self.cval = cval
        try:
            self.rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{NAME}: seed must be an int >= 0, a numpy.random.Generator or None, got {seed!r}"
            ) from error
        self.last_transforms: list[dict] = []

    # -- drawing ----------------------------------------------------------------------------

    def get_random_transform(self, img_shape: tuple[int, ...], seed: int | None = None) -> dict:
        """Draw one transform's parameters for an image of shape ``(H, W, C)``.

        With ``seed``, draws exactly what Keras draws after ``np.random.seed(seed)`` (from a
        local ``numpy.random.RandomState(seed)``; the global state is not touched). Without,
        draws from ``self.rng``. Returns Keras's dict: ``theta``, ``tx``, ``ty``, ``shear``,
        ``zx``, ``zy``, ``flip_horizontal``, ``flip_vertical``, ``channel_shift_intensity``
        and ``brightness`` (the last two always ``None`` here).
        """
        shape = tuple(img_shape) if isinstance(img_shape, (tuple, list)) else ()
        if len(shape) < 2 or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape):
            raise ValueError(
                f"{NAME}.get_random_transform: img_shape must be (H, W, C), got {img_shape!r}"
            )
        if seed is None:
            return self.draw_transform(self.rng, shape)
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
            raise ValueError(
                f"{NAME}.get_random_transform: seed must be an int >= 0 or None, got {seed!r}"
            )
        return self.draw_transform(np.random.RandomState(seed), shape)

    def draw_transform(
        self, rng: np.random.RandomState | np.random.Generator, shape: tuple
    ) -> dict:
        """Keras's draws, in Keras's order, from ``rng`` (a RandomState or a Generator)."""
        theta = (
            uniform(rng, -self.rotation_range, self.rotation_range) if self.rotation_range else 0
        )
        tx = draw_shift(rng, self.height_shift_range, shape[0])
        ty = draw_shift(rng, self.width_shift_range, shape[1])
        shear = uniform(rng, -self.shear_range, self.shear_range) if self.shear_range else 0
        lo, hi = self.zoom_bounds
        zx, zy = (1, 1) if lo == 1 and hi == 1 else uniform(rng, lo, hi, 2)
        flip_horizontal = (rng.random() < 0.5) * self.horizontal_flip  # both always drawn
        flip_vertical = (rng.random() < 0.5) * self.vertical_flip
        return {
            "theta": theta,
            "tx": tx,
            "ty": ty,
            "shear": shear,
            "zx": zx,
            "zy": zy,
            "flip_horizontal": flip_horizontal,
            "flip_vertical": flip_vertical,
            "channel_shift_intensity": None,
            "brightness": None,
        }

    # -- applying -----------------------------------------------------------------------------

    def apply_transform(self, x: np.ndarray, transform_parameters: dict) -> np.ndarray:
        """Apply one transform to an ``(H, W, C)`` array, as Keras does.

        Missing keys take Keras's defaults (no change); ``channel_shift_intensity`` and
        ``brightness`` must be absent or ``None``. Returns a new array of ``x``'s dtype
        (scipy's rounding for integer types).
        """
        x = np.asarray(x)
        if x.ndim != 3 or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise ValueError(
                f"{NAME}.apply_transform: expected one (H, W, C) numeric image, "
                f"got shape {x.shape} and dtype {x.dtype}"
            )
        p = transform_parameters
        if not isinstance(p, Mapping):
            raise ValueError(
                f"{NAME}.apply_transform: transform_parameters must be a dict, got {p!r}"
            )
        for key in ("channel_shift_intensity", "brightness"):
            if p.get(key) is not None:
                raise ValueError(f"{NAME}.apply_transform: {key} is not supported, got {p[key]!r}")
        values = {}
        for key, default in AFFINE_DEFAULTS.items():
            values[key] = p.get(key, default)
            if not is_number(values[key]):
                raise ValueError(
                    f"{NAME}.apply_transform: {key} must be a finite number, got {values[key]!r}"
                )
        matrix = transform_matrix(**values, h=x.shape[0], w=x.shape[1])
        if matrix is not None:
            x = cast_like_scipy(affine_read(x, matrix, self.fill_mode, self.cval), x.dtype)
        if p.get("flip_horizontal", False):
            x = x[:, ::-1]
        if p.get("flip_vertical", False):
            x = x[::-1]
        return np.array(x)

    def transform_mask(self, mask: np.ndarray, params: dict, kind: str) -> np.ndarray:
        """One ``(H, W, C')`` mask, moved with ``params`` and kept a valid mask (`__call__`)."""
        if kind == "binary":  # the seed's adjustData: interpolate, then threshold at 0.5
            floating = np.issubdtype(mask.dtype, np.floating)
            soft = self.apply_transform(mask if floating else mask.astype(np.float64), params)
            return (soft > 0.5).astype(mask.dtype)
        if kind == "labels":  # each class's indicator interpolated, the largest wins
            classes = np.union1d([0], mask)  # absent classes other than 0 can never win
            indicators = (mask == classes).astype(np.float64)  # (H, W, K)
            soft = self.apply_transform(indicators, params)
            return classes[np.argmax(soft, axis=-1)][..., None].astype(mask.dtype)
        soft = self.apply_transform(mask.astype(np.float64), params)  # one-hot (H, W, C')
        winner = np.argmax(soft, axis=-1)[..., None]  # ties go to the lower class
        return (winner == np.arange(mask.shape[-1])).astype(mask.dtype)

    def __call__(self, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Augment a batch: one random transform per image (from ``self.rng``), the same for
        its mask.

        Parameters
        ----------
        images : numpy.ndarray
            ``(N, H, W, C)`` array.
        masks : numpy.ndarray
            ``(N, H, W, C')``: one channel of values in [0, 1] (interpolated, then
            thresholded ``> 0.5`` to 0/1, the seed's ``adjustData``), one channel of class
            labels 0..K-1 (each class's indicator interpolated, the label becomes the argmax,
            ties to the lower class), or ``C' > 1`` one-hot channels (each interpolated,
            then the one-hot of the argmax).

        Returns
        -------
        images, masks : numpy.ndarray
            New arrays of the same shapes and dtypes.
        """
        images, masks = np.asarray(images), np.asarray(masks)
        check_batch(NAME, images, masks)
        kind = mask_kind(masks)
        out_images, out_masks = np.empty_like(images), np.empty_like(masks)
        self.last_transforms = []
        for i in range(len(images)):
            params = self.get_random_transform(images.shape[1:])
            out_images[i] = self.apply_transform(images[i], params)
            out_masks[i] = self.transform_mask(masks[i], params, kind)
            self.last_transforms.append(params)
        return out_images, out_masks

    def __repr__(self) -> str:
        return (
            f"{NAME}(rotation_range={self.rotation_range!r}, "
            f"width_shift_range={self.width_shift_range!r}, "
            f"height_shift_range={self.height_shift_range!r}, "
            f"shear_range={self.shear_range!r}, zoom_range={self.zoom_range!r}, "
            f"horizontal_flip={self.horizontal_flip}, vertical_flip={self.vertical_flip}, "
            f"fill_mode={self.fill_mode!r}, cval={self.cval!r})"
        )

    # -- Keras's streams (the iterators live in keras_iterator.py) ----------------------------

    def flow(
        self,
        x: np.ndarray,
        y: np.ndarray | None = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> NumpyArrayIterator:  # noqa: F821 (imported inside)
        """Keras's ``flow``: an endless iterator of transformed batches, Keras's exactly.

        Parameters
        ----------
        x : array-like
            ``(N, H, W, C)`` images, cast to float32 (Keras's default dtype).
        y : array-like, optional
            ``(N, ...)`` labels, returned **untransformed** with each batch, as Keras does.
            To move masks with their images, make ``flow(masks, seed=s)`` with the same seed.
        batch_size : int
            Samples per batch; the last batch of a pass holds the rest.
        shuffle : bool
            A new order (``permutation``) at the start of every pass.
        seed : int, optional
            Batch ``k`` replays Keras's ``np.random.seed(seed + k)``, on a private
            ``RandomState``. None: one private state seeded from ``self.rng``.

        Returns
        -------
        NumpyArrayIterator
            ``next(it)`` gives ``(B, H, W, C)`` float32, or ``(batch_x, batch_y)``;
            ``len(it)`` is ``ceil(N / batch_size)``.
        """
        from .keras_iterator import NumpyArrayIterator

        where = f"{NAME}.flow"
        return NumpyArrayIterator(x, y, self, batch_size, shuffle, seed, where=where)

    def flow_from_directory(
        self,
        directory: str,
        target_size: tuple[int, int] = (256, 256),
        color_mode: str = "rgb",
        classes: list[str] | None = None,
        class_mode: str | None = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> DirectoryIterator:  # noqa: F821 (imported inside)
        """Keras's ``flow_from_directory``: files loaded as Keras loads them, transformed.

        The seed's ``trainGenerator`` is two of these, zipped::

            images = gen.flow_from_directory("train", classes=["image"], class_mode=None,
                                             color_mode="grayscale", batch_size=2, seed=1)
            masks = gen.flow_from_directory("train", classes=["label"], class_mode=None,
                                            color_mode="grayscale", batch_size=2, seed=1)

        Parameters
        ----------
        directory : str or os.PathLike
            A folder of class subfolders.
        target_size : (int, int)
            ``(height, width)``; every file is resized with Pillow's nearest neighbour.
        color_mode : {'grayscale', 'rgb', 'rgba'}
            1, 3 or 4 channels, converted as Pillow does (gray = its integer ITU-R 601-2 luma).
        classes : list of str, optional
            The subfolders to read; None reads them all, sorted.
        class_mode : {None, 'categorical', 'binary', 'sparse', 'input'}
            None (the seed's) yields images alone. Keras's default is 'categorical'.
        batch_size, shuffle, seed
            As for `flow`.

        Returns
        -------
        DirectoryIterator
            ``next(it)`` gives ``(B, h, w, C)`` float32 of the stored values (0..255, not
            divided); files in Keras's order (plain string sort: ``10.png`` before ``2.png``).
        """
        from .keras_iterator import DirectoryIterator

        where = f"{NAME}.flow_from_directory"
        args = (target_size, color_mode, classes, class_mode, batch_size, shuffle, seed)
        return DirectoryIterator(directory, self, *args, where=where)


def draw_shift(
    rng: np.random.RandomState | np.random.Generator, shift_range: object, size: int
) -> float:
    """Keras's shift draw: a list or an int picks a value and a sign, a float is uniform;
    the result is a fraction of ``size`` when every value is below 1."""
    if not shift_range:
        return 0
    if isinstance(shift_range, (list, tuple, numbers.Integral)):
        shift = rng.choice(shift_range)
        shift *= rng.choice([-1, 1])
    else:
        shift = rng.uniform(-shift_range, shift_range)
    if np.max(shift_range) < 1:
        shift *= size
    return shift


def mask_kind(masks: np.ndarray) -> str:
    """``'binary'`` (one channel in [0, 1]), ``'labels'`` (one channel of whole numbers >= 0)
    or ``'onehot'`` (several channels); a ValueError for anything else."""
    if masks.shape[-1] > 1:
        return "onehot"
    values = masks.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{NAME}: masks must be finite")
    if np.all((values >= 0) & (values <= 1)):
        return "binary"
    if np.all((values >= 0) & (values == np.round(values))):
        return "labels"
    raise ValueError(
        f"{NAME}: a one-channel mask must hold values in [0, 1] or class labels 0, 1, 2, ...; "
        f"got values from {values.min()} to {values.max()}"
    )
