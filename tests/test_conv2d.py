"""Conv2D: the readable im2col and the loops agree; Keras's padding, initializers, gradients.
(The speed engine's algorithms for the same layer: ``test_engine_kernels.py``.)"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from numpy_unet import gradcheck
from numpy_unet.gradcheck import away_from_kinks
from numpy_unet.layers import Conv2D
from numpy_unet.layers.loops import conv2d_backward_loops, conv2d_forward_loops

CONFIGS = list(itertools.product((1, 2, 3), ("same", "valid"), ((5, 6), (6, 5), (4, 4), (7, 3))))


@pytest.mark.parametrize(("k", "padding", "hw"), CONFIGS)
def test_conv_equals_loops(k, padding, hw, rng):
    x = rng.standard_normal((2, *hw, 3))
    conv = Conv2D(4, k, padding=padding, dtype="float64", seed=1)
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(4)
    y = conv.forward(x)
    z = conv2d_forward_loops(x, conv.params["kernel"], conv.params["bias"], padding)
    np.testing.assert_allclose(y, z, rtol=1e-12, atol=1e-12)

    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    dx_ref, dk_ref, db_ref = conv2d_backward_loops(x, conv.params["kernel"], dy, padding)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["kernel"], dk_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["bias"], db_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("k", "padding", "hw"), CONFIGS)
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
def test_conv_gradcheck(k, padding, hw, activation, rng):
    x = rng.standard_normal((2, *hw, 3))
    conv = Conv2D(3, k, padding=padding, activation=activation, dtype="float64", seed=7)
    conv.build(x.shape)
    conv.params["bias"] = 0.1 * rng.standard_normal(3)
    if activation == "relu":  # finite differences are wrong across the kink at 0
        pre = Conv2D(3, k, padding=padding, dtype="float64")
        pre.build(x.shape)
        pre.set_weights(conv.get_weights())
        assert np.abs(pre.forward(x)).min() > 1e-4, "input on the ReLU kink: change the seed"
    report = gradcheck(conv, x)
    assert report.passed
    assert report.max_rel_error < 1e-6
    assert [c.name for c in report.checks] == ["input", "'kernel'", "'bias'"]


def test_conv_without_bias_gradcheck(rng):
    conv = Conv2D(2, 3, padding="same", use_bias=False, dtype="float64")
    report = gradcheck(conv, rng.standard_normal((1, 5, 4, 2)))
    assert list(conv.params) == ["kernel"] and report.passed


def test_same_padding_of_even_kernel_is_zero_before_one_after():
    # 'same' with a 2x2 kernel pads 0 rows/cols before and 1 after (Keras/TensorFlow):
    # y[h, w] = x[h, w] K00 + x[h, w+1] K01 + x[h+1, w] K10 + x[h+1, w+1] K11, zero outside.
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    conv = Conv2D(1, 2, padding="same", use_bias=False, dtype="float64")
    conv.build(x.shape)
    conv.params["kernel"] = np.array([1.0, 10.0, 100.0, 1000.0]).reshape(2, 2, 1, 1)
    y = conv.forward(x)[0, :, :, 0]
    assert y[0, 0] == 1 * 1 + 2 * 10 + 4 * 100 + 5 * 1000
    assert y[2, 2] == 9 * 1  # bottom-right: only x[2, 2] is inside, the rest is padding
    assert y[0, 2] == 3 * 1 + 6 * 100
    # and a 3x3 kernel pads one on each side: the centre tap sees x itself
    conv3 = Conv2D(1, 3, padding="same", use_bias=False, dtype="float64")
    conv3.build(x.shape)
    conv3.params["kernel"] = np.zeros((3, 3, 1, 1))
    conv3.params["kernel"][1, 1] = 1.0
    np.testing.assert_array_equal(conv3.forward(x), x)


def test_output_shapes():
    x = np.zeros((2, 9, 8, 3), np.float32)
    assert Conv2D(5, 3, padding="same").forward(x).shape == (2, 9, 8, 5)
    assert Conv2D(5, 3, padding="valid").forward(x).shape == (2, 7, 6, 5)
    assert Conv2D(5, (2, 3), padding="valid").forward(x).shape == (2, 8, 6, 5)
    assert Conv2D(5, 1).compute_output_shape((None, 9, 8, 3)) == (None, 9, 8, 5)


def test_dtype_is_preserved_and_float32_matches_float64(rng):
    x64 = rng.standard_normal((2, 12, 10, 8))
    c64 = Conv2D(16, 3, padding="same", activation="relu", dtype="float64", seed=3)
    c32 = Conv2D(16, 3, padding="same", activation="relu", dtype="float32", seed=3)
    y64 = c64.forward(x64)
    c32.build(x64.shape)
    c32.set_weights(c64.get_weights())
    y32 = c32.forward(x64.astype(np.float32))
    assert y64.dtype == np.float64 and y32.dtype == np.float32
    assert c32.params["kernel"].dtype == np.float32
    scale = np.abs(y64).max()
    assert np.abs(y32 - y64).max() / scale < 1e-5
    dx32 = c32.backward(np.ones_like(y32))
    assert dx32.dtype == np.float32 and c32.grads["kernel"].dtype == np.float32
    # a float64 input to a float32 layer is cast to float32, as Keras casts to its dtype
    assert c32.forward(x64).dtype == np.float32


def test_parameters_built_from_input_channels():
    conv = Conv2D(64, 3, padding="same")
    assert conv.params == {} and not conv.built
    conv.forward(np.zeros((1, 8, 8, 1), np.float32))
    assert conv.params["kernel"].shape == (3, 3, 1, 64)
    assert conv.params["bias"].shape == (64,)
    assert conv.count_params() == 3 * 3 * 1 * 64 + 64


def test_he_normal_statistics_and_seed():
    conv = Conv2D(256, 3, kernel_initializer="he_normal", seed=0)
    conv.build((None, 8, 8, 128))
    w = conv.params["kernel"].astype(np.float64)
    target = np.sqrt(2 / (3 * 3 * 128))
    assert abs(w.std() / target - 1) < 0.01  # stddev sqrt(2 / fan_in) after truncation
    assert np.abs(w).max() <= 2 * target / 0.87962566103423978 + 1e-7  # cut at 2 scales
    again = Conv2D(256, 3, kernel_initializer="he_normal", seed=0)
    again.build((None, 8, 8, 128))
    np.testing.assert_array_equal(again.params["kernel"], conv.params["kernel"])
    other = Conv2D(256, 3, kernel_initializer="he_normal", seed=1)
    other.build((None, 8, 8, 128))
    assert not np.array_equal(other.params["kernel"], conv.params["kernel"])


def test_glorot_uniform_limits():
    conv = Conv2D(1, 1, kernel_initializer="glorot_uniform", seed=0)  # the seed's last layer
    conv.build((None, 4, 4, 2000))
    w = conv.params["kernel"]
    limit = np.sqrt(6 / (2000 + 1))
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.95 * limit
    assert abs(w.std() - limit / np.sqrt(3)) < 0.05 * limit


def test_relu_conv_gradcheck_with_kinks_avoided(rng):
    x = away_from_kinks(rng.standard_normal((1, 6, 6, 2)))
    assert gradcheck(Conv2D(2, 1, activation="relu", dtype="float64", seed=0), x).passed
