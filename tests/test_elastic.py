"""Elastic deformation: exact identity, binary masks, seeding, the smooth field, Compose."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet.data import Augmenter, Compose, ElasticDeformation, elastic_deform
from numpy_unet.data.elastic import apply_elastic, displacement_field, elastic_displacement
from numpy_unet.data.synthetic import synthetic_membranes


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_membranes(4, size=(48, 40), seed=0)


@pytest.mark.parametrize("seed", range(4))
def test_masks_stay_exactly_binary(batch, seed):
    images, masks = batch
    masks2 = np.concatenate([masks, 1 - masks], axis=-1)  # two channels
    _, out = ElasticDeformation(sigma=10.0 + 5 * seed, seed=seed)(images, masks2)
    assert set(np.unique(out).tolist()) == {0.0, 1.0}
    assert not np.array_equal(out, masks2)


@pytest.mark.parametrize("shape, grid", [((48, 40), 3), ((17, 23), 5), ((2, 3), 2)])
def test_zero_displacement_is_the_exact_identity(shape, grid):
    rng = np.random.default_rng(1)
    images = rng.standard_normal((2, *shape, 3)).astype(np.float32)
    masks = (rng.random((2, *shape, 1)) < 0.5).astype(np.float64)
    out_images, out_masks = ElasticDeformation(sigma=0, grid=grid, seed=0)(images, masks)
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_masks, masks)
    assert not np.shares_memory(out_images, images)
    image, mask = elastic_deform(images[0], masks[0], sigma=0.0, grid=grid, rng=0)
    np.testing.assert_array_equal(image, images[0])
    np.testing.assert_array_equal(mask, masks[0])


def test_same_seed_same_output_different_seed_different(batch):
    images, masks = batch
    a = ElasticDeformation(seed=7)(images, masks)
    b = ElasticDeformation(seed=7)(images, masks)
    c = ElasticDeformation(seed=8)(images, masks)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(
        elastic_deform(images[0], masks[0], rng=3)[0], elastic_deform(images[0], masks[0], rng=3)[0]
    )


def test_displacements_are_drawn_per_image_with_the_given_sigma(batch):
    images, masks = batch
    augment = ElasticDeformation(sigma=4.0, grid=4, seed=0)
    augment(images, masks)
    assert augment.last_displacements.shape == (4, 4, 4, 2)
    assert not np.array_equal(augment.last_displacements[0], augment.last_displacements[1])
    draws = np.stack([augment.sample() for _ in range(300)])
    assert draws.std() == pytest.approx(4.0, rel=0.05) and abs(draws.mean()) < 0.2


@pytest.mark.parametrize("shape, grid", [((65, 49), 3), ((65, 49), 5), ((9, 31), 2)])
def test_field_passes_through_the_grid_and_is_smooth(shape, grid):
    h, w = shape
    d = np.random.default_rng(2).normal(0, 10, (grid, grid, 2))
    field = displacement_field(shape, d)
    assert field.shape == (h, w, 2)
    nodes = field[:: (h - 1) // (grid - 1), :: (w - 1) // (grid - 1)]  # the grid points
    np.testing.assert_allclose(nodes, d, rtol=0, atol=1e-12)
    # a natural cubic spline's slope is at most 6 max|d| per grid spacing; a field that
    # jumped at the nodes (e.g. nearest-grid-point) would break this
    spacing = min((h - 1) / (grid - 1), (w - 1) / (grid - 1))
    bound = 6 * np.abs(d).max() / spacing
    assert np.abs(np.diff(field, axis=0)).max() <= bound
    assert np.abs(np.diff(field, axis=1)).max() <= bound
    assert np.abs(np.diff(field, 2, axis=0)).max() <= 2 * bound / spacing  # no kinks
    rows, cols = elastic_displacement(shape, d)
    r, c = np.indices(shape)
    np.testing.assert_allclose(rows, r - field[..., 0])
    np.testing.assert_allclose(cols, c - field[..., 1])


def test_linear_field_is_reproduced_exactly():
    i, j = np.meshgrid(np.arange(4.0), np.arange(4.0), indexing="ij")
    d = np.stack([2 * i - j, 0.5 * j + 1], axis=-1)  # linear in the grid coordinates
    field = displacement_field((31, 28), d)
    t_r = np.arange(31) * 3 / 30
    t_c = np.arange(28) * 3 / 27
    expected_rows = 2 * t_r[:, None] - t_c[None, :]
    np.testing.assert_allclose(field[..., 0], expected_rows, atol=1e-12)
    np.testing.assert_allclose(field[..., 1], np.broadcast_to(0.5 * t_c + 1, (31, 28)))


def test_a_constant_shift_moves_the_picture_down():
    rng = np.random.default_rng(3)
    image = rng.random((20, 16, 1))
    mask = (rng.random((20, 16, 1)) < 0.5).astype(np.float32)
    d = np.zeros((3, 3, 2))
    d[..., 0] = 3.0  # 3 pixels down everywhere
    out_image, out_mask = apply_elastic(image, mask, d)
    np.testing.assert_allclose(out_image[3:], image[:-3], atol=1e-12)
    np.testing.assert_array_equal(out_mask[3:], mask[:-3])
    np.testing.assert_allclose(out_image[:3], image[3:0:-1], atol=1e-12)  # mirrored border


def test_constant_image_stays_constant_and_values_stay_in_range(batch):
    images, masks = batch
    constant = np.ones_like(images) * np.array([0.3], np.float32)
    out, _ = ElasticDeformation(sigma=15, seed=4)(constant, masks)
    np.testing.assert_array_equal(out, constant)
    sharp = (images > 0.5).astype(np.float32)  # sharp edges: cubic overshoot gets clipped
    out, _ = ElasticDeformation(sigma=15, seed=4)(sharp, masks)
    assert out.min() == 0.0 and out.max() == 1.0 and len(np.unique(out)) > 2


def test_image_and_mask_move_together(batch):
    _, masks = batch
    out_images, out_masks = ElasticDeformation(seed=5)(masks, masks)
    agree = np.mean((out_images >= 0.5) == (out_masks == 1))
    assert agree > 0.97


@pytest.mark.parametrize(
    "image_dtype, mask_dtype", [(np.float32, np.float32), (np.float64, bool), (np.uint8, np.uint8)]
)
def test_shapes_and_dtypes_are_kept(batch, image_dtype, mask_dtype):
    images, masks = batch
    images = (images * 255).astype(image_dtype) if image_dtype == np.uint8 else images
    images, masks = images.astype(image_dtype), masks.astype(mask_dtype)
    out_images, out_masks = ElasticDeformation(seed=6)(images, masks)
    assert out_images.shape == images.shape and out_images.dtype == image_dtype
    assert out_masks.shape == masks.shape and out_masks.dtype == mask_dtype
    image, mask = elastic_deform(images[0], masks[0], rng=0)
    assert image.dtype == image_dtype and mask.dtype == mask_dtype


def test_compose_applies_both_with_one_shared_generator(batch):
    images, masks = batch
    augment = Compose(Augmenter(seed=0), ElasticDeformation(), seed=1)
    assert all(part.rng is augment.rng for part in augment.augmenters)
    shared = np.random.default_rng(1)  # the same chain, written out by hand
    flip, warp = Augmenter(seed=shared), ElasticDeformation(seed=shared)
    expected = warp(*flip(images, masks))
    out = augment(images, masks)
    np.testing.assert_array_equal(out[0], expected[0])
    np.testing.assert_array_equal(out[1], expected[1])
    assert augment.augmenters[0].last_transforms and len(augment.augmenters[1].last_displacements)
    assert (
        repr(augment)
        == f"Compose({augment.augmenters[0]!r}, ElasticDeformation(sigma=10.0, grid=3))"
    )


def test_compose_one_rng_state_reproduces_a_run(batch):
    images, masks = batch
    augment = Compose(Augmenter(), ElasticDeformation(sigma=5), seed=2)
    augment(images, masks)  # somewhere in the middle of a run
    state = augment.rng.bit_generator.state  # what the training checkpoint saves
    first = augment(images, masks)
    augment.rng.bit_generator.state = state  # what resuming restores
    again = augment(images, masks)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    augment.rng = np.random.default_rng(9)  # a new generator reaches every part
    assert all(part.rng is augment.rng for part in augment.augmenters)


def test_compose_errors():
    with pytest.raises(ValueError, match="Compose: expected at least one augmenter"):
        Compose()
    with pytest.raises(TypeError, match=r"Compose: every part .* \.rng attribute"):
        Compose(ElasticDeformation(), lambda images, masks: (images, masks))
    with pytest.raises(TypeError, match="Compose: rng must be a numpy Generator"):
        Compose(ElasticDeformation()).rng = 3


def test_bad_inputs(batch):
    images, masks = batch
    augment = ElasticDeformation(seed=0)
    with pytest.raises(ValueError, match=r"ElasticDeformation: expected images and masks of shape"):
        augment(images[0], masks[0])
    with pytest.raises(ValueError, match="must have the same number, height and width"):
        augment(images, masks[:, :-1])
    with pytest.raises(ValueError, match="at least 2 x 2"):
        augment(images[:, :1], masks[:, :1])
    with pytest.raises(ValueError, match=r"masks must hold only 0 and 1.*\[0, 255\]"):
        augment(images, masks * 255)
    with pytest.raises(ValueError, match=r"elastic_deform: expected an image and a mask"):
        elastic_deform(images, masks)
    with pytest.raises(ValueError, match="elastic_deform: sigma"):
        elastic_deform(images[0], masks[0], sigma=-1)
    for kwargs, match in [
        ({"sigma": -1.0}, "sigma must be a finite number of pixels >= 0"),
        ({"sigma": np.inf}, "sigma"),
        ({"sigma": "10"}, "sigma must be a finite number"),
        ({"grid": 1}, r"grid must be an integer >= 2"),
        ({"grid": 3.0}, "grid"),
    ]:
        with pytest.raises(ValueError, match=f"ElasticDeformation: {match}"):
            ElasticDeformation(**kwargs)
    with pytest.raises(ValueError, match=r"displacement_field: displacements must be"):
        displacement_field((10, 10), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"displacement_field: shape must be"):
        displacement_field((1, 10), np.zeros((3, 3, 2)))
