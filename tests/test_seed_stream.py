"""The seed's own batches: `numpy-unet train --recipe seed` trains on what Keras's
`trainGenerator` (two `flow_from_directory` iterators, seed 1, then `adjustData`) yields, and
writes the seed's 8-bit grayscale `N_predict.png`."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from numpy_unet.app.cli import main
from numpy_unet.train import fit as fit_module
from numpy_unet.train.seed import SEED_DATA_GEN_ARGS, SeedStream, adjust_data, load_seed_folder

DATA = Path(__file__).parent / "data" / "keras-stream"  # see make_keras_stream_fixture.py


@pytest.fixture(scope="module")
def keras_batches() -> list[tuple[np.ndarray, np.ndarray]]:
    """Keras's first three batches of the seed's trainGenerator at 32 x 32, adjusted."""
    with np.load(DATA / "expected.npz") as data:
        images, masks = data["seed32_images"], data["seed32_masks"]  # (3, 2, 32, 32, 1)
    return [adjust_data(i, m) for i, m in zip(images, masks)]


def test_the_stream_is_keras_trainGenerator(keras_batches):  # noqa: N802 - the seed's name
    images, masks = load_seed_folder(DATA, size=32)
    stream = SeedStream(images, masks, batch_size=2, seed=1, data_gen_args=SEED_DATA_GEN_ARGS)
    for k, (x, y) in enumerate(keras_batches):
        xb, yb = stream(k)
        assert xb.dtype == yb.dtype == np.float32
        np.testing.assert_array_equal(xb, x)  # exactly: 0 difference
        np.testing.assert_array_equal(yb, y)
    # batch k depends on k alone: the 7th batch (a new pass, a new order) as the stream's
    sequential = [stream.images.next() for _ in range(8)]
    np.testing.assert_array_equal(sequential[7], stream.images.batch(7))


def png_colour_type(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR: (8, 0) is 8-bit grayscale."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return data[24], data[25]


def test_train_recipe_seed_trains_on_the_seeds_batches(tmp_path, monkeypatch, keras_batches):
    seen = []
    step = fit_module.train_step

    def recording(model, optimizer, loss, xb, yb, wb):
        seen.append((xb.copy(), yb.copy()))
        return step(model, optimizer, loss, xb, yb, wb)

    monkeypatch.setattr(fit_module, "train_step", recording)
    out = tmp_path / "run"
    argv = ["train", "--recipe", "seed", "--data", str(DATA), "--size", "32", "--depth", "1"]
    argv += ["--filters", "2", "--steps-per-epoch", "3", "--test", str(DATA / "image")]
    assert main([*argv, "--out", str(out), "--workers", "0"]) == 0
    assert len(seen) == 3
    for (xb, yb), (x, y) in zip(seen, keras_batches):
        np.testing.assert_array_equal(xb, x)
        np.testing.assert_array_equal(yb, y)
    written = sorted(p.name for p in (out / "test").iterdir())
    assert written == [f"{k}_predict.png" for k in range(6)]  # by position, as the seed
    assert all(png_colour_type(out / "test" / name) == (8, 0) for name in written)


def test_test_outputs_can_keep_the_inputs_names(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--recipe", "seed", "--data", str(DATA), "--size", "32", "--depth", "1"]
    argv += ["--filters", "2", "--steps-per-epoch", "1", "--test", str(DATA / "image")]
    assert main([*argv, "--test-names", "stem", "--out", str(out), "--workers", "0"]) == 0
    names = sorted(p.name for p in (out / "test").iterdir())
    assert names == sorted(f"{s}_predict.png" for s in ("1", "2", "3", "10", "11", "20"))


def test_a_folder_without_the_seeds_layout_is_refused_clearly(tmp_path):
    (tmp_path / "image").mkdir()
    with pytest.raises(FileNotFoundError, match="has no label/ folder"):
        load_seed_folder(tmp_path, 32)
    with pytest.raises(ValueError, match="images .* and masks .* differ"):
        SeedStream(np.zeros((2, 4, 4, 1)), np.zeros((3, 4, 4, 1)))


def test_png_bytes_are_grayscale_or_rgb_without_alpha(tmp_path):
    from numpy_unet.data.saving import write_png

    gray = write_png(tmp_path / "g.png", np.linspace(0, 1, 12).reshape(3, 4))
    colour = write_png(tmp_path / "c.png", np.zeros((3, 4, 3)))
    assert png_colour_type(gray) == (8, 0) and png_colour_type(colour) == (8, 2)
    width, height = struct.unpack(">II", gray.read_bytes()[16:24])
    assert (width, height) == (4, 3)
    from numpy_unet.data import read_image

    np.testing.assert_allclose(
        read_image(gray), np.linspace(0, 1, 12).reshape(3, 4), atol=0.5 / 255
    )


def test_a_resumed_seed_run_continues_the_stream(tmp_path):
    from numpy_unet import UNet
    from numpy_unet.train.seed import seed_recipe

    images, masks = load_seed_folder(DATA, size=32)
    x, y = adjust_data(images, masks)

    def model() -> UNet:
        return UNet((32, 32, 1), filters=2, depth=1, seed=0, workers=0)

    whole = model()
    options = seed_recipe(whole, steps_per_epoch=2, stream=(images, masks)) | {"epochs": 2}
    whole.fit(x, y, checkpoint_dir=tmp_path / "whole", verbose=0, **options)
    first = model()
    options = seed_recipe(first, steps_per_epoch=2, stream=(images, masks))
    first.fit(x, y, checkpoint_dir=tmp_path / "parts", verbose=0, **options)  # epoch 1
    again = model()
    options = seed_recipe(again, steps_per_epoch=2, stream=(images, masks)) | {"epochs": 2}
    again.fit(x, y, checkpoint_dir=tmp_path / "parts", resume=True, verbose=0, **options)
    for a, b in zip(whole.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)  # batches 2 and 3 of the stream, as in one run
