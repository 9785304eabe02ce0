# %% [markdown]
# # 08 · Looking inside a trained UNet
#
# A trained network is not a black box when every layer is a NumPy object you can call
# yourself. This tutorial trains a small UNet for a couple of minutes and then looks at
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
# **Time:** about 15 minutes to read. Running takes 2-3 minutes on a 2-core CPU, most of
# it training; `NUMPY_UNET_QUICK=1` runs a tiny version in seconds. Pass `--data DIR` to
# use the real ISBI 2012 images.

# %%
# ruff: noqa: E402
import time

import numpy as np
from matplotlib.figure import Figure

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

# %% [markdown]
# ## 1. Train a small UNet briefly
#
# The recipe of tutorial 07 (and of `numpy-unet demo`), for half as many epochs: the
# seed's UNet with 8 filters instead of 64, Adam at 2e-3, binary cross-entropy,
# augmentation. We keep a few images aside to look at.

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
# Shapes to expect for a 128x128 input with 8 filters: the contracting path halves the
# size and doubles the channels at each level, `(1, 128, 128, 8)` down to
# `(1, 8, 8, 128)` at the bottom, and the expanding path undoes it.


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

print(f"same as model.predict: max difference {np.abs(prob - model.predict(x)).max():.1e}")
print(f"{'layer':10s} {'output shape':18s} {'zeros':>6s} {'dead channels':>14s} {'mean':>6s}")
for name, m in maps.items():
    dead = int((m.reshape(-1, m.shape[-1]).max(axis=0) == 0).sum())
    print(
        f"{name:10s} {str(m.shape):18s} {np.mean(m == 0):6.0%} {dead:>8d} of {m.shape[-1]:<3d} "
        f"{m.mean():6.3f}"
    )
print("'zeros': the share of activations the ReLU set to 0 for this image;")
print("'dead channels': channels that are 0 everywhere on it.")

# %% [markdown]
# The figure is laid out like the U: the contracting path on the left (top to bottom),
# the expanding path on the right (bottom to top), the head at the bottom right. Each row
# shows the four channels that vary most on this image, each with its own colour scale
# (black = 0, the ReLU's floor).

# %%
down_names = [lvl.conv2.name for lvl in model.down] + [model.bottom.conv2.name]
up_names = [lvl.conv2.name for lvl in reversed(model.up)]  # conv9_2 (top) ... conv6_2
rows = len(down_names)
fig = Figure(figsize=(16, 2.9 * rows), layout="constrained")
grid = fig.subfigures(rows, 2, wspace=0.03, hspace=0.02)


def show_channels(sub: object, name: str) -> None:
    """The four most varied channels of maps[name], in one row of a subfigure."""
    m = maps[name][0]  # (h, w, c)
    order = np.argsort(m.reshape(-1, m.shape[-1]).std(axis=0))[::-1][:4]
    axes = sub.subplots(1, 4)
    for ax, c in zip(axes, order):
        ax.imshow(m[..., c], cmap="magma", vmin=0, vmax=max(m[..., c].max(), 1e-6))
        ax.set_title(f"ch {c}, max {m[..., c].max():.2f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(order) :]:
        ax.axis("off")
    sub.suptitle(f"{name}: {maps[name].shape}", fontsize=10)


for r, name in enumerate(down_names):
    show_channels(grid[r, 0], name)
for r, name in enumerate(up_names):
    show_channels(grid[r, 1], name)
head = grid[rows - 1, 1]
axes = head.subplots(1, 4)
head_maps = maps[head_conv.name][0]
panels = [
    (x[0, ..., 0], "input", "gray", 1.0),
    (head_maps[..., 0], f"ch 0, max {head_maps[..., 0].max():.2f}", "magma", head_maps.max()),
    (head_maps[..., 1], f"ch 1, max {head_maps[..., 1].max():.2f}", "magma", head_maps.max()),
    (prob[0, ..., 0], "output P(cell), 0 to 1", "magma", 1.0),
]
for ax, (img, title, cmap, top) in zip(axes, panels):
    ax.imshow(img, cmap=cmap, vmin=0, vmax=max(top, 1e-6))
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
head.suptitle(f"head: {head_conv.name} {maps[head_conv.name].shape}, output {prob.shape}")
fig.suptitle(f"feature maps of a trained UNet ({source}): contracting path left, expanding right")
save(fig, "08_feature_maps.png")
bottom_size = maps[model.bottom.conv2.name].shape[1]
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
    (len(layer_names) - len(model.head), len(layer_names), "head", "tab:red"),
]
for start, stop, label, colour in spans:
    ax.axvspan(start - 0.5, stop - 0.5, color=colour, alpha=0.08)
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
spread = rms_before.max() / rms_before.min()
print(
    f"untrained: largest / smallest RMS gradient = {spread:.0f}x "
    f"({layer_names[int(rms_before.argmax())]} / {layer_names[int(rms_before.argmin())]})"
)
spread = rms_after.max() / rms_after.min()
print(
    f"trained:   largest / smallest RMS gradient = {spread:.0f}x "
    f"({layer_names[int(rms_after.argmax())]} / {layer_names[int(rms_after.argmin())]})"
)
print("Look at: the spread across layers spans orders of magnitude. Adam divides each")
print("parameter's step by its own running gradient size, so all layers still learn;")
print("plain SGD with one learning rate would move some layers far more than others.")

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
_, prob_shallow = run_unet(x, deep=0.0)  # drop4's and drop5's outputs set to 0
shallow = prob_shallow[0, ..., 0]
print(
    f"Dice with the two deepest levels switched off (deep=0): {dice(shallow, truth):.4f}; "
    f"P(cell) moves by {np.abs(shallow - inference).mean():.3f} on average"
)

# %% [markdown]
# Now `drop4` alone. We run the contracting path down to `conv4_2`, as in section 2, then
# apply `drop4` in training mode. The ReLU has already set many activations to exactly 0,
# so we measure the dropout on the others: about half become 0, and every survivor is
# exactly twice its input.

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
print(
    f"  mean activation before {before.mean():.4f}, after {after.mean():.4f} (the same on average)"
)

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
ax.plot(line, 2 * line, color="tab:red", lw=1, label="output = 2 x input")
ax.set(xlabel=f"{drop.name} input", ylabel=f"{drop.name} output")
ax.set_title("every non-zero activation of the layer", fontsize=9)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
ax = axes[1, 3]
ax.plot(np.arange(1, passes + 1), pass_dice, "o", ms=4, label="one training-mode pass")
ax.axhline(dice(inference, truth), color="tab:red", label="inference (dropout off)")
ax.axhline(dice(shallow, truth), color="tab:green", ls="--", label="inference, deep=0")
ax.set(xlabel="pass", ylabel="Dice vs the true mask")
ax.set_title("each training-mode pass vs inference", fontsize=9)
ax.margins(y=0.7)  # room below the points for the legend
ax.legend(fontsize=8, loc="lower center")
ax.grid(alpha=0.3)
fig.suptitle("dropout: random sub-networks in training mode, the full network at inference")
save(fig, "08_dropout.png")
print("Look at: the std map's scale (colour bar) and where it is bright: membrane edges;")
print("in the scatter, the points lie on two lines: y = 0 (dropped) and y = 2x (kept).")

# %% [markdown]
# How much dropout changes the output depends on how much the network relies on the levels
# where it sits. Read the numbers above together with sections 2 and 3. In our full run on
# generated membranes, the training-mode passes barely differed (a standard deviation of
# about 0.01 at most, Dice changing in the fourth decimal), and switching the two deepest
# levels off altogether did not lower Dice at all (0.954 either way). The table of section
# 2 shows why: after training, most of `conv5_2`'s channels are dead (zero on the whole
# image), and the chart of section 3 shows the deep kernels receiving almost no gradient.
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
