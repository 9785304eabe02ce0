"""Synthetic electron-microscopy-like membrane images, with exact masks.

The ISBI 2012 challenge images are serial-section EM of neural tissue: bright, grainy cell
interiors separated by thin dark membranes, with darker organelles (mitochondria, vesicles)
inside the cells. ``synthetic_membranes`` draws images with the same ingredients, so the UNet
can be trained and tested without downloading anything, and, unlike hand labels, its masks
are exact.

How one image is made (every step is whole-array NumPy; no loop runs over pixels):

1. **Cells.** Scatter cell centres on a jittered grid (with some points dropped, so cell
   sizes vary) and give each cell its own distance: anisotropic (an ellipse, so cells are
   elongated), weighted (so cells differ in size), and measured after a smooth random
   displacement of the pixel grid (so the borders curve). Each pixel belongs to the cell
   whose distance is smallest: a distorted Voronoi partition.
2. **Membranes.** With ``d1 <= d2`` the two smallest distances at a pixel, the border
   between the two cells is where ``d2 - d1 = 0``, and ``(d2 - d1) / |grad(d2 - d1)|`` is
   the (first-order) distance in pixels from the pixel to that border. Pixels closer than
   half the border's thickness are membrane. Each border has its own thickness.
3. **Mask.** ``mask = 1`` on cell interiors, ``0`` on membranes (the ISBI convention).
4. **Image.** Per-cell brightness, grainy texture (smooth noise at two scales), slow
   shading, dark organelles inside the cells, dark membranes; then a Gaussian blur
   (the microscope's point-spread) and additive noise, and a contrast stretch to [0, 1].

The organelles are as dark as membranes but belong to the cell class, and the blur and noise
blend membranes into their surroundings, so a threshold on intensity alone does not give
the mask: telling membranes from organelles takes shape and context, which is what the UNet
learns.
"""

from __future__ import annotations

import numpy as np

from .resample import reflect_index

# with classes=3, a pixel is of class 'organelle' where its organelle darkens it by at least
# this much (organelles darken by 0.4-0.75 at their core, less towards their soft edge)
ORGANELLE_DARKENING = 0.25

# -- Gaussian blur, written out -----------------------------------------------------------------


def gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """The ``(n, n)`` matrix that blurs a length-``n`` signal with a Gaussian of std ``sigma``.

    Blurring is linear, so along one axis it is a matrix: row ``i`` holds the Gaussian
    weights centred on sample ``i``, with the taps that fall outside the signal reflected
    back into it (so a constant signal stays constant).

    Parameters
    ----------
    n : int
        Length of the signal.
    sigma : float
        Standard deviation of the Gaussian, in samples. ``0`` gives the identity.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` float64 matrix whose rows each sum to 1.
    """
    if sigma <= 0:
        return np.eye(n)
    radius = int(np.ceil(3.0 * sigma))
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    weights /= weights.sum()
    rows = np.repeat(np.arange(n), taps.size)  # output sample i, once per tap
    cols = reflect_index(rows + np.tile(taps, n), n)  # the input sample that tap reads
    # sum the weights into matrix[rows, cols] (reflected taps can land on the same entry)
    matrix = np.bincount(rows * n + cols, np.tile(weights, n), minlength=n * n)
    matrix = matrix.reshape(n, n)
    return matrix


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the last two axes of ``x`` with a Gaussian of std ``sigma`` pixels.

    The 2-D Gaussian is separable: blurring the rows and then the columns is the same as
    blurring with the 2-D kernel. Each pass is a matrix product (see `gaussian_matrix`), so
    ``blur(X) = G_rows @ X @ G_cols.T``; the edges are reflected.

    Parameters
    ----------
    x : numpy.ndarray
        Array of shape ``(..., H, W)``.
    sigma : float
        Standard deviation in pixels (the same along both axes).

    Returns
    -------
    numpy.ndarray
        Blurred float64 array of the same shape.
    """
    h, w = x.shape[-2:]
    return gaussian_matrix(h, sigma) @ x @ gaussian_matrix(w, sigma).T


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """White noise blurred with a Gaussian of std ``sigma`` pixels, rescaled to std 1.

    ``sigma`` sets the size of the blobs: about ``2 * sigma`` pixels across.
    """
    field = gaussian_blur(rng.standard_normal(shape), sigma)
    return (field - field.mean()) / (field.std() + 1e-12)


# -- one image ------------------------------------------------------------------------------------


def _cell_centres(rng: np.random.Generator, h: int, w: int, density: float) -> np.ndarray:
    """Cell centres with ``density`` cells per pixel, as a ``(K, 2)`` array of (row, col).

    A square grid with random offsets (up to 45% of the spacing), of which a random 20% of
    the points are dropped: neighbouring cells then merge into bigger ones, so sizes vary
    more than on a grid, but no cell is a sliver, as with uniformly random points. The grid
    covers a margin of half a spacing around the image, so that the cells at the border are
    cut off by the border, not squeezed against it.
    """
    keep = 0.8
    spacing = np.sqrt(keep / density)
    rows = np.arange(-0.5 * spacing, h + 0.5 * spacing, spacing)
    cols = np.arange(-0.5 * spacing, w + 0.5 * spacing, spacing)
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    grid += rng.uniform(-0.45, 0.45, grid.shape) * spacing
    return grid[rng.random(len(grid)) < keep]


class _Cells:
    """The cells of one image: centres plus each cell's own (elliptical, weighted) distance."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, density: float) -> None:
        self.centres = _cell_centres(rng, h, w, density).astype(np.float32)
        k = len(self.centres)
        self.weight = rng.lognormal(0.0, 0.12, k).astype(np.float32)  # bigger: bigger cell
        root = np.sqrt(rng.uniform(1.0, 1.5, k))  # sqrt of the long/short axis ratio
        angle = rng.uniform(0.0, np.pi, k)
        # the unit vectors along and across each cell's long axis, scaled so that distances
        # count less along the long axis (the cell reaches further) and more across it
        cos, sin = np.cos(angle), np.sin(angle)
        self.along = (np.stack([cos, sin], axis=1) / root[:, None]).astype(np.float32)
        self.across = (np.stack([-sin, cos], axis=1) * root[:, None]).astype(np.float32)

    def __len__(self) -> int:
        return len(self.centres)

    def distance_sq(self, rr: np.ndarray, cc: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Squared distance from the points ``(rr, cc)`` to cell ``k``, in cell k's metric.

        ``rr``, ``cc`` and ``k`` broadcast together: with ``k`` of shape ``(H, W)``, each
        pixel's distance to its own cell ``k[i, j]``.
        """
        dr = rr - self.centres[k, 0]
        dc = cc - self.centres[k, 1]
        along = self.along[k, 0] * dr + self.along[k, 1] * dc
        across = self.across[k, 0] * dr + self.across[k, 1] * dc
        return (along**2 + across**2) / self.weight[k] ** 2

    def distance_sq_all(self, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
        """Squared distances from every point ``(rr, cc)`` to every cell: ``(H, W, K)``.

        The same values as ``distance_sq`` (up to rounding), computed faster: cell k's
        squared distance is a quadratic in (row, col),
        ``[r - r_k, c - c_k] @ M_k @ [r - r_k, c - c_k]`` with the 2 x 2 matrix
        ``M_k = (u u^T + v v^T) / weight**2`` (``u``, ``v`` the scaled axes), which expands
        to ``features @ coefficients`` with the six features ``r**2, r*c, c**2, r, c, 1``:
        one matrix product for all pixels and all cells.
        """
        u, v, w2 = self.along.astype(float), self.across.astype(float), self.weight**2.0
        m_rr = (u[:, 0] ** 2 + v[:, 0] ** 2) / w2
        m_rc = (u[:, 0] * u[:, 1] + v[:, 0] * v[:, 1]) / w2
        m_cc = (u[:, 1] ** 2 + v[:, 1] ** 2) / w2
        r0, c0 = self.centres[:, 0].astype(float), self.centres[:, 1].astype(float)
        coefficients = np.stack(
            [
                m_rr,
                2 * m_rc,
                m_cc,
                -2 * (m_rr * r0 + m_rc * c0),
                -2 * (m_rc * r0 + m_cc * c0),
                m_rr * r0**2 + 2 * m_rc * r0 * c0 + m_cc * c0**2,
            ]
        )  # (6, K)
        r, c = rr.astype(float), cc.astype(float)
        features = np.stack([r * r, r * c, c * c, r, c, np.ones_like(r)], axis=-1)  # (H, W, 6)
        return features @ coefficients


def _membrane_image(
    rng: np.random.Generator,
    h: int,
    w: int,
    cells: tuple[float, float],
    thickness: tuple[float, float],
    organelles: bool,
    noise: float,
    blur: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One ``(H, W)`` image, its mask, its cell labels and its organelle pixels; see
    `synthetic_membranes`."""
    # 1. cells, and the pixel grid after a smooth random displacement (amplitude about a
    # tenth of the cell spacing, correlation length about half of it)
    density = rng.uniform(*cells) / 128**2
    cell = _Cells(rng, h, w, density)
    spacing = 1.0 / np.sqrt(density)
    amplitude = rng.uniform(0.08, 0.15) * spacing
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    rr = (rr + amplitude * smooth_noise(rng, (h, w), 0.4 * spacing)).astype(np.float32)
    cc = (cc + amplitude * smooth_noise(rng, (h, w), 0.4 * spacing)).astype(np.float32)

    # each pixel's nearest cell (its label) and second-nearest cell (its neighbour)
    dist_sq = cell.distance_sq_all(rr, cc)  # (H, W, K)
    label = dist_sq.argmin(axis=-1)
    np.put_along_axis(dist_sq, label[..., None], np.inf, axis=-1)  # hide the nearest...
    other = dist_sq.argmin(axis=-1)  # ...to find the second nearest

    # 2. membranes. gap = d(other) - d(label) is 0 on the border between the two cells and
    # grows about linearly away from it, so gap / |grad gap| is the distance to the border.
    # The gradient is a central difference, evaluated for this pixel's pair of cells at the
    # displaced positions of the four neighbouring pixels (extrapolated past the edges).
    def gap(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.sqrt(cell.distance_sq(r, c, other)) - np.sqrt(cell.distance_sq(r, c, label))

    r_pad = np.pad(rr, 1, mode="reflect", reflect_type="odd")  # odd: linear extrapolation
    c_pad = np.pad(cc, 1, mode="reflect", reflect_type="odd")
    down, up = (slice(2, None), slice(1, -1)), (slice(None, -2), slice(1, -1))
    right, left = (slice(1, -1), slice(2, None)), (slice(1, -1), slice(None, -2))
    slope_r = (gap(r_pad[down], c_pad[down]) - gap(r_pad[up], c_pad[up])) / 2
    slope_c = (gap(r_pad[right], c_pad[right]) - gap(r_pad[left], c_pad[left])) / 2
    to_border = gap(rr, cc) / np.maximum(np.hypot(slope_r, slope_c), 0.1)  # in pixels

    # every border (pair of cells) gets its own thickness, which also wobbles along it
    k = len(cell)
    per_pair = rng.uniform(*thickness, (k, k))
    per_pair = np.triu(per_pair) + np.triu(per_pair, 1).T  # symmetric: one value per border
    width = per_pair[label, other] * (1.0 + 0.15 * smooth_noise(rng, (h, w), 4.0))
    membrane = to_border < width / 2

    # a safety net for the rare pixel (near where three cells meet) that touches another
    # cell without membrane in between: of two such neighbours, the lower/right one
    # becomes membrane, so that membranes always separate cells
    touch_r = (label[1:] != label[:-1]) & ~membrane[1:] & ~membrane[:-1]
    membrane[1:] |= touch_r
    touch_c = (label[:, 1:] != label[:, :-1]) & ~membrane[:, 1:] & ~membrane[:, :-1]
    membrane[:, 1:] |= touch_c

    # 3. the mask: 1 = cell interior, 0 = membrane
    mask = (~membrane).astype(np.float32)

    # 4. the image. Cell interiors: per-cell brightness (a few cells much darker), grain at
    # two scales, sparse dark specks, and a slow shading over the whole image.
    brightness = rng.uniform(0.6, 0.85, k)
    dark_cells = rng.random(k) < 0.15
    brightness[dark_cells] = rng.uniform(0.4, 0.55, dark_cells.sum())
    image = brightness[label]
    image += 0.07 * smooth_noise(rng, (h, w), 0.7)  # fine grain
    image += 0.05 * smooth_noise(rng, (h, w), 2.0)  # coarser mottling
    image -= 0.3 * np.clip(smooth_noise(rng, (h, w), 1.0) - 1.8, 0.0, 1.0)  # specks
    image += 0.05 * smooth_noise(rng, (h, w), 0.25 * (h + w))  # uneven illumination
    darkening = np.zeros((h, w))
    if organelles:
        darkening = _organelles(rng, to_border, width.max(), h, w, density)
        image *= 1.0 - darkening

    # membranes: dark, a little uneven, drawn with anti-aliased edges: coverage in [0, 1] is
    # the share of the pixel under the membrane, above 0.5 exactly where the mask is 0
    membrane_level = rng.uniform(0.1, 0.25) + 0.04 * smooth_noise(rng, (h, w), 3.0)
    coverage = np.clip(width / 2 + 0.5 - to_border, 0.0, 1.0)
    coverage[membrane] = np.maximum(coverage[membrane], 0.75)  # the safety net's pixels
    image = (1.0 - coverage) * image + coverage * membrane_level

    # the microscope: blur, then noise, then stretch the contrast to [0, 1]
    image = gaussian_blur(image, rng.uniform(*blur))
    image += noise * rng.uniform(0.7, 1.3) * rng.standard_normal((h, w))
    low, high = np.percentile(image, [0.5, 99.5])
    image = np.clip((image - low) / (high - low), 0.0, 1.0)
    organelle = (darkening >= ORGANELLE_DARKENING) & ~membrane
    return image.astype(np.float32), mask, label.astype(np.int32), organelle


def _organelles(
    rng: np.random.Generator,
    to_border: np.ndarray,
    max_width: float,
    h: int,
    w: int,
    density: float,
) -> np.ndarray:
    """Darkening in [0, 1] from elliptical organelles that lie wholly inside cells.

    About one organelle per cell: filled ellipses (mitochondria) and smaller dark rings
    (vesicles). Each is centred on a pixel far enough from every membrane that it fits
    inside its cell with a gap of at least 1.5 px to the membrane.
    """
    count = rng.poisson(1.0 * density * h * w)
    room = to_border - max_width / 2 - 1.5  # the largest radius that fits at each pixel
    candidates = np.flatnonzero(room > 1.5)
    if count == 0 or candidates.size == 0:
        return np.zeros((h, w))
    at = rng.choice(candidates, size=count)
    centre_r, centre_c = np.unravel_index(at, (h, w))
    ring = rng.random(count) < 0.4
    long_axis = np.where(ring, rng.uniform(1.5, 3.0, count), rng.uniform(2.5, 7.0, count))
    long_axis = np.minimum(long_axis, room.flat[at])
    roundness = np.where(ring, rng.uniform(0.7, 1.0, count), rng.uniform(0.4, 0.9, count))
    short_axis = long_axis * roundness
    angle = rng.uniform(0.0, np.pi, count)
    strength = rng.uniform(0.4, 0.75, count)

    # draw each organelle in a window around its centre, all at once: (count, 2R+1, 2R+1)
    reach = int(np.ceil(long_axis.max())) + 1
    offsets = np.arange(-reach, reach + 1)
    dr, dc = offsets[None, :, None], offsets[None, None, :]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    radius = np.hypot(  # elliptical radius: 1 on the outline
        (cos * dr + sin * dc) / long_axis[:, None, None],
        (-sin * dr + cos * dc) / short_axis[:, None, None],
    )
    filled = np.clip(3.0 * (1.0 - radius), 0.0, 1.0)  # flat top, soft edge
    hollow = np.clip(1.0 - np.abs(radius - 0.7) / 0.35, 0.0, 1.0)  # a dark ring
    darkness = strength[:, None, None] * np.where(ring[:, None, None], hollow, filled)

    # paste the windows into the image, keeping the darkest where they overlap
    rows = centre_r[:, None, None] + dr
    cols = centre_c[:, None, None] + dc
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    out = np.zeros(h * w)
    np.maximum.at(out, (rows * w + cols)[inside], darkness[inside])
    return out.reshape(h, w)


# -- the public function ---------------------------------------------------------------------------


def synthetic_membranes(
    n: int,
    size: int | tuple[int, int] = 128,
    seed: int | None = 0,
    *,
    cells: tuple[float, float] = (15.0, 40.0),
    thickness: tuple[float, float] = (1.5, 3.5),
    organelles: bool = True,
    noise: float = 0.08,
    blur: tuple[float, float] = (0.7, 1.3),
    return_labels: bool = False,
    classes: int = 2,
) -> tuple[np.ndarray, ...]:
    """EM-like images of cells and membranes, with exact masks (see the module docstring).

    Parameters
    ----------
    n : int
        Number of images.
    size : int or (int, int)
        Image size: ``size`` for square images or ``(height, width)``. Lengths are in pixels
        and do not scale with the size: a bigger image shows more cells, not bigger ones.
    seed : int or None
        Seed of the random generator: the same seed gives the same data, and image ``i``
        does not depend on ``n`` (each image has its own stream, spawned from the seed).
        ``None`` draws fresh data each call.
    cells : (float, float)
        Range of the number of cells per 128 x 128 pixels, drawn per image.
    thickness : (float, float)
        Range of membrane thickness in pixels, drawn per border between two cells. Below
        about 1.5 px, a diagonal membrane can leave two cells touching at a corner.
    organelles : bool
        Draw dark organelles inside the cells (they belong to the cell class, mask 1).
    noise : float
        Standard deviation of the additive Gaussian noise, before the contrast stretch
        (where cell interiors are about 0.55-0.9 and membranes about 0.1-0.25); it varies by
        +-30% per image.
    blur : (float, float)
        Range of the standard deviation, in pixels, of the Gaussian blur, drawn per image.
    return_labels : bool
        Also return the cell each pixel belongs to (membrane pixels: the nearest cell).
    classes : int
        2 (membrane 0, cell 1: the ISBI task) or 3, which marks the dark organelles as a
        class of their own: 0 membrane, 1 cell, 2 organelle (pixels darkened by at least
        ``ORGANELLE_DARKENING``), for training a multi-class UNet. The images are the same
        for both.

    Returns
    -------
    images : numpy.ndarray
        ``(n, H, W, 1)`` float32 in [0, 1] (each image stretched to fill the range).
    masks : numpy.ndarray
        ``(n, H, W, 1)`` float32, exactly 1.0 on cell interiors and 0.0 on membranes. About
        80% of the pixels are cells, as in the ISBI 2012 labels (78%). With ``classes=3``,
        the class labels 0.0, 1.0, 2.0 (organelles are about 2-3% of the pixels).
    labels : numpy.ndarray
        Only with ``return_labels=True``: ``(n, H, W)`` int32 cell numbers, for instance
        metrics such as the ISBI challenge's Rand error. Membranes separate different
        cells: two side-by-side pixels of different cells are never both mask 1.

    Examples
    --------
    >>> images, masks = synthetic_membranes(4, size=64, seed=1)
    >>> images.shape, masks.dtype
    ((4, 64, 64, 1), dtype('float32'))
    """
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    h, w = (size, size) if np.isscalar(size) else size
    if int(h) != h or int(w) != w or h < 8 or w < 8:
        raise ValueError(f"size must be an int or (height, width) of at least 8, got {size!r}")
    h, w = int(h), int(w)
    for name, (low, high) in {"cells": cells, "thickness": thickness, "blur": blur}.items():
        if not 0 <= low <= high:
            raise ValueError(f"{name} must be a range (low, high) with 0 <= low <= high")
    if cells[0] <= 0:
        raise ValueError(f"cells must be positive, got {cells!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if not np.isfinite(blur[1]) or blur[1] > max(h, w):
        raise ValueError(f"blur must be at most the image size ({max(h, w)} pixels), got {blur!r}")

    if classes not in (2, 3) or isinstance(classes, bool):
        raise ValueError(
            f"classes must be 2 (membrane, cell) or 3 (and organelle), got {classes!r}"
        )
    if classes == 3 and not organelles:
        raise ValueError("classes=3 marks the organelles as a class; it needs organelles=True")
    images = np.empty((int(n), h, w, 1), np.float32)
    masks = np.empty((int(n), h, w, 1), np.float32)
    labels = np.empty((int(n), h, w), np.int32)
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(int(n))):
        rng = np.random.default_rng(child)
        images[i, ..., 0], masks[i, ..., 0], labels[i], organelle = _membrane_image(
            rng, h, w, cells, thickness, organelles, noise, blur
        )
        if classes == 3:
            masks[i, ..., 0][organelle] = 2.0
    return (images, masks, labels) if return_labels else (images, masks)
