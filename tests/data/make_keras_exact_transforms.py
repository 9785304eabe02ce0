"""Write ``keras_exact_transforms.npz``: Keras's own ``apply_transform`` outputs where the
last bit matters, for ``tests/test_keras_exact_transforms.py``.

This script needs Keras (3.x, its legacy ``ImageDataGenerator``) and SciPy; nothing in the
project does, and the tests only read the ``.npz`` it writes. To run it without touching the
main environment::

    python -m venv --system-site-packages /tmp/kerasenv
    /tmp/kerasenv/bin/pip install keras torch    # any backend works; torch is used below
    KERAS_BACKEND=torch /tmp/kerasenv/bin/python tests/data/make_keras_exact_transforms.py

What it covers:

- ``reviewer``: a 6 x 9 float32 image (``arange(1, 55)``) turned by ``theta=180`` with
  ``fill_mode='constant', cval=-1``: two output pixels read row ``5.000000000000001``,
  just outside the image, ``-1`` in Keras (summing the offset last reads 47 and 46).
- ``sweep``: the "exact" transforms (quarter and half turns, whole-pixel shifts, zooms by
  powers of 2, and three of them combined; `TRANSFORMS`) on every size ``h, w`` in 1..9,
  in every fill mode (``constant`` with ``cval=-1``). Each input is ``pool[:h, :w]``, one
  9 x 9 float32 image of full-mantissa values, so that an output halfway between two
  pixels shows a wrong rounding. All the turns are kept (they are where the last bit of
  ``cos(pi / 2) = 6e-17`` decides); the shifts and zooms, exact in any order, are kept
  for one size in three (`kept`).
- ``seed``: the seed's ``data_gen_args`` (`SEED_ARGS`), transforms drawn by Keras's
  ``get_random_transform(seed=s)`` for a 256 x 256 image, applied to a random uint8 image
  converted to float64 (so that a difference of 1e-14 shows). Each float64 output is
  stored as its SHA-256 (the whole image, bit for bit) and every 8th row and column.
- ``new``: arguments Keras accepts that this package used to refuse (`NEW_ARGS`): a zoom
  number above 1, a zoom pair larger first or starting at 0, negative rotation and shear
  ranges; Keras's draws for three seeds each and the outputs on ``pool``.

The ``.npz`` holds ``versions``, ``pool``, ``reviewer_input``, ``reviewer_output``,
``sweep_transforms`` (JSON), ``sweep_cases`` (one row ``mode, transform, h, w`` per case,
``mode`` indexing ``fill_modes``), ``sweep_outputs`` (the outputs flattened, in case
order), ``seed_args`` and ``seed_params`` (JSON), ``seed_image``, ``seed_sha256``,
``seed_grid``, ``new_cases`` (JSON: arguments, seed, Keras's parameters) and
``new_outputs`` (flattened).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from keras.src.legacy.preprocessing.image import ImageDataGenerator  # noqa: E402

OUT = Path(__file__).resolve().parent / "keras_exact_transforms.npz"
FILL_MODES = ("constant", "nearest", "reflect", "wrap")
CVAL = {"constant": -1.0, "nearest": 0.0, "reflect": 0.0, "wrap": 0.0}
TURNS = [dict(theta=t) for t in (90, 180, 270, -90)]
SHIFTS = [dict(tx=a, ty=b) for a, b in ((1, 0), (0, -1), (2, -3), (-4, 5), (10, -12))]
ZOOMS = [dict(zx=a, zy=b) for a, b in ((0.5, 0.5), (2, 2), (0.5, 2), (2, 1), (0.25, 4))]
COMBINED = [
    dict(theta=90, tx=1, ty=-2),
    dict(theta=180, zx=2, zy=2),
    dict(theta=270, tx=-1, ty=3, zx=0.5, zy=0.5),
]
TRANSFORMS = TURNS + SHIFTS + ZOOMS + COMBINED
SEED_ARGS = dict(
    rotation_range=0.2,
    width_shift_range=0.05,
    height_shift_range=0.05,
    shear_range=0.05,
    zoom_range=0.05,
    horizontal_flip=True,
    fill_mode="nearest",
)
SEEDS = range(4)
NEW_ARGS = [
    dict(zoom_range=1.5, fill_mode="reflect"),  # factors in [-0.5, 2.5]
    dict(zoom_range=[1.2, 0.8], fill_mode="wrap"),  # drawn from 1.2 down to 0.8
    dict(zoom_range=[0, 1], fill_mode="constant", cval=-1.0),
    dict(rotation_range=-10, fill_mode="nearest"),  # theta from 10 down to -10
    dict(rotation_range=-30, shear_range=-20, zoom_range=-0.2, fill_mode="reflect"),
]


def kept(transform: dict, t: int, h: int, w: int) -> bool:
    """Every turn; one size in three for shifts and zooms (exact whatever the order)."""
    return "theta" in transform or (9 * h + w + t) % 3 == 0


def plain(value: object) -> object:
    """A drawn parameter as JSON: ints stay ints, other numbers become floats."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value)


def main() -> None:
    rng = np.random.default_rng(2024)
    pool = (rng.random((9, 9, 1)) * 255).astype(np.float32)  # (9, 9, 1)
    out = {"pool": pool}

    reviewer = np.arange(1, 55, dtype=np.float32).reshape(6, 9, 1)
    out["reviewer_input"] = reviewer
    g = ImageDataGenerator(fill_mode="constant", cval=-1.0)
    out["reviewer_output"] = g.apply_transform(reviewer, {"theta": 180})

    cases, outputs = [], []
    for m, mode in enumerate(FILL_MODES):
        g = ImageDataGenerator(fill_mode=mode, cval=CVAL[mode])
        for t, transform in enumerate(TRANSFORMS):
            for h in range(1, 10):
                for w in range(1, 10):
                    if kept(transform, t, h, w):
                        cases.append((m, t, h, w))
                        outputs.append(g.apply_transform(pool[:h, :w], transform).ravel())
    out["fill_modes"] = np.array(FILL_MODES)
    out["sweep_transforms"] = np.array(json.dumps(TRANSFORMS))
    out["sweep_cases"] = np.array(cases, dtype=np.int8)  # (N, 4)
    out["sweep_outputs"] = np.concatenate(outputs).astype(np.float32)

    image = rng.integers(0, 256, (256, 256, 1), dtype=np.uint8)
    g = ImageDataGenerator(**SEED_ARGS)
    params, hashes, grids = [], [], []
    for seed in SEEDS:
        p = g.get_random_transform(image.shape, seed=seed)
        y = g.apply_transform(image.astype(np.float64), p)  # (256, 256, 1) float64
        params.append({k: plain(v) for k, v in p.items()})
        hashes.append(hashlib.sha256(np.ascontiguousarray(y, "<f8").tobytes()).hexdigest())
        grids.append(y[::8, ::8])
    out["seed_image"] = image
    out["seed_args"] = np.array(json.dumps(SEED_ARGS))
    out["seed_params"] = np.array(json.dumps(params))
    out["seed_sha256"] = np.array(hashes)
    out["seed_grid"] = np.stack(grids)  # (4, 32, 32, 1)

    new_cases, new_outputs = [], []
    for args in NEW_ARGS:
        g = ImageDataGenerator(**args)
        for seed in range(3):
            p = g.get_random_transform(pool.shape, seed=seed)
            new_cases.append(dict(args=args, seed=seed, params={k: plain(v) for k, v in p.items()}))
            new_outputs.append(g.apply_transform(pool, p).ravel())
    out["new_cases"] = np.array(json.dumps(new_cases))
    out["new_outputs"] = np.concatenate(new_outputs).astype(np.float32)

    out["versions"] = np.array(f"keras {keras.__version__}, scipy {scipy.__version__}")
    np.savez_compressed(OUT, **out)
    print(f"{len(cases)} sweep cases, {len(new_cases)} new-argument cases, {out['versions']}")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1000:.0f} kB)")


if __name__ == "__main__":
    main()
