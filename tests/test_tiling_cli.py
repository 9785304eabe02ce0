"""``numpy-unet predict --tile``: any image size, outputs the size of the image."""

from __future__ import annotations

import numpy as np
from matplotlib.image import imread, imsave

from numpy_unet.app.cli import main
from numpy_unet.model.unet import UNet


def saved_model(tmp_path, **options) -> str:
    model = UNet((48, 48, 1), filters=2, depth=2, seed=0, **options)
    return model.save_weights(tmp_path / f"{options.get('padding', 'same')}.npz")


def odd_sized_images(folder, sizes) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k, hw in enumerate(sizes):
        imsave(folder / f"em{k}.png", rng.random(hw), cmap="gray", vmin=0, vmax=1)


def test_predict_tile_writes_pngs_of_the_image_size(tmp_path, capsys):
    images = tmp_path / "images"
    sizes = [(37, 29), (20, 51)]
    odd_sized_images(images, sizes)
    paper_like = dict(padding="valid", upsampling="transpose", num_classes=2, head_conv=False)
    for weights in (saved_model(tmp_path, **paper_like), saved_model(tmp_path)):
        preds = tmp_path / f"preds-{len(list(tmp_path.iterdir()))}"
        command = ["predict", "--weights", weights, str(images), "--out", str(preds)]
        assert main([*command, "--tile", "48"]) == 0
        for k, hw in enumerate(sizes):
            prob, mask = imread(preds / f"em{k}_prob.png"), imread(preds / f"em{k}_mask.png")
            assert prob.shape[:2] == hw and mask.shape[:2] == hw
            assert set(np.unique(mask[..., 0])) <= {0.0, 1.0}
        assert main([*command, "--tile", "48"]) == 2  # never overwrite
        assert "--overwrite" in capsys.readouterr().err
        assert main([*command, "--tile", "48", "--overwrite"]) == 0


def test_predict_without_tile_suggests_it_and_writes_nothing(tmp_path, capsys):
    images = tmp_path / "images"
    odd_sized_images(images, [(32, 32), (37, 29)])
    weights, preds = saved_model(tmp_path), tmp_path / "preds"
    assert main(["predict", "--weights", weights, str(images), "--out", str(preds)]) == 2
    err = capsys.readouterr().err
    assert "em1.png is 37x29" in err and "--tile" in err and "Nearest valid heights" in err
    assert not preds.exists()  # em0 fits, but nothing is written before all are checked
    bad_tile = ["predict", "--weights", weights, str(images), "--out", str(preds), "--tile", "50"]
    assert main(bad_tile) == 2
    assert "nearest valid tile sizes: 48 or 52" in capsys.readouterr().err


def test_predict_tta_writes_the_mean_of_the_eight_orientations(tmp_path):
    from numpy_unet.data import read_image
    from numpy_unet.model import load_model
    from numpy_unet.train.tiling import predict_tiled

    images = tmp_path / "images"
    odd_sized_images(images, [(37, 29)])
    weights = saved_model(tmp_path)
    assert (
        main(["predict", "--weights", weights, str(images), "--out", str(tmp_path / "p"), "--tta"])
        == 0
    )
    written = read_image(tmp_path / "p" / "em0_prob.png")
    image = read_image(images / "em0.png")[:, :, None]
    expected = predict_tiled(load_model(weights), image, tta=True)[..., -1]
    assert written.shape == (37, 29)
    np.testing.assert_allclose(written, expected, atol=0.5 / 255 + 1e-6)
