"""The paper's recipe: random training tiles, per-pixel weights in fit, paper_recipe."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet import UNet
from numpy_unet.data import synthetic_membranes, weight_map
from numpy_unet.gradcheck import ModelWithLoss, gradcheck
from numpy_unet.losses import CategoricalCrossentropy
from numpy_unet.optimizers import SGD, Adam, CosineDecay
from numpy_unet.teach.checks import random_biases
from numpy_unet.train.paper import paper_recipe, weight_maps
from numpy_unet.train.tiling import sample_tiles


def small_paper(tile: int = 44, dtype: str = "float32") -> UNet:
    return UNet.paper(input_shape=(tile, tile, 1), filters=2, depth=2, dtype=dtype, seed=0)


@pytest.mark.parametrize("size", [(30, 30), (37, 50), (12, 9)])
def test_training_tiles_line_up_input_context_target_and_weights(size):
    # Pixel values encode their image coordinates, so the tile's centre (past the context)
    # must show exactly the coordinates under the target window, mirrored where outside.
    model = small_paper(44)
    out = model.output_size(44)
    context = (44 - out) // 2
    h, w = size
    coords = np.arange(h * w, dtype=np.float64).reshape(1, h, w, 1)
    images = np.concatenate([coords, coords + 1000.0])  # (2, H, W, 1)
    masks = (images % 2).astype(np.float32)
    weights = images[..., 0] * 10
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y, wt = sample_tiles(model, images, masks, weights, 44, rng)
        assert (
            x.shape == (2, 44, 44, 1) and y.shape == (2, out, out, 1) and wt.shape == (2, out, out)
        )
        centre = x[:, context : context + out, context : context + out, :]  # (2, O, O, 1)
        np.testing.assert_array_equal(y, centre % 2)
        np.testing.assert_array_equal(wt, centre[..., 0] * 10)
        assert set(np.unique(x[0])) <= set(np.unique(images[0]))  # mirrored, never invented


def test_fit_with_tiles_and_weight_maps_trains_and_validates_on_whole_images():
    x, y = synthetic_membranes(5, size=40, seed=0)
    model = small_paper(44)
    options = paper_recipe(model, y[:4], learning_rate=0.01, seed=0)
    assert options["batch_size"] == 1 and options["tile"] == 44
    assert options["sample_weight"].shape == (4, 40, 40)
    history = model.fit(
        x[:4],
        y[:4],
        epochs=2,
        steps_per_epoch=3,
        validation_data=(x[4:], y[4:]),
        verbose=0,
        **options,
    )
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(history.history[key]) == 2 and np.isfinite(history.history[key]).all()
    again = small_paper(44)  # the same run again: seeded tiles, warps and batch order
    options = paper_recipe(again, y[:4], learning_rate=0.01, seed=0)
    again.fit(
        x[:4],
        y[:4],
        epochs=2,
        steps_per_epoch=3,
        validation_data=(x[4:], y[4:]),
        verbose=0,
        **options,
    )
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weight_maps_stack_one_per_mask():
    _, y = synthetic_membranes(2, size=32, seed=1)
    w = weight_maps(y)
    assert w.shape == (2, 32, 32)
    np.testing.assert_array_equal(w[1], weight_map(y[1, ..., 0]))
    with pytest.raises(ValueError, match=r"weight_maps: expected masks of shape \(N, H, W, 1\)"):
        weight_maps(y[..., 0])


def test_paper_recipe_and_fit_reject_what_does_not_fit():
    x, y = synthetic_membranes(2, size=40, seed=0)
    with pytest.raises(ValueError, match="softmax over 2 classes"):
        paper_recipe(UNet((16, 16, 1), filters=2, depth=2), y)
    model = small_paper(44)
    options = paper_recipe(model, y)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        model.fit(x, y, verbose=0, **(options | {"sample_weight": np.ones((2, 39, 40))}))
    with pytest.raises(ValueError, match="fit: tile 45 .* nearest valid tile sizes: 44"):
        model.fit(x, y, verbose=0, **(options | {"tile": 45}))
    with pytest.raises(ValueError, match="masks must have the images' height and width"):
        model.fit(x, y[:, :30], verbose=0, **(options | {"sample_weight": None}))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(ValueError, match="needs loss='categorical_crossentropy'"):
        model.fit(x, y, verbose=0, **options)


def test_gradcheck_paper_network_with_a_real_weight_map(rng):
    # The weighted loss of the recipe, end to end through a small float64 paper network,
    # with the weight map of an actual mask (from ~0.6 on cells to ~11 on membranes).
    model = small_paper(60, dtype="float64")
    random_biases(model, rng)
    out = model.output_size(60)  # 20
    _, y = synthetic_membranes(1, size=out, seed=2)
    labels = np.rint(y[..., 0]).astype(np.int64)  # (1, O, O)
    w = weight_map(y[0, ..., 0])[None].astype(np.float64)  # (1, O, O)
    assert w.max() > 5 * w.min()
    objective = ModelWithLoss(model, CategoricalCrossentropy(), labels, weight_map=w)
    x = rng.random((1, 60, 60, 1))
    # directional: 8 random directions in the space of the input and of each parameter
    report = gradcheck(objective, x, training=True, directional=True)
    assert report.passed and report.max_rel_error < 1e-6


def test_cli_trains_the_paper_recipe_and_predicts_tile_by_tile(tmp_path, monkeypatch):
    from matplotlib.image import imread, imsave

    from numpy_unet.app.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["train", "--recipe", "paper", "--size", "40", "--images", "5", "--filters", "2"]
    argv += ["--depth", "2", "--epochs", "1", "--steps-per-epoch", "2", "--out", "run"]
    assert main(argv) == 0
    assert (tmp_path / "run" / "metrics.json").exists()
    x, _ = synthetic_membranes(1, size=40, seed=3)
    imsave(tmp_path / "em.png", x[0, :37, :29, 0], cmap="gray")  # a size no UNet accepts
    argv = ["predict", "--weights", "run/best_weights.npz", "--tile", "44", "em.png"]
    assert main(argv + ["--out", "pred"]) == 0
    assert imread(tmp_path / "pred" / "em_mask.png").shape[:2] == (37, 29)


def test_a_paper_run_resumed_from_its_checkpoint_ends_where_an_unbroken_run_ends(tmp_path):
    # The tiles come from (seed, epoch, step) and the warps from the Compose's one generator,
    # which the checkpoint saves, and the decaying learning rate from the optimizer's step
    # count, which it saves too: stopping after epoch 1 and resuming changes nothing.
    x, y = synthetic_membranes(4, size=40, seed=0)
    unbroken = small_paper(44)
    unbroken.fit(
        x, y, epochs=2, steps_per_epoch=2, verbose=0, **paper_recipe(unbroken, y, decay_steps=4)
    )
    first = small_paper(44)
    first.fit(
        x,
        y,
        epochs=1,
        steps_per_epoch=2,
        verbose=0,
        checkpoint_dir=tmp_path,
        **paper_recipe(first, y, decay_steps=4),
    )
    resumed = small_paper(44)
    resumed.fit(
        x,
        y,
        epochs=2,
        steps_per_epoch=2,
        verbose=0,
        checkpoint_dir=tmp_path,
        resume=True,
        **paper_recipe(resumed, y, decay_steps=4),
    )
    for a, b in zip(unbroken.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_paper_recipe_defaults_and_the_paper_to_the_letter():
    _, y = synthetic_membranes(3, size=40, seed=0)
    model = small_paper(44)
    options = paper_recipe(model, y, decay_steps=100)  # the defaults the ablation chose
    assert isinstance(model.optimizer, Adam) and isinstance(model.optimizer.schedule, CosineDecay)
    assert model.optimizer.schedule(0) == 1e-3 and model.optimizer.schedule(100) == 1e-5
    plain = weight_maps(y, class_balance=False)  # w_c = 1: the separation term on top of 1
    np.testing.assert_array_equal(options["sample_weight"], plain)
    cells = y[..., 0] == 1
    assert np.all(plain[cells] == 1) and np.all(plain[~cells] >= 1) and plain.max() > 5
    balanced = np.stack([weight_map(m[..., 0]) for m in y])  # the paper's w_c + separation
    np.testing.assert_array_equal(weight_maps(y), balanced)
    assert not np.array_equal(plain, balanced)

    letter = small_paper(44)
    options = paper_recipe(letter, y, optimizer="sgd", class_balance=True)
    assert isinstance(letter.optimizer, SGD) and letter.optimizer.schedule is None
    assert letter.optimizer.learning_rate == 0.003 and letter.optimizer.momentum == 0.99
    np.testing.assert_array_equal(options["sample_weight"], balanced)
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        paper_recipe(small_paper(44), y, optimizer="rmsprop")


def test_a_decaying_rate_cannot_be_resumed_into_a_longer_run(tmp_path):
    # The schedule is set for the run's whole length; resuming with another length would
    # change the rates already used, so it is refused, and the message says why.
    x, y = synthetic_membranes(4, size=40, seed=0)
    first = small_paper(44)
    options = paper_recipe(first, y, decay_steps=2)
    first.fit(x, y, epochs=1, steps_per_epoch=2, verbose=0, checkpoint_dir=tmp_path, **options)
    longer = small_paper(44)
    options = paper_recipe(longer, y, decay_steps=4)
    with pytest.raises(ValueError, match="schedule set for the whole run"):
        longer.fit(
            x,
            y,
            epochs=2,
            steps_per_epoch=2,
            verbose=0,
            checkpoint_dir=tmp_path,
            resume=True,
            **options,
        )
