"""The gradient tests that grade the course exercises, one per exercise.

Each check builds the layer (or loss, or a small UNet) in float64 and runs the gradient
checker on a few configurations. A check raises on failure; :func:`run` runs them all and
reports, for each exercise, whether it passed and why not. ``numpy-unet grade DIR`` runs
this module inside a student's copy of the package, so the checks exercise the student's
code. The forward checks at the end must pass even in an untouched exercise copy.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable

import numpy as np

from .gradcheck import ModelWithLoss, gradcheck, gradcheck_loss
from .layers import (
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
from .losses import BinaryCrossentropy, CategoricalCrossentropy, DiceLoss
from .unet import UNet

CHECKS: dict[str, Callable[[], None]] = {}


def check(name: str) -> Callable:
    """Register a check under the exercise's name."""

    def register(fn: Callable[[], None]) -> Callable[[], None]:
        CHECKS[name] = fn
        return fn

    return register


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 1e-3, 1e-3, x)  # away from the ReLU kink at 0


def _passes(layer: object, inputs: object, **kw: object) -> None:
    gradcheck(layer, inputs, **kw)  # raises GradcheckError with the details on failure


@check("relu_backward")
def _relu() -> None:
    _passes(ReLU(), _x(2, 4, 5, 3))


@check("sigmoid_backward")
def _sigmoid() -> None:
    _passes(Sigmoid(), 2 * _x(2, 4, 5, 3))


@check("softmax_backward")
def _softmax() -> None:
    _passes(Softmax(), _x(2, 4, 5, 3))


@check("conv2d_backward")
def _conv2d() -> None:
    for k, padding, hw in [
        (3, "same", (5, 6)),
        (2, "same", (4, 5)),
        (3, "valid", (6, 5)),
        (1, "valid", (3, 3)),
    ]:
        layer = Conv2D(4, k, padding=padding, dtype="float64", seed=k)
        layer.build((None, *hw, 3))
        layer.params["bias"] = 0.1 * _x(4, seed=1)
        _passes(layer, _x(2, *hw, 3))


@check("conv2d_transpose_backward")
def _conv2d_transpose() -> None:
    for k, s, padding in [(2, 2, "valid"), (3, 2, "same"), (3, 1, "valid")]:
        _passes(
            Conv2DTranspose(3, k, strides=s, padding=padding, dtype="float64", seed=k),
            _x(2, 3, 4, 2),
        )


@check("maxpool_backward")
def _maxpool() -> None:
    _passes(MaxPooling2D(2), _x(2, 6, 5, 3))
    _passes(MaxPooling2D(3, strides=2, padding="same"), _x(1, 7, 6, 2))


@check("upsampling_backward")
def _upsampling() -> None:
    _passes(UpSampling2D(2), _x(2, 3, 4, 2))
    _passes(UpSampling2D((2, 3)), _x(1, 2, 3, 2))


@check("concatenate_backward")
def _concatenate() -> None:
    _passes(Concatenate(), [_x(2, 4, 4, 3), _x(2, 4, 4, 2, seed=1)])


@check("cropping_backward")
def _cropping() -> None:
    _passes(Cropping2D(((1, 2), (0, 1))), _x(2, 6, 5, 2))


@check("dropout_backward")
def _dropout() -> None:
    _passes(Dropout(0.5, seed=0), _x(2, 4, 4, 3), training=True)
    _passes(Dropout(0.5, seed=0), _x(2, 4, 4, 3), training=False)


def _probs(shape: tuple, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape)


@check("bce_backward")
def _bce() -> None:
    y = (_probs((2, 4, 4, 1), seed=1) > 0.4).astype(np.float64)
    gradcheck_loss(BinaryCrossentropy(), _probs((2, 4, 4, 1)), y)


@check("dice_backward")
def _dice() -> None:
    y = (_probs((2, 4, 4, 1), seed=1) > 0.4).astype(np.float64)
    gradcheck_loss(DiceLoss(), _probs((2, 4, 4, 1)), y)


@check("cce_backward")
def _cce() -> None:
    probs = Softmax().forward(_x(2, 4, 4, 3))
    labels = np.random.default_rng(0).integers(0, 3, (2, 4, 4))
    weights = _probs((2, 4, 4)) * 10
    gradcheck_loss(CategoricalCrossentropy(), probs, labels, weight_map=weights)


@check("unet_backward")
def _unet() -> None:
    model = UNet((8, 8, 1), filters=2, depth=2, dtype="float64", seed=0)
    for name, p in model.params.items():
        if name.endswith("/bias"):  # off the ReLU kinks (see tutorial 05)
            p[...] = 0.1 * _x(*p.shape, seed=len(name))
    x = np.random.default_rng(1).random((1, 8, 8, 1))
    y = (np.random.default_rng(2).random((1, 8, 8, 1)) > 0.3).astype(np.float64)
    _passes(ModelWithLoss(model, BinaryCrossentropy(), y), x, training=True)


FORWARD_CHECKS: dict[str, Callable[[], None]] = {}


def _forward_check(fn: Callable[[], None]) -> Callable[[], None]:
    FORWARD_CHECKS[fn.__name__.strip("_")] = fn
    return fn


@_forward_check
def _unet_forward_shapes() -> None:
    y = UNet((16, 16, 1), filters=2, depth=2, seed=0).forward(_x(1, 16, 16, 1).astype("float32"))
    assert y.shape == (1, 16, 16, 1), y.shape


def run() -> dict[str, dict]:
    """Run every check; ``{name: {"passed": bool, "kind": ..., "error": str}}``."""
    results = {}
    for kind, checks in (("exercise", CHECKS), ("forward", FORWARD_CHECKS)):
        for name, fn in checks.items():
            try:
                fn()
                results[name] = {"kind": kind, "passed": True, "error": ""}
            except Exception as err:  # noqa: BLE001 - any failure is a failed check
                last = traceback.format_exception_only(type(err), err)[-1].strip()
                results[name] = {"kind": kind, "passed": False, "error": last[:300]}
    return results


if __name__ == "__main__":
    print(json.dumps(run()))
