"""The gradient checks of every built-in layer, loss and a small UNet, in one registry.

``CHECKS`` maps an exercise name (``"conv2d_backward"``, ...) to a function that runs its
checks and returns one :class:`~numpy_unet.gradcheck.GradcheckReport` per configuration.
Three users share it:

- ``numpy-unet gradcheck`` (:func:`numpy_unet.teach.selfcheck.builtin_checks`) runs them all
  and prints every report;
- ``numpy-unet grade`` runs each as the check of the exercise of the same name;
- ``tests/test_checks.py`` runs each; the other test files sweep many more configurations.

All inputs are float64 and kept off the ReLU's kink (:func:`away_from_kinks`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..gradcheck import GradcheckReport, ModelWithLoss, away_from_kinks, gradcheck, gradcheck_loss
from ..layers import (
    Concatenate,
    Conv2D,
    Conv2DTranspose,
    Cropping2D,
    Dropout,
    MaxPooling2D,
    ReLU,
    Sigmoid,
    Softmax,
    UpSampling2D,
)
from ..losses import BinaryCrossentropy, CategoricalCrossentropy, DiceLoss
from ..model import UNet

Check = Callable[[bool], list[GradcheckReport]]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    """Register a check under the exercise's name."""

    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def x_of(*shape: int, seed: int = 0) -> np.ndarray:
    """Standard normal float64 values of ``shape``, none within 1e-3 of 0."""
    return away_from_kinks(np.random.default_rng(seed).standard_normal(shape))


def probs_of(*shape: int, seed: int = 0) -> np.ndarray:
    """Probabilities in [0.05, 0.95]: away from the losses' clipping."""
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape)


def random_biases(model: object, seed: int = 0, scale: float = 0.1) -> None:
    """Give every bias of ``model`` a small random value, none within 1e-4 of 0.

    With zero biases, a conv whose window sees only zeros (a dead ReLU's output, or
    padding) has a pre-activation of exactly 0: right on the ReLU's kink.
    """
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        if name.endswith("bias"):
            p[...] = scale * away_from_kinks(rng.standard_normal(p.shape), 1e-3)


@check("relu_backward")
def relu(raise_exception: bool = True) -> list[GradcheckReport]:
    return [gradcheck(ReLU(), x_of(2, 4, 5, 3), raise_exception=raise_exception)]


@check("sigmoid_backward")
def sigmoid(raise_exception: bool = True) -> list[GradcheckReport]:
    return [gradcheck(Sigmoid(), 2 * x_of(2, 4, 5, 3), raise_exception=raise_exception)]


@check("softmax_backward")
def softmax(raise_exception: bool = True) -> list[GradcheckReport]:
    return [gradcheck(Softmax(), 2 * x_of(2, 4, 5, 3), raise_exception=raise_exception)]


@check("conv2d_backward")
def conv2d(raise_exception: bool = True) -> list[GradcheckReport]:
    """Kernels 1, 2 and 3, both paddings, odd and even sizes; the last with a ReLU."""
    reports = []
    for k, padding, hw, activation in [
        (1, "same", (7, 6), None),
        (2, "same", (4, 5), None),
        (3, "same", (5, 6), None),
        (1, "valid", (3, 3), None),
        (2, "valid", (6, 7), None),
        (3, "valid", (6, 5), None),
        (3, "same", (5, 6), "relu"),
    ]:
        name = f"conv2d_{k}x{k}_{padding}" + ("_relu" if activation else "")
        layer = Conv2D(
            4, k, padding=padding, activation=activation, dtype="float64", seed=k, name=name
        )
        layer.build((None, *hw, 3))
        random_biases(layer, seed=k)
        reports.append(gradcheck(layer, x_of(2, *hw, 3), raise_exception=raise_exception))
    return reports


@check("conv2d_transpose_backward")
def conv2d_transpose(raise_exception: bool = True) -> list[GradcheckReport]:
    return [
        gradcheck(
            Conv2DTranspose(
                3,
                k,
                strides=s,
                padding=padding,
                dtype="float64",
                seed=k,
                name=f"conv2d_transpose_{k}x{k}_s{s}_{padding}",
            ),
            x_of(2, 3, 4, 2),
            raise_exception=raise_exception,
        )
        for k, s, padding in [(2, 2, "valid"), (3, 2, "same"), (3, 1, "valid")]
    ]


@check("maxpool_backward")
def maxpool(raise_exception: bool = True) -> list[GradcheckReport]:
    return [
        gradcheck(MaxPooling2D(2), x_of(2, 6, 5, 3), raise_exception=raise_exception),
        gradcheck(
            MaxPooling2D(3, strides=2, padding="same"),
            x_of(1, 7, 6, 2),
            raise_exception=raise_exception,
        ),
    ]


@check("upsampling_backward")
def upsampling(raise_exception: bool = True) -> list[GradcheckReport]:
    return [
        gradcheck(UpSampling2D(2), x_of(2, 3, 4, 2), raise_exception=raise_exception),
        gradcheck(UpSampling2D((2, 3)), x_of(1, 2, 3, 2), raise_exception=raise_exception),
    ]


@check("concatenate_backward")
def concatenate(raise_exception: bool = True) -> list[GradcheckReport]:
    inputs = [x_of(2, 4, 4, 3), x_of(2, 4, 4, 2, seed=1)]
    return [gradcheck(Concatenate(), inputs, raise_exception=raise_exception)]


@check("cropping_backward")
def cropping(raise_exception: bool = True) -> list[GradcheckReport]:
    layer = Cropping2D(((1, 2), (0, 1)))
    return [gradcheck(layer, x_of(2, 6, 5, 2), raise_exception=raise_exception)]


@check("dropout_backward")
def dropout(raise_exception: bool = True) -> list[GradcheckReport]:
    return [
        gradcheck(
            Dropout(0.5, seed=0),
            x_of(2, 4, 4, 3),
            training=training,
            raise_exception=raise_exception,
        )
        for training in (True, False)
    ]


def _masks(*shape: int) -> np.ndarray:
    return (probs_of(*shape, seed=1) > 0.4).astype(np.float64)


@check("bce_backward")
def bce(raise_exception: bool = True) -> list[GradcheckReport]:
    loss = BinaryCrossentropy()
    probs = probs_of(2, 4, 4, 1)
    return [gradcheck_loss(loss, probs, _masks(2, 4, 4, 1), raise_exception=raise_exception)]


@check("dice_backward")
def dice(raise_exception: bool = True) -> list[GradcheckReport]:
    loss = DiceLoss()
    probs = probs_of(2, 4, 4, 1)
    return [gradcheck_loss(loss, probs, _masks(2, 4, 4, 1), raise_exception=raise_exception)]


@check("cce_backward")
def cce(raise_exception: bool = True) -> list[GradcheckReport]:
    probs = Softmax().forward(x_of(2, 4, 4, 3))
    labels = np.random.default_rng(0).integers(0, 3, (2, 4, 4))
    weights = 10 * probs_of(2, 4, 4)
    return [
        gradcheck_loss(
            CategoricalCrossentropy(),
            probs,
            labels,
            weight_map=weights,
            raise_exception=raise_exception,
        )
    ]


@check("unet_backward")
def unet(raise_exception: bool = True) -> list[GradcheckReport]:
    """A depth-2 UNet with 2 filters and its loss, from the input through every parameter
    (dropout on, seeded). Needs every layer's backward and the loss's."""
    model = UNet((8, 8, 1), filters=2, depth=2, dtype="float64", seed=0)
    random_biases(model)
    x = np.random.default_rng(1).random((1, 8, 8, 1))
    y = (np.random.default_rng(2).random((1, 8, 8, 1)) > 0.3).astype(np.float64)
    checkable = ModelWithLoss(model, BinaryCrossentropy(), y)
    return [gradcheck(checkable, x, training=True, raise_exception=raise_exception)]
