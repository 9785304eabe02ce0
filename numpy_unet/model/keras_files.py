"""Keras's weight files, read and written with h5py: the seed's ``unet_membrane.hdf5`` and kin.

Three layouts hold the weights of a Keras model:

- legacy HDF5, what Keras 2's ``ModelCheckpoint`` wrote for the seed (``model.save("x.h5")``):
  ``model_weights/<layer>/<layer>/kernel``. The attribute ``layer_names`` lists the layers in
  model order and each layer's ``weight_names`` its arrays (``conv2d_1/kernel:0`` in Keras 2).
  Keras 2's ``save_weights("x.h5")`` puts the same layout at the root of the file;
- Keras 3's ``.weights.h5``: ``layers/<kind>/vars/0`` (kernel), ``vars/1`` (bias), no order;
- Keras 3's ``.keras``: a zip of ``config.json`` (the layers in model order) and
  ``model.weights.h5`` (the ``.weights.h5`` layout).

The order of a ``.weights.h5``. HDF5 lists groups alphabetically (conv2d, conv2d_1, conv2d_10,
...), but the group names are positions, not the layers' own names: Keras calls the k-th
Conv2D of ``model.layers`` ``conv2d_k`` (the first plain ``conv2d``) whatever the layer is
called, and loads a file the same way (``keras/src/saving/saving_lib.py``,
``_save_container_state``). So the number orders the layers of one kind exactly; the seed's
UNet has weights in Conv2D layers only. To interleave several kinds (Conv2DTranspose and
Conv2D, say) the order of ``model.layers`` is needed: a ``.keras`` file's ``config.json`` gives
it, and with it the names are rebuilt as Keras builds them (:func:`keras_names`).

Reading gives the arrays in ``model.get_weights()`` order (kernel then bias, conv after conv)
and the configuration of the seed-style UNet their shapes describe (:func:`infer_config`).
Shapes alone do not pin the network down: bilinear up-sampling, average pooling, another
activation or a skip concatenated the other way round change the numbers but no shape. So a
file that records its model (a ``.keras`` config.json, a legacy ``.h5``'s ``model_config``)
is compared with the UNet built, layer by layer (:func:`verify_layers`); a weights-only file
cannot be, and says so.
Writing produces the legacy layout, which Keras 2 and Keras 3 both load with
``model.load_weights("x.h5")``, by layer order, whatever the layers are called.
h5py is an optional extra (``pip install "numpy-unet[keras]"``), imported when first needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..budgets import (  # noqa: F401 (MAX_PARAMS, memory_limit: read here by users)
    MAX_PARAMS,
    BudgetError,
    check_weight_bytes,
    memory_limit,
    weights_budget,
)
from ..files import naming, temporary

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_CONFIG_BYTES = 4 * 2**20  # a .keras's config.json: the seed's UNet's takes 37 kB
HDF5_OVERHEAD = 2**24  # a model.weights.h5's own structures beside its arrays: 16 MiB
DEFAULT_SIZE = 256  # the seed's input_size (256, 256, 1), for files that record no input shape
# the seed's layers: convs with weights, and these without
WEIGHTLESS = {"InputLayer", "MaxPooling2D", "Dropout", "UpSampling2D", "Concatenate"}
# what the written file says of its origin; Keras reads both attributes and uses neither
# beyond converting kernels written by Theano (backend) or by Keras 1 (keras_version '1')
BACKEND, WRITTEN_BY = "numpy", "numpy-unet"
OWN_CONFIG = "numpy_unet_config"


class NotUNetError(ValueError):
    """The file is readable but its weights are not those of a seed-style UNet."""


def h5py_or_error(path: Path, where: str):
    """The h5py module, or an ImportError that says how to install it."""
    try:
        import h5py
    except ImportError:
        raise ImportError(
            f'{where}: {path}: Keras files need h5py: pip install "numpy-unet[keras]"'
        ) from None
    return h5py


def is_hdf5(path: Path) -> bool:
    """An HDF5 file by its name or by its first eight bytes."""
    if path.suffix in (".h5", ".hdf5"):
        return True
    with open(path, "rb") as f:
        return f.read(8) == HDF5_SIGNATURE


def is_keras_file(path: Path) -> bool:
    """HDF5, or a ``.keras`` zip (by its name or the config.json it holds)."""
    if path.suffix == ".keras" or is_hdf5(path):
        return True
    if path.suffix != ".npz" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return "config.json" in z.namelist()
    return False


# -- reading ---------------------------------------------------------------------------------
def read_keras_file(path: str | os.PathLike, where: str) -> tuple[dict, list[np.ndarray]]:
    """(configuration, weight arrays in ``get_weights()`` order) of a Keras file.

    Shapes are checked before any array is read, so a small file declaring a huge network is
    refused at once, and so is one whose arrays declare more bytes than
    :func:`weights_budget`. Every error is one line naming the file: a ValueError for a
    damaged, foreign or oversized file, an ImportError without h5py.
    """
    path = Path(path)
    h5py = h5py_or_error(path, where)
    try:
        with open_weights(path, h5py) as (f, layers):
            legacy = "layer_names" in f.attrs or "model_weights" in f
            names, datasets = legacy_datasets(f) if legacy else keras3_datasets(f, layers)
            for name, d in zip(names, datasets):
                if not np.issubdtype(d.dtype, np.floating):
                    raise ValueError(f"{name} holds {d.dtype}, not floats")
            float64 = all(d.dtype == np.float64 for d in datasets)
            shapes = [d.shape for d in datasets]
            config = infer_config(shapes, names, layers, "float64" if float64 else "float32")
            check_weight_bytes([(n, d.shape, d.dtype) for n, d in zip(names, datasets)])
            arrays = [np.asarray(d[()]) for d in datasets]
    except BudgetError as err:
        raise ValueError(f"{where}: {path}: {err}") from None
    except NotUNetError as err:
        raise ValueError(f"{where}: {path} is not a seed-style UNet: {err}") from None
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as err:
        reason = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        reason = str(reason).splitlines()[0] if str(reason) else type(err).__name__
        raise ValueError(f"{where}: {path} is not a readable weights file: {reason}") from None
    return config, arrays


@contextlib.contextmanager
def open_weights(path: Path, h5py) -> Iterator[tuple[object, list[dict] | None]]:
    """The open HDF5 file holding the weights, and the model's layers if it records them.

    A ``.keras`` zip's members are checked against their budgets in the zip directory before
    any is inflated; its model.weights.h5 is inflated a MiB at a time into a temporary file
    (h5py reads at random places, which a zip member serves only by inflating it again from
    its start), never whole into memory.
    """
    if is_hdf5(path):
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")  # model.save() records it, save_weights() not
            yield f, None if config is None else config_layers(json.loads(config))
        return
    with zipfile.ZipFile(path) as z, tempfile.TemporaryFile() as weights:
        files = z.namelist()
        if "model.weights.h5" not in files:
            raise ValueError(f"the archive holds no model.weights.h5 (it holds {files})")
        config = zip_config(z)
        inflate_weights(z, weights)
        with h5py.File(weights, "r") as f:
            yield f, None if config is None else config_layers(config)


def zip_config(z: zipfile.ZipFile) -> object | None:
    """The parsed config.json of a ``.keras`` zip (None if it has none), refused unread if
    the zip directory says it inflates to more than MAX_CONFIG_BYTES."""
    if "config.json" not in z.namelist():
        return None
    size = z.getinfo("config.json").file_size
    if size > MAX_CONFIG_BYTES:
        raise BudgetError(
            f"its config.json inflates to {size:,} bytes, more than the {MAX_CONFIG_BYTES:,} "
            "bytes a model config may take; nothing was inflated"
        )
    return json.loads(z.read("config.json"))


def inflate_weights(z: zipfile.ZipFile, out) -> None:
    """Copy a ``.keras`` zip's model.weights.h5 into the open binary file ``out``, a MiB at a
    time. A compressed member is first checked in the zip directory against the weights
    budget (plus HDF5_OVERHEAD), and zipfile stops at that declared size; a stored one, as
    Keras writes it, cannot inflate: it is its own size on disk. A member that does not start
    as an HDF5 file does is refused after its first 8 bytes."""
    info = z.getinfo("model.weights.h5")
    budget, why = weights_budget()
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > budget + HDF5_OVERHEAD:
        raise BudgetError(
            f"its model.weights.h5 inflates to {info.file_size:,} bytes, more than the budget "
            f"of {budget:,} bytes of weights ({why}) and 16 MiB of HDF5 structures; nothing was "
            "inflated. Keras stores this member uncompressed, which is read whatever its size: "
            "if the file is genuine, zip it again without compression"
        )
    with z.open(info) as member:
        head = member.read(len(HDF5_SIGNATURE))
        if head != HDF5_SIGNATURE:
            raise ValueError(f"its model.weights.h5 is not an HDF5 file (it starts {head!r})")
        out.write(head)
        shutil.copyfileobj(member, out, 2**20)
    out.seek(0)


def legacy_datasets(f) -> tuple[list[str], list]:
    """The arrays of the legacy layout, in the order of ``layer_names`` and ``weight_names``."""
    if "layer_names" not in f.attrs and "model_weights" in f:
        f = f["model_weights"]  # model.save(); save_weights() writes the same at the root
    names, datasets = [], []
    for layer in strings(f, "layer_names"):
        group = f[layer]
        for name in strings(group, "weight_names"):
            names.append(name)
            datasets.append(dataset(group, name))
    return names, datasets


def keras3_datasets(f, layers: list[dict] | None) -> tuple[list[str], list]:
    """The arrays of the ``.weights.h5`` layout, in model order (see the module's notes)."""
    if "layers" not in f:
        raise ValueError(
            "it is an HDF5 file but not Keras's: it has neither the attribute layer_names "
            "(legacy .h5) nor a layers/ group (.weights.h5)"
        )
    groups = subgroup(f, "layers")
    weighted = [n for n in groups if "vars" in groups[n] and len(subgroup(groups[n], "vars"))]
    if layers is not None:  # the .keras config: Keras's own names, in model order
        order = keras_names([layer["class_name"] for layer in layers])
        stray = [name for name in weighted if name not in order]
        if stray:
            raise ValueError(f"layers/{stray[0]} is not one of the layers its config lists")
        weighted = [name for name in order if name in weighted]
    else:  # by the number Keras gives the k-th layer of each kind
        kinds = sorted({re.sub(r"_\d+$", "", name) for name in weighted})
        if len(kinds) > 1:
            raise ValueError(
                f"it holds weights of several kinds of layer ({', '.join(kinds)}), whose "
                "order only the model's config tells: load the .keras file instead"
            )
        weighted.sort(key=lambda name: int(m[1]) if (m := re.search(r"_(\d+)$", name)) else 0)
    names, datasets = [], []
    for name in weighted:
        variables = subgroup(groups[name], "vars")
        for k in sorted(variables, key=int):  # 0: kernel, 1: bias
            names.append(f"layers/{name}/vars/{k}")
            datasets.append(dataset(variables, k))
    return names, datasets


def dataset(group, name: str):
    """``group[name]``, which must be an array (an h5py Dataset, read later)."""
    item = group[name]
    if not hasattr(item, "shape"):
        raise ValueError(f"{item.name} is a group, not an array")
    return item


def subgroup(group, name: str):
    """``group[name]``, which must be a group."""
    item = group[name]
    if not hasattr(item, "keys"):
        raise ValueError(f"{item.name} is an array, not a group")
    return item


def strings(group, name: str) -> list[str]:
    """A list-of-names attribute, as Keras writes it: bytes or str, maybe split in chunks
    ``name0``, ``name1``, ... when longer than the 64 kB an HDF5 attribute may hold."""
    if name in group.attrs:
        values = list(np.atleast_1d(group.attrs[name]))
    elif f"{name}0" in group.attrs:
        values, k = [], 0
        while f"{name}{k}" in group.attrs:
            values += list(np.atleast_1d(group.attrs[f"{name}{k}"]))
            k += 1
    else:
        raise ValueError(f"{group.name} has no attribute {name!r}: not a Keras weights file")
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def config_layers(config: object) -> list[dict]:
    """The layers of a Keras model config (Keras 2 or 3, functional or sequential)."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else inner
    if not isinstance(layers, list) or not all(
        isinstance(layer, dict) and isinstance(layer.get("class_name"), str) for layer in layers
    ):
        raise ValueError("its model config lists no layers")
    return layers


def keras_names(class_names: list[str]) -> list[str]:
    """The names Keras gives layers by position: conv2d, conv2d_1, ..., max_pooling2d, ..."""
    names, used = [], {}
    for class_name in class_names:
        name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)  # Keras's to_snake_case
        name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
        names.append(f"{name}_{used[name]}" if used.get(name) else name)
        used[name] = used.get(name, 0) + 1
    return names


# -- what the weights describe ---------------------------------------------------------------
def seed_shapes(
    channels: int, filters: int, depth: int, num_classes: int, head_conv: bool
) -> list[tuple[int, ...]]:
    """The weight shapes of the seed's UNet, in ``get_weights()`` order (tested equal to
    :func:`numpy_unet.model.unet.expected_shapes`)."""
    f = [filters * 2**level for level in range(depth + 1)]  # 64, 128, ..., 1024
    shapes: list[tuple[int, ...]] = []

    def conv(k: int, cin: int, cout: int) -> None:
        shapes.extend([(k, k, cin, cout), (cout,)])

    cin = channels
    for level in range(depth + 1):  # down the U, then its bottom: two 3x3 convs a level
        conv(3, cin, f[level])
        conv(3, f[level], f[level])
        cin = f[level]
    for level in reversed(range(depth)):  # up: a 2x2 conv halves the channels, the skip
        conv(2, f[level + 1], f[level])  # doubles them again, two 3x3 convs
        conv(3, 2 * f[level], f[level])
        conv(3, f[level], f[level])
    if head_conv:
        conv(3, f[0], 2)  # the seed's Conv2D(2, 3, relu)
    conv(1, 2 if head_conv else f[0], num_classes)
    return shapes


def infer_config(
    shapes: list[tuple],
    names: list[str] | None = None,
    layers: list[dict] | None = None,
    dtype: str = "float32",
) -> dict:
    """The ``UNet(**config)`` whose weights have these shapes; NotUNetError if there is none.

    The seed's UNet has 5 * depth + 4 convs (5 * depth + 3 without its head conv): the first
    kernel (3, 3, C, filters) gives the input channels and the filters, the last (1, 1, 2,
    classes) the classes. Padding 'same', UpSampling2D and dropout 0.5 are the seed's; the
    model's layers, when the file records them, must agree, and give the input shape and the
    dropout rate. Without a recorded input shape it is (256, 256, C), the seed's default.
    """
    names = names or [f"array {k}" for k in range(len(shapes))]
    for k, shape in enumerate(shapes):
        if len(shape) != (4 if k % 2 == 0 else 1):
            wanted = "a conv kernel (kh, kw, cin, cout)" if k % 2 == 0 else "a bias (cout,)"
            raise NotUNetError(f"{names[k]} has shape {shape}, where {wanted} belongs")
    convs = len(shapes) // 2
    head_conv = (convs - 4) % 5 == 0
    depth = (convs - 4) // 5 if head_conv else (convs - 3) // 5
    if len(shapes) % 2 or depth < 1 or ((convs - 3) % 5 and not head_conv):
        raise NotUNetError(
            f"{len(shapes)} arrays, where a seed-style UNet of depth d has 10d + 8 (10d + 6 "
            "without its head conv): 48 for depth 4"
        )
    channels, filters, classes = shapes[0][2], shapes[0][3], shapes[-2][3]
    expected = seed_shapes(channels, filters, depth, classes, head_conv)
    for k, (found, wanted) in enumerate(zip(shapes, expected)):
        if tuple(found) != wanted:
            raise NotUNetError(
                f"{names[k]} has shape {tuple(found)} where a UNet of filters {filters}, depth "
                f"{depth} and {classes} class(es) has {wanted}"
            )
    if sum(int(np.prod(s)) for s in shapes) > MAX_PARAMS:
        raise NotUNetError(f"more than the {MAX_PARAMS:,} parameters a UNet may have here")
    input_shape, dropout = (None, None, channels), 0.5
    if layers is not None:
        input_shape, dropout = check_seed_layers(layers, classes)
        if input_shape[2] not in (None, channels):
            raise NotUNetError(
                f"its input has {input_shape[2]} channels, its first conv {channels}"
            )
    size = max(DEFAULT_SIZE, 2**depth)  # 256 takes up to 8 poolings
    height, width = (size if v is None else int(v) for v in input_shape[:2])
    return dict(
        input_shape=(height, width, channels),
        filters=filters,
        depth=depth,
        dropout=dropout,
        padding="same",
        upsampling="upsample",
        num_classes=classes,
        head_conv=head_conv,
        dtype=dtype,
        seed=None,
        name="unet",
    )


def check_seed_layers(layers: list[dict], classes: int) -> tuple[tuple, float]:
    """(input shape (H, W, C), dropout rate) of a Keras model's layers, after checking that
    they compute what this UNet computes: NotUNetError naming the first layer that does not."""
    input_shape, rates, convs = None, [], [la for la in layers if la["class_name"] == "Conv2D"]
    for layer in layers:
        kind, c = layer["class_name"], layer.get("config")
        c = c if isinstance(c, dict) else {}
        name = c.get("name", layer.get("name", "?"))
        if kind == "InputLayer":  # Keras 3 says batch_shape, Keras 2 batch_input_shape
            shape = c.get("batch_shape") or c.get("batch_input_shape")
            if not isinstance(shape, list) or len(shape) != 4:
                raise NotUNetError(f"its input layer {name} has shape {shape}, not (N, H, W, C)")
            input_shape = tuple(shape[1:])
        elif kind == "Dropout":
            rates.append(float(c.get("rate", 0.5)))
        elif kind == "Conv2D":
            last = layer is convs[-1]
            wanted = ("sigmoid" if classes == 1 else "softmax") if last else "relu"
            settings = {
                "activation": (c.get("activation"), wanted),
                "padding": (c.get("padding"), c.get("padding") if last else "same"),  # 1x1: any
                "strides": (list(c.get("strides", [1, 1])), [1, 1]),
                "dilation_rate": (list(c.get("dilation_rate", [1, 1])), [1, 1]),
                "use_bias": (c.get("use_bias", True), True),
            }
            for key, (found, seed) in settings.items():
                if found != seed:
                    raise NotUNetError(
                        f"its layer {name} has {key} {found!r} where the seed's UNet has {seed!r}"
                    )
        elif kind not in WEIGHTLESS:
            article = "an" if kind[0] in "AEIOU" else "a"
            raise NotUNetError(
                f"its layer {name} is {article} {kind}, which the seed's UNet has not"
            )
    return input_shape or (None, None, None), rates[0] if rates else 0.0


# -- the file's network against the one built ---------------------------------------------
def keras_layers(path: str | os.PathLike, where: str) -> list[dict] | None:
    """The layers a Keras file's model config lists (``.keras``'s config.json, a legacy
    ``.h5``'s ``model_config``), or None for a file without one (``.weights.h5``, Keras 2's
    ``save_weights``); an empty list for an ``.h5`` this package wrote (it holds this UNet's
    own configuration). Reads no weights."""
    path = Path(path)
    try:
        if not is_hdf5(path):
            with zipfile.ZipFile(path) as z:
                config = zip_config(z)  # refused unread if it inflates to megabytes
                return None if config is None else config_layers(config)
        h5py = h5py_or_error(path, where)
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
            if config is None and OWN_CONFIG in f.attrs:
                return []  # written by this package (write_legacy_h5): nothing to verify
        return None if config is None else config_layers(json.loads(config))
    except BudgetError as err:
        raise ValueError(f"{where}: {path}: {err}") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{where}: {path}: its model config is unreadable: {err}") from None


def layers_of_json(config: object, where: str) -> list[dict]:
    """The layers of a Keras model config given as ``model.to_json()``'s text, a path to a
    file holding it, or the parsed dict."""
    if isinstance(config, (str, os.PathLike)) and not str(config).lstrip().startswith("{"):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: no config file {path}")
        config = path.read_text()
    try:
        parsed = json.loads(config) if isinstance(config, str) else config
        return config_layers(parsed)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: the config is not a Keras model config: {err}") from None


def inbound_names(layer: dict) -> list[str]:
    """The layers feeding ``layer``, in order: Keras 3 records them as ``keras_history`` of
    the tensors in ``inbound_nodes[0]["args"]``, Keras 2 as ``[[name, node, tensor, {}]]``."""
    nodes = layer.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise NotUNetError(f"its layer {layer_name(layer)} is called {len(nodes)} times")
    if not nodes:
        return []
    node = nodes[0]
    if not isinstance(node, dict):  # Keras 2
        return [str(entry[0]) for entry in node]
    found: list[str] = []

    def walk(o: object) -> None:
        if isinstance(o, dict):
            if o.get("class_name") == "__keras_tensor__":
                found.append(str(o["config"]["keras_history"][0]))
                return
            for value in o.values():
                walk(value)
        elif isinstance(o, list):
            for value in o:
                walk(value)

    walk(node.get("args", []))
    walk(node.get("kwargs", {}))
    return found


def layer_name(layer: dict) -> str:
    c = layer.get("config")
    return str((c if isinstance(c, dict) else {}).get("name", layer.get("name", "?")))


# what each kind of layer must say, given the layer of the UNet at its place; absent keys
# take Keras's defaults (Keras 2's configs lack groups and, before 2.2.3, interpolation)
KERAS_DEFAULTS = {
    "groups": 1,
    "interpolation": "nearest",
    "data_format": "channels_last",
    "dilation_rate": [1, 1],
    "strides": [1, 1],
    "noise_shape": None,
    "use_bias": True,
    "activation": "linear",
    "padding": "valid",
    "axis": -1,
}


def expected_settings(layer: object) -> dict:
    """The Keras settings that change the numbers, as this package's ``layer`` has them."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        return {
            "filters": layer.filters,
            "kernel_size": list(layer.kernel_size),
            "strides": [1, 1],
            "padding": layer.padding,
            "dilation_rate": [1, 1],
            "groups": 1,
            "activation": layer.activation_name or "linear",
            "use_bias": True,
            "data_format": "channels_last",
        }
    if kind == "MaxPooling2D":
        return {
            "pool_size": list(layer.pool_size),
            "strides": list(layer.strides),
            "padding": layer.padding,
            "data_format": "channels_last",
        }
    if kind == "UpSampling2D":
        return {
            "size": list(layer.size),
            "interpolation": layer.interpolation,
            "data_format": "channels_last",
        }
    if kind == "Dropout":
        return {"rate": layer.rate, "noise_shape": None}
    if kind == "Concatenate":
        return {"axis": 3}
    return {}


def _normal(key: str, value: object) -> object:
    """A config value in one form: tuples as lists, axis -1 as 3 (4-D tensors), data_format
    None as Keras's default."""
    if isinstance(value, tuple):
        value = list(value)
    if key == "axis" and value == -1:
        return 3
    if key == "data_format" and value is None:
        return "channels_last"
    return value


def verify_layers(layers: list[dict], model: object) -> None:
    """Refuse a Keras model that computes something else than ``model``: NotUNetError naming
    the first layer whose class, settings (activation, interpolation, padding, strides,
    kernel and pool sizes, dropout rate, axis) or inputs differ, with both values."""
    rows = model.rows  # the UNet's layers in Keras's order, the input first, with inputs
    ours = {layer.name: layer for layer in model.layers}
    names = [layer_name(layer) for layer in layers]
    if len(layers) != len(rows):
        kinds = [layer["class_name"] for layer in layers]
        k = next((k for k, (a, b) in enumerate(zip(kinds, rows)) if a != b.kind), None)
        where = "" if k is None else f"; the first that differs is {names[k]}, a {kinds[k]}"
        raise NotUNetError(f"it has {len(layers)} layers where this UNet has {len(rows)}{where}")
    position = {name: k for k, name in enumerate(names)}
    our_position = {row.name: k for k, row in enumerate(rows)}
    for layer, name, row in zip(layers, names, rows):
        kind = layer["class_name"]
        if kind != row.kind:
            raise NotUNetError(
                f"its layer {name} is a {kind}, where this UNet has a {row.kind} ({row.name})"
            )
        config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        settings = expected_settings(ours.get(row.name))
        if settings.get("kernel_size") == [1, 1]:  # a 1x1 conv pads nothing: any padding
            settings.pop("padding")
        for key, wanted in settings.items():
            pooling_strides = kind == "MaxPooling2D" and key == "strides"
            default = config.get("pool_size") if pooling_strides else KERAS_DEFAULTS.get(key)
            found = config.get(key, default)
            found = _normal(key, default if found is None and pooling_strides else found)
            if found != _normal(key, wanted):
                raise NotUNetError(
                    f"its layer {name} ({kind}) has {key} {found!r}, where this UNet has {wanted!r}"
                )
        inputs = inbound_names(layer)
        unknown = [n for n in inputs if n not in position]
        if unknown:
            raise NotUNetError(f"its layer {name} takes {unknown[0]}, which it does not list")
        wanted = [names[our_position[n]] for n in row.inbound]
        if [position[n] for n in inputs] != [our_position[n] for n in row.inbound]:
            raise NotUNetError(
                f"its layer {name} ({kind}) takes ({', '.join(inputs)}), where "
                f"this UNet's takes ({', '.join(wanted)})"
            )


def config_from_weights(arrays: list[np.ndarray], path: object, where: str) -> dict:
    """The configuration of a config-less list of weights, e.g. ``np.savez("w.npz",
    *keras_model.get_weights())``: the seed's UNet its shapes describe, or a one-line error."""
    dtype = "float64" if arrays and all(a.dtype == np.float64 for a in arrays) else "float32"
    try:
        return infer_config([a.shape for a in arrays], dtype=dtype)
    except NotUNetError as err:
        raise ValueError(f"{where}: {path} is not a seed-style UNet: {err}") from None


# -- writing ---------------------------------------------------------------------------------
def write_legacy_h5(model: object, path: Path, where: str = "UNet.save_weights") -> Path:
    """Write what Keras's ``save_weights("x.h5")`` writes, atomically (temporary, rename).

    At the root: ``layer_names`` (every layer in model order, the input layer first, named as
    Keras names them), ``backend`` and ``keras_version``; a group per layer whose
    ``weight_names`` lists ``<layer>/kernel`` and ``<layer>/bias``, the datasets at those
    paths; and an empty ``top_level_model_weights``. Keras loads it by layer order.
    """
    h5py = h5py_or_error(path, where)
    layers = [None, *model.layers]  # None: Keras's InputLayer, which has no weights
    kinds = ["InputLayer", *(type(layer).__name__ for layer in model.layers)]
    names = keras_names(kinds)  # our classes carry Keras's class names
    tmp = temporary(path)
    try:
        with h5py.File(tmp, "w") as f:
            # a list of bytes, as Keras writes it: h5py stores variable-length ASCII strings
            f.attrs["layer_names"] = [name.encode() for name in names]
            f.attrs["backend"] = BACKEND.encode()
            f.attrs["keras_version"] = WRITTEN_BY.encode()
            # the UNet's own configuration: Keras ignores it, this package reads it back to
            # know the file holds this network (a Keras weights file records no network)
            f.attrs[OWN_CONFIG] = json.dumps(model.get_config()).encode()
            for name, layer in zip(names, layers):
                params = {} if layer is None else layer.params  # kernel, then bias
                group = f.create_group(name)
                # an empty list is stored as an empty float64 array, as Keras stores it
                group.attrs["weight_names"] = [f"{name}/{k}".encode() for k in params]
                for k, value in params.items():
                    group.create_dataset(f"{name}/{k}", data=value)
            f.create_group("top_level_model_weights").attrs["weight_names"] = []
        with open(tmp, "rb+") as done:  # on disk before the rename
            os.fsync(done.fileno())
        os.replace(tmp, path)
    except OSError as err:  # a full disk, a read-only folder: leave no half file, say which
        tmp.unlink(missing_ok=True)
        raise naming(err, path) from None
    except BaseException:  # Ctrl-C: leave no half file
        tmp.unlink(missing_ok=True)
        raise
    return path
