"""The checks of every layer, loss and a small UNet, in one registry, by course exercise.

``CHECKS`` maps an exercise name (``"conv2d_backward"``, ...) to its named :class:`Case` s.
A case builds a layer from ``lib``, the classes under test, and returns a
:class:`~numpy_unet.gradcheck.GradcheckReport`: a gradient check against central
differences, or a check of a stated rule (a tie in max pooling, an exact zero in a ReLU)
against the expected values. Every tensor of a report is scored on its own. Three users:

- ``numpy-unet gradcheck`` (:func:`numpy_unet.teach.selfcheck.builtin_checks`) runs every
  case on the package's own classes and prints each report;
- ``numpy-unet grade`` (:mod:`numpy_unet.teach.grading`) runs them on the classes of a
  student's copy, with this package's checker: nothing in the copy decides the score;
- ``tests/test_checks.py`` runs each case; the other test files sweep many more
  configurations.

All inputs are float64 and kept off the ReLU's kink (:func:`away_from_kinks`), except in the
cases that test what happens on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from ..gradcheck import (
    GradcheckReport,
    ModelWithLoss,
    away_from_kinks,
    compare,
    gradcheck,
    gradcheck_loss,
)
from ..layers.loops import (
    conv2d_forward_loops,
    conv2d_transpose_forward_loops,
    maxpool_backward_loops,
    maxpool_forward_loops,
)

CLASSES = (
    "ReLU Sigmoid Softmax Conv2D Conv2DTranspose MaxPooling2D UpSampling2D Concatenate "
    "Cropping2D Dropout BinaryCrossentropy DiceLoss CategoricalCrossentropy UNet"
).split()


def package_lib() -> SimpleNamespace:
    """This package's own classes, as the cases take them."""
    from .. import layers, losses
    from ..model import UNet

    found = {name: getattr(layers, name, None) or getattr(losses, name, None) for name in CLASSES}
    return SimpleNamespace(**(found | {"UNet": UNet}))


@dataclass
class Case:
    """One named configuration of an exercise's checks."""

    name: str
    run: Callable[[SimpleNamespace], GradcheckReport]


CHECKS: dict[str, list[Case]] = {}

# exercises whose checks need other exercises' code; the grader says so in their row
NEEDS = {
    "unet_backward": [
        "relu_backward",
        "sigmoid_backward",
        "conv2d_backward",
        "maxpool_backward",
        "upsampling_backward",
        "concatenate_backward",
        "dropout_backward",
        "bce_backward",
    ]
}


def case(exercise: str, name: str) -> Callable:
    """Register a case of ``exercise`` under ``name``."""

    def register(fn: Callable[[SimpleNamespace], GradcheckReport]) -> Callable:
        CHECKS.setdefault(exercise, []).append(Case(name, fn))
        return fn

    return register


def x_of(*shape: int, seed: int = 0) -> np.ndarray:
    """Standard normal float64 values of ``shape``, none within 1e-3 of 0."""
    return away_from_kinks(np.random.default_rng(seed).standard_normal(shape))


def probs_of(*shape: int, seed: int = 0) -> np.ndarray:
    """Probabilities in [0.05, 0.95]: away from the losses' clipping."""
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape)


def random_biases(model: object, seed: int | np.random.Generator = 0, scale: float = 0.1) -> None:
    """Give every bias of ``model`` a small random value, none within 1e-4 of 0.

    With zero biases, a conv whose window sees only zeros (a dead ReLU's output, or
    padding) has a pre-activation of exactly 0: right on the ReLU's kink.
    """
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        if name.endswith("bias"):
            p[...] = scale * away_from_kinks(rng.standard_normal(p.shape), 1e-3)


def rule(layer: str, tensor: str, expected: np.ndarray, given: np.ndarray) -> GradcheckReport:
    """A report of ``given`` against the values a stated rule gives (to rounding)."""
    report = GradcheckReport(layer, "rule (expected against given)", 0.0, 1e-12, 1e-9)
    report.checks.append(compare(tensor, expected, given, atol=1e-12, rtol=1e-9))
    return report


# -- activations --------------------------------------------------------------------------
@case("relu_backward", "relu")
def _relu(lib):
    return gradcheck(lib.ReLU(name="relu"), x_of(2, 4, 5, 3), raise_exception=False)


@case("relu_backward", "relu at 0")
def _relu_zero(lib):
    """Keras's rule at the kink: x == 0 passes no gradient."""
    x = np.array([-1.0, 0.0, 2.0, 0.0, -0.0, 3.0]).reshape(1, 1, 6, 1)
    layer = lib.ReLU(name="relu at 0")
    layer.forward(x)
    dx = layer.backward(np.full(x.shape, 5.0))
    return rule(layer.name, "gradient of input at x = 0", (x > 0) * 5.0, dx)


@case("sigmoid_backward", "sigmoid")
def _sigmoid(lib):
    return gradcheck(lib.Sigmoid(name="sigmoid"), 2 * x_of(2, 4, 5, 3), raise_exception=False)


@case("softmax_backward", "softmax, 3 classes")
def _softmax(lib):
    layer = lib.Softmax(name="softmax, 3 classes")
    return gradcheck(layer, 2 * x_of(2, 4, 5, 3), raise_exception=False)


@case("softmax_backward", "softmax, 2 classes")
def _softmax2(lib):
    layer = lib.Softmax(name="softmax, 2 classes")
    return gradcheck(layer, 2 * x_of(2, 3, 4, 2, seed=1), raise_exception=False)


# -- convolutions -------------------------------------------------------------------------
def _conv(lib, k: int, padding: str, hw: tuple, activation: str | None = None):
    name = f"conv2d {k}x{k} '{padding}'" + (f" {activation}" if activation else "")
    layer = lib.Conv2D(
        4, k, padding=padding, activation=activation, dtype="float64", seed=k, name=name
    )
    layer.build((None, *hw, 3))
    random_biases(layer, seed=k)
    return gradcheck(layer, x_of(2, *hw, 3), raise_exception=False)


for _k, _padding, _hw, _act, _label in [
    (3, "same", (5, 6), None, "conv2d 3x3 'same'"),
    (2, "same", (4, 5), None, "conv2d 2x2 'same' (even kernel)"),
    (3, "valid", (6, 5), None, "conv2d 3x3 'valid'"),
    (1, "valid", (3, 3), None, "conv2d 1x1"),
    (3, "same", (4, 7), None, "conv2d 3x3 'same', odd width"),
]:
    case("conv2d_backward", _label)(
        lambda lib, k=_k, p=_padding, hw=_hw, a=_act: _conv(lib, k, p, hw, a)
    )


def _transpose(lib, k: int, s: int, padding: str):
    name = f"conv2d_transpose {k}x{k} stride {s} '{padding}'"
    layer = lib.Conv2DTranspose(
        3, k, strides=s, padding=padding, dtype="float64", seed=k, name=name
    )
    return gradcheck(layer, x_of(2, 3, 4, 2), raise_exception=False)


for _k, _s, _padding in [(2, 2, "valid"), (3, 2, "same"), (3, 1, "valid")]:
    case("conv2d_transpose_backward", f"{_k}x{_k} stride {_s} '{_padding}'")(
        lambda lib, k=_k, s=_s, p=_padding: _transpose(lib, k, s, p)
    )


# -- pooling, up-sampling, merging, cropping, dropout --------------------------------------
@case("maxpool_backward", "2x2")
def _maxpool(lib):
    return gradcheck(
        lib.MaxPooling2D(2, name="maxpool 2x2"), x_of(2, 6, 5, 3), raise_exception=False
    )


@case("maxpool_backward", "3x3 stride 2 'same'")
def _maxpool_same(lib):
    layer = lib.MaxPooling2D(3, strides=2, padding="same", name="maxpool 3x3 stride 2 'same'")
    return gradcheck(layer, x_of(1, 7, 6, 2), raise_exception=False)


@case("maxpool_backward", "ties")
def _maxpool_ties(lib):
    """The stated rule: a window's first maximum (row by row) gets all of dy."""

    x = np.array([[3, 3, 0, 1], [1, 0, 1, 1], [2, 5, 4, 4], [5, 2, 4, 4]], float)[None, :, :, None]
    layer = lib.MaxPooling2D(2, name="maxpool ties")
    dy = np.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    layer.forward(x)
    _, where = maxpool_forward_loops(x, (2, 2), (2, 2))
    expected = maxpool_backward_loops(dy, where, x.shape)
    return rule(layer.name, "gradient of input at tied maxima", expected, layer.backward(dy))


@case("upsampling_backward", "2x2")
def _upsampling(lib):
    return gradcheck(
        lib.UpSampling2D(2, name="upsampling 2x2"), x_of(2, 3, 4, 2), raise_exception=False
    )


@case("upsampling_backward", "2x3")
def _upsampling23(lib):
    layer = lib.UpSampling2D((2, 3), name="upsampling 2x3")
    return gradcheck(layer, x_of(1, 2, 3, 2), raise_exception=False)


@case("concatenate_backward", "two inputs")
def _concatenate(lib):
    inputs = [x_of(2, 4, 4, 3), x_of(2, 4, 4, 2, seed=1)]
    return gradcheck(lib.Concatenate(name="concatenate"), inputs, raise_exception=False)


@case("cropping_backward", "((1, 2), (0, 1))")
def _cropping(lib):
    layer = lib.Cropping2D(((1, 2), (0, 1)), name="cropping")
    return gradcheck(layer, x_of(2, 6, 5, 2), raise_exception=False)


@case("dropout_backward", "training (seeded mask)")
def _dropout(lib):
    layer = lib.Dropout(0.5, seed=0, name="dropout, training")
    return gradcheck(layer, x_of(2, 4, 4, 3), training=True, raise_exception=False)


@case("dropout_backward", "inference")
def _dropout_inference(lib):
    layer = lib.Dropout(0.5, seed=0, name="dropout, inference")
    return gradcheck(layer, x_of(2, 4, 4, 3), training=False, raise_exception=False)


# -- losses --------------------------------------------------------------------------------
def _masks(*shape: int) -> np.ndarray:
    return (probs_of(*shape, seed=1) > 0.4).astype(np.float64)


@case("bce_backward", "binary cross-entropy")
def _bce(lib):
    probs, y = probs_of(2, 4, 4, 1), _masks(2, 4, 4, 1)
    return gradcheck_loss(lib.BinaryCrossentropy(), probs, y, raise_exception=False)


@case("dice_backward", "Dice loss")
def _dice(lib):
    probs, y = probs_of(2, 4, 4, 1), _masks(2, 4, 4, 1)
    return gradcheck_loss(lib.DiceLoss(), probs, y, raise_exception=False)


@case("cce_backward", "cross-entropy with a weight map")
def _cce(lib):
    e = np.exp(x_of(2, 4, 4, 3))
    probs = e / e.sum(axis=-1, keepdims=True)  # a softmax output, computed here
    labels = np.random.default_rng(0).integers(0, 3, (2, 4, 4))
    weights = 10 * probs_of(2, 4, 4)
    loss = lib.CategoricalCrossentropy()
    return gradcheck_loss(loss, probs, labels, weight_map=weights, raise_exception=False)


# -- the whole U ---------------------------------------------------------------------------
@case("unet_backward", "depth-2 UNet with its loss")
def _unet(lib):
    """A depth-2 UNet with 2 filters and binary cross-entropy, from the input through every
    parameter (dropout on, seeded), by every layer's own code (the speed switch off)."""
    model = lib.UNet((8, 8, 1), filters=2, depth=2, dtype="float64", seed=0, fast=False)
    random_biases(model)
    x = np.random.default_rng(1).random((1, 8, 8, 1))
    y = (np.random.default_rng(2).random((1, 8, 8, 1)) > 0.3).astype(np.float64)
    checkable = ModelWithLoss(model, lib.BinaryCrossentropy(), y)
    return gradcheck(checkable, x, training=True, raise_exception=False)


# -- forward passes (`numpy-unet exercises --level forward`): against references ------------
def _forward(lib_layer, x, expected, name: str, training: bool = False) -> GradcheckReport:
    return rule(name, "output", expected, lib_layer.forward(x, training=training))


@case("relu_forward", "relu")
def _relu_fwd(lib):
    x = np.array([-2.0, -0.0, 0.0, 0.5, 3.0]).reshape(1, 1, 5, 1)
    return _forward(lib.ReLU(name="relu"), x, np.maximum(x, 0), "relu forward")


@case("sigmoid_forward", "sigmoid, down to -800")
def _sigmoid_fwd(lib):
    x = np.array([-800.0, -5.0, 0.0, 2.0, 40.0]).reshape(1, 1, 5, 1)
    expected = np.exp(-np.logaddexp(0, -x))  # 1 / (1 + exp(-x)), computed without overflow
    return _forward(lib.Sigmoid(name="sigmoid"), x, expected, "sigmoid forward")


@case("softmax_forward", "softmax, large logits")
def _softmax_fwd(lib):
    x = 300 * x_of(2, 3, 4, 3)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return _forward(lib.Softmax(name="softmax"), x, e / e.sum(-1, keepdims=True), "softmax forward")


def _conv_fwd(lib, k: int, padding: str, hw: tuple) -> GradcheckReport:

    layer = lib.Conv2D(4, k, padding=padding, dtype="float64", seed=k, name="conv2d")
    layer.build((None, *hw, 3))
    random_biases(layer, seed=k)
    x = x_of(2, *hw, 3)
    expected = conv2d_forward_loops(x, layer.params["kernel"], layer.params["bias"], padding)
    return _forward(layer, x, expected, f"conv2d {k}x{k} '{padding}' forward")


for _k, _padding, _hw in [(3, "same", (5, 6)), (2, "same", (4, 5)), (3, "valid", (6, 5))]:
    case("conv2d_forward", f"{_k}x{_k} '{_padding}'")(
        lambda lib, k=_k, p=_padding, hw=_hw: _conv_fwd(lib, k, p, hw)
    )


def _transpose_fwd(lib, k: int, s: int, padding: str) -> GradcheckReport:

    layer = lib.Conv2DTranspose(3, k, strides=s, padding=padding, dtype="float64", seed=k)
    x = x_of(2, 3, 4, 2)
    layer.build(x.shape)
    random_biases(layer, seed=k)
    full = conv2d_transpose_forward_loops(x, layer.params["kernel"], layer.params["bias"], (s, s))
    top = max(k - s, 0) // 2 if padding == "same" else 0  # Keras: the smaller half on top
    ho, wo = (3 * s, 4 * s) if padding == "same" else full.shape[1:3]
    expected = full[:, top : top + ho, top : top + wo]
    return _forward(layer, x, expected, f"conv2d_transpose {k}x{k}/{s} '{padding}' forward")


for _k, _s, _padding in [(2, 2, "valid"), (3, 2, "same")]:
    case("conv2d_transpose_forward", f"{_k}x{_k} stride {_s} '{_padding}'")(
        lambda lib, k=_k, s=_s, p=_padding: _transpose_fwd(lib, k, s, p)
    )


@case("maxpool_forward", "2x2, odd size")
def _maxpool_fwd(lib):

    x = x_of(2, 7, 6, 3)
    expected, _ = maxpool_forward_loops(x, (2, 2), (2, 2))
    return _forward(lib.MaxPooling2D(2), x, expected, "maxpool 2x2 forward")


@case("maxpool_forward", "3x3 stride 2 'same'")
def _maxpool_same_fwd(lib):

    x = x_of(1, 7, 6, 2)
    xp = np.pad(x, ((0, 0), (1, 1), (0, 1), (0, 0)), constant_values=-np.inf)  # Keras's pads
    expected, _ = maxpool_forward_loops(xp, (3, 3), (2, 2))
    layer = lib.MaxPooling2D(3, strides=2, padding="same")
    return _forward(layer, x, expected, "maxpool 3x3/2 'same' forward")


@case("upsampling_forward", "2x3")
def _upsampling_fwd(lib):
    x = x_of(2, 3, 4, 2)
    expected = np.repeat(np.repeat(x, 2, axis=1), 3, axis=2)
    return _forward(lib.UpSampling2D((2, 3)), x, expected, "upsampling 2x3 forward")


@case("concatenate_forward", "two inputs")
def _concatenate_fwd(lib):
    a, b = x_of(2, 4, 4, 3), x_of(2, 4, 4, 2, seed=1)
    layer = lib.Concatenate()
    return rule("concatenate forward", "output", np.concatenate([a, b], -1), layer.forward([a, b]))


@case("cropping_forward", "((1, 2), (0, 1))")
def _cropping_fwd(lib):
    x = x_of(2, 6, 5, 2)
    layer = lib.Cropping2D(((1, 2), (0, 1)))
    return _forward(layer, x, x[:, 1:4, 0:4], "cropping forward")


@case("dropout_forward", "training: kept values scaled by 1 / (1 - rate)")
def _dropout_fwd(lib):
    x = x_of(1, 40, 50, 5)
    y = lib.Dropout(0.5, seed=0).forward(x, training=True)
    kept = y != 0
    expected = np.where(kept, 2 * x, 0.0)  # inverted dropout: what survives is doubled
    report = rule("dropout forward", "output", expected, y)
    share = compare("share of values kept", np.array([0.5]), np.array([kept.mean()]), 0.03, 0)
    report.checks.append(share)
    return report
