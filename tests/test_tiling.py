"""Overlap-tile prediction: seamless for 'valid' UNets, any image size, every pixel once."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet.model.unet import UNet
from numpy_unet.teach.checks import random_biases
from numpy_unet.train.tiling import mirror_indices, predict_tiled, tile_input, tile_layout


def valid_unet(depth: int = 2, channels: int = 1, seed: int = 0) -> UNet:
    """A small float64 'valid' UNet with the paper's options (transposed convs, softmax)."""
    size = {2: 48, 3: 100}[depth]
    model = UNet(
        (size, size, channels),
        filters=2,
        depth=depth,
        padding="valid",
        upsampling="transpose",
        num_classes=2,
        head_conv=False,
        dtype="float64",
        seed=seed,
    )
    random_biases(model, np.random.default_rng(seed))  # no dead ReLUs: outputs vary
    return model


def same_unet() -> UNet:
    """The seed's network in small: 'same' padding, UpSampling2D, head conv, a sigmoid."""
    model = UNet((32, 32, 1), filters=2, depth=2, dtype="float64", seed=0)
    random_biases(model, np.random.default_rng(0))
    return model


def untiled_on_mirror_padded(model: UNet, image: np.ndarray, tile=None) -> np.ndarray:
    """What the network gives for the whole image mirror-padded as the layout pads it."""
    h, w = image.shape[:2]
    tiles = tile_layout(model, image.shape, tile)
    top, left = -tiles[0].input_rows[0], -tiles[0].input_cols[0]
    bottom, right = tiles[-1].input_rows[1] - h, tiles[-1].input_cols[1] - w
    padded = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    return model.predict(padded[None])[0, :h, :w]


def test_mirror_indices_reflect_like_numpy_pad_even_past_a_tiny_axis():
    for n in (1, 2, 3, 7):
        for pad in (0, 1, n, 3 * n + 2):
            expected = np.pad(np.arange(n), pad, mode="reflect")
            np.testing.assert_array_equal(mirror_indices(-pad, n + pad, n), expected)


def test_valid_result_does_not_depend_on_the_tile():
    model = valid_unet()
    image = np.random.default_rng(1).random((37, 53, 1))
    reference = predict_tiled(model, image)
    assert reference.std() > 0.05  # a prediction that varies, or the test proves nothing
    for tile in (44, 48, 60, (52, 44), 96):
        np.testing.assert_allclose(predict_tiled(model, image, tile=tile), reference, atol=1e-10)


def test_valid_result_equals_untiled_prediction_of_the_mirror_padded_image():
    model = valid_unet()
    image = np.random.default_rng(2).random((30, 41, 1))
    for tile in (48, (44, 56)):
        np.testing.assert_allclose(
            predict_tiled(model, image, tile=tile),
            untiled_on_mirror_padded(model, image, tile),
            atol=1e-10,
        )


def test_tiles_step_on_the_pooling_grid_when_the_output_tile_is_off_it():
    model = valid_unet(depth=3)  # tile 100 -> output 12, not a multiple of 2**3
    assert model.output_size(100) == 12
    image = np.random.default_rng(3).random((21, 18, 1))
    tiles = tile_layout(model, image.shape, tile=100)
    assert {t.output_rows[1] - t.output_rows[0] for t in tiles} <= {8, 5}
    tiled = predict_tiled(model, image, tile=100, batch_size=4)
    np.testing.assert_allclose(tiled, untiled_on_mirror_padded(model, image, 100), atol=1e-10)
    np.testing.assert_allclose(predict_tiled(model, image, tile=108), tiled, atol=1e-10)


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (5, 8), (16, 16), (37, 20), (9, 50)])
def test_output_has_the_image_size(hw):
    model = valid_unet(channels=3)
    image = np.random.default_rng(4).random((*hw, 3), dtype=np.float32)
    out = predict_tiled(model, image, tile=48)
    assert out.shape == (*hw, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out.sum(-1), 1.0)  # softmax over the two classes
    batch = predict_tiled(model, np.stack([image, image[::-1]]), tile=48)
    assert batch.shape == (2, *hw, 2)
    np.testing.assert_allclose(batch[0], out, atol=1e-12)


def test_image_smaller_than_the_context_is_mirrored_again_and_again():
    model = valid_unet()  # 20 pixels of context on each side, here around a 2x3 image
    image = np.random.default_rng(5).random((2, 3, 1))
    out = predict_tiled(model, image)
    np.testing.assert_allclose(out, untiled_on_mirror_padded(model, image), atol=1e-10)
    single = predict_tiled(model, np.full((1, 1, 1), 0.3))
    assert single.shape == (1, 1, 2)


def test_same_unet_predicts_any_size_and_matches_untiled_away_from_the_border():
    model = same_unet()
    rng = np.random.default_rng(6)
    out = predict_tiled(model, rng.random((100, 70, 1)))
    assert out.shape == (100, 70, 1) and np.all((out > 0) & (out < 1))

    image = rng.random((96, 80, 1))  # a size the network takes whole, to compare with
    untiled = model.predict(image[None])[0]
    one_tile = predict_tiled(model, image, tile=(96, 80), overlap=0)
    np.testing.assert_allclose(one_tile, untiled, atol=1e-12)
    errors = []
    for overlap in (16, 48):  # more overlap: more context kept, less of the tile edges seen
        diff = np.abs(predict_tiled(model, image, tile=64, overlap=overlap) - untiled)
        assert diff.mean() < 0.01  # the image border: mirrored here, zeros untiled
        errors.append(diff[24:-24, 24:-24].max())
    assert errors[1] < 1e-4 < errors[0]


@pytest.mark.parametrize(
    "model, shape, tile",
    [
        (valid_unet(), (37, 53), 48),
        (valid_unet(), (3, 100, 1), (44, 60)),
        (valid_unet(depth=3), (1, 30, 17, 1), 100),
        (same_unet(), (100, 70, 1), None),
        (same_unet(), (33, 65), 16),
    ],
)
def test_layout_covers_every_output_pixel_exactly_once(model, shape, tile):
    h, w = shape[-3:-1] if len(shape) > 2 else shape
    counts = np.zeros((h, w), int)
    for t in tile_layout(model, shape, tile):
        (r0, r1), (c0, c1) = t.output_rows, t.output_cols
        counts[r0:r1, c0:c1] += 1
        th, tw = t.input_rows[1] - t.input_rows[0], t.input_cols[1] - t.input_cols[0]
        out_h, out_w = model.output_size(th), model.output_size(tw)
        assert 0 <= t.keep_rows[0] and t.keep_rows[1] <= out_h
        assert 0 <= t.keep_cols[0] and t.keep_cols[1] <= out_w
        assert t.keep_rows[1] - t.keep_rows[0] == r1 - r0
        assert tile_input(np.zeros((h, w, 1)), t).shape == (th, tw, 1)
    np.testing.assert_array_equal(counts, 1)


def test_errors_name_predict_tiled_and_what_would_work():
    model, image = valid_unet(), np.zeros((20, 20, 1))
    cases = [
        (np.zeros((20, 20)), {}, "image[..., None]"),
        (np.zeros((1, 1, 20, 20, 1)), {}, "(N, H, W, C)"),
        (np.zeros((20, 20, 3)), {}, "1-channel images, got 3"),
        (np.zeros((20, 20, 1), np.uint8), {}, "astype(np.float32) / 255"),
        (image, {"tile": 50}, "nearest valid tile sizes: 48 or 52"),
        (image, {"tile": 40}, "nearest valid tile sizes: 44"),
        (image, {"tile": (48, -1)}, "tile must be positive"),
        (image, {"overlap": 8}, "'same' UNets only"),
        (image, {"batch_size": 0}, "batch_size must be positive"),
    ]
    for x, options, expected in cases:
        with pytest.raises(ValueError, match="predict_tiled") as err:
            predict_tiled(model, x, **options)
        assert expected in str(err.value)
    with pytest.raises(ValueError, match="too small.*at least 100"):
        predict_tiled(valid_unet(depth=3), image, tile=92)  # output 4 < 2**3
    with pytest.raises(ValueError, match="overlap 32 must be smaller than the tile 32"):
        predict_tiled(same_unet(), image, tile=32, overlap=32)


def test_tta_averages_the_eight_orientations_and_is_equivariant():
    from numpy_unet import UNet
    from numpy_unet.train.tiling import predict_tiled

    model = UNet.paper(input_shape=(60, 60, 1), filters=2, depth=2, seed=0)
    x = np.random.default_rng(0).random((2, 37, 45, 1)).astype(np.float32)
    mean = predict_tiled(model, x, tile=60, tta=True)
    by_hand = 0
    for k in range(4):
        for mirror in (False, True):
            xt = np.rot90(x[:, :, ::-1] if mirror else x, k, axes=(1, 2))
            p = np.rot90(predict_tiled(model, np.ascontiguousarray(xt), tile=60), -k, axes=(1, 2))
            by_hand = by_hand + (p[:, :, ::-1] if mirror else p)
    np.testing.assert_allclose(mean, by_hand / 8, atol=1e-6)
    assert not np.allclose(mean, predict_tiled(model, x, tile=60), atol=1e-3)  # it does something
    # predicting a mirrored image with TTA gives the mirrored prediction
    flipped = predict_tiled(model, np.ascontiguousarray(x[:, ::-1]), tile=60, tta=True)
    np.testing.assert_allclose(flipped[:, ::-1], mean, atol=1e-6)
