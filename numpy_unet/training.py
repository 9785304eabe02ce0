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
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from . import metrics as _metrics
from .checkpoint import BEST, CHECKPOINT, DeferredInterrupt, load_checkpoint, save_checkpoint
from .diagnostics import diagnose_predictions
from .layers import Dropout
from .losses import BinaryCrossentropy, CategoricalCrossentropy, DiceLoss, Loss
from .optimizers import Optimizer, get_optimizer
from .tiling import predict_tiled, sample_tiles, tile_layout

LOSSES = {
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "dice": DiceLoss,
}
METRICS = {"accuracy": _metrics.pixel_accuracy, "dice": _metrics.dice, "iou": _metrics.iou}


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


def train_step(
    model: object,
    optimizer: Optimizer,
    loss: Loss,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """One step of gradient descent on one batch; returns the loss and the predictions."""
    y_pred = model.forward(x, training=True)
    value = loss_value(loss, y_pred, y, w)
    model.backward(loss.backward())
    optimizer.step(model)
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
    if tile is None:
        y_pred = model.predict(x, batch_size=batch_size)
    else:
        y_pred = predict_tiled(model, x, tile=tile, batch_size=batch_size)
    logs = {"loss": loss_value(loss, y_pred, y, w)}
    for name in metrics:
        logs[name] = METRICS[name](foreground(y_pred), y)
    return logs, y_pred


def _check_data(
    model: object, x: np.ndarray, y: np.ndarray, where: str, tile: int | None = None
) -> None:
    if x.ndim != 4 or y.ndim != 4 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{where}: x and y must be (N, H, W, C) arrays with the same N, got "
            f"x {x.shape} and y {y.shape}"
        )
    if tile is not None:  # whole images and masks; the network sees tiles of them
        if y.shape[:3] != x.shape[:3]:
            raise ValueError(
                f"{where}: with tile={tile}, masks must have the images' height and width "
                f"(the tiles are cut from both), got x {x.shape} and y {y.shape}"
            )
        try:
            tile_layout(model, x.shape, tile)  # the network must accept the tile
        except ValueError as err:  # the same message, naming fit rather than tile_layout
            raise ValueError(str(err).replace("tile_layout", where, 1)) from None
    elif y.shape[:3] != (out := model.compute_output_shape(x.shape))[:3]:
        raise ValueError(
            f"{where}: the model maps x {x.shape} to {out}, but y has shape "
            f"{y.shape}; masks must match the output's height and width"
        )
    if y.min() < 0 or y.max() > 1:
        raise ValueError(
            f"{where}: masks must lie in [0, 1], found values in [{y.min():g}, "
            f"{y.max():g}]; divide masks stored as 0/255 by 255"
        )
    if x.max() > 2:
        print(
            f"Warning: {where}: images reach {x.max():g}; 8-bit images usually need "
            "x / 255 to lie in [0, 1]",
            file=sys.stderr,
        )


def _check_weights(w: object, y: np.ndarray, loss: Loss, where: str) -> np.ndarray | None:
    """Per-pixel weights: None, or finite, non-negative, (N, H, W) like the masks."""
    if w is None:
        return None
    if not isinstance(loss, CategoricalCrossentropy):
        raise ValueError(
            f"{where}: sample_weight (a weight per pixel, e.g. the paper's weight map) needs "
            f"loss='categorical_crossentropy', not {type(loss).__name__}"
        )
    w = np.asarray(w, dtype=y.dtype)
    if w.ndim == 4 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.shape != y.shape[:3]:
        raise ValueError(
            f"{where}: sample_weight must have shape {y.shape[:3]} (one weight per mask "
            f"pixel), got {w.shape}"
        )
    if not np.isfinite(w).all() or w.min() < 0:
        raise ValueError(f"{where}: sample_weight must be finite and >= 0")
    return w


def _augment(
    augment: object, x: np.ndarray, y: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Augment images and masks; weight maps ride along as an extra image channel, so they
    get the very same warp (interpolated like the image, so clipped at 0 after)."""
    if w is None:
        return (*augment(x, y), None)
    xw, y = augment(np.concatenate([x, w[..., None]], axis=-1), y)  # (B, H, W, C + 1)
    return xw[..., :-1], y, np.maximum(xw[..., -1], 0)


def _fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of the training data, so that --resume refuses other data."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


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
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    verbose: int = 1,
) -> History:
    """Train a compiled model; see :meth:`numpy_unet.UNet.fit` for the arguments."""
    if getattr(model, "optimizer", None) is None:
        raise RuntimeError("fit: call model.compile(optimizer, loss, metrics) first")
    optimizer, loss, metric_names = model.optimizer, model.loss, model.metrics
    x, y = np.asarray(x, dtype=model.dtype), np.asarray(y, dtype=model.dtype)
    if validation_data is None and validation_split > 0:  # Keras: the last samples
        cut = int(round(len(x) * (1 - validation_split)))
        if cut < 1 or cut >= len(x):
            raise ValueError(
                f"fit: validation_split {validation_split} leaves no training or "
                f"no validation data out of {len(x)} samples"
            )
        x, y, validation_data = x[:cut], y[:cut], (x[cut:], y[cut:])
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
            validation_data += (sample_weight[cut:],)
            sample_weight = sample_weight[:cut]
    _check_data(model, x, y, "fit", tile)
    weights = _check_weights(sample_weight, y, loss, "fit")
    if validation_data is not None:  # (x_val, y_val) or (x_val, y_val, sample_weight_val)
        x_val, y_val = (np.asarray(a, dtype=model.dtype) for a in validation_data[:2])
        _check_data(model, x_val, y_val, "fit (validation_data)", tile)
        w_val = validation_data[2] if len(validation_data) > 2 else None
        validation_data = (x_val, y_val, _check_weights(w_val, y_val, loss, "fit (validation)"))
    n = len(x)
    steps = int(steps_per_epoch) if steps_per_epoch else -(-n // batch_size)
    generators = [layer.rng for layer in model.layers if isinstance(layer, Dropout)]
    if augment is not None:
        generators.append(augment.rng)
    settings = {
        "batch_size": batch_size,
        "steps_per_epoch": steps,
        "seed": seed,
        "shuffle": shuffle,
        "tile": tile,
        "data": _fingerprint(x, y, *([] if weights is None else [weights])),
    }
    state = {
        "epoch": 0,
        "step": 0,
        "sums": {},
        "seconds": 0.0,
        "history": {},
        "best": None,
        "settings": settings,
    }
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        if resume and (folder / CHECKPOINT).exists():
            state = load_checkpoint(folder, model, optimizer, generators)
            if state["settings"] != settings:
                raise ValueError(
                    f"resume: {folder / CHECKPOINT} was saved with other data or "
                    f"settings ({state['settings']}), not {settings}"
                )
            if verbose:
                print(
                    f"Resuming from {folder / CHECKPOINT}: epoch {state['epoch'] + 1}, "
                    f"step {state['step']}"
                )
        elif not resume and (folder / CHECKPOINT).exists():
            raise FileExistsError(
                f"fit: {folder / CHECKPOINT} exists from an earlier run; pass "
                "resume=True to continue it, or choose another folder"
            )
    history = History(state["history"])
    monitor = "val_loss" if validation_data is not None else "loss"

    def checkpoint() -> None:
        if folder is not None:
            save_checkpoint(folder, model, optimizer, state, generators)

    interrupt = DeferredInterrupt()
    with interrupt.installed() if folder is not None else contextlib.nullcontext():
        for epoch in range(state["epoch"], epochs):
            order = _epoch_order(n, steps * batch_size, seed, epoch, shuffle)
            sums, t0 = state["sums"], time.perf_counter() - state["seconds"]
            for step in range(state["step"], steps):
                idx = order[step * batch_size : (step + 1) * batch_size]
                xb, yb = x[idx], y[idx]  # (B, H, W, C), (B, H, W, 1)
                wb = None if weights is None else weights[idx]  # (B, H, W)
                if augment is not None:
                    xb, yb, wb = _augment(augment, xb, yb, wb)
                if tile is not None:  # a random tile of each image, drawn from (seed, epoch, step)
                    tiles_rng = np.random.default_rng([seed, epoch, step])
                    xb, yb, wb = sample_tiles(model, xb, yb, wb, tile, tiles_rng)
                value, y_pred = train_step(model, optimizer, loss, xb, yb, wb)
                sums["loss"] = sums.get("loss", 0.0) + value
                for name in metric_names:
                    sums[name] = sums.get(name, 0.0) + METRICS[name](foreground(y_pred), yb)
                state.update(step=step + 1, seconds=time.perf_counter() - t0)
                if verbose == 1 and sys.stdout.isatty():
                    print(
                        f"\rEpoch {epoch + 1}/{epochs} - {step + 1}/{steps} - loss: "
                        f"{sums['loss'] / (step + 1):.4f}",
                        end="",
                        flush=True,
                    )
                if interrupt.requested or (checkpoint_every and (step + 1) % checkpoint_every == 0):
                    checkpoint()
                if interrupt.requested:
                    raise KeyboardInterrupt(
                        f"stopped at epoch {epoch + 1}, step {step + 1}; "
                        f"resume from {folder / CHECKPOINT}"
                    )
            logs = {k: v / steps for k, v in sums.items()}
            if validation_data is not None:
                x_val, y_val, w_val = validation_data
                val_logs, val_pred = evaluate(
                    model, loss, x_val, y_val, metric_names, batch_size, w_val, tile
                )
                logs |= {f"val_{k}": v for k, v in val_logs.items()}
            logs["time"] = time.perf_counter() - t0
            for k, v in logs.items():
                history.history.setdefault(k, []).append(float(v))
            improved = state["best"] is None or logs[monitor] < state["best"]
            state.update(epoch=epoch + 1, step=0, sums={}, seconds=0.0, history=history.history)
            if improved:
                state["best"] = float(logs[monitor])
                if folder is not None:
                    model.save_weights(folder / BEST, overwrite=True)
            checkpoint()
            if verbose:
                end = "\r" if verbose == 1 and sys.stdout.isatty() else ""
                print(end + _line(epoch + 1, epochs, steps, logs["time"], logs), flush=True)
            if validation_data is not None:
                warning = diagnose_predictions(foreground(val_pred), validation_data[1], model)
                if warning and verbose:
                    print(warning, file=sys.stderr)
    return history


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
