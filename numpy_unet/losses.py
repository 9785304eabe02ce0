"""Losses: binary cross-entropy (the seed's), Dice, and the paper's weighted cross-entropy.

Each loss has ``forward(y_pred, y_true) -> float`` and ``backward() -> dL/dy_pred``, the
gradient of the value the last ``forward`` returned, with ``y_pred``'s shape and dtype.
"""

from __future__ import annotations

import numpy as np

from .layers.base import FLOAT_DTYPES


class Loss:
    """Shared checks: matching shapes, finite floats, values in [0, 1] where required."""

    def __init__(self) -> None:
        self._cache: tuple | None = None

    def describe(self) -> str:
        return type(self).__name__

    def _check_pair(self, y_pred: object, y_true: object) -> tuple[np.ndarray, np.ndarray]:
        y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
        if y_pred.dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"{self.describe()}: y_pred must be float32 or float64, got {y_pred.dtype}"
            )
        if y_pred.shape != y_true.shape:
            raise ValueError(
                f"{self.describe()}: y_pred has shape {y_pred.shape} but y_true has shape "
                f"{y_true.shape}; they must match"
            )
        if y_pred.size == 0:
            raise ValueError(f"{self.describe()}: y_pred is empty (shape {y_pred.shape})")
        self._check_unit_range(
            y_pred,
            "y_pred",
            "probabilities (the output of a sigmoid or "
            "softmax); if these are logits, apply the activation first",
        )
        self._check_unit_range(
            y_true, "y_true", "masks; if it is stored as 0/255, divide it by 255"
        )
        return y_pred, y_true.astype(y_pred.dtype, copy=False)

    def _check_unit_range(self, a: np.ndarray, what: str, advice: str) -> None:
        if a.size and not np.isfinite(a).all():
            raise ValueError(f"{self.describe()}: {what} contains NaN or infinite values")
        if a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(
                f"{self.describe()}: {what} must lie in [0, 1], got values in "
                f"[{a.min():g}, {a.max():g}]. It should hold {advice}."
            )

    def _require_forward(self) -> tuple:
        if self._cache is None:
            raise RuntimeError(f"{self.describe()}: backward() called before forward()")
        return self._cache


class BinaryCrossentropy(Loss):
    """Binary cross-entropy on probabilities, as ``keras.losses.BinaryCrossentropy()``.

    Shapes: y_pred, y_true (N, H, W, 1) or any matching shape; y_true in [0, 1].

    Forward, with p = clip(y_pred, eps, 1 - eps) (Keras's clipping, eps = 1e-7) and the mean
    over all M elements::

        L = -(1/M) sum [ y log p + (1 - y) log(1 - p) ]

    Backward: ``dL/dy_pred = (p - y) / (p (1 - p)) / M`` where y_pred lies inside the clip
    range, and 0 where the clip holds it at eps or 1 - eps (the clip is flat there).
    """

    def __init__(self, epsilon: float = 1e-7) -> None:
        super().__init__()
        if not 0 < float(epsilon) < 0.5:  # 0 lets log(0) through; 0.5 or more clips everything
            raise ValueError(f"BinaryCrossentropy: epsilon must lie in (0, 0.5), got {epsilon!r}")
        self.epsilon = float(epsilon)

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        y_pred, y = self._check_pair(y_pred, y_true)
        lo, hi = self.epsilon, 1.0 - self.epsilon
        p = np.clip(y_pred, lo, hi)
        loss = -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))
        inside = (y_pred >= lo) & (y_pred <= hi)
        self._cache = (p, y, inside)
        return float(loss)

    def backward(self) -> np.ndarray:
        p, y, inside = self._require_forward()
        # >>> exercise bce_backward: `numpy-unet exercises` cuts out this block
        return (p - y) / (p * (1 - p)) / p.size * inside
        # <<< exercise bce_backward


class DiceLoss(Loss):
    """Soft Dice loss over the whole batch: 1 - Dice coefficient of y_pred and y_true.

    Shapes: y_pred, y_true any matching shape; both in [0, 1].

    Forward, with I = sum(p * y), U = sum(p) + sum(y) and a smoothing term s::

        L = 1 - (2 I + s) / (U + s)

    Backward: ``dL/dp = -(2 y (U + s) - (2 I + s)) / (U + s)^2``.
    """

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        if not (np.isfinite(smooth) and smooth >= 0):
            raise ValueError(f"DiceLoss: smooth must be a finite number >= 0, got {smooth!r}")
        self.smooth = float(smooth)

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        p, y = self._check_pair(y_pred, y_true)
        inter, union, s = np.sum(p * y), np.sum(p) + np.sum(y), self.smooth
        if union + s == 0:
            raise ValueError("DiceLoss: both y_pred and y_true are all zero and smooth is 0")
        self._cache = (y, inter, union)
        return float(1 - (2 * inter + s) / (union + s))

    def backward(self) -> np.ndarray:
        y, inter, union = self._require_forward()
        # >>> exercise dice_backward: `numpy-unet exercises` cuts out this block
        s = self.smooth
        return -(2 * y * (union + s) - (2 * inter + s)) / (union + s) ** 2
        # <<< exercise dice_backward


class CategoricalCrossentropy(Loss):
    """Pixel-wise cross-entropy on softmax outputs, optionally weighted per pixel.

    This is the paper's loss: ``E = sum_x w(x) log p_{l(x)}(x)`` with a weight map ``w``.

    Shapes: y_pred (N, H, W, K) probabilities summing to 1 over K; y_true either one-hot
    (N, H, W, K) or integer class labels (N, H, W); weight_map (N, H, W), optional,
    non-negative. The loss is averaged over the P = N*H*W pixels, as Keras averages a
    per-pixel loss with sample weights.

    Forward, with p = clip(y_pred, eps, 1 - eps)::

        L = -(1/P) sum_{pixels} w * sum_k y_k log p_k

    Backward: ``dL/dy_pred_k = -w y_k / (P p_k)`` inside the clip range, 0 outside.
    """

    def __init__(self, epsilon: float = 1e-7) -> None:
        super().__init__()
        if not 0 < float(epsilon) < 0.5:  # 0 lets log(0) through; 0.5 or more clips everything
            raise ValueError(f"BinaryCrossentropy: epsilon must lie in (0, 0.5), got {epsilon!r}")
        self.epsilon = float(epsilon)

    def forward(
        self, y_pred: np.ndarray, y_true: np.ndarray, weight_map: np.ndarray | None = None
    ) -> float:
        y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
        if y_true.ndim == y_pred.ndim - 1 and np.issubdtype(y_true.dtype, np.integer):
            k = y_pred.shape[-1]
            if y_true.size and (y_true.min() < 0 or y_true.max() >= k):
                raise ValueError(
                    f"CategoricalCrossentropy: class labels must lie in [0, {k - 1}] for "
                    f"{k} classes, got [{y_true.min()}, {y_true.max()}]"
                )
            y_true = np.eye(k, dtype=y_pred.dtype)[y_true]  # (N, H, W) -> one-hot (N, H, W, K)
        y_pred, y = self._check_pair(y_pred, y_true)
        sums = y_pred.sum(axis=-1)
        if sums.size and np.abs(sums - 1).max() > 1e-3:
            raise ValueError(
                "CategoricalCrossentropy: y_pred must sum to 1 over its last axis (a softmax "
                f"output); sums range over [{sums.min():g}, {sums.max():g}]"
            )
        pixels = y_pred.shape[:-1]
        if weight_map is None:
            w = np.ones(pixels, y_pred.dtype)
        else:
            w = np.asarray(weight_map, dtype=y_pred.dtype)
            if w.shape != pixels:
                raise ValueError(
                    f"CategoricalCrossentropy: weight_map must have shape {pixels} (one weight "
                    f"per pixel), got {w.shape}"
                )
            if not np.isfinite(w).all() or (w.size and w.min() < 0):
                raise ValueError("CategoricalCrossentropy: weight_map must be finite and >= 0")
        lo, hi = self.epsilon, 1.0 - self.epsilon
        p = np.clip(y_pred, lo, hi)
        n_pixels = max(w.size, 1)
        loss = -np.sum(w[..., None] * y * np.log(p)) / n_pixels
        inside = (y_pred >= lo) & (y_pred <= hi)
        self._cache = (p, y, w, inside, n_pixels)
        return float(loss)

    def backward(self) -> np.ndarray:
        p, y, w, inside, n_pixels = self._require_forward()
        # >>> exercise cce_backward: `numpy-unet exercises` cuts out this block
        return -w[..., None] * y / p / n_pixels * inside
        # <<< exercise cce_backward
