"""The speed engine's batch split (``fast/split.py``): a thin network's batch in parts side by
side, the parts after the first in worker processes, gives the readable path's numbers
(predictions, loss, gradients, dropout masks and generator states) through the model's own
``forward`` and ``backward``, and falls back to the undivided batch wherever it cannot run."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from numpy_unet import UNet
from numpy_unet.fast import Engine, Rules
from numpy_unet.fast import split as fast_split
from numpy_unet.fast import workers as fast_workers
from numpy_unet.losses import BinaryCrossentropy, CategoricalCrossentropy, DiceLoss
from numpy_unet.train.fit import forward_backward

pytestmark = pytest.mark.skipif(not fast_workers.can_start(), reason="no worker processes here")


def twins(workers: int = 1, **options) -> tuple[UNet, UNet]:
    """Two identical float64 models: the readable path, and one whose engine splits every
    batch in two, the second part in a worker process (on any machine)."""
    config = dict(input_shape=(8, 8, 1), filters=2, depth=2, dtype="float64", seed=5)
    config |= options
    model, twin = UNet(**config, fast=False), UNet(**config)
    twin.engine = Engine(workers=workers, rules=Rules(cores=2))
    return model, twin


@pytest.fixture(autouse=True)
def closed_engines():
    """Every model made here lets its workers go at the end of its test."""
    made = []
    real = UNet.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        made.append(self)

    UNet.__init__ = init
    yield
    UNet.__init__ = real
    for model in made:
        model.close()


def readable_step(model, loss, x, y, w=None):
    y_pred = model.forward(x, training=True)
    value = loss.forward(y_pred, y) if w is None else loss.forward(y_pred, y, w)
    model.backward(loss.backward())
    return value, y_pred


@pytest.mark.parametrize("n", [2, 3, 5])
def test_split_predict_equals_the_readable_forward(n, rng):
    model, twin = twins()
    x = rng.random((n, 8, 8, 1))
    assert twin.engine.splits(twin, n)
    np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    assert twin.engine.runtime().split.workers  # a worker ran the second part
    assert all(layer._cache is None for layer in twin.layers)  # predict keeps nothing


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_split_step_equals_the_readable_step(n, dropout, rng):
    model, twin = twins(dropout=dropout)
    x = rng.random((n, 8, 8, 1))
    y = (rng.random((n, 8, 8, 1)) < 0.6).astype(np.float64)
    for _ in range(2):  # twice: the worker's replica is reused, the masks move on alike
        v1, p1 = readable_step(model, BinaryCrossentropy(), x, y)
        v2, p2 = readable_step(twin, BinaryCrossentropy(), x, y)  # the same hand-written loop
        assert twin.engine._mode == "split"
        assert v2 == pytest.approx(v1, rel=1e-12)
        np.testing.assert_allclose(p2, p1, rtol=1e-12, atol=1e-12)
        for a, b in zip(model.get_gradients(), twin.get_gradients()):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)
    for a, b in zip(model.layers, twin.layers):  # the generators stand where they would
        if hasattr(a, "rng"):
            assert a.rng.random() == b.rng.random()


def test_the_input_gradient_is_joined_from_the_parts(rng):
    model, twin = twins(dropout=0.5)
    x = rng.random((3, 8, 8, 1))
    dy = rng.standard_normal((3, 8, 8, 1))
    model.forward(x, training=True)
    twin.forward(x, training=True)
    np.testing.assert_allclose(twin.backward(dy), model.backward(dy), rtol=1e-12, atol=1e-14)


def test_split_step_with_a_weight_map_and_softmax(rng):
    model, twin = twins(num_classes=3, dropout=0.5)
    x = rng.random((3, 8, 8, 1))
    labels = rng.integers(0, 3, (3, 8, 8))
    w = rng.uniform(1, 10, (3, 8, 8))
    v1, _ = readable_step(model, CategoricalCrossentropy(), x, labels, w)
    v2, _ = forward_backward(twin, CategoricalCrossentropy(), x, labels[..., None] * 1.0, w)
    assert v2 == pytest.approx(v1, rel=1e-12)
    for a, b in zip(model.get_gradients(), twin.get_gradients()):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)


def test_split_step_with_a_loss_over_the_whole_batch(rng):
    # the Dice loss is no mean over pixels: it is computed on the joined predictions
    model, twin = twins(dropout=0.5)
    x = rng.random((3, 8, 8, 1))
    y = (rng.random((3, 8, 8, 1)) < 0.6).astype(np.float64)
    v1, _ = readable_step(model, DiceLoss(), x, y)
    v2, _ = forward_backward(twin, DiceLoss(), x, y)
    assert v2 == pytest.approx(v1, rel=1e-12)
    for a, b in zip(model.get_gradients(), twin.get_gradients()):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)


def test_fit_is_the_same_split_or_not(rng, capsys):
    x = rng.random((6, 8, 8, 1))
    y = (rng.random((6, 8, 8, 1)) < 0.6).astype(np.float64)
    histories = []
    for workers in (0, 1):
        _, model = twins(workers=workers, dropout=0.5)
        model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, batch_size=3, epochs=2, verbose=1, seed=1)
        histories.append((history.history, model.get_weights()))
        first = capsys.readouterr().out.splitlines()[0]  # fit says what it starts
        assert first.startswith("speed engine: on") and ("worker process" in first) == workers
    (h1, w1), (h2, w2) = histories
    assert h1.keys() == h2.keys() and {"loss", "accuracy"} <= h1.keys()
    for key in set(h1) - {"time"}:  # everything but the wall clock
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-9)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_where_it_applies():
    engine = Engine(workers=1, rules=Rules(cores=2))
    thin, wide = UNet((8, 8, 1), filters=2, depth=2), UNet((8, 8, 1), filters=64, depth=1)
    assert engine.splits(thin, 2) and not engine.splits(thin, 1)  # one image: nothing to split
    assert not engine.halves_pay(thin, (1, 8, 8, 1))  # nor worth its layers' halves
    assert engine.halves_pay(thin, (1, 256, 256, 1))  # but a large one is
    assert not engine.splits(wide, 4) and engine.halves_pay(wide, (4, 8, 8, 1))
    assert not Engine(workers=0, rules=Rules(cores=2)).splits(thin, 4)
    assert [(s.start, s.stop) for s in fast_split.parts(5, 2)] == [(0, 2), (2, 5)]


def test_no_workers_means_no_process(rng):
    model = UNet((8, 8, 1), filters=2, depth=2, workers=0)
    model.predict(rng.random((4, 8, 8, 1), dtype=np.float32))
    assert model.engine.runtime().split.workers == []
    assert "keeps to this process" not in model.engine_headline(4)


def test_an_error_in_a_part_is_raised_and_blas_keeps_its_threads(rng):
    model, twin = twins()
    blas = twin.engine.runtime().blas
    before = blas.threads()
    x = rng.random((2, 8, 8, 1))
    x[1, 0, 0, 0] = np.nan  # the second part's first layer refuses it, in the worker
    with pytest.raises(ValueError, match="conv1_1.*NaN"):
        twin.predict(x)
    assert blas.threads() == before
    np.testing.assert_allclose(twin.predict(x[:1]), model.forward(x[:1]))  # still works
    np.testing.assert_allclose(twin.predict(x[:1].repeat(2, 0)), model.forward(x[:1].repeat(2, 0)))


def script_class() -> type:
    """A model class made inside a function, which no worker can import."""

    class ScriptUNet(UNet):
        pass

    return ScriptUNet


def test_workers_start_again_and_refuse_nothing_silently(rng):
    model, twin = twins()
    x = rng.random((2, 8, 8, 1))
    np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    (worker,) = twin.engine.runtime().split.workers
    assert os.readlink(f"/proc/self/fd/{worker.memory}").startswith("/memfd:") or (
        not os.path.exists("/proc")
    )  # shared, with no name in any folder
    worker.process.kill()  # a worker that died between two calls: a new one takes over
    worker.process.wait()
    np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    (again,) = twin.engine.runtime().split.workers
    assert again.process.pid != worker.process.pid
    # a class the worker cannot import (made in a function): undivided, the same numbers
    cls = script_class()
    script = cls(input_shape=(8, 8, 1), filters=2, depth=2, dtype="float64", seed=5)
    script.engine = Engine(workers=1, rules=Rules(cores=2))
    script.set_weights(model.get_weights())
    np.testing.assert_allclose(script.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    assert cls in script.engine.runtime().split.refused
    assert script.engine._mode != "split"
    # a class of this test module: the worker imports it, as this process does (its path)
    module_class = TestModuleUNet(input_shape=(8, 8, 1), filters=2, depth=2, dtype="float64")
    module_class.engine = Engine(workers=1, rules=Rules(cores=2))
    module_class.set_weights(model.get_weights())
    np.testing.assert_allclose(module_class.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    assert module_class.engine._mode == "split"


class TestModuleUNet(UNet):
    """A model class of this test module, which a worker imports from the tests' folder."""

    __test__ = False  # not a test class


def test_workers_that_cannot_run_leave_the_batch_undivided(monkeypatch, rng):
    # a Python that exits at once (here: `false`) gives workers that die before answering:
    # each call runs undivided, with the same numbers; after START_TRIES, none is started
    monkeypatch.setattr(fast_workers.sys, "executable", shutil.which("false") or "false")
    model, twin = twins()
    x = rng.random((2, 8, 8, 1))
    split = twin.engine.runtime().split
    for _ in range(fast_split.START_TRIES):
        np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    assert split.failures == fast_split.START_TRIES and split.team(twin, Rules()) is None
    np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)


def test_a_dropout_generator_that_cannot_advance_keeps_training_undivided(rng):
    # MT19937 has no advance(): inference still splits (no draws), training runs undivided
    model, twin = twins(dropout=0.5)
    for a, b in zip(model.layers, twin.layers):
        if hasattr(a, "rng"):
            a.rng = np.random.Generator(np.random.MT19937(1))
            b.rng = np.random.Generator(np.random.MT19937(1))
    x = rng.random((2, 8, 8, 1))
    np.testing.assert_allclose(twin.predict(x), model.forward(x), rtol=1e-12, atol=1e-12)
    assert twin.engine._mode == "split"
    np.testing.assert_allclose(
        twin.forward(x, training=True), model.forward(x, training=True), rtol=1e-12, atol=1e-12
    )
    assert twin.engine._mode != "split"
