"""Losses: values against their formulas, Keras's clipping, stability, gradients."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from numpy_unet import gradcheck, gradcheck_loss
from numpy_unet.layers import Sigmoid, Softmax
from numpy_unet.losses import BinaryCrossentropy, CategoricalCrossentropy, DiceLoss

SHAPES = [(2, 4, 4, 1), (1, 5, 3, 1), (3, 3, 6, 1)]


def masks(rng, shape, soft=False):
    return rng.random(shape) if soft else (rng.random(shape) < 0.7).astype(np.float64)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("soft", [False, True])
def test_bce_value_and_gradcheck(shape, soft, rng):
    y, p = masks(rng, shape, soft), rng.uniform(0.01, 0.99, shape)
    loss = BinaryCrossentropy()
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert loss.forward(p, y) == pytest.approx(expected, rel=1e-12)
    report = gradcheck_loss(loss, p, y)
    assert report.passed and report.max_rel_error < 1e-6


def test_bce_clips_like_keras_and_stays_finite_at_saturation():
    y = np.array([1.0, 0.0, 1.0, 0.0]).reshape(1, 2, 2, 1)
    p = np.array([0.0, 1.0, 1.0, 0.0]).reshape(1, 2, 2, 1)  # two certain mistakes
    loss = BinaryCrossentropy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss.forward(p, y)
        grad = loss.backward()
    eps = 1e-7
    expected = -(2 * np.log(eps) + 2 * np.log1p(-eps)) / 4
    assert value == pytest.approx(expected, rel=1e-9)
    np.testing.assert_array_equal(grad, 0.0)  # the clip is flat outside [eps, 1 - eps]
    for dtype in (np.float32, np.float64):  # the same in float32
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert np.isfinite(loss.forward(p.astype(dtype), y))
            assert loss.backward().dtype == dtype


def test_sigmoid_then_bce_gradient_is_p_minus_y(rng):
    logits, y = 3 * rng.standard_normal((2, 4, 4, 1)), masks(rng, (2, 4, 4, 1))
    sig, loss = Sigmoid(), BinaryCrossentropy()
    p = sig.forward(logits)
    loss.forward(p, y)
    dlogits = sig.backward(loss.backward())
    np.testing.assert_allclose(dlogits, (p - y) / p.size, rtol=1e-9)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("smooth", [1.0, 1e-3])
def test_dice_value_and_gradcheck(shape, smooth, rng):
    y, p = masks(rng, shape), rng.uniform(0.01, 0.99, shape)
    loss = DiceLoss(smooth=smooth)
    expected = 1 - (2 * np.sum(p * y) + smooth) / (p.sum() + y.sum() + smooth)
    assert loss.forward(p, y) == pytest.approx(expected, rel=1e-12)
    report = gradcheck_loss(loss, p, y)
    assert report.passed and report.max_rel_error < 1e-6


def test_dice_is_zero_for_a_perfect_prediction(rng):
    y = masks(rng, (2, 8, 8, 1))
    assert DiceLoss().forward(y, y) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_categorical_crossentropy_gradcheck(classes, weighted, rng):
    probs = Softmax().forward(rng.standard_normal((2, 4, 5, classes)))
    labels = rng.integers(0, classes, (2, 4, 5))
    weights = rng.uniform(1, 10, (2, 4, 5)) if weighted else None
    report = gradcheck_loss(CategoricalCrossentropy(), probs, labels, weight_map=weights)
    assert report.passed and report.max_rel_error < 1e-6


def test_categorical_crossentropy_value_labels_equal_one_hot(rng):
    probs = Softmax().forward(rng.standard_normal((2, 3, 3, 3)))
    labels = rng.integers(0, 3, (2, 3, 3))
    w = rng.uniform(0.5, 2, (2, 3, 3))
    loss = CategoricalCrossentropy()
    picked = np.take_along_axis(probs, labels[..., None], axis=-1)[..., 0]
    expected = -np.mean(w * np.log(picked))
    assert loss.forward(probs, labels, weight_map=w) == pytest.approx(expected, rel=1e-12)
    one_hot = np.eye(3)[labels]
    assert loss.forward(probs, one_hot, weight_map=w) == pytest.approx(expected, rel=1e-12)
    assert loss.forward(probs, labels) == pytest.approx(-np.mean(np.log(picked)), rel=1e-12)


def test_softmax_then_weighted_ce_gradient_is_w_times_p_minus_y(rng):
    logits = rng.standard_normal((2, 4, 4, 2))
    labels = rng.integers(0, 2, (2, 4, 4))
    w = rng.uniform(1, 10, (2, 4, 4))
    softmax, loss = Softmax(), CategoricalCrossentropy()
    p = softmax.forward(logits)
    loss.forward(p, labels, weight_map=w)
    dlogits = softmax.backward(loss.backward())
    np.testing.assert_allclose(dlogits, w[..., None] * (p - np.eye(2)[labels]) / w.size, rtol=1e-9)

    # and the composition, checked numerically as one function of the logits
    class SoftmaxCE:
        params, grads = {}, {}

        def forward(self, x, training=False):
            return np.array(loss.forward(softmax.forward(x), labels, weight_map=w))

        def backward(self, dy):
            return softmax.backward(loss.backward() * dy)

    assert gradcheck(SoftmaxCE(), logits).passed


def unnormalised_probs(rng, shape, spread=0.08):
    """Probabilities whose per-pixel sums are off 1 by up to ``spread``, each value < 1."""
    raw = rng.uniform(0.05, 1.0, shape)
    scale = rng.uniform(1 - spread, 1 + spread, shape[:-1] + (1,))
    return raw / raw.sum(axis=-1, keepdims=True) * scale


@pytest.mark.parametrize("classes", [3, 4])
def test_categorical_crossentropy_renormalises_like_keras(classes, rng):
    probs = unnormalised_probs(rng, (2, 4, 5, classes))
    sums = probs.sum(axis=-1, keepdims=True)
    assert np.abs(sums - 1).max() > 1e-3  # the old check refused these
    labels = rng.integers(0, classes, (2, 4, 5))
    w = rng.uniform(0.5, 5, (2, 4, 5))
    loss = CategoricalCrossentropy()
    value = loss.forward(probs, labels, weight_map=w)
    assert value == pytest.approx(loss.forward(probs / sums, labels, weight_map=w), rel=1e-12)
    # Keras's categorical_crossentropy on probabilities: divide by the sum, clip, -sum y log
    keras = np.clip(probs / sums, 1e-7, 1 - 1e-7)
    picked = np.take_along_axis(keras, labels[..., None], axis=-1)[..., 0]
    assert value == pytest.approx(-np.mean(w * np.log(picked)), rel=1e-12)
    # further off, refused by default and accepted with sum_tolerance=np.inf, as Keras does
    with pytest.raises(ValueError, match=r"CategoricalCrossentropy: y_pred must sum to 1"):
        loss.forward(0.5 * probs, labels)
    anything = CategoricalCrossentropy(sum_tolerance=np.inf)
    assert anything.forward(0.5 * probs, labels) == pytest.approx(
        anything.forward(probs, labels), rel=1e-12
    )


@pytest.mark.parametrize("classes", [3, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_categorical_crossentropy_gradcheck_unnormalised(classes, weighted, rng):
    probs = unnormalised_probs(rng, (2, 4, 5, classes))
    assert probs.dtype == np.float64 and np.abs(probs.sum(axis=-1) - 1).max() > 1e-3
    labels = rng.integers(0, classes, (2, 4, 5))
    weights = rng.uniform(1, 10, (2, 4, 5)) if weighted else None
    loss = CategoricalCrossentropy()
    report = gradcheck_loss(loss, probs, labels, weight_map=weights)
    assert report.passed and report.max_rel_error < 1e-6
    # the loss ignores a common scale of a pixel's predictions: no gradient along y_pred
    loss.forward(probs, labels, weight_map=weights)
    along = np.sum(probs * loss.backward(), axis=-1)
    np.testing.assert_allclose(along, 0.0, atol=1e-15)


def test_categorical_crossentropy_messages_name_it(rng):
    with pytest.raises(ValueError, match=r"^CategoricalCrossentropy: epsilon must lie"):
        CategoricalCrossentropy(epsilon=0)
    with pytest.raises(ValueError, match=r"^CategoricalCrossentropy: sum_tolerance"):
        CategoricalCrossentropy(sum_tolerance=0)
    probs = Softmax().forward(rng.standard_normal((1, 3, 3, 2)))
    probs[0, 1, 1] = 0.0  # a pixel with nothing to renormalise
    with pytest.raises(ValueError, match=r"^CategoricalCrossentropy: y_pred is 0 in every"):
        CategoricalCrossentropy(sum_tolerance=np.inf).forward(probs, np.zeros((1, 3, 3), int))
    with pytest.raises(ValueError, match=r"^CategoricalCrossentropy: y_pred must lie in"):
        CategoricalCrossentropy().forward(-probs, np.zeros((1, 3, 3), int))


def test_losses_refuse_bad_values(rng):
    p = rng.uniform(0.1, 0.9, (1, 4, 4, 1))
    with pytest.raises(ValueError, match=r"y_true must lie in \[0, 1\].*0/255"):
        BinaryCrossentropy().forward(p, 255.0 * (p > 0.5))
    with pytest.raises(ValueError, match="logits"):
        BinaryCrossentropy().forward(p * 10 - 5, (p > 0.5).astype(float))
    with pytest.raises(ValueError, match=r"shape \(1, 4, 4, 1\).*\(1, 4, 4\)"):
        DiceLoss().forward(p, p[..., 0])
    with pytest.raises(ValueError, match="NaN"):
        DiceLoss().forward(np.full((1, 2, 2, 1), np.nan), np.ones((1, 2, 2, 1)))
    probs = Softmax().forward(rng.standard_normal((1, 3, 3, 2)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        CategoricalCrossentropy().forward(probs, np.full((1, 3, 3), 2))
    with pytest.raises(ValueError, match="weight_map must have shape"):
        CategoricalCrossentropy().forward(probs, np.zeros((1, 3, 3), int), np.ones((3, 3)))
    with pytest.raises(ValueError, match="sum to 1"):
        CategoricalCrossentropy().forward(probs * 0.5, np.zeros((1, 3, 3), int))
    with pytest.raises(RuntimeError, match="before forward"):
        BinaryCrossentropy().backward()
