"""Write ``keras_augmentation_synthetic.npz``: Keras's own ImageDataGenerator outputs on a
small synthetic image, for ``tests/test_image_data_generator.py``.

This script needs Keras (3.x, its legacy ``ImageDataGenerator``) and SciPy; nothing in the
project does, and the tests only read the ``.npz`` it writes. To run it without touching the
main environment::

    python -m venv --system-site-packages /tmp/kerasenv
    /tmp/kerasenv/bin/pip install keras          # any backend works; torch is used below
    KERAS_BACKEND=torch /tmp/kerasenv/bin/python tests/data/make_keras_augmentation_fixture.py

What it covers: a non-square (24 x 20) two-channel float32 image and its binary mask, under
the four fill modes (``constant`` with ``cval=0.75``); rotation, pixel shifts, shear, a
zoom pair, both flips, all at once; uint8 and int16 images (scipy's rounding); and random
transforms drawn by ``get_random_transform(seed=s)`` with non-default arguments (int, float
and list-valued shift ranges, a zoom pair, vertical flips), with their outputs.

The ``.npz`` holds ``image``, ``mask``, ``image_uint8``, ``image_int16``, one
``<key>_<input>`` array per output, and ``cases``: a JSON string listing each case's key,
generator arguments, parameters and inputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from keras.src.legacy.preprocessing.image import ImageDataGenerator  # noqa: E402

OUT = Path(__file__).resolve().parent / "keras_augmentation_synthetic.npz"


def synthetic_image(h: int = 24, w: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A smooth gradient plus three discs (channel 0), a tilted ramp (channel 1), and the
    discs as the mask. Asymmetric on purpose, so a swapped axis or a wrong sign shows."""
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    discs = np.zeros((h, w))
    for cr, cc, radius, value in [(5, 6, 3.5, 0.6), (15, 13, 4.5, 0.4), (20, 3, 2.5, 0.8)]:
        discs = np.maximum(discs, value * ((r - cr) ** 2 + (c - cc) ** 2 <= radius**2))
    gradient = 0.3 * r / (h - 1) + 0.1 * c / (w - 1)
    ramp = np.sin(0.35 * r + 0.2 * c) * 0.5 + 0.5
    image = np.stack([gradient + discs, ramp], axis=-1).astype(np.float32)  # (24, 20, 2)
    mask = (discs > 0)[..., None].astype(np.float32)  # (24, 20, 1)
    return image, mask


def plain(value: object) -> object:
    """A drawn parameter as JSON: ints stay ints, other numbers become floats."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value)


FIXED = {  # transforms given directly to apply_transform
    "rotate": dict(theta=25.0),
    "shift": dict(tx=3.0, ty=-2.5),
    "shear": dict(shear=15.0),
    "zoom": dict(zx=1.3, zy=0.8),
    "flips": dict(flip_horizontal=1, flip_vertical=1),
    "all": dict(
        theta=-12.0,
        tx=-1.5,
        ty=2.0,
        shear=7.0,
        zx=0.9,
        zy=1.15,
        flip_horizontal=0,
        flip_vertical=1,
    ),
}
DRAWN = {  # generator arguments for get_random_transform(seed=s)
    "drawA": dict(
        rotation_range=30,
        width_shift_range=3,
        height_shift_range=2.5,
        shear_range=10,
        zoom_range=[0.8, 1.2],
        horizontal_flip=True,
        vertical_flip=True,
        fill_mode="reflect",
    ),
    "drawB": dict(
        width_shift_range=[0.1, 0.2],
        height_shift_range=[1, 2, 4],
        zoom_range=0.1,
        vertical_flip=True,
        fill_mode="constant",
        cval=0.5,
    ),
    "drawC": dict(
        rotation_range=5.0,
        height_shift_range=0.1,
        width_shift_range=0.25,
        shear_range=2.0,
        horizontal_flip=True,
        fill_mode="wrap",
    ),
}


def main() -> None:
    image, mask = synthetic_image()
    inputs = {
        "image": image,
        "mask": mask,
        "image_uint8": np.round(image * 200).astype(np.uint8),
        "image_int16": np.round((image - 0.5) * 999).astype(np.int16),
    }
    out = dict(inputs)
    cases = []

    def record(key: str, args: dict, params: dict, names: tuple[str, ...]) -> None:
        g = ImageDataGenerator(**args)
        for name in names:
            out[f"{key}_{name}"] = g.apply_transform(inputs[name], params)
        cases.append(
            dict(
                key=key,
                args=args,
                params={k: plain(v) for k, v in params.items()},
                inputs=list(names),
            )
        )

    for fill in ("nearest", "reflect", "constant", "wrap"):
        args = dict(fill_mode=fill, cval=0.75 if fill == "constant" else 0.0)
        for name, params in FIXED.items():
            record(f"{fill}_{name}", args, params, ("image", "mask"))
    for fill in ("nearest", "constant"):
        args = dict(fill_mode=fill, cval=0.75 if fill == "constant" else 0.0)
        record(f"ints_{fill}", args, FIXED["all"], ("image_uint8", "image_int16"))
    for name, args in DRAWN.items():
        g = ImageDataGenerator(**args)
        for seed in range(3):
            params = g.get_random_transform(image.shape, seed=seed)
            record(f"{name}_seed{seed}", args, params, ("image", "mask"))

    out["cases"] = np.array(json.dumps(cases))
    out["versions"] = np.array(f"keras {keras.__version__}, scipy {scipy.__version__}")
    np.savez_compressed(OUT, **out)
    print(f"{len(cases)} cases, keras {keras.__version__}, scipy {scipy.__version__}")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1000:.0f} kB)")


if __name__ == "__main__":
    main()
