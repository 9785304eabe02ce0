"""Keras's weight files: the seed's Keras UNet (4 filters) read in its three layouts, and written.

The fixtures in ``data/keras-seed-unet-f4/`` were written by Keras 3.15 (see their README):
``w00`` ... ``w47`` are ``model.get_weights()``, ``y`` is Keras's ``predict(x)``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from numpy_unet import UNet, load_model
from numpy_unet.model import keras_files
from numpy_unet.model.unet import expected_shapes

h5py = pytest.importorskip("h5py")

DATA = Path(__file__).parent / "data" / "keras-seed-unet-f4"
FILES = ["seed_unet_f4.h5", "seed_unet_f4.weights.h5", "seed_unet_f4.keras"]


@pytest.fixture(scope="module")
def keras_run() -> dict[str, np.ndarray]:
    with np.load(DATA / "seed_unet_f4_expected.npz") as data:
        return {k: data[k] for k in data}


def keras_weights(keras_run: dict) -> list[np.ndarray]:
    return [keras_run[f"w{k:02d}"] for k in range(48)]


def assert_is_the_keras_model(model: UNet, keras_run: dict) -> float:
    """Same arrays as Keras's get_weights(), same predictions as Keras's predict (to 1e-5)."""
    for k, (mine, theirs) in enumerate(zip(model.get_weights(), keras_weights(keras_run))):
        np.testing.assert_array_equal(mine, theirs, err_msg=f"w{k:02d}")
    diff = float(np.abs(model.predict(keras_run["x"]) - keras_run["y"]).max())
    assert diff < 1e-5, f"max |ours - Keras| = {diff}"
    return diff  # 4.8e-7 for each of the three files


def load(how: str, path: Path) -> UNet:
    if how == "load_model":
        return load_model(path)
    if how == "from_keras":
        return UNet.from_keras(path)
    if how == "load_weights":
        model = UNet((64, 64, 1), filters=4, seed=0)
        model.load_weights(path)
        return model
    return UNet((64, 64, 1), filters=4, pretrained_weights=path)


# -- reading -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("how", ["load_model", "from_keras", "load_weights", "pretrained_weights"])
def test_each_keras_file_loads_and_predicts_as_keras(keras_run, name, how):
    assert_is_the_keras_model(load(how, DATA / name), keras_run)


@pytest.mark.parametrize("name", FILES)
def test_the_configuration_is_inferred_from_the_shapes(name):
    config = load_model(DATA / name).get_config()
    seed = dict(filters=4, depth=4, num_classes=1, head_conv=True, dropout=0.5)
    assert {k: config[k] for k in seed} == seed
    assert (config["padding"], config["upsampling"], config["dtype"]) == (
        "same",
        "upsample",
        "float32",
    )
    # .h5 (model.save) and .keras record the input; a .weights.h5 does not: the seed's 256
    recorded = name != "seed_unet_f4.weights.h5"
    assert config["input_shape"] == ((64, 64, 1) if recorded else (256, 256, 1))


def test_a_config_less_export_of_get_weights_loads_with_load_model(tmp_path, keras_run):
    np.savez(tmp_path / "export.npz", *keras_weights(keras_run))  # arr_0 ... arr_47
    model = load_model(tmp_path / "export.npz")
    assert model.get_config()["input_shape"] == (256, 256, 1)  # the seed's default
    assert_is_the_keras_model(model, keras_run)


@pytest.mark.parametrize("depth", [1, 2, 5])
@pytest.mark.parametrize(("filters", "channels", "classes"), [(1, 1, 1), (3, 2, 3), (2, 3, 2)])
@pytest.mark.parametrize("head_conv", [True, False])
def test_the_shapes_written_out_are_the_unets(depth, filters, channels, classes, head_conv):
    config = UNet((32, 32, channels), filters=filters, depth=depth).get_config()
    config |= dict(num_classes=classes, head_conv=head_conv)
    shapes = keras_files.seed_shapes(channels, filters, depth, classes, head_conv)
    assert shapes == expected_shapes(config)
    assert keras_files.infer_config(shapes)["depth"] == depth


def test_the_weights_h5_order_is_keras_numbering_not_alphabetical():
    with h5py.File(DATA / "seed_unet_f4.weights.h5") as f:
        assert list(f["layers"])[4:7] == ["conv2d", "conv2d_1", "conv2d_10"]  # HDF5's order
        names, _ = keras_files.keras3_datasets(f, None)
    assert names[:4] == [f"layers/conv2d{s}/vars/{k}" for s in ("", "_1") for k in (0, 1)]
    assert names[20] == "layers/conv2d_10/vars/0"


def test_keras_names_are_given_by_position_and_kind():
    kinds = ["InputLayer", "Conv2D", "Conv2D", "MaxPooling2D", "Conv2DTranspose", "UpSampling2D"]
    assert keras_files.keras_names(kinds) == [
        "input_layer",
        "conv2d",
        "conv2d_1",
        "max_pooling2d",
        "conv2d_transpose",
        "up_sampling2d",
    ]


def keras2_copy(source: Path, target: Path, root: bool = False) -> Path:
    """The seed's own file as Keras 2 wrote it: input_1, conv2d_1, ... with weight names
    'conv2d_1/kernel:0' and fixed-length byte-string attributes (h5py 2); ``root``: Keras 2's
    save_weights, the layers at the root of the file and no model_config."""

    def keras2(name: str) -> str:  # Keras 2 numbered from 1: conv2d -> conv2d_1
        base, number = re.fullmatch(r"(.*?)(?:_(\d+))?", name).groups()
        return f"{'input' if base == 'input_layer' else base}_{int(number or 0) + 1}"

    with h5py.File(source) as src, h5py.File(target, "w") as dst:
        weights = src["model_weights"]
        out = dst if root else dst.create_group("model_weights")
        names = [str(n) for n in weights.attrs["layer_names"]]
        out.attrs["layer_names"] = np.array([keras2(n).encode() for n in names])  # 'S' dtype
        out.attrs["backend"] = b"tensorflow"
        out.attrs["keras_version"] = b"2.2.4"
        for name in names:
            group = out.create_group(keras2(name))
            old = [str(w) for w in weights[name].attrs["weight_names"]]
            new = [f"{keras2(name)}/{w.split('/')[-1]}:0" for w in old]
            group.attrs["weight_names"] = np.array([w.encode() for w in new])
            for a, b in zip(old, new):
                group[b] = weights[name][a][()]
        if not root:
            config = json.loads(src.attrs["model_config"])
            for layer in config["config"]["layers"]:
                if layer["class_name"] == "InputLayer":  # Keras 2's key
                    layer["config"]["batch_input_shape"] = layer["config"].pop("batch_shape")
            dst.attrs["model_config"] = json.dumps(config).encode()
    return target


@pytest.mark.parametrize("root", [False, True], ids=["model.save", "save_weights"])
def test_keras_2_names_with_colon_zero_still_load(tmp_path, keras_run, root):
    path = keras2_copy(DATA / "seed_unet_f4.h5", tmp_path / "unet_membrane.hdf5", root)
    with h5py.File(path) as f:
        group = f if root else f["model_weights"]
        assert list(group["conv2d_1"].attrs["weight_names"]) == [
            b"conv2d_1/kernel:0",
            b"conv2d_1/bias:0",
        ]
    model = UNet.from_keras(path)
    assert model.get_config()["input_shape"] == ((256, 256, 1) if root else (64, 64, 1))
    assert_is_the_keras_model(model, keras_run)


# -- writing -----------------------------------------------------------------------------------
def layout(group, who=("backend", "keras_version")) -> list:
    """Every attribute (name, value, HDF5 type, shape) and every object (path, kind, shape,
    dtype) of an HDF5 group, in HDF5's order; the values of ``who`` are left out."""

    def attributes(obj) -> list:
        return [
            (k, None if k in who else np.asarray(obj.attrs[k]).tolist(),
             obj.attrs.get_id(k).dtype.str, obj.attrs.get_id(k).shape)
            for k in obj.attrs
        ]  # fmt: skip

    found = [("/", attributes(group))]

    def visit(name: str, obj) -> None:
        kind, shape = type(obj).__name__, getattr(obj, "shape", None)
        found.append((name, kind, shape, str(getattr(obj, "dtype", "")), attributes(obj)))

    group.visititems(visit)
    return found


def test_a_written_h5_has_the_layout_keras_writes(tmp_path, keras_run):
    model = UNet((64, 64, 1), filters=4, seed=0)
    model.set_weights(keras_weights(keras_run))
    path = model.save_weights(tmp_path / "ours.h5")
    with h5py.File(path) as ours, h5py.File(DATA / "seed_unet_f4.h5") as keras:
        theirs = keras["model_weights"]  # what model.save() and save_weights() share
        # layer_names, weight_names, the datasets' paths, shapes and dtypes, and the types of
        # all attributes are Keras's. Different by design: the values of backend ('numpy', not
        # 'torch') and keras_version ('numpy-unet', not '3.15.1') say who wrote the file;
        # Keras reads them and converts nothing for them (only for Theano or Keras 1 files).
        # One attribute more: numpy_unet_config, the UNet's own configuration, which Keras
        # ignores and this package reads back (a file it wrote needs no architecture check).
        assert (ours.attrs["backend"], ours.attrs["keras_version"]) == ("numpy", "numpy-unet")
        assert json.loads(ours.attrs["numpy_unet_config"]) == json.loads(
            json.dumps(model.get_config())
        )
        mine = layout(ours)
        mine[0] = ("/", [a for a in mine[0][1] if a[0] != "numpy_unet_config"])
        assert mine == layout(theirs)
        for name in theirs.attrs["layer_names"]:
            for weight in theirs[name].attrs["weight_names"]:
                np.testing.assert_array_equal(ours[name][weight][()], theirs[name][weight][()])
    assert_is_the_keras_model(load_model(path), keras_run)
    again = UNet((64, 64, 1), filters=4, seed=1)
    again.load_weights(path)
    assert_is_the_keras_model(again, keras_run)


def test_save_weights_refuses_to_overwrite_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    path = model.save_weights(tmp_path / "w.h5")
    before = Path(path).read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save_weights(path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(h5py.Group, "create_dataset", full_disk)
    with pytest.raises(OSError, match="No space left"):
        model.save_weights(path, overwrite=True)
    assert Path(path).read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.h5"]  # and no temporary is left
    monkeypatch.undo()
    UNet((16, 16, 1), filters=2, depth=2, seed=1).save_weights(path, overwrite=True)
    assert Path(path).read_bytes() != before


def test_save_weights_names_the_formats_it_writes(tmp_path):
    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    with pytest.raises(ValueError, match=r"end in \.npz .* or \.h5 "):
        model.save_weights(tmp_path / "w.txt")
    with pytest.raises(ValueError, match=r"\.weights\.h5 layout is not written here"):
        model.save_weights(tmp_path / "w.weights.h5")
    assert list(tmp_path.iterdir()) == []


# -- errors: one line naming the file, the model unchanged ----------------------------------
def another_network(tmp_path: Path, drop=("conv2d_22",)) -> Path:
    """The seed's file with some conv layers dropped (conv2d_22: the head conv)."""
    path = tmp_path / ("another.h5" if drop == ("conv2d_22",) else "odd.h5")
    path.write_bytes((DATA / "seed_unet_f4.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        group = f["model_weights"]
        names = [str(n) for n in group.attrs["layer_names"] if str(n) not in drop]
        group.attrs["layer_names"] = [n.encode() for n in names]
        for name in drop:
            del group[name]
    return path


def keras_archive(tmp_path: Path, name: str, drop=(), activation=None) -> Path:
    """The seed's .keras with some members dropped or its output activation changed."""
    path = tmp_path / name
    with zipfile.ZipFile(DATA / "seed_unet_f4.keras") as src, zipfile.ZipFile(path, "w") as dst:
        for member in src.namelist():
            data = src.read(member)
            if member == "config.json" and activation:
                config = json.loads(data)
                config["config"]["layers"][-1]["config"]["activation"] = activation
                data = json.dumps(config).encode()
            if member not in drop:
                dst.writestr(member, data)
    return path


def damaged(tmp_path: Path, name: str, change) -> Path:
    data = bytearray((DATA / "seed_unet_f4.h5").read_bytes())
    (tmp_path / name).write_bytes(bytes(change(data)))
    return tmp_path / name


def flip_superblock(data: bytearray) -> bytearray:
    for k in range(8, 48):  # after the signature: versions, sizes, addresses
        data[k] ^= 0xFF
    return data


BAD_FILES = {
    "truncated.h5": (lambda t: damaged(t, "truncated.h5", lambda d: d[: len(d) // 2]), "truncated"),
    "flipped.h5": (lambda t: damaged(t, "flipped.h5", flip_superblock), "not a readable"),
    "empty.h5": (lambda t: damaged(t, "empty.h5", lambda d: b""), "not a readable"),
    "text.h5": (lambda t: damaged(t, "text.h5", lambda d: b"no weights here\n"), "not a readable"),
    "another.h5": (  # 23 convs: a UNet without head conv, but then the last conv has 4 inputs
        another_network,
        "is not a seed-style UNet: conv2d_23/kernel has shape (1, 1, 2, 1) where a UNet of "
        "filters 4, depth 4 and 1 class(es) has (1, 1, 4, 1)",
    ),
    "odd.h5": (lambda t: another_network(t, drop=("conv2d_22", "conv2d_23")), "44 arrays"),
    "no_weights.keras": (
        lambda t: keras_archive(t, "no_weights.keras", drop=("model.weights.h5",)),
        "holds no model.weights.h5",
    ),
    "linear.keras": (
        lambda t: keras_archive(t, "linear.keras", activation="linear"),
        "has activation 'linear' where the seed's UNet has 'sigmoid'",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_damaged_or_foreign_keras_file_is_one_line_and_the_model_unchanged(tmp_path, name):
    make, message = BAD_FILES[name]
    path = make(tmp_path)
    model = UNet((64, 64, 1), filters=4, seed=5)
    before = model.get_weights()
    for load_it in (model.load_weights, load_model, UNet.from_keras):
        with pytest.raises(ValueError) as err:
            load_it(path)
        text = str(err.value)
        assert name in text and message in text and "\n" not in text, text
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_a_keras_file_of_another_size_is_refused_by_load_weights():
    model = UNet((64, 64, 1), filters=8, seed=5)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"filters: file 4, model 8\); the model is unchanged"):
        model.load_weights(DATA / "seed_unet_f4.weights.h5")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_without_h5py_keras_files_say_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # any import of h5py now fails
    model = UNet((64, 64, 1), filters=4, seed=5)
    before = model.get_weights()
    for name in FILES:
        with pytest.raises(ImportError) as err:
            model.load_weights(DATA / name)
        text = str(err.value)
        assert name in text and 'pip install "numpy-unet[keras]"' in text and "\n" not in text
    with pytest.raises(ImportError, match=r"w\.h5: Keras files need h5py"):
        model.save_weights(tmp_path / "w.h5")
    assert list(tmp_path.iterdir()) == []
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    model.save_weights(tmp_path / "w.npz")  # .npz needs no h5py
    load_model(tmp_path / "w.npz")


def test_the_package_imports_and_saves_npz_without_h5py(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['h5py'] = None  # any import of h5py now fails\n"
        "from numpy_unet import UNet, load_model\n"
        "model = UNet((16, 16, 1), filters=2, depth=2, seed=0)\n"
        f"load_model(model.save_weights({str(tmp_path / 'w.npz')!r}))\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


# -- a Keras file of another network ---------------------------------------------------------
OTHER = Path(__file__).parent / "data" / "keras-other-networks"  # see its script's docstring


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize(
    ("network", "message"),
    [
        (
            "bilinear",
            r"layer up_sampling2d\w* \(UpSampling2D\) has interpolation 'bilinear', "
            r"where this UNet has 'nearest'",
        ),
        (
            "swapped",
            r"layer concatenate\w* \(Concatenate\) takes \(conv2d_\d+, dropout\w*\), "
            r"where this UNet's takes \(dropout\w*, conv2d_\d+\)",
        ),
        ("average", r"layer average_pooling2d is an AveragePooling2D"),
        ("elu", r"layer conv2d_\d+ has activation 'elu' where the seed's UNet has 'relu'"),
    ],
)
def test_a_keras_file_of_another_network_is_refused_naming_the_layer(network, message, suffix):
    with pytest.raises(ValueError, match=message):
        UNet.from_keras(OTHER / f"{network}{suffix}")


def test_a_weights_only_file_warns_unless_a_config_verifies_it(tmp_path):
    with pytest.warns(UserWarning, match="its architecture .* cannot be verified"):
        UNet.from_keras(OTHER / "bilinear.weights.h5")  # silently the wrong network, said
    with pytest.raises(ValueError, match=r"\(the config given\): its layer up_sampling2d"):
        UNet.from_keras(OTHER / "bilinear.weights.h5", config=OTHER / "bilinear.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verified: no warning
        model = UNet.from_keras(OTHER / "seed.weights.h5", config=OTHER / "seed.json")
        text = (OTHER / "seed.json").read_text()
        assert UNet.from_keras(OTHER / "seed.weights.h5", config=text).get_config() == (
            model.get_config()
        )
        again = load_model(model.save_weights(tmp_path / "ours.h5"))  # our own .h5: known
        for a, b in zip(model.get_weights(), again.get_weights()):
            np.testing.assert_array_equal(a, b)
        for name in ("seed_unet_f4.keras", "seed_unet_f4.h5"):  # a config, and it agrees
            UNet.from_keras(DATA / name)
    with pytest.raises(FileNotFoundError, match="no config file"):
        UNet.from_keras(OTHER / "seed.weights.h5", config=tmp_path / "none.json")
