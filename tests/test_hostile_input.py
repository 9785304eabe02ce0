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
        (["--val-split", "1.0"], "--val-split must lie between 0 and 1"),
        (["--val-split", "-1"], "--val-split must lie between 0 and 1"),
        (["--lr", "0"], "--lr must be a positive number"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--tile", "44"], "--tile applies to --recipe paper only"),
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
