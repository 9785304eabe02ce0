"""Train the paper's recipe and the seed's on real ISBI 2012 images; score both held out.

The 20 labelled images of ``../shared/data/isbi2012-membrane`` are resized to ``--size``
(256 by default, as the seed does); the first 15 train and the last 5 are scored once at the
end, with the weights of the last epoch, on the same pixels for both recipes:

- **paper**: ``UNet.paper`` with fewer filters (valid convs, cropped skips, transposed
  convs, a 2-class softmax), trained with ``paper_recipe``'s defaults (the cross-entropy
  weighted by the paper's separation term, Adam with a decaying rate), one tile per step
  (``--tile``, its context mirrored at the border),
  elastic deformations, flips and quarter turns; held-out images predicted tile by tile
  (``predict_tiled``);
- **seed**: the seed's 'same' UNet with the same filters, binary cross-entropy, Adam,
  batch 2, the seed's augmentation plus flips and quarter turns.

Both train for the same number of steps. Run from the repository root::

    python benchmarks/train_paper_isbi.py --data ../shared/data/isbi2012-membrane
    python benchmarks/train_paper_isbi.py --data DIR --recipes paper --epochs 40
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from numpy_unet import UNet  # noqa: E402
from numpy_unet.app.plotting import plot_predictions  # noqa: E402
from numpy_unet.data import Augmenter, load_folder  # noqa: E402
from numpy_unet.files import fresh_dir  # noqa: E402
from numpy_unet.metrics import evaluate  # noqa: E402
from numpy_unet.optimizers import Adam  # noqa: E402
from numpy_unet.train.paper import paper_recipe  # noqa: E402
from numpy_unet.train.tiling import predict_tiled  # noqa: E402


def train_paper(args, x_train, y_train, x_test) -> tuple[np.ndarray, float, UNet]:
    model = UNet.paper(input_shape=(args.tile, args.tile, 1), filters=args.filters, seed=args.seed)
    steps = args.epochs * args.steps
    options = paper_recipe(
        model, y_train, learning_rate=args.paper_lr, decay_steps=steps, seed=args.seed
    )
    out = model.compute_output_shape((1, args.tile, args.tile, 1))[1]
    print(
        f"\npaper recipe: UNet.paper, {args.filters} filters ({model.count_params():,} "
        f"parameters), tile {args.tile} -> {out}; paper_recipe's defaults: Adam "
        f"{args.paper_lr or 1e-3} decaying over {steps} steps, cross-entropy weighted by the "
        "separation term, elastic deformation, batch 1"
    )
    t0 = time.perf_counter()
    model.fit(
        x_train, y_train, epochs=args.epochs, steps_per_epoch=args.steps, verbose=2, **options
    )
    seconds = time.perf_counter() - t0
    probs = predict_tiled(model, x_test, tile=args.tile)[..., 1:2]  # P(cell)
    return probs, seconds, model


def train_seed(args, x_train, y_train, x_test) -> tuple[np.ndarray, float, UNet]:
    model = UNet((args.size, args.size, 1), filters=args.filters, seed=args.seed)
    model.compile(optimizer=Adam(args.seed_lr), loss="binary_crossentropy", metrics=["accuracy"])
    print(
        f"\nseed recipe: UNet, {args.filters} filters ({model.count_params():,} parameters); "
        f"Adam {args.seed_lr}, binary cross-entropy, batch 2"
    )
    t0 = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=2,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        augment=Augmenter(seed=args.seed),
        seed=args.seed,
        verbose=2,
    )
    seconds = time.perf_counter() - t0
    return model.predict(x_test, batch_size=2), seconds, model


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder with the ISBI images and labels")
    p.add_argument("--size", type=int, default=256, help="images are resized to this")
    p.add_argument("--filters", type=int, default=16)
    p.add_argument("--tile", type=int, default=316, help="the paper network's input tile")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--steps", type=int, default=40, help="steps per epoch")
    p.add_argument("--paper-lr", type=float, default=None, help="default: paper_recipe's")
    p.add_argument("--seed-lr", type=float, default=1e-3)
    p.add_argument("--recipes", nargs="+", choices=["paper", "seed"], default=["paper", "seed"])
    p.add_argument("--train", type=int, default=15, help="images to train on; the rest score")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="isbi-recipes", help="output folder (never overwritten)")
    args = p.parse_args(argv)

    images, masks = load_folder(args.data, size=args.size)
    x_train, y_train = images[: args.train], masks[: args.train]
    x_test, y_test = images[args.train :], masks[args.train :]
    out = fresh_dir(args.out)
    print(f"ISBI 2012 at {args.size}x{args.size}: {len(x_train)} training, {len(x_test)} held out")
    results = {}
    for recipe in args.recipes:
        train = train_paper if recipe == "paper" else train_seed
        probs, seconds, _ = train(args, x_train, y_train, x_test)
        scores = evaluate(probs, y_test)
        results[recipe] = {**scores, "training_seconds": round(seconds, 1)}
        plot_predictions(
            x_test,
            y_test,
            probs,
            out / f"predictions_{recipe}.png",
            n=len(x_test),
            title=f"{recipe} recipe: pixel accuracy {scores['pixel_accuracy']:.3f}, "
            f"Rand error {scores['rand_error']:.3f}",
        )
    results["all_cells_pixel_accuracy"] = evaluate(np.ones_like(y_test), y_test)["pixel_accuracy"]
    results["settings"] = vars(args)
    (out / "metrics.json").write_text(json.dumps(results, indent=1))
    print(f"\nheld-out ({len(x_test)} images)  accuracy  Dice    IoU     Rand error  time")
    for recipe in args.recipes:
        r = results[recipe]
        print(
            f"  {recipe:22} {r['pixel_accuracy']:.4f}    {r['dice']:.4f}  {r['iou']:.4f}  "
            f"{r['rand_error']:.4f}      {r['training_seconds']:.0f} s"
        )
    print(f"  (predicting all cells: accuracy {results['all_cells_pixel_accuracy']:.4f})")
    print(f"Wrote {out}")
    return results


if __name__ == "__main__":
    main()
