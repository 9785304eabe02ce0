"""Keras's image streams, batch for batch: ``flow``, ``flow_from_directory`` (the seed's
``trainGenerator``), and the twins of Pillow's nearest resize and skimage's resize.

The expected values are Keras's, Pillow's and skimage's own outputs, written by
``tests/data/make_keras_stream_fixture.py`` into ``tests/data/keras-stream/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from numpy_unet.data import ImageDataGenerator, resize_like_pil_nearest, resize_like_skimage
from numpy_unet.data.keras_iterator import convert_like_pil

FOLDER = Path(__file__).resolve().parent / "data" / "keras-stream"
SEED_ARGS = dict(
    rotation_range=0.2,
    width_shift_range=0.05,
    height_shift_range=0.05,
    shear_range=0.05,
    zoom_range=0.05,
    horizontal_flip=True,
    fill_mode="nearest",
)


@pytest.fixture(scope="module")
def expected() -> dict:
    with np.load(FOLDER / "expected.npz") as data:
        return {key: data[key] for key in data.files}


def take(iterator, count: int) -> list:
    return [next(iterator) for _ in range(count)]


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def seed_directory_stream(folder: str, size: tuple[int, int], generator=None):
    """One half of the seed's trainGenerator, before adjustData."""
    generator = generator or ImageDataGenerator(**SEED_ARGS)
    return generator.flow_from_directory(
        FOLDER,
        classes=[folder],
        class_mode=None,
        color_mode="grayscale",
        target_size=size,
        batch_size=2,
        seed=1,
    )


# -- flow -------------------------------------------------------------------------------------


def test_flow_float32_images_equal_keras_over_8_batches_and_y_comes_back_untouched(expected):
    x = (expected["images_uint8"] / 255).astype(np.float32)  # (6, 24, 30, 1)
    y = (expected["masks_uint8"] / 255).astype(np.float32)
    stream = ImageDataGenerator(**SEED_ARGS).flow(x, y, batch_size=2, seed=1)
    assert len(stream) == 3
    pairs = take(stream, 8)  # two passes and a bit: new permutations on the way
    assert max_difference(np.stack([b[0] for b in pairs]), expected["flow_float_x"]) == 0
    assert max_difference(np.stack([b[1] for b in pairs]), expected["flow_float_y"]) == 0


def test_flow_uint8_images_are_cast_to_float32_and_equal_keras(expected):
    stream = ImageDataGenerator(**SEED_ARGS).flow(expected["images_uint8"], batch_size=2, seed=1)
    assert max_difference(np.stack(take(stream, 8)), expected["flow_uint8_x"]) == 0


def test_flow_of_masks_with_the_same_seed_moves_them_with_their_images(expected):
    masks = (expected["masks_uint8"] / 255).astype(np.float32)
    stream = ImageDataGenerator(**SEED_ARGS).flow(masks, batch_size=2, seed=1)
    assert max_difference(np.stack(take(stream, 8)), expected["flow_mask_x"]) == 0


def test_flow_uneven_batches_passes_and_no_shuffle(expected):
    generator = ImageDataGenerator(**SEED_ARGS)
    stream = generator.flow(expected["images_uint8"], batch_size=4, seed=3)
    uneven = take(stream, 5)
    assert [len(b) for b in uneven] == expected["flow_bs4_sizes"].tolist() == [4, 2, 4, 2, 4]
    assert max_difference(np.concatenate(uneven), expected["flow_bs4_x"]) == 0
    x = (expected["images_uint8"] / 255).astype(np.float32)
    plain = take(generator.flow(x, batch_size=4, shuffle=False, seed=5), 3)
    assert max_difference(np.concatenate(plain), expected["flow_noshuffle_x"]) == 0


def test_flow_without_seed_is_reproducible_from_the_generators_seed(expected):
    x = expected["images_uint8"]
    first = take(ImageDataGenerator(**SEED_ARGS, seed=7).flow(x, batch_size=2), 4)
    again = take(ImageDataGenerator(**SEED_ARGS, seed=7).flow(x, batch_size=2), 4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


# -- flow_from_directory ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [(18, 21), (36, 37)], ids=["down", "up"])
def test_flow_from_directory_is_the_seeds_train_generator(expected, size):
    h, w = size
    pairs = take(zip(seed_directory_stream("image", size), seed_directory_stream("label", size)), 8)
    images, masks = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    assert images.shape == (8, 2, h, w, 1) and images.dtype == np.float32
    assert max_difference(images, expected[f"dir{h}x{w}_images"]) == 0
    assert max_difference(masks, expected[f"dir{h}x{w}_masks"]) == 0


def test_flow_from_directory_lists_files_in_keras_order():
    stream = seed_directory_stream("image", (16, 16))
    names = [Path(f).name for f in stream.filenames]
    assert names == ["1.png", "10.png", "11.png", "2.png", "20.png", "3.PNG"]  # no notes.txt
    assert len(stream) == 3 and stream.class_indices == {"image": 0}


def test_flow_from_directory_two_classes_categorical(expected):
    stream = ImageDataGenerator(**SEED_ARGS).flow_from_directory(
        FOLDER,
        classes=["image", "label"],
        class_mode="categorical",
        color_mode="grayscale",
        target_size=(16, 16),
        batch_size=5,
        seed=2,
    )
    batches = take(stream, 3)  # 5, 5, 2 of 12 files
    assert (
        max_difference(np.concatenate([b[0] for b in batches]), expected["dir_categorical_x"]) == 0
    )
    assert (
        max_difference(np.concatenate([b[1] for b in batches]), expected["dir_categorical_y"]) == 0
    )


@pytest.mark.parametrize("mode", ["grayscale", "rgb", "rgba"])
def test_colour_pngs_convert_as_pillow_does(expected, mode):
    stream = ImageDataGenerator().flow_from_directory(
        FOLDER,
        classes=["colour"],
        color_mode=mode,
        target_size=(10, 12),
        batch_size=4,
        shuffle=False,
    )
    assert max_difference(next(stream), expected[f"colour_{mode}"]) == 0


def test_sixteen_bit_pngs_keep_their_values_and_pillows_16_bit_resize_rule(expected):
    stream = ImageDataGenerator(**SEED_ARGS).flow_from_directory(
        FOLDER,
        classes=["gray16"],
        color_mode="grayscale",
        target_size=(6, 9),
        batch_size=2,
        shuffle=False,
        seed=4,
    )
    assert max_difference(next(stream), expected["gray16_grayscale"]) == 0


# -- the twins of Pillow and skimage ----------------------------------------------------------


def test_pil_nearest_twin_equals_pillow_and_both_of_its_rules_matter(expected):
    cases = json.loads(str(expected["cases"]))["pil"]
    assert len(cases) == 32
    wrong_rule_fails = 0
    for case in cases:
        image, sixteen = expected[case["input"]], case["mode"] == "I;16"
        out = resize_like_pil_nearest(image, tuple(case["size"]), sixteen_bit=sixteen)
        assert out.dtype == image.dtype
        assert np.array_equal(out, expected[case["key"]]), case
        other = resize_like_pil_nearest(image, tuple(case["size"]), sixteen_bit=not sixteen)
        wrong_rule_fails += not np.array_equal(other, expected[case["key"]])
    assert wrong_rule_fails >= 4  # the sizes where the two rules differ are covered


def test_grayscale_of_rgb_is_pillows_integer_luma(expected):
    gray = convert_like_pil(expected["luma_rgb"], "grayscale")[..., 0]
    assert np.array_equal(gray, expected["luma_l"])


def test_skimage_twin_is_within_1e_6_of_skimage(expected):
    cases = json.loads(str(expected["cases"]))["skimage"]
    worst = {}
    for case in cases:
        image = np.random.RandomState(case["seed"]).random_sample(case["shape"])
        out = resize_like_skimage(image, tuple(case["size"]))
        assert out.shape == (*case["size"], *case["shape"][2:]) and out.dtype == np.float64
        grid = np.ix_(expected[f"{case['key']}_rows"], expected[f"{case['key']}_cols"])
        worst[case["key"]] = max_difference(out[grid], expected[case["key"]])
    assert len(worst) == 7 and max(worst.values()) < 1e-6, worst


# -- the global random state and the errors ---------------------------------------------------


def test_iterating_leaves_numpys_global_random_state_alone(expected):
    before = np.random.get_state()  # noqa: NPY002 (the global state is what is checked)
    generator = ImageDataGenerator(**SEED_ARGS)
    take(generator.flow(expected["images_uint8"], batch_size=2, seed=1), 4)
    take(generator.flow(expected["images_uint8"], batch_size=2), 4)
    take(seed_directory_stream("label", (16, 16), generator), 4)
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0] and np.array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_bad_arguments_get_clear_errors_naming_the_method(tmp_path, expected):
    generator = ImageDataGenerator(**SEED_ARGS)
    flow, from_dir = "ImageDataGenerator.flow", "ImageDataGenerator.flow_from_directory"
    with pytest.raises(FileNotFoundError, match=f"{from_dir}: the directory .* does not exist"):
        generator.flow_from_directory(tmp_path / "missing", class_mode=None)
    (tmp_path / "image").mkdir()
    with pytest.raises(FileNotFoundError, match=f"{from_dir}: found no images"):
        generator.flow_from_directory(tmp_path, classes=["image"])
    with pytest.raises(FileNotFoundError, match=f"{from_dir}: .* no subfolder 'label'"):
        generator.flow_from_directory(tmp_path, classes=["label"])
    shutil.copy(FOLDER / "image" / "1.png", tmp_path / "image" / "1.png")
    with pytest.raises(ValueError, match=f"{from_dir}: batch_size must be an int >= 1, got 0"):
        generator.flow_from_directory(tmp_path, classes=["image"], batch_size=0)
    with pytest.raises(ValueError, match=f"{from_dir}: color_mode must be one of"):
        generator.flow_from_directory(tmp_path, color_mode="gray")
    (tmp_path / "image" / "2.ppm").write_bytes(b"P5\n1 1\n255\n\0")
    with pytest.raises(ValueError, match=f"{from_dir}: Keras would list .*2.ppm"):
        generator.flow_from_directory(tmp_path, classes=["image"])
    x = expected["images_uint8"]
    with pytest.raises(ValueError, match=f"{flow}: batch_size must be an int >= 1, got 0"):
        generator.flow(x, batch_size=0)
    with pytest.raises(ValueError, match=f"{flow}: x must be a non-empty array of rank 4"):
        generator.flow(x[..., 0])
    with pytest.raises(ValueError, match=f"{flow}: x and y must have the same length"):
        generator.flow(x, x[:3])
    with pytest.raises(ValueError, match=f"{flow}: seed must be an int"):
        generator.flow(x, seed=-1)
    with pytest.raises(ValueError, match="resize_like_skimage: expected a float, uint8"):
        resize_like_skimage(np.zeros((4, 4), bool), (2, 2))
