"""Elastic deformation, the U-Net paper's main augmentation, and `Compose` to chain augmenters.

Ronneberger et al. (2015) trained on 30 images and made up for it by bending them: "random
displacement vectors on a coarse 3 by 3 grid [...] sampled from a Gaussian distribution with
10 pixels standard deviation. Per-pixel displacements are then computed using bicubic
interpolation." Here, in three steps:

1. **Coarse grid.** Draw a displacement ``(d_row, d_col)`` in pixels from ``N(0, sigma)`` at
   each point of a ``grid x grid`` lattice spread evenly over the image, corners included.
2. **Smooth field.** Interpolate those vectors to every pixel with a *natural cubic spline*
   along the rows and along the columns (a tensor-product, i.e. bicubic, spline). Among all
   the curves through the grid values it is the one that bends least (smallest integral of
   the squared second derivative); it passes exactly through the grid values, is twice
   continuously differentiable, and a constant or linear field (a shift, a stretch) comes out
   exactly. Its end condition (no curvature at the image border) needs no extra values.
3. **Backward warp.** Output pixel ``p`` shows the input at ``p - u(p)``, with ``u`` the
   field: where ``u`` is smooth the picture moves by about ``u`` (the sign of the
   ``Augmenter``'s shift). That source point is between pixels, so

   - the **image** is interpolated by cubic convolution (Keys 1981, ``a = -0.5``, the
     "bicubic" of image libraries) from its 4 x 4 neighbours, then clipped to each channel's
     input range: cubic weights go negative, so at a sharp edge the result can overshoot
     (ring) beyond the input values, and the network's inputs would leave e.g. [0, 1];
   - the **mask** is interpolated bilinearly from its 2 x 2 neighbours and thresholded at
     0.5, so it stays exactly 0 or 1. Bilinear weights are never negative, so a pixel
     surrounded by one class keeps it (no ringing, no stray islands), and the 0.5 level lies
     half-way between a cell pixel and a membrane pixel, so the boundary is not shifted
     either way (nearest-pixel sampling would make staircase edges). A line one pixel
     thin can still break where the warp stretches it, as with any binary resampling.

   Source points outside the image read its mirror image (reflection about the edge pixels,
   like ``np.pad(mode="reflect")``), as the paper's overlap-tile strategy mirrors the border.

With zero displacements every source point is a pixel centre, the cubic and bilinear weights
are exactly 1 and 0, and the output equals the input bit for bit.
"""

from __future__ import annotations

import numpy as np

from .augment import check_batch as check_shapes
from .resample import resample

__all__ = [
    "Compose",
    "ElasticDeformation",
    "apply_elastic",
    "displacement_field",
    "elastic_deform",
    "elastic_displacement",
]


# -- the displacement field -------------------------------------------------------------------
def _spline_matrix(n: int, g: int) -> np.ndarray:
    """``(n, g)`` matrix: natural cubic spline through ``g`` values, sampled at ``n`` points.

    Grid point ``j`` sits at sample ``j (n - 1) / (g - 1)``, so the ends are the first and
    last samples. The spline's second derivatives ``M`` at the grid points solve (unit
    spacing) ``M[j-1] + 4 M[j] + M[j+1] = 6 (y[j-1] - 2 y[j] + y[j+1])`` with
    ``M[0] = M[g-1] = 0``; ``S`` below maps the values ``y`` to ``M``.
    """
    S = np.zeros((g, g))
    if g > 2:
        A = 4 * np.eye(g - 2) + np.eye(g - 2, k=1) + np.eye(g - 2, k=-1)
        D = np.eye(g - 2, g) - 2 * np.eye(g - 2, g, k=1) + np.eye(g - 2, g, k=2)
        S[1:-1] = np.linalg.solve(A, 6 * D)
    t = np.arange(n) * (g - 1) / (n - 1)  # grid coordinate of each sample (exact at the nodes)
    j = np.minimum(np.floor(t).astype(int), g - 2)  # the interval [j, j + 1] holding t
    u = (t - j)[:, None]  # position inside it, in [0, 1]
    B = np.zeros((n, g))
    B[np.arange(n), j] = 1 - u[:, 0]  # the straight line between the two nodes ...
    B[np.arange(n), j + 1] = u[:, 0]
    B += ((1 - u) ** 3 - (1 - u)) / 6 * S[j] + (u**3 - u) / 6 * S[j + 1]  # ... plus the bend
    return B


def displacement_field(shape: tuple[int, int], displacements: np.ndarray) -> np.ndarray:
    """Interpolate a coarse grid of displacement vectors to every pixel (natural bicubic spline).

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of the image, both at least 2.
    displacements : numpy.ndarray
        ``(gh, gw, 2)`` vectors ``(d_row, d_col)`` in pixels, ``gh, gw >= 2``; grid point
        ``(i, j)`` sits at pixel ``(i (H - 1) / (gh - 1), j (W - 1) / (gw - 1))``.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 2)`` float64 field, equal to the grid values at the grid points.
    """
    d = np.asarray(displacements, dtype=np.float64)
    h, w = shape
    if d.ndim != 3 or d.shape[-1] != 2 or min(d.shape[:2]) < 2 or not np.isfinite(d).all():
        raise ValueError(
            "displacement_field: displacements must be a finite (gh, gw, 2) array with "
            f"gh, gw >= 2, got shape {d.shape}"
        )
    if min(h, w) < 2:
        raise ValueError(f"displacement_field: shape must be at least (2, 2), got {shape}")
    rows, cols = _spline_matrix(h, d.shape[0]), _spline_matrix(w, d.shape[1])  # (H, gh), (W, gw)
    return np.einsum("ri,ijk,cj->rck", rows, d, cols)  # (H, W, 2)


def elastic_displacement(
    shape: tuple[int, int], displacements: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For every output pixel, the input point it is read from: ``p - u(p)``.

    ``u`` is `displacement_field` ``(shape, displacements)``. Returns two ``(H, W)`` float64
    arrays, the input rows and columns, like ``augment.source_coordinates``.
    """
    u = displacement_field(shape, displacements)  # (H, W, 2)
    r, c = np.indices(shape, dtype=np.float64)
    return r - u[..., 0], c - u[..., 1]


def apply_elastic(
    image: np.ndarray, mask: np.ndarray, displacements: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Warp an ``(H, W, C)`` image and its ``(H, W, C')`` 0/1 mask by a grid of displacements.

    The image is interpolated by cubic convolution and clipped to each channel's input range;
    the mask bilinearly, then thresholded (``>= 0.5``) per channel. See the module docstring.
    Returns new arrays of the inputs' shapes and dtypes.
    """
    rows, cols = elastic_displacement(image.shape[:2], displacements)
    warped = resample(image, rows, cols, order=3, edge="reflect")  # (H, W, C), float64
    warped = np.clip(warped, image.min(axis=(0, 1)), image.max(axis=(0, 1)))  # no overshoot
    if np.issubdtype(image.dtype, np.integer):
        warped = np.rint(warped)
    binary = resample(mask, rows, cols, order=1, edge="reflect") >= 0.5  # (H, W, C')
    return warped.astype(image.dtype), binary.astype(mask.dtype)


# -- checks -----------------------------------------------------------------------------------
def _check_batch(where: str, images: np.ndarray, masks: np.ndarray) -> None:
    """The shapes as every augmenter wants them; numeric images; masks of 0 and 1."""
    check_shapes(where, images, masks)
    if not (np.issubdtype(images.dtype, np.floating) or np.issubdtype(images.dtype, np.integer)):
        raise ValueError(f"{where}: images must be float or integer, got dtype {images.dtype}")
    if not np.isin(masks, (0, 1)).all():
        raise ValueError(
            f"{where}: masks must hold only 0 and 1 (they are thresholded at 0.5 after "
            f"interpolation), got values in [{masks.min():g}, {masks.max():g}]"
        )


def _check_options(where: str, sigma: object, grid: object) -> tuple[float, int]:
    number = isinstance(sigma, (int, float, np.integer, np.floating))
    if isinstance(sigma, bool) or not number or not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"{where}: sigma must be a finite number of pixels >= 0, got {sigma!r}")
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise ValueError(f"{where}: grid must be an integer >= 2 (corners included), got {grid!r}")
    return float(sigma), int(grid)


# -- the augmenter ----------------------------------------------------------------------------
class ElasticDeformation:
    """Random elastic deformation of each image and its mask (the U-Net paper's augmentation).

    Parameters
    ----------
    sigma : float
        Standard deviation of the grid displacements, in pixels (the paper: 10). 0 gives
        exactly the identity.
    grid : int
        Grid points per side, corners included (the paper: 3).
    seed : int, numpy.random.Generator or None
        Seed of ``self.rng``. ``None`` draws a fresh seed.

    Attributes
    ----------
    rng : numpy.random.Generator
        The only source of randomness; save ``rng.bit_generator.state`` to resume exactly.
    last_displacements : numpy.ndarray
        ``(N, grid, grid, 2)`` grid displacements of the last call, one grid per image.
    """

    def __init__(
        self, sigma: float = 10.0, grid: int = 3, seed: int | np.random.Generator | None = None
    ) -> None:
        self.sigma, self.grid = _check_options("ElasticDeformation", sigma, grid)
        self.rng = np.random.default_rng(seed)
        self.last_displacements = np.zeros((0, self.grid, self.grid, 2))

    def sample(self) -> np.ndarray:
        """Draw one ``(grid, grid, 2)`` array of displacements from ``N(0, sigma)``, pixels."""
        return self.sigma * self.rng.standard_normal((self.grid, self.grid, 2))

    def __call__(self, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Deform a batch: ``(N, H, W, C)`` images and ``(N, H, W, C')`` 0/1 masks.

        Each image gets its own random grid, shared with its mask. Returns new arrays of the
        same shapes and dtypes.
        """
        images, masks = np.asarray(images), np.asarray(masks)
        _check_batch("ElasticDeformation", images, masks)
        out_images, out_masks = np.empty_like(images), np.empty_like(masks)
        self.last_displacements = np.zeros((len(images), self.grid, self.grid, 2))
        for i in range(len(images)):
            self.last_displacements[i] = self.sample()
            out_images[i], out_masks[i] = apply_elastic(
                images[i], masks[i], self.last_displacements[i]
            )
        return out_images, out_masks

    def __repr__(self) -> str:
        return f"ElasticDeformation(sigma={self.sigma}, grid={self.grid})"


def elastic_deform(
    image: np.ndarray,
    mask: np.ndarray,
    sigma: float = 10.0,
    grid: int = 3,
    rng: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Deform one ``(H, W, C)`` image and its ``(H, W, C')`` 0/1 mask by a random grid.

    ``rng`` is a seed or a Generator (used, and advanced, as it is). See `ElasticDeformation`
    for ``sigma`` and ``grid`` and the module docstring for the method.
    """
    sigma, grid = _check_options("elastic_deform", sigma, grid)
    image, mask = np.asarray(image), np.asarray(mask)
    if image.ndim != 3 or mask.ndim != 3:
        raise ValueError(
            "elastic_deform: expected an image and a mask of shape (H, W, C), got "
            f"{image.shape} and {mask.shape}"
        )
    _check_batch("elastic_deform", image[None], mask[None])
    displacements = sigma * np.random.default_rng(rng).standard_normal((grid, grid, 2))
    return apply_elastic(image, mask, displacements)


# -- chaining ---------------------------------------------------------------------------------
class Compose:
    """Apply augmenters one after the other, all drawing from one shared generator.

    The training loop saves and restores ``augment.rng`` to resume exactly, so an augmenter
    must expose a single generator. ``Compose`` creates it from ``seed`` and assigns it to
    every part's ``.rng`` (the parts' own seeds are replaced); assigning ``compose.rng``
    later hands the new generator to the parts as well.

    Parameters
    ----------
    *augmenters
        Callables ``(images, masks) -> (images, masks)`` with an ``rng`` attribute, e.g.
        ``Augmenter`` and `ElasticDeformation`.
    seed : int, numpy.random.Generator or None
        Seed of the shared generator.

    Examples
    --------
    >>> from numpy_unet.data import Augmenter
    >>> augment = Compose(Augmenter(seed=0), ElasticDeformation(), seed=0)  # one rng, seed 0
    >>> augment.rng is augment.augmenters[0].rng is augment.augmenters[1].rng
    True
    >>> images = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    >>> images2, masks2 = augment(images, (images > 0.5).astype(np.float32))
    >>> images2.shape, images2.dtype, sorted(np.unique(masks2).tolist())
    ((2, 32, 32, 1), dtype('float32'), [0.0, 1.0])
    """

    def __init__(self, *augmenters: object, seed: int | np.random.Generator | None = None):
        if not augmenters:
            raise ValueError("Compose: expected at least one augmenter, got none")
        for part in augmenters:
            if not callable(part) or not hasattr(part, "rng"):
                raise TypeError(
                    "Compose: every part must be callable as part(images, masks) and have "
                    f"an .rng attribute (a numpy Generator), got {part!r}"
                )
        self.augmenters = tuple(augmenters)
        self.rng = np.random.default_rng(seed)

    @property
    def rng(self) -> np.random.Generator:
        """The generator shared by all the parts."""
        return self._rng

    @rng.setter
    def rng(self, generator: np.random.Generator) -> None:
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"Compose: rng must be a numpy Generator, got {generator!r}")
        self._rng = generator
        for part in self.augmenters:
            part.rng = generator

    def __call__(self, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply each augmenter in turn to ``(N, H, W, C)`` images and masks."""
        for part in self.augmenters:
            images, masks = part(images, masks)
        return images, masks

    def __repr__(self) -> str:
        return f"Compose({', '.join(repr(part) for part in self.augmenters)})"
