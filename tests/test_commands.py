"""The command line's training side: demo, train (and --resume), predict, summary."""

from __future__ import annotations

import json

import numpy as np
from matplotlib.image import imread, imsave

from numpy_unet import UNet, load_model
from numpy_unet.app.cli import main
from numpy_unet.train.diagnostics import diagnose_predictions


def test_quick_demo_writes_its_results_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert {"dice", "iou", "pixel_accuracy", "rand_error", "training_seconds"} <= set(result)
    for name in ("training_curves.png", "predictions.png", "best_weights.npz", "checkpoint.npz"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr().out
    assert str(out / "metrics.json") in printed and "Held-out" in printed
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert (tmp_path / "demo-2" / "metrics.json").exists()  # the first run is untouched
    assert json.loads((out / "metrics.json").read_text()) == result


def test_train_then_resume_then_predict(tmp_path, capsys):
    run = tmp_path / "run"
    common = [
        "train",
        "--images",
        "6",
        "--size",
        "32",
        "--filters",
        "2",
        "--depth",
        "2",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "2",
        "--out",
        str(run),
    ]
    assert main([*common, "--epochs", "1"]) == 0
    assert json.loads((run / "history.json").read_text())["loss"].__len__() == 1
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    assert "Resuming from" in capsys.readouterr().out
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 2

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        imsave(images / f"em{k}.png", rng.random((32, 48)), cmap="gray", vmin=0, vmax=1)
    preds = tmp_path / "preds"
    weights = str(run / "best_weights.npz")
    assert main(["predict", "--weights", weights, str(images), "--out", str(preds)]) == 0
    for k in range(2):
        prob, mask = imread(preds / f"em{k}_prob.png"), imread(preds / f"em{k}_mask.png")
        assert prob.shape[:2] == (32, 48) and mask.shape[:2] == (32, 48)
        assert set(np.unique(mask[..., 0])) <= {0.0, 1.0}
    assert main(["predict", "--weights", weights, str(images), "--out", str(preds)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (
        main(["predict", "--weights", weights, str(images), "--out", str(preds), "--overwrite"])
        == 0
    )
    assert main(["predict", "--weights", str(tmp_path / "nope.npz"), str(images)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_load_model_rebuilds_the_saved_configuration(tmp_path):
    model = UNet((32, 32, 1), filters=2, depth=2, padding="same", seed=3)
    model.save_weights(tmp_path / "w.npz")
    again = load_model(tmp_path / "w.npz")
    assert again.get_config()["filters"] == 2
    x = np.random.default_rng(0).random((1, 32, 32, 1), dtype=np.float32)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_summary_command(capsys):
    assert main(["summary"]) == 0
    assert "Total params: 31,031,685" in capsys.readouterr().out
    assert main(["summary", "--paper", "--filters", "8", "--depth", "2", "--size", "60"]) == 0
    assert "(None, 20, 20, 2)" in capsys.readouterr().out


def test_constant_predictions_are_diagnosed():
    rng = np.random.default_rng(0)
    masks = (rng.random((2, 16, 16, 1)) < 0.7).astype(np.float32)
    assert diagnose_predictions(np.clip(masks + 0.1 * rng.random(masks.shape), 0, 1), masks) is None
    gray = np.full(masks.shape, 0.73, np.float32)
    message = diagnose_predictions(gray, masks, UNet((16, 16, 1), filters=2, depth=2))
    assert "nearly constant" in message and "all cells" in message and "died" in message
    assert "all membrane" in diagnose_predictions(gray * 0.01, masks)
