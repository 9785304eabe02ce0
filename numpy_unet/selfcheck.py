"""Gradient-check every built-in layer and loss on small random float64 inputs.

This is what ``numpy-unet gradcheck`` runs. Each case is one layer (or loss) with one
configuration; the test suite sweeps many more configurations.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .gradcheck import GradcheckReport, gradcheck, gradcheck_loss
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


def away_from_zero(x: np.ndarray, margin: float = 1e-3) -> np.ndarray:
    """Move values out of (-margin, margin): finite differences across a ReLU kink are wrong."""
    return np.where(np.abs(x) < margin, np.copysign(margin, x) + x, x)


def builtin_checks(seed: int = 0) -> Iterator[GradcheckReport]:
    """Yield one report per built-in layer and loss; a failing check yields a failed report."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 7, 6, 3))  # odd height, even width

    def check(layer, inputs, **kw) -> GradcheckReport:
        return gradcheck(layer, inputs, raise_exception=False, **kw)

    for k in (1, 2, 3):
        for padding in ("same", "valid"):
            conv = Conv2D(
                4,
                k,
                padding=padding,
                kernel_initializer="he_normal",
                dtype="float64",
                seed=seed,
                name=f"conv2d_{k}x{k}_{padding}",
            )
            yield check(conv, x)
    yield check(
        Conv2D(
            4,
            3,
            padding="same",
            activation="relu",
            dtype="float64",
            seed=seed,
            name="conv2d_3x3_relu",
        ),
        x,
    )
    yield check(Conv2DTranspose(4, 2, strides=2, dtype="float64", seed=seed), x)
    yield check(
        Conv2DTranspose(
            4,
            3,
            strides=2,
            padding="same",
            dtype="float64",
            seed=seed,
            name="conv2d_transpose_3x3_same",
        ),
        x,
    )
    yield check(MaxPooling2D(2), x)
    yield check(UpSampling2D(2), x)
    yield check(Concatenate(), [x, rng.standard_normal((2, 7, 6, 2))])
    yield check(Cropping2D(((1, 2), (0, 1))), x)
    yield check(Dropout(0.5, seed=seed), x, training=True)
    yield check(ReLU(), away_from_zero(x))
    yield check(Sigmoid(), 2 * x)
    yield check(Softmax(), 2 * x)

    y_true = (rng.random((2, 5, 4, 1)) < 0.7).astype(np.float64)
    probs = rng.uniform(0.02, 0.98, (2, 5, 4, 1))
    yield gradcheck_loss(BinaryCrossentropy(), probs, y_true, raise_exception=False)
    yield gradcheck_loss(DiceLoss(), probs, y_true, raise_exception=False)
    softmax = Softmax().forward(rng.standard_normal((2, 5, 4, 2)))
    labels = rng.integers(0, 2, (2, 5, 4))
    weights = rng.uniform(1.0, 10.0, (2, 5, 4))
    yield gradcheck_loss(
        CategoricalCrossentropy(), softmax, labels, weight_map=weights, raise_exception=False
    )
