"""The speed engine's other way to use the cores: each layer's work in two halves, one per
core (``parallel.layer_halves``). Every path that cuts its work in halves (the shifted sums,
the kernel gradient by rows or by filters, Winograd's tile rows) gives the numbers of the
undivided path and the loops, and passes the gradient check; a wide UNet's predict and
training step in halves give those of the undivided engine."""

from __future__ import annotations

import numpy as np
import pytest

import numpy_unet.fast.conv as fast_conv
import numpy_unet.fast.parallel as fast_parallel
import numpy_unet.fast.winograd as fast_winograd
from numpy_unet import UNet, gradcheck
from numpy_unet.gradcheck import away_from_kinks
from numpy_unet.layers import Conv2D
from numpy_unet.layers.loops import conv2d_backward_loops, conv2d_forward_loops
from numpy_unet.losses import BinaryCrossentropy
from numpy_unet.train.fit import forward_backward


@pytest.fixture
def halves(monkeypatch) -> list[int]:
    """Two cores on any machine, every conv worth its halves however small; returns the
    sizes of the task lists ``parallel.run`` was given (one entry per split)."""
    monkeypatch.setattr(fast_parallel, "WORKERS", 2)
    monkeypatch.setattr(fast_conv, "HALF_WORK", 0)
    calls: list[int] = []
    real = fast_parallel.run
    monkeypatch.setattr(fast_parallel, "run", lambda tasks: calls.append(len(tasks)) or real(tasks))
    return calls


def engine_takes(monkeypatch, winograd: bool) -> None:
    """The shifted products (or Winograd's, for 3x3 kernels) for every shape, however small."""
    monkeypatch.setattr(fast_conv, "pays_off", lambda *shapes: True)
    monkeypatch.setattr(
        fast_winograd, "pays_off", lambda c, f, ks, pixels: winograd and tuple(ks) == (3, 3)
    )


def test_halving_is_on_only_inside_and_never_inside_a_half(halves):
    assert not fast_parallel.halving()
    seen = []
    with fast_parallel.layer_halves():
        assert fast_parallel.halving()
        if fast_parallel.OPENBLAS is not None:
            assert fast_parallel.OPENBLAS[1]() == 1  # BLAS on one thread the whole pass
        fast_parallel.run([lambda: seen.append(fast_parallel.halving())] * 2)
        assert fast_parallel.halving()  # back on after the halves
        with pytest.raises(ZeroDivisionError):
            fast_parallel.run([lambda: 1 / 0, lambda: None])
        assert fast_parallel.halving()
    assert seen == [False, False]  # a half is not cut in halves again
    assert not fast_parallel.halving()


def test_one_core_never_halves(monkeypatch):
    monkeypatch.setattr(fast_parallel, "WORKERS", 1)
    with fast_parallel.layer_halves():
        assert not fast_parallel.halving()


@pytest.mark.parametrize(("block", "cin", "filters"), [(3, 2, 5), (5, 5, 2), (7, 3, 3), (64, 4, 6)])
@pytest.mark.parametrize(
    ("k", "padding", "hw"), [(3, "same", (5, 6)), (2, "valid", (7, 4)), (1, "same", (3, 5))]
)
def test_shifted_products_in_halves_equal_loops(
    block, cin, filters, k, padding, hw, halves, monkeypatch, rng
):
    # BLOCK = 3, 5, 7: the kernel gradient splits its rows (a long grid, 2 x BLOCK rows or
    # more; the plain, stacked and chunked paths inside each half); BLOCK = 64: it splits the
    # filters (a short grid, as the seed's deepest layers)
    engine_takes(monkeypatch, winograd=False)
    monkeypatch.setattr(fast_conv, "BLOCK", block)
    monkeypatch.setattr(fast_conv, "BLOCK_FLOATS", 0)
    monkeypatch.setattr(fast_conv, "CHUNK_WORK", 40)
    x = rng.standard_normal((2, *hw, cin))
    conv = Conv2D(filters, k, padding=padding, activation="relu", dtype="float64", seed=3)
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(filters)
    dy = rng.standard_normal(conv.compute_output_shape(x.shape))
    with fast_parallel.layer_halves():
        y, dx = conv.forward(x), conv.backward(dy)
        grads = dict(conv.grads)
        assert halves, "no work was cut in halves"
        report = gradcheck(conv, away_from_kinks(x))  # (sets conv.grads for its own dy)
    kernel, bias = conv.params["kernel"], conv.params["bias"]
    z = conv2d_forward_loops(x, kernel, bias, padding)
    assert (z < 0).any() and (z > 0).any()
    np.testing.assert_allclose(y, np.maximum(z, 0), rtol=1e-12, atol=1e-12)
    dx_ref, dk_ref, db_ref = conv2d_backward_loops(x, kernel, dy * (z > 0), padding)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["kernel"], dk_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["bias"], db_ref, rtol=1e-12, atol=1e-12)
    assert report.passed and report.max_rel_error < 1e-6


def test_the_kernel_gradient_splits_rows_or_filters(halves, monkeypatch, rng):
    monkeypatch.setattr(fast_conv, "BLOCK", 4)
    flat = rng.standard_normal((60, 3))
    dz_grid = rng.standard_normal((40, 5))
    plain = fast_conv.kernel_grad(flat, dz_grid, 2, 3, 9)
    with fast_parallel.layer_halves():
        by_rows = fast_conv.kernel_grad(flat, dz_grid, 2, 3, 9)  # 40 rows >= 2 x BLOCK
        assert halves == [2]
        monkeypatch.setattr(fast_conv, "BLOCK", 64)
        by_filters = fast_conv.kernel_grad(flat, dz_grid, 2, 3, 9)  # 5 filters: 2 + 3
        assert halves == [2, 2]
    np.testing.assert_allclose(by_rows, plain, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(by_filters, plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("min_tiles", [1, 128])
@pytest.mark.parametrize(("padding", "hw"), [("same", (5, 6)), ("valid", (9, 4)), ("same", (8, 8))])
def test_winograd_in_halves_of_tile_rows_equals_loops(
    min_tiles, padding, hw, halves, monkeypatch, rng
):
    # tile rows 3, 4 and 4 cut in halves; MIN_TILES = 1: blocks of one tile row
    # (TILE_FLOATS = 0); 128: each half in one block
    engine_takes(monkeypatch, winograd=True)
    monkeypatch.setattr(fast_winograd, "TILE_FLOATS", (0, 0))
    monkeypatch.setattr(fast_winograd, "MIN_TILES", min_tiles)
    x = rng.standard_normal((2, *hw, 3))
    conv = Conv2D(4, 3, padding=padding, dtype="float64", seed=5)
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(4)
    blocks = []
    real = fast_winograd.output_transform
    monkeypatch.setattr(fast_winograd, "output_transform", lambda *a: blocks.append(1) or real(*a))
    with fast_parallel.layer_halves():
        y = conv.forward(x)
        tile_rows = -(-conv.compute_output_shape(x.shape)[1] // 2)
        assert len(blocks) == (tile_rows if min_tiles == 1 else 2) and halves == [2]
        report = gradcheck(conv, x)
    z = conv2d_forward_loops(x, conv.params["kernel"], conv.params["bias"], padding)
    np.testing.assert_allclose(y, z, rtol=1e-12, atol=1e-12)
    assert report.passed and report.max_rel_error < 1e-6


@pytest.mark.parametrize(("filters", "n"), [(64, 2), (8, 1)])
def test_a_unet_runs_in_halves_with_the_same_numbers(filters, n, monkeypatch, rng):
    # filters 64 (wider than parallel.MAX_FILTERS), or a thin network's single image (its
    # pixel pairs, stacks and chunks in halves): predict and a training step, with and
    # without the halves; small blocks and no work threshold, so that every layer splits
    monkeypatch.setattr(fast_conv, "BLOCK", 16)
    monkeypatch.setattr(fast_conv, "HALF_WORK", 0)
    monkeypatch.setattr(fast_parallel, "HALVES_PIXELS", 0)
    config = dict(input_shape=(16, 16, 1), filters=filters, depth=2, dropout=0.5)
    config["dtype"] = "float64"
    model = UNet(**config, seed=3)
    x = rng.random((n, 16, 16, 1))
    y = (rng.random((n, 16, 16, 1)) < 0.6).astype(np.float64)
    results = []
    for workers in (1, 2):
        monkeypatch.setattr(fast_parallel, "WORKERS", workers)
        assert fast_parallel.applies(model, n) == (workers == 2)
        twin = UNet(**config, seed=3)
        calls = []
        real = fast_parallel.run
        monkeypatch.setattr(fast_parallel, "run", lambda t, c=calls, r=real: c.append(1) or r(t))
        predicted = twin.predict(x)
        value, _ = forward_backward(twin, BinaryCrossentropy(), x, y)
        monkeypatch.setattr(fast_parallel, "run", real)
        assert (len(calls) > 20) == (workers == 2)  # every conv of the halves, forward and back
        results.append((predicted, value, [g.copy() for g in twin.get_gradients()]))
        assert not fast_parallel.halving()
    (p1, v1, g1), (p2, v2, g2) = results
    np.testing.assert_allclose(p2, p1, rtol=1e-12, atol=1e-12)
    assert v2 == pytest.approx(v1, rel=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-13)
    readable = UNet(**config, seed=3)
    for layer in readable.layers:
        if hasattr(layer, "fast"):
            layer.fast = False
    np.testing.assert_allclose(p2, readable.forward(x), rtol=1e-10, atol=1e-12)
