"""Segmentation metrics: pixel accuracy, IoU, Dice and the ISBI 2012 Rand error.

Every metric compares a predicted probability map ``y_pred`` with a true mask ``y_true``:

- the prediction is made binary with ``y_pred >= threshold`` (1 = cell, 0 = membrane);
- the truth is made binary with ``y_true >= 0.5``, so it must lie in [0, 1] (a 0/255 mask has to
  be divided by 255 first).

Shapes: ``(H, W)``, ``(H, W, 1)``, ``(N, H, W)`` or ``(N, H, W, 1)``, the same for both arrays.
A 3-D array whose last axis has length 1 is read as one ``(H, W, 1)`` image. For a batch, pixel
accuracy, IoU and Dice count the pixels of all the images together (one confusion matrix for
the whole batch), while the Rand error is computed image by image and averaged.

The Rand error needs the cells as separate objects, so the module also has
``connected_components``, a 4-connectivity labelling written with NumPy alone.
"""

from __future__ import annotations

import numpy as np

from .class_metrics import class_scores, confusion_matrix

__all__ = [
    "class_scores",
    "confusion_matrix",
    "connected_components",
    "dice",
    "evaluate",
    "iou",
    "pixel_accuracy",
    "rand_error",
    "threshold_sweep",
]


# -- input checks ---------------------------------------------------------------------------------
def _as_batch(a: np.ndarray, where: str, what: str) -> np.ndarray:
    """Return ``a`` as a stack of 2-D images ``(N, H, W)``; see the module docstring."""
    if a.ndim == 2:  # (H, W)
        return a[None]
    if a.ndim == 3:  # (H, W, 1) or (N, H, W)
        return a[None, :, :, 0] if a.shape[-1] == 1 else a
    if a.ndim == 4 and a.shape[-1] == 1:  # (N, H, W, 1)
        return a[..., 0]
    if a.ndim == 4:
        raise ValueError(
            f"{where}: {what} has shape {a.shape} with {a.shape[-1]} channels; the metrics "
            "take one channel (the probability of 'cell'). For a softmax output pass "
            "y_pred[..., 1:2]"
        )
    raise ValueError(
        f"{where}: {what} must have shape (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1), "
        f"got {a.shape}"
    )


def _check_values(a: np.ndarray, where: str, what: str) -> None:
    """A real-valued array without NaN or infinite values."""
    if a.dtype == bool:
        return
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{where}: {what} must hold real numbers, got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: {what} contains NaN or infinite values")


def _binary_pair(
    where: str, y_pred: object, y_true: object, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Check a prediction and its truth; return them as boolean stacks ``(N, H, W)``.

    ``where`` is the name of the calling function, used in the error messages.
    """
    y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
    if y_pred.shape != y_true.shape:
        raise ValueError(
            f"{where}: y_pred has shape {y_pred.shape} but y_true has shape {y_true.shape}; "
            "they must match"
        )
    if y_true.size == 0:
        raise ValueError(f"{where}: the masks are empty (shape {y_true.shape})")
    _check_values(y_pred, where, "y_pred")
    _check_values(y_true, where, "y_true")
    if y_true.min() < 0 or y_true.max() > 1:
        raise ValueError(
            f"{where}: y_true must lie in [0, 1], got values in "
            f"[{y_true.min():g}, {y_true.max():g}]. If the mask is stored as 0/255, "
            "divide it by 255."
        )
    is_number = isinstance(threshold, (int, float, np.integer, np.floating))
    if isinstance(threshold, bool) or not is_number or not np.isfinite(threshold):
        raise ValueError(f"{where}: threshold must be a finite number, got {threshold!r}")
    pred = _as_batch(y_pred, where, "y_pred") >= threshold
    true = _as_batch(y_true, where, "y_true") >= 0.5
    return pred, true


# -- pixel metrics --------------------------------------------------------------------------------
def _confusion(pred: np.ndarray, true: np.ndarray) -> tuple[int, int, int, int]:
    """Counts ``(TP, FP, FN, TN)`` of the positive class (cell) over all the pixels."""
    tp = int(np.count_nonzero(pred & true))
    fp = int(np.count_nonzero(pred & ~true))
    fn = int(np.count_nonzero(~pred & true))
    tn = int(true.size) - tp - fp - fn
    return tp, fp, fn, tn


def _pixel_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.count_nonzero(pred == true) / true.size)


def _iou(pred: np.ndarray, true: np.ndarray) -> float:
    tp, fp, fn, _ = _confusion(pred, true)
    if tp + fp + fn == 0:  # no cell in the prediction nor in the truth: perfect
        return 1.0
    return tp / (tp + fp + fn)


def _dice(pred: np.ndarray, true: np.ndarray) -> float:
    tp, fp, fn, _ = _confusion(pred, true)
    if tp + fp + fn == 0:  # no cell in the prediction nor in the truth: perfect
        return 1.0
    return 2 * tp / (2 * tp + fp + fn)


def pixel_accuracy(y_pred: np.ndarray, y_true: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of the pixels whose predicted class is the true class.

    With ``p = y_pred >= threshold`` and ``t = y_true >= 0.5``::

        accuracy = (TP + TN) / (TP + TN + FP + FN) = mean(p == t)

    Parameters
    ----------
    y_pred : ndarray
        Predicted probabilities of 'cell', shape (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1).
    y_true : ndarray
        True mask in [0, 1] (1 = cell, 0 = membrane), the same shape as ``y_pred``.
    threshold : float
        A pixel is predicted 'cell' when ``y_pred >= threshold``.

    Returns
    -------
    float
        In [0, 1]. For a batch, the fraction over all the pixels of all the images.

    Raises
    ------
    ValueError
        If the shapes differ or are not one of the four above, if either array contains NaN
        or infinite values, or if ``y_true`` has values outside [0, 1].
    """
    return _pixel_accuracy(*_binary_pair("pixel_accuracy", y_pred, y_true, threshold))


def iou(y_pred: np.ndarray, y_true: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union (Jaccard index) of the cell class.

    With TP, FP, FN the counts of true positive, false positive and false negative pixels of
    the class 'cell' (``y_pred >= threshold`` against ``y_true >= 0.5``)::

        IoU = TP / (TP + FP + FN) = |P and T| / |P or T|

    If ``TP + FP + FN == 0``, neither the prediction nor the truth has a single cell pixel:
    they agree perfectly and the IoU is defined as 1.0.

    Parameters
    ----------
    y_pred : ndarray
        Predicted probabilities of 'cell', shape (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1).
    y_true : ndarray
        True mask in [0, 1] (1 = cell, 0 = membrane), the same shape as ``y_pred``.
    threshold : float
        A pixel is predicted 'cell' when ``y_pred >= threshold``.

    Returns
    -------
    float
        In [0, 1]. For a batch, TP, FP and FN are counted over all the images together (not
        the mean of per-image IoUs).

    Raises
    ------
    ValueError
        As :func:`pixel_accuracy`.
    """
    return _iou(*_binary_pair("iou", y_pred, y_true, threshold))


def dice(y_pred: np.ndarray, y_true: np.ndarray, threshold: float = 0.5) -> float:
    """Dice coefficient (F1 score) of the cell class.

    With the counts of :func:`iou`::

        Dice = 2 TP / (2 TP + FP + FN) = 2 |P and T| / (|P| + |T|)

    It relates to the IoU by ``Dice = 2 IoU / (1 + IoU)``. If ``TP + FP + FN == 0`` (no cell
    pixel anywhere) the Dice coefficient is defined as 1.0.

    Parameters
    ----------
    y_pred : ndarray
        Predicted probabilities of 'cell', shape (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1).
    y_true : ndarray
        True mask in [0, 1] (1 = cell, 0 = membrane), the same shape as ``y_pred``.
    threshold : float
        A pixel is predicted 'cell' when ``y_pred >= threshold``.

    Returns
    -------
    float
        In [0, 1]. For a batch, counted over all the images together.

    Raises
    ------
    ValueError
        As :func:`pixel_accuracy`.
    """
    return _dice(*_binary_pair("dice", y_pred, y_true, threshold))


# -- connected components -------------------------------------------------------------------------
def connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the 4-connected regions of the True (or 1) pixels of a 2-D binary mask.

    Two foreground pixels are in the same region when a path of foreground pixels joins
    them, each step going up, down, left or right (no diagonal steps).

    The labelling is a vectorised union-find. Every foreground pixel starts as its own tree,
    ``parent[i] = i``. Each round then

    1. hooks: for every pair of neighbouring foreground pixels whose trees differ, the larger
       of the two roots is pointed at the smaller one;
    2. jumps pointers: ``parent = parent[parent]`` until every pixel points at its root.

    A parent always has a smaller index than its child (or is the pixel itself), so no cycle
    can form; the rounds stop when no pair of neighbours is in different trees. The root of a
    region is then its first pixel in row-major order, and pointer jumping halves the paths
    at every step, so even long snake-shaped regions take only a few rounds.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Boolean, or numbers that are all 0 or 1.

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
        0 for the background, 1..count for the regions, numbered in the order in which a
        row-major scan (row by row, left to right) first meets them.
    count : int
        The number of regions.

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D, or holds values other than 0 and 1.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"connected_components: mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.dtype != bool:
        _check_values(mask, "connected_components", "mask")
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(
                "connected_components: mask must hold only 0 and 1 (or False and True); "
                "threshold it first, e.g. mask >= 0.5"
            )
        mask = mask == 1
    height, width = mask.shape

    # Number the foreground pixels 0..k-1 in row-major order; -1 marks the background.
    foreground = np.flatnonzero(mask)
    index = np.full(mask.shape, -1, dtype=np.int64)
    index.flat[foreground] = np.arange(foreground.size)

    # The edges of the graph: pairs (u, v) of foreground neighbours, left-right and up-down.
    right = mask[:, :-1] & mask[:, 1:]
    down = mask[:-1, :] & mask[1:, :]
    u = np.concatenate([index[:, :-1][right], index[:-1, :][down]])
    v = np.concatenate([index[:, 1:][right], index[1:, :][down]])

    parent = np.arange(foreground.size)
    while True:
        root_u, root_v = parent[u], parent[v]  # every parent is a root after pointer jumping
        split = root_u != root_v  # edges that still join two different trees
        if not split.any():
            break
        u, v = u[split], v[split]  # the other edges are done for good
        # Hook the larger root under the smaller. A root hooked by several edges at once
        # takes one of them: any is fine, each is a smaller root in the same region.
        parent[np.maximum(root_u, root_v)[split]] = np.minimum(root_u, root_v)[split]
        while True:  # pointer jumping
            grandparent = parent[parent]
            if np.array_equal(grandparent, parent):
                break
            parent = grandparent

    # Roots are first pixels, so sorting them numbers the regions in row-major order.
    roots, region = np.unique(parent, return_inverse=True)
    labels = np.zeros(height * width, dtype=np.int64)
    labels[foreground] = region.ravel() + 1
    return labels.reshape(height, width), int(roots.size)


# -- Rand error -----------------------------------------------------------------------------------
def _pairs(counts: np.ndarray) -> int:
    """Ordered pairs of distinct pixels within each group, summed: ``sum n (n - 1)``."""
    counts = counts.astype(np.int64)
    return int(np.sum(counts * (counts - 1)))


def _rand_error_labels(true_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Foreground-restricted Rand error of two label images (see :func:`rand_error`)."""
    keep = true_labels > 0  # only the pixels inside a true cell are scored
    t, s = true_labels[keep].astype(np.int64), test_labels[keep].astype(np.int64)
    # Contingency table n_ij, as the counts of the distinct (i, j) codes i * (max j + 1) + j.
    code = t * (int(s.max(initial=0)) + 1) + s
    _, n_ij = np.unique(code, return_counts=True)
    P = _pairs(n_ij)  # pairs together in both partitions
    A = _pairs(np.bincount(t))  # pairs together in the truth (row sums a_i)
    B = _pairs(np.bincount(s))  # pairs together in the prediction (column sums b_j)
    if A + B == 0:  # every segment on both sides holds at most one scored pixel: identical
        return 0.0
    return 1.0 - 2 * P / (A + B)


def _rand_error(pred: np.ndarray, true: np.ndarray) -> float:
    errors = [
        _rand_error_labels(connected_components(t)[0], connected_components(p)[0])
        for p, t in zip(pred, true)
    ]
    return float(np.mean(errors))


def rand_error(y_pred: np.ndarray, y_true: np.ndarray, threshold: float = 0.5) -> float:
    """Foreground-restricted Rand error (the ISBI 2012 challenge's metric), in [0, 1].

    This measures the error of the *partition* into cells, not of the pixels: it counts
    pairs of pixels that the prediction puts in one segment although they belong to two
    cells (merge errors), or separates although they belong to one (split errors). A
    mistake on a membrane pixel only counts through what it does to the cells: a one-pixel
    gap in a predicted membrane merges two cells and can cost a lot. Membranes drawn too
    thick cost too: every true-cell pixel they cover joins the single "membrane" segment of
    the prediction, which merges pieces of many cells (thickening every membrane by one pixel
    on each side gave errors of 0.2-0.45 on generated masks). Pixels where the truth is
    membrane are not scored at all. The ISBI challenge thinned predicted membranes before
    scoring; this function does not.

    Each image is cut into cells by :func:`connected_components` (4-connectivity):

    - true segments ``i``: the components of ``y_true >= 0.5``; membrane (0) is left out;
    - test segments ``j``: the components of ``y_pred >= threshold``, plus the predicted
      membrane as one segment of its own, ``j = 0``.

    Only the pixels inside a true cell are scored. With ``n_ij`` the number of them in true
    segment ``i`` and test segment ``j``, ``a_i = sum_j n_ij`` and ``b_j = sum_i n_ij``, and
    counting ordered pairs of distinct pixels::

        P = sum_ij n_ij (n_ij - 1)     pairs together in the truth and in the prediction
        A = sum_i  a_i  (a_i  - 1)     pairs together in the truth
        B = sum_j  b_j  (b_j  - 1)     pairs together in the prediction

        precision = P / B,   recall = P / A,   F = 2 precision recall / (precision + recall)
        rand error = 1 - F = 1 - 2 P / (A + B)

    This is ``skimage.metrics.adapted_rand_error(true_labels, test_labels,
    ignore_labels=(0,))[0]``. (F and the error are symmetric in precision and recall;
    scikit-image returns those two swapped relative to its own docs, issue #6485.)

    Degenerate cases, chosen so that nothing is ever divided by zero:

    - ``A + B == 0``: every true and every test segment holds at most one scored pixel, so
      the two partitions are identical; this includes a truth with no cell at all, whatever
      the prediction. The error is 0.0 (scikit-image returns NaN here).
    - ``P == 0`` with ``A + B > 0``: no pair is right, the error is 1.0 (as scikit-image).

    Parameters
    ----------
    y_pred : ndarray
        Predicted probabilities of 'cell', shape (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1).
    y_true : ndarray
        True mask in [0, 1] (1 = cell, 0 = membrane), the same shape as ``y_pred``.
    threshold : float
        A pixel is predicted 'cell' when ``y_pred >= threshold``.

    Returns
    -------
    float
        0.0 for a perfect partition, up to 1.0. For a batch, the mean of the images' errors.

    Raises
    ------
    ValueError
        As :func:`pixel_accuracy`.
    """
    return _rand_error(*_binary_pair("rand_error", y_pred, y_true, threshold))


def evaluate(y_pred: np.ndarray, y_true: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All four metrics at once, with the inputs checked once.

    Parameters
    ----------
    y_pred, y_true, threshold
        As in :func:`pixel_accuracy`.

    Returns
    -------
    dict
        ``{"pixel_accuracy": ..., "iou": ..., "dice": ..., "rand_error": ...}``, floats, with
        the batch conventions of the individual functions.
    """
    pred, true = _binary_pair("evaluate", y_pred, y_true, threshold)
    return {
        "pixel_accuracy": _pixel_accuracy(pred, true),
        "iou": _iou(pred, true),
        "dice": _dice(pred, true),
        "rand_error": _rand_error(pred, true),
    }


def threshold_sweep(
    y_pred: np.ndarray,
    y_true: np.ndarray,
    thresholds: object = None,
    metric: str = "rand_error",
) -> dict[str, object]:
    """Score a probability map at several thresholds; the ISBI 2012 evaluation reported the
    best of such a sweep.

    Parameters
    ----------
    y_pred, y_true
        As in :func:`pixel_accuracy` (``y_pred`` the probability of 'cell').
    thresholds : sequence of float, optional
        Default: 0.05, 0.10, ..., 0.95.
    metric : {'rand_error', 'pixel_accuracy', 'iou', 'dice'}
        What to score; the Rand error is best when lowest, the others when highest.

    Returns
    -------
    dict
        ``thresholds`` and ``scores`` (lists), ``best_threshold`` and ``best_score``.
    """
    functions = {
        "rand_error": rand_error,
        "pixel_accuracy": pixel_accuracy,
        "iou": iou,
        "dice": dice,
    }
    if metric not in functions:
        raise ValueError(
            f"threshold_sweep: metric must be one of {sorted(functions)}, got {metric!r}"
        )
    grid = (
        np.round(np.arange(0.05, 0.951, 0.05), 2) if thresholds is None else np.asarray(thresholds)
    )
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError("threshold_sweep: thresholds must be a non-empty list of finite numbers")
    scores = [functions[metric](y_pred, y_true, threshold=float(t)) for t in grid]
    best = int(np.argmin(scores) if metric == "rand_error" else np.argmax(scores))
    return {
        "thresholds": [float(t) for t in grid],
        "scores": scores,
        "best_threshold": float(grid[best]),
        "best_score": scores[best],
    }
