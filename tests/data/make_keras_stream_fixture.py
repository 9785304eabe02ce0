"""Write ``keras-stream/``: small PNG folders and Keras's, Pillow's and skimage's outputs on
them, for ``tests/test_keras_stream.py``.

This script needs Keras (3.x, its legacy ``ImageDataGenerator``), SciPy, Pillow and
scikit-image; nothing in the project does, and the tests only read the files it writes. To
run it without touching the main environment::

    python -m venv --system-site-packages /tmp/kerasenv
    /tmp/kerasenv/bin/pip install keras torch scipy pillow scikit-image
    KERAS_BACKEND=torch /tmp/kerasenv/bin/python tests/data/make_keras_stream_fixture.py

What it covers:

- the folders: ``image/`` and ``label/``, six 24 x 30 8-bit grayscale PNGs each (masks
  0/255), named 1, 2, 3, 10, 11, 20 (one ``.PNG``) so that Keras's plain string order shows,
  and a ``notes.txt`` Keras skips; ``colour/``: RGB, RGBA, palette and gray+alpha PNGs of
  12 x 14; ``gray16/``: two 16-bit grayscale PNGs of 8 x 6 (Pillow's ``I;16`` resize rule);
- Keras's ``flow`` with the seed's augmentation, first 8 batches of ``batch_size=2,
  seed=1``: float32 images with their (untransformed) masks as ``y``, uint8 images, the
  masks themselves; uneven batches (``batch_size=4, seed=3``, 5 batches) and no shuffling;
- ``seed32_images``, ``seed32_masks``: the seed's first three batches at 32 x 32, which
  ``numpy-unet train --recipe seed --size 32`` must train on;
- the seed's ``trainGenerator`` pair before ``adjustData``: ``flow_from_directory`` of
  ``image`` and of ``label``, grayscale, ``batch_size=2, seed=1``, first 8 batches, at
  ``target_size`` (18, 21) (down) and (36, 37) (up); two classes with
  ``class_mode='categorical'`` and ``batch_size=5``; ``colour/`` in the three colour modes
  and ``gray16/`` in grayscale, unshuffled and unaugmented;
- Pillow's ``Image.resize(NEAREST)`` of 8-bit and 16-bit arrays of 37 x 53 and 8 x 4 to
  several sizes (down, up, odd ratios; 8 -> 6, 8 -> 10, 4 -> 6 and 4 -> 7 are sizes where
  Pillow's 8-bit and 16-bit rules differ) and ``convert('L')`` of RGB;
- ``skimage.transform.resize(img, (h, w))``, default arguments, float64 noise images
  ``RandomState(seed).random_sample(shape)`` at 512 -> 256 (a grid of rows and columns of
  the output is kept, to stay small), 512 -> 64, 40 -> 32, non-square, up and mixed sizes.

``expected.npz`` holds one array per output (names listed in ``cases``, a JSON string) and
``versions``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
import skimage  # noqa: E402
from keras.src.legacy.preprocessing.image import ImageDataGenerator  # noqa: E402
from PIL import Image  # noqa: E402
from skimage.transform import resize  # noqa: E402

OUT = Path(__file__).resolve().parent / "keras-stream"
NAMES = ("1.png", "2.png", "3.PNG", "10.png", "11.png", "20.png")
SEED_ARGS = dict(
    rotation_range=0.2,
    width_shift_range=0.05,
    height_shift_range=0.05,
    shear_range=0.05,
    zoom_range=0.05,
    horizontal_flip=True,
    fill_mode="nearest",
)
# down from 24 x 30 and up; at these sizes Pillow's running sum of N / n falls on the other
# side of a whole number than (i + 0.5) * N / n does, for some pixels: the rule is pinned
TARGETS = ((18, 21), (36, 37))
PIL_SIZES = ((16, 16), (64, 100), (37, 7), (5, 53), (1, 1), (111, 13), (6, 6), (10, 7))
SKIMAGE_CASES = (  # (input shape, output size)
    ((512, 512), (256, 256)),
    ((512, 512), (64, 64)),
    ((40, 40), (32, 32)),
    ((40, 52), (32, 20)),
    ((40, 52), (61, 77)),
    ((40, 52), (64, 26)),
    ((12, 14, 3), (7, 20)),
)


def smooth(rng: np.random.RandomState, h: int, w: int, blobs: int = 6) -> np.ndarray:
    """A sum of random Gaussian blobs, in [0, 1]: an image with edges and gradients."""
    r, c = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w))
    for _ in range(blobs):
        cr, cc, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 6)
        out += rng.uniform(0.3, 1) * np.exp(-((r - cr) ** 2 + (c - cc) ** 2) / (2 * s * s))
    return out / out.max()


def write_folders(rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """The PNG folders; returns the images and masks as stored, (6, 24, 30, 1) uint8."""
    shutil.rmtree(OUT, ignore_errors=True)
    for sub in ("image", "label", "colour", "gray16"):
        (OUT / sub).mkdir(parents=True)
    images, masks = [], []
    for name in NAMES:
        field = smooth(rng, 24, 30)
        image = np.round(255 * (0.8 * field + 0.2 * rng.random_sample((24, 30)))).astype(np.uint8)
        mask = np.where(smooth(rng, 24, 30, 3) > 0.4, 255, 0).astype(np.uint8)
        Image.fromarray(image).save(OUT / "image" / name)
        Image.fromarray(mask).save(OUT / "label" / name)
        images.append(image)
        masks.append(mask)
    (OUT / "image" / "notes.txt").write_text("not an image: Keras and the tests skip it\n")
    rgb = (255 * rng.random_sample((12, 14, 3))).astype(np.uint8)
    alpha = (255 * rng.random_sample((12, 14, 1))).astype(np.uint8)
    Image.fromarray(rgb).save(OUT / "colour" / "rgb.png")
    Image.fromarray(np.concatenate([rgb[::-1], alpha], -1)).save(OUT / "colour" / "rgba.png")
    Image.fromarray(rgb[:, ::-1]).quantize(9).save(OUT / "colour" / "palette.png")
    Image.fromarray(np.concatenate([rgb[..., :1], alpha], -1), "LA").save(OUT / "colour" / "la.png")
    for k in range(2):
        Image.fromarray(rng.randint(0, 65536, (8, 6)).astype(np.uint16)).save(
            OUT / "gray16" / f"{k}.png"
        )
    return np.stack(images)[..., None], np.stack(masks)[..., None]


def batches(iterator, count: int) -> list:
    return [next(iterator) for _ in range(count)]


def main() -> None:
    rng = np.random.RandomState(2024)
    images, masks = write_folders(rng)
    out: dict[str, np.ndarray] = {"images_uint8": images, "masks_uint8": masks}
    seed_gen = ImageDataGenerator(**SEED_ARGS)
    x01, m01 = (images / 255).astype(np.float32), (masks / 255).astype(np.float32)

    # flow: the seed's augmentation on arrays
    pairs = batches(seed_gen.flow(x01, m01, batch_size=2, seed=1), 8)
    out["flow_float_x"] = np.stack([b[0] for b in pairs])  # (8, 2, 24, 30, 1)
    out["flow_float_y"] = np.stack([b[1] for b in pairs])
    out["flow_uint8_x"] = np.stack(batches(seed_gen.flow(images, batch_size=2, seed=1), 8))
    out["flow_mask_x"] = np.stack(batches(seed_gen.flow(m01, batch_size=2, seed=1), 8))
    uneven = batches(seed_gen.flow(images, batch_size=4, seed=3), 5)
    out["flow_bs4_x"] = np.concatenate(uneven)
    out["flow_bs4_sizes"] = np.array([len(b) for b in uneven])
    plain = batches(seed_gen.flow(x01, batch_size=4, shuffle=False, seed=5), 3)
    out["flow_noshuffle_x"] = np.concatenate(plain)

    # flow_from_directory: the seed's trainGenerator pair, before adjustData
    for h, w in TARGETS:
        for key, folder in (("images", "image"), ("masks", "label")):
            stream = seed_gen.flow_from_directory(
                str(OUT),
                classes=[folder],
                class_mode=None,
                color_mode="grayscale",
                target_size=(h, w),
                batch_size=2,
                seed=1,
            )
            out[f"dir{h}x{w}_{key}"] = np.stack(batches(stream, 8))  # (8, 2, h, w, 1)
    # the seed's first three batches at a size a small UNet takes: `numpy-unet train
    # --recipe seed --size 32` must train on exactly these (tests/test_seed_stream.py)
    for key, folder in (("images", "image"), ("masks", "label")):
        stream = seed_gen.flow_from_directory(
            str(OUT),
            classes=[folder],
            class_mode=None,
            color_mode="grayscale",
            target_size=(32, 32),
            batch_size=2,
            seed=1,
        )
        out[f"seed32_{key}"] = np.stack(batches(stream, 3))  # (3, 2, 32, 32, 1)
    stream = seed_gen.flow_from_directory(
        str(OUT),
        classes=["image", "label"],
        class_mode="categorical",
        color_mode="grayscale",
        target_size=(16, 16),
        batch_size=5,
        seed=2,
    )
    two = batches(stream, 3)
    out["dir_categorical_x"] = np.concatenate([b[0] for b in two])
    out["dir_categorical_y"] = np.concatenate([b[1] for b in two])
    for mode in ("grayscale", "rgb", "rgba"):
        stream = ImageDataGenerator().flow_from_directory(
            str(OUT),
            classes=["colour"],
            class_mode=None,
            color_mode=mode,
            target_size=(10, 12),
            batch_size=4,
            shuffle=False,
        )
        out[f"colour_{mode}"] = next(stream)
    stream = seed_gen.flow_from_directory(
        str(OUT),
        classes=["gray16"],
        class_mode=None,
        color_mode="grayscale",
        target_size=(6, 9),
        batch_size=2,
        shuffle=False,
        seed=4,
    )
    out["gray16_grayscale"] = next(stream)

    # Pillow: NEAREST resizes (8 and 16 bits), convert("L")
    for bits, dtype in ((8, np.uint8), (16, np.uint16)):
        out[f"pil_in{bits}"] = rng.randint(0, 2**bits, (37, 53)).astype(dtype)
        out[f"pil_small{bits}"] = rng.randint(0, 2**bits, (8, 4)).astype(dtype)  # odd rules
    pil_keys = []
    for key in ("pil_in8", "pil_small8", "pil_in16", "pil_small16"):
        source = Image.fromarray(out[key])
        for h, w in PIL_SIZES:
            name = f"{key}_to_{h}x{w}"
            out[name] = np.asarray(source.resize((w, h), Image.NEAREST))
            pil_keys.append(dict(key=name, input=key, size=[h, w], mode=source.mode))
    out["luma_rgb"] = rng.randint(0, 256, (64, 64, 3)).astype(np.uint8)
    out["luma_l"] = np.asarray(Image.fromarray(out["luma_rgb"]).convert("L"))

    # skimage: resize with default arguments
    skimage_keys = []
    for seed, (shape, size) in enumerate(SKIMAGE_CASES):
        name = f"skimage_{'x'.join(map(str, shape))}_to_{size[0]}x{size[1]}"
        result = resize(np.random.RandomState(seed).random_sample(shape), size)
        rows, cols = np.arange(size[0]), np.arange(size[1])
        if result.size > 64 * 64 * 3:  # keep a grid: the borders and every 7th row/column
            rows = np.unique(np.r_[0:5, size[0] - 5 : size[0], 0 : size[0] : 7])
            cols = np.unique(np.r_[0:5, size[1] - 5 : size[1], 0 : size[1] : 7])
        out[name] = result[np.ix_(rows, cols)]
        out[f"{name}_rows"], out[f"{name}_cols"] = rows, cols
        skimage_keys.append(dict(key=name, seed=seed, shape=list(shape), size=list(size)))

    cases = dict(seed_args=SEED_ARGS, targets=TARGETS, pil=pil_keys, skimage=skimage_keys)
    out["cases"] = np.array(json.dumps(cases))
    versions = f"keras {keras.__version__}, pillow {PIL.__version__}, skimage {skimage.__version__}"
    out["versions"] = np.array(versions)
    np.savez_compressed(OUT / "expected.npz", **out)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"{versions}; wrote {OUT} ({total / 1000:.0f} kB in all)")


if __name__ == "__main__":
    main()
