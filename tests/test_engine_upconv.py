"""numpy_unet.fast.upconv: UpSampling2D(2) + Conv2D(f, 2, 'same') in one, equal to the two
readable layers, gradient-checked, and taken by the UNet only where its switch is on."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet import UNet, gradcheck
from numpy_unet.fast import Engine, Rules
from numpy_unet.fast import upconv as fast_upconv
from numpy_unet.gradcheck import ModelWithLoss
from numpy_unet.layers import Conv2D, UpSampling2D
from numpy_unet.losses import BinaryCrossentropy
from numpy_unet.teach.checks import random_biases


class Fused:
    """The fused path as one layer, for the gradient checker."""

    def __init__(self, upconv: Conv2D) -> None:
        self.upsample, self.upconv = UpSampling2D(2), upconv
        self.engine = Engine(rules=Rules(cores=1))

    @property
    def params(self) -> dict:
        return self.upconv.params

    @property
    def grads(self) -> dict:
        return self.upconv.grads

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.engine.upsample_conv(self.upsample, self.upconv, x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.engine.upsample_conv_backward(self.upsample, self.upconv, dy)


@pytest.fixture(params=["four phases", "one product"])
def way(request, monkeypatch) -> str:
    """The four phase convolutions one by one, or side by side as one product (the rule
    picks the second for at most 8 filters): both ways on every shape."""
    together = request.param == "one product"
    monkeypatch.setattr(fast_upconv, "in_one_product", lambda c, f: together)
    return request.param


def readable(upconv: Conv2D, x: np.ndarray, dy: np.ndarray) -> tuple:
    """y, dx, dK, db of UpSampling2D then the conv, by the layers' own im2col code."""
    up = UpSampling2D(2)
    conv = Conv2D(
        upconv.filters,
        2,
        padding="same",
        activation=upconv.activation_name,
        use_bias=upconv.use_bias,
        dtype="float64",
    )
    conv.build(up.compute_output_shape(x.shape))
    conv.params = {k: v.copy() for k, v in upconv.params.items()}
    y = conv.forward(up.forward(x))
    dx = up.backward(conv.backward(dy))
    return y, dx, conv.grads["kernel"], conv.grads.get("bias")


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (5, 4), (3, 3)])
@pytest.mark.parametrize(("cin", "filters"), [(1, 2), (3, 2), (4, 5)])
@pytest.mark.parametrize(("activation", "use_bias"), [("relu", True), (None, True), (None, False)])
def test_fused_equals_the_two_layers(hw, cin, filters, activation, use_bias, way, rng):
    x = rng.standard_normal((2, *hw, cin))
    conv = Conv2D(
        filters,
        2,
        padding="same",
        activation=activation,
        use_bias=use_bias,
        dtype="float64",
        seed=1,
    )
    conv.build((2, 2 * hw[0], 2 * hw[1], cin))
    if use_bias:
        conv.params["bias"] = rng.standard_normal(filters)
    dy = rng.standard_normal((2, 2 * hw[0], 2 * hw[1], filters))
    y_ref, dx_ref, dk_ref, db_ref = readable(conv, x, dy)
    fused = Fused(conv)
    np.testing.assert_allclose(fused.forward(x), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused.backward(dy), dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["kernel"], dk_ref, rtol=1e-12, atol=1e-12)
    if use_bias:
        np.testing.assert_allclose(conv.grads["bias"], db_ref, rtol=1e-12, atol=1e-12)
    else:
        assert "bias" not in conv.grads


@pytest.mark.parametrize("hw", [(3, 2), (4, 4)])
@pytest.mark.parametrize("activation", ["relu", None])
def test_fused_gradcheck(hw, activation, way, rng):
    conv = Conv2D(3, 2, padding="same", activation=activation, dtype="float64", seed=2)
    conv.build((2, 2 * hw[0], 2 * hw[1], 2))
    conv.params["bias"] = rng.standard_normal(3) * 0.1
    report = gradcheck(Fused(conv), rng.standard_normal((2, *hw, 2)))
    assert report.passed and report.max_rel_error < 1e-6
    assert {c.name for c in report.checks} == {"input", "'kernel'", "'bias'"}


def test_the_unet_takes_it_only_where_the_switch_is_on(rng):
    x = rng.random((2, 8, 12, 1))
    y = (rng.random(x.shape) < 0.7).astype(float)
    results = []
    for fast in (True, False):
        model = UNet((8, 12, 1), filters=2, depth=2, dtype="float64", seed=3, fast=fast)
        ran = []
        for level in model.up:  # count the up-sampling layers' own forward passes
            real = level.upsample.forward
            level.upsample.forward = lambda u, training=False, r=real, ran=ran: (
                ran.append(1) or r(u)
            )
        loss = BinaryCrossentropy()
        loss.forward(model.forward(x, training=True), y)
        assert len(ran) == (0 if fast else 2)  # the up-sampling ran only on the readable path
        dx = model.backward(loss.backward())
        results.append((model.predict(x), dx, model.get_gradients()))
    (p1, dx1, g1), (p2, dx2, g2) = results
    np.testing.assert_allclose(p1, p2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-12, atol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_unet_gradcheck_through_the_fused_path(way, rng):
    model = UNet((6, 10, 1), filters=2, depth=1, dropout=0, dtype="float64", seed=4)
    random_biases(model, seed=0)  # keeps the ReLUs' inputs off their kink
    x = rng.random((2, 6, 10, 1))
    y = (rng.random(x.shape) < 0.7).astype(float)
    assert model.fast  # the check below goes through the fused path
    report = gradcheck(ModelWithLoss(model, BinaryCrossentropy(), y), x, training=True)
    assert report.passed and report.max_rel_error < 1e-6


def test_only_the_seeds_pair_is_fused(rng):
    up = UpSampling2D(2)
    assert Engine.fuses(up, Conv2D(4, 2, padding="same"))
    assert not Engine.fuses(up, Conv2D(4, 2, padding="valid"))
    assert not Engine.fuses(up, Conv2D(4, 3, padding="same"))
    assert not Engine.fuses(UpSampling2D(3), Conv2D(4, 2, padding="same"))
    # any other pair runs its two layers, forward and backward
    conv = Conv2D(3, 3, padding="same", dtype="float64", seed=0)
    engine, x = Engine(rules=Rules(cores=1)), rng.standard_normal((1, 3, 4, 2))
    y = engine.upsample_conv(up, conv, x)
    np.testing.assert_allclose(y, conv.forward(up.forward(x)))
    dx = engine.upsample_conv_backward(up, conv, np.ones_like(y))
    assert dx.shape == x.shape


def test_a_fused_backward_without_its_forward_is_refused():
    conv = Conv2D(3, 2, padding="same", dtype="float64", seed=0)
    conv.build((1, 4, 4, 2))
    with pytest.raises(RuntimeError, match="conv2d.*backward.*forward"):
        Engine(rules=Rules(cores=1)).upsample_conv_backward(
            UpSampling2D(2), conv, np.ones((1, 4, 4, 3))
        )
