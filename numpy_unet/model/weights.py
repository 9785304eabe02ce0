"""A model's weights as a list (Keras's order) and as an ``.npz`` file.

The list is what Keras's ``model.get_weights()`` returns for the seed's model: kernel
(kh, kw, cin, cout) then bias (cout,), conv after conv, 48 arrays for the default UNet.
Weights exported from Keras with ``np.savez("w.npz", *model.get_weights())`` load directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..files import atomic_savez

# configuration entries that change the number or the shapes of the weights
_ARCHITECTURE = ("filters", "depth", "padding", "upsampling", "num_classes", "head_conv")


def set_weights(model: object, weights: list[np.ndarray]) -> None:
    """Check every array against the model first; only then write them all."""
    names = list(model.params)
    targets = list(model.params.values())
    if len(weights) != len(names):
        raise ValueError(
            f"UNet.set_weights: expected {len(names)} arrays (kernel and bias of "
            f"{len(names) // 2} convs, in get_weights() order), got {len(weights)}"
        )
    checked = []
    for k, (name, target, w) in enumerate(zip(names, targets, weights)):
        w = np.asarray(w)
        if w.shape != target.shape:
            raise ValueError(
                f"UNet.set_weights: array {k} ({name}) must have shape {target.shape}, "
                f"got {w.shape}; the model is unchanged"
            )
        if not np.issubdtype(w.dtype, np.floating):
            raise ValueError(
                f"UNet.set_weights: array {k} ({name}) must hold floats, got dtype {w.dtype}; "
                "the model is unchanged"
            )
        with np.errstate(over="ignore"):  # a value beyond the model's dtype becomes inf here
            w = w.astype(target.dtype)
        if not np.isfinite(w).all():
            raise ValueError(
                f"UNet.set_weights: array {k} ({name}) holds NaN, inf or values too large "
                f"for {target.dtype}; the model is unchanged"
            )
        checked.append(w)
    for target, w in zip(targets, checked):
        target[...] = w  # in place, cast to the model's dtype


def get_gradients(model: object) -> list[np.ndarray]:
    grads, missing = model.grads, [n for n in model.params if n not in model.grads]
    if missing:
        raise RuntimeError(
            f"UNet.get_gradients: no gradient for {missing[0]} (and {len(missing) - 1} more); "
            "call backward() after a forward() first"
        )
    return [grads[n] for n in model.params]


def save_weights(model: object, path: str | os.PathLike, overwrite: bool = False) -> str:
    """Write ``path`` (must end in .npz) atomically (see :func:`numpy_unet.files.atomic_savez`)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"UNet.save_weights: the file name must end in .npz, got {str(path)!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"UNet.save_weights: {path} exists; pass overwrite=True to replace it"
        )
    arrays = {
        f"{k:03d}_{name.replace('/', '.')}": p for k, (name, p) in enumerate(model.params.items())
    }
    arrays["config"] = np.array(json.dumps(model.get_config()))
    atomic_savez(path, arrays)  # a crash leaves any earlier file intact
    return str(path)


def _weight_keys(keys: list[str]) -> list[str]:
    """Weight arrays in order: ours are numbered ``007_...``, a Keras export ``arr_7``."""
    if all(k.startswith("arr_") for k in keys):
        return sorted(keys, key=lambda k: int(k[4:]))
    return sorted(k for k in keys if k != "config")


def load_weights(model: object, path: str | os.PathLike) -> None:
    """Load weights saved by ``save_weights`` (or a Keras export); all or nothing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"UNet.load_weights: no such file: {path}")
    with np.load(path, allow_pickle=False) as data:
        keys = list(data.keys())
        if "config" in keys:
            saved = json.loads(str(data["config"]))
            mine = model.get_config()
            saved["input_channels"] = saved["input_shape"][2]
            mine["input_channels"] = mine["input_shape"][2]
            diff = [
                f"{k}: file {saved.get(k)!r}, model {mine[k]!r}"
                for k in (*_ARCHITECTURE, "input_channels")
                if saved.get(k) != mine[k]
            ]
            if diff:
                raise ValueError(
                    f"UNet.load_weights: {path} holds a differently configured UNet ("
                    + "; ".join(diff)
                    + "); the model is unchanged"
                )
        weights = [data[k] for k in _weight_keys(keys)]
    set_weights(model, weights)
