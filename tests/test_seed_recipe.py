"""The seed's main.py as one command (`numpy-unet train --recipe seed`) and as fit options."""

from __future__ import annotations

import json

import numpy as np
from matplotlib.image import imsave

from numpy_unet import UNet
from numpy_unet.app.cli import main
from numpy_unet.data import ImageDataGenerator, synthetic_membranes
from numpy_unet.optimizers import Adam
from numpy_unet.train.seed import SEED_DATA_GEN_ARGS, seed_recipe


def test_seed_recipe_is_main_py():
    assert SEED_DATA_GEN_ARGS == dict(
        rotation_range=0.2,
        width_shift_range=0.05,
        height_shift_range=0.05,
        shear_range=0.05,
        zoom_range=0.05,
        horizontal_flip=True,
        fill_mode="nearest",
    )
    model = UNet((32, 32, 1), filters=2, depth=2, seed=0)
    options = seed_recipe(model)
    assert isinstance(model.optimizer, Adam) and model.optimizer.learning_rate == 1e-4
    assert type(model.loss).__name__ == "BinaryCrossentropy"
    assert model.metrics == ["accuracy"]
    assert (options["batch_size"], options["epochs"], options["steps_per_epoch"]) == (2, 1, 300)
    augment = options["augment"]
    assert isinstance(augment, ImageDataGenerator)
    assert (augment.rotation_range, augment.fill_mode, augment.horizontal_flip) == (
        0.2,
        "nearest",
        True,
    )
    three = UNet((32, 32, 1), filters=2, depth=2, num_classes=3, seed=0)
    seed_recipe(three)  # flag_multi_class: a softmax and categorical cross-entropy
    assert type(three.loss).__name__ == "CategoricalCrossentropy"


def test_train_recipe_seed_trains_on_every_image_and_writes_the_seeds_outputs(tmp_path, capsys):
    x, _ = synthetic_membranes(3, size=40, seed=7)
    test = tmp_path / "test"
    test.mkdir()
    for i in range(3):  # test images of another size: resized to the network's, as the seed
        imsave(test / f"{i}.png", x[i, ..., 0], cmap="gray", vmin=0, vmax=1)
    out = tmp_path / "run"
    argv = ["train", "--recipe", "seed", "--images", "4", "--size", "32", "--filters", "2"]
    argv += ["--depth", "2", "--steps-per-epoch", "3", "--test", str(test), "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "on 4 images of 32x32, no validation" in printed
    assert "Epoch 1/1 - 3/3" in printed  # one epoch of --steps-per-epoch steps
    history = json.loads((out / "history.json").read_text())
    assert set(history) == {"loss", "accuracy", "time"}  # nothing held out
    assert (out / "best_weights.npz").is_file()  # kept on the training loss
    assert sorted(f.name for f in (out / "test").iterdir()) == [
        "0_predict.png",
        "1_predict.png",
        "2_predict.png",
    ]
    assert not (out / "metrics.json").exists()


def test_train_recipe_seed_defaults_are_main_pys():
    from numpy_unet.app.cli import RECIPE_DEFAULTS

    seed = RECIPE_DEFAULTS["seed"]
    assert (seed["size"], seed["filters"], seed["lr"]) == (256, 64, 1e-4)
    assert (seed["steps_per_epoch"], seed["epochs"], seed["val_split"]) == (300, 1, 0.0)
    assert np.isclose(RECIPE_DEFAULTS["basic"]["lr"], 1e-3)
