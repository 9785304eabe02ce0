"""The ``numpy-unet`` command line: demo, train, predict, summary, gradcheck."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from ..files import atomic_write_text, fresh_dir
from ..labels import COLOR_DICT
from ..tables import format_table

if TYPE_CHECKING:
    from ..model import UNet


def _gradcheck(args: argparse.Namespace) -> int:
    if args.target is not None:
        return _gradcheck_user(args)
    if args.shape or args.args or args.plot or args.directional:
        raise ValueError(
            "numpy-unet gradcheck: --shape, --args, --plot and --directional go with a "
            "FILE.py:NAME to check"
        )
    from ..teach.selfcheck import builtin_checks

    rows = [("layer / loss", "case: tensor", "values", "against", "max rel err", "result")]
    failed = []
    for exercise, verdict in builtin_checks(include_unet=args.unet):
        for item in verdict.items:
            rows.append(
                (
                    verdict.subject,
                    item.name,
                    str(item.checked),
                    verdict.against,
                    f"{item.rel_error:.1e}",
                    "ok" if item.passed else "FAIL",
                )
            )
            if args.verbose and not item.passed:
                print(f"{exercise}: {item.name}: {item.detail}")
        if not verdict.passed:
            failed.append(f"{exercise} ({verdict.case})")
    print("\n".join(format_table(rows)))
    errors = [float(r[4]) for r in rows[1:] if r[4] != "nan"]
    print(
        f"\n{len(rows) - 1} gradients checked in float64 against central differences "
        f"(eps 1e-6, atol 1e-5, rtol 1e-3) or a stated rule; worst relative error "
        f"{max(errors, default=float('nan')):.1e}."
    )
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print("All gradients agree.")
    return 0


def _gradcheck_user(args: argparse.Namespace) -> int:
    """``numpy-unet gradcheck FILE.py:NAME --shape ...``: a user's layer, built and checked."""
    from ..gradcheck import away_from_kinks, gradcheck
    from ..gradcheck.load import load_target

    if not args.shape:
        raise ValueError("numpy-unet gradcheck: give the input's shape, e.g. --shape 2,8,8,3")
    layer_class = load_target(args.target)
    kwargs = json.loads(args.args) if args.args else {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"numpy-unet gradcheck: --args must be a JSON object, got {args.args}")
    layer = layer_class(**kwargs)
    rng = np.random.default_rng(args.seed)
    xs = [away_from_kinks(rng.standard_normal(shape)) for shape in args.shape]
    report = gradcheck(
        layer,
        xs if len(xs) > 1 else xs[0],
        training=args.training,
        directional=args.directional is not None,
        n_directions=args.directional or 8,
        seed=args.seed,
        raise_exception=False,
    )
    print(report)
    if args.plot:
        report.plot(args.plot)
        print(f"wrote {args.plot}: where |numerical - analytic| sits")
    print("passed" if report.passed else "FAILED: a gradient disagrees with finite differences")
    return 0 if report.passed else 1


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is numbers with commas, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"a shape's sizes must be >= 1, got {text!r}")
    return shape


# each recipe's defaults, for the train options left out on the command line
RECIPE_DEFAULTS = {
    "basic": dict(
        size=128, filters=16, epochs=10, lr=1e-3, steps_per_epoch=None, val_split=0.2, seed=0
    ),
    # the seed's main.py: unet() on 256 x 256, Adam(1e-4), 300 steps, 1 epoch, all images,
    # trainGenerator's seed=1
    "seed": dict(
        size=256, filters=64, epochs=1, lr=1e-4, steps_per_epoch=300, val_split=0.0, seed=1
    ),
    # the paper's network, loss and tiles, trained as the ablation found best (train/paper.py)
    "paper": dict(
        size=128, filters=16, epochs=10, lr=None, steps_per_epoch=None, val_split=0.2, seed=0
    ),
}


def _apply_recipe(args: argparse.Namespace) -> None:
    """Fill the train options left out (None) with the recipe's defaults."""
    for option, value in RECIPE_DEFAULTS[args.recipe].items():
        if getattr(args, option) is None:
            setattr(args, option, value)


def _model_options(args: argparse.Namespace) -> dict:
    return dict(
        filters=args.filters,
        depth=args.depth,
        dropout=args.dropout,
        padding=args.padding,
        upsampling=args.upsampling,
        seed=args.seed,
    )


def _summary(args: argparse.Namespace) -> int:
    from ..model import UNet

    if args.seed is not None and args.seed < 0:
        raise ValueError(f"numpy-unet summary: --seed must be 0 or more, got {args.seed}")

    if args.paper:
        model = UNet.paper(
            input_shape=(572 if args.size is None else args.size,) * 2 + (1,),
            filters=args.filters,
            depth=args.depth,
        )
    else:
        size = 256 if args.size is None else args.size
        model = UNet((size, size, 1), **_model_options(args))
    model.summary()
    return 0


def _load_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    from ..data import load_folder, synthetic_membranes

    classes = getattr(args, "classes", 1)
    if args.data == "synthetic":
        return synthetic_membranes(
            args.images, size=args.size, seed=args.seed, classes=max(classes, 2)
        )
    return load_folder(
        args.data,
        size=args.size,
        max_pixels=args.max_pixels,
        max_total_pixels=args.max_total_pixels,
        classes=classes if classes > 2 else None,
    )


def _load_seed_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The images and masks of a one-class seed run, with values 0..255 as Keras loads them:
    a folder in the seed's layout (image/, label/) as its trainGenerator's
    ``flow_from_directory`` reads it; other data (generated, TIFF stacks) as loaded here."""
    from ..train.seed import load_seed_folder

    if args.data != "synthetic" and (Path(args.data) / "image").is_dir():
        return load_seed_folder(args.data, args.size, max_total_pixels=args.max_total_pixels)
    x, y = _load_data(args)
    return x * np.float32(255), y * np.float32(255)


def _covering_tile(size: int, depth: int) -> int:
    """The smallest input tile of the paper's network whose output covers ``size`` pixels."""
    from ..model import UNet

    shapes = UNet.paper(input_shape=(572, 572, 1), filters=1, depth=depth)  # sizes only
    tile = size
    while (shapes.output_size(tile) or 0) < size:
        tile += 1
    return tile


def _check_train_args(args: argparse.Namespace) -> None:
    """Refuse arguments that cannot make a run, before anything is loaded or written."""
    where = "numpy-unet train"
    _apply_recipe(args)
    positive = {"--batch-size": args.batch_size, "--epochs": args.epochs, "--size": args.size}
    positive |= {"--filters": args.filters, "--depth": args.depth}
    if args.steps_per_epoch is not None:
        positive["--steps-per-epoch"] = args.steps_per_epoch
    if args.checkpoint_every is not None:
        positive["--checkpoint-every"] = args.checkpoint_every
    for option, value in positive.items():
        if value < 1:
            raise ValueError(f"{where}: {option} must be at least 1, got {value}")
    if args.seed < 0:
        raise ValueError(f"{where}: --seed must be 0 or more, got {args.seed}")
    if args.size * args.size > args.max_pixels:
        raise ValueError(
            f"{where}: --size {args.size} makes images of more than --max-pixels "
            f"{args.max_pixels:,} pixels"
        )
    if args.lr is not None and not (np.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"{where}: --lr must be a positive number, got {args.lr}")
    if not 0 <= args.val_split < 1:
        raise ValueError(f"{where}: --val-split must lie in [0, 1), got {args.val_split}")
    if args.data == "synthetic" and args.images < 1 + (args.val_split > 0):
        raise ValueError(
            f"{where}: --images must be at least {1 + (args.val_split > 0)} (one to train on"
            f"{', one to validate' if args.val_split > 0 else ''}), got {args.images}"
        )
    if not 1 <= args.classes <= len(COLOR_DICT):
        raise ValueError(
            f"{where}: --classes must lie in [1, {len(COLOR_DICT)}] (the seed's palette draws "
            f"{len(COLOR_DICT)} classes), got {args.classes}"
        )
    if args.data == "synthetic" and args.classes > 3:
        raise ValueError(
            f"{where}: the generated data have 2 classes (membrane, cell) or 3 (and organelle), "
            f"got --classes {args.classes}; pass --data FOLDER for more"
        )
    if args.recipe == "paper" and args.classes not in (1, 2):
        raise ValueError(f"{where}: --recipe paper trains 2 classes (membrane, cell)")
    if args.test is not None and not Path(args.test).is_dir():
        raise FileNotFoundError(f"{where}: --test {args.test} is not a folder of images")
    if args.padding == "valid" and args.recipe != "paper":
        raise ValueError(
            f"{where}: --padding valid needs --recipe paper: a 'valid' UNet's output is smaller "
            "than its input, so it trains on tiles with mirrored context, not whole images"
        )
    if not str(args.out).strip():
        raise ValueError(f"{where}: --out must name a folder, got {args.out!r}")
    if args.tile is not None and args.recipe != "paper":
        raise ValueError(f"{where}: --tile applies to --recipe paper only")
    if args.class_balance and args.recipe != "paper":
        raise ValueError(f"{where}: --class-balance applies to --recipe paper only")
    if not 0 <= args.dropout < 1:
        raise ValueError(f"{where}: --dropout must lie in [0, 1), got {args.dropout}")
    if args.recipe == "seed" and args.optimizer not in (None, "adam"):
        raise ValueError(
            f"{where}: --recipe seed trains with the seed's Adam; --optimizer "
            f"{args.optimizer} applies to the basic and paper recipes"
        )
    args.optimizer = args.optimizer or "adam"
    _check_train_budget(args, where)
    if args.test is not None:
        _check_test_images(args, where)


def machine_memory() -> int:
    """This machine's physical memory in bytes (8 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB"


def _check_train_budget(args: argparse.Namespace, where: str) -> None:
    """Refuse, before anything is loaded, a run whose data or tiles could not fit in memory
    (half of this machine's), and a batch larger than the images to train on."""
    budget = machine_memory() // 2
    if args.data == "synthetic":
        # images, masks and their augmented copies: about four float32 arrays of them
        need = 4 * 4 * args.images * args.size * args.size * max(args.classes, 1)
        if need > budget:
            raise ValueError(
                f"{where}: --images {args.images} of {args.size}x{args.size} need about "
                f"{_gib(need)}, more than half this machine's memory ({_gib(budget)}); use "
                "fewer images or a smaller --size"
            )
        count = args.images
    else:
        count = _count_images(Path(args.data))
    if args.tile is not None and args.tile * args.tile > args.max_pixels:
        raise ValueError(
            f"{where}: --tile {args.tile} makes tiles of {args.tile**2:,} pixels, more than "
            f"--max-pixels {args.max_pixels:,}; choose a smaller tile"
        )
    if count is not None:
        train = count - _held_out(count, args.val_split)
        if args.batch_size > max(train, 0):
            raise ValueError(
                f"{where}: --batch-size {args.batch_size} is larger than the {train} image(s) "
                f"left to train on ({count} found, --val-split {args.val_split}); nothing was "
                "loaded"
            )


def _count_images(folder: Path) -> int | None:
    """How many training images a folder holds, counted from its file names (None for a
    layout counted only by reading it, such as TIFF stacks)."""
    from ..data import image_files

    if (folder / "image").is_dir():
        return len(image_files(folder / "image"))
    return None


def _check_test_images(args: argparse.Namespace, where: str) -> None:
    """Read every --test image now, before training: a damaged or oversized file, or two
    inputs that would write one output, must not wait until the training is done."""
    from ..data import image_files, read_image

    paths = image_files(args.test)
    if not paths:
        raise FileNotFoundError(f"{where}: --test {args.test} holds no images")
    if args.test_names == "stem":
        stems: dict[str, Path] = {}
        for p in paths:
            if p.stem in stems:
                raise ValueError(
                    f"{where}: --test {stems[p.stem].name} and {p.name} would both write "
                    f"{p.stem}_predict.png; rename one, or leave out --test-names stem"
                )
            stems[p.stem] = p
    for p in paths:
        read_image(p, args.max_pixels)  # a ValueError naming the file if it cannot be read


def _finished_epochs(out: Path) -> int:
    """The epochs the checkpoint in ``out`` has done, read and checked whole (a damaged or
    edited checkpoint is a one-line error naming it, before anything is written)."""
    from ..train.checkpoint import read_checkpoint

    return read_checkpoint(out / "checkpoint.npz")[0]["epoch"]


def _train(args: argparse.Namespace) -> int:
    _check_train_args(args)
    from ..data import Augmenter
    from ..model import UNet
    from ..optimizers import SGD, Adam
    from ..train.paper import paper_recipe, weight_maps
    from ..train.seed import adjust_data, seed_recipe

    if args.resume and not (Path(args.out) / "checkpoint.npz").is_file():
        raise FileNotFoundError(
            f"numpy-unet train --resume: {args.out} holds no checkpoint.npz to resume from; "
            "nothing was written. Leave out --resume to start a new run"
        )
    raw = None  # the seed's stream: the images and masks as Keras loads them (0..255)
    if args.recipe == "seed" and args.classes == 1:
        raw = _load_seed_data(args)
        x, y = adjust_data(*raw)
    else:
        x, y = _load_data(args)
    cut = len(x) - _held_out(len(x), args.val_split)  # the last images are held out
    if cut < 1:
        raise ValueError(
            f"numpy-unet train: {len(x)} image(s) with --val-split {args.val_split} leave none "
            "to train on; give more images or a smaller --val-split"
        )
    y_train, x_val, y_val = y[:cut], x[cut:], y[cut:]
    if args.recipe == "paper":  # valid convs, weight maps, tiles, elastic, Adam
        tile = args.tile or _covering_tile(args.size, args.depth)
        model = UNet.paper(
            input_shape=(tile, tile, x.shape[-1]),
            filters=args.filters,
            depth=args.depth,
            dropout=args.dropout,
            seed=args.seed,
        )
        steps = args.epochs * (args.steps_per_epoch or len(y_train))  # one tile per step
        options = paper_recipe(
            model,
            y_train,
            optimizer=args.optimizer,
            learning_rate=args.lr,
            decay_steps=steps,  # the rate falls to 1/100 over the run
            class_balance=args.class_balance,
            seed=args.seed,
        )
        if not args.augment:
            options["augment"] = None
        validation = (x_val, y_val, weight_maps(y_val, class_balance=args.class_balance))
        what = f"the paper's UNet (input tile {tile})"
    else:
        shape = (args.size, args.size, x.shape[-1])
        model = UNet(shape, **_model_options(args), num_classes=args.classes)
        if args.recipe == "seed":  # main.py: Adam, trainGenerator's batches of 2, seed 1
            stream = None if raw is None else (raw[0][:cut], raw[1][:cut])
            options = seed_recipe(
                model,
                args.lr,
                args.seed,
                args.augment,
                args.steps_per_epoch,
                stream=stream,
                batch_size=args.batch_size,
            )
            what = "the seed's recipe" + (" and batches" if stream else "") + ": a UNet"
        else:
            optimizer = Adam(args.lr) if args.optimizer == "adam" else SGD(args.lr, momentum=0.99)
            loss = "binary_crossentropy" if args.classes == 1 else "categorical_crossentropy"
            model.compile(optimizer=optimizer, loss=loss)
            augment = Augmenter(seed=args.seed) if args.augment else None
            options = dict(batch_size=args.batch_size, augment=augment, seed=args.seed)
            what = "a UNet"
        validation = (x_val, y_val) if len(x_val) else None
    for fixed in ("epochs", "steps_per_epoch"):  # the command line's (or recipe's) own
        options.pop(fixed, None)
    model.workers = args.workers
    out = Path(args.out) if args.resume else fresh_dir(args.out)
    try:
        return _train_into(args, out, x, y, model, options, validation, what)
    except BaseException:
        if out.is_dir() and not any(out.iterdir()):  # a run that wrote nothing leaves nothing
            out.rmdir()
        raise


def _train_into(
    args: argparse.Namespace,
    out: Path,
    x: np.ndarray,
    y: np.ndarray,
    model: UNet,
    options: dict,
    validation: tuple,
    what: str,
) -> int:
    """The training run of ``_train``, writing into ``out``."""
    from ..data import image_files
    from .plotting import plot_history

    cut = len(x) - _held_out(len(x), args.val_split)
    x_train, y_train, x_val, y_val = x[:cut], y[:cut], x[cut:], y[cut:]
    held = f"validating on {len(x_val)}" if len(x_val) else "no validation (--val-split 0)"
    print(
        f"Training {what} (filters {args.filters}, depth {args.depth}, "
        f"{model.count_params():,} parameters) on {len(x_train)} images of "
        f"{args.size}x{args.size}, {held}; writing to {out}"
    )
    done = _finished_epochs(out) if args.resume else None
    finished = done is not None and done >= args.epochs
    if finished:  # a complete run: write what it lacks (a kill or a full disk at the end)
        print(f"{out} holds a complete run ({done} epochs): writing the outputs it lacks")
        from ..train.checkpoint import read_checkpoint

        history_log = read_checkpoint(out / "checkpoint.npz")[0]["history"]
    else:
        try:
            history = model.fit(
                x_train,
                y_train,
                epochs=args.epochs,
                steps_per_epoch=args.steps_per_epoch,
                validation_data=validation,
                checkpoint_dir=out,
                checkpoint_every=args.checkpoint_every,
                resume=args.resume,
                **options,
            )
        except KeyboardInterrupt as stop:
            why = str(stop) or "stopped at once by a second Ctrl-C; the last checkpoint is kept"
            print(f"\n{why}. Continue with the same command plus --resume --out {out}")
            return 130
        history_log = history.history
    model.load_weights(out / "best_weights.npz")
    if not finished or not (out / "history.json").exists():
        (out / "history.json").write_text(json.dumps(history_log, indent=1))
    if not finished or not (out / "training_curves.png").exists():
        plot_history(history_log, out / "training_curves.png")
    written = ["best_weights.npz", "checkpoint.npz", "history.json", "training_curves.png"]
    missing = not (out / "metrics.json").exists() or not (out / "predictions.png").exists()
    if len(x_val) and (not finished or missing):
        written += _score_held_out(args, out, model, options, x_val, y_val)
    else:
        print(
            "No held-out images (--val-split 0): the best weights are those of the lowest "
            "training loss, as the seed's ModelCheckpoint(monitor='loss') keeps"
        )
    if args.test is not None:
        tests = out / "test"
        tests.mkdir(exist_ok=finished)  # a finished run's test/ may be there, in part
        paths = image_files(args.test)  # natural order: 0.png, 1.png, ..., 10.png
        names = [p.stem for p in paths] if args.test_names == "stem" else range(len(paths))
        targets = {p: (tests / f"{name}_predict.png",) for p, name in zip(paths, names)}
        if finished:  # write only what is missing; what is there stays
            targets = {p: t for p, t in targets.items() if not t[0].exists()}
        _check_outputs(targets, list(targets), overwrite=False)
        _predict_into(model, targets, seed_names=True, resize_to=True, tile=None)
        written.append(f"test/ ({len(paths)} N_predict.png)")
    print(f"Wrote {out}/: " + ", ".join(written))
    return 0


def _held_out(n: int, val_split: float) -> int:
    """How many of ``n`` images are held out: none for 0, else at least one."""
    return 0 if val_split == 0 else max(1, int(round(n * val_split)))


def _score_held_out(
    args: argparse.Namespace,
    out: Path,
    model: UNet,
    options: dict,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> list[str]:
    """Score the held-out images with the best weights; write metrics.json and a figure."""
    from ..labels import COLOR_DICT
    from ..metrics import class_scores, evaluate
    from ..train.tiling import predict_tiled
    from .plotting import plot_classes, plot_predictions

    if args.recipe == "paper":  # whole images, tile by tile; P(cell) is softmax class 1
        probs = predict_tiled(model, x_val, tile=options["tile"])[..., 1:2]
    else:
        probs = model.predict(x_val, batch_size=args.batch_size)
    if probs.shape[-1] > 2:
        scores = class_scores(probs, y_val)
        names = [f"class {k}" for k in range(probs.shape[-1])]
        plot_classes(x_val, y_val, probs, out / "predictions.png", COLOR_DICT, names)
    else:
        probs = probs[..., -1:]  # P(cell)
        scores = evaluate(probs, y_val)
        plot_predictions(x_val, y_val, probs, out / "predictions.png")
    (out / "metrics.json").write_text(json.dumps(scores, indent=1))
    print(f"Held-out scores (best weights): {json.dumps(scores)}")
    return ["metrics.json", "predictions.png"]


def _check_whole_image(model: UNet, hwc: tuple, path: Path) -> None:
    """Raise, suggesting --tile, unless the model takes the (H, W, C) image whole."""
    try:
        model.compute_output_shape((1, *hwc))
    except ValueError as err:
        if all(model.output_size(n) for n in hwc[:2]):
            raise  # the channels are wrong: tiling would not help
        raise ValueError(
            f"numpy-unet predict: {path} is {hwc[0]}x{hwc[1]}: {err} Or pass --tile N to "
            f"predict it tile by tile, any size (N: an input size the model accepts, e.g. "
            f"{model.config['input_shape'][0]}, the size it was built for)."
        ) from err


def _predict(args: argparse.Namespace) -> int:
    from ..data import image_files, read_image
    from ..model import load_model

    if not (np.isfinite(args.threshold) and 0 <= args.threshold <= 1):
        raise ValueError(
            f"numpy-unet predict: --threshold must lie in [0, 1] (it cuts probabilities), "
            f"got {args.threshold}"
        )
    if args.resize and args.tile is not None:
        raise ValueError("numpy-unet predict: --resize and --tile exclude each other")
    model = load_model(args.weights)
    model.workers = args.workers
    if args.tile is not None:
        from ..train.tiling import check_tile

        check_tile(model, args.tile, "numpy-unet predict --tile")  # before anything is written
    paths: list[Path] = []
    for p in map(Path, args.images):
        if p.is_dir():
            paths += image_files(p)  # the rule load_folder uses: no hidden files
        elif p.is_file():
            paths.append(p)
        else:
            raise FileNotFoundError(f"numpy-unet predict: no such image or folder: {p}")
    if not paths:
        raise FileNotFoundError("numpy-unet predict: no images found in " + ", ".join(args.images))
    out = Path(args.out)
    if args.seed_names:  # the seed's saveResult: N_predict.png
        suffixes = ("_predict",)
    elif model.config["num_classes"] > 2:  # each pixel in the colour of its class
        suffixes = ("_classes",)
    else:
        suffixes = ("_prob", "_mask")
    targets = {p: tuple(out / f"{p.stem}{suffix}.png" for suffix in suffixes) for p in paths}
    _check_outputs(targets, paths, args.overwrite)
    if args.tile is None and not args.resize and not args.tta:  # every size, before writing
        for p in paths:
            _check_whole_image(model, (*read_image(p, args.max_pixels).shape, 1), p)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)  # every check passed: now write
    try:
        _predict_into(
            model,
            targets,
            args.seed_names,
            args.resize,
            args.tile,
            args.threshold,
            args.max_pixels,
            args.tta,
            args.overwrite,
        )
    except BaseException:
        if created and not any(out.iterdir()):  # a run that wrote nothing leaves nothing
            out.rmdir()
        raise
    return 0


def _check_outputs(targets: dict, paths: list[Path], overwrite: bool) -> None:
    """Refuse, before anything is written, outputs that would replace an input, two inputs
    that would write one output, and (without ``overwrite``) existing files."""
    where = "numpy-unet predict"
    by_name: dict[Path, list[Path]] = {}
    for p, outputs in targets.items():
        by_name.setdefault(outputs[0], []).append(p)
    inputs = {p.resolve() for p in paths}
    same = {(p.stat().st_dev, p.stat().st_ino) for p in paths}  # hard links too

    def is_input(t: Path) -> bool:
        return t.resolve() in inputs or (t.exists() and (t.stat().st_dev, t.stat().st_ino) in same)

    on_inputs = [t for outputs in targets.values() for t in outputs if is_input(t)]
    if on_inputs:
        raise ValueError(
            f"{where}: the output {on_inputs[0]} would overwrite one of the input "
            "images; write to another --out folder"
        )
    clashes = [sources for sources in by_name.values() if len(sources) > 1]
    if clashes:  # one output name for two inputs loses one
        names = " and ".join(str(p) for p in clashes[0])
        first = targets[clashes[0][0]][0]
        raise ValueError(
            f"{where}: {names} would both be written to {first.name} in {first.parent} "
            f"({len(clashes)} such clash(es)); predict them into different --out folders, "
            "or rename them"
        )
    folders = [t for outputs in targets.values() for t in outputs if t.is_dir()]
    if folders:  # --overwrite replaces files, never a folder: found before writing any
        raise IsADirectoryError(
            f"{where}: the output {folders[0]} is a folder; move it, or write to another --out"
        )
    existing = [str(t) for outputs in targets.values() for t in outputs if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{where}: {existing[0]} exists (and {len(existing) - 1} more); pass --overwrite "
            "to replace them"
        )


PREDICT_BUDGET = 2**30  # bytes one whole-image pass of predict may take before it tiles


def forward_bytes(model: UNet, h: int, w: int) -> int:
    """A generous estimate of the memory one forward pass of an h x w image takes: at full
    resolution, a 3x3 conv's im2col over the widest input (the top merge: 2 f channels,
    9 values each) and a few maps f wide; the levels below add about as much again (each
    has a quarter of the pixels and twice the channels)."""
    f, item = model.config["filters"], np.dtype(model.dtype).itemsize
    return int(h * w * item * (9 * 2 * f + 6 * f) * 2)


def auto_tile(model: UNet, h: int, w: int, budget: int | None = None) -> int | None:
    """None if an h x w image fits the budget (default :data:`PREDICT_BUDGET`) in one pass,
    else the largest input tile the model takes whose pass does (predict then goes tile by
    tile)."""
    budget = PREDICT_BUDGET if budget is None else budget
    if forward_bytes(model, h, w) <= budget:
        return None
    step = 2 ** model.config["depth"]
    tile = max(h, w) // step * step
    while tile > step and (
        forward_bytes(model, tile, tile) > budget or not (model.output_size(tile) or 0) > 0
    ):
        tile -= step if model.config["padding"] == "same" else 1
    return max(tile, step)


def _predict_into(
    model: UNet,
    targets: dict,
    seed_names: bool,
    resize_to: bool,
    tile: int | None,
    threshold: float = 0.5,
    max_pixels: int = 2**26,
    tta: bool = False,
    overwrite: bool = False,
) -> None:
    """Predict every image of ``targets`` and write its PNGs: ``N_predict.png`` as the seed
    (``seed_names``), else ``N_classes.png`` for several classes, or ``N_prob.png`` and
    ``N_mask.png``; a file that appears meanwhile is replaced only with ``overwrite``.
    ``resize_to``: first resize each image to the network's input size, as the seed's
    ``testGenerator`` does (skimage's anti-aliased bilinear ``resize``)."""
    from ..data import read_image, resize_like_skimage
    from ..data.saving import prediction_picture, write_png
    from ..train.tiling import predict_tiled

    for p, outputs in targets.items():
        image = read_image(p, max_pixels)  # (H, W)
        if resize_to:
            image = resize_like_skimage(image, tuple(model.config["input_shape"][:2]))
        image = image[:, :, None].astype(model.dtype, copy=False)  # (H, W, 1)
        auto = None if tile is not None else auto_tile(model, *image.shape[:2])
        if auto is not None:
            need = _gib(forward_bytes(model, *image.shape[:2]))
            print(
                f"{p}: {image.shape[0]}x{image.shape[1]} would take about {need} in one "
                f"pass, more than {_gib(PREDICT_BUDGET)}: predicting it in tiles of {auto} "
                "(--tile N to choose)"
            )
        if tile is not None or auto is not None or tta:  # overlap-tile: any size
            probs = predict_tiled(model, image, tile=tile or auto, tta=tta)
        else:
            probs = model.predict(image[None])[0]  # (Ho, Wo, K)
        if seed_names or probs.shape[-1] > 2:
            write_png(outputs[0], prediction_picture(probs), overwrite=overwrite)
        else:
            prob = probs[:, :, -1]  # P(cell): sigmoid, or class 1 of a softmax
            write_png(outputs[0], prob, overwrite=overwrite)
            write_png(outputs[1], prob >= threshold, overwrite=overwrite)  # (H, W) bool
        print(f"{p} -> " + ", ".join(str(t) for t in outputs))


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.seed < 0:
        raise ValueError(f"numpy-unet demo: --seed must be >= 0, got {args.seed}")

    run_demo(args.out, quick=args.quick, seed=args.seed, classes=args.classes)
    return 0


def _exercises(args: argparse.Namespace) -> int:
    from ..teach.course import make_exercises

    out = make_exercises(args.out, level=args.level)
    passes = "forward and backward" if args.level == "all" else args.level
    print(
        f"Wrote the student copy to {out}: numpy_unet/ with the {passes} passes cut out, "
        f"EXERCISES.md with the tasks, tests/ with the checks. Grade it with "
        f"`numpy-unet grade {out} --level {args.level}`."
    )
    return 0


def _grade(args: argparse.Namespace) -> int:
    from ..teach.grading import grade, gradescope, last_seed, score_table

    if not (np.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(
            f"numpy-unet grade: --timeout must be a positive number of seconds, got {args.timeout}"
        )
    path = Path(args.json) if args.json else None
    if path is not None:  # checked before any grading: a result must have somewhere to go
        if path.exists():
            raise FileExistsError(f"numpy-unet grade: {path} exists; choose another --json file")
        if not path.parent.is_dir():
            raise FileNotFoundError(
                f"numpy-unet grade: the --json folder {path.parent} does not exist"
            )
        if not os.access(path.parent, os.W_OK):
            raise PermissionError(f"numpy-unet grade: cannot write into {path.parent}")
    results = grade(
        args.folder,
        timeout=args.timeout,
        exercises=args.exercise,
        level=args.level,
        seed=args.seed,
        user=args.run_as,
    )
    note = f"graded by numpy-unet {__version__} at level {args.level}, inputs of seed {last_seed()}"
    print(score_table(results))
    print(note)
    if path is not None:  # written last, whole or not at all, after every student process ended
        atomic_write_text(path, json.dumps(gradescope(results, note), indent=1))
        print(f"wrote {path} (Gradescope's results.json format)")
    return 0 if all(r.score == 1 for r in results.values()) else 1


def _autograder(args: argparse.Namespace) -> int:
    from ..teach.autograder import write_bundle

    path = write_bundle(args.out, level=args.level, timeout=args.timeout)
    print(
        f"Wrote {path}: upload it as the assignment's autograder on Gradescope (its setup.sh "
        f"installs this package; run_autograder grades each submission at level {args.level})."
    )
    return 0


def _solutions(args: argparse.Namespace) -> int:
    from ..teach.course import write_solutions

    path = write_solutions(args.out)
    print(f"Wrote {path}: the task and the reference code of every exercise.")
    return 0


def _site(args: argparse.Namespace) -> int:
    from ..teach.site import build_site

    mode = "quick mode" if args.quick else "full mode (a few minutes)"
    print(f"Building the course site: every tutorial in {mode}, each in a fresh Jupyter kernel")
    out = build_site(
        args.out,
        quick=args.quick,
        tutorials=args.tutorials,
        overwrite=args.overwrite,
        data=args.data,
    )
    print(f"Wrote {out}: open {out / 'index.html'}, or copy the folder to any static host")
    return 0


def _add_model_options(p: argparse.ArgumentParser, filters: int | None, size: int | None) -> None:
    p.add_argument("--size", type=int, default=size, help="image height and width")
    p.add_argument("--filters", type=int, default=filters, help="filters of the first level")
    p.add_argument("--depth", type=int, default=4, help="number of poolings")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--padding", choices=["same", "valid"], default="same")
    p.add_argument("--upsampling", choices=["upsample", "transpose"], default="upsample")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the weights, the data and the batches (train: 1 with --recipe seed, as "
        "the seed's trainGenerator; 0 otherwise)",
    )


def _add_workers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes the speed engine may start for a thin network's batches "
        "(default: one per extra core; 0: none)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numpy-unet", description="The UNet, written out layer by layer in NumPy."
    )
    parser.add_argument("--version", action="version", version=f"numpy-unet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo",
        help="train a small UNet on generated membranes (the main job)",
        description="Generate 120 EM-like membrane images (128x128), train on 96 of them the "
        "UNet of the Keras blog post this project follows (the seed), with 8 filters instead "
        "of 64 (12 epochs of 25 steps, Adam, binary cross-entropy, augmentation), and score 16 "
        "held-out images. About 50 seconds on a 2-core CPU. Writes metrics.json, "
        "training_curves.png, predictions.png and the weights to --out.",
    )
    p.add_argument("--out", default="numpy-unet-demo", help="output folder (never overwritten)")
    p.add_argument("--quick", action="store_true", help="a much shorter run, for smoke tests")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the images, the weights and the training"
    )
    p.add_argument(
        "--classes",
        type=int,
        choices=[1, 3],
        default=1,
        help="1: cell vs membrane (sigmoid); 3: membrane, cell and organelle (softmax)",
    )
    p.set_defaults(func=_demo)

    p = sub.add_parser("train", help="train a UNet on generated membranes or a data folder")
    p.add_argument(
        "--data",
        default="synthetic",
        help="'synthetic', or a folder with image/ and label/ (or ISBI .tif stacks)",
    )
    p.add_argument("--images", type=int, default=64, help="how many synthetic images")
    _add_model_options(p, filters=None, size=None)
    p.add_argument("--epochs", type=int, default=None, help="basic: 10; seed: 1")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="seed: 300")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument(
        "--recipe",
        choices=["basic", "seed", "paper"],
        default="basic",
        help="basic: the seed's UNet (16 filters, 128x128), Adam 1e-3, binary cross-entropy, "
        "flips, quarter turns and a small affine, 20%% held out; seed: the seed's main.py "
        "(64 filters, 256x256, Adam 1e-4, batch 2, 300 steps, 1 epoch, Keras's "
        "ImageDataGenerator with the seed's arguments, every image trained on, best weights "
        "on the training loss); paper: UNet.paper, cross-entropy weighted by the paper's "
        "separation term, one tile per step, elastic deformation (Ronneberger et al. 2015), "
        "Adam 1e-3 decaying to 1e-5 over the run (--optimizer sgd --lr 0.003 "
        "--class-balance: the paper's optimizer and weight map, the rate still decaying)",
    )
    p.add_argument(
        "--classes",
        type=int,
        default=1,
        help="1: a sigmoid (cell vs membrane); K >= 2: a softmax over K classes, trained with "
        "categorical cross-entropy on masks holding 0 .. K-1 (generated data: 3 adds organelles)",
    )
    p.add_argument(
        "--test",
        default=None,
        help="a folder of test images: after training, write their N_predict.png to "
        "OUT/test/, resized to the network's size as the seed's testGenerator does, "
        "numbered by position (0, 1, ...; the seed's main.py)",
    )
    p.add_argument(
        "--test-names",
        choices=["position", "stem"],
        default="position",
        help="name --test's outputs by position in natural order, as the seed (default), "
        "or after each input's stem (cell_a.png -> cell_a_predict.png)",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        help="paper recipe: the network's input tile (default: the smallest whose output "
        "covers a whole image)",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (basic 1e-3, seed 1e-4, paper 1e-3 with Adam, 0.003 with SGD)",
    )
    p.add_argument(
        "--optimizer",
        choices=["adam", "sgd"],
        default=None,
        help="basic and paper recipes: Adam, or SGD with momentum 0.99 (the paper's)",
    )
    p.add_argument(
        "--class-balance",
        action="store_true",
        help="paper recipe: add the paper's class-balancing term to the weight maps",
    )
    p.add_argument(
        "--val-split",
        type=float,
        default=None,
        help="fraction held out, the last images (0.2; seed: 0, all images trained on)",
    )
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between saves")
    p.add_argument("--out", default="numpy-unet-run", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--max-pixels", type=int, default=2**26, help="refuse larger images (8192 x 8192)"
    )
    p.add_argument(
        "--max-total-pixels",
        type=int,
        default=None,
        help="refuse a --data folder whose files declare more pixels in all (default 2**30)",
    )
    _add_workers_option(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="probability and mask PNGs for images")
    p.add_argument(
        "--weights",
        required=True,
        help="a .npz written by training, or Keras weights (.h5, .weights.h5, .keras; needs h5py)",
    )
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", default="predictions", help="output folder")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--max-pixels", type=int, default=2**26, help="refuse larger images (8192 x 8192)"
    )
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        help="predict tile by tile with mirrored context (the U-Net paper's overlap-tile), "
        "so any image size works; N is the network's input tile, e.g. 572 for the paper's",
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average the predictions of the 8 orientations of each "
        "image (4 quarter turns, each mirrored), 8 times the work",
    )
    p.add_argument(
        "--seed-names",
        action="store_true",
        help="write N_predict.png as the seed's saveResult: P(cell) in gray, or the classes "
        "in the seed's COLOR_DICT colours",
    )
    p.add_argument(
        "--resize",
        action="store_true",
        help="resize each image to the network's input size first, as the seed's "
        "testGenerator does (outputs are then of that size)",
    )
    _add_workers_option(p)
    p.set_defaults(func=_predict)

    p = sub.add_parser("summary", help="print a UNet's layers, shapes and parameters")
    _add_model_options(p, filters=64, size=None)
    p.add_argument("--paper", action="store_true", help="the original paper's network")
    p.set_defaults(func=_summary)

    levels = ["backward", "forward", "all"]
    p = sub.add_parser("exercises", help="write a student copy with the backward passes cut out")
    p.add_argument("out", help="a new (or empty) folder")
    p.add_argument(
        "--level",
        choices=levels,
        default="backward",
        help="cut out the backward passes (default), the forward passes, or all of them",
    )
    p.set_defaults(func=_exercises)

    p = sub.add_parser(
        "grade",
        help="grade a student copy with this package's gradient checks, print scores",
        description="Grade the student copy in FOLDER: each exercise's checks run on the "
        "copy's classes in a separate process with a time limit, judged by this package's "
        "checks (the copy's own test files are not used). Grading EXECUTES THE STUDENT'S "
        "CODE with your rights: run untrusted submissions in a container or a throw-away "
        "account.",
    )
    p.add_argument("folder", help="the submission: a folder holding numpy_unet/")
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds each exercise may take (60)"
    )
    p.add_argument("--json", help="also write the result here, in Gradescope's format")
    p.add_argument(
        "--level",
        choices=levels,
        default="backward",
        help="what to grade: the level you handed out (backward)",
    )
    p.add_argument(
        "--seed", type=int, help="seed of the inputs (default: a new one, printed at the end)"
    )
    p.add_argument(
        "--run-as", help="run the student's code as this user (the grader must run as root)"
    )
    p.add_argument(
        "--exercise",
        action="append",
        help="grade only this exercise (repeat for more); default: every one of the level",
    )
    p.set_defaults(func=_grade)

    p = sub.add_parser(
        "autograder",
        help="write a Gradescope autograder (a zip: setup.sh, run_autograder) for a course",
    )
    p.add_argument("out", help="the zip file to write (new)")
    p.add_argument("--level", choices=levels, default="backward", help="what it grades")
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds each exercise may take (60)"
    )
    p.set_defaults(func=_autograder)

    p = sub.add_parser("solutions", help="write the reference code of every exercise")
    p.add_argument("out", help="a new (or empty) folder; gets SOLUTIONS.md")
    p.set_defaults(func=_solutions)

    p = sub.add_parser(
        "gradcheck",
        help="gradient-check every built-in layer and loss, or a layer of yours",
        description="Without FILE.py:NAME: every built-in layer and loss. With it: builds "
        "NAME from your file (with --args as keyword arguments), feeds it random float64 "
        "inputs of --shape, and checks its backward against finite differences; failures "
        "at kinks (ReLU at 0, ties) are labelled and not counted.",
    )
    p.add_argument("target", nargs="?", help="FILE.py:NAME, a layer class in your file")
    p.add_argument(
        "--shape",
        type=_shape,
        action="append",
        help="the input's shape, e.g. 2,8,8,3 (repeat for a layer with several inputs)",
    )
    p.add_argument("--args", help="the layer's keyword arguments, as a JSON object")
    p.add_argument("--directional", type=int, help="check N random directions per tensor")
    p.add_argument("--plot", help="save a heat map of where the error sits (PNG)")
    p.add_argument("--training", action="store_true", help="call forward with training=True")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and dy (0)")
    p.add_argument("--unet", action="store_true", help="also check a small UNet end to end")
    p.add_argument("-v", "--verbose", action="store_true", help="also print why each check failed")
    p.set_defaults(func=_gradcheck)

    p = sub.add_parser(
        "site",
        help="execute the tutorials and write the course as a static website",
        description="Runs every tutorial in a fresh Jupyter kernel and writes OUT/index.html "
        "(the course plan) and one page per tutorial with its code, output and figures; "
        "nothing is fetched from the network. A failing lesson stops the build and nothing "
        'is written. Needs the site extra: pip install ".[site]".',
    )
    p.add_argument("out", help="the site's folder (new; OUT-2, ... if it exists)")
    p.add_argument("--quick", action="store_true", help="run the tutorials in quick mode")
    p.add_argument("--tutorials", help="the tutorials' folder (default: ./tutorials)")
    p.add_argument("--overwrite", action="store_true", help="replace a site built earlier in OUT")
    p.add_argument("--data", help="a folder of real ISBI 2012 images for tutorials 07-09")
    p.set_defaults(func=_site)
    return parser


def keep_freed_memory() -> None:
    """The command is the whole process: let glibc reuse freed memory (``fast/allocator.py``;
    a course copy of the package has no ``fast`` part, and does without)."""
    try:
        from ..fast import keep_freed_memory as keep
    except ModuleNotFoundError as err:
        if not (err.name or "").endswith(".fast"):
            raise
        return
    keep()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``numpy-unet`` command."""
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError, ImportError) as err:  # OSError: files, folders,
        # full disks; ImportError: an optional extra missing (h5py for Keras files)
        print(f"error: {err}", file=sys.stderr)
        return 2
    except MemoryError as err:  # what was asked did not fit: say what, and what to do
        what = str(err) or "an array"
        print(
            f"error: out of memory ({what}): this machine could not hold what the command "
            "asked for; use smaller or fewer images (--size, --images, --max-pixels), a "
            "smaller --batch-size, or predict with --tile",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside training (which saves and says so itself)
        print("\ninterrupted (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
