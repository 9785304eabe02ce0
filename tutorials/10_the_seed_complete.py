# %% [markdown]
# # 10 · The seed, complete: Keras's augmentation, several classes, its outputs
#
# Tutorial 04 rebuilt the seed's network and tutorial 07 trained it. Three pieces of the
# seed's code are left for this one: the augmentation of its `main.py` (Keras's
# `ImageDataGenerator` with the seed's `data_gen_args`), its switch for several classes
# (`flag_multi_class`), and the pictures it writes at the end (`saveResult`).
#
# **You will learn**
#
# - what each of the seed's `data_gen_args` means, with its unit: the rotation and the shear
#   are in degrees, so small that no corner moves by a whole pixel, while the shifts and the
#   zoom move it by up to 13 and 9 pixels; and what Keras's four fill modes read outside the
#   image;
# - why the seed interpolates its masks and thresholds them afterwards, how little that
#   differs from taking the nearest pixel, and how a mask of several classes survives
#   interpolation;
# - several classes: labels and one-hot, rare classes and class-balancing weights, a 3-class
#   UNet (membrane, cell, organelle) trained with categorical cross-entropy, and its
#   accuracy, IoU and Dice per class;
# - the seed's outputs, `N_predict.png`, written by `save_result` or by the command line, and
#   the seed's `main.py` line by line.
#
# **Time:** about 20 minutes to read; its run time, measured, is in `tutorials/README.md`
# (`NUMPY_UNET_QUICK=1` runs a small version in seconds).

# %%
# ruff: noqa: E402
import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.image
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from numpy_unet import UNet
from numpy_unet.app.cli import main as numpy_unet_command
from numpy_unet.app.demo import CLASS_COLORS, CLASS_NAMES, class_balance
from numpy_unet.app.plotting import plot_classes
from numpy_unet.data import Augmenter, ImageDataGenerator, synthetic_membranes
from numpy_unet.data.keras_affine import transform_matrix
from numpy_unet.data.saving import save_result, write_png
from numpy_unet.labels import COLOR_DICT, label_to_rgb, one_hot, to_labels
from numpy_unet.metrics import class_scores
from numpy_unet.optimizers import Adam
from numpy_unet.teach.tutorial import figures_dir, pick, quick, save, show
from numpy_unet.train.seed import SEED_DATA_GEN_ARGS, SeedStream, seed_recipe

SIZE = 256  # the seed's image size, for sections 1 and 2 (cheap: no training there)
print("quick mode" if quick() else "full mode")
if quick():
    print("Quick mode: section 3's network trains for a few steps only, so its scores are not")
    print("the ones the lesson describes; the lines that need a trained network say so.")
    print("Sections 1, 2 and 4 are exact and hold in both modes.")

# %% [markdown]
# ## 1. The seed's `data_gen_args`, with units
#
# The seed's `main.py` stretches its 30 training images with
#
#     data_gen_args = dict(rotation_range=0.2, width_shift_range=0.05, height_shift_range=0.05,
#                          shear_range=0.05, zoom_range=0.05, horizontal_flip=True,
#                          fill_mode='nearest')
#
# `numpy_unet.train.seed.SEED_DATA_GEN_ARGS` is the same dict, and
# `numpy_unet.data.ImageDataGenerator(**SEED_DATA_GEN_ARGS)` does what Keras does with it:
# the same random draws for the same seed, the same pixels (the tests compare it with
# Keras's own outputs). For each image, Keras draws:
#
# - `theta`, the rotation, uniform in `[-0.2, 0.2]` **degrees**;
# - `tx` and `ty`, the shifts, uniform in `[-0.05, 0.05]` times the height and the width:
#   a range below 1 is a fraction of the size, so up to 12.8 pixels on a 256x256 image;
# - `shear`, uniform in `[-0.05, 0.05]` **degrees**;
# - `zx` and `zy`, the zoom factors, each uniform in `[0.95, 1.05]`; a factor above 1 shows
#   *more* of the input, so it zooms out;
# - a left-right flip, with probability 1/2.
#
# `get_random_transform(shape, seed)` returns these draws as a dict, and
# `apply_transform(x, params)` applies them to one `(H, W, C)` array. With `seed`, the draws
# are the ones Keras makes after `np.random.seed(seed)`.

# %%
print("the seed's data_gen_args:", SEED_DATA_GEN_ARGS)
gen = ImageDataGenerator(**SEED_DATA_GEN_ARGS, seed=0)
shape = (SIZE, SIZE, 1)
SEEDS = (1, 2, 4, 6)  # four seeds; the first two flip the image, the last two do not
params = {s: gen.get_random_transform(shape, seed=s) for s in SEEDS}
print(f"{'seed':>4} {'theta':>7} {'tx':>7} {'ty':>7} {'shear':>7} {'zx':>6} {'zy':>6} flip")
for s, p in params.items():
    print(
        f"{s:4d} {p['theta']:+7.3f} {p['tx']:+7.2f} {p['ty']:+7.2f} {p['shear']:+7.3f} "
        f"{p['zx']:6.3f} {p['zy']:6.3f} {p['flip_horizontal']}"
    )
print("(theta and shear in degrees, tx and ty in pixels)")
for s in SEEDS:
    assert gen.get_random_transform(shape, seed=s) == params[s], "the same seed, the same draws"

# %% [markdown]
# How does the seed keep each mask on its image? Its `trainGenerator` makes *two* Keras
# iterators, `flow_from_directory` over the images and over the masks, both with `seed=1`,
# and zips them. Nothing passes between the two: no transform is shared, no call made
# for both. What pairs them is how each iterator draws (Keras 3,
# `keras/src/legacy/preprocessing/image.py`): before its `k`-th batch it reseeds NumPy's
# global random state with `seed + k`; at the start of each pass over the files it draws
# their order from that state; then each image of the batch draws its transform from it.
# Two iterators with the same seed over the same number of files replay the same draws, so
# the `k`-th batch of each holds the same files, moved the same way.
# `numpy_unet.train.seed.SeedStream` is that pair (with private `RandomState`s, leaving
# NumPy's global one alone), and `numpy-unet train --recipe seed` trains from it; a test
# compares its first batches with Keras's own.

# %%
stripes = np.zeros((4, 32, 32, 1), np.float32)
stripes[:, :, ::8] = 255  # images: vertical lines every 8 pixels, values 0..255 as Keras's
lines = stripes.copy()  # "masks": the same lines, so an aligned mask is its image thresholded
stream = SeedStream(stripes, lines, batch_size=2, seed=1)
for k in range(4):  # two passes: every file seen twice, in a new order
    images_k, masks_k = stream(k)  # adjustData: images / 255, masks thresholded at 0.5
    aligned = np.array_equal(images_k > 0.5, masks_k == 1)
    assert aligned, "the same order and transforms in both iterators: each mask on its image"
other = SeedStream(stripes, lines, batch_size=2, seed=2)
moved = np.abs(stream(0)[0] - other(0)[0]).mean()
print(f"batch 0, seed 1 against seed 2: mean difference {moved:.3f} (of values in [0, 1])")
assert moved > 0, "another seed draws other transforms: the seed alone pairs the two streams"

# %% [markdown]
# Keras works backwards, like every resampler: for each *output* pixel `(r, c)` it asks which
# *input* point to read, `M @ (r, c, 1)`, with a 3x3 matrix `M` built from the draws
# (`numpy_unet.data.keras_affine.transform_matrix`, written out in the docstring of
# `image_data_generator.py`). The content therefore moves by the inverse of `M`. To see
# what each argument does, we give a generator that one argument alone, draw a few thousand
# transforms, and measure the largest distance a corner of a 256x256 image moves.
#
# **Predict before you run.** A rotation of 0.2 degrees about the centre of a 256x256 image:
# how far does a corner move? And if the 0.2 were radians?

# %%
AFFINE = ("theta", "tx", "ty", "shear", "zx", "zy")
NO_CHANGE = dict(theta=0, tx=0, ty=0, shear=0, zx=1, zy=1)
CORNERS = np.array([[0, 0, 1], [0, SIZE - 1, 1], [SIZE - 1, 0, 1], [SIZE - 1, SIZE - 1, 1]]).T


def content_map(p: dict) -> np.ndarray:
    """The 3x3 matrix that moves the content of a SIZE x SIZE image under Keras transform
    ``p`` (flips aside): the inverse of the map Keras reads the input with."""
    m = transform_matrix(**{k: p.get(k, NO_CHANGE[k]) for k in AFFINE}, h=SIZE, w=SIZE)
    return np.eye(3) if m is None else np.linalg.inv(m)  # None: nothing to do


def corner_move(p: dict) -> float:
    """The largest distance, in pixels, that a corner of the image moves under ``p``."""
    moved = content_map(p) @ CORNERS  # (3, 4): the corners' new (row, col, 1)
    return float(np.hypot(*(moved - CORNERS)[:2]).max())


DRAWS = pick(2000, 200)
cases = [(name, SEED_DATA_GEN_ARGS[name], "") for name in SEED_DATA_GEN_ARGS if "range" in name]
cases += [
    ("rotation_range", float(np.rad2deg(0.2)), "0.2 rad, had it been radians"),
    ("shear_range", float(np.rad2deg(0.05)), "0.05 rad, as Keras read it in 2017"),
]
largest = {}
print(f"corner moves of a {SIZE}x{SIZE} image, largest over {DRAWS} draws:")
for name, value, note in cases:
    one = ImageDataGenerator(**{name: value}, seed=0)
    largest[name, note] = max(corner_move(one.get_random_transform(shape)) for _ in range(DRAWS))
    print(f"  {name:18s} = {value:<7.4g} {largest[name, note]:6.2f} px  {note}")
together = max(corner_move(gen.get_random_transform(shape)) for _ in range(DRAWS))
print(f"  all of data_gen_args together:  {together:6.2f} px")
assert largest["rotation_range", ""] < 1, "the seed's rotation should move no corner by 1 px"
assert largest["shear_range", ""] < 1, "the seed's shear should move no corner by 1 px"
assert largest["rotation_range", "0.2 rad, had it been radians"] > 30, "0.2 rad: over 30 px"
for name in ("width_shift_range", "height_shift_range"):
    assert 12 < largest[name, ""] <= 0.05 * SIZE, "a shift of up to 5% of 256 px: 12.8 px"
assert 5 < largest["zoom_range", ""] < 9.5, "zoom 0.95-1.05: a corner moves by 5-9.5 px"

# %% [markdown]
# The answer: 0.63 pixels. The corner is 180 pixels from the centre, and 0.2 degrees is
# 0.0035 radians, so the arc is `180 * 0.0035 = 0.63`. Keras's `rotation_range` has always
# been in degrees; the seed's 0.2 does almost nothing, and its 0.05-degree shear moves the
# far edge by a tenth of a pixel. (Keras took the *shear* in radians until early 2018,
# keras-team/keras#8868. The seed's numbers date from its 2017 code, where 0.05 meant
# 0.05 rad = 2.9 degrees, 6 pixels at a corner; its 2018 `main.py` kept them, in degrees.)
# The real work is done by the shifts, up to 12.8 pixels, and the zoom, up to 9 pixels at a
# corner.
#
# Is `content_map` right? A small bright dot near the top-left corner, moved by
# `apply_transform`, must land where the matrix says. This also settles the directions,
# which are easy to get backwards: `tx` > 0 moves the content *left* (`tx` is drawn with
# `height_shift_range` but runs along the columns: Keras 3's axes), and `ty` > 0 moves it up.

# %%
r, c = np.mgrid[0:SIZE, 0:SIZE]  # (H, W) row and column of every pixel
dot = np.exp(-((r - 20.0) ** 2 + (c - 20.0) ** 2) / 8)[..., None]  # (H, W, 1) at (20, 20)
plain = ImageDataGenerator()  # no random draws needed: we pass the parameters ourselves
for p in ({"theta": 0.2}, {"tx": 10.0}, {"ty": 10.0}, {"zx": 1.05, "zy": 1.05}):
    moved = plain.apply_transform(dot, p)[..., 0]  # (H, W)
    measured = np.array([(moved * r).sum(), (moved * c).sum()]) / moved.sum() - 20
    expected = (content_map(p) @ [20, 20, 1])[:2] - 20
    print(f"  {p}: the dot moves by (rows, cols) {np.round(measured, 3)}, matrix {expected}")
    assert np.abs(measured - expected).max() < 0.05, "the dot should move as the matrix says"
    if "tx" in p:
        assert abs(measured[1] + 10) < 0.01, "tx = +10 should move the content 10 px left"

# %% [markdown]
# Now the seed's augmentation on one generated image. `synthetic_membranes(..., classes=3)`
# gives the images of tutorial 07 with masks of three classes (section 3); merged back into
# two classes (organelles are inside cells), they are exactly the masks of `classes=2`. The
# figure shows the image and four seeded transforms. In each, orange is the outline of the
# *transformed* mask, drawn over the transformed image, and cyan the outline of the original
# mask (flipped too, when the transform flips): the gap between them is the shift and the
# zoom, and the orange lines still sit on the image's membranes. The stripes along some
# borders are `fill_mode='nearest'` at work: the strip a shift uncovers repeats the edge
# pixels.

# %%
images, masks3 = synthetic_membranes(1, size=SIZE, seed=3, classes=3)  # (1, H, W, 1) each
_, masks2 = synthetic_membranes(1, size=SIZE, seed=3)  # the same image, two classes
image, mask3 = images[0], masks3[0]  # (H, W, 1)
mask = (mask3 > 0).astype(np.float32)  # (H, W, 1): cell (with its organelles) 1, membrane 0
assert np.array_equal(mask, masks2[0]), "merging organelles into cells gives the 2-class mask"

fig = Figure(figsize=(15, 6.6), layout="constrained")
axes = fig.subplots(2, 5)
columns = [(image, mask, "original\n")]
for s, p in params.items():
    moved_image = gen.apply_transform(image, p)  # (H, W, 1), bilinear
    moved_mask = (gen.apply_transform(mask, p) > 0.5).astype(np.float32)  # the seed's adjustData
    title = (
        f"seed {s}: shift ({p['tx']:+.1f}, {p['ty']:+.1f}) px\n"
        f"rot {p['theta']:+.2f}°, zoom {p['zx']:.3f}/{p['zy']:.3f}"
        + (", flipped" if p["flip_horizontal"] else "")
    )
    flipped = mask[:, ::-1] if p["flip_horizontal"] else mask  # the original, flipped alike
    columns.append((moved_image, moved_mask, title, flipped))
for k, (img, msk, title, *original) in enumerate(columns):
    axes[0, k].imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
    for before in original:  # the original's outline, in the transformed columns
        axes[0, k].contour(before[..., 0], levels=[0.5], colors="#56b4e9", linewidths=0.6)
    axes[0, k].contour(msk[..., 0], levels=[0.5], colors="#e69f00", linewidths=0.8)
    axes[0, k].set_title(title, fontsize=9)
    axes[1, k].imshow(msk[..., 0], cmap="gray", vmin=0, vmax=1)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("image + outlines: moved (orange), original (cyan)")
axes[1, 0].set_ylabel("moved mask (white = cell)")
fig.suptitle("the seed's augmentation: four seeded Keras transforms of one generated image")
save(fig, "10_seed_transforms.png")

# %% [markdown]
# `gen(images, masks)` does all of this for a batch: one random transform per image, from
# the generator's own random numbers, the same for its mask, which it thresholds at 0.5 as
# the seed's `adjustData` does. `gen.last_transforms` keeps the parameters it drew, so we can
# check that it is nothing more than `get_random_transform`, `apply_transform` and the
# threshold.

# %%
batch_images, batch_masks = np.repeat(images, 4, axis=0), np.repeat(mask[None], 4, axis=0)
out_images, out_masks = gen(batch_images, batch_masks)  # (4, H, W, 1) each
for i, p in enumerate(gen.last_transforms):
    assert np.array_equal(out_images[i], gen.apply_transform(batch_images[i], p))
    thresholded = (gen.apply_transform(batch_masks[i], p) > 0.5).astype(np.float32)
    assert np.array_equal(out_masks[i], thresholded), "the mask: interpolated, then > 0.5"
print(f"mask values after gen(images, masks): {np.unique(out_masks)}")
assert set(np.unique(out_masks)) <= {0.0, 1.0}, "the augmented masks should stay 0/1"

# %% [markdown]
# ### Fill modes
#
# After a shift, a zoom out or a rotation, some output pixels read points outside the
# input. `fill_mode` decides what they get. For an input row `abcd`:
#
# - `nearest` (the seed's): `aaaa|abcd|dddd`, the edge pixel repeated;
# - `reflect`: `dcba|abcd|dcba`, mirrored about the image's edge;
# - `constant`: `kkkk|abcd|kkkk`, the value `cval` (0 here);
# - `wrap`: the image repeated (with scipy's period of `n - 1` pixels, not `n`).
#
# The seed's transforms are too small to show the difference, so the figure uses an
# exaggerated one: a rotation of 30 degrees and a zoom factor of 1.3 (zooming out). The
# dashed line is where the input's border lands; inside it, the four modes must agree.

# %%
big = {"theta": 30.0, "zx": 1.3, "zy": 1.3}
m = transform_matrix(**{**NO_CHANGE, **big}, h=SIZE, w=SIZE)  # output (r, c) reads M @ (r, c, 1)
read_r, read_c = r * m[0, 0] + c * m[0, 1] + m[0, 2], r * m[1, 0] + c * m[1, 1] + m[1, 2]
inside = (read_r >= 0) & (read_r <= SIZE - 1) & (read_c >= 0) & (read_c <= SIZE - 1)
filled = {}
for mode in ("nearest", "reflect", "constant", "wrap"):
    filled[mode] = ImageDataGenerator(fill_mode=mode, cval=0.0).apply_transform(image, big)[..., 0]
print(f"rotation 30°, zoom 1.3: {1 - inside.mean():.0%} of the pixels read outside the input")
for mode, picture in filled.items():
    same = np.array_equal(picture[inside], filled["nearest"][inside])
    print(
        f"  {mode:8s}: equal to 'nearest' inside the border: {same}; mean outside "
        f"{picture[~inside].mean():.3f}"
    )
    assert same, "the fill mode should change only the pixels that read outside the input"
assert np.all(filled["constant"][~inside] == 0), "'constant' should read cval = 0 outside"
for a, b in (("nearest", "reflect"), ("reflect", "wrap"), ("nearest", "wrap")):
    assert not np.array_equal(filled[a], filled[b]), f"'{a}' and '{b}' should differ outside"

border = (content_map(big) @ CORNERS)[:2].T[[0, 1, 3, 2]]  # the input's corners, in order
fig = Figure(figsize=(15, 3.6), layout="constrained")
axes = fig.subplots(1, 5)
axes[0].imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
axes[0].set_title("original", fontsize=9)
for ax, (mode, picture) in zip(axes[1:], filled.items()):
    ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
    ax.add_patch(Polygon(border[:, ::-1], closed=True, fill=False, ec="#e69f00", ls="--", lw=1.2))
    ax.set_title(f"fill_mode='{mode}'", fontsize=9)
for ax in axes:
    ax.set(xlim=(-0.5, SIZE - 0.5), ylim=(SIZE - 0.5, -0.5), xticks=[], yticks=[])
fig.suptitle("rotation 30°, zoom 1.3: what each fill mode reads outside the input (dashed)")
save(fig, "10_fill_modes.png")

# %% [markdown]
# ## 2. Why the seed interpolates its masks, then thresholds them
#
# Keras's generator knows nothing of masks: it interpolates every array bilinearly. So the
# seed's second generator, run over the masks with the same seed, returns masks with values
# between 0 and 1 along every edge, and `adjustData` puts them back: `mask[mask > 0.5] = 1`,
# `mask[mask <= 0.5] = 0`.
#
# The other way is to copy the nearest pixel, never mixing values; the project's own
# `Augmenter` does that (it also turns images by quarter turns and flips them up-down, which
# suit EM images). How different are the two rules? Along a single row, not at all: between a
# 1 and a 0, the bilinear value is above 0.5 exactly when the point read is nearer the 1.
# They can only differ where a 2x2 block of pixels is mixed in both directions: at corners
# and slanted edges, which "bilinear, then > 0.5" rounds off and "nearest" cuts into steps.
#
# **Predict before you run.** For one of the seed's transforms of this 256x256 mask, how many
# of its 65,536 pixels differ between the two rules: none, about 1%, or about 10%?

# %%
p = {**params[1], "flip_horizontal": 0}  # seed 1's transform; a flip copies pixels exactly
soft = gen.apply_transform(mask, p)[..., 0]  # (H, W): bilinear, values in [0, 1]
seed_rule = (soft > 0.5).astype(np.float32)  # the seed: interpolate, then threshold
m = transform_matrix(**{k: p[k] for k in AFFINE}, h=SIZE, w=SIZE)
read_r, read_c = r * m[0, 0] + c * m[0, 1] + m[0, 2], r * m[1, 0] + c * m[1, 1] + m[1, 2]
near_r = np.clip(np.rint(read_r), 0, SIZE - 1).astype(int)  # the nearest pixel; outside the
near_c = np.clip(np.rint(read_c), 0, SIZE - 1).astype(int)  # image, the edge ('nearest')
nearest_rule = mask[near_r, near_c, 0]  # (H, W)
differ = seed_rule != nearest_rule
edge = (soft > 0) & (soft < 1)  # pixels whose four neighbours mix 0s and 1s
print(
    f"{edge.sum()} pixels read across an edge; the two rules differ on {differ.sum()}: "
    f"{differ.mean():.2%} of the image, {differ.sum() / edge.sum():.1%} of the edge pixels"
)
assert 0 < differ.sum() < 0.02 * differ.size, "about 1% of the pixels should differ"
assert differ.sum() < 0.1 * edge.sum(), "the rules should agree on most edge pixels too"
assert np.all(edge[differ]), "the rules can only differ where the interpolated mask is mixed"

shifted = {"tx": 3.3}  # a horizontal shift: each row moves on its own
soft_1d = gen.apply_transform(mask, shifted)[..., 0]
m1 = transform_matrix(**{**NO_CHANGE, **shifted}, h=SIZE, w=SIZE)
cols_1d = np.clip(np.rint(r * m1[1, 0] + c * m1[1, 1] + m1[1, 2]), 0, SIZE - 1).astype(int)
same_1d = np.array_equal(soft_1d > 0.5, mask[r, cols_1d, 0] > 0.5)
print(f"a horizontal shift of 3.3 px: the two rules agree on every pixel: {same_1d}")
assert same_1d, "along one row, bilinear-then-threshold is the nearest pixel"

# %% [markdown]
# The answer: about 1% of the image (676 pixels for this transform), all on edges, and even
# there the two rules agree on more than nine pixels in ten. Either rule keeps the mask on
# the image's membranes; the seed's rounds the corners a little. That is why the project's
# `Augmenter` can take the simpler nearest rule, and why `ImageDataGenerator`, which must
# reproduce the seed, takes the seed's.
#
# ### Several classes
#
# A mask of class *labels* (0 membrane, 1 cell, 2 organelle) cannot be interpolated as
# numbers: halfway between a membrane (0) and an organelle (2), bilinear interpolation says
# 1, "cell", a class found on neither side. The seed's multi-class branch has a worse
# problem: it interpolates the labels, then writes the one-hot mask with
# `new_mask[mask == i, i] = 1`, so a pixel that came out as 1.3 belongs to no class at all.
#
# `ImageDataGenerator` interpolates each class's *indicator* instead (1 where the pixel is of
# that class, 0 elsewhere) and gives each pixel the class whose indicator came out largest.
# To see the difference plainly, we relabel the cells of our 3-class mask as membrane,
# leaving a mask of 0s and 2s, and move it with one of the seed's transforms.

# %%
mask02 = np.where(mask3 == 1, 0.0, mask3).astype(np.float32)  # (H, W, 1): only 0 and 2
labels_gen = ImageDataGenerator(**SEED_DATA_GEN_ARGS, seed=1)
_, moved02 = labels_gen(images, mask02[None])  # one channel of labels: indicators, argmax
p02 = labels_gen.last_transforms[0]
as_numbers = plain.apply_transform(mask02, p02)[..., 0]  # the labels interpolated as numbers
rounded = np.rint(as_numbers)  # each pixel to the nearest label
print(
    f"classes in the 0/2 mask: {np.unique(mask02)}; after ImageDataGenerator: {np.unique(moved02)}"
)
print(f"labels interpolated as numbers and rounded: {(rounded == 1).sum()} pixels of class 1")
assert set(np.unique(moved02)) <= {0.0, 2.0}, "no class should appear between 0 and 2"
assert (rounded == 1).sum() > 0, "interpolating labels as numbers invents class 1"

seed_values = plain.apply_transform(mask3, p02)[..., 0]  # the seed's: labels interpolated
no_class = ~np.isin(seed_values, [0.0, 1.0, 2.0])  # `mask == i` holds for no class i
print(
    f"the seed's one-hot of the 3-class mask: {no_class.sum()} pixels ({no_class.mean():.0%}) "
    "in no class"
)
assert no_class.mean() > 0.15, "the seed's one-hot should leave edge pixels classless"
_, nearest02 = Augmenter(seed=0)(images, mask02[None])  # the project's: nearest pixel
assert set(np.unique(nearest02)) <= {0.0, 2.0}, "the nearest pixel never invents a class"

# %% [markdown]
# For two classes the indicator rule *is* the seed's threshold: the indicators are `1 - m`
# and `m`, and `m` wins exactly when it is above 0.5 (a tie goes to class 0, as `<= 0.5`
# does). Two generators with the same seed, one given the 0/1 mask and one its one-hot form
# (`labels.one_hot`, section 3), agree on every pixel.

# %%
_, as_binary = ImageDataGenerator(**SEED_DATA_GEN_ARGS, seed=5)(images, mask[None])
_, as_onehot = ImageDataGenerator(**SEED_DATA_GEN_ARGS, seed=5)(images, one_hot(mask[None], 2))
print(
    f"0/1 mask {as_binary.shape} and its one-hot {as_onehot.shape}: same classes after "
    f"the same transform: {np.array_equal(to_labels(as_onehot), as_binary[..., 0])}"
)
assert np.array_equal(to_labels(as_onehot), as_binary[..., 0]), "argmax of 2 = threshold 0.5"

# %% [markdown]
# The figure zooms in on 32x32 pixels of each case. Top row: the bilinear mask, the seed's
# threshold, the nearest pixel, and where the two differ (red). Bottom row: the 0/2 mask's
# labels interpolated as numbers, the same rounded (the invented cells in light gray), the
# generator's indicators and argmax, and the pixels the seed's one-hot leaves without a
# class (red): about a fifth of this mask, nearly every pixel read across an edge.


# %%
def busiest(flags: np.ndarray, n: int = 32) -> tuple[slice, slice]:
    """The n x n block (on a grid of n) holding the most True pixels."""
    counts = flags.reshape(SIZE // n, n, SIZE // n, n).sum(axis=(1, 3))
    i, j = np.unravel_index(np.argmax(counts), counts.shape)
    return slice(i * n, (i + 1) * n), slice(j * n, (j + 1) * n)


palette = np.array(CLASS_COLORS) / 255  # membrane black, cell light gray, organelle orange
win1, win2 = busiest(differ), busiest(rounded == 1)
gray = dict(cmap="gray", vmin=0, vmax=1)


def marked(base: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """An RGB picture of ``base`` (gray, darkened) with the ``flags`` pixels in red."""
    rgb = np.stack([base * 0.6] * 3, axis=-1) if base.ndim == 2 else base.copy()
    rgb[flags] = (1.0, 0.1, 0.1)
    return rgb


panels = [
    (soft[win1], "bilinear mask (values 0..1)", gray),
    (seed_rule[win1], "then > 0.5 (the seed)", gray),
    (nearest_rule[win1], "nearest pixel (Augmenter)", gray),
    (marked(seed_rule[win1], differ[win1]), f"differ: {differ.sum()} px in all", {}),
    (as_numbers[win2], "0/2 labels, bilinear (0..2)", dict(cmap="gray", vmin=0, vmax=2)),
    (palette[rounded.astype(int)[win2]], "rounded: class 1 invented", {}),
    (palette[moved02[0, ..., 0].astype(int)[win2]], "indicators, argmax (here)", {}),
    (
        marked(palette[np.clip(np.rint(seed_values), 0, 2).astype(int)], no_class)[win2],
        "3 classes, the seed's one-hot:\nno class (red)",
        {},
    ),
]
fig = Figure(figsize=(14, 7.4), layout="constrained")
for ax, (picture, title, style) in zip(fig.subplots(2, 4).ravel(), panels):
    ax.imshow(picture, interpolation="nearest", **style)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("masks through one of the seed's transforms (32x32 pixels, zoomed)")
save(fig, "10_mask_interpolation.png")

# %% [markdown]
# ## 3. Several classes
#
# The seed's `trainGenerator(..., flag_multi_class=True, num_class=K)` trains a UNet whose
# last layer is a softmax over `K` classes. Here that is `UNet(..., num_classes=K)` with
# `loss="categorical_crossentropy"`. Our data: `synthetic_membranes(n, size, seed,
# classes=3)`, the images of tutorial 07 with three classes, 0 membrane, 1 cell, and
# 2 organelle (the dark bodies inside some cells, which the two-class mask calls cell).
#
# **Predict before you run.** What share of the pixels are organelles?

# %%
SIZE3 = pick(128, 64)  # sections 3 and 4: images of SIZE3 x SIZE3
FILTERS = pick(8, 4)  # the seed has 64
BATCH, EPOCHS, STEPS = pick(4, 2), pick(10, 2), pick(25, 3)
N_TRAIN, N_VAL, N_TEST = pick((96, 8, 16), (8, 2, 4))
x, y = synthetic_membranes(N_TRAIN + N_VAL + N_TEST, size=SIZE3, seed=0, classes=3)
x_train, y_train = x[:N_TRAIN], y[:N_TRAIN]  # (N, H, W, 1) images and labels 0., 1., 2.
x_val, y_val = x[N_TRAIN : N_TRAIN + N_VAL], y[N_TRAIN : N_TRAIN + N_VAL]
x_test, y_test = x[N_TRAIN + N_VAL :], y[N_TRAIN + N_VAL :]
freq = np.bincount(y_train.astype(int).ravel(), minlength=3) / y_train.size
print(f"masks {y.shape} {y.dtype}, values {np.unique(y)}")
for k, name in enumerate(CLASS_NAMES):
    print(f"  class {k} {name:9s}: {freq[k]:6.1%} of the training pixels")
assert freq[2] < 0.10, "organelles should be rare: under 10% of the pixels"
assert freq[1] > freq[0] > freq[2], "most pixels are cells, then membranes, then organelles"

# %% [markdown]
# The answer: about 3%. A rare class is easy to ignore: a network that draws every membrane and cell
# perfectly but never an organelle is right on 97% of the pixels. Pixel accuracy hides it;
# the per-class scores of `metrics.class_scores` do not. For each class `k`, counted one
# class against the rest: its **accuracy** `TP / (TP + FN)` (the share of its pixels found),
# its **IoU** `TP / (TP + FP + FN)` and its **Dice** `2 TP / (2 TP + FP + FN)`; then the
# means over the classes.
#
# Its input is the network's output, one probability per class, `(N, H, W, K)`, and the
# truth as labels `(N, H, W, 1)` or as one-hot `(N, H, W, K)`. These are the two layouts of a
# mask of several classes, and `numpy_unet.labels` converts between them: `one_hot(labels,
# K)` puts a 1 in channel `k` where the label is `k`, and `to_labels(y)` takes the most
# probable channel, so it also turns a softmax output into predicted classes. The seed's
# `adjustData` makes the one-hot layout; `fit` takes either.

# %%
y_onehot = one_hot(y_train, 3)  # (N, H, W, 1) labels -> (N, H, W, 3)
print(
    f"labels {y_train.shape} -> one_hot {y_onehot.shape} -> to_labels {to_labels(y_onehot).shape}"
)
for k in range(3):  # one pixel of each class
    n, row, col = (int(i) for i in np.argwhere(y_train[..., 0] == k)[0])
    print(
        f"  pixel {(n, row, col)}: label {y_train[n, row, col, 0]:.0f} -> one-hot "
        f"{y_onehot[n, row, col].tolist()}"
    )
assert np.array_equal(to_labels(y_onehot), y_train[..., 0]), "to_labels undoes one_hot"
assert np.array_equal(one_hot(to_labels(y_onehot), 3), y_onehot), "one_hot undoes to_labels"

never_organelle = one_hot(np.where(y_test == 2, 1, y_test), 3)  # perfect, but no organelles
lazy = class_scores(never_organelle, y_test)
print(
    f"'perfect but never organelle': pixel accuracy {lazy['pixel_accuracy']:.3f}, "
    f"IoU per class {np.round(lazy['iou'], 3).tolist()}, mean IoU {lazy['mean_iou']:.3f}"
)
assert lazy["pixel_accuracy"] > 0.9 and lazy["iou"][2] == 0, "high accuracy, organelle IoU 0"

# %% [markdown]
# The cure is to weigh the classes in the loss, as the demo does (`numpy-unet demo --classes
# 3`) with `app.demo.class_balance`: each class gets the weight `1 / frequency`, scaled so
# that the average pixel weighs 1. Each class then carries a third of the total weight: an
# organelle pixel counts more than 20 times as much as a cell pixel.
# `fit(..., sample_weight=w)` takes the weights per pixel, `(N, H, W)`; augmentation moves
# them with their image.
#
# We train as tutorial 07 does (the seed's UNet with 8 filters, Adam at 2e-3, batches of 4,
# 128x128 images), with a softmax over 3 classes and categorical cross-entropy, and with the
# seed's augmentation: `ImageDataGenerator(**SEED_DATA_GEN_ARGS)`, which moves the labels
# with the indicator rule of section 2. Validation images are weighed the same way, so that
# `val_loss` measures the same thing as `loss`.

# %%
balance = class_balance(y_train, 3)  # (3,) weight per class
print(
    f"class weights {np.round(balance, 2).tolist()}: each class carries "
    f"{np.round(balance * freq, 3).tolist()} of the total weight"
)
assert np.allclose(balance * freq, 1 / 3), "balanced: each class carries a third of the weight"
assert np.isclose((balance * freq).sum(), 1), "the mean pixel weight is 1"
assert balance[2] > 20 * balance[1], "an organelle pixel should weigh over 20 cell pixels"
w_train = balance[y_train[..., 0].astype(int)]  # (N, H, W) per-pixel weights
w_val = balance[y_val[..., 0].astype(int)]

model = UNet((SIZE3, SIZE3, 1), filters=FILTERS, num_classes=3, seed=0)
model.compile(optimizer=Adam(2e-3), loss="categorical_crossentropy", metrics=["accuracy", "iou"])
print(f"{model.count_params():,} parameters; {EPOCHS} epochs x {STEPS} steps of {BATCH}")
t0 = time.perf_counter()
history = model.fit(
    x_train,
    y_train,  # labels (N, H, W, 1); one_hot(y_train, 3) would do the same
    sample_weight=w_train,
    batch_size=BATCH,
    epochs=EPOCHS,
    steps_per_epoch=STEPS,
    validation_data=(x_val, y_val, w_val),
    augment=ImageDataGenerator(**SEED_DATA_GEN_ARGS, seed=0),
    seed=0,
    verbose=2,
).history
training_seconds = time.perf_counter() - t0
print(f"trained in {training_seconds:.0f} s; history keys {sorted(history)}")
assert history["loss"][-1] < history["loss"][0], "the loss should fall during training"

# %% [markdown]
# `history` holds `accuracy` (the pixel accuracy) and `iou` (the mean over the classes), and
# their `val_` twins. Now the held-out test images, class by class.

# %%
probs = model.predict(x_test, batch_size=BATCH)  # (N, H, W, 3), each pixel sums to 1
scores = class_scores(probs, y_test)
predicted = to_labels(probs)  # (N, H, W) classes
print(f"held-out ({len(x_test)} images of {SIZE3}x{SIZE3}):")
print(
    f"{'class':13s} {'pixels':>7s} {'called':>7s} {'weight':>7s} "
    f"{'accuracy':>9s} {'IoU':>7s} {'Dice':>7s}"
)
for k, name in enumerate(CLASS_NAMES):
    print(
        f"{k} {name:11s} {np.mean(y_test == k):7.1%} {np.mean(predicted == k):7.1%} "
        f"{balance[k]:7.2f} {scores['accuracy'][k]:9.3f} {scores['iou'][k]:7.3f} "
        f"{scores['dice'][k]:7.3f}"
    )
print(
    f"{'mean':13s} {'':7s} {'':7s} {'':7s} {scores['mean_accuracy']:9.3f} "
    f"{scores['mean_iou']:7.3f} {scores['mean_dice']:7.3f}"
)
print(f"pixel accuracy {scores['pixel_accuracy']:.3f}")
assert np.allclose(probs.sum(axis=-1), 1, atol=1e-5), "a softmax: the classes sum to 1"
if quick():
    print("(quick mode: a few steps of training; a full run gives the scores described below)")
else:
    assert scores["mean_iou"] > 0.55, "a full run should reach a mean IoU above 0.55"
    assert scores["iou"][0] > 0.5 and scores["iou"][1] > 0.5, "membrane and cell IoU > 0.5"
    assert np.mean(predicted == 2) > np.mean(y_test == 2), (
        "with balanced weights, the network should call more organelle than there is"
    )

path = figures_dir() / "10_classes.png"
plot_classes(
    x_test,
    y_test,
    probs,
    path,
    CLASS_COLORS,
    CLASS_NAMES,
    n=pick(3, 2),
    title=f"held-out images, 3 classes: mean IoU {scores['mean_iou']:.3f}",
)
print(f"saved figure {path}")
show(path)

# %% [markdown]
# In a full run, membranes and cells come out well (IoU 0.73 and 0.89), organelles much less
# so (0.24). The network finds about two thirds of the organelle pixels, but it also calls
# organelle a rim around them and dark patches of some cells: the column "called" shows
# 2.5 times as many organelle pixels as the truth has. That is what the weights ask for: a
# missed organelle pixel costs more than 20 times as much as a cell pixel wrongly called
# organelle. Without the weights the balance tips the other way, towards never calling a
# rare class; `class_balance` is the simplest middle. Ten epochs are short, too: the
# validation IoU was still rising at the end.

# %% [markdown]
# ## 4. The seed's outputs
#
# The seed ends its `main.py` with `saveResult("data/membrane/test", results)`, which writes
# one `N_predict.png` per test image: for one class, the probability of "cell" as a gray
# picture (white = 1); for several classes, each pixel in the colour of its class, from
# `COLOR_DICT` (the 12 classes of the CamVid street scenes, the seed's multi-class example:
# class 0 "Sky" is gray, 1 "Building" dark red, 2 "Pole" beige).
# `numpy_unet.data.saving.save_result(folder, predictions)` does the same, with two
# changes a user wants: it writes each file whole or not at all, and it will not replace a
# file that is already there unless you pass `overwrite=True`. (One more: the seed's
# `labelVisualize` compares channel 0 of the prediction with each class number, which works
# for labels but not for a softmax output; here a softmax output is turned into classes by
# `to_labels` first.)

# %%
out = Path(tempfile.mkdtemp(prefix="numpy-unet-10-"))
written = save_result(out, probs)  # (N, H, W, 3): N colour pictures
names = [f.name for f in written]
print(f"save_result wrote {len(names)} files into {out}: {', '.join(names[:3])} ...")
assert names == [f"{i}_predict.png" for i in range(len(probs))], "the seed's names: N_predict"
assert sorted(names) == sorted(f.name for f in out.iterdir()), "and nothing else"

saved = matplotlib.image.imread(written[0])[..., :3]  # (H, W, 3) floats in [0, 1]
colours = np.unique(np.rint(saved * 255).astype(int).reshape(-1, 3), axis=0)
print(
    f"0_predict.png {saved.shape}: colours {colours.tolist()} (COLOR_DICT[:3] = "
    f"{COLOR_DICT[:3].tolist()})"
)
assert np.array_equal(saved, label_to_rgb(probs[0])), "the classes in COLOR_DICT's colours"

(out / "cell").mkdir()
gray = save_result(out / "cell", probs[..., 1:2])  # one channel: P(cell), as a sigmoid gives
read_back = matplotlib.image.imread(gray[0])  # (H, W): an 8-bit grayscale PNG, as the seed's
assert read_back.ndim == 2, "one channel, as skimage's io.imsave writes the seed's"
print(
    f"one class: {gray[0].name} is P(cell) in gray, to 8 bits: max error "
    f"{np.abs(read_back - probs[0, ..., 1]).max():.4f}"
)
assert np.abs(read_back - probs[0, ..., 1]).max() <= 0.5 / 255 + 1e-6, "gray = P(cell)"
try:
    save_result(out, probs)
    replaced = True
except FileExistsError as error:
    replaced = False
    print(f"writing again: FileExistsError: {str(error)[:70]}...")
assert not replaced, "save_result should refuse to replace files without overwrite=True"

fig = Figure(figsize=(10, 3.8), layout="constrained")
axes = fig.subplots(1, 3)
axes[0].imshow(x_test[0, ..., 0], cmap="gray", vmin=0, vmax=1)
axes[1].imshow(saved)
axes[2].imshow(read_back, cmap="gray", vmin=0, vmax=1)
titles = [
    "test image 0",
    "0_predict.png, 3 classes\n(COLOR_DICT)",
    "0_predict.png, one class\n(P(cell))",
]
for ax, title in zip(axes, titles):
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("the seed's outputs, as save_result writes them")
save(fig, "10_saved_results.png")

# %% [markdown]
# From the command line, `numpy-unet predict --weights W --resize --seed-names DIR` does the
# same for the images in a folder: `--resize` resizes each image to the network's input
# size first, as the seed's `testGenerator` does, and `--seed-names` writes `N_predict.png`
# as `saveResult` does (`N` is the input's name: the seed's test images are `0.png` to
# `29.png`). `numpy-unet train --recipe seed --test DIR` runs it after training. Below we
# save the weights and the test images as PNG files, run `predict` (in this process, through
# `numpy_unet.app.cli.main`), and compare: the inputs were rounded to 8 bits on the way, so
# a few pixels may change class.

# %%
weights = model.save_weights(out / "unet3.npz")  # the weights and the configuration
(out / "test").mkdir()
for i in range(len(x_test)):
    write_png(out / "test" / f"{i}.png", x_test[i, ..., 0])  # as the seed's test folder
command = ["predict", "--weights", str(weights), "--resize", "--seed-names"]
command += ["--out", str(out / "cli"), str(out / "test")]
print("numpy-unet " + " ".join(command))
with contextlib.redirect_stdout(io.StringIO()) as said:  # one line per image: keep 1
    numpy_unet_command(command)
print(said.getvalue().splitlines()[0], "...")
from_cli = sorted(f.name for f in (out / "cli").iterdir())
print(f"wrote {', '.join(from_cli[:3])} ...")
assert from_cli == sorted(names), "the command line should write the same N_predict.png names"
for name in names:
    a = matplotlib.image.imread(out / name)[..., :3]
    b = matplotlib.image.imread(out / "cli" / name)[..., :3]
    agree = np.mean(np.all(a == b, axis=-1))
    assert agree > 0.99, f"{name}: the command line should give the same classes"
print("the command line's pictures agree with save_result's on over 99% of the pixels")

# %% [markdown]
# `numpy_unet.train.seed.seed_recipe(model)` is the seed's `main.py` as options of `fit`: it
# compiles the model with Adam at 1e-4 and binary cross-entropy (categorical for several
# classes), and returns batches of 2, 300 steps, 1 epoch, and `ImageDataGenerator` with the
# seed's arguments.

# %%
seed_model = UNet((256, 256, 1), filters=4, seed=0)  # the seed's has 64 filters
options = seed_recipe(seed_model)
print(options)
assert (options["batch_size"], options["steps_per_epoch"], options["epochs"]) == (2, 300, 1)
assert seed_model.optimizer.get_config()["learning_rate"] == 1e-4, "the seed's Adam(lr=1e-4)"
augment = options["augment"]
assert all(getattr(augment, k) == v for k, v in SEED_DATA_GEN_ARGS.items()), "data_gen_args"

# %% [markdown]
# The seed's `main.py`, line by line, with what does the same here in the comments:
#
#     data_gen_args = dict(rotation_range=0.2, ...)   # train.seed.SEED_DATA_GEN_ARGS
#     myGene = trainGenerator(2, 'data/membrane/train', 'image', 'label', data_gen_args)
#                               # images, masks = load_seed_folder('data/membrane/train',
#                               # 256), and fit's batches=SeedStream(images, masks, 2, seed=1)
#     model = unet()            # model = UNet((256, 256, 1)); seed_recipe(model) compiles it
#     model_checkpoint = ModelCheckpoint('unet_membrane.hdf5', monitor='loss',
#                                        save_best_only=True)
#                               # fit(..., checkpoint_dir=DIR) keeps best_weights.npz, on the
#                               # training loss when there is no validation data
#     model.fit_generator(myGene, steps_per_epoch=300, epochs=1, callbacks=[model_checkpoint])
#                               # model.fit(x, y, checkpoint_dir=DIR, **seed_recipe(model))
#     testGene = testGenerator("data/membrane/test")   # read_image + resize_like_skimage;
#                                                      # predict --resize
#     results = model.predict_generator(testGene, 30)  # results = model.predict(x_test)
#     saveResult("data/membrane/test", results)        # save_result(folder, results);
#                                                      # predict --seed-names
#
# And all of it in one command:
#
#     numpy-unet train --recipe seed --data data/membrane/train --test data/membrane/test \
#         --out unet_membrane

# %%
shutil.rmtree(out)  # the pictures and weights were only for this tutorial

# %% [markdown]
# ## What to remember
#
# - Keras's `rotation_range` and `shear_range` are degrees: the seed's 0.2 and 0.05 move no
#   pixel by as much as one. Its shifts (up to 12.8 px) and zoom (up to 9 px at a corner) do
#   the work. `get_random_transform(shape, seed)` gives the same draws for the same seed.
# - The seed interpolates masks bilinearly and thresholds them at 0.5; that differs from the
#   nearest pixel only on a few edge pixels. Labels of several classes must not be
#   interpolated as numbers: interpolate each class's indicator and take the largest.
# - Several classes: a softmax, categorical cross-entropy, labels or one-hot
#   (`one_hot`/`to_labels`), and per-class scores, because pixel accuracy hides a rare class.
#   Balancing weights make a rare class count, at the price of false alarms.
# - `save_result` writes the seed's `N_predict.png`; `numpy-unet predict --seed-names
#   --resize` and `numpy-unet train --recipe seed --test DIR` do it from the command line.
