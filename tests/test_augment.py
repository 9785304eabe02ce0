"""Augmenter: image and mask transformed together, masks stay binary, seeding, conventions."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet.data.augment import (
    Augmenter,
    Transform,
    apply_transform,
    augment_batch,
    source_coordinates,
)
from numpy_unet.data.synthetic import synthetic_membranes

STRONG = dict(shift=0.2, shear=15.0, zoom=0.2)  # large enough to see every part act


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_membranes(6, size=64, seed=0)


def test_disabled_augmenter_is_the_exact_identity(batch):
    images, masks = batch
    augment = Augmenter(flips=False, rotations=False, shift=0, shear=0, zoom=0, seed=0)
    out_images, out_masks = augment(images, masks)
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_masks, masks)
    assert out_images is not images and not np.shares_memory(out_images, images)


def test_default_augmenter_changes_images_and_keeps_shapes_and_dtypes(batch):
    images, masks = batch
    out_images, out_masks = Augmenter(seed=0)(images, masks)
    assert out_images.shape == images.shape and out_masks.shape == masks.shape
    assert out_images.dtype == np.float32 and out_masks.dtype == np.float32
    assert not np.array_equal(out_images, images)
    assert out_images.min() >= 0.0 and out_images.max() <= 1.0


@pytest.mark.parametrize("options", [{}, STRONG])
def test_masks_stay_exactly_binary(batch, options):
    images, masks = batch
    _, out_masks = Augmenter(seed=1, **options)(images, masks)
    assert set(np.unique(out_masks).tolist()) == {0.0, 1.0}


def test_flips_and_rotations_move_image_and_mask_identically(batch):
    _, masks = batch
    augment = Augmenter(shift=0, shear=0, zoom=0, seed=2)
    out_images, out_masks = augment(masks, masks)  # the "image" is the mask itself
    np.testing.assert_array_equal(out_images, out_masks)
    assert {t.rot90 for t in augment.last_transforms} != {0}  # rotations did happen


def test_affine_moves_image_and_mask_identically_up_to_interpolation(batch):
    _, masks = batch
    augment = Augmenter(seed=3, **STRONG)
    out_images, out_masks = augment(masks, masks)
    image_cells = out_images > 0.5
    mask_cells = out_masks > 0.5
    disagree = image_cells != mask_cells
    assert disagree.mean() < 0.02
    # bilinear and nearest differ only on the edges of the shapes: wherever they disagree,
    # the mask has both values within one pixel
    padded = np.pad(mask_cells[..., 0], ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = mask_cells.shape[1:3]
    windows = [padded[:, r : r + h, c : c + w] for r in range(3) for c in range(3)]
    edge = np.any(windows, axis=0) & ~np.all(windows, axis=0)
    assert edge[disagree[..., 0]].all()


def test_same_seed_same_result_and_resuming_from_the_rng_state(batch):
    images, masks = batch
    first = Augmenter(seed=4)(images, masks)
    second = Augmenter(seed=4)(images, masks)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(Augmenter(seed=5)(images, masks)[0], first[0])

    augment = Augmenter(seed=6)
    augment(images, masks)
    state = augment.rng.bit_generator.state  # a training loop checkpoints this...
    expected = augment(images, masks)
    resumed = Augmenter(seed=123)
    resumed.rng.bit_generator.state = state  # ...and restores it to resume exactly
    np.testing.assert_array_equal(resumed(images, masks)[0], expected[0])


def test_each_image_gets_its_own_transform(batch):
    images, masks = batch
    same = np.repeat(images[:1], 6, axis=0)
    augment = Augmenter(seed=7)
    out, _ = augment(same, np.repeat(masks[:1], 6, axis=0))
    assert len(set(augment.last_transforms)) == 6
    assert not np.array_equal(out[0], out[1])


def test_options_do_not_change_each_others_draws(batch):
    images, masks = batch
    full = Augmenter(seed=8)
    no_flips = Augmenter(flips=False, seed=8)
    full(images, masks)
    no_flips(images, masks)
    for a, b in zip(full.last_transforms, no_flips.last_transforms):
        assert (a.rot90, a.shift, a.shear, a.zoom) == (b.rot90, b.shift, b.shear, b.zoom)
        assert not b.flip_h and not b.flip_v


def test_flips_and_quarter_turn_of_a_known_array():
    x = np.arange(6, dtype=np.float32).reshape(2, 3, 1)  # [[0, 1, 2], [3, 4, 5]]
    flipped, _ = apply_transform(x, x, Transform(flip_h=True))
    np.testing.assert_array_equal(flipped[..., 0], [[2, 1, 0], [5, 4, 3]])
    flipped, _ = apply_transform(x, x, Transform(flip_v=True))
    np.testing.assert_array_equal(flipped[..., 0], [[3, 4, 5], [0, 1, 2]])
    turned, _ = apply_transform(x, x, Transform(rot90=1))  # counter-clockwise
    np.testing.assert_array_equal(turned[..., 0], [[2, 5], [1, 4], [0, 3]])


def test_non_square_images_keep_their_shape():
    images, masks = synthetic_membranes(8, size=(32, 48), seed=1)
    augment = Augmenter(seed=9)
    out_images, out_masks = augment(images, masks)
    assert out_images.shape == out_masks.shape == (8, 32, 48, 1)
    assert {t.rot90 for t in augment.last_transforms} == {0, 2}


def test_shift_moves_a_pattern_by_the_expected_pixels():
    image = np.zeros((32, 32, 1), np.float32)
    image[10, 12] = 1.0
    moved_image, moved_mask = apply_transform(image, image, Transform(shift=(3.0, -5.0)))
    expected = np.zeros_like(image)
    expected[13, 7] = 1.0  # 3 rows down, 5 columns left
    np.testing.assert_array_equal(moved_image, expected)  # whole pixels: bilinear is exact
    np.testing.assert_array_equal(moved_mask, expected)

    half, _ = apply_transform(image, image, Transform(shift=(0.0, 0.5)))
    assert half[10, 12, 0] == half[10, 13, 0] == 0.5  # half a pixel: shared by two pixels


def test_augmenter_shift_is_a_fraction_of_the_size_and_edges_repeat():
    columns = np.arange(40)
    ramp = np.broadcast_to(columns[:, None] + 1.0, (8, 40, 40, 1)).astype(np.float32)
    augment = Augmenter(flips=False, rotations=False, shift=0.25, shear=0, zoom=0, seed=10)
    out, _ = augment(ramp, ramp)
    for image, t in zip(out, augment.last_transforms):
        shift_r, shift_c = t.shift
        assert abs(shift_r) <= 10 and abs(shift_c) <= 10  # 0.25 * 40 = 10 pixels
        row = image[20, :, 0]
        source = columns - shift_c  # each output column reads this input column
        inside = (source >= 0) & (source <= 39)
        np.testing.assert_allclose(row[inside], source[inside] + 1, atol=1e-4)
        # past the edges, the edge pixel repeats (fill_mode="nearest"), no zeros
        assert (row[source < 0] == 1.0).all() and (row[source > 39] == 40.0).all()
    assert max(abs(t.shift[1]) for t in augment.last_transforms) > 3


def test_zoom_above_one_zooms_out_like_keras():
    square = np.zeros((33, 33, 1), np.float32)
    square[12:21, 12:21] = 1.0  # 9 x 9, centred
    _, smaller = apply_transform(square, square, Transform(zoom=(1.5, 1.5)))
    assert smaller.sum() == pytest.approx(81 / 1.5**2, rel=0.2)
    assert smaller[16, 16, 0] == 1.0  # the centre stays put


def test_shear_is_in_degrees():
    rows, cols = source_coordinates((5, 5), shear=60.0)
    # columns are scaled by cos(60 degrees) = 0.5 about the centre (2, 2)...
    np.testing.assert_allclose(cols[0], 2 + 0.5 * (np.arange(5) - 2))
    # ...and rows slide by -sin(60 degrees) per column from the centre
    np.testing.assert_allclose(rows[2], 2 - np.sin(np.pi / 3) * (np.arange(5) - 2))


def test_augment_batch_is_a_one_shot_augmenter(batch):
    images, masks = batch
    a = augment_batch(images, masks, seed=11, shear=5.0)
    b = Augmenter(seed=11, shear=5.0)(images, masks)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize(
    "images, masks",
    [
        (np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 9, 1))),  # different sizes
        (np.zeros((8, 8, 1)), np.zeros((8, 8, 1))),  # no batch axis
    ],
)
def test_bad_inputs_raise(images, masks):
    with pytest.raises(ValueError):
        Augmenter(seed=0)(images, masks)


@pytest.mark.parametrize("options", [dict(shift=1.5), dict(zoom=-0.1), dict(shear=90)])
def test_bad_options_raise(options):
    with pytest.raises(ValueError):
        Augmenter(**options)
