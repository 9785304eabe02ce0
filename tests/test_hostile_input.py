"""Arguments that cannot make a run get one line naming what is wrong, before anything is
loaded or written (issue: hostile input, items 5, 7 and 14)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imsave

from numpy_unet import UNet
from numpy_unet.app.cli import main
from numpy_unet.train.tiling import predict_tiled

TRAIN = ["train", "--images", "6", "--size", "32", "--filters", "2", "--depth", "2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--batch-size", "-2"], "--batch-size must be at least 1"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--epochs", "-1"], "--epochs must be at least 1"),
        (["--steps-per-epoch", "-1"], "--steps-per-epoch must be at least 1"),
        (["--steps-per-epoch", "0"], "--steps-per-epoch must be at least 1"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1"),
        (["--images", "1"], "--images must be at least 2"),
        (["--images", "0"], "--images must be at least 2"),
        (["--val-split", "1.0"], "--val-split must lie in [0, 1)"),
        (["--val-split", "-1"], "--val-split must lie in [0, 1)"),
        (["--classes", "13"], "--classes must lie in [1, 12]"),
        (["--classes", "4"], "the generated data have 2 classes"),
        (["--recipe", "paper", "--classes", "3"], "--recipe paper trains 2 classes"),
        (["--test", "no-such-folder"], "--test no-such-folder is not a folder"),
        (["--lr", "0"], "--lr must be a positive number"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--tile", "44"], "--tile applies to --recipe paper only"),
        (["--class-balance"], "--class-balance applies to --recipe paper only"),
    ],
)
def test_train_refuses_arguments_that_cannot_make_a_run(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert main([*TRAIN, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1  # one line, no traceback
    assert not out.exists()  # nothing created


def test_predict_refuses_a_threshold_outside_0_1(tmp_path, capsys):
    weights = UNet((16, 16, 1), filters=2, depth=2, seed=0).save_weights(tmp_path / "w.npz")
    imsave(tmp_path / "a.png", np.zeros((16, 16)), cmap="gray")
    for bad in ("2", "nan", "-0.1"):
        args = ["predict", "--weights", weights, str(tmp_path / "a.png"), "--threshold", bad]
        assert main([*args, "--out", str(tmp_path / "p")]) == 2
        assert "--threshold must lie in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_a_tile_far_larger_than_the_image_needs_is_refused_before_allocating():
    model = UNet.paper(input_shape=(92, 92, 1), filters=1, depth=2, seed=0)
    image = np.zeros((40, 40, 1), np.float32)
    with pytest.raises(ValueError, match="tile 100000 is larger than a 40x40 image needs"):
        predict_tiled(model, image, tile=100000)
    assert predict_tiled(model, image, tile=92).shape == (40, 40, 2)  # the built size is fine


# -- the API (items 11, 16, 17, 18) -------------------------------------------------------
def small():
    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    model.compile("adam", "binary_crossentropy", metrics=[])
    return model


def test_predict_on_no_images_returns_no_predictions_and_checks_its_batch_size():
    model = small()
    x = np.zeros((0, 16, 16, 1), np.float32)
    assert model.predict(x).shape == (0, 16, 16, 1)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        model.predict(np.zeros((2, 16, 16, 1), np.float32), batch_size=1.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": -1}, "batch_size must be a positive int"),
        ({"epochs": -1}, "epochs must be a positive int"),
        ({"epochs": 0}, "epochs must be a positive int"),
        ({"steps_per_epoch": 0}, "steps_per_epoch must be a positive int"),
    ],
)
def test_fit_refuses_arguments_that_cannot_make_a_run(options, message):
    x = np.zeros((2, 16, 16, 1), np.float32)
    with pytest.raises(ValueError, match=message):
        small().fit(x, x, verbose=0, **options)


def test_fit_refuses_no_images_and_empty_validation_data():
    x = np.zeros((2, 16, 16, 1), np.float32)
    with pytest.raises(ValueError, match="fit: no images"):
        small().fit(x[:0], x[:0], verbose=0)
    with pytest.raises(ValueError, match=r"fit \(validation_data\): no images"):
        small().fit(x, x, validation_data=(x[:0], x[:0]), verbose=0)


def test_set_weights_refuses_values_the_dtype_cannot_hold_and_non_floats():
    model = small()
    before = model.get_weights()
    huge = [np.full(w.shape, 1e300) for w in before]
    with pytest.raises(ValueError, match="too large for float32; the model is unchanged"):
        model.set_weights(huge)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    conv = model.layers[0]
    kernel, bias = conv.get_weights()
    with pytest.raises(ValueError, match="holds NaN"):
        conv.set_weights([np.full_like(kernel, np.nan), bias])
    with pytest.raises(ValueError, match="must hold floats"):
        conv.set_weights([kernel.astype(bool), bias])


def test_load_weights_of_another_padding_is_refused(tmp_path):
    valid = UNet((48, 48, 1), filters=2, depth=2, padding="valid", seed=0)
    path = valid.save_weights(tmp_path / "valid.npz")
    same = UNet((16, 16, 1), filters=2, depth=2, seed=1)
    with pytest.raises(ValueError, match="padding: file 'valid', model 'same'"):
        same.load_weights(path)


def test_backward_refuses_a_non_finite_upstream_gradient():
    model = small()
    y = model.forward(np.zeros((1, 16, 16, 1), np.float32))
    dy = np.ones_like(y)
    dy[0, 3, 4, 0] = np.nan
    with pytest.raises(ValueError, match="dy with NaN or infinite values"):
        model.backward(dy)


@pytest.mark.parametrize("epsilon", [0, -1, 0.6])
def test_bce_refuses_an_epsilon_outside_0_half(epsilon):
    from numpy_unet.losses import BinaryCrossentropy

    with pytest.raises(ValueError, match="epsilon must lie in"):
        BinaryCrossentropy(epsilon=epsilon)


def test_dice_refuses_nan_smoothing_and_losses_refuse_an_empty_batch():
    from numpy_unet.losses import BinaryCrossentropy, DiceLoss

    with pytest.raises(ValueError, match="smooth must be a finite number"):
        DiceLoss(smooth=float("nan"))
    empty = np.zeros((0, 4, 4, 1))
    with pytest.raises(ValueError, match="y_pred is empty"):
        BinaryCrossentropy().forward(empty, empty)


# -- files (items 8 and 21) ---------------------------------------------------------------
def test_a_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    from numpy_unet import files

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_savez(tmp_path / "checkpoint.npz", {"a": np.zeros(3)})
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_starts_again_leaves_files_named_like_temporary_ones(tmp_path):
    # issue 32: a file named like a temporary one may be a user's; this run did not make it
    model = small()
    x = np.zeros((2, 16, 16, 1), np.float32)
    model.fit(x, x, checkpoint_dir=tmp_path, verbose=0)
    names = [".checkpoint.npz.tmp", ".best_weights.npz.tmp", ".checkpoint.npz.0a1b2c3d.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"half a file from a SIGKILL, or a user's")
    with pytest.raises(ValueError, match="other data or settings"):  # stops before any save
        model.fit(x, x, batch_size=1, checkpoint_dir=tmp_path, resume=True, verbose=0)
    model.fit(x, x, epochs=2, checkpoint_dir=tmp_path, resume=True, verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["best_weights.npz", "checkpoint.npz", *names]
    )
    for name in names:
        assert (tmp_path / name).read_bytes() == b"half a file from a SIGKILL, or a user's"


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    assert main([*TRAIN, "--epochs", "1", "--steps-per-epoch", "1", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert target.read_text() == "not a folder"


# -- weights files (items 4 and 6) ----------------------------------------------------------
def weights_file(tmp_path, config_change=None, arrays=None, name="w.npz"):
    """A weights file as save_weights writes it, with its config or arrays altered."""
    import json

    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    config = model.get_config() | (config_change or {})
    for key in [k for k, v in (config_change or {}).items() if v is None]:
        del config[key]
    weights = model.get_weights() if arrays is None else arrays
    named = {f"{k:03d}_w": w for k, w in enumerate(weights)}
    np.savez(tmp_path / name, config=np.array(json.dumps(config)), **named)
    return tmp_path / name


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: weights_file(t, {"filters": 600}), "does not match its own configuration"),
        (lambda t: weights_file(t, {"filters": 100000}), "does not match its own configuration"),
        (lambda t: weights_file(t, {"input_shape": None}), "missing keys ['input_shape']"),
        (lambda t: weights_file(t, {"colour": "red"}), "unknown keys ['colour']"),
        (lambda t: weights_file(t, {"input_shape": [16, 16]}), "input_shape must be (H, W, C)"),
        (lambda t: weights_file(t, arrays=[np.zeros(3)]), "1 arrays where it needs 28"),
    ],
)
def test_a_weights_file_that_contradicts_its_config_is_refused_before_building(
    tmp_path, make, message
):
    from numpy_unet import load_model

    with pytest.raises(ValueError) as err:
        load_model(make(tmp_path))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_damaged_or_foreign_weights_files_are_one_line_and_the_model_unchanged(tmp_path):
    good = weights_file(tmp_path)
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    for k in range(len(data) // 2, len(data) // 2 + 8):  # inside an array's bytes
        flipped[k] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    (tmp_path / "empty.npz").write_bytes(b"")
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "text.npz").write_text("these are not weights")
    weights_file(tmp_path, {"input_shape": [16, 16]}, name="two_long.npz")
    weights_file(tmp_path, {"input_shape": None}, name="no_shape.npz")
    model = UNet((16, 16, 1), filters=2, depth=2, seed=5)
    before = model.get_weights()
    names = ["truncated.npz", "flipped.npz", "empty.npz", "array.npy", "text.npz"]
    for name in [*names, "two_long.npz", "no_shape.npz"]:
        with pytest.raises(ValueError) as err:
            model.load_weights(tmp_path / name)
        message = str(err.value)
        assert name in message and "\n" not in message, message
        assert "pickled" not in message
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


# -- noise and file picking (items 13, 19, 20) ------------------------------------------------
def test_predict_picks_files_by_the_rule_load_folder_uses(tmp_path, capsys):
    from PIL import Image

    weights = UNet((16, 16, 1), filters=2, depth=2, seed=0).save_weights(tmp_path / "w.npz")
    images = tmp_path / "images"
    images.mkdir()
    imsave(images / "0.png", np.zeros((16, 16)), cmap="gray")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(images / "1.bmp")
    (images / "._0.png").write_bytes(b"macOS AppleDouble metadata, not an image")
    out = tmp_path / "pred"
    assert main(["predict", "--weights", weights, str(images), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "0_mask.png",
        "0_prob.png",
        "1_mask.png",
        "1_prob.png",
    ]


def test_the_constant_prediction_warning_is_said_once(tmp_path, capsys):
    model = small()
    model.head[-1].params["bias"][:] = 30.0  # the sigmoid says "cell" everywhere
    model.head[-1].params["kernel"][:] = 0.0
    x = np.random.default_rng(0).random((4, 16, 16, 1), dtype=np.float32)
    y = (x > 0.5).astype(np.float32)
    model.compile("sgd", "binary_crossentropy", metrics=[], learning_rate=1e-9)
    model.fit(x, y, epochs=3, validation_data=(x, y), verbose=2)
    assert capsys.readouterr().err.count("predictions are nearly constant") == 1


def test_a_diverging_run_says_so_in_one_sentence_without_numpy_warnings():
    import warnings

    from numpy_unet.optimizers import Adam

    model = small()
    x = np.random.default_rng(0).random((4, 16, 16, 1), dtype=np.float32)
    model.compile(Adam(1e10), "binary_crossentropy", metrics=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        with pytest.raises(ValueError, match="diverged"):
            model.fit(x, (x > 0.5).astype(np.float32), epochs=5, verbose=0)


def test_a_0_128_mask_loads_as_the_same_0_255_mask_does(tmp_path):
    from numpy_unet.data import load_folder, synthetic_membranes

    _, y = synthetic_membranes(1, size=64, seed=0)
    image = np.random.default_rng(0).random((64, 64))
    loaded = []
    for cell in (128, 255):
        folder = tmp_path / f"cells-{cell}"
        (folder / "image").mkdir(parents=True)
        (folder / "label").mkdir()
        imsave(folder / "image" / "0.png", image, cmap="gray")
        from PIL import Image

        Image.fromarray((y[0, :, :, 0] * cell).astype(np.uint8)).save(folder / "label" / "0.png")
        loaded.append(load_folder(folder, size=27)[1])  # a size no whole factor reaches
    np.testing.assert_array_equal(loaded[0], loaded[1])


# -- small files that claim huge images (item 3) ----------------------------------------------
def bomb(path, width, height):
    """A few bytes of header that claim a width x height image."""
    import struct
    import zlib

    if path.suffix == ".png":
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        chunk = b"IHDR" + ihdr
        data = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + data + b"\x00" * 40)
    else:  # .bmp
        header = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54)
        info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 0, 0, 0, 0, 0, 0)
        path.write_bytes(header + info)


@pytest.mark.parametrize("suffix", [".png", ".bmp"])
def test_an_image_claiming_too_many_pixels_is_refused_before_decoding(tmp_path, suffix):
    from numpy_unet.data import load_folder, read_image

    path = tmp_path / f"bomb{suffix}"
    bomb(path, 20000, 20000)
    with pytest.raises(ValueError, match=r"declares 20000x20000 pixels, more than the limit"):
        read_image(path)
    (tmp_path / "set" / "image").mkdir(parents=True)
    (tmp_path / "set" / "label").mkdir()
    bomb(tmp_path / "set" / "image" / f"0{suffix}", 20000, 20000)
    bomb(tmp_path / "set" / "label" / f"0{suffix}", 20000, 20000)
    with pytest.raises(ValueError, match="max_pixels"):
        load_folder(tmp_path / "set")


def test_the_pixel_limit_can_be_raised(tmp_path):
    from numpy_unet.data import read_image

    imsave(tmp_path / "a.png", np.zeros((40, 50)), cmap="gray")
    with pytest.raises(ValueError, match="declares 40x50 pixels"):
        read_image(tmp_path / "a.png", max_pixels=1000)
    assert read_image(tmp_path / "a.png", max_pixels=2000).shape == (40, 50)


# -- resuming another run (item 15) ---------------------------------------------------------
@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (lambda: __import__("numpy_unet.optimizers").optimizers.SGD(1e-3), "'name': 'SGD'"),
        (lambda: __import__("numpy_unet.optimizers").optimizers.Adam(0.5), "'learning_rate': 0.5"),
    ],
)
def test_resume_refuses_another_optimizer_or_learning_rate(tmp_path, optimizer, message):
    from numpy_unet.optimizers import Adam

    x = np.zeros((2, 16, 16, 1), np.float32)
    model = small()
    model.compile(Adam(1e-3), "binary_crossentropy", metrics=[])
    model.fit(x, x, checkpoint_dir=tmp_path, verbose=0)
    model.compile(optimizer(), "binary_crossentropy", metrics=[])
    with pytest.raises(ValueError, match="optimizer: ") as err:
        model.fit(x, x, epochs=2, checkpoint_dir=tmp_path, resume=True, verbose=0)
    assert message in str(err.value)


def test_resume_of_a_finished_run_asks_for_more_epochs(tmp_path):
    x = np.zeros((2, 16, 16, 1), np.float32)
    model = small()
    model.fit(x, x, epochs=2, checkpoint_dir=tmp_path, verbose=0)
    with pytest.raises(ValueError, match="has done 2 epoch"):
        model.fit(x, x, epochs=1, checkpoint_dir=tmp_path, resume=True, verbose=0)


# -- Ctrl-C (item 9) ----------------------------------------------------------------------------
def test_ctrl_c_during_validation_stops_after_that_epoch(tmp_path, monkeypatch):
    import os
    import signal

    from numpy_unet.train import fit as fit_module

    real = fit_module.evaluate

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while validating
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "evaluate", interrupted)
    x = np.zeros((2, 16, 16, 1), np.float32)
    with pytest.raises(KeyboardInterrupt, match="stopped after epoch 1, its validation done"):
        small().fit(x, x, epochs=3, validation_data=(x, x), checkpoint_dir=tmp_path, verbose=0)
    with np.load(tmp_path / "checkpoint.npz") as data:
        import json

        meta = json.loads(str(data["meta"]))
    assert (meta["epoch"], meta["step"]) == (1, 0)


def test_ctrl_c_outside_training_and_a_second_ctrl_c_are_one_sentence(
    tmp_path, monkeypatch, capsys
):
    from numpy_unet.app import cli

    def ctrl_c(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_load_data", ctrl_c)
    assert main([*TRAIN, "--out", str(tmp_path / "a")]) == 130
    assert capsys.readouterr().err.strip() == "interrupted (Ctrl-C)"
    monkeypatch.undo()
    monkeypatch.setattr(UNet, "fit", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main([*TRAIN, "--out", str(tmp_path / "b")]) == 130
    assert "stopped at once by a second Ctrl-C; the last checkpoint is kept." in (
        capsys.readouterr().out
    )


# -- found by trying more hostile inputs ---------------------------------------------------------
def test_predict_refuses_outputs_that_would_overwrite_an_input(tmp_path, capsys):
    weights = UNet((16, 16, 1), filters=2, depth=2, seed=0).save_weights(tmp_path / "w.npz")
    folder = tmp_path / "d"
    folder.mkdir()
    imsave(folder / "a.png", np.zeros((16, 16)), cmap="gray")
    imsave(folder / "a_prob.png", np.ones((16, 16)), cmap="gray")
    before = (folder / "a_prob.png").read_bytes()
    args = ["predict", "--weights", weights, str(folder), "--out", str(folder), "--overwrite"]
    assert main(args) == 2
    assert "would overwrite one of the input images" in capsys.readouterr().err
    assert (folder / "a_prob.png").read_bytes() == before


def test_grade_json_never_replaces_a_file_and_checks_its_timeout(tmp_path, capsys):
    from numpy_unet.teach import course

    copy = course.make_exercises(tmp_path / "copy")
    precious = tmp_path / "precious.json"
    precious.write_text("keep")
    assert main(["grade", str(copy), "--json", str(precious)]) == 2
    assert precious.read_text() == "keep"
    for bad in ("inf", "nan", "0"):
        assert main(["grade", str(copy), "--timeout", bad]) == 2
        assert "--timeout must be a positive number" in capsys.readouterr().err


def test_a_copy_that_borrows_the_reference_classes_scores_zero(tmp_path):
    from numpy_unet.teach import course, grading

    copy = course.make_exercises(tmp_path / "cheat")
    borrow = (
        "\nimport importlib as _il\n_ref = _il.import_module('numpy_unet.layers')\n"
        "globals().update({n: getattr(_ref, n) for n in dir(_ref) if n[:1].isupper()})\n"
    )
    with open(copy / "numpy_unet" / "layers" / "__init__.py", "a") as f:
        f.write(borrow)
    result = grading.grade(copy, exercises=["relu_backward"], seed=0)["relu_backward"]
    assert result.score == 0  # in the grader's child, numpy_unet is the copy itself
    assert "NotImplementedError: exercise relu_backward" in result.items[0].detail


def test_the_level_graded_is_the_teachers_not_the_copys(tmp_path):
    from numpy_unet.teach import course, grading

    copy = course.make_exercises(tmp_path / "copy")  # --level backward: forwards uncut
    results = grading.grade(copy, level="forward", seed=0)
    assert set(results) == set(course.FORWARD_TASKS)
    assert all(r.score == 1 for r in results.values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depth": 30}, "depth must be at most 12"),
        ({"filters": 2.5}, "positive ints"),
        ({"filters": True}, "positive ints"),
        ({"input_shape": (32, 32, 0)}, "at least 1 channel"),
    ],
)
def test_unet_refuses_impossible_options_at_once(options, message):
    with pytest.raises(ValueError, match=message):
        UNet(**({"input_shape": (32, 32, 1), "filters": 2, "depth": 2} | options))


def test_fit_refuses_a_batch_larger_than_the_data_and_a_non_augmenter():
    x = np.zeros((3, 16, 16, 1), np.float32)
    with pytest.raises(ValueError, match="batch_size 100000 is larger than the 3"):
        small().fit(x, x, batch_size=100000, verbose=0)
    for bad in (True, "yes"):
        with pytest.raises(ValueError, match="augment must be an augmenter"):
            small().fit(x, x, augment=bad, verbose=0)


def test_cli_size_limits_and_summary_size_zero(tmp_path, capsys):
    assert main([*TRAIN, "--size", "12000", "--out", str(tmp_path / "r")]) == 2
    assert "more than --max-pixels" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["summary", "--size", "0", "--filters", "2", "--depth", "2"]) == 2
    assert "input height 0" in capsys.readouterr().err


def test_predict_writes_the_classes_of_a_multi_class_model_and_refuses_a_bad_tile(tmp_path, capsys):
    three = UNet((16, 16, 1), filters=2, depth=2, num_classes=3, seed=0)
    weights = three.save_weights(tmp_path / "w3.npz")
    imsave(tmp_path / "a.png", np.zeros((16, 16)), cmap="gray")
    args = ["predict", str(tmp_path / "a.png"), "--out", str(tmp_path / "p")]
    assert main([*args, "--weights", weights]) == 0  # each pixel in its class's colour
    assert sorted(f.name for f in (tmp_path / "p").iterdir()) == ["a_classes.png"]
    one = UNet((16, 16, 1), filters=2, depth=2, seed=0).save_weights(tmp_path / "w1.npz")
    args[-1] = str(tmp_path / "q")
    assert main([*args, "--weights", one, "--tile", "30"]) == 2
    assert "tile 30" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()


def test_gradcheck_refuses_settings_that_cannot_check():
    from numpy_unet import gradcheck
    from numpy_unet.layers import ReLU

    x = np.linspace(-1, 1, 8).reshape(1, 2, 2, 2) + 0.01
    for options, message in [
        ({"eps": 0}, "eps must be finite and > 0"),
        ({"atol": -1}, "atol must be finite and >= 0"),
        ({"rtol": float("nan")}, "rtol must be finite"),
        ({"directional": True, "n_directions": 0}, "n_directions must be at least 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            gradcheck(ReLU(), x, **options)


def test_synthetic_membranes_refuses_nan_noise_and_a_blur_wider_than_the_image():
    from numpy_unet.data import synthetic_membranes

    with pytest.raises(ValueError, match="noise must be a finite number"):
        synthetic_membranes(2, size=32, noise=float("nan"))
    with pytest.raises(ValueError, match="blur must be at most the image size"):
        synthetic_membranes(2, size=32, blur=(1e6, 1e6))


def test_tiff_stacks_are_held_to_the_pixel_limit_and_empty_pages_refused(tmp_path):
    import struct

    from numpy_unet.data import read_tiff_stack, write_tiff_stack

    path = tmp_path / "stack.tif"
    write_tiff_stack(path, np.zeros((3, 64, 64), np.uint8))
    assert read_tiff_stack(path).shape == (3, 64, 64)
    with pytest.raises(ValueError, match="declares more than 8,192 pixels"):
        read_tiff_stack(path, max_pixels=8192)  # the pages add up: 3 x 4096
    data = bytearray(path.read_bytes())
    for kind in (3, 4):  # ImageLength as SHORT or LONG: set it to 0
        entry = struct.pack("<HHI", 257, kind, 1)
        at = data.find(entry)
        if at >= 0:
            data[at + 8 : at + 12] = b"\0\0\0\0"
    (tmp_path / "empty.tif").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="empty"):
        read_tiff_stack(tmp_path / "empty.tif")


def test_a_failed_run_leaves_no_empty_folder_and_augmenter_options_are_numbers(tmp_path, capsys):
    from numpy_unet.data import Augmenter

    out = tmp_path / "r"
    assert (
        main([*TRAIN, "--epochs", "1", "--steps-per-epoch", "1", "--lr", "1e30", "--out", str(out)])
        == 2
    )
    assert "diverged" in capsys.readouterr().err
    assert not out.exists() or any(out.iterdir())  # nothing, or what the run really wrote
    assert main(["demo", "--quick", "--seed", "-1", "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()
    with pytest.raises(ValueError, match="shift must be a number"):
        Augmenter(shift="big", seed=0)


def test_absurd_sizes_are_refused_before_allocating():
    with pytest.raises(ValueError, match="is more than the 1,000,000,000 allowed"):
        UNet((32, 32, 1), filters=100_000_000, depth=2)
    x = np.zeros((2, 16, 16, 1), np.float32)
    with pytest.raises(ValueError, match="samples per epoch"):
        small().fit(x, x, steps_per_epoch=10**12, verbose=0)


def test_predict_never_overwrites_an_input_reached_through_a_hard_link(tmp_path, capsys):
    import os

    weights = UNet((16, 16, 1), filters=2, depth=2, seed=0).save_weights(tmp_path / "w.npz")
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    imsave(tmp_path / "in" / "0.png", np.zeros((16, 16)), cmap="gray")
    os.link(tmp_path / "in" / "0.png", tmp_path / "out" / "0_prob.png")
    before = (tmp_path / "in" / "0.png").read_bytes()
    args = ["predict", "--weights", weights, str(tmp_path / "in"), "--out", str(tmp_path / "out")]
    assert main([*args, "--overwrite"]) == 2
    assert "would overwrite one of the input images" in capsys.readouterr().err
    assert (tmp_path / "in" / "0.png").read_bytes() == before


def test_more_runs_that_cannot_work_are_one_clear_line(tmp_path, capsys):
    weights = UNet((16, 16, 1), filters=2, depth=2, seed=0).save_weights(tmp_path / "w.npz")
    imsave(tmp_path / "a.png", np.zeros((32, 32)), cmap="gray")
    out = tmp_path / "o"
    args = ["predict", "--weights", weights, str(tmp_path / "a.png"), "--out", str(out)]
    assert main([*args, "--tile", "100000"]) == 2  # fails while predicting: no folder left
    assert "tile 100000" in capsys.readouterr().err and not out.exists()
    assert main([*TRAIN, "--padding", "valid", "--out", str(tmp_path / "v")]) == 2
    assert "--padding valid needs --recipe paper" in capsys.readouterr().err
    assert main([*TRAIN, "--out", ""]) == 2
    assert "--out must name a folder" in capsys.readouterr().err
    run = tmp_path / "run"
    small().fit(np.zeros((2, 16, 16, 1), np.float32), np.zeros((2, 16, 16, 1), np.float32),
                checkpoint_dir=run, verbose=0)  # fmt: skip
    predict = ["predict", "--weights", str(run / "checkpoint.npz"), str(tmp_path / "a.png")]
    assert main([*predict, "--out", str(tmp_path / "p")]) == 2
    assert "is a training checkpoint" in capsys.readouterr().err
