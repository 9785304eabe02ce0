"""The speed engine's other way to use the cores: each layer's work in two halves, one per
core (``fast/cores.py``). Every path that cuts its work in halves (the shifted sums, the
kernel gradient by rows or by filters, Winograd's tile rows) gives the numbers of the
undivided path and the loops, and passes the gradient check; a UNet's predict and training
step in halves give those of the undivided engine and of the readable layers."""

from __future__ import annotations

import numpy as np
import pytest

import numpy_unet.fast.conv as fast_conv
import numpy_unet.fast.winograd as fast_winograd
from numpy_unet import UNet, gradcheck
from numpy_unet.fast import Engine, Rules
from numpy_unet.gradcheck import away_from_kinks
from numpy_unet.layers import Conv2D
from numpy_unet.layers.loops import conv2d_backward_loops, conv2d_forward_loops
from numpy_unet.losses import BinaryCrossentropy


def counting(engine: Engine, monkeypatch) -> list[int]:
    """The sizes of the task lists the engine's cores are given (one entry per split)."""
    cores = engine.runtime().cores
    calls: list[int] = []
    real = cores.run
    monkeypatch.setattr(cores, "run", lambda tasks: calls.append(len(tasks)) or real(tasks))
    return calls


def two_cores(**rules) -> Engine:
    """Two cores on any machine, every conv worth its halves however small."""
    return Engine(rules=Rules(cores=2, half_work=0, **rules))


def test_halving_is_on_only_inside_and_never_inside_a_half():
    cores = two_cores().runtime().cores
    blas = cores.blas
    before = blas.threads()
    assert not cores.halving()
    seen = []
    with cores.halves():
        assert cores.halving()
        if blas.found:
            assert blas.threads() == 1  # BLAS on one thread the whole pass
        cores.run([lambda: seen.append(cores.halving())] * 2)
        assert cores.halving()  # back on after the halves
        with pytest.raises(ZeroDivisionError):
            cores.run([lambda: 1 / 0, lambda: None])
        assert cores.halving()
    assert seen == [False, False]  # a half is not cut in halves again
    assert not cores.halving() and blas.threads() == before  # BLAS as it was


def test_one_core_never_halves():
    cores = Engine(rules=Rules(cores=1)).runtime().cores
    with cores.halves():
        assert not cores.halving()


@pytest.mark.parametrize(("block", "cin", "filters"), [(3, 2, 5), (5, 5, 2), (7, 3, 3), (64, 4, 6)])
@pytest.mark.parametrize(
    ("k", "padding", "hw"), [(3, "same", (5, 6)), (2, "valid", (7, 4)), (1, "same", (3, 5))]
)
def test_shifted_products_in_halves_equal_loops(
    block, cin, filters, k, padding, hw, monkeypatch, rng
):
    # block = 3, 5, 7: the kernel gradient splits its rows (a long grid, 2 x block rows or
    # more; the plain, stacked and chunked paths inside each half); block = 64: it splits the
    # filters (a short grid, as the seed's deepest layers)
    engine = Engine(
        algorithm="shifted",
        rules=Rules(cores=2, half_work=0, block=block, block_floats=1, chunk_work=40),
    )
    halves = counting(engine, monkeypatch)
    x = rng.standard_normal((2, *hw, cin))
    conv = Conv2D(filters, k, padding=padding, activation="relu", dtype="float64", seed=3)
    conv.engine = engine
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(filters)
    dy = rng.standard_normal(conv.compute_output_shape(x.shape))
    with engine.runtime().cores.halves():
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


def test_the_kernel_gradient_splits_rows_or_filters(monkeypatch, rng):
    flat = rng.standard_normal((60, 3))
    dz_grid = rng.standard_normal((40, 5))
    by = {}
    for block in (4, 64):  # 40 rows >= 2 x 4: by rows; < 2 x 64: by its 5 filters (2 + 3)
        engine = two_cores(block=block, block_floats=1)
        halves = counting(engine, monkeypatch)
        cores = engine.runtime().cores
        plain = fast_conv.kernel_grad(flat, dz_grid, 2, 3, 9, cores)
        with cores.halves():
            by[block] = fast_conv.kernel_grad(flat, dz_grid, 2, 3, 9, cores)
        assert halves == [2]
        np.testing.assert_allclose(by[block], plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("min_tiles", [1, 128])
@pytest.mark.parametrize(("padding", "hw"), [("same", (5, 6)), ("valid", (9, 4)), ("same", (8, 8))])
def test_winograd_in_halves_of_tile_rows_equals_loops(min_tiles, padding, hw, monkeypatch, rng):
    # tile rows 3, 4 and 4 cut in halves; min_tiles = 1: blocks of one tile row
    # (tile_floats = 1); 128: each half in one block
    engine = Engine(
        algorithm="winograd",
        rules=Rules(
            cores=2, half_work=0, tile_floats=1, threads_tile_floats=1, min_tiles=min_tiles
        ),
    )
    halves = counting(engine, monkeypatch)
    x = rng.standard_normal((2, *hw, 3))
    conv = Conv2D(4, 3, padding=padding, dtype="float64", seed=5)
    conv.engine = engine
    conv.build(x.shape)
    conv.params["bias"] = rng.standard_normal(4)
    blocks = []
    real = fast_winograd.output_transform
    monkeypatch.setattr(fast_winograd, "output_transform", lambda *a: blocks.append(1) or real(*a))
    with engine.runtime().cores.halves():
        y = conv.forward(x)
        tile_rows = -(-conv.compute_output_shape(x.shape)[1] // 2)
        assert len(blocks) == (tile_rows if min_tiles == 1 else 2) and halves == [2]
        report = gradcheck(conv, x)
    z = conv2d_forward_loops(x, conv.params["kernel"], conv.params["bias"], padding)
    np.testing.assert_allclose(y, z, rtol=1e-12, atol=1e-12)
    assert report.passed and report.max_rel_error < 1e-6


@pytest.mark.parametrize(("filters", "n"), [(64, 2), (8, 1)])
def test_a_unet_runs_in_halves_with_the_same_numbers(filters, n, monkeypatch, rng):
    # filters 64 (wider than rules.split_filters), or a thin network's single image (its
    # pixel pairs, stacks and chunks in halves): predict and a training step, on one core
    # and on two; small blocks and no work threshold, so that every layer splits
    config = dict(input_shape=(16, 16, 1), filters=filters, depth=2, dropout=0.5)
    config["dtype"] = "float64"
    x = rng.random((n, 16, 16, 1))
    y = (rng.random((n, 16, 16, 1)) < 0.6).astype(np.float64)
    results = []
    for cores in (1, 2):
        twin = UNet(**config, seed=3)
        rules = Rules(cores=cores, half_work=0, block=16, block_floats=1, halves_pixels=0)
        twin.engine = Engine(workers=0, rules=rules)
        assert twin.engine.halves_pay(twin, x.shape) == (cores == 2)
        calls = counting(twin.engine, monkeypatch)
        predicted = twin.predict(x)
        loss = BinaryCrossentropy()
        value = loss.forward(twin.forward(x, training=True), y)
        twin.backward(loss.backward())
        assert (len(calls) > 20) == (cores == 2)  # every conv of the halves, forward and back
        results.append((predicted, value, [g.copy() for g in twin.get_gradients()]))
        assert not twin.engine.runtime().cores.halving()
    (p1, v1, g1), (p2, v2, g2) = results
    np.testing.assert_allclose(p2, p1, rtol=1e-12, atol=1e-12)
    assert v2 == pytest.approx(v1, rel=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-13)
    readable = UNet(**config, seed=3, fast=False)
    np.testing.assert_allclose(p2, readable.forward(x), rtol=1e-10, atol=1e-12)
