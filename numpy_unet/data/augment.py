"""Data augmentation: random flips, quarter turns and a small affine, same for image and mask.

The seed trained its UNet on 30 images, stretched by Keras's ``ImageDataGenerator`` with::

    dict(rotation_range=0.2, width_shift_range=0.05, height_shift_range=0.05,
         shear_range=0.05, zoom_range=0.05, horizontal_flip=True, fill_mode="nearest")

`Augmenter` draws the same affine (shift, shear and zoom, with Keras's units and
conventions) and adds what costs nothing and suits EM images, which have no preferred
orientation: vertical flips and rotations by multiples of 90 degrees. The seed's
``rotation_range=0.2`` is 0.2 *degrees* (a pixel at the border of a 256 x 256 image moves by
0.4 px), so it is left out.

Every image gets its own random transform, and its mask gets exactly the same one:

- flips and quarter turns are exact rearrangements of the pixels;
- the affine is computed backwards, as Keras (via ``scipy.ndimage.affine_transform``) does:
  for every output pixel, where in the input does it come from? That source point is
  generally between pixels, so the image is interpolated **bilinearly** from its four
  neighbours, while the mask takes the **nearest** pixel, so that it stays exactly 0 or 1.
  Source points outside the image are moved to the nearest edge pixel (Keras's
  ``fill_mode="nearest"``).

Coordinates are ``(row, col)`` with pixel centres at integers, as in NumPy indexing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .resample import resample


@dataclass(frozen=True)
class Transform:
    """One image's augmentation: first the flips, then the quarter turns, then the affine.

    Attributes
    ----------
    flip_h : bool
        Mirror left-right (reverse the columns).
    flip_v : bool
        Mirror up-down (reverse the rows).
    rot90 : int
        Number of counter-clockwise quarter turns, as in ``np.rot90``.
    shift : (float, float)
        Translation in pixels, ``(rows, cols)``: positive values move the content down and
        to the right.
    shear : float
        Shear angle in **degrees**, Keras's unit: the source point of output pixel ``(r, c)``
        is ``(r - sin(shear) * c, cos(shear) * c)`` about the centre, so each column slides
        along the rows in proportion to its distance from the centre.
    zoom : (float, float)
        Zoom factors ``(rows, cols)``, with Keras's meaning: they scale the *source*
        coordinates, so a factor above 1 shows more of the input, i.e. zooms **out**.
    """

    flip_h: bool = False
    flip_v: bool = False
    rot90: int = 0
    shift: tuple[float, float] = (0.0, 0.0)
    shear: float = 0.0
    zoom: tuple[float, float] = (1.0, 1.0)

    @property
    def has_affine(self) -> bool:
        """Whether the affine part does anything (if not, no resampling is needed)."""
        return self.shift != (0.0, 0.0) or self.shear != 0.0 or self.zoom != (1.0, 1.0)


# -- the pieces --------------------------------------------------------------------------------


def flip_rotate(x: np.ndarray, t: Transform) -> np.ndarray:
    """Apply ``t``'s flips and quarter turns to one ``(H, W, C)`` array (exact, a copy)."""
    if t.flip_h:
        x = x[:, ::-1]
    if t.flip_v:
        x = x[::-1]
    return np.ascontiguousarray(np.rot90(x, t.rot90, axes=(0, 1)))


def source_coordinates(
    shape: tuple[int, int],
    shift: tuple[float, float] = (0.0, 0.0),
    shear: float = 0.0,
    zoom: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """For every output pixel, the input point it is read from (the inverse map).

    With ``centre = ((H - 1) / 2, (W - 1) / 2)``, output pixel ``p`` reads the input at

        ``centre + S @ Z @ (p - centre) - shift``

    where ``Z = diag(zoom)`` and ``S = [[1, -sin(shear)], [0, cos(shear)]]`` is Keras's shear
    matrix (in ``(row, col)`` order). See `Transform` for the meaning of each argument.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of the image.
    shift, shear, zoom
        As in `Transform` (pixels, degrees, factors).

    Returns
    -------
    rows, cols : numpy.ndarray
        Two ``(H, W)`` float64 arrays: the input row and column for each output pixel.
    """
    h, w = shape
    centre_r, centre_c = (h - 1) / 2, (w - 1) / 2
    r, c = np.meshgrid(np.arange(h) - centre_r, np.arange(w) - centre_c, indexing="ij")
    r, c = zoom[0] * r, zoom[1] * c  # Z @ (p - centre)
    angle = np.deg2rad(shear)
    rows = centre_r + r - np.sin(angle) * c - shift[0]
    cols = centre_c + np.cos(angle) * c - shift[1]
    return rows, cols


def apply_transform(
    image: np.ndarray, mask: np.ndarray, t: Transform
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one `Transform` to an ``(H, W, C)`` image and its mask.

    The image is interpolated bilinearly and the mask by nearest pixel (see the module
    docstring). Returns new arrays; the inputs are not modified.
    """
    image, mask = flip_rotate(image, t), flip_rotate(mask, t)
    if t.has_affine:
        rows, cols = source_coordinates(image.shape[:2], t.shift, t.shear, t.zoom)
        image = resample(image, rows, cols, order=1).astype(image.dtype)  # bilinear
        mask = resample(mask, rows, cols, order=0)  # nearest: stays 0 or 1
    return image, mask


def check_batch(where: str, images: np.ndarray, masks: np.ndarray) -> None:
    """Images and masks (N, H, W, C) of the same N, H, W >= 2; else a ValueError naming
    ``where``."""
    if images.ndim != 4 or masks.ndim != 4:
        raise ValueError(
            f"{where}: expected images and masks of shape (N, H, W, C), got "
            f"{images.shape} and {masks.shape}"
        )
    if images.shape[:3] != masks.shape[:3]:
        raise ValueError(
            f"{where}: images {images.shape} and masks {masks.shape} must have the same "
            "number, height and width"
        )
    if min(images.shape[1:3]) < 2:
        raise ValueError(f"{where}: images must be at least 2 x 2, got {images.shape}")


# -- the augmenter ------------------------------------------------------------------------------


class Augmenter:
    """Random flips, quarter turns and a small affine, the same for each image and its mask.

    Parameters
    ----------
    flips : bool
        Flip left-right and up-down, each with probability 1/2 (the seed flipped only
        left-right).
    rotations : bool
        Rotate by 0, 90, 180 or 270 degrees, each with probability 1/4. Non-square images
        are only rotated by 0 or 180 degrees, so that their shape is kept.
    shift : float
        Largest shift, as a fraction of the height (rows) and width (cols): each is drawn
        uniformly from ``[-shift, shift] * size``, like Keras's ``height_shift_range`` and
        ``width_shift_range`` (the seed: 0.05).
    shear : float
        Largest shear angle in **degrees**, drawn uniformly from ``[-shear, shear]``. Keras's
        ``shear_range`` is in degrees (older Keras took radians), so the seed's
        ``shear_range=0.05`` is 0.05 degrees: the far edge of a 256 x 256 image moves by
        0.1 px, a no-op in practice. The default copies it; 5 to 10 degrees makes a
        visible shear.
    zoom : float
        Zoom range: the row and column factors are drawn independently from
        ``[1 - zoom, 1 + zoom]``, as Keras does for ``zoom_range=zoom`` (the seed: 0.05).
        With Keras's convention, a factor above 1 zooms out.
    seed : int, numpy.random.Generator or None
        Seed of ``self.rng``. ``None`` draws a fresh seed.

    Attributes
    ----------
    rng : numpy.random.Generator
        The only source of randomness. To resume a run exactly, save
        ``rng.bit_generator.state`` and assign it back later.
    last_transforms : list of Transform
        The transforms of the last call, one per image.

    Notes
    -----
    Every image takes the same eight draws from ``rng`` whatever the options are (a
    disabled option ignores its draws), so changing one option does not change what the
    others draw. ``Augmenter(flips=False, rotations=False, shift=0, shear=0, zoom=0)`` is
    exactly the identity.

    Examples
    --------
    >>> import numpy as np
    >>> augment = Augmenter(seed=0)
    >>> images = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    >>> masks = (images > 0.5).astype(np.float32)
    >>> images2, masks2 = augment(images, masks)
    >>> images2.shape, sorted(np.unique(masks2).tolist())
    ((2, 32, 32, 1), [0.0, 1.0])
    """

    def __init__(
        self,
        flips: bool = True,
        rotations: bool = True,
        shift: float = 0.05,
        shear: float = 0.05,
        zoom: float = 0.05,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        for name, value in (("shift", shift), ("shear", shear), ("zoom", zoom)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(f"Augmenter: {name} must be a number, got {value!r}")
        if not 0 <= shift < 1:
            raise ValueError(f"shift is a fraction of the image size in [0, 1), got {shift!r}")
        if not 0 <= shear < 90:
            raise ValueError(f"shear is an angle in degrees in [0, 90), got {shear!r}")
        if not 0 <= zoom < 1:
            raise ValueError(f"zoom must be in [0, 1) (factors 1 +- zoom), got {zoom!r}")
        self.flips = bool(flips)
        self.rotations = bool(rotations)
        self.shift = float(shift)
        self.shear = float(shear)
        self.zoom = float(zoom)
        self.rng = np.random.default_rng(seed)
        self.last_transforms: list[Transform] = []

    def sample(self, shape: tuple[int, int]) -> Transform:
        """Draw one random `Transform` for an image of shape ``(H, W)``."""
        h, w = shape
        flip_h, flip_v = self.rng.random(2) < 0.5
        quarter_turns = int(self.rng.integers(4))
        shift = self.rng.uniform(-1, 1, 2) * self.shift * np.array([h, w])
        shear = self.rng.uniform(-1, 1) * self.shear
        zoom = 1 + self.rng.uniform(-1, 1, 2) * self.zoom
        if h != w:  # a quarter turn would swap height and width: 0 or 180 degrees only
            quarter_turns = 2 * (quarter_turns // 2)
        return Transform(
            flip_h=bool(flip_h) and self.flips,
            flip_v=bool(flip_v) and self.flips,
            rot90=quarter_turns if self.rotations else 0,
            shift=(float(shift[0]), float(shift[1])),
            shear=float(shear),
            zoom=(float(zoom[0]), float(zoom[1])),
        )

    def __call__(self, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Augment a batch: an independent random transform per image, shared with its mask.

        Parameters
        ----------
        images : numpy.ndarray
            ``(N, H, W, C)`` float array.
        masks : numpy.ndarray
            ``(N, H, W, C')`` array with the same ``N``, ``H`` and ``W``.

        Returns
        -------
        images, masks : numpy.ndarray
            New arrays of the same shapes and dtypes.
        """
        images, masks = np.asarray(images), np.asarray(masks)
        check_batch("Augmenter", images, masks)

        out_images, out_masks = np.empty_like(images), np.empty_like(masks)
        self.last_transforms = []
        for i in range(len(images)):
            t = self.sample(images.shape[1:3])
            out_images[i], out_masks[i] = apply_transform(images[i], masks[i], t)
            self.last_transforms.append(t)
        return out_images, out_masks

    def __repr__(self) -> str:
        return (
            f"Augmenter(flips={self.flips}, rotations={self.rotations}, shift={self.shift}, "
            f"shear={self.shear}, zoom={self.zoom})"
        )


def augment_batch(
    images: np.ndarray,
    masks: np.ndarray,
    seed: int | np.random.Generator | None = None,
    **options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """Augment one batch: shorthand for ``Augmenter(seed=seed, **options)(images, masks)``.

    For a training loop, create one `Augmenter` and call it on every batch instead: it keeps
    drawing from the same generator. Passing a ``numpy.random.Generator`` as ``seed`` here
    does the same (it is used, and advanced, as it is).
    """
    return Augmenter(seed=seed, **options)(images, masks)
