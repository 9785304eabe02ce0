"""Why does the paper's recipe lose to the seed's on real membranes? One change at a time.

Every row trains on ISBI 2012 images 0-14 of ``../shared/data/isbi2012-membrane`` for the same
training time (``--minutes``: as many steps as fit in it at the step's cost, measured first
as the fastest of three short runs, so that other jobs on a shared machine do not change what
a row learns), then scores images 15-19 with the last weights: pixel
accuracy and Dice at threshold 0.5, the Rand error at 0.5 and at the best threshold of a sweep
(0.05 ... 0.95, as the ISBI evaluation reported the best of several), the same with test-time
augmentation (the mean over the 8 orientations), the training seconds, the steps, and the mask
pixels the loss saw. Rows:

- ``seed``: the seed's 'same' UNet, binary cross-entropy, Adam 1e-3, batches of 2 whole
  256x256 images, the project's augmentation;
- ``paper``: the paper to the letter, the recipe as shipped before this study: ``UNet.paper``,
  256x256 images, 316-pixel tiles (132 output), weight maps (w0 = 10, class balance), SGD
  0.003 momentum 0.99, elastic deformation;
- ``paper-...``: the paper's with one change (see ``ROWS``), ``paper-all`` with the changes
  that helped together, ``paper-all-decay`` with a decaying learning rate too;
- ``paper-shipped``: ``paper_recipe``'s defaults now, which those rows chose.

``--seed 1`` repeats a row with other initial weights, tiles and augmentations.

Run one row per process, from the repository root (each appends to ``--out``'s results)::

    python benchmarks/ablation_paper_isbi.py --data ../shared/data/isbi2012-membrane --row seed
    python benchmarks/ablation_paper_isbi.py --data DIR --table   # print what is there
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
from numpy_unet.data import Augmenter, load_folder, resize, weight_map  # noqa: E402
from numpy_unet.metrics import dice, pixel_accuracy, rand_error, threshold_sweep  # noqa: E402
from numpy_unet.optimizers import SGD, Adam  # noqa: E402
from numpy_unet.train.paper import paper_recipe  # noqa: E402
from numpy_unet.train.tiling import predict_tiled  # noqa: E402

PAPER = dict(size=256, tile=316, optimizer="sgd", lr=0.003, w0=10.0, balance=True)
ROWS = {
    "seed": dict(recipe="seed", size=256, lr=1e-3),
    "paper": dict(recipe="paper", **PAPER),
    "paper-512": PAPER | dict(recipe="paper", size=512),  # full resolution
    "paper-tile572": PAPER | dict(recipe="paper", tile=572),  # 388x388 outputs: 8.6x pixels
    "paper-no-balance": PAPER | dict(recipe="paper", balance=False),
    "paper-w0-0": PAPER | dict(recipe="paper", w0=0.0),
    "paper-adam": PAPER | dict(recipe="paper", optimizer="adam", lr=1e-3),
    # the two changes that helped alone, together: Adam, and the separation term without
    # the class balance (full resolution and larger tiles did not help in 8 minutes)
    "paper-all": PAPER | dict(recipe="paper", optimizer="adam", lr=1e-3, balance=False),
    # and the learning rate lowered along a half cosine to 1/100 of it by the last step
    "paper-all-decay": PAPER
    | dict(recipe="paper", optimizer="adam", lr=1e-3, balance=False, decay="cosine"),
    # what paper_recipe now ships: the row above, with the rate decayed step by step by
    # optimizers.CosineDecay (to 1/100 over the run) instead of once per 20 steps
    "paper-shipped": dict(recipe="shipped", size=256, tile=316),
}


def build(
    row: dict, y_train: np.ndarray, filters: int, seed: int, steps: int | None = None
) -> tuple[UNet, dict, int]:
    """The model, its fit options and the mask pixels one step sees (``steps``: the length
    of the run, for the shipped recipe's decaying learning rate)."""
    if row["recipe"] == "seed":
        model = UNet((row["size"], row["size"], 1), filters=filters, seed=seed)
        model.compile(optimizer=Adam(row["lr"]), loss="binary_crossentropy")
        options = dict(batch_size=2, augment=Augmenter(seed=seed), seed=seed)
        return model, options, 2 * row["size"] ** 2
    tile = row["tile"]
    model = UNet.paper(input_shape=(tile, tile, 1), filters=filters, seed=seed)
    if row["recipe"] == "shipped":  # paper_recipe's defaults, nothing changed
        options = paper_recipe(model, y_train, decay_steps=steps or 1, seed=seed)
        return model, options, model.output_size(tile) ** 2
    # the paper to the letter (these rows predate the new defaults), then the row's change
    literal = dict(optimizer="sgd", class_balance=True)
    options = paper_recipe(
        model, y_train, learning_rate=row["lr"], w0=row["w0"], seed=seed, **literal
    )
    if not row["balance"]:  # class weights 1 and 1: only the separation term
        maps = [weight_map(m[..., 0], w0=row["w0"], class_weights=(1.0, 1.0)) for m in y_train]
        options["sample_weight"] = np.stack(maps)
    if row["optimizer"] == "adam":
        model.optimizer = Adam(row["lr"])
    else:
        model.optimizer = SGD(row["lr"], momentum=0.99)
    return model, options, model.output_size(tile) ** 2


def step_seconds(model: UNet, options: dict, x: np.ndarray, y: np.ndarray) -> float:
    """The time of one training step: the fastest of three 5-step runs, after a warm-up.
    The fastest is what the step costs; a slower run only measures other jobs."""
    model.fit(x, y, epochs=1, steps_per_epoch=2, verbose=0, **options)  # warm-up
    runs = []
    for k in range(3):
        t0 = time.perf_counter()
        model.fit(x, y, epochs=1, steps_per_epoch=5, verbose=0, **(options | {"seed": 100 + k}))
        runs.append((time.perf_counter() - t0) / 5)
    return min(runs)


def train(
    model: UNet, options: dict, x: np.ndarray, y: np.ndarray, steps: int, decay: str | None
) -> None:
    """Fit ``steps`` steps, in chunks of 20 (a new batch order per chunk); with
    ``decay="cosine"`` the learning rate falls along a half cosine to 1/100 by the end."""
    t0 = time.perf_counter()
    start = model.optimizer.learning_rate
    for chunk in range(-(-steps // 20)):
        n = min(20, steps - 20 * chunk)
        if decay == "cosine":
            done = (20 * chunk + n / 2) / steps
            model.optimizer.learning_rate = start * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * done)))
        model.fit(x, y, epochs=1, steps_per_epoch=n, verbose=0, **(options | {"seed": chunk}))
        print(f"  {20 * chunk + n} of {steps} steps, {time.perf_counter() - t0:.0f} s", flush=True)


def predict(model: UNet, row: dict, x: np.ndarray, tta: bool) -> np.ndarray:
    """P(cell) of every held-out image, at the images' size."""
    if row["recipe"] == "seed":
        return predict_tiled(model, x, tile=row["size"], tta=tta)
    return predict_tiled(model, x, tile=row["tile"], tta=tta)[..., 1:2]


def scores(probs: np.ndarray, y: np.ndarray) -> dict:
    sweep = threshold_sweep(probs, y)
    return {
        "pixel_accuracy": pixel_accuracy(probs, y),
        "dice": dice(probs, y),
        "rand_error": rand_error(probs, y),
        "rand_error_best": sweep["best_score"],
        "best_threshold": sweep["best_threshold"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder with the ISBI images and labels")
    p.add_argument("--row", choices=sorted(ROWS), help="the row to train and score")
    p.add_argument("--minutes", type=float, default=10.0, help="training time of each row")
    p.add_argument("--filters", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="ablation-paper.json", help="results, one entry per row")
    p.add_argument("--table", action="store_true", help="print the results so far")
    args = p.parse_args(argv)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    if args.row:
        row = ROWS[args.row]
        images, masks = load_folder(args.data, size=row["size"])
        x_train, y_train, x_test, y_test = images[:15], masks[:15], images[15:], masks[15:]
        model, options, pixels = build(row, y_train, args.filters, args.seed)
        print(f"{args.row}: {row}, {model.count_params():,} parameters", flush=True)
        # equal time on a quiet machine: the steps that fit in --minutes at the step's own
        # cost, measured first (so that other jobs on the machine change nothing but the
        # wall-clock time of the run)
        step = step_seconds(model, options, x_train, y_train)
        steps = int(60 * args.minutes / step)
        print(f"  a step takes {step:.3f} s: {steps} steps in {args.minutes} minutes", flush=True)
        # a fresh model: the timing runs' 17 steps do not count (the README's rows from
        # "seed" to "paper-all-decay", seed 0, were measured when they still did)
        model, options, pixels = build(row, y_train, args.filters, args.seed, steps)
        t0 = time.perf_counter()
        train(model, options, x_train, y_train, steps, row.get("decay"))
        seconds = time.perf_counter() - t0
        if row["size"] != 256:  # score on the same 256x256 pixels as every other row
            _, y_test = load_folder(args.data, size=256)
            y_test = y_test[15:]
        entry = {
            "settings": row,
            "seed": args.seed,
            "seconds": round(steps * step),
            "wall_seconds": round(seconds),
        }
        entry |= {"steps": steps, "step_seconds": step}
        entry["pixels_seen"] = steps * pixels
        for tta in (False, True):
            probs = predict(model, row, x_test, tta)
            if probs.shape[1] != 256:  # a 512 row: P(cell) back to 256, as the masks
                probs = np.stack([resize(p[..., 0], 256) for p in probs])[..., None]
            entry["tta" if tta else "plain"] = scores(probs, y_test)
        results = json.loads(out.read_text()) if out.exists() else {}  # rows ended meanwhile
        results[args.row + (f" (seed {args.seed})" if args.seed else "")] = entry
        out.write_text(json.dumps(results, indent=1))
        print(json.dumps(entry, indent=1))
    print_table(results)


def print_table(results: dict) -> None:
    head = f"{'row':23}  acc     Dice    RE@0.5  RE best (t)    +TTA best  seconds  steps  Mpx"
    print(head)
    for name, e in results.items():
        a, t = e["plain"], e["tta"]
        print(
            f"{name:23} {a['pixel_accuracy']:.3f}   {a['dice']:.3f}   {a['rand_error']:.3f}   "
            f"{a['rand_error_best']:.3f} ({a['best_threshold']:.2f})  {t['rand_error_best']:.3f}"
            f"      {e['seconds']:5d}   {e['steps']:5d}  {e['pixels_seen'] / 1e6:.0f}"
        )


if __name__ == "__main__":
    main()
