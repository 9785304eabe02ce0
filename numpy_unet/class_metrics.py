"""Scores of a segmentation into several classes: per class, and their means.

Each class is scored against the rest (one versus all), with the counts of the whole batch:
``TP`` the pixels of class ``k`` predicted ``k``, ``FP`` other pixels predicted ``k``, ``FN``
pixels of class ``k`` predicted as another class. The binary metrics of
:mod:`numpy_unet.metrics` are the case of one class, 'cell', against 'membrane'.
"""

from __future__ import annotations

import numpy as np


def _check_values(a: np.ndarray, what: str) -> None:
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or not np.isfinite(a).all():
        raise ValueError(f"class_scores: {what} must hold finite real numbers")


def confusion_matrix(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` counts: entry ``[t, p]`` is the number of pixels of true class ``t``
    predicted as class ``p``. ``pred`` and ``true`` are class numbers of the same shape."""
    pairs = true.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(pairs, minlength=num_classes**2).reshape(num_classes, num_classes)


def class_scores(y_pred: np.ndarray, y_true: np.ndarray) -> dict[str, object]:
    """Pixel accuracy, IoU and Dice of every class, and their means over the classes.

    Parameters
    ----------
    y_pred : numpy.ndarray
        A softmax output ``(N, H, W, K)`` (or ``(H, W, K)``), ``K >= 2``: each pixel is
        predicted as its most probable class.
    y_true : numpy.ndarray
        The true classes: labels ``(N, H, W, 1)`` holding ``0 .. K-1``, or one-hot
        ``(N, H, W, K)``.

    Returns
    -------
    dict
        ``pixel_accuracy`` (fraction of all pixels whose class is right) and, for each class
        ``k``, in lists of length K: ``accuracy`` (the fraction of class ``k``'s pixels found,
        ``TP / (TP + FN)``), ``iou`` ``TP / (TP + FP + FN)`` and ``dice``
        ``2 TP / (2 TP + FP + FN)``, counted one class against the rest over the whole batch.
        A class in neither the truth nor the prediction scores NaN (and its accuracy is NaN
        when it is not in the truth), and the means
        ``mean_accuracy``, ``mean_iou``, ``mean_dice`` leave it out (as Keras's ``MeanIoU``
        does), so that a class absent from a batch does not count as perfect.
    """
    y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
    if y_pred.ndim == 3:
        y_pred, y_true = y_pred[None], y_true[None]
    k = y_pred.shape[-1] if y_pred.ndim == 4 else 0
    if k < 2 or y_true.shape[:-1] != y_pred.shape[:-1] or y_true.shape[-1] not in (1, k):
        raise ValueError(
            f"class_scores: expected y_pred (N, H, W, K) with K >= 2 and y_true (N, H, W, 1) "
            f"labels or (N, H, W, K) one-hot, got y_pred {y_pred.shape} and y_true "
            f"{y_true.shape}"
        )
    _check_values(y_pred, "y_pred")
    _check_values(y_true, "y_true")
    true = np.rint(y_true[..., 0]) if y_true.shape[-1] == 1 else np.argmax(y_true, axis=-1)
    if y_true.shape[-1] == 1 and (
        true.min() < 0 or true.max() >= k or (true != y_true[..., 0]).any()
    ):
        raise ValueError(
            f"class_scores: labels must be whole numbers in [0, {k - 1}] for {k} classes, got "
            f"values in [{y_true.min():g}, {y_true.max():g}]"
        )
    m = confusion_matrix(np.argmax(y_pred, axis=-1), true, k)
    tp = np.diag(m).astype(np.float64)
    fn, fp = m.sum(axis=1) - tp, m.sum(axis=0) - tp  # rows: truth, columns: prediction
    seen = (tp + fp + fn) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = {
            "accuracy": np.where(tp + fn > 0, tp / (tp + fn), np.nan),  # needs true pixels
            "iou": np.where(seen, tp / (tp + fp + fn), np.nan),
            "dice": np.where(seen, 2 * tp / (2 * tp + fp + fn), np.nan),
        }
    out: dict[str, object] = {"pixel_accuracy": float(tp.sum() / m.sum())}
    for name, values in per_class.items():
        out[name] = [float(v) for v in values]
        out[f"mean_{name}"] = float(np.nanmean(values)) if (~np.isnan(values)).any() else np.nan
    return out
