"""The gradient checker itself: it catches wrong gradients and says where."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet import GradcheckError, gradcheck, gradcheck_loss
from numpy_unet.layers import Conv2D, Dropout, UpSampling2D
from numpy_unet.losses import DiceLoss


class Scale:
    """A user-written layer (no base class): y = a * x**2, with a bug switchable on."""

    def __init__(self, bug: str | None = None) -> None:
        self.params = {"a": np.array([1.5])}
        self.grads: dict = {}
        self.bug = bug

    def forward(self, x, training=False):
        self.x = x
        return self.params["a"] * x**2

    def backward(self, dy):
        a, x = self.params["a"], self.x
        self.grads = {"a": np.array([np.sum(dy * x**2)])}
        if self.bug == "param":
            self.grads["a"] *= 1.01
        dx = dy * 2 * a * x
        if self.bug == "one element":
            dx = dx.copy()
            dx[0, 1, 2, 0] += 0.5
        return dx


class UpsamplingTakingOneElement(UpSampling2D):
    """The peers' classic bug: backward takes every second element instead of summing."""

    def backward(self, dy):
        self._check_backward(dy)
        return dy[:, ::2, ::2, :]


def test_correct_user_layer_passes(rng):
    report = gradcheck(Scale(), rng.standard_normal((2, 3, 4, 1)))
    assert report.passed
    assert [c.name for c in report.checks] == ["input", "'a'"]
    text = str(report)
    assert "input" in text and "'a'" in text and "max rel err" in text and "ok" in text


def test_wrong_input_gradient_is_caught_and_located(rng):
    with pytest.raises(GradcheckError) as info:
        gradcheck(Scale(bug="one element"), rng.standard_normal((2, 3, 4, 1)))
    message = str(info.value)
    assert "gradient of input" in message
    assert "element (0, 1, 2, 0)" in message
    assert "numerical" in message and "analytic" in message
    assert "Scale" in message
    assert not info.value.report.passed


def test_wrong_parameter_gradient_is_caught(rng):
    with pytest.raises(GradcheckError, match="gradient of 'a'"):
        gradcheck(Scale(bug="param"), rng.standard_normal((1, 2, 2, 1)))
    report = gradcheck(Scale(bug="param"), rng.standard_normal((1, 2, 2, 1)), raise_exception=False)
    assert [c.passed for c in report.checks] == [True, False]
    assert "FAIL" in str(report)


def test_classic_upsampling_bug_is_caught(rng):
    with pytest.raises(GradcheckError, match="UpsamplingTakingOneElement.*gradient of input"):
        gradcheck(UpsamplingTakingOneElement(2), rng.standard_normal((1, 3, 3, 2)))


def test_float32_is_refused_with_advice(rng):
    x = rng.standard_normal((1, 4, 4, 2))
    with pytest.raises(TypeError, match="input is float32.*float64"):
        gradcheck(Scale(), x.astype(np.float32))
    with pytest.raises(TypeError, match="parameter 'kernel' is float32.*dtype='float64'"):
        gradcheck(Conv2D(2, 3, padding="same"), x)  # float32 layer, float64 input


def test_unreplayable_randomness_is_reported(rng):
    class NoisyLayer:
        params, grads = {}, {}

        def forward(self, x, training=False):
            return x * np.random.default_rng().random()  # a fresh generator every call

        def backward(self, dy):
            return dy

    with pytest.raises(GradcheckError, match="different outputs"):
        gradcheck(NoisyLayer(), rng.standard_normal((1, 2, 2, 1)))


def test_seeded_dropout_is_replayed_and_its_rng_restored(rng):
    layer = Dropout(0.5, seed=3)
    state = layer.rng.bit_generator.state
    assert gradcheck(layer, rng.standard_normal((2, 4, 4, 2)), training=True).passed
    twin = Dropout(0.5, seed=3)
    twin.rng.bit_generator.state = state
    x = np.ones((2, 4, 4, 2))
    # the layer has advanced exactly as if one forward had run
    twin.forward(x, training=True)
    np.testing.assert_array_equal(layer.forward(x, training=True), twin.forward(x, training=True))


def test_directional_mode_passes_and_catches(rng):
    x = rng.standard_normal((2, 6, 6, 3))
    conv = Conv2D(4, 3, padding="same", dtype="float64", seed=0)
    report = gradcheck(conv, x, directional=True, n_directions=4)
    assert report.passed and "directional" in report.mode
    assert all(c.checked == 4 for c in report.checks)
    with pytest.raises(GradcheckError, match="direction"):
        gradcheck(
            Scale(bug="one element"),
            rng.standard_normal((2, 3, 4, 1)),
            directional=True,
            n_directions=3,
        )


def test_checker_leaves_parameters_and_inputs_unchanged(rng):
    conv = Conv2D(2, 2, padding="same", dtype="float64", seed=0)
    x = rng.standard_normal((1, 3, 3, 2))
    x_before = x.copy()
    conv.build(x.shape)
    before = conv.get_weights()
    gradcheck(conv, x)
    for b, a in zip(before, conv.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, x_before)


def test_loss_checker_catches_a_wrong_loss_gradient(rng):
    class BrokenDice(DiceLoss):
        def backward(self):
            return -super().backward()

    y = (rng.random((1, 3, 3, 1)) < 0.5).astype(float)
    p = rng.uniform(0.1, 0.9, (1, 3, 3, 1))
    assert gradcheck_loss(DiceLoss(), p, y).passed
    with pytest.raises(GradcheckError, match="BrokenDice: gradient of y_pred"):
        gradcheck_loss(BrokenDice(), p, y)


def test_the_checker_does_not_walk_into_modules():
    # a layer may keep a module (Conv2D keeps the speed engine it used): its globals are
    # not the layer's state, and their random generators are not the layer's to restore
    import types

    from numpy_unet.gradcheck import _generators

    engine = types.ModuleType("engine")
    engine.rng = np.random.default_rng(0)
    layer = types.SimpleNamespace(engine=engine, rng=np.random.default_rng(1))
    assert _generators(layer) == [layer.rng]
