"""What ``fit`` checks and prepares before the first step: the data, the weights, the split.

Every check names ``fit`` and says what was expected and what was given, before any
training (or any file) happens.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

from ..losses import CategoricalCrossentropy, Loss
from .tiling import check_tile


def prepare_data(
    model: object,
    x: np.ndarray,
    y: np.ndarray,
    loss: Loss,
    validation_data: tuple | None,
    validation_split: float,
    sample_weight: np.ndarray | None,
    tile: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple | None]:
    """Checked arrays in the model's dtype: (x, y, per-pixel weights or None, validation).

    ``validation`` is None or ``(x_val, y_val, w_val or None)``; with ``validation_split``
    it is the last samples, as in Keras.
    """
    x, y = _real_array(x, "x", model.dtype), _real_array(y, "y", model.dtype)
    if validation_data is None and validation_split > 0:  # Keras: the last samples
        cut = int(round(len(x) * (1 - validation_split)))
        if cut < 1 or cut >= len(x):
            raise ValueError(
                f"fit: validation_split {validation_split} leaves no training or "
                f"no validation data out of {len(x)} samples"
            )
        x, y, validation_data = x[:cut], y[:cut], (x[cut:], y[cut:])
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
            validation_data += (sample_weight[cut:],)
            sample_weight = sample_weight[:cut]
    _check_data(model, x, y, "fit", tile)
    weights = _check_weights(sample_weight, y, loss, "fit")
    if validation_data is not None:  # (x_val, y_val) or (x_val, y_val, sample_weight_val)
        x_val, y_val = (np.asarray(a, dtype=model.dtype) for a in validation_data[:2])
        _check_data(model, x_val, y_val, "fit (validation_data)", tile)
        w_val = validation_data[2] if len(validation_data) > 2 else None
        validation_data = (x_val, y_val, _check_weights(w_val, y_val, loss, "fit (validation)"))
    return x, y, weights, validation_data


def _real_array(a: object, name: str, dtype: np.dtype) -> np.ndarray:
    """``a`` as an array of ``dtype``, refusing what is not real numbers (text, objects,
    complex values, whose imaginary part a cast would drop)."""
    found = np.asarray(a)
    if found.dtype.kind not in "biuf":
        what = "complex" if found.dtype.kind == "c" else f"{found.dtype} ({type(a).__name__})"
        raise ValueError(f"fit: {name} must be an array of real numbers, got {what} values")
    return found.astype(dtype, copy=False)


def _check_data(
    model: object, x: np.ndarray, y: np.ndarray, where: str, tile: int | None = None
) -> None:
    if x.ndim != 4 or y.ndim != 4 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{where}: x and y must be (N, H, W, C) arrays with the same N, got "
            f"x {x.shape} and y {y.shape}"
        )
    if len(x) == 0:
        raise ValueError(f"{where}: no images (x has shape {x.shape})")
    if tile is not None:  # whole images and masks; the network sees tiles of them
        if y.shape[:3] != x.shape[:3]:
            raise ValueError(
                f"{where}: with tile={tile}, masks must have the images' height and width "
                f"(the tiles are cut from both), got x {x.shape} and y {y.shape}"
            )
        check_tile(model, tile, where)  # the network must accept the tile
    elif y.shape[:3] != (out := model.compute_output_shape(x.shape))[:3]:
        raise ValueError(
            f"{where}: the model maps x {x.shape} to {out}, but y has shape "
            f"{y.shape}; masks must match the output's height and width"
        )
    classes = model.compute_output_shape((1, tile, tile, x.shape[-1]) if tile else x.shape)[-1]
    _check_masks(y, classes, where)
    if x.max() > 2:
        print(
            f"Warning: {where}: images reach {x.max():g}; 8-bit images usually need "
            "x / 255 to lie in [0, 1]",
            file=sys.stderr,
        )


def _check_masks(y: np.ndarray, classes: int, where: str) -> None:
    """Masks for a model of ``classes`` outputs: in [0, 1] for one or two classes (1 = cell);
    for more, class labels (N, H, W, 1) holding 0 .. K-1, or one-hot (N, H, W, K)."""
    labels = classes > 2 and y.shape[-1] == 1
    if classes > 2 and y.shape[-1] not in (1, classes):
        raise ValueError(
            f"{where}: the model predicts {classes} classes, so masks must be labels "
            f"(N, H, W, 1) or one-hot (N, H, W, {classes}), got y {y.shape}"
        )
    top = classes - 1 if labels else 1
    if y.min() < 0 or y.max() > top or (labels and (y != np.rint(y)).any()):
        what = f"whole class numbers in [0, {top}]" if labels else "values in [0, 1]"
        advice = (
            "; divide masks stored as 0/255 by 255"
            if top == 1
            else f"; a model of {classes} classes takes labels 0 .. {classes - 1}"
        )
        raise ValueError(
            f"{where}: masks must hold {what}, found values in [{y.min():g}, {y.max():g}]" + advice
        )


def _check_weights(w: object, y: np.ndarray, loss: Loss, where: str) -> np.ndarray | None:
    """Per-pixel weights: None, or finite, non-negative, (N, H, W) like the masks."""
    if w is None:
        return None
    if not isinstance(loss, CategoricalCrossentropy):
        raise ValueError(
            f"{where}: sample_weight (a weight per pixel, e.g. the paper's weight map) needs "
            f"loss='categorical_crossentropy', not {type(loss).__name__}"
        )
    w = np.asarray(w, dtype=y.dtype)
    if w.ndim == 4 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.shape != y.shape[:3]:
        raise ValueError(
            f"{where}: sample_weight must have shape {y.shape[:3]} (one weight per mask "
            f"pixel), got {w.shape}"
        )
    if not np.isfinite(w).all() or w.min() < 0:
        raise ValueError(f"{where}: sample_weight must be finite and >= 0")
    return w


def fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of the training data, so that --resume refuses other data."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]
