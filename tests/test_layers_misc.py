"""UpSampling2D, Concatenate, Cropping2D, Dropout and the activations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from numpy_unet import gradcheck
from numpy_unet.gradcheck import away_from_kinks
from numpy_unet.layers import (
    Concatenate,
    Cropping2D,
    Dropout,
    ReLU,
    Sigmoid,
    Softmax,
    UpSampling2D,
)

SIZES = [(3, 4), (4, 3), (5, 5), (2, 6)]


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("size", [2, 3, (2, 3)])
def test_upsampling(hw, size, rng):
    x = rng.standard_normal((2, *hw, 3))
    layer = UpSampling2D(size)
    y = layer.forward(x)
    sh, sw = (size, size) if isinstance(size, int) else size
    assert y.shape == (2, hw[0] * sh, hw[1] * sw, 3)
    assert y[0, sh * 1 + sh - 1, sw * 2 + sw - 1, 1] == x[0, 1, 2, 1]  # nearest neighbour
    report = gradcheck(layer, x)
    assert report.passed and report.max_rel_error < 1e-6


def test_upsampling_backward_sums_the_block():
    layer = UpSampling2D(2)
    layer.forward(np.zeros((1, 1, 1, 1)))
    dy = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    assert layer.backward(dy).item() == 10.0  # not 1.0: every copy contributed


@pytest.mark.parametrize("hw", SIZES)
def test_concatenate_skip_first(hw, rng):
    skip, up = rng.standard_normal((2, *hw, 3)), rng.standard_normal((2, *hw, 5))
    layer = Concatenate(axis=-1)
    y = layer.forward([skip, up])
    np.testing.assert_array_equal(y[..., :3], skip)
    np.testing.assert_array_equal(y[..., 3:], up)
    dy = rng.standard_normal(y.shape)
    d_skip, d_up = layer.backward(dy)
    np.testing.assert_array_equal(d_skip, dy[..., :3])
    np.testing.assert_array_equal(d_up, dy[..., 3:])
    report = gradcheck(layer, [skip, up])
    assert report.passed and [c.name for c in report.checks] == ["input 0", "input 1"]


def test_concatenate_three_inputs_other_axis(rng):
    xs = [rng.standard_normal((1, h, 4, 2)) for h in (2, 3, 1)]
    layer = Concatenate(axis=1)
    assert layer.forward(xs).shape == (1, 6, 4, 2)
    assert gradcheck(layer, xs).passed


@pytest.mark.parametrize(
    ("cropping", "expected"),
    [(1, ((1, 1), (1, 1))), ((2, 1), ((2, 2), (1, 1))), (((0, 2), (1, 0)), ((0, 2), (1, 0)))],
)
def test_cropping_spellings_and_gradient(cropping, expected, rng):
    layer = Cropping2D(cropping)
    assert layer.cropping == expected
    x = rng.standard_normal((2, 7, 6, 2))
    (t, b), (left, r) = expected
    np.testing.assert_array_equal(layer.forward(x), x[:, t : 7 - b, left : 6 - r])
    assert gradcheck(layer, x).passed


def test_dropout_is_identity_at_inference(rng):
    x = rng.standard_normal((2, 4, 4, 3))
    layer = Dropout(0.5, seed=0)
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_dropout_is_inverted_and_keeps_the_mean():
    x = np.ones((4, 64, 64, 8))
    y = Dropout(0.5, seed=0).forward(x, training=True)
    assert set(np.unique(y)) == {0.0, 2.0}  # kept values are scaled by 1 / (1 - rate)
    assert abs(y.mean() - 1.0) < 0.02
    y = Dropout(0.2, seed=0).forward(x, training=True)
    assert abs((y == 0).mean() - 0.2) < 0.01


def test_dropout_seeds_reproduce_masks_across_layers_and_dtypes():
    x = np.ones((2, 8, 8, 4))
    a, b, c = Dropout(0.5, seed=42), Dropout(0.5, seed=42), Dropout(0.5, seed=43)
    first = a.forward(x, training=True)
    assert np.array_equal(first, b.forward(x.astype(np.float32), training=True))
    assert not np.array_equal(first, c.forward(x, training=True))
    assert not np.array_equal(first, a.forward(x, training=True))  # a new mask every call


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_gradcheck_in_training(seed, rate, rng):
    x = rng.standard_normal((2, 5, 4, 3))
    layer = Dropout(rate, seed=seed)
    report = gradcheck(layer, x, training=True)
    assert report.passed and report.max_rel_error < 1e-6
    layer.forward(x, training=True)
    mask = layer.backward(np.ones_like(x))
    assert 0 < (mask == 0).sum() < x.size  # the check really ran with a mask


@pytest.mark.parametrize("layer_cls", [ReLU, Sigmoid, Softmax])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2), (7,)])
def test_activation_gradcheck(layer_cls, shape, rng):
    x = away_from_kinks(2 * rng.standard_normal(shape))
    report = gradcheck(layer_cls(), x)
    assert report.passed and report.max_rel_error < 1e-6


def test_activations_are_stable_at_extreme_inputs():
    x = np.array([-1e4, -800.0, -30.0, 0.0, 30.0, 800.0, 1e4]).reshape(1, 1, 7, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow or divide warning fails the test
        s = Sigmoid().forward(x).ravel()
        sm = Softmax().forward(x.reshape(1, 1, 1, 7)).ravel()
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
    assert np.isclose(sm.sum(), 1.0) and sm[-1] == pytest.approx(1.0)
    np.testing.assert_array_equal(ReLU().forward(x).ravel(), [0, 0, 0, 0, 30, 800, 1e4])


def test_relu_gradient_at_zero_is_zero():
    layer = ReLU()
    layer.forward(np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(layer.backward(np.ones(3)), [0.0, 0.0, 1.0])


def test_softmax_sums_to_one_over_channels(rng):
    y = Softmax().forward(rng.standard_normal((2, 3, 3, 4)))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0)


@pytest.mark.parametrize(
    "layer", [UpSampling2D(2), Cropping2D(1), Dropout(0.5, seed=0), ReLU(), Sigmoid(), Softmax()]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(layer, dtype, rng):
    x = rng.standard_normal((2, 4, 4, 3)).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    assert layer.backward(np.ones_like(y)).dtype == dtype
