"""Figures: training curves and prediction panels, drawn with matplotlib's object API.

No pyplot and no GUI backend: every function builds a ``Figure``, saves it as PNG and
returns the path, so it works on servers, in tests and in tutorials alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ..labels import label_to_rgb, to_labels

# The overlay's colours (RGB in [0, 1]): white, orange and blue stay apart for colour-blind
# readers too (orange and blue are the Okabe-Ito palette's safest pair).
FOUND = (1.0, 1.0, 1.0)  # membrane predicted where the truth has membrane
FALSE_MEMBRANE = (0.90, 0.62, 0.0)  # membrane predicted inside a cell (orange)
MISSED_MEMBRANE = (0.20, 0.50, 1.0)  # membrane in the truth, predicted cell (blue)


def _save(fig: Figure, path: str | Path) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return str(path)


def _centre(a: np.ndarray, shape: tuple) -> np.ndarray:
    """The centre of ``a`` with ``shape`` ('valid' UNets predict less than their input)."""
    dh, dw = (a.shape[0] - shape[0]) // 2, (a.shape[1] - shape[1]) // 2
    return a[dh : dh + shape[0], dw : dw + shape[1]]


def plot_history(history: dict[str, list[float]], path: str | Path, title: str = "") -> str:
    """Loss (left) and metrics (right) per epoch, training solid and validation dashed."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)
    names = [k for k in history if not k.startswith("val_") and k != "time"]
    for name in names:
        ax = ax_loss if name == "loss" else ax_metric
        epochs = np.arange(1, len(history[name]) + 1)
        (line,) = ax.plot(epochs, history[name], marker="o", ms=3, label=f"train {name}")
        if f"val_{name}" in history:
            ax.plot(
                epochs,
                history[f"val_{name}"],
                ls="--",
                marker="o",
                ms=3,
                color=line.get_color(),
                label=f"validation {name}",
            )
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_metric.set(xlabel="epoch", ylabel="score (1 is perfect)", title="metrics")
    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_predictions(
    images: np.ndarray,
    masks: np.ndarray,
    probs: np.ndarray,
    path: str | Path,
    threshold: float = 0.5,
    n: int = 4,
    title: str = "",
) -> str:
    """One row per image: input, true mask, probability map, thresholded mask overlaid.

    Shapes: (N, H, W, 1) each; the first ``n`` images are drawn. In the overlay, over the
    darkened input, white is predicted membrane where the truth is membrane too, orange a
    false membrane (predicted inside a cell), and blue a missed one (a legend says so).
    """
    n = min(n, len(images))
    fig = Figure(figsize=(12, 3 * n + 0.6), layout="constrained")
    axes = np.asarray(fig.subplots(n, 4, squeeze=False))
    for i in range(n):
        img, true, prob = images[i, ..., 0], masks[i, ..., 0] >= 0.5, probs[i, ..., 0]
        pred = prob >= threshold
        crop, true = _centre(img, prob.shape), _centre(true, prob.shape)
        overlay = np.stack([crop] * 3, axis=-1) * 0.5  # the input, darkened
        overlay[~pred & ~true] = FOUND
        overlay[~pred & true] = FALSE_MEMBRANE
        overlay[pred & ~true] = MISSED_MEMBRANE
        axes[i, 0].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[i, 1].imshow(masks[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        im = axes[i, 2].imshow(prob, cmap="magma", vmin=0, vmax=1)
        fig.colorbar(im, ax=axes[i, 2], fraction=0.046, pad=0.02, label="P(cell)")
        axes[i, 3].imshow(overlay)
        names = ["input", "true mask (white = cell)", "predicted P(cell)"]
        names.append(f"predicted membrane (P < {threshold}) vs truth")
        for ax, name in zip(axes[i], names):
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    legend = [
        Patch(facecolor=FOUND, edgecolor="0.3", label="membrane found"),
        Patch(facecolor=FALSE_MEMBRANE, edgecolor="0.3", label="false membrane (inside a cell)"),
        Patch(facecolor=MISSED_MEMBRANE, edgecolor="0.3", label="membrane missed"),
    ]
    axes[n - 1, 3].legend(
        handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.03), fontsize=8, ncol=1
    )
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_classes(
    images: np.ndarray,
    masks: np.ndarray,
    probs: np.ndarray,
    path: str | Path,
    colors: object,
    class_names: list[str],
    n: int = 4,
    title: str = "",
) -> str:
    """One row per image: input, true classes, predicted classes, and where they differ.

    Shapes: images (N, H, W, 1), masks (N, H, W, 1) class labels, probs (N, H, W, K) a
    softmax output; classes are drawn in ``colors`` (see ``numpy_unet.labels.label_to_rgb``).
    """
    n = min(n, len(images))
    fig = Figure(figsize=(12, 3 * n + 0.6), layout="constrained")
    axes = np.asarray(fig.subplots(n, 4, squeeze=False))
    for i in range(n):
        true, pred = to_labels(masks[i]), to_labels(probs[i])  # (H, W) class numbers
        wrong = np.stack([images[i, ..., 0]] * 3, axis=-1) * 0.5  # the input, darkened
        wrong[true != pred] = (1.0, 0.2, 0.2)
        panels = [
            (images[i, ..., 0], "input"),
            (label_to_rgb(true, colors), "true classes"),
            (label_to_rgb(pred, colors), "predicted classes"),
            (wrong, f"wrong pixels (red): {np.mean(true != pred):.1%}"),
        ]
        for ax, (picture, name) in zip(axes[i], panels):
            ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    palette = np.asarray(colors) / 255
    legend = [
        Patch(facecolor=palette[k], edgecolor="0.3", label=name)
        for k, name in enumerate(class_names)
    ]
    axes[n - 1, 2].legend(
        handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.03), fontsize=8, ncol=3
    )
    if title:
        fig.suptitle(title)
    return _save(fig, path)
