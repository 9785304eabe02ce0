"""ImageDataGenerator: Keras's own outputs matched, its draws reproduced, masks kept valid."""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path

import numpy as np
import pytest

from numpy_unet import UNet
from numpy_unet.data import ImageDataGenerator, synthetic_membranes

TOLERANCE = 1e-6  # Keras's outputs are float32; we match them bit for bit in practice
SEED_ARGS = dict(
    rotation_range=0.2,
    width_shift_range=0.05,
    height_shift_range=0.05,
    shear_range=0.05,
    zoom_range=0.05,
    horizontal_flip=True,
    fill_mode="nearest",
)
PARAM_KEYS = ("theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal", "flip_vertical")


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


# -- Keras's outputs on the ISBI image (shared data, beside the repository) -------------------


def shared_fixtures() -> Path:
    """The shared Keras fixtures; skip the test when they are not beside the repository."""
    data = os.environ.get("NUMPY_UNET_SHARED_DATA")
    base = Path(data) if data else Path(__file__).resolve().parents[2] / "shared" / "data"
    folder = base / "keras-image-data-generator"
    if not (folder / "expected.npz").is_file():
        pytest.skip(
            f"Keras's ImageDataGenerator fixtures not found in {folder} (they hold an ISBI "
            "image and are not shipped; set NUMPY_UNET_SHARED_DATA to the shared data folder)"
        )
    return folder


def test_every_shared_keras_output_is_matched():
    folder = shared_fixtures()
    expected = np.load(folder / "expected.npz")
    cases = json.loads((folder / "cases.json").read_text())["cases"]
    assert len(cases) == 28
    worst = {}
    for case in cases:  # 'key' and 'fill_mode' are ignored by apply_transform, as by Keras
        generator = ImageDataGenerator(fill_mode=case["fill_mode"], cval=0.0)
        for name in ("image", "mask"):
            out = generator.apply_transform(expected[name], case)
            worst[f"{case['key']}_{name}"] = max_difference(out, expected[f"{case['key']}_{name}"])
    key = max(worst, key=worst.get)
    assert worst[key] <= TOLERANCE, f"{key}: max abs difference {worst[key]}"


@pytest.mark.parametrize("seed", range(4))
def test_the_seeds_draws_equal_keras(seed):
    cases = json.loads((shared_fixtures() / "cases.json").read_text())
    assert cases["seed_data_gen_args"] == SEED_ARGS
    recorded = next(c for c in cases["cases"] if c["key"] == f"seed_{seed}")
    drawn = ImageDataGenerator(**SEED_ARGS).get_random_transform((64, 64, 1), seed=seed)
    for key in PARAM_KEYS:
        assert abs(float(drawn[key]) - recorded[key]) <= 1e-12, key
    assert drawn["channel_shift_intensity"] is None and drawn["brightness"] is None


# -- Keras's outputs on a synthetic image (shipped: tests/data/) -------------------------------

SYNTHETIC = np.load(Path(__file__).parent / "data" / "keras_augmentation_synthetic.npz")
SYNTHETIC_CASES = json.loads(str(SYNTHETIC["cases"]))


@pytest.mark.parametrize("case", SYNTHETIC_CASES, ids=[c["key"] for c in SYNTHETIC_CASES])
def test_synthetic_keras_outputs_are_matched(case):
    generator = ImageDataGenerator(**case["args"])
    for name in case["inputs"]:
        out = generator.apply_transform(SYNTHETIC[name], case["params"])
        expected = SYNTHETIC[f"{case['key']}_{name}"]
        assert max_difference(out, expected) <= TOLERANCE, name


DRAWN = [c for c in SYNTHETIC_CASES if "_seed" in c["key"]]


@pytest.mark.parametrize("case", DRAWN, ids=[c["key"] for c in DRAWN])
def test_draws_with_other_arguments_equal_keras(case):
    seed = int(case["key"].rsplit("seed", 1)[1])
    drawn = ImageDataGenerator(**case["args"]).get_random_transform((24, 20, 2), seed=seed)
    assert drawn.keys() == case["params"].keys()
    for key, recorded in case["params"].items():
        if recorded is None:
            assert drawn[key] is None, key
        else:  # whole-pixel shifts are ints in Keras too
            assert abs(drawn[key] - recorded) <= 1e-12, key
            assert isinstance(drawn[key], numbers.Integral) == isinstance(recorded, int), key


def test_the_synthetic_fixture_covers_what_it_should():
    args = [c["args"] for c in SYNTHETIC_CASES]
    params = [c["params"] for c in SYNTHETIC_CASES]
    assert {a["fill_mode"] for a in args} == {"nearest", "reflect", "constant", "wrap"}
    assert any(a.get("cval", 0) != 0 and a["fill_mode"] == "constant" for a in args)
    assert SYNTHETIC["image"].shape == (24, 20, 2)
    assert any(p.get("flip_vertical") for p in params)
    assert any(isinstance(a.get("width_shift_range"), list) for a in args)
    assert any(abs(p.get("tx", 0)) >= 1 for p in params)
    assert str(SYNTHETIC["versions"]).startswith("keras 3.")


# -- the conventions, on arrays small enough to check by hand ---------------------------------


@pytest.mark.parametrize(
    ("fill_mode", "left", "right", "half"),
    [  # the module docstring's "abcd" examples: positions -4..-1, 4..7, and -0.5
        ("nearest", [1, 1, 1, 1], [4, 4, 4, 4], 1.0),
        ("reflect", [4, 3, 2, 1], [4, 3, 2, 1], 1.0),
        ("constant", [9, 9, 9, 9], [9, 9, 9, 9], 9.0),
        ("wrap", [3, 4, 2, 3], [2, 3, 1, 2], 3.5),
    ],
)
def test_fill_modes_read_what_the_docstring_says(fill_mode, left, right, half):
    row = np.tile(np.arange(1.0, 5.0), (3, 1))[..., None]  # (3, 4, 1): "abcd" = 1 2 3 4
    generator = ImageDataGenerator(fill_mode=fill_mode, cval=9.0)
    read = lambda shift: generator.apply_transform(row, {"tx": shift})[0, :, 0]  # noqa: E731
    np.testing.assert_array_equal(read(-4.0), left)  # tx shifts the *columns*
    np.testing.assert_array_equal(read(4.0), right)
    assert read(-0.5)[0] == half


def test_tx_moves_content_left_and_ty_moves_it_up():
    x = np.zeros((6, 10, 1))
    x[3, 5] = 1
    generator = ImageDataGenerator(fill_mode="constant")
    assert generator.apply_transform(x, {"tx": 2})[3, 3, 0] == 1
    assert generator.apply_transform(x, {"ty": 2})[1, 5, 0] == 1
    flipped = generator.apply_transform(x, {"flip_horizontal": 1, "flip_vertical": True})
    assert flipped[2, 4, 0] == 1


def test_apply_transform_defaults_copies_and_dtypes():
    x = np.random.default_rng(0).random((5, 7, 2))  # float64 stays float64
    generator = ImageDataGenerator()
    out = generator.apply_transform(x, {"channel_shift_intensity": None, "brightness": None})
    np.testing.assert_array_equal(out, x)
    assert out is not x and not np.shares_memory(out, x)
    assert generator.apply_transform(x, {"theta": 10}).dtype == np.float64
    with pytest.raises(ValueError, match="ImageDataGenerator.apply_transform: brightness"):
        generator.apply_transform(x, {"brightness": 1.2})
    with pytest.raises(ValueError, match="theta must be a finite number"):
        generator.apply_transform(x, {"theta": None})
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        generator.apply_transform(x[..., 0], {})


def test_a_seeded_draw_leaves_the_global_generator_alone():
    generator = ImageDataGenerator(**SEED_ARGS, seed=0)
    state = generator.rng.bit_generator.state
    before = np.random.get_state()  # noqa: NPY002 (Keras would reseed this global state)
    generator.get_random_transform((8, 8, 1), seed=3)
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    assert generator.rng.bit_generator.state == state  # nor its own generator


# -- __call__: batches of images and masks ------------------------------------------------------

STRONG = dict(
    rotation_range=20,
    width_shift_range=0.1,
    height_shift_range=2,
    shear_range=10,
    zoom_range=(0.8, 1.2),
    horizontal_flip=True,
    vertical_flip=True,
)


@pytest.fixture
def batch() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_membranes(3, size=16, seed=0)  # (3, 16, 16, 1) float32 each


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant", "wrap"])
def test_each_mask_gets_its_images_transform_and_is_thresholded(batch, fill_mode):
    images, masks = batch
    generator = ImageDataGenerator(**STRONG, fill_mode=fill_mode, seed=1)
    out_images, out_masks = generator(images, masks)
    assert out_images.dtype == images.dtype and out_masks.dtype == masks.dtype
    assert len(generator.last_transforms) == 3
    for i, params in enumerate(generator.last_transforms):
        np.testing.assert_array_equal(out_images[i], generator.apply_transform(images[i], params))
        soft = generator.apply_transform(masks[i], params)
        np.testing.assert_array_equal(out_masks[i], (soft > 0.5).astype(np.float32))
    assert set(np.unique(out_masks)) <= {0.0, 1.0}


def test_integer_and_bool_binary_masks_keep_their_dtype(batch):
    images, masks = batch
    for dtype in (np.uint8, np.bool_):
        _, out = ImageDataGenerator(**STRONG, seed=2)(images, masks.astype(dtype))
        assert out.dtype == dtype and set(np.unique(out).tolist()) <= {0, 1}


def brute_force_labels(generator, mask, params, k):
    """Every class's indicator interpolated (all k of them), then the argmax."""
    soft = generator.apply_transform((mask == np.arange(k)).astype(np.float64), params)
    return np.argmax(soft, axis=-1)[..., None]


@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
def test_label_masks_stay_labels_and_equal_the_full_argmax(batch, fill_mode):
    images, _ = batch
    rows = np.arange(16)[None, :, None, None]
    labels = (1 + (rows // 6) + np.zeros((3, 16, 16, 1), int)).astype(np.int64)  # 1, 2, 3
    generator = ImageDataGenerator(**STRONG, fill_mode=fill_mode, seed=3)
    _, out = generator(images, labels)
    assert out.dtype == np.int64 and set(np.unique(out)) <= {0, 1, 2, 3}
    for i, params in enumerate(generator.last_transforms):  # class 0 only from cval
        np.testing.assert_array_equal(out[i], brute_force_labels(generator, labels[i], params, 4))


def test_one_hot_masks_stay_one_hot_and_agree_with_labels(batch):
    images, _ = batch
    labels = np.random.default_rng(4).integers(0, 3, (3, 16, 16, 1)).astype(np.float32)
    one_hot = (labels == np.arange(3)).astype(np.float32)  # (3, 16, 16, 3)
    _, out_labels = ImageDataGenerator(**STRONG, seed=5)(images, labels)
    _, out_one_hot = ImageDataGenerator(**STRONG, seed=5)(images, one_hot)
    assert out_one_hot.dtype == np.float32
    np.testing.assert_array_equal(out_one_hot.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(out_one_hot, (out_labels == np.arange(3)).astype(np.float32))


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant", "wrap"])
def test_no_ranges_is_the_exact_identity(batch, fill_mode):
    images, masks = batch
    out_images, out_masks = ImageDataGenerator(fill_mode=fill_mode, seed=0)(images, masks)
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_masks, masks)


def test_same_seed_same_batches_and_resuming_from_the_rng_state(batch):
    images, masks = batch
    first = ImageDataGenerator(**STRONG, seed=6)(images, masks)
    second = ImageDataGenerator(**STRONG, seed=6)(images, masks)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(ImageDataGenerator(**STRONG, seed=7)(images, masks)[0], first[0])

    generator = ImageDataGenerator(**STRONG, seed=8)
    generator(images, masks)
    saved = generator.rng.bit_generator.state
    expected = generator(images, masks)
    resumed = ImageDataGenerator(**STRONG, seed=123)
    resumed.rng.bit_generator.state = saved
    for a, b in zip(resumed(images, masks), expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        (dict(rotation_range=float("inf")), "rotation_range"),  # -1 is Keras's: accepted
        (dict(shear_range="5"), "shear_range"),
        (dict(width_shift_range=-0.1), "width_shift_range"),
        (dict(height_shift_range=[0.1, -1]), "height_shift_range"),
        (dict(height_shift_range=[]), "height_shift_range"),
        (dict(zoom_range=(1.2,)), "zoom_range"),  # 1.5 and (1.2, 0.8) are Keras's: accepted
        (dict(zoom_range="0.1"), "zoom_range"),
        (dict(horizontal_flip="yes"), "horizontal_flip"),
        (dict(fill_mode="mirror"), "fill_mode"),
        (dict(cval=float("nan")), "cval"),
        (dict(interpolation_order=3), "interpolation_order"),
        (dict(rescale=1 / 255), "rescale"),
        (dict(featurewise_center=True), "featurewise_center"),
        (dict(brightness_range=(0.9, 1.1)), "brightness_range"),
        (dict(channel_shift_range=0.1), "channel_shift_range"),
        (dict(seed="abc"), "seed"),
    ],
)
def test_bad_arguments_name_the_class_and_the_argument(options, argument):
    with pytest.raises(ValueError, match=f"ImageDataGenerator.*{argument}"):
        ImageDataGenerator(**options)


def test_bad_calls_raise(batch):
    images, masks = batch
    generator = ImageDataGenerator(seed=0)
    with pytest.raises(TypeError, match="rotation"):
        ImageDataGenerator(rotation=5)
    with pytest.raises(ValueError, match="ImageDataGenerator"):
        generator(images, masks[:, :8])
    with pytest.raises(ValueError, match="ImageDataGenerator: a one-channel mask"):
        generator(images, masks + 0.5)
    with pytest.raises(ValueError, match="img_shape"):
        generator.get_random_transform((16,))
    with pytest.raises(ValueError, match="seed"):
        generator.get_random_transform((16, 16, 1), seed=-1)


# -- in the training loop ---------------------------------------------------------------------


def tiny_model(seed: int) -> UNet:
    model = UNet((16, 16, 1), filters=2, depth=1, seed=seed)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=[])
    return model


def test_fit_trains_with_it_and_resumes_its_generator(tmp_path):
    x, y = synthetic_membranes(4, size=16, seed=0)
    options = dict(batch_size=2, steps_per_epoch=2, seed=1, verbose=0)

    straight = tiny_model(seed=2)
    augment = ImageDataGenerator(**STRONG, seed=4)
    history = straight.fit(x, y, epochs=2, augment=augment, **options)
    assert np.all(np.isfinite(history.history["loss"])) and len(augment.last_transforms) == 2

    first = tiny_model(seed=2)
    first_augment = ImageDataGenerator(**STRONG, seed=4)
    first.fit(x, y, epochs=1, augment=first_augment, checkpoint_dir=tmp_path, **options)
    resumed = tiny_model(seed=99)
    other = ImageDataGenerator(**STRONG, seed=77)  # its state comes from the checkpoint
    resumed.fit(x, y, epochs=2, augment=other, checkpoint_dir=tmp_path, resume=True, **options)
    assert other.rng.bit_generator.state == augment.rng.bit_generator.state
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
