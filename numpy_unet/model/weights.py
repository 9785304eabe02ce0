"""A model's weights as a list (Keras's order) and as a file: ``.npz``, or Keras's own.

The list is what Keras's ``model.get_weights()`` returns for the seed's model: kernel
(kh, kw, cin, cout) then bias (cout,), conv after conv, 48 arrays for the default UNet.
Our ``.npz`` holds the list and the configuration. Weights exported from Keras with
``np.savez("w.npz", *model.get_weights())`` load directly, and so do Keras's files (``.h5``,
``.weights.h5``, ``.keras``; see :mod:`.keras_files`, which needs h5py); for those two the
configuration is the seed-style UNet the shapes describe.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..budgets import npz_contents
from ..files import atomic_savez, require_file
from . import keras_files

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
    """Write ``path`` atomically, the format chosen by its suffix: ``.npz`` (the weights and
    the configuration) or ``.h5`` (Keras's legacy layout, :func:`.keras_files.write_legacy_h5`).
    """
    path = Path(path)
    if path.name.endswith(".weights.h5"):
        raise ValueError(
            f"UNet.save_weights: {path}: Keras 3's .weights.h5 layout is not written here; "
            "name the file x.h5 for Keras's legacy layout, which keras_model.load_weights reads"
        )
    if path.suffix not in (".npz", ".h5", ".hdf5"):
        raise ValueError(
            "UNet.save_weights: the file name must end in .npz (numpy_unet's weights and "
            f"configuration) or .h5 (Keras's legacy HDF5 layout), got {str(path)!r}"
        )
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"UNet.save_weights: {path} exists; pass overwrite=True to replace it"
        )
    if path.suffix != ".npz":
        return str(keras_files.write_legacy_h5(model, path))
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


CONFIG_KEYS = {
    "input_shape", "filters", "depth", "dropout", "padding", "upsampling", "num_classes",
    "head_conv", "dtype", "seed", "name",
}  # fmt: skip


def read_weights(path: str | os.PathLike, where: str) -> tuple[dict | None, list[np.ndarray]]:
    """(config or None, the weight arrays in order) of a weights file, or one-line errors.

    Reads everything before anything is built: a damaged, truncated or foreign file, or a
    configuration that is not a UNet's, is a ValueError naming the file and what is wrong.
    So is an ``.npz`` whose arrays declare, in their ``.npy`` headers, more bytes than
    :func:`..budgets.weights_budget`: refused before any array is read.
    The config is None for a config-less ``.npz`` (a Keras export); for a Keras file it is
    the one its shapes describe (:func:`.keras_files.infer_config`).
    """
    path = Path(path)
    require_file(path, where, "weights file")
    if keras_files.is_keras_file(path):
        return keras_files.read_keras_file(path, where)
    try:
        with open(path, "rb") as f:
            if f.read(6) == np.lib.format.MAGIC_PREFIX:
                raise ValueError("it holds a single array (.npy), not a set of named weights")
        keras_files.check_weight_bytes(npz_contents(path))
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            config = _config_of(data, path, where) if "config" in keys else None
            arrays = [data[k] for k in _weight_keys(keys)]
    except keras_files.BudgetError as err:
        raise ValueError(f"{where}: {path}: {err}") from None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "pickled" in reason:  # what np.load says of any file that is not .npy or .npz
            reason = "it is neither an .npz archive nor an .npy array"
        raise ValueError(f"{where}: {path} is not a readable weights file: {reason}") from None
    if config is not None:
        check_config(config, path, where)
    return config, arrays


def records_config(path: str | os.PathLike) -> bool:
    """Whether an ``.npz`` weights file holds its configuration (``save_weights`` writes
    one; an ``np.savez`` export of ``get_weights()`` does not). Reads no array."""
    with np.load(path, allow_pickle=False) as data:
        return "config" in data.files


def _config_of(data: object, path: Path, where: str) -> object:
    """The JSON configuration stored in a weights ``.npz``, or a one-line error."""
    try:
        return json.loads(str(data["config"]))
    except ValueError as err:
        raise ValueError(f"its stored configuration is not valid JSON ({err})") from None


def read_model(path: str | os.PathLike, where: str) -> tuple[dict, list[np.ndarray]]:
    """(config, arrays) of any weights file; a config-less export of ``get_weights()`` gets
    the configuration of the seed-style UNet its shapes describe."""
    config, arrays = read_weights(path, where)
    if config is None:
        if Path(path).name == "checkpoint.npz":
            raise ValueError(
                f"{where}: {path} is a training checkpoint, not a weights file; use the "
                "best_weights.npz beside it"
            )
        config = keras_files.config_from_weights(arrays, path, where)
    return config, arrays


def check_config(config: object, path: Path, where: str) -> None:
    """A saved configuration must be a UNet's: the known keys, a 3-long input_shape."""
    if not isinstance(config, dict):
        raise ValueError(f"{where}: {path}: its configuration is not a dict")
    unknown, missing = sorted(set(config) - CONFIG_KEYS), sorted(CONFIG_KEYS - set(config))
    if unknown or missing:
        raise ValueError(
            f"{where}: {path}: its configuration is not a UNet's (unknown keys {unknown}, "
            f"missing keys {missing})"
        )
    shape = config["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) for v in shape)):
        raise ValueError(f"{where}: {path}: input_shape must be (H, W, C), got {shape!r}")


def load_weights(model: object, path: str | os.PathLike) -> None:
    """Load weights saved by ``save_weights``, a Keras file or export; all or nothing."""
    saved, weights = read_weights(path, "UNet.load_weights")
    if saved is not None:
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
    try:
        set_weights(model, weights)
    except ValueError as err:  # a config-less file of another network: name the file
        reason = str(err).removeprefix("UNet.set_weights: ")
        raise ValueError(f"UNet.load_weights: {path}: {reason}") from None
