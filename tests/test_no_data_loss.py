"""Nothing a user saved is lost: resuming with nothing to resume, and two inputs that would
write one output, are errors before anything is written (issue: hostile input, items 1-2)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imsave

from numpy_unet import UNet
from numpy_unet.app.cli import main

TRAIN = ["train", "--images", "6", "--size", "32", "--filters", "2", "--depth", "2"]
TRAIN += ["--epochs", "1", "--steps-per-epoch", "1"]


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else None


def test_resume_without_a_checkpoint_is_an_error_and_replaces_nothing(tmp_path, capsys):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "best_weights.npz").write_bytes(b"an earlier run's best weights")
    (keep / "metrics.json").write_text('{"dice": 0.97}')
    before = snapshot(keep)
    assert main([*TRAIN, "--out", str(keep), "--resume"]) == 2
    err = capsys.readouterr().err
    assert str(keep) in err and "no checkpoint.npz" in err
    assert snapshot(keep) == before

    missing = tmp_path / "never-made"
    assert main([*TRAIN, "--out", str(missing), "--resume"]) == 2
    assert "no checkpoint.npz" in capsys.readouterr().err
    assert not missing.exists()


def test_fit_resume_without_a_checkpoint_is_an_error(tmp_path):
    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    model.compile("adam", "binary_crossentropy", metrics=[])
    x = np.random.default_rng(0).random((2, 16, 16, 1), dtype=np.float32)
    (tmp_path / "best_weights.npz").write_bytes(b"keep me")
    with pytest.raises(FileNotFoundError, match="no checkpoint.npz to resume"):
        model.fit(x, (x > 0.5).astype(np.float32), checkpoint_dir=tmp_path, resume=True)
    assert (tmp_path / "best_weights.npz").read_bytes() == b"keep me"
    with pytest.raises(FileNotFoundError):
        model.fit(x, x > 0.5, checkpoint_dir=tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("layout", [("A/0.png", "B/0.png"), ("mix/0.png", "mix/0.tif")])
def test_two_inputs_with_one_output_name_are_an_error_before_writing(tmp_path, capsys, layout):
    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    weights = model.save_weights(tmp_path / "w.npz")
    image = np.random.default_rng(0).random((16, 16))
    for name in layout:
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        if path.suffix == ".png":
            imsave(path, image, cmap="gray")
        else:
            from numpy_unet.data import write_tiff_stack

            write_tiff_stack(path, (image * 255).astype(np.uint8)[None])
    inputs = sorted({str((tmp_path / n).parent) for n in layout})
    out = tmp_path / "dup"
    assert main(["predict", "--weights", weights, *inputs, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "would both be written to 0_prob.png" in err
    assert not out.exists()  # nothing written, not even the folder
