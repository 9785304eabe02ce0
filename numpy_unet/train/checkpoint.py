"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the weights, the optimizer's state (Adam's m and v, the step count), the
state of every random generator (batch order, augmentation, dropout), the position in the
run (epoch and step) and the history so far. It is written to a temporary file (of a name
no other file has) and then renamed over the old one, so a run killed at any moment leaves
either the previous checkpoint or the new one, never half a file.

A resume reads the file whole (:func:`read_checkpoint`) and checks every entry against the
run (:func:`check_checkpoint`) before it uses any: a damaged or hand-edited checkpoint is
refused in one line naming the file and what is wrong, and nothing is changed or written.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..budgets import BudgetError, check_weight_bytes, npz_contents
from ..files import atomic_savez

CHECKPOINT = "checkpoint.npz"  # the last state, for --resume
BEST = "best_weights.npz"  # the best weights so far (loadable with UNet.load_weights)


def save_checkpoint(
    directory: Path, model: object, optimizer: object, meta: dict, generators: list
) -> Path:
    """Write ``directory/checkpoint.npz``; ``meta`` must be JSON-serialisable."""
    arrays = {f"weight:{name}": p for name, p in model.params.items()}
    arrays |= {f"optimizer:{key}": a for key, a in optimizer.get_state().items()}
    meta = meta | {
        "config": model.get_config(),
        "rng_states": [g.bit_generator.state for g in generators],
    }
    arrays["meta"] = np.array(json.dumps(meta))
    path = Path(directory) / CHECKPOINT
    atomic_savez(path, arrays)
    return path


def _architecture(config: dict) -> dict:
    """The configuration without what does not change the weights (seed, name)."""
    config = json.loads(json.dumps(config))  # tuples -> lists, as read back from JSON
    return {k: v for k, v in config.items() if k not in ("seed", "name")}


# -- reading: the whole checkpoint is checked before any of it is used ------------------------
META = ("epoch", "step", "sums", "seconds", "history", "best", "settings", "config", "rng_states")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value: object) -> bool:
    """An int >= 0 (JSON's true and false are not counts)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _named(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a checkpoint file whole and check its metadata on its own.

    Parameters
    ----------
    path : str or os.PathLike
        A ``checkpoint.npz`` written by :func:`save_checkpoint`.

    Returns
    -------
    meta : dict
        The metadata: position (``epoch``, ``step``), ``sums``, ``seconds``, ``history``,
        ``best``, ``settings``, ``config`` and ``rng_states``, each of the right type, and
        consistent (a history of ``epoch`` values per name, sums only after a step).
    arrays : dict of str to numpy.ndarray
        Every other entry (``weight:...``, ``optimizer:...``), in memory.

    Raises
    ------
    ValueError
        One line naming ``path`` and what is wrong, whatever the damage (empty, truncated,
        not a ``.npz``, an entry missing, bad JSON, a value of the wrong type or range).
    """
    path = Path(path)

    def damaged(what: str) -> ValueError:
        return ValueError(f"resume: {path} {what}; it cannot be resumed from")

    try:
        with open(path, "rb") as f:
            empty, archive = os.fstat(f.fileno()).st_size == 0, zipfile.is_zipfile(f)
    except OSError as err:
        raise damaged(f"cannot be read ({err.strerror or err})") from None
    if empty:
        raise damaged("is empty (0 bytes)")
    if not archive:
        raise damaged("is not a .npz archive (truncated, damaged or not a checkpoint)")
    try:  # the headers first: weights and optimizer state within the budget for weights
        check_weight_bytes(npz_contents(path), "arrays (weights and optimizer state)")
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except BudgetError as err:
        raise damaged(f"cannot be read: {err}") from None
    except Exception as err:  # BadZipFile, EOFError, zlib.error, ValueError, ...: say which
        raise damaged(f"is damaged ({type(err).__name__}: {err})") from None
    if "meta" not in arrays:
        raise damaged("has no 'meta' entry (damaged, or not a checkpoint)")
    text = arrays.pop("meta")
    if text.shape != () or text.dtype.kind != "U":
        raise damaged(f"has a 'meta' entry of {text.dtype} {text.shape}, not a JSON string")
    try:
        meta = json.loads(str(text))
    except json.JSONDecodeError as err:
        raise damaged(f"has a 'meta' entry that is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise damaged(f"has a 'meta' entry that is not a JSON object: {_named(meta)}")
    problem = _meta_problem(meta)
    if problem:
        raise damaged(f"is damaged or was edited: {problem}")
    return meta, arrays


def _meta_problem(meta: dict) -> str | None:
    """What is wrong with a checkpoint's metadata on its own, or None."""
    missing = [key for key in META if key not in meta]
    if missing:
        return f"its meta lacks {missing}"
    unknown = sorted(set(meta) - set(META))
    if unknown:
        return f"its meta has unknown entries {unknown}"
    for key in ("epoch", "step"):
        if not _count(meta[key]):
            return f"meta {key!r} must be an int >= 0, got {_named(meta[key])}"
    epoch, step, seconds = meta["epoch"], meta["step"], meta["seconds"]
    if not (_number(seconds) and 0 <= seconds < float("inf")):
        return f"meta 'seconds' must be a finite number >= 0, got {_named(seconds)}"
    for key in ("sums", "history", "settings", "config"):
        if not isinstance(meta[key], dict):
            return f"meta {key!r} must be a JSON object, got {_named(meta[key])}"
    for name, total in meta["sums"].items():
        if not (_number(total) and np.isfinite(total)):
            return f"meta 'sums' {name!r} must be a finite number, got {_named(total)}"
    if step == 0 and meta["sums"]:
        return f"it holds the sums {sorted(meta['sums'])} of an epoch's steps at step 0"
    if step > 0 and "loss" not in meta["sums"]:
        return f"it is at step {step} of an epoch, but holds no sum of the loss"
    for name, values in meta["history"].items():
        if not (isinstance(values, list) and all(_number(v) for v in values)):
            return f"its history {name!r} must be a list of numbers, got {_named(values)}"
        if len(values) != epoch:
            return f"its history {name!r} has {len(values)} value(s) for {epoch} epoch(s) done"
    if epoch > 0 and "loss" not in meta["history"]:
        return f"it has done {epoch} epoch(s), but its history holds no 'loss'"
    best = meta["best"]
    if (best is None) != (epoch == 0) or not (best is None or _number(best)):
        return f"meta 'best' must be a number after an epoch, None before, got {_named(best)}"
    states = meta["rng_states"]
    if not (isinstance(states, list) and all(isinstance(s, dict) for s in states)):
        return f"meta 'rng_states' must be a list of generator states, got {_named(states)}"
    return None


@dataclass
class Checkpoint:
    """A checkpoint read whole and checked against a model: nothing of it is used yet.

    ``meta`` is the metadata (see :func:`read_checkpoint`); ``weights`` the model's
    parameters in ``model.params`` order; ``optimizer_state`` what ``optimizer.set_state``
    takes (``iterations`` and every ``KIND:NAME`` slot).
    """

    path: Path
    meta: dict
    weights: list[np.ndarray]
    optimizer_state: dict[str, np.ndarray]

    @property
    def iterations(self) -> int:
        """The optimizer's step count when the checkpoint was written."""
        return int(self.optimizer_state["iterations"])

    def restore(self, model: object, optimizer: object, generators: list) -> dict:
        """Set the weights, the optimizer and the generators; return the metadata."""
        model.set_weights(self.weights)
        optimizer.set_state(self.optimizer_state)
        for g, state in zip(generators, self.meta["rng_states"]):
            g.bit_generator.state = state
        return self.meta


def check_checkpoint(
    path: Path,
    meta: dict,
    arrays: dict[str, np.ndarray],
    model: object,
    optimizer: object,
    generators: list,
    augment: bool,
) -> Checkpoint:
    """Check what :func:`read_checkpoint` read against the model a run trains.

    Parameters
    ----------
    path : pathlib.Path
        The file read, named in every error.
    meta, arrays : dict
        What :func:`read_checkpoint` returned.
    model, optimizer : object
        The model to resume and its optimizer.
    generators : list of numpy.random.Generator
        The run's random generators: one per dropout layer, then the augmenter's.
    augment : bool
        Whether the run augments (its last generator is then the augmenter's).

    Returns
    -------
    Checkpoint
        The checkpoint, every entry checked: the model's architecture, a weight of the right
        shape for every parameter, finite floats, the optimizer's state for every parameter
        and no other, a valid state for every generator.

    Raises
    ------
    ValueError
        One line naming ``path``, what differs or is wrong, and what to do.
    """

    def refuse(what: str) -> ValueError:
        return ValueError(f"resume: {path} {what}")

    if _architecture(meta["config"]) != _architecture(model.get_config()):
        raise refuse(
            f"was written by a differently configured model ({meta['config']}); this model "
            f"is {model.get_config()}"
        )
    params = model.params
    unknown = [k for k in arrays if not k.startswith(("weight:", "optimizer:"))]
    unknown += [k for k in arrays if k.startswith("weight:") and k[7:] not in params]
    if unknown:
        raise refuse(f"holds the entry {unknown[0]!r}, which this model has no use for")
    weights = []
    for name, p in params.items():
        key = f"weight:{name}"
        if key not in arrays:
            raise refuse(f"has no weights for {name} (no {key!r} entry): it is damaged")
        weights.append(_checked_array(path, key, arrays[key], p))
    state = _checked_optimizer_state(path, arrays, params, optimizer)
    _check_generators(path, meta["rng_states"], generators, augment)
    return Checkpoint(path, meta, weights, state)


def _checked_array(path: Path, key: str, a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``a`` if it has ``like``'s shape and holds finite floats, else a one-line error."""
    if a.shape != like.shape or a.dtype.kind != "f":
        raise ValueError(
            f"resume: {path} holds {key!r} as {a.dtype} {a.shape}; this model's is "
            f"{like.dtype} {like.shape}"
        )
    if not np.isfinite(a).all():
        raise ValueError(f"resume: {path} holds NaN or inf in {key!r}; it cannot be resumed")
    return a


def _slot_kinds(optimizer: object) -> set[str] | None:
    """The kinds of per-parameter state ``optimizer`` keeps once it has stepped (Adam: m and
    v; SGD with momentum: velocity), from one update of a copy on a one-number parameter;
    None if that cannot be done."""
    probe = copy.copy(optimizer)
    probe.slots, probe.iterations = {}, 1
    try:
        with np.errstate(all="ignore"):
            probe._update("probe", np.zeros(1), np.zeros(1))
    except Exception:  # an optimizer of the user's own that cannot be probed: not checked
        return None
    return set(probe.slots)


def _checked_optimizer_state(
    path: Path, arrays: dict[str, np.ndarray], params: dict, optimizer: object
) -> dict[str, np.ndarray]:
    """The optimizer's state in ``arrays``, checked: an int ``iterations``, and then every
    kind of state the optimizer keeps, each for every parameter, of its shape."""
    state = {k.split(":", 1)[1]: a for k, a in arrays.items() if k.startswith("optimizer:")}
    iterations = state.get("iterations")
    if iterations is None or iterations.shape != () or iterations.dtype.kind not in "iu":
        found = "none" if iterations is None else f"{iterations.dtype} {iterations.shape}"
        raise ValueError(
            f"resume: {path} must hold the optimizer's step count 'optimizer:iterations' (an "
            f"int), found {found}: it is damaged"
        )
    if iterations < 0:
        raise ValueError(f"resume: {path} holds a negative optimizer step count {iterations}")
    slots: dict[str, set[str]] = {}
    for key, a in state.items():
        if key == "iterations":
            continue
        kind, _, name = key.partition(":")
        if name not in params:
            raise ValueError(
                f"resume: {path} holds optimizer state {key!r} for no parameter of this model"
            )
        _checked_array(path, f"optimizer:{key}", a, params[name])
        slots.setdefault(kind, set()).add(name)
    expected = set() if iterations == 0 else _slot_kinds(optimizer)
    if expected is not None and set(slots) != expected:
        raise ValueError(
            f"resume: {path} holds optimizer state of the kinds {sorted(slots)}; "
            f"{type(optimizer).__name__} after {int(iterations)} step(s) keeps "
            f"{sorted(expected)}: it is damaged, or was saved with another optimizer"
        )
    for kind, names in slots.items():
        if names != set(params):
            lacking = [n for n in params if n not in names]
            more = f" (nor for {len(lacking) - 1} more)" if len(lacking) > 1 else ""
            raise ValueError(
                f"resume: {path} has no optimizer state {kind!r} for {lacking[0]}{more}: it "
                "is damaged"
            )
    return state


def _check_generators(path: Path, states: list, generators: list, augment: bool) -> None:
    """Refuse random generator states that do not fit the run's generators, saying in words
    what differs (augmentation on one side only), or which state is not valid."""
    dropouts = len(generators) - int(augment)  # one generator per dropout layer
    if len(states) != len(generators):
        if len(states) == dropouts + 1 and not augment:
            raise ValueError(
                f"resume: {path} was saved by a run with augmentation, and this run has "
                "none; resume it with the same options (leave out --no-augment; in fit, "
                "pass an augmenter again)"
            )
        if len(states) == dropouts and augment:
            raise ValueError(
                f"resume: {path} was saved by a run without augmentation, and this run "
                "augments; resume it with the same options (--no-augment; in fit, "
                "augment=None)"
            )
        raise ValueError(
            f"resume: {path} holds {len(states)} random generator states; this model has "
            f"{dropouts} dropout layer(s), so a run of it has {dropouts} (or {dropouts + 1} "
            "with augmentation): it is damaged"
        )
    for k, (g, state) in enumerate(zip(generators, states)):
        trial = type(g.bit_generator)()  # a throwaway generator of the same kind
        try:
            trial.state = state
        except Exception as err:  # TypeError, ValueError, KeyError: one line, naming it
            raise ValueError(
                f"resume: {path} holds random generator state {k}, which is not a valid "
                f"{type(g.bit_generator).__name__} state ({type(err).__name__}: {err})"
            ) from None


class DeferredInterrupt:
    """Turn Ctrl-C into a request that the training loop honours between two steps.

    A KeyboardInterrupt in the middle of an optimizer update would leave the weights half
    updated. Instead, the first Ctrl-C only sets ``requested``; the loop checks it after
    each step, saves a checkpoint and stops. A second Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        self.requested = False

    def _handler(self, signum: int, frame: object) -> None:
        if self.requested:  # the user insists
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nInterrupt: finishing this step, then saving a checkpoint (Ctrl-C again to "
            "stop at once)",
            flush=True,
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[DeferredInterrupt]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        previous = signal.signal(signal.SIGINT, self._handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
