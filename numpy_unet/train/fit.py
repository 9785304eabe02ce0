"""``model.fit``: the training loop, in Keras's spirit, with checkpoints that resume exactly.

One training step is the whole story of backpropagation::

    y_pred = model.forward(x, training=True)      # dropout on
    value = loss.forward(y_pred, y)
    model.backward(loss.backward())               # every layer's grads is set
    optimizer.step(model)                         # p -= ... for every parameter

Everything else here is bookkeeping: batches, epochs, validation, the progress line, the
history, and checkpoints (see ``checkpoint.py``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics as _metrics
from ..layers import Dropout
from ..losses import BinaryCrossentropy, CategoricalCrossentropy, DiceLoss, Loss
from ..optimizers import Optimizer, get_optimizer
from .checkpoint import (
    BEST,
    CHECKPOINT,
    Checkpoint,
    DeferredInterrupt,
    check_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from .diagnostics import diagnose_predictions
from .prepare import fingerprint, prepare_data
from .tiling import predict_tiled, sample_tiles

LOSSES = {
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "dice": DiceLoss,
}
METRICS = {"accuracy": _metrics.pixel_accuracy, "dice": _metrics.dice, "iou": _metrics.iou}
CLASS_MEANS = {"accuracy": "pixel_accuracy", "dice": "mean_dice", "iou": "mean_iou"}


class History:
    """What ``fit`` returns, as in Keras: ``history.history["val_loss"][epoch]``."""

    def __init__(self, history: dict[str, list[float]] | None = None) -> None:
        self.history: dict[str, list[float]] = history or {}

    @property
    def epoch(self) -> list[int]:
        return list(range(len(self.history.get("loss", []))))


def get_loss(spec: str | Loss) -> Loss:
    if isinstance(spec, Loss):
        return spec
    if spec not in LOSSES:
        raise ValueError(f"compile: loss must be one of {sorted(LOSSES)} or a Loss, got {spec!r}")
    return LOSSES[spec]()


def foreground(y_pred: np.ndarray) -> np.ndarray:
    """Probability of the cell class: the sigmoid output, or class 1 of a softmax."""
    return y_pred if y_pred.shape[-1] == 1 else y_pred[..., 1:2]


def score(name: str, y_pred: np.ndarray, y: np.ndarray) -> float:
    """Metric ``name`` of a batch: of the cell class for one or two classes, else the mean
    over the classes (``metrics.class_scores``; 'accuracy' is then the pixel accuracy)."""
    if y_pred.shape[-1] > 2:  # several classes
        return _metrics.class_scores(y_pred, y)[CLASS_MEANS[name]]
    if y.shape[-1] == 2:  # one-hot masks of two classes: the cell channel
        y = y[..., 1:2]
    return METRICS[name](foreground(y_pred), y)


def loss_targets(loss: Loss, y: np.ndarray) -> np.ndarray:
    """Masks (N, H, W, 1) in {0, 1} as the loss wants them (class labels for softmax)."""
    if isinstance(loss, CategoricalCrossentropy) and y.shape[-1] == 1:
        return np.rint(y[..., 0]).astype(np.int64)  # (N, H, W) labels 0 = membrane, 1 = cell
    return y


def loss_value(loss: Loss, y_pred: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> float:
    """The loss of a batch, with the per-pixel weights ``w`` (N, H, W) if there are any."""
    if w is None:
        return loss.forward(y_pred, loss_targets(loss, y))
    return loss.forward(y_pred, loss_targets(loss, y), w)  # the paper's weighted loss


def forward_backward(
    model: object, loss: Loss, x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Forward (training), loss and backward of one batch: every layer's grads is set.
    Returns the loss and the predictions. (A model's speed engine runs inside its own
    ``forward`` and ``backward``: a loop written by hand is as fast as this one.)"""
    y_pred = model.forward(x, training=True)
    value = loss_value(loss, y_pred, y, w)
    model.backward(loss.backward())
    return value, y_pred


def train_step(
    model: object,
    optimizer: Optimizer,
    loss: Loss,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """One step of gradient descent on one batch; returns the loss and the predictions."""
    # overflow inside is not warned about: a diverged run reaches the output, where the
    # model's own check (or the one below) names it in one sentence
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        value, y_pred = forward_backward(model, loss, x, y, w)
        optimizer.step(model)
    if not np.isfinite(value):
        raise ValueError(
            f"fit: the loss is {value}: the weights have diverged (for instance a learning "
            "rate too high for this model)"
        )
    return value, y_pred


def evaluate(
    model: object,
    loss: Loss,
    x: np.ndarray,
    y: np.ndarray,
    metrics: list[str],
    batch_size: int,
    w: np.ndarray | None = None,
    tile: int | None = None,
) -> tuple[dict[str, float], np.ndarray]:
    """Loss and metrics on (x, y) in inference mode; also returns the predictions.

    With ``tile``, the images are predicted whole, tile by tile (``predict_tiled``).
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # see train_step
        if tile is None:
            y_pred = model.predict(x, batch_size=batch_size)
        else:
            y_pred = predict_tiled(model, x, tile=tile, batch_size=batch_size)
    logs = {"loss": loss_value(loss, y_pred, y, w)}
    for name in metrics:
        logs[name] = score(name, y_pred, y)
    return logs, y_pred


def _augment(
    augment: object, x: np.ndarray, y: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Augment images and masks; weight maps ride along as an extra image channel, so they
    get the very same warp (interpolated like the image, so clipped at 0 after)."""
    if w is None:
        return (*augment(x, y), None)
    xw, y = augment(np.concatenate([x, w[..., None]], axis=-1), y)  # (B, H, W, C + 1)
    return xw[..., :-1], y, np.maximum(xw[..., -1], 0)


def _epoch_order(n: int, count: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The ``count`` sample indices of one epoch: fresh permutations of 0..n-1, chained.

    Derived from (seed, epoch) alone, so a resumed run draws the very same batches.
    """
    rng = np.random.default_rng([seed, epoch])
    reps = -(-count // n)
    orders = [rng.permutation(n) if shuffle else np.arange(n) for _ in range(reps)]
    return np.concatenate(orders)[:count]


def _line(epoch: int, epochs: int, steps: int, seconds: float, logs: dict[str, float]) -> str:
    parts = [
        f"Epoch {epoch}/{epochs}",
        f"{steps}/{steps}",
        f"{seconds:.0f}s {1000 * seconds / max(steps, 1):.0f}ms/step",
    ]
    parts += [f"{k}: {v:.4f}" for k, v in logs.items() if k != "time"]
    return " - ".join(parts)


def fit(
    model: object,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = 2,
    epochs: int = 1,
    steps_per_epoch: int | None = None,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    validation_split: float = 0.0,
    augment: object | None = None,
    sample_weight: np.ndarray | None = None,
    tile: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    batches: object | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    verbose: int = 1,
) -> History:
    """Train a compiled model; see :meth:`numpy_unet.UNet.fit` for the arguments."""
    if getattr(model, "optimizer", None) is None:
        raise RuntimeError("fit: call model.compile(optimizer, loss, metrics) first")
    if augment is not None and not (callable(augment) and hasattr(augment, "rng")):
        raise ValueError(
            f"fit: augment must be an augmenter (Augmenter, ElasticDeformation, Compose), "
            f"got {augment!r}"
        )
    if batches is not None and not callable(batches):
        raise ValueError(f"fit: batches must be a function of the step number, got {batches!r}")
    if batches is not None and (augment is not None or tile is not None):
        raise ValueError("fit: batches gives each batch whole; leave augment and tile out")
    for option, value in (("batch_size", batch_size), ("epochs", epochs)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"fit: {option} must be a positive int, got {value!r}")
    if steps_per_epoch is not None and (
        not isinstance(steps_per_epoch, (int, np.integer)) or steps_per_epoch < 1
    ):
        raise ValueError(f"fit: steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
    x, y, weights, validation = prepare_data(
        model, x, y, model.loss, validation_data, validation_split, sample_weight, tile
    )
    steps = int(steps_per_epoch) if steps_per_epoch is not None else -(-len(x) // batch_size)
    if steps * batch_size > 10**7:  # the epoch's sample order is drawn up front
        raise ValueError(
            f"fit: steps_per_epoch x batch_size = {steps * batch_size:,} samples per epoch is "
            "more than 10,000,000; use more epochs of fewer steps"
        )
    if batch_size > len(x):
        raise ValueError(
            f"fit: batch_size {batch_size} is larger than the {len(x)} training images"
        )
    run = Run(
        model=model,
        x=x,
        y=y,
        weights=weights,
        validation=validation,
        batch_size=batch_size,
        epochs=epochs,
        steps=int(steps_per_epoch) if steps_per_epoch is not None else -(-len(x) // batch_size),
        augment=augment,
        tile=tile,
        shuffle=shuffle,
        seed=seed,
        batches=batches,
        folder=Path(checkpoint_dir) if checkpoint_dir is not None else None,
        checkpoint_every=checkpoint_every,
        verbose=verbose,
    )
    headline = getattr(model, "engine_headline", None)  # how the model uses the machine
    if verbose and headline is not None:
        print(headline(batch_size), flush=True)
    run.start(resume)
    with run.interrupt.installed() if run.folder is not None else contextlib.nullcontext():
        for epoch in range(run.state["epoch"], epochs):
            run.train_epoch(epoch)
            run.end_epoch(epoch)
            if run.interrupt.requested:  # Ctrl-C during the validation: saved just above
                raise KeyboardInterrupt(
                    f"stopped after epoch {epoch + 1}, its validation done and saved; "
                    f"resume from {run.folder / CHECKPOINT}"
                )
    return History(run.state["history"])


@dataclass
class Run:
    """One call of :func:`fit`: its data and settings, and the state a checkpoint keeps.

    ``state`` holds the position (epoch, step), the running sums of the epoch's metrics,
    the history and the best monitored value: everything a resumed run needs besides the
    weights, the optimizer and the random generators.
    """

    model: object
    x: np.ndarray  # (N, H, W, C)
    y: np.ndarray  # (N, Ho, Wo, 1), or (N, H, W, 1) whole masks with tile
    weights: np.ndarray | None  # (N, Ho, Wo) per-pixel loss weights
    validation: tuple | None  # (x_val, y_val, w_val or None)
    batch_size: int
    epochs: int
    steps: int  # per epoch
    augment: object | None
    tile: int | None
    shuffle: bool
    seed: int
    batches: object | None  # k -> (xb, yb), the k-th batch of the run; replaces the order
    folder: Path | None  # the checkpoint folder
    checkpoint_every: int | None
    verbose: int
    state: dict = field(default_factory=dict)
    interrupt: DeferredInterrupt = field(default_factory=DeferredInterrupt)
    t0: float = 0.0  # perf_counter() when the current epoch began (less its saved seconds)
    warned: str | None = None  # the kind of the last constant-prediction warning printed

    def __post_init__(self) -> None:
        model = self.model
        self.generators = [layer.rng for layer in model.layers if isinstance(layer, Dropout)]
        if self.augment is not None:
            self.generators.append(self.augment.rng)
        self.settings = {
            "batch_size": self.batch_size,
            "steps_per_epoch": self.steps,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "tile": self.tile,
            "batches": getattr(self.batches, "settings", None if self.batches is None else "?"),
            "data": fingerprint(self.x, self.y, *([] if self.weights is None else [self.weights])),
            "optimizer": self.model.optimizer.get_config(),
        }
        self.monitor = "val_loss" if self.validation is not None else "loss"

    def start(self, resume: bool) -> None:
        """A fresh state, or the one saved in the checkpoint folder when resuming.

        A resume reads the checkpoint whole and checks all of it against this run (settings,
        position, history, weights, optimizer, random generators) before using any of it:
        a checkpoint that cannot be continued is refused with nothing changed or written.
        """
        self.state = {"epoch": 0, "step": 0, "sums": {}, "seconds": 0.0, "history": {}}
        self.state |= {"best": None, "settings": self.settings}
        if self.folder is None:
            return
        path = self.folder / CHECKPOINT
        if resume and not path.is_file():  # nothing to resume: touch nothing in the folder
            raise FileNotFoundError(
                f"fit: resume=True, but {self.folder} holds no {CHECKPOINT} to resume from; "
                "nothing was written. Start a new run without resume, in a new folder"
            )
        if not resume and path.exists():
            raise FileExistsError(
                f"fit: {path} exists from an earlier run; pass resume=True to continue it, "
                "or choose another folder"
            )
        if resume:
            meta, arrays = read_checkpoint(path)
            self._check_same_run(path, meta)
            model, optimizer = self.model, self.model.optimizer
            saved = check_checkpoint(
                path, meta, arrays, model, optimizer, self.generators, self.augment is not None
            )
            self._check_position(path, saved)
            self.state = saved.restore(model, optimizer, self.generators)
            if self.verbose:
                where = f"epoch {self.state['epoch'] + 1}, step {self.state['step']}"
                print(f"Resuming from {path}: {where}")
        # a killed run's temporary files (.NAME.XXXXXXXX.tmp) stay: this run did not make
        # them, and a user's file may be named alike
        self.folder.mkdir(parents=True, exist_ok=True)

    def _check_same_run(self, path: Path, meta: dict) -> None:
        """Refuse a checkpoint of other data or settings, or one with no epochs left."""
        saved = meta["settings"]
        if saved != self.settings:
            changed = [
                f"{k}: {saved.get(k)!r} then, {v!r} now"
                for k, v in self.settings.items()
                if saved.get(k) != v
            ]
            changed += [
                f"{k}: {saved[k]!r} then, none now" for k in saved if k not in self.settings
            ]
            then, now = saved.get("optimizer", {}), self.settings["optimizer"]
            if isinstance(now.get("learning_rate"), dict) and then != now:
                changed.append(
                    "the learning rate follows a schedule set for the whole run, so "
                    "resume with the same number of steps (epochs x steps_per_epoch)"
                )
            raise ValueError(
                f"resume: {path} was saved with other data or settings "
                f"({'; '.join(changed)}); a resumed "
                "run must continue the same run"
            )
        if meta["epoch"] >= self.epochs:
            raise ValueError(
                f"resume: the run in {self.folder} has done {meta['epoch']} "
                f"epoch(s), and epochs={self.epochs} asks for no more; pass a larger "
                "epochs to train on"
            )

    def _check_position(self, path: Path, saved: Checkpoint) -> None:
        """Refuse a checkpoint whose position, sums or history this run cannot continue:
        a step beyond an epoch's, other metrics or validation, fewer optimizer steps than
        the run has made."""
        meta, metrics = saved.meta, self.model.metrics
        epoch, step = meta["epoch"], meta["step"]
        if step > self.steps:
            raise ValueError(
                f"resume: {path} is at step {step} of epoch {epoch + 1}, but an epoch of this "
                f"run has {self.steps} steps: it is damaged or was edited"
            )
        logged = ["loss", *metrics]
        history = set(logged) | {"time"}
        if self.validation is not None:
            history |= {f"val_{name}" for name in logged}
        wanted, found = (history if epoch > 0 else set()), set(meta["history"])
        if found != wanted:
            raise ValueError(
                f"resume: {path} holds a history of {sorted(found)}, and this run records "
                f"{sorted(wanted)}: compile with the same metrics ({metrics} now) and pass "
                "validation data as the run did"
            )
        found, wanted = set(meta["sums"]), set(logged) if step > 0 else set()
        if found != wanted:
            raise ValueError(
                f"resume: {path} holds the sums of {sorted(found)} at step {step}, and this "
                f"run sums {sorted(wanted)}: compile with the same metrics ({metrics} now)"
            )
        done = epoch * self.steps + step
        if saved.iterations < done:
            raise ValueError(
                f"resume: {path} holds an optimizer that made {saved.iterations} step(s), "
                f"fewer than the {done} the run has made: it is damaged or was edited"
            )

    def checkpoint(self) -> None:
        if self.folder is not None:
            save_checkpoint(
                self.folder, self.model, self.model.optimizer, self.state, self.generators
            )

    def train_epoch(self, epoch: int) -> None:
        """The steps of one epoch, from where the state says (a resumed run: mid-epoch)."""
        model, state, n, b = self.model, self.state, len(self.x), self.batch_size
        order = _epoch_order(n, self.steps * b, self.seed, epoch, self.shuffle)
        self.t0 = time.perf_counter() - state["seconds"]  # when this epoch began
        sums, t0 = state["sums"], self.t0
        for step in range(state["step"], self.steps):
            idx = order[step * b : (step + 1) * b]
            xb, yb = self.x[idx], self.y[idx]  # (B, H, W, C), (B, H, W, 1 or K)
            wb = None if self.weights is None else self.weights[idx]  # (B, H, W)
            if self.batches is not None:  # a stream of its own: batch k of the whole run
                xb, yb = self.batches(epoch * self.steps + step)
            if self.augment is not None:
                xb, yb, wb = _augment(self.augment, xb, yb, wb)
            if self.tile is not None:  # a random tile of each image, from (seed, epoch, step)
                tiles_rng = np.random.default_rng([self.seed, epoch, step])
                xb, yb, wb = sample_tiles(model, xb, yb, wb, self.tile, tiles_rng)
            value, y_pred = train_step(model, model.optimizer, model.loss, xb, yb, wb)
            sums["loss"] = sums.get("loss", 0.0) + value
            for name in model.metrics:
                sums[name] = sums.get(name, 0.0) + score(name, y_pred, yb)
            state.update(step=step + 1, seconds=time.perf_counter() - t0)
            if self.verbose == 1 and sys.stdout.isatty():
                progress = f"{step + 1}/{self.steps} - loss: {sums['loss'] / (step + 1):.4f}"
                print(f"\rEpoch {epoch + 1}/{self.epochs} - {progress}", end="", flush=True)
            every = self.checkpoint_every
            if self.interrupt.requested or (every and (step + 1) % every == 0):
                self.checkpoint()
            if self.interrupt.requested:
                raise KeyboardInterrupt(
                    f"stopped at epoch {epoch + 1}, step {step + 1}; "
                    f"resume from {self.folder / CHECKPOINT}"
                )

    def end_epoch(self, epoch: int) -> None:
        """Validate, record the history, keep the best weights, save, print, diagnose."""
        model, state = self.model, self.state
        logs = {k: v / self.steps for k, v in state["sums"].items()}
        if self.validation is not None:
            x_val, y_val, w_val = self.validation
            val_logs, val_pred = evaluate(
                model, model.loss, x_val, y_val, model.metrics, self.batch_size, w_val, self.tile
            )
            logs |= {f"val_{k}": v for k, v in val_logs.items()}
        logs["time"] = time.perf_counter() - self.t0
        history = state["history"]
        for k, v in logs.items():
            history.setdefault(k, []).append(float(v))
        improved = state["best"] is None or logs[self.monitor] < state["best"]
        state.update(epoch=epoch + 1, step=0, sums={}, seconds=0.0, history=history)
        if improved:
            state["best"] = float(logs[self.monitor])
            if self.folder is not None:
                model.save_weights(self.folder / BEST, overwrite=True)
        self.checkpoint()
        if self.verbose:
            end = "\r" if self.verbose == 1 and sys.stdout.isatty() else ""
            print(end + _line(epoch + 1, self.epochs, self.steps, logs["time"], logs), flush=True)
        if self.validation is not None and val_pred.shape[-1] <= 2:  # said once, and again
            # only when it changes
            warning = diagnose_predictions(foreground(val_pred), self.validation[1], model)
            kind = warning.split("(", 1)[1].split(":", 1)[0] if warning else None
            if warning and self.verbose and kind != self.warned:
                print(warning, file=sys.stderr)
            self.warned = kind


def compile_model(
    model: object,
    optimizer: str | Optimizer,
    loss: str | Loss,
    metrics: list[str] | tuple[str, ...],
    learning_rate: float | None,
) -> None:
    """What ``UNet.compile`` does: attach an optimizer, a loss and metric names."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"compile: unknown metrics {unknown}; choose from {sorted(METRICS)}")
    model.optimizer = get_optimizer(optimizer, learning_rate)
    model.loss = get_loss(loss)
    model.metrics = list(metrics)
