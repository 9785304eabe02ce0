"""Element-wise activations (ReLU, Sigmoid) and the channel softmax.

They accept inputs of any shape and keep the input's dtype.
"""

from __future__ import annotations

import numpy as np

from .base import Layer


class ReLU(Layer):
    """Rectified linear unit, ``y = max(x, 0)``.

    Shapes: any ``(...)`` in, the same shape out.

    Backward: ``dx = dy * [x > 0]``. At the kink ``x == 0`` the gradient is taken as 0,
    as in TensorFlow/Keras.
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._check_input(x, ndim=None)
        # >>> exercise relu_forward: cut by `exercises --level forward`
        y = np.maximum(x, 0)
        # <<< exercise relu_forward
        return self.keep(y)

    def keep(self, y: np.ndarray) -> np.ndarray:
        """The end of forward: keep ``y = max(x, 0)`` for backward (y > 0 exactly where
        x > 0, so y is all backward needs) and return it. A model's speed engine, which
        takes the maximum inside its matrix products, hands its y here, so that this
        layer's backward runs as after its own forward."""
        return self._remember(y, y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = self._check_backward(dy)
        (y,) = self._take_cache()
        # >>> exercise relu_backward: `numpy-unet exercises` cuts out this block
        return dy * (y > 0)
        # <<< exercise relu_backward


class Sigmoid(Layer):
    """Logistic sigmoid, ``y = 1 / (1 + exp(-x))``, computed without overflow.

    Shapes: any ``(...)`` in, the same shape out.

    Backward: ``dx = dy * y * (1 - y)``.
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._check_input(x, ndim=None)
        y = sigmoid(x)
        return self._remember(y, y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = self._check_backward(dy)
        (y,) = self._take_cache()
        # >>> exercise sigmoid_backward: `numpy-unet exercises` cuts out this block
        return dy * y * (1 - y)
        # <<< exercise sigmoid_backward


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Stable sigmoid: ``exp`` only ever sees ``-|x|``, so it cannot overflow."""
    # >>> exercise sigmoid_forward: cut by `exercises --level forward`
    e = np.exp(-np.abs(x))  # in (0, 1]
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    # <<< exercise sigmoid_forward


class Softmax(Layer):
    """Softmax over the last axis (the channels): ``y_k = exp(x_k) / sum_j exp(x_j)``.

    Shapes: any ``(..., K)`` in, the same shape out; each ``y[..., :]`` sums to 1.

    Backward (Jacobian ``dy_k/dx_j = y_k (delta_kj - y_j)``):
    ``dx = y * (dy - sum_k(dy_k * y_k))``, the sum over the last axis.
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._check_input(x, ndim=None)
        if x.ndim == 0:
            raise ValueError(f"{self.describe()}: expected at least a 1-D input, got a scalar")
        # >>> exercise softmax_forward: cut by `exercises --level forward`
        e = np.exp(x - x.max(axis=-1, keepdims=True))  # shift by the max: no overflow
        y = e / e.sum(axis=-1, keepdims=True)
        # <<< exercise softmax_forward
        return self._remember(y, y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = self._check_backward(dy)
        (y,) = self._take_cache()
        # >>> exercise softmax_backward: `numpy-unet exercises` cuts out this block
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))
        # <<< exercise softmax_backward


ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "softmax": Softmax}


def get_activation(name: str | None, where: str, retain_cache: bool = True) -> Layer | None:
    """The activation layer for a Keras activation name (``None`` or ``"linear"``: none),
    inside the layer named ``where``: it keeps its cache as that layer does, and does not
    check its input for NaN (the layer's output, computed from input the layer checked)."""
    if name is None or name == "linear":
        return None
    if name not in ACTIVATIONS:
        raise ValueError(
            f"{where}: activation must be None, 'linear' or one of {sorted(ACTIVATIONS)}, "
            f"got {name!r}"
        )
    return ACTIVATIONS[name](name=f"{where}/{name}", retain_cache=retain_cache, check_finite=False)
