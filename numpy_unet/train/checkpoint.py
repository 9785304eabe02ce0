"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the weights, the optimizer's state (Adam's m and v, the step count), the
state of every random generator (batch order, augmentation, dropout), the position in the
run (epoch and step) and the history so far. It is written to a temporary file and then
renamed over the old one, so a run killed at any moment leaves either the previous
checkpoint or the new one, never half a file.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

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


def load_checkpoint(directory: Path, model: object, optimizer: object, generators: list) -> dict:
    """Restore weights, optimizer and generators from ``directory``; return the metadata."""
    path = Path(directory) / CHECKPOINT
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if _architecture(meta["config"]) != _architecture(model.get_config()):
            raise ValueError(
                f"resume: {path} was written by a differently configured model "
                f"({meta['config']}); this model is {model.get_config()}"
            )
        weights = [data[f"weight:{name}"] for name in model.params]
        opt_state = {k.split(":", 1)[1]: data[k] for k in data if k.startswith("optimizer:")}
    if len(meta["rng_states"]) != len(generators):
        raise ValueError(
            f"resume: {path} holds {len(meta['rng_states'])} random generators, "
            f"this run has {len(generators)}"
        )
    model.set_weights(weights)
    optimizer.set_state(opt_state)
    for g, state in zip(generators, meta["rng_states"]):
        g.bit_generator.state = state
    return meta


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
