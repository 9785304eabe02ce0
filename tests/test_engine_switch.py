"""The one switch: ``UNet(fast=...)``, ``model.fast`` and ``with model.readable():`` decide
whether every layer runs its own forward and backward or the model's speed engine runs them;
both paths give the same numbers and pass the gradient check, through the batch split and the
layers' halves; ``describe_engine`` tells which code computes each layer."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet import UNet, gradcheck
from numpy_unet.fast import Engine, Rules
from numpy_unet.fast import workers as fast_workers
from numpy_unet.gradcheck import ModelWithLoss
from numpy_unet.layers import Conv2D, ReLU, UpSampling2D
from numpy_unet.losses import BinaryCrossentropy
from numpy_unet.teach.checks import random_biases


def spy(monkeypatch, cls: type, method: str) -> list[str]:
    """The names of the layers of class ``cls`` whose ``method`` ran."""
    ran: list[str] = []
    real = getattr(cls, method)

    def wrapped(self, *args, **kwargs):
        ran.append(getattr(self, "name", type(self).__name__))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, wrapped)
    return ran


def test_the_switch_sets_every_convs_engine_and_readable_puts_it_back():
    model = UNet((16, 16, 1), filters=2, depth=2)
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    assert model.fast and all(c.engine is model.engine for c in convs)
    with model.readable() as same:
        assert same is model and not model.fast and all(c.engine is None for c in convs)
    assert model.fast and all(c.engine is model.engine for c in convs)
    model.fast = False
    assert all(c.engine is None for c in convs)
    assert "off (model.fast is False)" in model.engine_headline(2)
    assert not UNet((16, 16, 1), filters=2, depth=2, fast=False).fast


def test_readable_runs_every_layers_own_code_and_gives_the_engines_numbers(monkeypatch, rng):
    model = UNet((16, 16, 1), filters=4, depth=2, dtype="float64", seed=0, dropout=0.5)
    model.engine = Engine(workers=1, rules=Rules(cores=2))  # split a batch on any machine
    x = rng.random((2, 16, 16, 1))
    y = (rng.random((2, 16, 16, 1)) < 0.6).astype(np.float64)
    relu, upsampling = spy(monkeypatch, ReLU, "forward"), spy(monkeypatch, UpSampling2D, "forward")
    engine_passes = spy(monkeypatch, Engine, "forward")
    results = []
    for readable in (True, False):
        state = [layer.rng.bit_generator.state for layer in model.layers if hasattr(layer, "rng")]
        relu.clear(), upsampling.clear(), engine_passes.clear()
        with model.readable() if readable else model.engine:  # (closing the engine after)
            loss = BinaryCrossentropy()
            value = loss.forward(model.forward(x, training=True), y)
            dx = model.backward(loss.backward())
        results.append((value, dx, [g.copy() for g in model.get_gradients()]))
        if readable:  # every conv's ReLU, every UpSampling2D, no pass through the engine
            relus = [la for la in model.layers if isinstance(getattr(la, "activation", 0), ReLU)]
            assert len(relu) == len(relus) == 13 and len(upsampling) == 2
            assert engine_passes == []
        else:  # the engine's pass: up-sampling fused, ReLUs inside the engine's products
            # but for the convs it leaves to their own im2col (the small ones, here)
            plan = dict(model.engine.plan(model, x.shape))
            own = sorted(f"{n}/relu" for n, how in plan.items() if "im2col" in how and n != "conv6")
            assert engine_passes and upsampling == [] and sorted(relu) == own
        for layer, s in zip([la for la in model.layers if hasattr(la, "rng")], state):
            layer.rng.bit_generator.state = s  # the same dropout masks again
    (v1, dx1, g1), (v2, dx2, g2) = results
    assert v1 == pytest.approx(v2, rel=1e-12)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-10, atol=1e-14)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("path", ["readable", "split", "halves"])
def test_the_whole_unet_passes_the_gradient_check_on_every_path(path, rng):
    if path == "split" and not fast_workers.can_start():
        pytest.skip("no worker processes here")
    model = UNet((8, 8, 1), filters=2, depth=2, dtype="float64", seed=0, dropout=0.5)
    random_biases(model, seed=1)  # keeps the ReLUs' inputs off their kink
    rules = Rules(cores=2, half_work=0, halves_pixels=0)
    if path == "readable":
        model.fast = False
    else:  # two parts (the second in a worker), or one batch with every layer in halves
        model.engine = Engine(workers=1 if path == "split" else 0, rules=rules)
    x = rng.random((2, 8, 8, 1))
    y = (rng.random((2, 8, 8, 1)) < 0.6).astype(np.float64)
    # elementwise on the readable path; on the engine's, 8 random directions per tensor (each
    # of thousands of passes meets a worker or two halves; the layers' own checks of the
    # engine's kernels are elementwise)
    checkable = ModelWithLoss(model, BinaryCrossentropy(), y)
    report = gradcheck(checkable, x, training=True, directional=path != "readable")
    if path != "readable":
        assert model.engine._mode == path
    assert report.passed and report.max_rel_error < 1e-6
    model.close()


def test_describe_engine_tells_which_code_runs_each_layer(capsys):
    model = UNet((64, 64, 1), filters=8, depth=2)
    model.engine = Engine(workers=1, rules=Rules(cores=2))
    model.describe_engine(batch_size=4)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("speed engine: on; a batch of 4 runs in 2 parts")
    rows = dict(line.split(None, 1) for line in out[3:])
    assert set(rows) == {layer.name for layer in model.layers}
    assert rows["upsample4"].startswith("in one with up4") and "pairs" in rows["conv1_1"]
    assert rows["pool1"] == "MaxPooling2D's own forward and backward"
    assert "im2col" in rows["conv6"]  # a 1x1 head on 2 channels: the layer's own code
    model.fast = False
    model.describe_engine(batch_size=4)
    assert capsys.readouterr().out.startswith("speed engine: off")
    wide = UNet((16, 16, 1), filters=64, depth=1)
    wide.engine = Engine(rules=Rules(cores=2))
    assert "halves on 2 cores" in wide.engine_headline(1)


def test_the_settings_are_checked():
    with pytest.raises(ValueError, match="workers must be None or an int >= 0, got -1"):
        UNet((16, 16, 1), filters=2, depth=1, workers=-1)
    model = UNet((16, 16, 1), filters=2, depth=1)
    with pytest.raises(ValueError, match="workers must be None or an int >= 0, got 1.5"):
        model.workers = 1.5
    with pytest.raises(ValueError, match="algorithm must be None or one of"):
        Engine(algorithm="fft")
    model.workers = 0
    assert model.engine.workers == 0 and model.engine_headline(4).endswith("BLAS's own threads")
