"""Conv2DTranspose: equals the loop version, Keras's output sizes and kernel layout, gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from numpy_unet import gradcheck
from numpy_unet.layers import Conv2DTranspose
from numpy_unet.layers.loops import (
    conv2d_transpose_backward_loops,
    conv2d_transpose_forward_loops,
)

CONFIGS = list(itertools.product((1, 2, 3), (1, 2), ("same", "valid"), ((3, 4), (4, 3))))


@pytest.mark.parametrize(("k", "s", "padding", "hw"), CONFIGS)
def test_fast_equals_loops_and_keras_sizes(k, s, padding, hw, rng):
    x = rng.standard_normal((2, *hw, 3))
    layer = Conv2DTranspose(4, k, strides=s, padding=padding, dtype="float64", seed=0)
    layer.build(x.shape)
    layer.params["bias"] = rng.standard_normal(4)
    y = layer.forward(x)
    full = conv2d_transpose_forward_loops(x, layer.params["kernel"], layer.params["bias"], (s, s))
    h, w = hw
    if padding == "same":  # Keras: H * s, cropping max(k - s, 0) rows, the smaller half on top
        top = max(k - s, 0) // 2
        expected = full[:, top : top + h * s, top : top + w * s]
        assert y.shape == (2, h * s, w * s, 4)
    else:  # Keras: (H - 1) * s + max(k, s)
        expected = full
        assert y.shape == (2, (h - 1) * s + max(k, s), (w - 1) * s + max(k, s), 4)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert layer.compute_output_shape(x.shape) == y.shape


@pytest.mark.parametrize(("k", "s", "hw"), [(k, s, hw) for k, s, p, hw in CONFIGS if p == "valid"])
def test_backward_equals_loops(k, s, hw, rng):
    x = rng.standard_normal((2, *hw, 3))
    layer = Conv2DTranspose(4, k, strides=s, padding="valid", dtype="float64", seed=0)
    dy = rng.standard_normal(layer.forward(x).shape)  # 'valid': the full output, uncropped
    dx = layer.backward(dy)
    dx_ref, dk_ref, db_ref = conv2d_transpose_backward_loops(x, layer.params["kernel"], dy, (s, s))
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["kernel"], dk_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["bias"], db_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("k", "s", "padding", "hw"), CONFIGS)
def test_gradcheck(k, s, padding, hw, rng):
    x = rng.standard_normal((2, *hw, 3))
    layer = Conv2DTranspose(2, k, strides=s, padding=padding, dtype="float64", seed=1)
    layer.build(x.shape)
    layer.params["bias"] = 0.1 * rng.standard_normal(2)
    report = gradcheck(layer, x)
    assert report.passed and report.max_rel_error < 1e-6


def test_up_convolution_doubles_size_and_uses_keras_kernel_layout():
    layer = Conv2DTranspose(5, 2, strides=2)
    y = layer.forward(np.ones((1, 16, 16, 8), np.float32))
    assert y.shape == (1, 32, 32, 5)
    assert layer.params["kernel"].shape == (2, 2, 5, 8)  # (kh, kw, filters, Cin) as Keras
    assert y.dtype == np.float32


def test_each_input_pixel_paints_one_patch():
    # k = s = 2: pixel (h, w) writes exactly the 2x2 block at (2h, 2w), through K[i, j].
    x = np.zeros((1, 2, 2, 1))
    x[0, 1, 0, 0] = 1.0
    layer = Conv2DTranspose(1, 2, strides=2, use_bias=False, dtype="float64")
    layer.build(x.shape)
    layer.params["kernel"] = np.arange(1.0, 5.0).reshape(2, 2, 1, 1)
    y = layer.forward(x)[0, :, :, 0]
    np.testing.assert_array_equal(y, [[0, 0, 0, 0], [0, 0, 0, 0], [1, 2, 0, 0], [3, 4, 0, 0]])


def test_relu_activation_gradcheck(rng):
    x = rng.standard_normal((1, 3, 3, 2))
    layer = Conv2DTranspose(3, 2, strides=2, activation="relu", dtype="float64", seed=2)
    assert gradcheck(layer, x).passed
