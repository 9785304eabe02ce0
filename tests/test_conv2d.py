"""Conv2D: the readable im2col, the speed engine and the loops agree; Keras's padding,
initializers, gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import numpy_unet.fast.conv as fast_conv
import numpy_unet.fast.pairs as fast_pairs
import numpy_unet.fast.parallel as fast_parallel
import numpy_unet.fast.winograd as fast_winograd
from numpy_unet import gradcheck
from numpy_unet.fast import conv_engine
from numpy_unet.gradcheck import away_from_kinks
from numpy_unet.layers import Conv2D
from numpy_unet.layers.loops import conv2d_backward_loops, conv2d_forward_loops

CONFIGS = list(itertools.product((1, 2, 3), ("same", "valid"), ((5, 6), (6, 5), (4, 4), (7, 3))))


@pytest.fixture(params=["im2col", "shifted", "pairs", "winograd"])
def fast(request, monkeypatch) -> bool:
    """Conv2D's ``fast`` option, with the speed engine taking every shape, however small:
    its shifted products (``fast/conv.py``), those of pixel pairs (``fast/pairs.py``), or
    Winograd's for 3x3 kernels (``fast/winograd.py``; other kernels: shifted products)."""
    winograd = request.param == "winograd"
    monkeypatch.setattr(
        fast_winograd, "pays_off", lambda c, f, ks, pixels: winograd and tuple(ks) == (3, 3)
    )
    if request.param != "im2col":
        monkeypatch.setattr(fast_conv, "pays_off", lambda *shapes: True)
        pairs = request.param == "pairs"
        monkeypatch.setattr(fast_pairs, "pays_off", lambda c, f, kw: pairs and kw >= 2)
    return request.param != "im2col"


@pytest.mark.parametrize(("k", "padding", "hw"), CONFIGS)
def test_conv_equals_loops(k, padding, hw, fast, rng):
    x = rng.standard_normal((2, *hw, 3))
    conv = Conv2D(4, k, padding=padding, dtype="float64", seed=1, fast=fast)
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
def test_conv_gradcheck(k, padding, hw, activation, fast, rng):
    x = rng.standard_normal((2, *hw, 3))
    conv = Conv2D(3, k, padding=padding, activation=activation, dtype="float64", seed=7, fast=fast)
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


@pytest.mark.parametrize(("block", "chunk"), [(3, 10**9), (16, 10**9), (16, 40), (5, 70)])
@pytest.mark.parametrize(("cin", "filters"), [(2, 5), (5, 2), (3, 3)])
@pytest.mark.parametrize(("k", "padding", "hw"), CONFIGS[::3])
def test_shifted_blocks_and_column_stacks_equal_loops(
    block, chunk, cin, filters, k, padding, hw, fast, rng
):
    # small blocks send these small shapes through every path of fast/conv.py: several
    # blocks and a last, shorter one; column stacks when Cin <= filters, plain products else;
    # the kernel gradient in chunks (and a shorter rest) when the chunk is small
    x = rng.standard_normal((2, *hw, cin))
    conv = Conv2D(filters, k, padding=padding, dtype="float64", seed=3, fast=fast)
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(filters)
    dy = rng.standard_normal(conv.compute_output_shape(x.shape))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fast_conv, "BLOCK", block)
        mp.setattr(fast_conv, "BLOCK_FLOATS", 0)  # every layer's blocks: BLOCK rows
        mp.setattr(fast_conv, "CHUNK_WORK", chunk)  # C * F * rows
        y = conv.forward(x)
        dx = conv.backward(dy)
        kernel, bias = conv.params["kernel"], conv.params["bias"]
        np.testing.assert_allclose(
            y, conv2d_forward_loops(x, kernel, bias, padding), rtol=1e-12, atol=1e-12
        )
        dx_ref, dk_ref, db_ref = conv2d_backward_loops(x, kernel, dy, padding)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(conv.grads["kernel"], dk_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(conv.grads["bias"], db_ref, rtol=1e-12, atol=1e-12)
        report = gradcheck(conv, x)
    assert report.passed and report.max_rel_error < 1e-6


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
@pytest.mark.parametrize(("block", "use_bias"), [(7, True), (7, False), (2048, True)])
def test_activation_inside_the_engine_equals_the_readable_layer(
    activation, block, use_bias, fast, rng
):
    # the engine applies a ReLU block by block, inside its sum (and the bias with the first
    # product): blocks of 7 rows put several blocks and a shorter last one in each conv
    x = rng.standard_normal((2, 5, 6, 3))
    kwargs = dict(padding="same", activation=activation, use_bias=use_bias, dtype="float64")
    conv = Conv2D(4, 3, seed=2, fast=fast, **kwargs)
    readable = Conv2D(4, 3, seed=2, fast=False, **kwargs)
    conv.build(x.shape)
    readable.build(x.shape)
    if use_bias:
        conv.params["bias"] = rng.standard_normal(4)
    readable.set_weights(conv.get_weights())
    dy = rng.standard_normal(conv.compute_output_shape(x.shape))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fast_conv, "BLOCK", block)
        mp.setattr(fast_conv, "BLOCK_FLOATS", 0)  # every layer's blocks: BLOCK rows
        y, dx = conv.forward(x), conv.backward(dy)
    y_ref, dx_ref = readable.forward(x), readable.backward(dy)
    if activation == "relu":
        assert (y_ref == 0).any() and (y_ref > 0).any()  # the ReLU cut something
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    for name in readable.grads:
        np.testing.assert_allclose(conv.grads[name], readable.grads[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tile_floats", [0, 768, 2**21])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize(("padding", "hw"), [("same", (5, 6)), ("valid", (7, 4)), ("same", (1, 3))])
def test_winograd_in_blocks_of_tile_rows_equals_loops(
    tile_floats, activation, padding, hw, monkeypatch, rng
):
    # TILE_FLOATS = 0: one row of 2x2 tiles per block; 768: two rows (16 x 2 images x 3 tiles
    # x 4 filters = 384 values per row), so a shorter last block where there are 3 or 5 rows;
    # odd sizes: a zero row or column added, its outputs cut off
    monkeypatch.setattr(fast_winograd, "pays_off", lambda *shapes: True)
    monkeypatch.setattr(fast_winograd, "TILE_FLOATS", (tile_floats, tile_floats))
    x = rng.standard_normal((2, *hw, 3))
    conv = Conv2D(4, 3, padding=padding, activation=activation, dtype="float64", seed=5)
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(4)
    calls = []
    real = fast_winograd.output_transform
    monkeypatch.setattr(fast_winograd, "output_transform", lambda *a: calls.append(1) or real(*a))
    y = conv.forward(x)
    # blocks: outputs 5x6 (3 x 3 tiles), 5x2 (3 x 1) and 1x3 (1 x 2)
    blocks = {0: {(5, 6): 3, (7, 4): 3, (1, 3): 1}, 768: {(5, 6): 2, (7, 4): 1, (1, 3): 1}}
    assert len(calls) == blocks.get(tile_floats, {}).get(hw, 1)
    z = conv2d_forward_loops(x, conv.params["kernel"], conv.params["bias"], padding)
    if activation == "relu":
        assert (z < 0).any()
        z = np.maximum(z, 0)
    np.testing.assert_allclose(y, z, rtol=1e-12, atol=1e-12)
    report = gradcheck(conv, away_from_kinks(x) if activation else x)
    assert report.passed and report.max_rel_error < 1e-6


def test_winograds_rule(monkeypatch):
    # at least 32 channels in and out, a 3x3 kernel, at least max(C, F) output pixels
    one_thread = (lambda n: None, lambda: 1)
    monkeypatch.setattr(fast_parallel, "OPENBLAS", one_thread)
    assert fast_winograd.pays_off(64, 32, (3, 3), 2 * 16 * 16)
    assert not fast_winograd.pays_off(16, 32, (3, 3), 2 * 64 * 64)  # too thin
    assert not fast_winograd.pays_off(64, 64, (2, 2), 2 * 16 * 16)  # not 3x3
    assert not fast_winograd.pays_off(512, 1024, (3, 3), 16 * 16)  # too few pixels for U
    # BLAS on two threads: only from 128 x 256 channels
    monkeypatch.setattr(fast_parallel, "OPENBLAS", (lambda n: None, lambda: 2))
    assert not fast_winograd.pays_off(64, 32, (3, 3), 2 * 16 * 16)
    assert fast_winograd.pays_off(256, 256, (3, 3), 64 * 64)
    monkeypatch.setattr(fast_parallel, "OPENBLAS", one_thread)
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 64)).astype(np.float32)
    conv = Conv2D(32, 3, padding="same", activation="relu", seed=0)
    assert conv_engine(64, 32, (3, 3), 16, 16, 2) is fast_winograd
    readable = Conv2D(32, 3, padding="same", activation="relu", seed=0, fast=False)
    np.testing.assert_allclose(conv.forward(x), readable.forward(x), rtol=1e-5, atol=1e-5)
    assert conv._cache[1] is fast_winograd  # the layer kept which engine ran, for backward


def test_thin_products_run_in_shorter_blocks_on_one_core(monkeypatch, rng):
    # on one core, products (B, K) @ (K, F) with K >= 32 and F <= 16 take at most A_FLOATS
    # values of input per block; wider F, narrower K, or two BLAS threads: the usual blocks
    usual = max(fast_conv.BLOCK, fast_conv.BLOCK_FLOATS // 32)
    monkeypatch.setattr(fast_parallel, "OPENBLAS", (lambda n: None, lambda: 1))
    assert fast_conv.block_rows(32, 16, 32) == fast_conv.A_FLOATS // 32 < usual
    assert fast_conv.block_rows(16, 16, 48) == fast_conv.A_FLOATS // 48
    assert fast_conv.block_rows(16, 32, 48) == usual  # F = 32
    assert fast_conv.block_rows(32, 4, 32) == usual  # F = 4 (the pairs of a 16 -> 2 head)
    assert fast_conv.block_rows(16, 16, 16) == max(fast_conv.BLOCK, fast_conv.BLOCK_FLOATS // 16)
    monkeypatch.setattr(fast_parallel, "OPENBLAS", (lambda n: None, lambda: 2))
    assert fast_conv.block_rows(32, 16, 32) == usual
    # the capped blocks give the loops' numbers: 16 -> 8 channels run as pairs, 32 -> 16,
    # K = 32, 5 rows per block: the pairs' 47 grid rows in 10 blocks, the last shorter
    monkeypatch.setattr(fast_parallel, "OPENBLAS", (lambda n: None, lambda: 1))
    monkeypatch.setattr(fast_conv, "A_FLOATS", 5 * 32)
    sizes = []
    real = fast_conv.block_rows
    monkeypatch.setattr(fast_conv, "block_rows", lambda *a: sizes.append(real(*a)) or sizes[-1])
    x = rng.standard_normal((2, 5, 6, 16))
    conv = Conv2D(8, 3, padding="same", activation="relu", dtype="float64", seed=4)
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(8)
    y = conv.forward(x)
    assert conv._cache[1] is fast_pairs and sizes == [5]
    z = conv2d_forward_loops(x, conv.params["kernel"], conv.params["bias"], "same")
    np.testing.assert_allclose(y, np.maximum(z, 0), rtol=1e-12, atol=1e-12)
    report = gradcheck(conv, away_from_kinks(x))
    assert report.passed and report.max_rel_error < 1e-6


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


def test_the_speed_engine_runs_where_its_rule_says_and_gives_the_same_numbers(monkeypatch, rng):
    assert fast_conv.pays_off(16, 8, 32, 32) and not fast_conv.pays_off(1, 64, 32, 32)
    assert not fast_conv.pays_off(16, 32, 16, 16) and fast_conv.pays_off(16, 32, 64, 64)
    assert fast_conv.pays_off(1, 8, 32, 32) and not fast_conv.pays_off(2, 1, 32, 32, (1, 1))
    calls = []
    real = fast_conv.products  # both engines' forward (conv.py's and pairs.py's) run it
    monkeypatch.setattr(fast_conv, "products", lambda *a: calls.append(1) or real(*a))
    x = rng.standard_normal((1, 32, 32, 16)).astype(np.float32)
    y_fast = Conv2D(8, 3, padding="same", seed=0).forward(x)
    assert calls == [1]  # 16 channels at 32x32: the rule picks the speed engine
    y_readable = Conv2D(8, 3, padding="same", seed=0, fast=False).forward(x)
    assert calls == [1]  # fast=False: never
    np.testing.assert_allclose(y_fast, y_readable, rtol=1e-5, atol=1e-5)
    Conv2D(64, 3, padding="same", seed=0).forward(x[..., :1])
    assert calls == [1]  # 1 channel, 64 filters (the seed's first layer): im2col, by the rule
    Conv2D(1, 1, seed=0).forward(x[..., :2])
    assert calls == [1]  # a 1x1 kernel on 2 channels (the seed's last layer): im2col
    Conv2D(8, 3, padding="same", seed=0).forward(x[..., :1])
    assert calls == [1, 1]  # 1 channel, 8 filters (a thin first layer): the engine


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 16, 16, 8), (3, 9, 4, 600), (2, 64, 64, 2)])
def test_the_engines_bias_gradient_is_the_plain_sum(shape, rng):
    dz = rng.standard_normal(shape)
    np.testing.assert_allclose(fast_conv.bias_grad(dz), dz.sum(axis=(0, 1, 2)), rtol=1e-12)
    dz32 = dz.astype(np.float32)  # float32: closer to the exact sum than numpy's own
    exact = dz.sum(axis=(0, 1, 2))
    assert np.abs(fast_conv.bias_grad(dz32) - exact).max() <= 2e-6 * np.abs(dz).sum()
