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

    Which Keras computes this: Keras 3 on the torch or JAX backend, and the Keras 2 of the
    seed's time (2.0 to 2.2 on TensorFlow) on the model's sigmoid output, which they take
    as probabilities. There a pixel saturated on the wrong side costs the capped value and
    gets no gradient. Keras on TensorFlow (tf.keras 2.4 and later, Keras 3 on TensorFlow)
    recovers the logits z from a sigmoid layer's output, in the graph that ``fit`` compiles,
    and computes ``sigmoid_cross_entropy_with_logits``. It never clips: a pixel with z = 40
    and y = 0 costs 40 and still gets the gradient ``dL/dz = (p - y) / M``. On a tensor
    that does not come from a sigmoid, tf.keras clips and also adds eps inside each log,
    ``log(p + eps)``, which caps a pixel at 15.42 (y = 1) or 15.33 (y = 0) in float32.

    The cap in float32 and float64: ``-log(1e-7) = 16.12`` in float64, at both ends. In
    float32, Keras's dtype and the layers' default, ``1 - 1e-7`` rounds to
    ``1 - 1.19e-7``, so a saturated pixel costs 15.94 when y = 0 and 16.12 when y = 1, here
    (on float32 input) as in Keras.
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

    The paper's loss, its equation (1), is printed there as
    ``E = sum_x w(x) log p_{l(x)}(x)``, with a weight map ``w`` and no minus sign: as
    printed, E is a weighted log-likelihood, which training must make larger. The loss
    minimised is its negative, ``-E``, which this class computes, averaged over the pixels.

    Shapes: y_pred (N, H, W, K) probabilities, one softmax per pixel; y_true either one-hot
    (N, H, W, K) or integer class labels (N, H, W); weight_map (N, H, W), optional,
    non-negative. The loss is averaged over the P = N*H*W pixels, as Keras averages a
    per-pixel loss with sample weights.

    Forward, as Keras's ``categorical_crossentropy`` on probabilities (the Keras 2.0 to 2.2
    of the seed's time, and Keras 3 on torch or JAX; Keras on TensorFlow, tf.keras 2.4 and
    later and Keras 3, takes the logits of a softmax layer's output instead, as for the
    sigmoid in :class:`BinaryCrossentropy`): each pixel's predictions are first divided by
    their sum ``s = sum_k y_pred_k``, so that a softmax output whose sum rounding has
    moved off 1 still gives probabilities, then clipped::

        q = y_pred / s,    p = clip(q, eps, 1 - eps)
        L = -(1/P) sum_{pixels} w * sum_k y_k log p_k

    Backward, with ``g_k = dL/dq_k = -w y_k / (P p_k)`` inside the clip range and 0 outside,
    and the Jacobian of the renormalisation, ``dq_j / dy_pred_k = (delta_jk - q_j) / s``::

        dL/dy_pred_k = (g_k - sum_j g_j q_j) / s

    The second term is the renormalisation's: L does not change when all of a pixel's
    predictions are scaled by the same factor, so ``sum_k y_pred_k dL/dy_pred_k = 0``.
    Through a softmax the term cancels, and the gradient with respect to the logits is
    still ``w (p - y) / P``.

    Parameters
    ----------
    epsilon : float
        The clip, Keras's ``backend.epsilon()`` (1e-7).
    sum_tolerance : float
        How far from 1 a pixel's sum may lie. Keras renormalises any sum; this class does
        so only within the tolerance and refuses predictions further off, because those
        are not a softmax output (a sigmoid per channel, say), whatever the rounding. The
        default, 0.1, is far wider than any float32 or float16 rounding of a softmax.
        ``np.inf`` accepts every sum, as Keras does. Negative, NaN or infinite values, values
        above 1 and pixels whose predictions are all 0 are refused in any case.
    """

    def __init__(self, epsilon: float = 1e-7, sum_tolerance: float = 0.1) -> None:
        super().__init__()
        if not 0 < float(epsilon) < 0.5:  # 0 lets log(0) through; 0.5 or more clips everything
            raise ValueError(
                f"CategoricalCrossentropy: epsilon must lie in (0, 0.5), got {epsilon!r}"
            )
        if not float(sum_tolerance) > 0:  # NaN fails this too
            raise ValueError(
                f"CategoricalCrossentropy: sum_tolerance must be positive, got {sum_tolerance!r}"
            )
        self.epsilon, self.sum_tolerance = float(epsilon), float(sum_tolerance)

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
        sums = y_pred.sum(axis=-1, keepdims=True)  # (N, H, W, 1)
        self._check_sums(sums)
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
        q = y_pred / sums  # renormalised, as Keras: each pixel sums to 1 (N, H, W, K)
        lo, hi = self.epsilon, 1.0 - self.epsilon
        p = np.clip(q, lo, hi)
        n_pixels = max(w.size, 1)
        loss = -np.sum(w[..., None] * y * np.log(p)) / n_pixels
        inside = (q >= lo) & (q <= hi)
        self._cache = (q, p, y, w, inside, sums, n_pixels)
        return float(loss)

    def _check_sums(self, sums: np.ndarray) -> None:
        """Refuse pixels that cannot be renormalised, or whose sum is too far from 1."""
        if sums.size and sums.min() == 0:
            raise ValueError(
                "CategoricalCrossentropy: y_pred is 0 in every channel of some pixel, which "
                "cannot be renormalised to probabilities"
            )
        if sums.size and np.abs(sums - 1).max() > self.sum_tolerance:
            raise ValueError(
                "CategoricalCrossentropy: y_pred must sum to 1 over its last axis (a softmax "
                f"output); sums range over [{sums.min():g}, {sums.max():g}]. Sums within "
                f"{self.sum_tolerance:g} of 1 are renormalised, as Keras does; further off, "
                "the activation is probably not a softmax (sum_tolerance=np.inf accepts "
                "any sum)"
            )

    def backward(self) -> np.ndarray:
        q, p, y, w, inside, sums, n_pixels = self._require_forward()
        # >>> exercise cce_backward: `numpy-unet exercises` cuts out this block
        dq = -w[..., None] * y / p / n_pixels * inside  # dL/dq (N, H, W, K)
        # through q = y_pred / s: dq_j / dy_pred_k = (delta_jk - q_j) / s
        return (dq - np.sum(dq * q, axis=-1, keepdims=True)) / sums
        # <<< exercise cce_backward
