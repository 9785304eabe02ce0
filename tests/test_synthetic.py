"""synthetic_membranes: shapes, exact binary masks, thin membranes, seeding, and difficulty."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet.data.synthetic import gaussian_blur, gaussian_matrix, synthetic_membranes


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return synthetic_membranes(16, size=128, seed=0, return_labels=True)


def best_threshold_dice(images: np.ndarray, masks: np.ndarray) -> float:
    """The best cell-class Dice of ``images > t`` over 101 thresholds t in [0, 1]."""
    cells = masks > 0.5
    best = 0.0
    for t in np.linspace(0.0, 1.0, 101):
        predicted = images > t
        overlap = np.count_nonzero(predicted & cells)
        best = max(best, 2 * overlap / (np.count_nonzero(predicted) + np.count_nonzero(cells)))
    return best


def test_shapes_dtypes_and_ranges(data):
    images, masks, labels = data
    assert images.shape == masks.shape == (16, 128, 128, 1)
    assert labels.shape == (16, 128, 128)
    assert images.dtype == masks.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.min() == 0.0 and images.max() == 1.0  # the contrast is stretched


def test_non_square_and_small_sizes():
    images, masks = synthetic_membranes(2, size=(48, 80), seed=3)
    assert images.shape == masks.shape == (2, 48, 80, 1)
    assert synthetic_membranes(0)[0].shape == (0, 128, 128, 1)


def test_masks_are_exactly_binary(data):
    _, masks, _ = data
    assert set(np.unique(masks).tolist()) == {0.0, 1.0}


def test_cell_fraction_like_isbi(data):
    _, masks, _ = data
    per_image = masks.mean(axis=(1, 2, 3))
    assert 0.75 <= per_image.mean() <= 0.85  # ISBI 2012: 0.78
    assert per_image.min() >= 0.7 and per_image.max() <= 0.9


def test_membranes_are_dark(data):
    images, masks, _ = data
    assert images[masks == 0].mean() < images[masks == 1].mean() - 0.2


def test_same_seed_same_data_and_different_seeds_differ():
    a_images, a_masks = synthetic_membranes(3, size=64, seed=5)
    b_images, b_masks = synthetic_membranes(3, size=64, seed=5)
    np.testing.assert_array_equal(a_images, b_images)
    np.testing.assert_array_equal(a_masks, b_masks)
    c_images, c_masks = synthetic_membranes(3, size=64, seed=6)
    assert not np.array_equal(a_masks, c_masks)
    assert np.abs(a_images - c_images).mean() > 0.1
    assert not np.array_equal(a_masks[0], a_masks[1])  # images within a batch differ too


def test_image_i_does_not_depend_on_n():
    few, few_masks = synthetic_membranes(2, size=64, seed=9)
    many, many_masks = synthetic_membranes(5, size=64, seed=9)
    np.testing.assert_array_equal(few, many[:2])
    np.testing.assert_array_equal(few_masks, many_masks[:2])


def test_membranes_are_thin(data):
    """Every membrane pixel lies within 3 px (in rows and columns) of a cell pixel."""
    _, masks, _ = data
    cells = masks[..., 0] > 0.5
    reach = 3
    padded = np.pad(cells, ((0, 0), (reach, reach), (reach, reach)))
    near_cell = np.zeros_like(cells)
    h, w = cells.shape[1:]
    for dr in range(2 * reach + 1):
        for dc in range(2 * reach + 1):
            near_cell |= padded[:, dr : dr + h, dc : dc + w]
    assert near_cell.all()
    # ...and they are not all hairlines: a good share of membrane pixels is 2+ px from cells
    assert (~cells).mean() > 0.1


def test_membranes_separate_cells(data):
    """Two side-by-side pixels of different cells are never both cell (mask 1)."""
    _, masks, labels = data
    cells = masks[..., 0] > 0.5
    down = (labels[:, 1:] != labels[:, :-1]) & cells[:, 1:] & cells[:, :-1]
    right = (labels[:, :, 1:] != labels[:, :, :-1]) & cells[:, :, 1:] & cells[:, :, :-1]
    assert not down.any() and not right.any()
    assert all(len(np.unique(lab)) >= 10 for lab in labels)  # many cells per image


def test_thresholding_the_intensity_is_not_enough(data):
    """Organelles, blur and noise make a global threshold clearly imperfect (ISBI: ~0.89)."""
    images, masks, _ = data
    dice = best_threshold_dice(images, masks)
    assert 0.8 < dice < 0.95


def test_without_organelles_or_noise_thresholding_is_easier(data):
    images, masks, _ = data
    easy_images, easy_masks = synthetic_membranes(16, seed=0, organelles=False, noise=0.0)
    np.testing.assert_array_equal(easy_masks, masks)  # the options change only the image
    assert best_threshold_dice(easy_images, easy_masks) > best_threshold_dice(images, masks)


def test_gaussian_blur_keeps_constants_and_the_mean_of_an_impulse():
    constant = np.full((9, 12), 0.3)
    np.testing.assert_allclose(gaussian_blur(constant, 2.0), constant)
    impulse = np.zeros((31, 31))
    impulse[15, 15] = 1.0
    blurred = gaussian_blur(impulse, 2.0)
    assert blurred.sum() == pytest.approx(1.0)
    assert blurred.argmax() == impulse.argmax()
    np.testing.assert_allclose(blurred, blurred.T)  # the same blur along rows and columns
    np.testing.assert_allclose(gaussian_matrix(7, 50.0).sum(axis=1), 1.0)  # wider than signal
    np.testing.assert_array_equal(gaussian_matrix(5, 0.0), np.eye(5))


@pytest.mark.parametrize(
    "kwargs",
    [dict(n=-1), dict(n=2, size=4), dict(n=2, cells=(0, 10)), dict(n=2, noise=-0.1)],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        synthetic_membranes(**kwargs)
