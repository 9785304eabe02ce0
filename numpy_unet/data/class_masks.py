"""Masks of several classes: read as class numbers, resized without mixing classes.

A mask of ``K`` classes is stored in one of two ways, both read here:

- **gray**, each pixel's stored value its class number ``0 .. K-1``, as the seed's
  ``adjustData(flag_multi_class=True)`` reads it (``mask == i`` is class ``i``);
- **colour**, each class painted in its own colour, mapped back to class numbers through a
  palette (``palette[k]`` is the colour of class ``k``; the seed's ``COLOR_DICT`` is one).

Resizing must not invent classes: the average of class 0 and class 2 is not class 1. So each
class's indicator (1 where the pixel is of that class) is resized like an image, and every
pixel takes the class whose indicator is largest there. For two classes this is exactly the
binary masks' rule, "resize, then threshold at 0.5".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labels import rgb_to_label
from .resize import resize


def levels_to_labels(levels: np.ndarray, classes: int, path: Path | str) -> np.ndarray:
    """Stored gray values as class numbers ``(..., H, W)`` int64, checked against ``classes``."""
    top = float(levels.max()) if levels.size else 0.0
    if (levels != np.rint(levels)).any() or levels.min() < 0 or top > classes - 1:
        raise ValueError(
            f"load_folder: the mask {path} holds values in [{float(levels.min()):g}, {top:g}]; "
            f"with classes={classes} a gray mask must hold the class numbers 0 .. {classes - 1}"
            " (for a colour-coded mask pass palette=)"
        )
    return levels.astype(np.int64)


def pixels_to_labels(
    levels: np.ndarray, classes: int, palette: object | None, path: Path
) -> np.ndarray:
    """One mask file's stored values, ``(H, W)`` gray or ``(H, W, 3)`` colour without alpha,
    as class numbers ``(H, W)``."""
    if palette is not None:
        rgb = levels if levels.ndim == 3 else np.repeat(levels[..., None], 3, axis=-1)
        labels = rgb_to_label(rgb, palette, where=f"load_folder: the mask {path}")
        return levels_to_labels(labels, classes, path)
    if levels.ndim == 3:
        if not (levels == levels[..., :1]).all():
            raise ValueError(
                f"load_folder: the mask {path} is a colour image; pass palette= (one colour per "
                "class, e.g. numpy_unet.labels.COLOR_DICT) to read colour-coded classes"
            )
        levels = levels[..., 0]
    return levels_to_labels(levels, classes, path)


def resize_labels(labels: np.ndarray, size: tuple[int, int], classes: int) -> np.ndarray:
    """Class numbers ``(H, W)`` resized to ``size``: each class's indicator resized, then the
    class of the largest (ties go to the lower class). Returns ``(h, w)`` int64."""
    if labels.shape == tuple(size):
        return labels
    indicators = [resize((labels == k).astype(np.float32), size) for k in range(classes)]
    return np.argmax(np.stack(indicators, axis=-1), axis=-1)  # (h, w, K) -> (h, w)
