"""weight_map: the fast version equals the brute-force reference; class balance; separation."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet.data.weight_map import (
    TOLERANCE,
    truncation_radius,
    weight_map,
    weight_map_bruteforce,
)
from numpy_unet.metrics import connected_components


def voronoi_mask(rng: np.random.Generator, shape: tuple[int, int], n_cells: int) -> np.ndarray:
    """Voronoi cells separated by 1-2 px membranes; cells touch the image border."""
    centres = rng.uniform(0, 1, (n_cells, 2)) * np.array(shape)
    r, c = np.indices(shape)
    label, nearest = np.zeros(shape, dtype=int), np.full(shape, np.inf)
    for k, (cr, cc) in enumerate(centres):  # the nearest centre of every pixel
        d = (r - cr) ** 2 + (c - cc) ** 2
        label[d < nearest] = k
        nearest = np.minimum(nearest, d)
    mask = np.ones(shape, dtype=np.float32)
    mask[:, :-1][label[:, :-1] != label[:, 1:]] = 0  # membrane left of each vertical border
    mask[:-1][label[:-1] != label[1:]] = 0
    if rng.random() < 0.5:  # thicker membranes on one side
        mask[:, 1:][label[:, :-1] != label[:, 1:]] = 0
    return mask


def random_masks(seed: int):
    """Masks of odd, even and non-square sizes with 0, 1, 2 and many cells."""
    rng = np.random.default_rng(seed)
    yield np.zeros((5, 6))  # no cell
    yield np.ones((6, 5), dtype=int)  # one cell, no background
    yield (rng.random((7, 7)) < 0.5).astype(bool)  # noise: many tiny cells
    for shape, n in [
        ((12, 17), 2),
        ((20, 13), 5),
        ((31, 24), 9),
        ((1, 9), 3),
        ((16, 16), 1),
        ((37, 40), 14),
    ]:
        yield voronoi_mask(rng, shape, n)
    blob = np.zeros((18, 22))
    blob[4:9, 3:12] = 1  # one blob away from the border
    yield blob


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_version_equals_bruteforce(seed):
    for i, mask in enumerate(random_masks(seed)):
        w0, sigma = [(10.0, 5.0), (3.0, 2.0), (25.0, 8.0)][(i + seed) % 3]
        fast = weight_map(mask, w0=w0, sigma=sigma)
        slow = weight_map_bruteforce(mask, w0=w0, sigma=sigma)
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5, err_msg=f"mask {i}")
        assert fast.dtype == np.float32 and slow.dtype == np.float32
        assert fast.shape == mask.shape


def test_truncation_radius_bound_and_far_apart_cells():
    R = truncation_radius(10.0, 5.0)
    assert R == 29
    assert 10 * np.exp(-(R**2) / 50) <= TOLERANCE < 10 * np.exp(-((R - 1) ** 2) / 50)
    assert truncation_radius(0.0, 5.0) == 0
    # cells further apart than R = 6 (sigma = 1): the windows do not overlap everywhere
    mask = np.zeros((40, 45))
    mask[2:6, 2:6] = mask[20:24, 30:40] = mask[33:38, 5:9] = mask[10, 20] = 1
    fast = weight_map(mask, sigma=1.0)
    slow = weight_map_bruteforce(mask, sigma=1.0)
    assert np.abs(fast - slow).max() <= TOLERANCE + 1e-6


def test_hand_computed_example():
    mask = np.array([[1, 0, 1]])  # two one-pixel cells, one membrane pixel between them
    separation = 10 * np.exp(-((1 + 1) ** 2) / (2 * 5.0**2))
    expected = np.array([[0.75, 1.5 + separation, 0.75]])  # 0.5 * 3 / 2 and 0.5 * 3 / 1
    for f in (weight_map, weight_map_bruteforce):
        np.testing.assert_allclose(f(mask), expected, rtol=1e-6)


def test_mask_forms_give_the_same_result():
    mask = voronoi_mask(np.random.default_rng(3), (15, 18), 4)
    expected = weight_map(mask)
    for form in (
        mask.astype(bool),
        mask.astype(np.int64),
        mask.astype(np.float64),
        mask[..., None],
    ):
        np.testing.assert_array_equal(weight_map(form), expected)


def test_class_weights_balance_the_classes_and_average_to_one():
    rng = np.random.default_rng(4)
    for _ in range(5):
        mask = voronoi_mask(rng, tuple(rng.integers(8, 40, 2)), int(rng.integers(2, 8)))
        w = weight_map(mask, w0=0).astype(np.float64)
        assert w.mean() == pytest.approx(1.0, rel=1e-6)
        cells = mask == 1
        assert w[cells].sum() == pytest.approx(w[~cells].sum(), rel=1e-6)  # half each
    for one_class in (np.zeros((4, 5)), np.ones((4, 5))):
        np.testing.assert_array_equal(weight_map(one_class), np.ones((4, 5), np.float32))


def test_explicit_class_weights():
    mask = voronoi_mask(np.random.default_rng(5), (20, 21), 5)
    cells = mask == 1
    w = weight_map(mask, w0=0, class_weights=(2.0, 0.5))
    assert np.all(w[cells] == 0.5) and np.all(w[~cells] == 2.0)
    w = weight_map(mask, class_weights=(2.0, 0.5))
    assert np.all(w[cells] == 0.5) and np.all(w[~cells] > 2.0)  # separation on background


def test_separation_is_zero_on_cells_and_largest_on_thin_membranes():
    mask = np.ones((30, 50))
    mask[:, 10] = 0  # thin membrane between the left and the middle cell
    mask[:, 25:35] = 0  # wide gap between the middle and the right cell
    assert connected_components(mask)[1] == 3
    separation = weight_map(mask) - weight_map(mask, w0=0)
    assert np.all(separation[mask == 1] == 0)
    assert np.all(separation[mask == 0] > 0)
    thin, wide_middle = separation[:, 10], separation[:, 29]
    assert np.all(thin > 8.0) and np.all(thin > 10 * wide_middle)
    assert np.unravel_index(separation.argmax(), mask.shape)[1] == 10
    one_cell = np.zeros((10, 12))
    one_cell[2:5, 3:9] = 1  # fewer than two cells: no separation term
    np.testing.assert_array_equal(weight_map(one_cell), weight_map(one_cell, w0=0))


@pytest.mark.parametrize(
    "mask, match",
    [
        (np.zeros((4, 5, 2)), r"weight_map: mask must be a non-empty \(H, W\).*\(4, 5, 2\)"),
        (np.zeros(5), r"\(H, W\) or \(H, W, 1\).*\(5,\)"),
        (np.zeros((0, 3)), "non-empty"),
        (np.full((3, 3), 0.5), r"only 0 .* and 1 .*got also \[0.5\]"),
        (np.array([[0, 255]]), r"got also \[255\].*divide a 0/255 mask by 255"),
        (np.array([[0.0, np.nan]]), "only 0"),
        (np.array([["a", "b"]]), "bool, int or float"),
    ],
)
def test_bad_masks(mask, match):
    with pytest.raises(ValueError, match=match):
        weight_map(mask)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"w0": -1.0}, "w0 must be a finite number >= 0"),
        ({"w0": np.nan}, "w0"),
        ({"w0": "ten"}, "w0 must be a number"),
        ({"sigma": 0.0}, "sigma must be a finite number > 0"),
        ({"sigma": -2.0}, "sigma"),
        ({"class_weights": (1.0,)}, r"class_weights must be two positive finite numbers"),
        ({"class_weights": (1.0, 0.0)}, "class_weights"),
        ({"class_weights": (1.0, np.inf)}, "class_weights"),
        ({"class_weights": "ab"}, "class_weights"),
        ({"class_weights": 3.0}, "class_weights"),
    ],
)
def test_bad_arguments(kwargs, match):
    for f in (weight_map, weight_map_bruteforce):
        with pytest.raises(ValueError, match=f"{f.__name__}: {match}"):
            f(np.ones((3, 3)), **kwargs)


def test_large_mask_with_about_a_hundred_cells_runs():
    mask = voronoi_mask(np.random.default_rng(6), (512, 512), 100)
    assert 90 <= connected_components(mask)[1] <= 100
    w = weight_map(mask)
    assert w.shape == (512, 512) and w.dtype == np.float32
    assert np.isfinite(w).all() and w.min() > 0
    assert w[mask == 0].max() > 10  # thin membranes between neighbouring cells
