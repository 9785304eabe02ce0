"""Train the seed's UNet recipe on real ISBI 2012 EM images and score held-out images.

The 20 labelled images of ``../shared/data/isbi2012-membrane`` (or your own copy of the
ISBI data, in the seed's image/ + label/ layout or as train-volume.tif + train-labels.tif)
are resized to 256x256 as the seed does; the first 15 train, the last 5 are scored once at
the end with the weights of the last epoch (there is no separate validation set to choose
an epoch with, so none is chosen). The recipe is the seed's (Adam, binary cross-entropy,
batch 2, its augmentation plus flips and rotations) with fewer filters.

Run from the repository root::

    python benchmarks/train_isbi.py --data ../shared/data/isbi2012-membrane
    python benchmarks/train_isbi.py --data DIR --filters 32 --epochs 40 --out isbi-run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from numpy_unet import UNet  # noqa: E402
from numpy_unet.app.plotting import plot_history, plot_predictions  # noqa: E402
from numpy_unet.data import Augmenter, load_folder  # noqa: E402
from numpy_unet.files import fresh_dir  # noqa: E402
from numpy_unet.metrics import evaluate  # noqa: E402
from numpy_unet.optimizers import Adam  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder with the ISBI images and labels")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--filters", type=int, default=16)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train", type=int, default=15, help="images to train on; the rest score")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="isbi-run", help="output folder (never overwritten)")
    args = p.parse_args(argv)

    images, masks = load_folder(args.data, size=args.size)
    x_train, y_train = images[: args.train], masks[: args.train]
    x_test, y_test = images[args.train :], masks[args.train :]
    out = fresh_dir(args.out)
    model = UNet((args.size, args.size, 1), filters=args.filters, seed=args.seed)
    model.compile(optimizer=Adam(args.lr), loss="binary_crossentropy", metrics=["accuracy"])
    print(
        f"ISBI 2012: training on {len(x_train)} images, scoring {len(x_test)}; UNet with "
        f"{args.filters} filters ({model.count_params():,} parameters); {args.epochs} epochs "
        f"x {args.steps_per_epoch} steps, batch {args.batch_size}, Adam {args.lr}"
    )
    t0 = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        augment=Augmenter(seed=args.seed),
        seed=args.seed,
        checkpoint_dir=out,
        verbose=2,
    )
    seconds = time.perf_counter() - t0
    probs = model.predict(x_test, batch_size=args.batch_size)
    scores = evaluate(probs, y_test)
    always_cell = evaluate(probs * 0 + 1, y_test)["pixel_accuracy"]
    result = {
        **scores,
        "pixel_accuracy_of_predicting_all_cells": always_cell,
        "training_seconds": round(seconds, 1),
        "settings": vars(args),
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    plot_history(history.history, out / "training_curves.png", title="ISBI 2012, seed recipe")
    plot_predictions(
        x_test,
        y_test,
        probs,
        out / "predictions.png",
        n=len(x_test),
        title=f"held-out ISBI images: pixel accuracy {scores['pixel_accuracy']:.3f}",
    )
    print(
        f"\nHeld-out ({len(x_test)} images): pixel accuracy {scores['pixel_accuracy']:.4f} "
        f"(all-cells baseline {always_cell:.4f}), Dice {scores['dice']:.4f}, "
        f"IoU {scores['iou']:.4f}, Rand error {scores['rand_error']:.4f}; "
        f"training {seconds:.0f} s. Wrote {out}"
    )
    return result


if __name__ == "__main__":
    main()
