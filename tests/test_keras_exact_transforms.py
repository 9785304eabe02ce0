"""ImageDataGenerator against Keras, bit for bit, where the last bit decides.

Keras's quarter turns are not exact (``cos(pi / 2) = 6e-17``): whether a point falls inside
or outside, or how a value halfway between two float32 numbers rounds, depends on the order
of every sum (see :mod:`numpy_unet.data.keras_affine`). The fixture is Keras's own output
(``tests/data/make_keras_exact_transforms.py`` wrote it); every comparison here is of the
bits, with no tolerance.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from numpy_unet.data import ImageDataGenerator

FIXTURE = np.load(Path(__file__).parent / "data" / "keras_exact_transforms.npz")
FILL_MODES = tuple(str(m) for m in FIXTURE["fill_modes"])
CVAL = {"constant": -1.0, "nearest": 0.0, "reflect": 0.0, "wrap": 0.0}
TRANSFORMS = json.loads(str(FIXTURE["sweep_transforms"]))
POOL = FIXTURE["pool"]  # (9, 9, 1) float32: each sweep input is POOL[:h, :w]
SEED_ARGS = dict(
    rotation_range=0.2,
    width_shift_range=0.05,
    height_shift_range=0.05,
    shear_range=0.05,
    zoom_range=0.05,
    horizontal_flip=True,
    fill_mode="nearest",
)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, dtype and bytes (so ``-0.0`` differs from ``0.0``)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def sweep() -> list[tuple[str, dict, int, int, np.ndarray]]:
    """The fixture's exact cases: fill mode, transform, height, width, Keras's output."""
    cases, start = [], 0
    for m, t, h, w in FIXTURE["sweep_cases"].astype(int):
        expected = FIXTURE["sweep_outputs"][start : start + h * w].reshape(h, w, 1)
        cases.append((FILL_MODES[m], TRANSFORMS[t], h, w, expected))
        start += h * w
    assert start == FIXTURE["sweep_outputs"].size
    return cases


SWEEP = sweep()


def test_the_reviewers_half_turn_reads_cval_just_outside():
    x = FIXTURE["reviewer_input"]  # (6, 9, 1) float32, arange(1, 55)
    out = ImageDataGenerator(fill_mode="constant", cval=-1.0).apply_transform(x, {"theta": 180})
    assert same_bits(out, FIXTURE["reviewer_output"])
    assert out[3, 4, 0] == out[3, 5, 0] == -1  # 47 and 46 with the offset summed last


@pytest.mark.parametrize("fill_mode", ["constant", "nearest", "reflect", "wrap"])
def test_exact_transforms_equal_keras_bit_for_bit(fill_mode):
    generator = ImageDataGenerator(fill_mode=fill_mode, cval=CVAL[fill_mode])
    wrong = []
    for mode, transform, h, w, expected in SWEEP:
        if mode == fill_mode:
            out = generator.apply_transform(POOL[:h, :w], transform)
            if not same_bits(out, expected):
                wrong.append(f"{transform} {h}x{w}: {max_difference(out, expected)}")
    assert not wrong, f"{len(wrong)} cases differ from Keras, e.g. {wrong[:5]}"


def test_the_sweep_covers_every_mode_kind_and_size():
    assert len(SWEEP) == 3348
    kinds = {
        "turn": lambda t: set(t) == {"theta"},
        "shift": lambda t: set(t) == {"tx", "ty"},
        "zoom": lambda t: set(t) == {"zx", "zy"},
        "combined": lambda t: "theta" in t and len(t) > 1,
    }
    for fill_mode in FILL_MODES:
        for kind, is_kind in kinds.items():
            sizes = {(h, w) for m, t, h, w, _ in SWEEP if m == fill_mode and is_kind(t)}
            assert {h for h, _ in sizes} == set(range(1, 10)), (fill_mode, kind)
            assert {w for _, w in sizes} == set(range(1, 10)), (fill_mode, kind)
    thetas = {t["theta"] for t in TRANSFORMS if "theta" in t}
    assert {90, 180, 270} <= thetas
    assert {(t["zx"], t["zy"]) for t in TRANSFORMS if "zx" in t} >= {(0.5, 0.5), (2, 2)}
    assert str(FIXTURE["versions"]).startswith("keras 3.")


@pytest.mark.parametrize("seed", range(4))
def test_the_seeds_arguments_at_256_equal_keras_bit_for_bit(seed):
    assert json.loads(str(FIXTURE["seed_args"])) == SEED_ARGS
    recorded = json.loads(str(FIXTURE["seed_params"]))[seed]
    generator = ImageDataGenerator(**SEED_ARGS)
    drawn = generator.get_random_transform((256, 256, 1), seed=seed)
    assert drawn == recorded  # the same draws, exactly
    image = FIXTURE["seed_image"].astype(np.float64)  # (256, 256, 1), uint8 values
    out = generator.apply_transform(image, recorded)  # (256, 256, 1) float64
    grid = FIXTURE["seed_grid"][seed]  # every 8th row and column of Keras's output
    assert max_difference(out[::8, ::8], grid) == 0
    assert same_bits(out[::8, ::8], grid)
    digest = hashlib.sha256(np.ascontiguousarray(out, "<f8").tobytes()).hexdigest()
    assert digest == str(FIXTURE["seed_sha256"][seed]), "the 256 x 256 output differs"


# -- arguments Keras accepts: a zoom above 1, a zoom pair larger first, negative ranges ----

NEW = json.loads(str(FIXTURE["new_cases"]))


@pytest.mark.parametrize("index", range(len(NEW)), ids=[f"{c['args']}-{c['seed']}" for c in NEW])
def test_newly_accepted_arguments_draw_and_apply_as_keras(index):
    case = NEW[index]
    generator = ImageDataGenerator(**case["args"])
    drawn = generator.get_random_transform(POOL.shape, seed=case["seed"])
    assert drawn == case["params"]
    out = generator.apply_transform(POOL, case["params"])
    n = POOL.size
    assert same_bits(out, FIXTURE["new_outputs"][index * n : (index + 1) * n].reshape(POOL.shape))


def test_what_the_new_arguments_mean():
    assert ImageDataGenerator(zoom_range=1.5).zoom_bounds == [-0.5, 2.5]  # as Keras's
    assert ImageDataGenerator(zoom_range=[1.2, 0.8]).zoom_bounds == [1.2, 0.8]
    assert ImageDataGenerator(zoom_range=(0, 1)).zoom_bounds == [0, 1]
    assert ImageDataGenerator(zoom_range=-0.2).zoom_bounds == [1.2, 0.8]
    thetas = [c["params"]["theta"] for c in NEW if c["args"].get("rotation_range") == -10]
    assert len(thetas) == 3 and all(-10 <= theta <= 10 for theta in thetas)


@pytest.mark.parametrize(
    "args",
    [
        dict(zoom_range=1.5),
        dict(zoom_range=[1.2, 0.8]),
        dict(zoom_range=[0, 1]),
        dict(rotation_range=-10, shear_range=-5, zoom_range=-0.2),
    ],
)
def test_the_new_arguments_draw_from_the_generator_too(args):
    """Without a seed the draws come from a numpy Generator, which refuses ``high < low``
    in ``uniform``: the package draws ``low + (high - low) * u`` instead."""
    generator = ImageDataGenerator(**args, seed=0)
    lo, hi = sorted(generator.zoom_bounds)
    for _ in range(50):
        p = generator.get_random_transform((8, 8, 1))
        assert -10 <= p["theta"] <= 10 and -5 <= p["shear"] <= 5
        assert lo <= p["zx"] <= hi and lo <= p["zy"] <= hi
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    out, masks = generator(images, (images > 0.5).astype(np.float32))
    assert out.shape == images.shape and set(np.unique(masks)) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "options",
    [
        dict(rotation_range=float("inf")),
        dict(shear_range=float("nan")),
        dict(zoom_range=float("nan")),
        dict(zoom_range=(0.8, float("inf"))),
        dict(zoom_range=(0.8,)),
        dict(zoom_range=True),
        dict(zoom_range="0.1"),
    ],
)
def test_non_finite_and_non_numeric_ranges_are_still_refused(options):
    """Keras would take the infinities, NaNs and ``True`` (as 1) too; none makes a usable
    transform, so they are refused here, naming the argument."""
    with pytest.raises(ValueError, match=f"ImageDataGenerator.*{next(iter(options))}"):
        ImageDataGenerator(**options)
