# %% [markdown]
# # 03 · Skip connections: where the two paths of the U meet, forwards and backwards
#
# The "U" of a UNet is two paths: down through poolings to a small, deep map, and back up
# through up-samplings. The skip connections join them: each level's encoder output is
# handed across and concatenated with the up-sampled map of the same size. This tutorial
# shows what `Concatenate` does, builds a two-path network small enough to write out by
# hand, and follows its gradient back to the point where the paths split.
#
# **You will learn**
#
# - what `Concatenate` computes (the skip first, as in the seed) and that its backward just
#   splits the gradient by channels;
# - why a tensor used by two paths receives the **sum** of the two gradients, shown with
#   numbers on a tiny network and checked by `gradcheck`;
# - how skips let the gradient reach the first layer at every pixel, by a short path;
# - where `numpy_unet/model/unet.py` does all this for the real network
#   (`d = level.pool.backward(d) + d_skips.pop()`).
#
# **Time:** about 15 minutes to read; its run time, measured, is in `tutorials/README.md`
# (`NUMPY_UNET_QUICK=1` runs a small version in seconds).
#
# If you know Keras: `Concatenate(axis=-1)` is `keras.layers.concatenate([a, b], axis=3)`.
# If you know PyTorch: it is `torch.cat([a, b], dim=1)` on channels-first tensors, and the
# gradient summing below is what autograd does for you whenever a tensor is used twice.

# %%
# ruff: noqa: E402
import inspect

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from numpy_unet import GradcheckError, UNet, gradcheck
from numpy_unet.data import synthetic_membranes
from numpy_unet.layers import Concatenate, Conv2D, MaxPooling2D, UpSampling2D
from numpy_unet.teach.tutorial import pick, quick, save

np.set_printoptions(precision=3, suppress=True, linewidth=100)
print("quick mode: a smaller image for the figure" if quick() else "full mode")


def channels(t: np.ndarray) -> str:
    """One (1, H, W, C) tensor printed channel by channel."""
    return "\n".join(f"  channel {c}:\n{t[0, :, :, c]}" for c in range(t.shape[-1]))


# %% [markdown]
# ## 1. `Concatenate`: stack along the channels
#
# Concatenation puts tensors side by side along one axis; for the UNet it is the channel
# axis, the last one of `(N, H, W, C)`. Height and width must match; the channel counts
# add. The seed writes `concatenate([drop4, up6], axis=3)`: the skip comes **first**, the
# up-sampled map second. The order matters once weights are shared with Keras: the next
# conv's kernel has its skip channels first.

# %%
a = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], dtype=np.float64).transpose(1, 2, 0)[None]
b = -np.array([[1, 2], [3, 4]], dtype=np.float64)[None, :, :, None]
merge = Concatenate(name="merge")
m = merge.forward([a, b])
print("skip a:", a.shape, " up-sampled b:", b.shape, " ->  merged:", m.shape)
print(channels(m))
assert m.shape == (1, 2, 2, 3), "the channel counts add: 2 + 1 = 3"
assert np.array_equal(m[..., :2], a) and np.array_equal(m[..., 2:], b), (
    "the skip should come first, unchanged, then the up-sampled map"
)

# %% [markdown]
# Backwards there is nothing to compute: each output channel came from exactly one input
# channel, unchanged, so the gradient of the merged tensor is cut back into the same
# pieces. `backward` returns a list, one gradient per input, in the order of the inputs.
# Writing it is exercise `concatenate_backward` of the course kit (`numpy-unet exercises`).

# %%
dm = np.arange(1, 13, dtype=np.float64).reshape(1, 2, 2, 3) / 10  # a hand-made dL/dm
da, db = merge.backward(dm)
print("dm", dm.shape, "-> da", da.shape, "(channels 0-1 of dm) and db", db.shape, "(channel 2)")
split_a, split_b = np.array_equal(da, dm[..., :2]), np.array_equal(db, dm[..., 2:])
print("da == dm[..., :2]:", split_a, "  db == dm[..., 2:]:", split_b)
assert split_a and split_b, "Concatenate's backward should hand each input its own channels"
report = gradcheck(Concatenate(name="merge_check"), [a, b], raise_exception=False)
print(report)
assert report.passed, "gradcheck should pass for Concatenate"

# %% [markdown]
# ## 2. A two-path network, by hand
#
# Now the smallest network with a skip connection. One input `x` (N, H, W, 1):
#
#     a = conv_a(x)                          3x3 conv, ReLU          (N, H, W, 2)
#     b = up(conv_b(pool(a)))                pool, 3x3 conv + ReLU, up-sample  (N, H, W, 2)
#     y = conv_y(concatenate([a, b]))        3x3 conv, linear        (N, H, W, 1)
#
# The tensor `a` goes two ways: **across** (the skip, straight into the concatenation) and
# **down** (into the pooling). That is exactly the situation of every encoder level of the
# UNet.
#
# Backwards, the chain rule has to account for both uses of `a`. If `L` depends on `a`
# through two routes, a small change `delta` in `a` changes `L` by the sum of the two
# effects, so
#
#     dL/da = (dL/da through the skip) + (dL/da through the pool path)
#
# In code: run the backward down from `y`, let the concatenation split the gradient into a
# skip part and a part for `b`, carry the `b` part back through `up`, `conv_b` and `pool`,
# and **add** the two parts before going into `conv_a`.
#
# The class below is that network, written out. It has `forward`, `backward`, `params` and
# `grads`, so `gradcheck` can check it like any layer. `params` returns the layers' own
# arrays (not copies), because `gradcheck` perturbs them in place.


# %%
class TwoPathNet:
    """x -> conv_a -> a;  a -> pool -> conv_b -> up -> b;  [a, b] -> conv_y -> y."""

    def __init__(self, filters: int = 2, skip: bool = True, seed: int = 0) -> None:
        def conv(f: int, activation: str | None, name: str, k: int) -> Conv2D:
            return Conv2D(
                f,
                3,
                padding="same",
                activation=activation,
                dtype="float64",
                kernel_initializer="he_normal",
                seed=seed + k,
                name=name,
            )

        self.skip = skip
        self.conv_a = conv(filters, "relu", "conv_a", 0)
        self.pool = MaxPooling2D(2, name="pool")
        self.conv_b = conv(filters, "relu", "conv_b", 1)
        self.up = UpSampling2D(2, name="up")
        self.merge = Concatenate(name="merge")
        self.conv_y = conv(1, None, "conv_y", 2)
        self.convs = [self.conv_a, self.conv_b, self.conv_y]

    def describe(self) -> str:
        return f"TwoPathNet ({'with' if self.skip else 'without'} skip)"

    def rest(self, a: np.ndarray) -> np.ndarray:
        """Everything after `a`: both paths and the output conv."""
        b = self.up.forward(self.conv_b.forward(self.pool.forward(a)))
        return self.conv_y.forward(self.merge.forward([a, b]) if self.skip else b)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.a = self.conv_a.forward(x)
        return self.rest(self.a)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        d = self.conv_y.backward(dy)
        if self.skip:
            self.da_skip, db = self.merge.backward(d)  # the concatenation splits the gradient
        else:
            self.da_skip, db = np.zeros_like(self.a), d
        self.da_pool = self.pool.backward(self.conv_b.backward(self.up.backward(db)))
        self.da = self.da_skip + self.da_pool  # the two paths meet again: add
        return self.conv_a.backward(self.da)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{c.name}/{k}": p for c in self.convs for k, p in c.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{c.name}/{k}": g for c in self.convs for k, g in c.grads.items()}


rng = np.random.default_rng(0)
net = TwoPathNet()
x = rng.standard_normal((1, 4, 4, 1))
y = net.forward(x)
print("x", x.shape, "-> a", net.a.shape, "-> y", y.shape)
print("a = conv_a(x), post-ReLU:")
print(channels(net.a))

# %% [markdown]
# Run the backward for a random upstream gradient `dy` and look at the two parts of the
# gradient of `a`, channel 0. The skip part reaches every pixel. The pool part is zero
# except at the four pixels that won their 2x2 window (tutorial 02). The gradient of `a`
# is their sum.

# %%
dy = rng.standard_normal(y.shape)
net.backward(dy)
c = 0
print(f"through the skip, dL/da channel {c}:\n{net.da_skip[0, :, :, c]}\n")
print(f"through the pool path, dL/da channel {c}:\n{net.da_pool[0, :, :, c]}\n")
print(f"sum = what conv_a.backward receives, channel {c}:\n{net.da[0, :, :, c]}")

# %% [markdown]
# Is the sum really the gradient of `a`? Check a few elements by finite differences of
# `sum(rest(a) * dy)`, changing `a` directly: one pixel that won its pooling window (both
# parts non-zero) and one that did not (only the skip part).

# %%
eps = 1e-6
winners = np.argwhere(net.da_pool[0, :, :, c] != 0)
losers = np.argwhere((net.da_pool[0, :, :, c] == 0) & (net.da_skip[0, :, :, c] != 0))
a0 = net.a.copy()
print(f"{'element of a':>14}  {'skip part':>10}  {'pool part':>10}  {'sum':>10}  {'numerical':>10}")
for r, q in (tuple(int(v) for v in winners[0]), tuple(int(v) for v in losers[0])):
    e = np.zeros_like(a0)
    e[0, r, q, c] = eps
    numerical = np.sum((net.rest(a0 + e) - net.rest(a0 - e)) * dy) / (2 * eps)
    parts = net.da_skip[0, r, q, c], net.da_pool[0, r, q, c], net.da[0, r, q, c]
    print(
        f"{str((r, q, c)):>14}  {parts[0]:10.6f}  {parts[1]:10.6f}  {parts[2]:10.6f}  "
        f"{numerical:10.6f}"
    )
    assert abs(numerical - parts[2]) < 1e-6, "the numerical derivative should match the sum"
    if parts[1] != 0:  # a winner: the sum differs from both parts, and only the sum matches
        assert min(abs(numerical - parts[0]), abs(numerical - parts[1])) > 1e-3, (
            "at a pooling winner, neither part alone should match the numerical derivative"
        )

# %% [markdown]
# For the winner, the numerical derivative matches the sum, not either part alone. For the
# pixel that lost its window, the pool part is 0 and the sum is the skip part. Now check
# the whole network, every input element and every weight, with `gradcheck`:

# %%
report = gradcheck(TwoPathNet(seed=1), rng.standard_normal((2, 6, 4, 1)), raise_exception=False)
print(report)
assert report.passed, "gradcheck should pass for the two-path network"

# %% [markdown]
# ### The bug: forgetting one of the two parts
#
# The easy mistake is to overwrite instead of add: carry the pool path's gradient back and
# drop the skip's (or the other way round). Every shape is still right, so nothing
# crashes. `gradcheck` catches it.
#
# **Predict before you run.** `gradcheck` checks seven tensors: the input, and the kernel
# and bias of `conv_a`, `conv_b` and `conv_y`. With the skip's gradient dropped, which of
# them get a wrong gradient?


# %%
class ForgetsTheSkip(TwoPathNet):
    def backward(self, dy: np.ndarray) -> np.ndarray:
        d = self.conv_y.backward(dy)
        _, db = self.merge.backward(d)  # BUG: the skip's gradient is dropped
        d_a = self.pool.backward(self.conv_b.backward(self.up.backward(db)))
        return self.conv_a.backward(d_a)

    def describe(self) -> str:
        return "ForgetsTheSkip"


failing = None
try:
    gradcheck(ForgetsTheSkip(seed=1), rng.standard_normal((2, 6, 4, 1)))
except GradcheckError as err:
    print("GradcheckError:", err)
    failing = [check.name for check in err.report.checks if not check.passed]
print("tensors that fail:", failing)
assert failing == ["input", "'conv_a/kernel'", "'conv_a/bias'"], (
    "dropping the skip's gradient should break exactly the tensors before the junction"
)

# %% [markdown]
# The answer: every tensor before the junction fails (the input and `conv_a`'s kernel and
# bias); the tensors after it (`conv_b`, `conv_y`) still pass, because their gradients
# never went through the junction. A failing table like this one points at where to look.
#
# The figure below is a map of the network, with the two backward routes into `a`.

# %%
fig = Figure(figsize=(12, 4.6), layout="constrained")
ax = fig.add_subplot()
ax.set_xlim(0, 12)
ax.set_ylim(0, 5)
ax.axis("off")
boxes = {  # name: (x, y, label)
    "x": (0.7, 3.6, "x\n(N, H, W, 1)"),
    "conv_a": (2.3, 3.6, "conv_a\n3x3, ReLU"),
    "a": (4.0, 3.6, "a\n(N, H, W, 2)"),
    "pool": (4.0, 1.2, "pool\n2x2"),
    "conv_b": (5.8, 1.2, "conv_b\n3x3, ReLU"),
    "up": (7.6, 1.2, "up\nx2"),
    "merge": (7.6, 3.6, "concatenate\n[a, b]"),
    "conv_y": (9.4, 3.6, "conv_y\n3x3"),
    "y": (11.0, 3.6, "y\n(N, H, W, 1)"),
}
for name, (bx, by, label) in boxes.items():
    color = "#fde0c2" if name == "a" else "#eef4fb"
    ax.add_patch(
        FancyBboxPatch(
            (bx - 0.56, by - 0.4),
            1.12,
            0.8,
            boxstyle="round,pad=0.05",
            facecolor=color,
            edgecolor="0.4",
        )
    )
    ax.text(bx, by, label, ha="center", va="center", fontsize=10)


def arrow(start: str, end: str, color: str = "k", dx: float = 0.0, dy: float = 0.0) -> None:
    """An arrow from the edge of box `start` to the edge of box `end` (same row or column)."""
    (x0, y0, _), (x1, y1, _) = boxes[start], boxes[end]
    if y0 == y1:  # horizontal: leave and enter through the sides
        side = 0.64 if x1 > x0 else -0.64
        tail, head = (x0 + side, y0 + dy), (x1 - side, y1 + dy)
    else:  # vertical: through the top and bottom
        side = 0.5 if y1 > y0 else -0.5
        tail, head = (x0 + dx, y0 + side), (x1 + dx, y1 - side)
    ax.annotate(
        "",
        xy=head,
        xytext=tail,
        arrowprops=dict(arrowstyle="->", color=color, lw=2, shrinkA=0, shrinkB=0),
    )


forward_edges = [
    ("x", "conv_a"),
    ("conv_a", "a"),
    ("a", "merge"),
    ("a", "pool"),
    ("pool", "conv_b"),
    ("conv_b", "up"),
    ("up", "merge"),
    ("merge", "conv_y"),
    ("conv_y", "y"),
]
for s, e in forward_edges:
    arrow(s, e)
arrow("merge", "a", "tab:blue", dy=0.6)  # backward through the skip
arrow("merge", "up", "tab:orange", dx=0.35)  # backward through the pool path ...
arrow("up", "conv_b", "tab:orange", dy=-0.6)
arrow("conv_b", "pool", "tab:orange", dy=-0.6)
arrow("pool", "a", "tab:orange", dx=-0.35)  # ... back into a
ax.text(
    5.8,
    4.3,
    "backward through the skip: dL/da (skip part)",
    color="tab:blue",
    ha="center",
    fontsize=10,
)
ax.text(
    5.8,
    0.25,
    "backward through the pool path: dL/da (pool part), at most 1 pixel in 4",
    color="tab:orange",
    ha="center",
    fontsize=10,
)
ax.text(2.3, 2.3, "dL/da = skip part + pool part", ha="center", fontsize=11, fontweight="bold")
ax.set_title("the two-path network: forward in black, the two backward routes into a in colour")
save(fig, "03_two_path_network.png")

# %% [markdown]
# ## 3. Why skips help the gradient flow
#
# Now compare the network with and without its skip on a real-looking image (a generated
# membrane image, with a squared-error loss against its mask). To make the comparison
# fair, both networks share `conv_a` and `conv_b`, and the no-skip network's `conv_y` uses
# exactly the weights the skip network applies to `b`. The only difference is the skip.
#
# **Predict before you run.** Count the elements of `a` (pixels times channels) that get
# a non-zero gradient. What fraction is it with the skip, and what fraction without?

# %%
size = pick(48, 32)
image, mask = synthetic_membranes(1, size=size, seed=3)
image, mask = image.astype(np.float64), mask.astype(np.float64)
filters = 4
with_skip = TwoPathNet(filters, skip=True, seed=5)
without = TwoPathNet(filters, skip=False, seed=5)
with_skip.forward(image)
without.conv_y.build((1, size, size, filters))
without.conv_y.set_weights(
    [
        with_skip.conv_y.params["kernel"][:, :, filters:, :],  # the weights that act on b
        with_skip.conv_y.params["bias"],
    ]
)

grad_at_a = {}
for name, model in (("with the skip", with_skip), ("without the skip", without)):
    out = model.forward(image)
    model.backward(2 * (out - mask) / out.size)  # d/dy of mean((y - mask)**2)
    grad_at_a[name] = np.abs(model.da[0])  # (H, W, filters): |dL/da| at the first layer
    g = grad_at_a[name]
    print(f"{name:>17}: non-zero gradient at {np.mean(g > 0):6.1%} of the elements of a")
reached_with = np.mean(grad_at_a["with the skip"] > 0)
share = np.mean(grad_at_a["without the skip"] > 0, axis=(0, 1))  # (filters,): per channel
any_channel = np.mean(grad_at_a["without the skip"].max(axis=-1) > 0)
print(f"without the skip, per channel: {', '.join(f'{f:.1%}' for f in share)}")
print(f"without the skip, pixels where at least one channel hears from the loss: {any_channel:.1%}")
assert reached_with == 1.0, "with the skip, every element of a should get a gradient"
assert np.all(share <= 0.25), "without the skip, at most one pixel in four per channel"
assert any_channel > 0.25, "the channels' winners differ, so together they cover more pixels"

# %% [markdown]
# The answer: with the skip, all of them. Without it, at most a quarter: all the gradient
# that reaches the first layer has come back through the pooling, so per channel it lands
# on at most one pixel in four (the winners), and it has crossed every layer below. With
# the skip, every pixel gets a gradient that went through one conv.

# %% [markdown]
# The figure shows channel 0 of `|dL/da|` for both networks on the same colour scale;
# grey means exactly zero.

# %%
fig = Figure(figsize=(15, 4.6), layout="constrained")
axes = fig.subplots(1, 4, width_ratios=[1, 1, 1, 0.8])
axes[0].imshow(image[0, :, :, 0], cmap="gray")
axes[0].contour(mask[0, :, :, 0], levels=[0.5], colors="tab:orange", linewidths=0.8)
axes[0].set_title("input (orange: mask boundary)")
both = np.concatenate([g[..., 0][g[..., 0] > 0] for g in grad_at_a.values()])
norm = LogNorm(vmin=np.percentile(both, 1), vmax=both.max())
for ax, (name, g) in zip(axes[1:3], grad_at_a.items()):
    im = ax.imshow(np.ma.masked_equal(g[..., 0], 0), cmap="viridis", norm=norm)
    ax.set_facecolor("#c8c8c8")
    ax.set_title(
        f"|dL/da|, channel 0, {name}\n(non-zero at {np.mean(g[..., 0] > 0):.0%} of the pixels)"
    )
fig.colorbar(im, ax=axes[1:3], shrink=0.85, label="|dL/da| (log scale)")
for ax in axes[:3]:
    ax.set_xlabel("column")
    ax.set_ylabel("row")
width = 0.38
for k, (name, g) in enumerate(grad_at_a.items()):
    per_channel = [np.mean(g[..., ch] > 0) for ch in range(filters)]
    bars = axes[3].bar(
        np.arange(filters) + (k - 0.5) * width,
        per_channel,
        width,
        color=["tab:blue", "tab:orange"][k],
        label=name,
    )
    axes[3].bar_label(bars, labels=[f"{f:.0%}" for f in per_channel], fontsize=8)
axes[3].axhline(0.25, color="0.3", ls=":", label="1 in 4: one winner per window")
axes[3].set_xticks(range(filters), [str(ch) for ch in range(filters)])
axes[3].set_xlabel("channel of a")
axes[3].set_ylim(0, 1.4)
axes[3].set_ylabel("fraction of pixels with a non-zero dL/da")
axes[3].set_title("how much of the first layer's\noutput the gradient reaches")
axes[3].legend(fontsize=8, loc="upper right")
fig.suptitle("gradient arriving at the first layer's output a, with and without the skip")
save(fig, "03_gradient_flow.png")

# %% [markdown]
# Without the skip the gradient map is a sparse grid of dots: per channel, only the pooling
# winners hear from the loss, and what they hear has passed through the low-resolution
# bottleneck. With the skip, every pixel gets a gradient, and it carries detail at full
# resolution: the output conv can tell the first layer directly which pixels along a
# membrane were wrong. (Each channel has its own winners, so the pixels where at least one
# channel hears from the loss are more than a quarter of all pixels: the last line printed
# above.)
#
# This is the UNet's design argument in gradient form. The encoder features at each level
# get a short, dense route to the loss, so they learn fine detail; the deep path adds
# context.
#
# ## 4. The same in the real UNet
#
# `numpy_unet.UNet` does exactly what `TwoPathNet` does, once per level. On the way down,
# `forward` saves each level's output as a skip before pooling it; on the way up it
# concatenates the skip first. These are the lines:

# %%
forward_lines, forward_start = inspect.getsourcelines(UNet.forward)
for k, line in enumerate(forward_lines):
    if any(key in line for key in ("skips.append", "skips.pop", "merge.forward")):
        print(f"numpy_unet/model/unet.py:{forward_start + k}: {line.strip()}")

# %% [markdown]
# And here is the whole `backward`. The concatenation splits the gradient
# (`d_skip, d = level.merge.backward(d)`), the skip parts wait on a stack while the
# gradient goes down to the bottom of the U and back up, and at each encoder level the
# skip's part is added to the part that came up through the pooling
# (`d = level.pool.backward(d) + d_skips.pop()`), just before the level's convs. The arrows
# mark these lines.

# %%
backward_lines, backward_start = inspect.getsourcelines(UNet.backward)
for k, line in enumerate(backward_lines):
    marker = "-->" if any(key in line for key in ("merge.backward", "d_skips")) else "   "
    print(f"{marker} {backward_start + k:4d}  {line.rstrip()}")
code = "".join(backward_lines)
assert "d_skip, d = level.merge.backward(d)" in code, "UNet.backward should split at the merge"
assert "d = level.pool.backward(d) + d_skips.pop()" in code, "and add the skip's part back"

# %% [markdown]
# This whole method is exercise `unet_backward` of the course kit (`numpy-unet exercises`):
# the U in reverse, with each skip's gradient added where the two paths met.

# %% [markdown]
# To see the addition happen in the real network, build a small UNet and record what three
# layers of the top level pass backwards: the skip's part (the first output of the top
# merge's backward), the pooling's part (the output of `pool1`'s backward), and what the
# level's second conv then receives. Recording is done by wrapping each layer's `backward`
# in a small function on that one object; the package's code is not changed.

# %%
model = UNet((16, 16, 1), filters=2, depth=2, dropout=0.0, dtype="float64", seed=0)
top_down, top_up = model.down[0], model.up[-1]  # model.up runs deepest first
recorded = {}


def record(layer: object, key: str, take: object) -> None:
    """Replace `layer.backward` on this instance by a version that also records something."""
    original = layer.backward

    def backward(d: np.ndarray) -> object:
        out = original(d)
        recorded[key] = take(d, out)
        return out

    layer.backward = backward


record(top_up.merge, "skip part", lambda d, out: out[0])  # d_skip
record(top_down.pool, "pool part", lambda d, out: out)
record(top_down.conv2, "received by conv1_2", lambda d, out: d)

x_unet = rng.random((2, 16, 16, 1))
y_unet = model.forward(x_unet)
model.backward(rng.standard_normal(y_unet.shape))
for key, value in recorded.items():
    print(
        f"{key:>20}: shape {value.shape}, norm {np.linalg.norm(value):.4f}, "
        f"non-zero {np.mean(value != 0):.0%}"
    )
total = recorded["skip part"] + recorded["pool part"]
difference = np.abs(recorded["received by conv1_2"] - total).max()
print(f"max |received - (skip part + pool part)| = {difference:.1e}")
assert difference < 1e-12, "the gradient conv1_2 receives is not skip part + pool part"

# %% [markdown]
# Finally, count the convs between each level's output and the loss along the two routes,
# for the seed's UNet. The skip route crosses the two convs of the same level on the way
# up, the levels above it, and the head; the deep route crosses everything below.
#
# **Predict before you run.** The seed's UNet has 24 convs. From the output of level 1
# (the top), how many of them does the gradient cross on the way back through the skip,
# and how many on the deepest route?

# %%
seed_model = UNet((256, 256, 1), filters=1, seed=0)  # the seed's layout; 1 filter: quick
depth = seed_model.config["depth"]
head = len(seed_model.head)
print(f"{'level':>5}  {'convs via the skip':>18}  {'convs via the pooling (deepest route)':>38}")
for level in range(1, depth + 1):
    via_skip = 2 + (level - 1) * 3 + head  # this level's 2 up-path convs, the levels above, head
    below = 2 * (depth - level) + 2  # 2 convs per level below, 2 at the bottom
    via_pool = below + 3 * (depth - level + 1) + (level - 1) * 3 + head
    print(f"{level:>5}  {via_skip:>18}  {via_pool:>38}")
    if level == 1:
        top = (via_skip, via_pool)
assert top == (4, 22), "from level 1: 4 convs via the skip, 22 via the deepest route"
assert sum(isinstance(lay, Conv2D) for lay in seed_model.layers) == 24, "the seed has 24 convs"
assert top[1] + 2 == 24, "the deepest route crosses every conv but level 1's own two"

# %% [markdown]
# The answer: 4 against 22. The deepest route crosses every conv except the two that made
# level 1's output. The skip route crosses only the two 3x3 convs after the top merge
# (`conv9` in the seed's names) and the two of the head. The skip is by far the shorter
# way back.

# %% [markdown]
# ## Summary
#
# - `Concatenate` stacks its inputs along the channels (skip first in the seed); backwards
#   it hands each input its own slice of the gradient.
# - A tensor used twice receives the sum of the two gradients. In the UNet each encoder
#   output goes across (skip) and down (pooling), so its gradient is skip part + pool part.
#   Forgetting one of them is a silent bug that `gradcheck` catches.
# - Without the skip, the first layer hears from the loss only at the pooling winners and
#   only through the bottleneck; with it, at every pixel and through a few convs.
# - In `numpy_unet/model/unet.py` the split is `d_skip, d = level.merge.backward(d)` and the
#   sum is `d = level.pool.backward(d) + d_skips.pop()`.
#
# Next, tutorial 04 assembles the full network from the seed's Keras code.
