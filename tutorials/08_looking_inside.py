# %% [markdown]
# # 08 · Looking inside a trained UNet
#
# A trained network is not a black box when every layer is a NumPy object you can call
# yourself. This tutorial trains a small UNet briefly and then looks at
# what flows through it.
#
# **You will learn**
#
# - how to run the UNet one layer at a time, exactly as `UNet.forward` does, and keep every
#   level's feature maps;
# - what those feature maps look like, from edge detectors at the top of the U to coarse
#   blobs at the bottom;
# - how large each layer's gradient is after one backward pass, before and after training;
# - what dropout does: the same input through the network in training mode gives a
#   different answer each time; `drop4` zeroes half of its inputs and doubles the rest.
#
# **Time:** about 15 minutes to read; its run time, measured, is in `tutorials/README.md`
# (`NUMPY_UNET_QUICK=1` runs a small version in seconds). Pass `--data DIR` to use the
# real ISBI 2012 images.

# %%
# ruff: noqa: E402
import time

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from numpy_unet import UNet
from numpy_unet.data import Augmenter
from numpy_unet.losses import BinaryCrossentropy
from numpy_unet.metrics import dice
from numpy_unet.optimizers import Adam
from numpy_unet.teach.tutorial import membranes, pick, quick, save

SIZE = pick(128, 64)
FILTERS = pick(8, 4)
BATCH = pick(4, 2)
EPOCHS = pick(6, 1)
STEPS = pick(25, 3)
N_IMAGES = pick(52, 8)
print("quick mode" if quick() else "full mode", f"- images {SIZE}x{SIZE}, {FILTERS} filters")
if quick():
    print("Quick mode: the network trains for 3 steps only. It is barely trained, so its")
    print("feature maps, gradients and scores are not the ones the lesson describes; the")
    print("lines that need a trained network say so. Run without NUMPY_UNET_QUICK for those.")

# %% [markdown]
# ## 1. Train a small UNet briefly
#
# The recipe of tutorial 07 (and of `numpy-unet demo`), for half as many epochs: the
# seed's UNet with 8 filters instead of 64, Adam at 2e-3, binary cross-entropy,
# augmentation (quick mode: 4 filters, 3 steps). We keep a few images aside to look at.

# %%
images, masks, source = membranes(N_IMAGES, size=SIZE, seed=0)
n_val = max(2, len(images) // 8)
x_train, y_train = images[:-n_val], masks[:-n_val]
x_val, y_val = images[-n_val:], masks[-n_val:]
print(f"data: {source}; {len(x_train)} training and {n_val} held-out images")

model = UNet((SIZE, SIZE, 1), filters=FILTERS, seed=0)
untrained = UNet((SIZE, SIZE, 1), filters=FILTERS, seed=0)  # the same start, kept for later
model.compile(optimizer=Adam(2e-3), loss="binary_crossentropy", metrics=["dice"])
t0 = time.perf_counter()
history = model.fit(
    x_train,
    y_train,
    batch_size=BATCH,
    epochs=EPOCHS,
    steps_per_epoch=STEPS,
    validation_data=(x_val, y_val),
    augment=Augmenter(seed=0),
    verbose=2,
)
train_seconds = time.perf_counter() - t0
print(f"trained in {train_seconds:.0f} s; held-out Dice {history.history['val_dice'][-1]:.4f}")
if not quick():
    assert history.history["val_dice"][-1] > 0.9, "a full run should give a working network"

# %% [markdown]
# ## 2. Feature maps at every level
#
# `UNet.forward` is a short loop over `model.down`, `model.bottom` and `model.up`, each a
# small dataclass holding its layers (`conv1`, `conv2`, `drop`, `pool`, `upsample`,
# `upconv`, `merge`). Below is the same loop, written out as a function, with two
# additions: it keeps the output of every level's second conv in `maps`, and it can switch
# the two deepest levels off (`deep=0`, used in section 4). Nothing here is hidden in the
# model; each call is a plain `layer.forward(x)`.
#
# Shapes to expect for a 128x128 input with 8 filters (a full run; quick mode uses 64x64
# and 4): the contracting path halves the size and doubles the channels at each level,
# `(1, 128, 128, 8)` down to `(1, 8, 8, 128)` at the bottom, and the expanding path undoes
# it.


# %%
def run_unet(x: np.ndarray, deep: float = 1.0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """UNet.forward in inference mode, written out; returns every level's output and P(cell).

    ``deep`` multiplies the output of the two dropout layers (drop4 and drop5); 1 changes
    nothing, and section 4 sets it to 0 to see what the deepest levels contribute.
    """
    maps = {}  # name of the conv -> its output
    skips = []
    h = x
    for level in model.down:  # contracting path
        h = level.conv2.forward(level.conv1.forward(h))  # two 3x3 convs with ReLU
        if level.drop is not None:
            h = deep * level.drop.forward(h, training=False)  # drop4: identity at inference
        maps[level.conv2.name] = h
        skips.append(h)  # the skip connection keeps this tensor
        h = level.pool.forward(h)  # 2x2 max-pool: half the size
    h = model.bottom.conv2.forward(model.bottom.conv1.forward(h))  # the bottom of the U
    if model.bottom.drop is not None:
        h = deep * model.bottom.drop.forward(h, training=False)  # drop5
    maps[model.bottom.conv2.name] = h
    for level in model.up:  # expanding path
        skip = skips.pop()  # same depth: last saved, first used
        h = level.upconv.forward(level.upsample.forward(h))  # double the size, halve channels
        h = level.merge.forward([skip, h])  # concatenate: skip first, as the seed does
        h = level.conv2.forward(level.conv1.forward(h))
        maps[level.conv2.name] = h
    head_conv, output_conv = model.head  # the seed's Conv2D(2, 3, relu), Conv2D(1, 1, sigmoid)
    maps[head_conv.name] = head_conv.forward(h)
    return maps, output_conv.forward(maps[head_conv.name])


x = x_val[:1]  # (1, H, W, 1): one held-out image
maps, prob = run_unet(x)
head_conv = model.head[0]

difference = np.abs(prob - model.predict(x)).max()
print(f"same as model.predict: max difference {difference:.1e}")
assert difference < 1e-6, "run_unet is UNet.forward written out: it should give predict's answer"
bottom_name = model.bottom.conv2.name
assert maps["conv1_2"].shape == (1, SIZE, SIZE, FILTERS), "level 1: full size, FILTERS channels"
assert maps[bottom_name].shape == (1, SIZE // 16, SIZE // 16, 16 * FILTERS), (
    "the bottom: 4 poolings (size / 16), 4 doublings of the channels (16 x FILTERS)"
)
print(f"{'layer':10s} {'output shape':18s} {'zeros':>6s} {'dead channels':>14s} {'mean':>6s}")
for name, m in maps.items():
    dead = int((m.reshape(-1, m.shape[-1]).max(axis=0) == 0).sum())
    print(
        f"{name:10s} {str(m.shape):18s} {np.mean(m == 0):6.0%} {dead:>8d} of {m.shape[-1]:<3d} "
        f"{m.mean():6.3f}"
    )
print("'zeros': the share of activations the ReLU set to 0 for this image;")
print("'dead channels': channels that are 0 everywhere on it.")
bottom = maps[bottom_name][0].reshape(-1, maps[bottom_name].shape[-1])  # (h * w, channels)
dead_bottom = int((bottom.max(axis=0) == 0).sum())
if not quick():  # a full run: training silenced most of the bottom (discussed in section 4)
    assert dead_bottom > bottom.shape[1] / 2, f"most of {bottom_name}'s channels should be dead"

# %% [markdown]
# The figure is laid out like the U: the input at the top left, the contracting path down
# the left side, the bottom of the U in the last row, the expanding path up the right side,
# and the head at the top right, where the U ends. Each row shows the four channels that
# vary most on this image. Each map has its own colour scale, from 0 (black, the ReLU's
# floor) to the channel's maximum, printed in its title; the bar at the bottom right says
# so once for all of them.

# %%
down_names = [lvl.conv2.name for lvl in model.down]  # conv1_2 (top) ... conv4_2
up_names = [lvl.conv2.name for lvl in reversed(model.up)]  # conv9_2 (top) ... conv6_2
fig = Figure(figsize=(17, 2.8 * (len(down_names) + 2)), layout="constrained")
rows = fig.subfigures(len(down_names) + 2, 1, hspace=0.01)  # input/head, levels, bottom


def four_panels(sub: object, panels: list, title: str) -> None:
    """Up to four (image, title, colour map, max) panels in one row of a subfigure."""
    axes = sub.subplots(1, 4)
    for ax in axes:
        ax.axis("off")
    for ax, (img, label, cmap, top) in zip(axes, panels):
        ax.axis("on")
        ax.imshow(img, cmap=cmap, vmin=0, vmax=max(top, 1e-6))
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    sub.suptitle(title, fontsize=10)


def channel(a: np.ndarray, label: str) -> tuple:
    """One feature map as a panel, scaled from 0 to its own max."""
    return (a, f"{label}, max {a.max():.2f}", "magma", a.max())


def channels(name: str) -> list:
    """The four most varied channels of maps[name]."""
    m = maps[name][0]  # (h, w, c)
    order = np.argsort(m.reshape(-1, m.shape[-1]).std(axis=0))[::-1][:4]
    return [channel(m[..., c], f"ch {c}") for c in order]


input_row, head_row = rows[0].subfigures(1, 2, wspace=0.03)
four_panels(
    input_row,
    [(x[0, ..., 0], "input image", "gray", 1.0), (y_val[0, ..., 0], "true mask", "gray", 1.0)],
    f"input {x.shape}: into conv1_1",
)
head_maps, output_conv = maps[head_conv.name][0], model.head[1]
four_panels(
    head_row,
    [
        channel(head_maps[..., 0], "ch 0"),
        channel(head_maps[..., 1], "ch 1"),
        (prob[0, ..., 0], f"{output_conv.name}: P(cell), 0 to 1", "magma", 1.0),
        (prob[0, ..., 0] >= 0.5, "P(cell) >= 0.5 (white = cell)", "gray", 1.0),
    ],
    f"head, after conv9_2: {head_conv.name} {maps[head_conv.name].shape}, "
    f"then {output_conv.name} + sigmoid {prob.shape}",
)
for row, down, up in zip(rows[1:-1], down_names, up_names):
    left, right = row.subfigures(1, 2, wspace=0.03)
    four_panels(left, channels(down), f"{down}: {maps[down].shape}")
    four_panels(right, channels(up), f"{up}: {maps[up].shape}")
_, middle, key = rows[-1].subfigures(1, 3, width_ratios=[1, 2, 1])
four_panels(
    middle, channels(bottom_name), f"bottom of the U, {bottom_name}: {maps[bottom_name].shape}"
)
bar = key.colorbar(
    ScalarMappable(Normalize(0, 1), cmap="magma"), cax=key.add_axes((0.12, 0.08, 0.07, 0.58))
)
bar.set_ticks([0, 0.5, 1], labels=["0", "max / 2", "max"])
scale = "colour scale of every map:\n0 to its channel's max\n(P(cell): 0 to 1)"
key.text(0.05, 0.95, scale, va="top")
trained = "a barely trained (quick mode)" if quick() else "a trained"
fig.suptitle(f"feature maps of {trained} UNet ({source}), laid out like the U")
save(fig, "08_feature_maps.png")
bottom_size = maps[bottom_name].shape[1]
if quick():
    print("(quick mode: three steps of training; the maps of a full run show the lesson)")
else:
    print("Look at: conv1_2 responds to edges and brightness; the bottom (conv5_2) is a coarse")
    print(f"{bottom_size}x{bottom_size} summary; the expanding path sharpens it back into")
    print("membrane-shaped maps at full size, helped by the skips.")

# %% [markdown]
# ## 3. Gradient magnitudes, layer by layer
#
# After one backward pass, every conv's `grads["kernel"]` holds `dL/dkernel`.
# `model.get_gradients()` returns them in `model.get_weights()` order, and `model.params`
# gives the names in the same order (`"conv1_1/kernel"`, `"conv1_1/bias"`, ...). We take
# the root mean square of each kernel's gradient, for the same batch, in the untrained
# network (the same seed, before any step) and in the trained one.
#
# In a plain deep stack, gradients shrink (or grow) as they travel back through many
# layers. The UNet's skips give the top levels a short path to the output: conv1_1 is
# only a handful of layers from the loss through skip 1, though the deepest path is 23
# convs long.
#
# **Predict before you run.** In the untrained network, which conv kernel gets the
# smallest gradient: `conv1_1`, the first layer, farthest from the loss along the deepest
# path; `conv5_2`, at the bottom of the U; or `conv10`, the last layer?

# %%
loss = BinaryCrossentropy()
xb, yb = x_train[:BATCH], y_train[:BATCH]


def kernel_gradient_rms(net: UNet) -> tuple[list[str], np.ndarray, float]:
    """One forward and backward on (xb, yb); the RMS of every conv kernel's gradient."""
    value = loss.forward(net.forward(xb, training=True), yb)
    net.backward(loss.backward())
    names = list(net.params)  # the same order as get_weights() and get_gradients()
    pairs = [(n, g) for n, g in zip(names, net.get_gradients()) if n.endswith("/kernel")]
    rms = np.array([np.sqrt(np.mean(g.astype(np.float64) ** 2)) for _, g in pairs])
    return [n.split("/")[0] for n, _ in pairs], rms, value


layer_names, rms_before, loss_before = kernel_gradient_rms(untrained)
_, rms_after, loss_after = kernel_gradient_rms(model)
print(f"loss on this batch: untrained {loss_before:.4f}, trained {loss_after:.4f}")
print(f"{'kernel':10s} {'untrained':>10s} {'trained':>10s}")
for name, b4, af in zip(layer_names, rms_before, rms_after):
    print(f"{name:10s} {b4:10.2e} {af:10.2e}")
if not quick():
    assert loss_after < loss_before, "training should have lowered the loss on this batch"

fig = Figure(figsize=(14, 5))
ax = fig.subplots()
positions = np.arange(len(layer_names))
ax.bar(positions - 0.2, rms_before, width=0.4, label="untrained (same seed)", color="0.45")
ax.bar(
    positions + 0.2, rms_after, width=0.4, label=f"after {EPOCHS * STEPS} steps", color="tab:blue"
)
depth = model.config["depth"]
n_down = 2 * depth  # conv1_1 ... conv4_2
spans = [
    (0, n_down, "contracting path", "tab:green"),
    (n_down, n_down + 2, "bottom", "tab:purple"),
    (n_down + 2, len(layer_names) - len(model.head), "expanding path", "tab:orange"),
    (len(layer_names) - len(model.head), len(layer_names), "head", "tab:brown"),
]
for start, stop, label, colour in spans:
    ax.axvspan(start - 0.5, stop - 0.5, color=colour, alpha=0.08, zorder=0)  # behind the bars
    ax.text(
        (start + stop - 1) / 2,
        1.02,
        label,
        transform=ax.get_xaxis_transform(),
        ha="center",
        fontsize=9,
        color=colour,
    )
ax.set_yscale("log")
ax.set_xticks(positions, layer_names, rotation=90, fontsize=8)
ax.set_xlim(-0.6, len(layer_names) - 0.4)
ax.set(xlabel="conv kernel (in forward order)", ylabel="RMS of dL/dkernel (log scale)")
ax.set_title("gradient size per layer after one backward pass, same batch", pad=18)
ax.grid(axis="y", alpha=0.3)
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.005, 1.0))
save(fig, "08_gradient_magnitudes.png")
spread_before = rms_before.max() / rms_before.min()
print(
    f"untrained: largest / smallest RMS gradient = {spread_before:.0f}x "
    f"({layer_names[int(rms_before.argmax())]} / {layer_names[int(rms_before.argmin())]})"
)
spread_after = rms_after.max() / rms_after.min()
print(
    f"trained:   largest / smallest RMS gradient = {spread_after:.0f}x "
    f"({layer_names[int(rms_after.argmax())]} / {layer_names[int(rms_after.argmin())]})"
)
assert spread_before > 10 and spread_after > 100, (
    "gradient sizes should differ across layers by one order of magnitude or more"
)
print("Look at: the spread across layers spans orders of magnitude. Adam divides each")
print("parameter's step by its own running gradient size, so all layers still learn;")
print("plain SGD with one learning rate would move some layers far more than others.")

# %% [markdown]
# The answer: the bottom. `conv1_1` is far from the loss along the deepest path, but skip 1
# gives it a short one, and its gradient is the sum over both. `conv5_2` has no short path:
# every route from it to the loss goes through the whole expanding path. The top levels
# and the head, next to the loss, get the largest gradients.

# %%
bottom_convs = [lvl.name for lvl in (model.bottom.conv1, model.bottom.conv2)]
for when, rms in (("untrained", rms_before), ("trained", rms_after)):
    smallest = layer_names[int(rms.argmin())]
    conv1_1, conv5_2 = rms[layer_names.index("conv1_1")], rms[layer_names.index(bottom_name)]
    print(f"{when}: smallest {smallest}; conv1_1 {conv1_1:.1e} vs {bottom_name} {conv5_2:.1e}")
    assert smallest in bottom_convs, f"{when}: the bottom of the U should get the least gradient"
    assert conv1_1 > 10 * conv5_2, f"{when}: skip 1 should give conv1_1 a far larger gradient"
    largest = int(rms.argmax())
    near_loss = largest < 4 or largest >= layer_names.index(model.up[-1].upconv.name)
    assert near_loss, f"{when}: the largest gradient should be in the top level or the head"
if not quick():  # a full run: the deep kernels get almost nothing once trained
    assert rms_after[layer_names.index(bottom_name)] < 1e-3 * rms_after.max(), (
        "after training, the bottom's gradient should be a thousandth of the largest or less"
    )

# %% [markdown]
# ## 4. What dropout does
#
# The seed's UNet has two `Dropout(0.5)` layers: `drop4`, after the last conv of the
# deepest skip level, and `drop5`, at the bottom. In training mode each zeroes a random
# half of its inputs and multiplies the other half by `1 / (1 - 0.5) = 2`, so that the
# expected value of every activation is unchanged ("inverted dropout", as in Keras and
# PyTorch). At inference (`training=False`, what `predict` uses) dropout does nothing.
#
# So in training mode the network is a different random sub-network on every call. Let
# us pass the same image through it several times with `training=True`.
#
# **Predict before you run.** Each pass drops a different half of the activations of
# `drop4` and `drop5`. By how much will the probability of a pixel vary from pass to pass:
# by about 0.5, by about 0.1, or by less than 0.05?

# %%
passes = pick(20, 4)
outputs = np.stack([model.forward(x, training=True)[0, ..., 0] for _ in range(passes)])
inference = model.predict(x)[0, ..., 0]
mean, std = outputs.mean(axis=0), outputs.std(axis=0)
truth = y_val[0, ..., 0]
pass_dice = [dice(o, truth) for o in outputs]
print(f"{passes} passes in training mode: std of P(cell) per pixel")
print(f"  mean over the image {std.mean():.3f}, largest {std.max():.3f}")
print(f"mean of the passes vs inference: mean |difference| {np.abs(mean - inference).mean():.3f}")
print(
    f"Dice vs the truth: inference {dice(inference, truth):.4f}, single training-mode passes "
    f"{min(pass_dice):.4f} ... {max(pass_dice):.4f}"
)
assert std.max() < 0.05, "the passes should differ by less than 0.05 (see the discussion below)"
_, prob_shallow = run_unet(x, deep=0.0)  # drop4's and drop5's outputs set to 0
shallow = prob_shallow[0, ..., 0]
dice_inference, dice_shallow = dice(inference, truth), dice(shallow, truth)
print(
    f"Dice with the two deepest levels switched off (deep=0): {dice_shallow:.4f} "
    f"({dice_shallow - dice_inference:+.4f}); "
    f"P(cell) moves by {np.abs(shallow - inference).mean():.3f} on average"
)
if quick():
    print("(quick mode: a barely trained network; the discussion below is about a full run)")
else:
    assert abs(dice_shallow - dice_inference) < 0.005, (
        "in a full run, switching the two deepest levels off should hardly change Dice"
    )
    assert max(pass_dice) - min(pass_dice) < 0.001, "the passes' Dice should differ < 0.001"

# %% [markdown]
# Now `drop4` alone. We run the contracting path down to `conv4_2`, as in section 2, then
# apply `drop4` in training mode. The ReLU has already set many activations to exactly 0,
# so we measure the dropout on the others: about half become 0, and every survivor is
# exactly twice its input.
#
# **Predict before you run.** `drop4` zeroes about half of its inputs. What happens to the
# mean activation: does it halve, stay about the same, or double?
#
# The backward pass uses the mask of the forward pass: `dx = dy * m`, with `m` 0 where an
# activation was dropped and 2 where it was kept. Writing it is exercise `dropout_backward`
# of the course kit (`numpy-unet exercises`); below we check it against the forward's mask.

# %%
h = x
for level in model.down:
    before = level.conv2.forward(level.conv1.forward(h))  # the conv's output (after ReLU)
    if level.drop is not None:
        break
    h = level.pool.forward(before)
drop = level.drop
after = drop.forward(before, training=True)
active = before > 0  # the activations the ReLU let through
kept = active & (after != 0)
print(f"{drop.name} (rate {drop.rate}) on {level.conv2.name}'s output {before.shape}:")
print(f"  zeros in the input (from the ReLU):   {np.mean(before == 0):.1%}")
print(f"  zeros in the output:                  {np.mean(after == 0):.1%}")
print(f"  dropped among the non-zero inputs:    {1 - kept.sum() / active.sum():.1%}  (rate 0.5)")
print(
    f"  output / input where kept:            {np.unique(np.round(after[kept] / before[kept], 5))}"
)
assert np.all(after[~kept] == 0) and np.array_equal(after[kept], 2 * before[kept]), (
    "inverted dropout: every activation is either dropped (0) or doubled"
)
dropped = 1 - kept.sum() / active.sum()
assert abs(dropped - drop.rate) < 0.05, "about half of the non-zero activations should be dropped"
dx = drop.backward(np.ones_like(after))  # dL/dx for dL/dy = 1: the mask m itself
print(f"  backward of ones: {np.unique(dx)}; x * dx == y: {np.array_equal(before * dx, after)}")
assert np.array_equal(before * dx, after), "dropout's backward should use the forward's mask"

# %% [markdown]
# The answer: about the same. Half of the activations become 0, but the other half are
# doubled, so the mean stays where it was: that is the point of inverted dropout, and why
# inference needs no rescaling. It is only "about" the same because the mask is random.

# %%
print(f"mean activation before {before.mean():.4f}, after {after.mean():.4f}")
assert abs(after.mean() / before.mean() - 1) < 0.1, "the mean should stay about the same"

fig = Figure(figsize=(17, 8.5), layout="constrained")
axes = fig.subplots(2, 4)
top = [
    (x[0, ..., 0], "input (held-out image)", "gray", (0, 1)),
    (inference, "inference P(cell) (dropout off)", "magma", (0, 1)),
    (mean, f"mean of {passes} training-mode passes", "magma", (0, 1)),
    (std, f"std of the {passes} passes", "viridis", (0, max(std.max(), 1e-6))),
]
for ax, (img, title, cmap, (lo, hi)) in zip(axes[0], top):
    im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if cmap != "gray":
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
channel = int(np.argmax(before[0].reshape(-1, before.shape[-1]).sum(axis=0)))
vmax = after[0, ..., channel].max()
for ax, img, title in (
    (axes[1, 0], before[0, ..., channel], f"{level.conv2.name} ch {channel}: {drop.name}'s input"),
    (axes[1, 1], after[0, ..., channel], f"{drop.name}'s output, training mode"),
):
    im = ax.imshow(img, cmap="magma", vmin=0, vmax=vmax)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
ax = axes[1, 2]
ax.scatter(before[active], after[active], s=4, alpha=0.4)
line = np.array([0, before.max()])
ax.plot(line, 2 * line, color="tab:orange", lw=1, label="output = 2 x input")
ax.set(xlabel=f"{drop.name} input", ylabel=f"{drop.name} output")
ax.set_title("every non-zero activation of the layer", fontsize=9)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
ax = axes[1, 3]
ax.plot(np.arange(1, passes + 1), pass_dice, "o", ms=4, label="one training-mode pass")
ax.axhline(dice_inference, color="tab:orange", label="inference (dropout off)")
ax.axhline(dice_shallow, color="black", ls="--", label="inference, deep=0")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # passes are whole numbers
ax.ticklabel_format(axis="y", useOffset=False)
ax.set(xlabel="pass", ylabel="Dice vs the true mask")
ax.set_title("each training-mode pass vs inference", fontsize=9)
ax.margins(y=0.7)  # room below the points for the legend
ax.legend(fontsize=8, loc="lower center")
ax.grid(alpha=0.3)
fig.suptitle("dropout: random sub-networks in training mode, the full network at inference")
save(fig, "08_dropout.png")
print("Look at: in the scatter, the points lie on two lines: y = 0 (dropped) and y = 2x (kept).")
edges = truth != np.roll(truth, 1, axis=0)
for axis, shift in ((0, -1), (1, 1), (1, -1), (0, 2), (0, -2), (1, 2), (1, -2)):
    edges |= truth != np.roll(truth, shift, axis=axis)  # within 2 px of a membrane edge
near, far = std[edges].mean(), std[~edges].mean()
print(f"std of the passes: {near:.4f} within 2 px of a membrane edge, {far:.4f} elsewhere")
if not quick():
    assert near > 2 * far, "the passes should differ most along membrane edges"
    print("Look at: the std map's scale (colour bar) and where it is bright: membrane edges.")

# %% [markdown]
# The answer to the first question of this section: by less than 0.05, far less than the
# 0.5 one might expect from dropping half of two layers' activations. How much dropout
# changes the output depends on how much the network relies on the levels where it sits.
# Read the numbers above together with sections 2 and 3. In a full run on generated
# membranes, the training-mode passes barely differ (a standard deviation of about 0.01 at
# most, Dice changing in the fourth decimal), and switching the two deepest levels off
# altogether changes Dice by less than 0.005 (in our full run it even rose a little; the
# numbers are printed above). The table of section 2 shows why: after training, most of
# `conv5_2`'s channels are dead (zero on the whole image), and the chart of section 3
# shows the deep kernels receiving almost no gradient. (Quick mode's network has barely
# trained, and this is not yet true of it.)
# The network solves the task with the upper levels and the skips, which see enough
# context for thin membranes; a likely reason is that dropout made the deep path
# unreliable while the skips offered a reliable short cut. On tasks that need more
# context, such as large objects or full-size EM images, the deep levels may carry more
# of the answer: try `--data` with a larger `SIZE` and compare.
#
# The spread of the training-mode passes is also a cheap estimate of the network's
# uncertainty ("Monte Carlo dropout"): where it is non-zero, it follows the membrane edges
# and the dark organelles that look like membrane. For the segmentation itself, always
# predict in inference mode.
#
# ## What to remember
#
# - `UNet.forward` is a loop you can copy: run `model.down`, `model.bottom` and `model.up`
#   yourself to see, or change, any intermediate tensor.
# - Feature maps go from fine and local at the top of the U to coarse and abstract at the
#   bottom; the expanding path and the skips bring the detail back.
# - Gradient sizes differ by orders of magnitude across layers; Adam evens that out.
#   After training, layers that the network stopped using get almost none.
# - Dropout in training mode: half of the activations to 0, the rest doubled, a different
#   sub-network each call; at inference: the identity.
