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

from ..data import Augmenter, synthetic_membranes
from ..files import fresh_dir
from ..metrics import evaluate
from ..model import UNet
from ..optimizers import Adam
from ..train.diagnostics import diagnose_predictions
from .plotting import plot_history, plot_predictions


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


def run_demo(out: str | Path = "numpy-unet-demo", quick: bool = False, seed: int = 0) -> dict:
    """Run the demo into a new folder (``out``, or ``out-2``... if it holds files)."""
    start = time.perf_counter()
    recipe = QUICK if quick else DemoRecipe()
    out = fresh_dir(out)
    n = recipe.train + recipe.validation + recipe.test
    print(f"Generating {n} membrane images of {recipe.size}x{recipe.size} ...", flush=True)
    images, masks = synthetic_membranes(n, size=recipe.size, seed=seed)
    a, b = recipe.train, recipe.train + recipe.validation
    x_train, y_train = images[:a], masks[:a]
    x_val, y_val = images[a:b], masks[a:b]
    x_test, y_test = images[b:], masks[b:]

    model = UNet((recipe.size, recipe.size, 1), filters=recipe.filters, seed=seed)
    model.compile(
        optimizer=Adam(recipe.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy", "dice"],
    )
    print(
        f"Training the seed's UNet with {recipe.filters} filters instead of 64 "
        f"({model.count_params():,} parameters) for {recipe.epochs} epochs of "
        f"{recipe.steps_per_epoch} steps, batch {recipe.batch_size} ...",
        flush=True,
    )
    t0 = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        steps_per_epoch=recipe.steps_per_epoch,
        validation_data=(x_val, y_val),
        augment=Augmenter(seed=seed),
        seed=seed,
        checkpoint_dir=out,
        verbose=2,
    )
    training_seconds = time.perf_counter() - t0

    model.load_weights(out / "best_weights.npz")
    probs = model.predict(x_test, batch_size=recipe.batch_size)
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
