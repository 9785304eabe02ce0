"""The speed engine's convolutions (``fast/conv.py``, ``pairs.py``, ``winograd.py``) give the
loops' numbers and pass the gradient check, on every path their blocks can take; each
conv's algorithm follows the rules; the conv's activation still runs as its own layer."""

from __future__ import annotations

import itertools
import types

import numpy as np
import pytest

import numpy_unet.fast.conv as fast_conv
import numpy_unet.fast.winograd as fast_winograd
from numpy_unet import gradcheck
from numpy_unet.fast import Engine, Rules
from numpy_unet.fast.engine import ALGORITHMS
from numpy_unet.gradcheck import away_from_kinks
from numpy_unet.layers import Conv2D
from numpy_unet.layers.loops import conv2d_backward_loops, conv2d_forward_loops

CONFIGS = list(itertools.product((1, 2, 3), ("same", "valid"), ((5, 6), (6, 5), (4, 4), (7, 3))))


@pytest.fixture(params=ALGORITHMS)
def engine(request):
    """An engine that takes every shape, however small, by one algorithm: im2col (the
    layer's own code), shifted products, those of pixel pairs, or Winograd's for 3x3
    kernels (other kernels: shifted products). One core: no halves here."""
    with Engine(algorithm=request.param, rules=Rules(cores=1)) as engine:
        yield engine


def conv_with(engine: Engine | None, *args, **kwargs) -> Conv2D:
    """A float64 Conv2D whose engine is ``engine`` (a UNet sets it on its convs)."""
    conv = Conv2D(*args, dtype="float64", **kwargs)
    conv.engine = engine
    return conv


@pytest.mark.parametrize(("k", "padding", "hw"), CONFIGS)
def test_every_algorithm_equals_the_loops(k, padding, hw, engine, rng):
    x = rng.standard_normal((2, *hw, 3))
    conv = conv_with(engine, 4, k, padding=padding, seed=1)
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(4)
    y = conv.forward(x)
    kernel, bias = conv.params["kernel"], conv.params["bias"]
    np.testing.assert_allclose(y, conv2d_forward_loops(x, kernel, bias, padding), atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    dx_ref, dk_ref, db_ref = conv2d_backward_loops(x, kernel, dy, padding)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["kernel"], dk_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["bias"], db_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("k", "padding", "hw"), CONFIGS[::2])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
def test_every_algorithm_passes_the_gradient_check(k, padding, hw, activation, engine, rng):
    x = rng.standard_normal((2, *hw, 3))
    conv = conv_with(engine, 3, k, padding=padding, activation=activation, seed=7)
    conv.build(x.shape)
    conv.params["bias"] = 0.1 * rng.standard_normal(3)
    if activation == "relu":  # finite differences are wrong across the kink at 0
        z = conv2d_forward_loops(x, conv.params["kernel"], conv.params["bias"], padding)
        assert np.abs(z).min() > 1e-4, "input on the ReLU kink: change the seed"
    report = gradcheck(conv, x)
    assert report.passed and report.max_rel_error < 1e-6
    assert [c.name for c in report.checks] == ["input", "'kernel'", "'bias'"]


@pytest.mark.parametrize(("block", "chunk"), [(3, 10**9), (16, 10**9), (16, 40), (5, 70)])
@pytest.mark.parametrize(("cin", "filters"), [(2, 5), (5, 2), (3, 3)])
@pytest.mark.parametrize(("k", "padding", "hw"), CONFIGS[::3])
def test_blocks_column_stacks_and_chunks_equal_the_loops(
    block, chunk, cin, filters, k, padding, hw, rng
):
    # small blocks send these small shapes through every path of fast/conv.py: several
    # blocks and a last, shorter one; column stacks when Cin <= filters, plain products else;
    # the kernel gradient in chunks (and a shorter rest) when the chunk is small
    rules = Rules(cores=1, block=block, block_floats=1, chunk_work=chunk)
    for algorithm in ("shifted", "pairs"):
        x = rng.standard_normal((2, *hw, cin))
        conv = conv_with(Engine(algorithm=algorithm, rules=rules), filters, k, padding=padding)
        conv.build(x.shape)
        conv.params["bias"] = rng.standard_normal(filters)
        dy = rng.standard_normal(conv.compute_output_shape(x.shape))
        y, dx = conv.forward(x), conv.backward(dy)
        kernel, bias = conv.params["kernel"], conv.params["bias"]
        z = conv2d_forward_loops(x, kernel, bias, padding)
        np.testing.assert_allclose(y, z, rtol=1e-12, atol=1e-12)
        dx_ref, dk_ref, db_ref = conv2d_backward_loops(x, kernel, dy, padding)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(conv.grads["kernel"], dk_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(conv.grads["bias"], db_ref, rtol=1e-12, atol=1e-12)
        report = gradcheck(conv, x)
        assert report.passed and report.max_rel_error < 1e-6


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
@pytest.mark.parametrize(("block", "use_bias"), [(7, True), (7, False), (2048, True)])
def test_the_activation_layer_gets_its_output(activation, block, use_bias, engine, rng):
    # the engine adds the bias with the first product and takes a ReLU inside its blocks
    # (blocks of 7 rows: several, and a shorter last one), then hands y to the ReLU layer
    # (ReLU.keep); another activation runs its own forward. Backward is the layer's own.
    x = rng.standard_normal((2, 5, 6, 3))
    kwargs = dict(padding="same", activation=activation, use_bias=use_bias, seed=2)
    rules = Rules(cores=1, block=block, block_floats=1)
    conv = conv_with(Engine(algorithm=engine.algorithm, rules=rules), 4, 3, **kwargs)
    readable = conv_with(None, 4, 3, **kwargs)
    conv.build(x.shape)
    readable.build(x.shape)
    if use_bias:
        conv.params["bias"] = rng.standard_normal(4)
    readable.set_weights(conv.get_weights())
    calls = []
    if activation is not None:
        method = "keep" if activation == "relu" and engine.algorithm != "im2col" else "forward"
        real = getattr(conv.activation, method)
        setattr(conv.activation, method, lambda z, *a: calls.append(z.shape) or real(z, *a))
    dy = rng.standard_normal(conv.compute_output_shape(x.shape))
    y, dx = conv.forward(x), conv.backward(dy)
    assert calls == ([] if activation is None else [y.shape])
    y_ref, dx_ref = readable.forward(x), readable.backward(dy)
    if activation == "relu":
        assert (y_ref == 0).any() and (y_ref > 0).any()  # the ReLU cut something
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    assert conv.grads.keys() == readable.grads.keys()
    for name in readable.grads:
        np.testing.assert_allclose(conv.grads[name], readable.grads[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tile_floats", [1, 768, 2**21])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize(("padding", "hw"), [("same", (5, 6)), ("valid", (7, 4)), ("same", (1, 3))])
def test_winograd_in_blocks_of_tile_rows_equals_the_loops(
    tile_floats, activation, padding, hw, monkeypatch, rng
):
    # tile_floats = 1: one row of 2x2 tiles per block; 768: two rows (16 x 2 images x 3
    # tiles x 4 filters = 384 values per row), so a shorter last block where there are 3 or
    # 5 rows; odd sizes: a zero row or column added, its outputs cut off
    rules = Rules(cores=1, tile_floats=tile_floats, threads_tile_floats=tile_floats)
    x = rng.standard_normal((2, *hw, 3))
    engine = Engine(algorithm="winograd", rules=rules)
    conv = conv_with(engine, 4, 3, padding=padding, activation=activation, seed=5)
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(4)
    calls = []
    real = fast_winograd.output_transform
    monkeypatch.setattr(fast_winograd, "output_transform", lambda *a: calls.append(1) or real(*a))
    y = conv.forward(x)
    # blocks: outputs 5x6 (3 x 3 tiles), 5x2 (3 x 1) and 1x3 (1 x 2)
    blocks = {1: {(5, 6): 3, (7, 4): 3, (1, 3): 1}, 768: {(5, 6): 2, (7, 4): 1, (1, 3): 1}}
    assert len(calls) == blocks.get(tile_floats, {}).get(hw, 1)
    z = conv2d_forward_loops(x, conv.params["kernel"], conv.params["bias"], padding)
    if activation == "relu":
        assert (z < 0).any()
        z = np.maximum(z, 0)
    np.testing.assert_allclose(y, z, rtol=1e-12, atol=1e-12)
    report = gradcheck(conv, away_from_kinks(x) if activation else x)
    assert report.passed and report.max_rel_error < 1e-6


def test_the_rules_pick_each_convs_algorithm():
    engine = Engine(rules=Rules(cores=2))

    def pick(c, f, k, ho, wo, n=1, halving=False, one=True):
        return engine.choose(c, f, (k, k), ho, wo, n, halving, one)

    # Winograd: at least 32 channels in and out, a 3x3 kernel, at least max(C, F) pixels
    assert pick(64, 32, 3, 16, 16, n=2) == "winograd"
    assert pick(16, 32, 3, 64, 64, n=2) == "shifted"  # too thin
    assert pick(64, 64, 2, 64, 64) == "shifted"  # not 3x3
    assert pick(512, 1024, 3, 16, 16) == "im2col"  # too few pixels for U; small: im2col
    # with BLAS on two threads only from 128 x 256 channels
    assert pick(64, 32, 3, 16, 16, n=2, one=False) == "shifted"
    assert pick(256, 256, 3, 64, 64, one=False) == "winograd"
    # shifted products from 8 channels, pairs where one side is 8 or fewer (at most 32)
    assert pick(16, 8, 3, 32, 32) == "pairs" and pick(16, 16, 3, 64, 64) == "shifted"
    assert pick(16, 32, 3, 16, 16) == "im2col"  # a small output with C <= F
    assert pick(16, 32, 3, 16, 16, halving=True) == "shifted"  # in halves: never im2col
    assert pick(1, 64, 3, 256, 256) == "im2col"  # the seed's first layer
    assert pick(1, 8, 3, 32, 32) == "pairs"  # a thin first layer
    assert pick(2, 1, 1, 32, 32) == "im2col"  # the seed's last layer (1x1 on 2 channels)


def test_the_engine_gives_the_readable_numbers_where_it_runs(rng):
    x = rng.standard_normal((1, 32, 32, 16)).astype(np.float32)
    engine = Engine(rules=Rules(cores=1))
    fast, readable = Conv2D(8, 3, padding="same", seed=0), Conv2D(8, 3, padding="same", seed=0)
    fast.engine = engine
    assert engine.runs_conv((1, 34, 34, 16), (3, 3, 16, 8))  # 16 -> 8 at 32x32: pairs
    np.testing.assert_allclose(fast.forward(x), readable.forward(x), rtol=1e-5, atol=1e-5)
    first = Conv2D(64, 3, padding="same", seed=0)
    first.engine = engine
    assert not engine.runs_conv((1, 34, 34, 1), (3, 3, 1, 64))  # the layer's own im2col
    plain = Conv2D(64, 3, padding="same", seed=0)
    np.testing.assert_allclose(first.forward(x[..., :1]), plain.forward(x[..., :1]))


def cores_with(rules: Rules, one_thread: bool) -> types.SimpleNamespace:
    """What the kernels ask of their cores, with BLAS on one thread or not."""
    return types.SimpleNamespace(rules=rules, one_thread=lambda: one_thread, halving=lambda: False)


def test_thin_products_run_in_shorter_blocks_on_one_core(monkeypatch, rng):
    # on one core, products (B, K) @ (K, F) with K >= 32 and 8 <= F <= 16 take at most
    # rules.thin_input_floats values of input per block; wider F, narrower K, or two BLAS
    # threads: the usual blocks
    rules = Rules(cores=1)
    one, two = cores_with(rules, True), cores_with(rules, False)
    usual = max(rules.block, rules.block_floats // 32)
    assert fast_conv.block_rows(32, 16, one, 32) == rules.thin_input_floats // 32 < usual
    assert fast_conv.block_rows(16, 16, one, 48) == rules.thin_input_floats // 48
    assert fast_conv.block_rows(16, 32, one, 48) == usual  # F = 32
    assert fast_conv.block_rows(32, 4, one, 32) == usual  # F = 4 (the pairs of a 16 -> 2 head)
    assert fast_conv.block_rows(32, 16, two, 32) == usual
    # the capped blocks give the loops' numbers: 16 -> 8 channels run as pairs, 32 -> 16,
    # K = 32, 5 rows per block: the pairs' 47 grid rows in 10 blocks, the last shorter
    engine = Engine(rules=Rules(cores=1, thin_input_floats=5 * 32))
    x = rng.standard_normal((2, 5, 6, 16))
    conv = conv_with(engine, 8, 3, padding="same", activation="relu", seed=4)
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(8)
    sizes = []
    real = fast_conv.block_rows
    monkeypatch.setattr(fast_conv, "block_rows", lambda *a: sizes.append(real(*a)) or sizes[-1])
    with engine.runtime().blas.one_thread():  # as in a part of a split batch, or a half
        y = conv.forward(x)
    assert engine.choose(16, 8, (3, 3), 5, 6, 2, False, True) == "pairs" and sizes == [5]
    z = conv2d_forward_loops(x, conv.params["kernel"], conv.params["bias"], "same")
    np.testing.assert_allclose(y, np.maximum(z, 0), rtol=1e-12, atol=1e-12)
    report = gradcheck(conv, away_from_kinks(x))
    assert report.passed and report.max_rel_error < 1e-6


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 16, 16, 8), (3, 9, 4, 600), (2, 64, 64, 2)])
def test_the_engines_bias_gradient_is_the_plain_sum(shape, rng):
    dz = rng.standard_normal(shape)
    np.testing.assert_allclose(fast_conv.bias_grad(dz), dz.sum(axis=(0, 1, 2)), rtol=1e-12)
    dz32 = dz.astype(np.float32)  # float32: closer to the exact sum than numpy's own
    exact = dz.sum(axis=(0, 1, 2))
    assert np.abs(fast_conv.bias_grad(dz32) - exact).max() <= 2e-6 * np.abs(dz).sum()


def test_the_rules_derive_from_the_cache():
    small, one, large = Rules(l2_bytes=2**18), Rules(l2_bytes=2**20), Rules(l2_bytes=2**21)
    assert (one.block_floats, one.block, one.tile_floats) == (2**17, 2048, 2**18)
    assert one.thin_input_floats == 3 * 2**14  # the constants first tuned on a 1 MB L2
    assert (small.block_floats, small.block, small.tile_floats) == (2**15, 512, 2**16)
    assert large == Rules(l2_bytes=2**21, block_floats=2**17)  # they stop growing at 1 MB
    assert Rules(block=3, block_floats=1).block == 3  # given ones are kept
