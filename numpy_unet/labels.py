"""Class labels: from colours to labels and back, and between the two label layouts.

A segmentation into ``K`` classes can be stored two ways, and this project takes both:

- **labels** ``(N, H, W, 1)``: each pixel holds its class number ``0 .. K-1`` (the seed's
  ``adjustData(flag_multi_class=True)`` reads masks this way: pixel value ``i`` is class ``i``);
- **one-hot** ``(N, H, W, K)``: channel ``k`` is 1 where the pixel is of class ``k``, else 0
  (what a softmax predicts, and what the seed's ``adjustData`` turns labels into).

A two-class mask (membrane 0, cell 1) is the case ``K = 2`` of the first layout.

For pictures, class ``k`` is drawn in colour ``k`` of a palette; the default is the seed's
``COLOR_DICT`` (the 12 classes of the CamVid street scenes, the seed's multi-class example):

========  ==========  ====  ==========  ==============
class     colour      ..    class       colour
========  ==========  ====  ==========  ==============
0 Sky     128 128 128       6 Sign      192 128 128
1 Build.  128   0   0       7 Fence      64  64 128
2 Pole    192 192 128       8 Car        64   0 128
3 Road    128  64 128       9 Pedestr.   64  64   0
4 Pavem.   60  40 222       10 Bicycl.    0 128 192
5 Tree    128 128   0       11 Unlab.     0   0   0
========  ==========  ====  ==========  ==============
"""

from __future__ import annotations

import numpy as np

__all__ = ["COLOR_DICT", "label_to_rgb", "one_hot", "rgb_to_label", "to_labels"]

# the seed's data.py, in its order: Sky, Building, Pole, Road, Pavement, Tree, SignSymbol,
# Fence, Car, Pedestrian, Bicyclist, Unlabelled (8-bit RGB)
COLOR_DICT = np.array(
    [
        [128, 128, 128],
        [128, 0, 0],
        [192, 192, 128],
        [128, 64, 128],
        [60, 40, 222],
        [128, 128, 0],
        [192, 128, 128],
        [64, 64, 128],
        [64, 0, 128],
        [64, 64, 0],
        [0, 128, 192],
        [0, 0, 0],
    ],
    dtype=np.uint8,
)


def _palette(colors: object, where: str) -> np.ndarray:
    """A palette as a (K, 3) int array of 8-bit colours, checked."""
    palette = np.asarray(colors)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
        raise ValueError(
            f"{where}: a palette is a list of (R, G, B) colours, got shape {palette.shape}"
        )
    if not np.issubdtype(palette.dtype, np.number) or palette.min() < 0 or palette.max() > 255:
        raise ValueError(f"{where}: palette colours must be 8-bit values 0..255")
    if len(np.unique(palette, axis=0)) != len(palette):
        raise ValueError(f"{where}: the palette gives two classes the same colour")
    return palette.astype(np.int64)


def to_labels(y: np.ndarray) -> np.ndarray:
    """Class numbers ``(..., H, W)`` int64 from labels ``(..., 1)`` or one-hot/probabilities
    ``(..., K)`` with ``K > 1`` (the most probable class; ties go to the lower class)."""
    y = np.asarray(y)
    if y.shape[-1] == 1:
        return np.rint(y[..., 0]).astype(np.int64)
    return np.argmax(y, axis=-1)  # (..., K) -> (...)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot ``(..., K)`` float32 of class numbers ``(...)`` or labels ``(..., 1)``."""
    labels = np.asarray(labels)
    if labels.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    labels = np.rint(labels).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"one_hot: class labels must lie in [0, {num_classes - 1}], got "
            f"[{labels.min()}, {labels.max()}]"
        )
    return np.eye(num_classes, dtype=np.float32)[labels]


def label_to_rgb(labels: np.ndarray, colors: object = COLOR_DICT) -> np.ndarray:
    """Draw class labels in colour: the seed's ``labelVisualize``.

    Parameters
    ----------
    labels : numpy.ndarray
        Class numbers ``(H, W)`` or ``(H, W, 1)``, or a prediction ``(H, W, K)`` with
        ``K > 1`` (each pixel drawn in the colour of its most probable class). A leading batch
        axis is allowed.
    colors : array-like
        ``(K, 3)`` 8-bit colours, class ``k`` drawn in ``colors[k]`` (the seed's
        ``COLOR_DICT`` by default).

    Returns
    -------
    numpy.ndarray
        ``(..., H, W, 3)`` float32 RGB in [0, 1], as the seed returns (``img_out / 255``).
    """
    palette = _palette(colors, "label_to_rgb")
    labels = np.asarray(labels)
    classes = to_labels(labels) if labels.ndim >= 3 else np.rint(labels).astype(np.int64)
    if classes.size and (classes.min() < 0 or classes.max() >= len(palette)):
        raise ValueError(
            f"label_to_rgb: labels range over [{classes.min()}, {classes.max()}] but the "
            f"palette has {len(palette)} colours; pass colors= with one colour per class"
        )
    return (palette[classes] / 255).astype(np.float32)  # (..., H, W) -> (..., H, W, 3)


def rgb_to_label(rgb: np.ndarray, colors: object, where: str = "rgb_to_label") -> np.ndarray:
    """Class numbers ``(H, W)`` int64 of a colour-coded mask ``(H, W, 3)`` of 8-bit values.

    Every pixel must have one of the palette's colours exactly; the first pixel that has
    another is named in the error, with its colour.
    """
    palette = _palette(colors, where)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"{where}: a colour mask is (H, W, 3), got shape {rgb.shape}")

    def code(c: np.ndarray) -> np.ndarray:  # one int per colour: (R * 256 + G) * 256 + B
        return (c[..., 0] * 256 + c[..., 1]) * 256 + c[..., 2]

    pixels, keys = code(rgb.astype(np.int64)), code(palette)
    order = np.argsort(keys)
    at = np.clip(np.searchsorted(keys[order], pixels), 0, len(keys) - 1)
    found = keys[order][at] == pixels
    if not found.all():
        r, c = np.argwhere(~found)[0]
        raise ValueError(
            f"{where}: pixel (row {r}, col {c}) has colour {tuple(int(v) for v in rgb[r, c])}, "
            f"which is not in the palette of {len(palette)} colours"
        )
    return order[at]  # (H, W) class numbers
