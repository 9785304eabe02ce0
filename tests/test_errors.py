"""Bad input: each mistake gives an error that names the layer and what was expected."""

from __future__ import annotations

import re

import numpy as np
import pytest

from numpy_unet.layers import (
    Concatenate,
    Conv2D,
    Conv2DTranspose,
    Cropping2D,
    Dropout,
    MaxPooling2D,
    ReLU,
    Sigmoid,
    Softmax,
    UpSampling2D,
)

FOUR_D_LAYERS = [
    lambda: Conv2D(2, 3, padding="same", name="enc1"),
    lambda: Conv2DTranspose(2, 2, name="up1"),
    lambda: MaxPooling2D(2, name="pool1"),
    lambda: UpSampling2D(2, name="ups1"),
    lambda: Cropping2D(1, name="crop1"),
]
ANY_SHAPE_LAYERS = [
    lambda: ReLU(name="relu1"),
    lambda: Sigmoid(name="sig1"),
    lambda: Softmax(name="soft1"),
    lambda: Dropout(0.5, seed=0, name="drop1"),
]
ALL_LAYERS = FOUR_D_LAYERS + ANY_SHAPE_LAYERS


@pytest.mark.parametrize("make", FOUR_D_LAYERS)
def test_wrong_rank(make):
    layer = make()
    with pytest.raises(ValueError, match=rf"{layer.name}.*4-D.*got shape \(8, 8, 1\).*x\[None\]"):
        layer.forward(np.zeros((8, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(8, 8\).*x\[None, :, :, None\]"):
        layer.forward(np.zeros((8, 8), np.float32))


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_integer_input(make):
    layer = make()
    with pytest.raises(ValueError, match=rf"'{layer.name}'.*float32 or float64.*got dtype uint8"):
        layer.forward(np.zeros((1, 4, 4, 2), np.uint8))


@pytest.mark.parametrize("make", ALL_LAYERS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input(make, bad):
    layer = make()
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, 1, 1, 0] = bad
    expected = rf"'{layer.name}'.*1 NaN or infinite value\(s\) out of 32"
    with pytest.raises(ValueError, match=expected):
        layer.forward(x)


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_backward_before_forward(make):
    layer = make()
    with pytest.raises(RuntimeError, match=rf"'{layer.name}'.*backward\(\) called before forward"):
        layer.backward(np.zeros((1, 4, 4, 2), np.float32))


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_dy_of_the_wrong_shape(make):
    layer = make()
    y = layer.forward(np.zeros((1, 4, 4, 2), np.float32), training=True)
    expected = re.escape(f"dy of shape {y.shape}")
    with pytest.raises(ValueError, match=rf"'{layer.name}'.*{expected}.*got \(1, 4, 4, 7\)"):
        layer.backward(np.zeros((1, 4, 4, 7), np.float32))


@pytest.mark.parametrize("make", [FOUR_D_LAYERS[0], FOUR_D_LAYERS[1]])
def test_channel_count_differs_from_build(make):
    layer = make()
    layer.forward(np.zeros((1, 4, 4, 3), np.float32))
    expected = rf"'{layer.name}'.*built for inputs with 3 channels, got 5"
    with pytest.raises(ValueError, match=expected):
        layer.forward(np.zeros((1, 4, 4, 5), np.float32))


def test_concatenate_height_width_mismatch_explains_the_unet_cause():
    layer = Concatenate(name="merge6")
    skip, up = np.zeros((1, 25, 25, 4), np.float32), np.zeros((1, 24, 24, 4), np.float32)
    with pytest.raises(
        ValueError,
        match=r"'merge6'.*\(1, 25, 25, 4\).*\(1, 24, 24, 4\).*"
        r"divisible by 2\*\*depth",
    ):
        layer.forward([skip, up])
    with pytest.raises(ValueError, match="list of at least two"):
        layer.forward(skip)
    with pytest.raises(ValueError, match="share a dtype"):
        layer.forward([skip, skip.astype(np.float64)])


def test_bad_arguments_are_refused_at_construction():
    with pytest.raises(ValueError, match="padding must be 'same' or 'valid'"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="activation must be"):
        Conv2D(2, 3, activation="tanh")
    with pytest.raises(ValueError, match="kernel_initializer"):
        Conv2D(2, 3, kernel_initializer="ones")
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        Conv2D(2, 3, dtype="int32")
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        Conv2D(2, 0)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="interpolation='nearest'"):
        UpSampling2D(2, interpolation="bilinear")
    with pytest.raises(ValueError, match="cropping must"):
        Cropping2D("a lot")


def test_inputs_too_small():
    with pytest.raises(ValueError, match=r"input 2x2 is smaller than the 3x3 kernel"):
        Conv2D(1, 3, padding="valid").forward(np.zeros((1, 2, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"input 1x4 is smaller than the 2x2 pool"):
        MaxPooling2D(2).forward(np.zeros((1, 1, 4, 1), np.float32))
    with pytest.raises(ValueError, match="leaves nothing"):
        Cropping2D(2).forward(np.zeros((1, 4, 4, 1), np.float32))


def test_set_weights_checks_everything_before_writing():
    conv = Conv2D(2, 3, padding="same", name="c")
    conv.build((None, 4, 4, 1))
    before = conv.get_weights()
    with pytest.raises(ValueError, match=r"'bias' must have shape \(2,\), got \(3,\)"):
        conv.set_weights([np.ones((3, 3, 1, 2)), np.ones(3)])
    np.testing.assert_array_equal(conv.params["kernel"], before[0])  # unchanged
    with pytest.raises(ValueError, match=r"expected 2 arrays \(kernel, bias\), got 1"):
        conv.set_weights([np.ones((3, 3, 1, 2))])
