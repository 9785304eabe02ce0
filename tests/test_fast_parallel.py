"""numpy_unet.fast.parallel: a batch split over the cores gives the readable path's numbers
(predictions, loss, gradients, dropout masks and generator states), and is taken only
where it applies."""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import pytest

from numpy_unet import UNet
from numpy_unet.fast import parallel
from numpy_unet.fast import workers as fast_workers
from numpy_unet.losses import BinaryCrossentropy, CategoricalCrossentropy, DiceLoss
from numpy_unet.train.fit import forward_backward


@pytest.fixture(params=["processes", "threads"])
def workers(request, monkeypatch):
    """Two parts, on any machine (the thread count of BLAS only changes the speed), the
    second in a worker process (``fast/workers.py``) or in a thread."""
    monkeypatch.setattr(parallel, "WORKERS", 2)
    monkeypatch.setattr(parallel, "PROCESSES", request.param == "processes")
    return request.param


def twins(**options) -> tuple[UNet, UNet]:
    """Two identical float64 models: one for the readable path, one for the split one."""
    config = dict(input_shape=(8, 8, 1), filters=2, depth=2, dtype="float64", seed=5)
    config |= options
    return UNet(**config), UNet(**config)


def readable_step(model, loss, x, y, w=None):
    y_pred = model.forward(x, training=True)
    value = loss.forward(y_pred, y) if w is None else loss.forward(y_pred, y, w)
    model.backward(loss.backward())
    return value, y_pred


@pytest.mark.parametrize("n", [2, 3, 5])
def test_split_predict_equals_the_readable_forward(n, workers, rng):
    model, twin = twins()
    x = rng.random((n, 8, 8, 1))
    assert parallel.applies(twin, n)
    np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    assert all(layer._cache is None for layer in twin.layers)
    if workers == "threads":
        assert all(layer._cache is None for r in twin._replicas for layer in r.layers)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_split_step_equals_the_readable_step(n, dropout, workers, rng):
    model, twin = twins(dropout=dropout)
    x = rng.random((n, 8, 8, 1))
    y = (rng.random((n, 8, 8, 1)) < 0.6).astype(np.float64)
    for _ in range(2):  # twice: the replica is reused, the masks move on alike
        v1, p1 = readable_step(model, BinaryCrossentropy(), x, y)
        v2, p2 = forward_backward(twin, BinaryCrossentropy(), x, y)
        assert v2 == pytest.approx(v1, rel=1e-12)
        np.testing.assert_allclose(p2, p1, rtol=1e-12, atol=1e-12)
        for a, b in zip(model.get_gradients(), twin.get_gradients()):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)
    for a, b in zip(model.layers, twin.layers):  # the generators stand where they would
        if hasattr(a, "rng"):
            assert a.rng.random() == b.rng.random()
    for replica in vars(twin).get("_replicas", []):  # and the copies keep their own
        for a, b in zip(replica.layers, twin.layers):
            assert getattr(a, "rng", None) is None or a.rng is not b.rng


def test_split_step_with_a_weight_map_and_softmax(workers, rng):
    model, twin = twins(num_classes=3, dropout=0.5)
    x = rng.random((3, 8, 8, 1))
    labels = rng.integers(0, 3, (3, 8, 8))
    w = rng.uniform(1, 10, (3, 8, 8))
    v1, _ = readable_step(model, CategoricalCrossentropy(), x, labels, w)
    v2, _ = forward_backward(twin, CategoricalCrossentropy(), x, labels[..., None] * 1.0, w)
    assert v2 == pytest.approx(v1, rel=1e-12)
    for a, b in zip(model.get_gradients(), twin.get_gradients()):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)


def test_split_step_with_a_loss_over_the_whole_batch(workers, rng):
    # the Dice loss is no mean over pixels: the parts' predictions are joined first
    model, twin = twins(dropout=0.5)
    x = rng.random((3, 8, 8, 1))
    y = (rng.random((3, 8, 8, 1)) < 0.6).astype(np.float64)
    v1, _ = readable_step(model, DiceLoss(), x, y)
    v2, _ = forward_backward(twin, DiceLoss(), x, y)
    assert v2 == pytest.approx(v1, rel=1e-12)
    for a, b in zip(model.get_gradients(), twin.get_gradients()):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)


def test_fit_is_the_same_split_or_not(monkeypatch, rng):
    x = rng.random((6, 8, 8, 1))
    y = (rng.random((6, 8, 8, 1)) < 0.6).astype(np.float64)
    histories = []
    for count in (1, 2):
        monkeypatch.setattr(parallel, "WORKERS", count)
        model, _ = twins(dropout=0.5)
        model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, batch_size=3, epochs=2, verbose=0, seed=1)
        histories.append((history.history, model.get_weights()))
    (h1, w1), (h2, w2) = histories
    assert h1.keys() == h2.keys() and {"loss", "accuracy"} <= h1.keys()
    for key in set(h1) - {"time"}:  # everything but the wall clock
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-9)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_where_it_applies(workers):
    thin, wide = UNet((8, 8, 1), filters=2, depth=2), UNet((8, 8, 1), filters=64, depth=1)
    assert parallel.applies(thin, 2) and parallel.splits_batch(thin, 2)
    assert not parallel.splits_batch(thin, 1)  # one image: nothing to split
    assert not parallel.halves_pay(thin, (1, 8, 8, 1))  # nor worth its layers' halves
    assert parallel.halves_pay(thin, (1, 256, 256, 1))  # but a large one is
    assert parallel.applies(wide, 4) and not parallel.splits_batch(wide, 4)
    assert parallel.halves_pay(wide, (4, 8, 8, 1))  # a wide network: each layer in halves
    assert [(s.start, s.stop) for s in parallel.parts(5)] == [(0, 2), (2, 5)]


def test_one_worker_is_the_readable_path(monkeypatch, rng):
    monkeypatch.setattr(parallel, "WORKERS", 1)
    model = UNet((8, 8, 1), filters=2, depth=2)
    assert not parallel.applies(model, 4)
    model.predict(rng.random((4, 8, 8, 1), dtype=np.float32))
    assert "_replicas" not in vars(model)


def test_an_error_in_a_part_is_raised_and_blas_keeps_its_threads(workers, rng):
    model = UNet((8, 8, 1), filters=2, depth=2)
    before = parallel.OPENBLAS[1]() if parallel.OPENBLAS is not None else None
    x = rng.random((2, 8, 8, 1), dtype=np.float32)
    x[1, 0, 0, 0] = np.nan  # the second part's first layer refuses it
    with pytest.raises(ValueError, match="conv1_1.*NaN"):
        model.predict(x)
    if before is not None:
        assert parallel.OPENBLAS[1]() == before
    np.testing.assert_allclose(model.predict(x[:1]), model.forward(x[:1]))  # still works


class ScriptUNet(UNet):
    """A model class of the test module's own, which a worker may not be able to import."""


def test_the_workers_start_again_and_refuse_nothing_silently(monkeypatch, rng):
    monkeypatch.setattr(parallel, "WORKERS", 2)
    monkeypatch.setattr(parallel, "PROCESSES", True)
    model, twin = twins()
    x = rng.random((2, 8, 8, 1))
    np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    started = fast_workers.workers(1)
    if started is None:
        pytest.skip("no worker process can start here")
    started[0].process.kill()  # a worker that died between two calls: a new one takes over
    started[0].process.wait()
    np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    assert fast_workers.workers(1)[0].process.pid != started[0].process.pid
    assert not pathlib.Path(fast_workers.workers(1)[0].shared.path).exists()  # mapped, unnamed
    # a class the worker cannot import (this module is not on its path): threads, same numbers
    monkeypatch.setattr(fast_workers, "REFUSED", set())
    script = ScriptUNet(input_shape=(8, 8, 1), filters=2, depth=2, dtype="float64", seed=5)
    script.set_weights(model.get_weights())
    np.testing.assert_allclose(script.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    assert ScriptUNet in fast_workers.REFUSED


def test_workers_that_cannot_run_leave_the_threads(monkeypatch, rng):
    # a Python that exits at once (here: `false`) gives workers that die before answering:
    # each call runs in threads, with the same numbers; after START_TRIES, none is started
    monkeypatch.setattr(parallel, "WORKERS", 2)
    monkeypatch.setattr(parallel, "PROCESSES", True)
    fast_workers.close_all()
    monkeypatch.setattr(fast_workers.sys, "executable", shutil.which("false") or "false")
    monkeypatch.setattr(fast_workers, "_failed", False)
    monkeypatch.setattr(fast_workers, "_died", 0)
    model, twin = twins()
    x = rng.random((2, 8, 8, 1))
    for _ in range(fast_workers.START_TRIES):
        np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    assert fast_workers._failed and fast_workers.workers(1) is None
    np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    monkeypatch.undo()
    fast_workers.close_all()  # the next test starts real workers again
