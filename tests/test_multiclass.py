"""Several classes, end to end: labels and colours, loading, per-class scores, training,
the seed's saveResult, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.image import imread, imsave

from numpy_unet import UNet
from numpy_unet.app.cli import main
from numpy_unet.data import load_folder, read_image, synthetic_membranes
from numpy_unet.data.class_masks import resize_labels
from numpy_unet.data.saving import save_result
from numpy_unet.labels import COLOR_DICT, label_to_rgb, one_hot, rgb_to_label, to_labels
from numpy_unet.metrics import class_scores, confusion_matrix


# -- labels and colours ---------------------------------------------------------------------------
def test_color_dict_is_the_seeds():
    assert COLOR_DICT.shape == (12, 3)
    assert COLOR_DICT[0].tolist() == [128, 128, 128]  # Sky
    assert COLOR_DICT[4].tolist() == [60, 40, 222]  # Pavement
    assert COLOR_DICT[11].tolist() == [0, 0, 0]  # Unlabelled


def test_label_to_rgb_draws_each_class_in_its_colour_and_takes_predictions():
    labels = np.array([[0, 1], [2, 11]])
    rgb = label_to_rgb(labels)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.float32
    np.testing.assert_array_equal(np.rint(rgb * 255), COLOR_DICT[labels])
    probs = one_hot(labels, 12) * 0.9 + 0.1 / 12  # a softmax-like prediction
    np.testing.assert_array_equal(label_to_rgb(probs), rgb)
    with pytest.raises(ValueError, match="palette has 3 colours"):
        label_to_rgb(labels, colors=COLOR_DICT[:3])


def test_rgb_to_label_inverts_label_to_rgb_and_names_a_foreign_colour():
    labels = np.random.default_rng(0).integers(0, 12, (7, 9))
    rgb = np.rint(label_to_rgb(labels) * 255).astype(np.uint8)
    np.testing.assert_array_equal(rgb_to_label(rgb, COLOR_DICT), labels)
    rgb[3, 4] = (1, 2, 3)
    with pytest.raises(ValueError, match=r"row 3, col 4\) has colour \(1, 2, 3\)"):
        rgb_to_label(rgb, COLOR_DICT)
    with pytest.raises(ValueError, match="two classes the same colour"):
        rgb_to_label(rgb, [[0, 0, 0], [0, 0, 0]])


def test_to_labels_and_one_hot_are_inverse():
    labels = np.random.default_rng(1).integers(0, 4, (2, 5, 6, 1)).astype(np.float32)
    hot = one_hot(labels, 4)
    assert hot.shape == (2, 5, 6, 4)
    np.testing.assert_array_equal(to_labels(hot), labels[..., 0])
    np.testing.assert_array_equal(to_labels(labels), labels[..., 0])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        one_hot(labels, 3)


# -- scores ---------------------------------------------------------------------------------------
def test_class_scores_match_a_hand_count():
    rng = np.random.default_rng(2)
    true = rng.integers(0, 3, (2, 6, 7))
    pred = np.where(rng.random(true.shape) < 0.7, true, rng.integers(0, 3, true.shape))
    probs = one_hot(pred, 3) * 0.8 + 0.2 / 3
    s = class_scores(probs, true[..., None].astype(float))
    for k in range(3):
        tp = np.sum((pred == k) & (true == k))
        fp, fn = np.sum((pred == k) & (true != k)), np.sum((pred != k) & (true == k))
        assert s["iou"][k] == pytest.approx(tp / (tp + fp + fn))
        assert s["dice"][k] == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert s["accuracy"][k] == pytest.approx(tp / (tp + fn))
    assert s["pixel_accuracy"] == pytest.approx(np.mean(pred == true))
    assert s["mean_iou"] == pytest.approx(np.mean(s["iou"]))
    m = confusion_matrix(pred, true, 3)
    assert m.sum() == true.size and m[1, 2] == np.sum((true == 1) & (pred == 2))
    # one-hot truth gives the same scores
    assert class_scores(probs, one_hot(true, 3)) == s


def test_class_scores_leave_an_absent_class_out_of_the_means():
    true = np.zeros((1, 4, 4, 1))
    true[0, :2] = 1
    probs = one_hot(true, 3)  # perfect, and class 2 is nowhere
    s = class_scores(probs, true)
    assert np.isnan(s["iou"][2]) and np.isnan(s["accuracy"][2])
    assert s["mean_iou"] == 1.0 and s["mean_dice"] == 1.0
    with pytest.raises(ValueError, match=r"whole numbers in \[0, 2\]"):
        class_scores(probs, true * 3)
    with pytest.raises(ValueError, match="K >= 2"):
        class_scores(probs[..., :1], true)


# -- generated data -------------------------------------------------------------------------------
def test_three_generated_classes_split_the_cells_of_the_two_class_masks():
    images2, masks2 = synthetic_membranes(3, size=64, seed=5)
    images3, masks3 = synthetic_membranes(3, size=64, seed=5, classes=3)
    np.testing.assert_array_equal(images2, images3)  # the same images
    np.testing.assert_array_equal(masks2, masks3 >= 1)  # organelles are inside cells
    share = np.mean(masks3 == 2)
    assert 0.005 < share < 0.1  # a rare class, but present
    with pytest.raises(ValueError, match="needs organelles=True"):
        synthetic_membranes(1, size=32, classes=3, organelles=False)


# -- loading --------------------------------------------------------------------------------------
def _write_pair(folder, name, image, labels, colors=None):
    (folder / "image").mkdir(parents=True, exist_ok=True)
    (folder / "label").mkdir(parents=True, exist_ok=True)
    imsave(folder / "image" / f"{name}.png", image, cmap="gray", vmin=0, vmax=1)
    if colors is None:  # gray: the class number is the stored value
        imsave(
            folder / "label" / f"{name}.png", labels.astype(np.uint8), cmap="gray", vmin=0, vmax=255
        )
    else:
        imsave(folder / "label" / f"{name}.png", np.asarray(colors, np.uint8)[labels])


def test_load_folder_reads_gray_class_numbers_and_colour_coded_masks(tmp_path):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (2, 12, 10))
    images = rng.random((2, 12, 10))
    for i in range(2):
        _write_pair(tmp_path / "gray", str(i), images[i], labels[i])
        _write_pair(tmp_path / "colour", str(i), images[i], labels[i], colors=COLOR_DICT)
    x, y = load_folder(tmp_path / "gray", size=None, classes=3)
    assert x.shape == y.shape == (2, 12, 10, 1) and y.dtype == np.float32
    np.testing.assert_array_equal(y[..., 0], labels)
    _, y2 = load_folder(tmp_path / "colour", size=None, palette=COLOR_DICT[:3])
    np.testing.assert_array_equal(y2[..., 0], labels)
    with pytest.raises(ValueError, match=r"class numbers 0 \.\. 1"):
        load_folder(tmp_path / "gray", size=None, classes=2)
    with pytest.raises(ValueError, match="colour image; pass palette="):
        load_folder(tmp_path / "colour", size=None, classes=3)
    with pytest.raises(ValueError, match="not in the palette"):
        load_folder(tmp_path / "colour", size=None, palette=COLOR_DICT[5:8])


def test_resizing_labels_never_invents_a_class_between_two_others():
    labels = np.zeros((8, 8), np.int64)
    labels[:, 4:] = 2  # classes 0 and 2 side by side: a bilinear mean would make 1s
    for size in [(4, 4), (11, 13), (3, 7)]:
        out = resize_labels(labels, size, 3)
        assert out.shape == size and set(np.unique(out)) <= {0, 2}
    np.testing.assert_array_equal(resize_labels(labels, (8, 8), 3), labels)


# -- training -------------------------------------------------------------------------------------
@pytest.mark.parametrize("one_hot_masks", [False, True])
def test_fit_trains_a_three_class_unet_and_reports_the_class_means(one_hot_masks):
    x, y = synthetic_membranes(6, size=32, seed=0, classes=3)
    masks = one_hot(y, 3) if one_hot_masks else y
    model = UNet((32, 32, 1), filters=4, depth=2, num_classes=3, seed=0)
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy", "iou", "dice"])
    history = model.fit(
        x[:4], masks[:4], epochs=3, batch_size=2, validation_data=(x[4:], masks[4:]), verbose=0
    )
    h = history.history
    assert h["loss"][-1] < h["loss"][0]
    probs = model.predict(x[4:])
    expected = class_scores(probs, y[4:])
    assert h["val_iou"][-1] == pytest.approx(expected["mean_iou"])
    assert h["val_accuracy"][-1] == pytest.approx(expected["pixel_accuracy"])


def test_fit_refuses_labels_the_model_cannot_predict():
    x, y = synthetic_membranes(2, size=16, seed=0, classes=3)
    model = UNet((16, 16, 1), filters=2, depth=1, num_classes=3, seed=0)
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(
        ValueError, match=r"whole class numbers in \[0, 2\], found values in \[0, 3\]"
    ):
        model.fit(x, np.where((np.arange(16) == 5)[:, None], 3.0, y), verbose=0)  # one column of 3s
    with pytest.raises(ValueError, match=r"labels \(N, H, W, 1\) or one-hot \(N, H, W, 3\)"):
        model.fit(x, one_hot(y, 3)[..., :2], verbose=0)


# -- the seed's saveResult ------------------------------------------------------------------------
def test_save_result_writes_the_seeds_files(tmp_path):
    rng = np.random.default_rng(4)
    probs = rng.random((3, 8, 8, 1)).astype(np.float32)
    paths = save_result(tmp_path, probs)
    assert [p.name for p in paths] == ["0_predict.png", "1_predict.png", "2_predict.png"]
    np.testing.assert_allclose(read_image(paths[1]), probs[1, ..., 0], atol=0.5 / 255 + 1e-6)
    softmax = rng.random((1, 8, 8, 3))
    (colour,) = save_result(tmp_path, softmax, names=["cells"])
    drawn = np.rint(imread(colour)[..., :3] * 255)
    np.testing.assert_array_equal(drawn, COLOR_DICT[softmax[0].argmax(-1)])
    before = paths[0].read_bytes()
    with pytest.raises(FileExistsError, match="0_predict.png exists"):
        save_result(tmp_path, probs[::-1])
    assert paths[0].read_bytes() == before  # nothing replaced
    save_result(tmp_path, probs[::-1], overwrite=True)
    assert paths[0].read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0_predict.png",
        "1_predict.png",
        "2_predict.png",
        "cells_predict.png",
    ]  # no temporary file left


# -- the command line -----------------------------------------------------------------------------
def test_train_classes_3_scores_each_class_and_predict_colours_them(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--classes", "3", "--images", "5", "--size", "32", "--filters", "2"]
    argv += ["--depth", "2", "--epochs", "1", "--out", str(out)]
    assert main(argv) == 0
    scores = json.loads((out / "metrics.json").read_text())
    assert len(scores["iou"]) == 3 and "mean_iou" in scores
    assert (out / "predictions.png").is_file()
    x, _ = synthetic_membranes(2, size=32, seed=9)
    for i in range(2):
        imsave(tmp_path / f"{i}.png", x[i, ..., 0], cmap="gray", vmin=0, vmax=1)
    pred = tmp_path / "pred"
    weights = str(out / "best_weights.npz")
    argv = ["predict", "--weights", weights, str(tmp_path / "0.png"), str(tmp_path / "1.png")]
    assert main([*argv, "--out", str(pred), "--seed-names"]) == 0
    assert sorted(f.name for f in pred.iterdir()) == ["0_predict.png", "1_predict.png"]
    assert imread(pred / "0_predict.png").shape[:2] == (32, 32)
    capsys.readouterr()


def test_predict_resize_is_the_seeds_test_generator(tmp_path):
    weights = UNet((16, 16, 1), filters=2, depth=2, seed=0).save_weights(tmp_path / "w.npz")
    imsave(tmp_path / "big.png", np.random.default_rng(0).random((42, 26)), cmap="gray")
    argv = [
        "predict",
        "--weights",
        weights,
        str(tmp_path / "big.png"),
        "--out",
        str(tmp_path / "p"),
    ]
    assert main(argv) == 2  # 42 x 26 does not go through 2 poolings
    assert main([*argv, "--resize", "--seed-names"]) == 0
    assert imread(tmp_path / "p" / "big_predict.png").shape[:2] == (16, 16)
