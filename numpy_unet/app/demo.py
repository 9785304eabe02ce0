"""``numpy-unet demo``: the main job. Generate membranes, train a small UNet, show it works.

The network is the seed's UNet (same layers, depth 4, dropout, the 2-channel head) with
fewer filters, trained as the seed trains it (Adam, binary cross-entropy, augmentation) on
generated EM-like membranes. It then scores held-out images it never saw, not even for
choosing the best epoch, and writes:

- ``metrics.json``: held-out Dice, IoU, pixel accuracy, Rand error, training time;
- ``training_curves.png``: loss and metrics per epoch, training and validation;
- ``predictions.png``: held-out inputs, true masks, probabilities and thresholded masks;
- ``best_weights.npz`` (load with ``numpy_unet.load_model``) and ``checkpoint.npz``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data import Augmenter, synthetic_membranes
from ..files import fresh_dir
from ..metrics import class_scores, evaluate
from ..model import UNet
from ..optimizers import Adam
from ..train.diagnostics import diagnose_predictions
from .plotting import plot_classes, plot_history, plot_predictions


@dataclass
class DemoRecipe:
    size: int = 128  # image height and width
    filters: int = 8  # the seed has 64; the architecture is otherwise the same
    train: int = 96  # generated training images
    validation: int = 8  # for choosing the best epoch
    test: int = 16  # held out, scored once at the end
    batch_size: int = 4
    epochs: int = 12
    steps_per_epoch: int = 25
    learning_rate: float = 2e-3


QUICK = DemoRecipe(
    size=64, filters=4, train=8, validation=2, test=2, batch_size=2, epochs=2, steps_per_epoch=2
)

# --classes 3: membranes, cells and the dark organelles inside them, as three classes
CLASS_NAMES = ["membrane", "cell", "organelle"]
CLASS_COLORS = [[0, 0, 0], [210, 210, 210], [230, 159, 0]]  # black, light gray, orange


def run_demo(
    out: str | Path = "numpy-unet-demo", quick: bool = False, seed: int = 0, classes: int = 1
) -> dict:
    """Run the demo into a new folder (``out``, or ``out-2``... if it exists).

    ``classes=3`` trains a softmax UNet on three classes instead (membrane, cell,
    organelle), with categorical cross-entropy, and scores each class.
    """
    if classes not in (1, 3):
        raise ValueError(f"demo: classes must be 1 (cell vs membrane) or 3, got {classes!r}")
    start = time.perf_counter()
    recipe = QUICK if quick else DemoRecipe()
    out = fresh_dir(out)
    n = recipe.train + recipe.validation + recipe.test
    what = "membrane images" if classes == 1 else "images of membranes, cells and organelles"
    print(f"Generating {n} {what} of {recipe.size}x{recipe.size} ...", flush=True)
    images, masks = synthetic_membranes(n, size=recipe.size, seed=seed, classes=max(classes, 2))
    a, b = recipe.train, recipe.train + recipe.validation
    x_train, y_train = images[:a], masks[:a]
    x_val, y_val = images[a:b], masks[a:b]
    x_test, y_test = images[b:], masks[b:]

    model = UNet(
        (recipe.size, recipe.size, 1), filters=recipe.filters, seed=seed, num_classes=classes
    )
    model.compile(
        optimizer=Adam(recipe.learning_rate),
        loss="binary_crossentropy" if classes == 1 else "categorical_crossentropy",
        metrics=["accuracy", "dice"] if classes == 1 else ["accuracy", "iou"],
    )
    print(
        f"Training the seed's UNet with {recipe.filters} filters instead of 64 "
        f"({model.count_params():,} parameters) for {recipe.epochs} epochs of "
        f"{recipe.steps_per_epoch} steps, batch {recipe.batch_size} ...",
        flush=True,
    )
    t0 = time.perf_counter()
    weights = {}
    if classes > 1:  # organelles are 3% of the pixels: weigh each class by 1 / its frequency
        balance = class_balance(y_train, classes)
        weights = dict(sample_weight=balance[y_train[..., 0].astype(int)])
        validation = (x_val, y_val, balance[y_val[..., 0].astype(int)])
        print(f"Class weights (1 / frequency, mean 1): {np.round(balance, 2).tolist()}")
    else:
        validation = (x_val, y_val)
    history = model.fit(
        x_train,
        y_train,
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        steps_per_epoch=recipe.steps_per_epoch,
        validation_data=validation,
        **weights,
        augment=Augmenter(seed=seed),
        seed=seed,
        checkpoint_dir=out,
        verbose=2,
    )
    training_seconds = time.perf_counter() - t0

    model.load_weights(out / "best_weights.npz")
    probs = model.predict(x_test, batch_size=recipe.batch_size)
    if classes > 1:
        return _report_classes(out, recipe, model, history, x_test, y_test, probs, start, t0)
    scores = evaluate(probs, y_test)
    result = {
        "held_out_images": len(x_test),
        **scores,
        "training_seconds": round(training_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "recipe": asdict(recipe),
        "parameters": model.count_params(),
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    (out / "history.json").write_text(json.dumps(history.history, indent=1))
    curves = plot_history(
        history.history,
        out / "training_curves.png",
        title=f"UNet, {recipe.filters} filters, generated membranes",
    )
    panels = plot_predictions(
        x_test,
        y_test,
        probs,
        out / "predictions.png",
        title=f"held-out images: Dice {scores['dice']:.3f}",
    )
    warning = diagnose_predictions(probs, y_test, model)
    if warning:
        print(warning)
    print(
        f"\nHeld-out ({len(x_test)} images): Dice {scores['dice']:.4f}, IoU {scores['iou']:.4f}, "
        f"pixel accuracy {scores['pixel_accuracy']:.4f}, Rand error {scores['rand_error']:.4f}; "
        f"training took {training_seconds:.0f} s."
    )
    print(
        f"Wrote {out / 'metrics.json'}\n      {curves}\n      {panels}\n"
        f"      {out / 'best_weights.npz'}"
    )
    return result


def class_balance(labels: np.ndarray, classes: int) -> np.ndarray:
    """A weight per class, ``1 / frequency`` scaled so that the mean pixel weight is 1: each
    class then counts as much in the loss as any other (the paper's ``w_c``)."""
    freq = np.bincount(labels.astype(int).ravel(), minlength=classes) / labels.size
    weight = 1.0 / np.maximum(freq, 1e-12)
    return weight / (weight * freq).sum()


def _report_classes(
    out: Path,
    recipe: DemoRecipe,
    model: UNet,
    history: object,
    x_test: np.ndarray,
    y_test: np.ndarray,
    probs: np.ndarray,
    start: float,
    t0: float,
) -> dict:
    """The end of ``demo --classes 3``: per-class scores, their means, the figures."""
    training_seconds = time.perf_counter() - t0
    scores = class_scores(probs, y_test)
    per_class = {
        name: {m: scores[m][k] for m in ("accuracy", "iou", "dice")}
        for k, name in enumerate(CLASS_NAMES)
    }
    result = {
        "held_out_images": len(x_test),
        "classes": CLASS_NAMES,
        "pixel_accuracy": scores["pixel_accuracy"],
        "mean_iou": scores["mean_iou"],
        "mean_dice": scores["mean_dice"],
        "per_class": per_class,
        "training_seconds": round(training_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "recipe": asdict(recipe),
        "parameters": model.count_params(),
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    (out / "history.json").write_text(json.dumps(history.history, indent=1))
    curves = plot_history(
        history.history, out / "training_curves.png", title="UNet, 3 classes, generated images"
    )
    panels = plot_classes(
        x_test,
        y_test,
        probs,
        out / "predictions.png",
        CLASS_COLORS,
        CLASS_NAMES,
        title=f"held-out images: mean IoU {scores['mean_iou']:.3f}",
    )
    ious = ", ".join(f"{name} {per_class[name]['iou']:.3f}" for name in CLASS_NAMES)
    print(
        f"\nHeld-out ({len(x_test)} images): mean IoU {scores['mean_iou']:.4f} ({ious}), "
        f"pixel accuracy {scores['pixel_accuracy']:.4f}; training took {training_seconds:.0f} s."
    )
    print(f"Wrote {out / 'metrics.json'}\n      {curves}\n      {panels}")
    return result
