# %% [markdown]
# # 01 · Convolution: what `Conv2D` computes, forwards and backwards
#
# Throughout these tutorials, *the seed* is the Keras UNet of the blog post this project
# re-implements (the widely copied Keras UNet for EM membranes): a Keras model built from `Conv2D`,
# `MaxPooling2D`, `UpSampling2D` and `concatenate`, with a 256x256x1 input and 31,031,685
# parameters. Tutorial 04 rebuilds it line by line and counts them. It has 24 `Conv2D`
# layers: nineteen 3x3, four 2x2 and one 1x1 (the first cell below counts them).
#
# This tutorial takes the layer apart with the package's own code: first as four nested
# loops you can follow with a pencil, then as the single matrix product of the layer's
# im2col code, then backwards, and finally as a window onto the image that grows with
# every layer.
#
# **You will learn**
#
# - what a Keras `Conv2D` computes on an `(N, H, W, C)` tensor with an `(kh, kw, Cin, Cout)`
#   kernel (a cross-correlation: the kernel is not flipped);
# - how im2col turns every window into one row of a matrix, so that the whole layer is one
#   `matmul`, and how to check that it agrees with the loops;
# - how big the output is with `'valid'` and `'same'` padding, and where `'same'` puts the
#   extra zero for an even kernel (the seed's 2x2 up-convolution);
# - the backward pass: `dK = windows^T dz`, `dx = col2im(dz K^T)`, `db = sum dz`, derived
#   and then checked numerically;
# - what the receptive field is, how it grows, and how large it is for the seed's UNet.
#
# **Time:** about 20 minutes to read; its run time, measured, is in `tutorials/README.md`
# (`NUMPY_UNET_QUICK=1` runs a small version in seconds).
#
# If you know PyTorch: `nn.Conv2d` computes the same thing on `(N, C, H, W)` tensors with a
# `(Cout, Cin, kh, kw)` weight. A PyTorch weight `w` becomes a Keras kernel with
# `w.permute(2, 3, 1, 0)`, and an input with `x.permute(0, 2, 3, 1)`.

# %%
# ruff: noqa: E402
import time

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from numpy_unet import UNet, gradcheck
from numpy_unet.layers import Conv2D, MaxPooling2D
from numpy_unet.layers.conv2d import col2im, im2col
from numpy_unet.layers.loops import conv2d_backward_loops, conv2d_forward_loops
from numpy_unet.layers.padding import pad_same, same_padding
from numpy_unet.teach.tutorial import pick, quick, save

np.set_printoptions(precision=4, suppress=True, linewidth=100)
print("quick mode: smaller sizes" if quick() else "full mode")

seed_layout = UNet((256, 256, 1), filters=1, seed=0)  # the seed's layout; 1 filter: quick
kernel_sizes = [
    lay.params["kernel"].shape[0] for lay in seed_layout.layers if isinstance(lay, Conv2D)
]
count = {k: kernel_sizes.count(k) for k in (3, 2, 1)}
print(
    f"the seed's UNet: {len(kernel_sizes)} Conv2D layers, "
    f"{count[3]} of 3x3, {count[2]} of 2x2, {count[1]} of 1x1"
)
assert len(kernel_sizes) == 24 and count == {3: 19, 2: 4, 1: 1}, (
    "the seed's UNet should have 24 convs: nineteen 3x3, four 2x2 and one 1x1"
)


def as_image(a: np.ndarray) -> np.ndarray:
    """(1, H, W, 1) -> (H, W): how the small examples are printed."""
    return a[0, :, :, 0]


# %% [markdown]
# ## 1. The formula
#
# A Keras convolution takes an input `x` of shape `(N, H, W, Cin)` (channels last) and a
# kernel `K` of shape `(kh, kw, Cin, Cout)`, plus one bias per output channel. Each output
# pixel is the dot product of one `kh x kw x Cin` window of the (padded) input with one
# filter of the kernel:
#
#     z[n, h, w, f] = b[f] + sum over i < kh, j < kw, c < Cin of  xp[n, h+i, w+j, c] * K[i, j, c, f]
#
# Then the activation is applied: `y = relu(z)` for the UNet's convs.
#
# Three things to notice:
#
# - The window starts at `(h, w)` and the kernel is used as it is. Mathematicians call this
#   a cross-correlation; a "true" convolution would flip the kernel. Every deep-learning
#   library does it this way, and it does not matter for learning: the network learns the
#   flipped kernel instead.
# - The sum runs over the input channels too. One filter sees all `Cin` channels at once
#   and makes one output channel; `Cout` filters make `Cout` channels.
# - The same kernel is used at every position. This weight sharing is why a 3x3 conv from
#   64 to 64 channels has only `3*3*64*64 + 64 = 36,928` parameters whatever the image size.
#
# ## 2. The loop version, on a tiny example
#
# `numpy_unet.layers.loops.conv2d_forward_loops` is the formula above, one index at a time.
# Here it is on a 4x4 one-channel image and a 3x3 kernel that subtracts the right column
# of each window from the left one (a vertical-edge detector). With `'valid'` padding the
# 3x3 window fits in 2x2 positions.

# %%
x_tiny = np.array(
    [
        [3, 1, 0, 1],
        [2, 0, 1, 1],
        [1, 2, 0, 2],
        [1, 0, 1, 3],
    ],
    dtype=np.float64,
).reshape(1, 4, 4, 1)  # (N, H, W, Cin) = (1, 4, 4, 1)
k_tiny = np.array(
    [
        [1, 0, -1],
        [1, 0, -1],
        [1, 0, -1],
    ],
    dtype=np.float64,
).reshape(3, 3, 1, 1)  # (kh, kw, Cin, Cout) = (3, 3, 1, 1)

z_loops = conv2d_forward_loops(x_tiny, k_tiny, bias=None, padding="valid")
print("input x (4x4):\n", as_image(x_tiny))
print("kernel K (3x3):\n", k_tiny[:, :, 0, 0])
print(
    "output z = conv2d_forward_loops(x, K, 'valid'), shape", z_loops.shape, "\n", as_image(z_loops)
)

# %% [markdown]
# Check the top-left output by hand: take the window `x[0:3, 0:3]`, multiply it element by
# element with the kernel, and add everything up.

# %%
window = as_image(x_tiny)[0:3, 0:3]
products = window * k_tiny[:, :, 0, 0] + 0.0  # "+ 0.0" prints -0 as 0
print("window x[0:3, 0:3]:\n", window)
print("window * K:\n", products)
print(f"sum = {products.sum():g}   (z[0, 0] = {as_image(z_loops)[0, 0]:g})")
assert products.sum() == as_image(z_loops)[0, 0], "z[0, 0] is the sum of window * K"

# %% [markdown]
# With several channels nothing changes except that the window is `kh x kw x Cin` and there
# are `Cout` filters. Below: 2 input channels, 3 filters. Output channel `f` is still one
# window times one filter, summed over all three axes.

# %%
rng = np.random.default_rng(0)
x_mc = rng.integers(-2, 3, (1, 4, 4, 2)).astype(np.float64)  # Cin = 2
k_mc = rng.integers(-1, 2, (3, 3, 2, 3)).astype(np.float64)  # Cin = 2 -> Cout = 3
b_mc = np.array([0.5, 0.0, -1.0])
z_mc = conv2d_forward_loops(x_mc, k_mc, b_mc, padding="valid")
print("x", x_mc.shape, " K", k_mc.shape, " b", b_mc.shape, " ->  z", z_mc.shape)
for f in range(3):
    by_hand = np.sum(x_mc[0, 0:3, 0:3, :] * k_mc[:, :, :, f]) + b_mc[f]
    print(f"filter {f}: z[0, 0, 0, {f}] = {z_mc[0, 0, 0, f]:5.1f}   by hand: {by_hand:5.1f}")
    assert abs(z_mc[0, 0, 0, f] - by_hand) < 1e-12, "output channel f is one window times filter f"

# %% [markdown]
# ## 3. The fast version: im2col, then one matrix product
#
# Four Python loops over every pixel are far too slow for a 256x256 image with 64 channels.
# `Conv2D` does the same arithmetic in two steps:
#
# 1. **im2col**: copy every window into one row of a matrix `cols` of shape
#    `(N*Ho*Wo, kh*kw*Cin)`. Row `m` is the window of output pixel `m`, flattened in the
#    kernel's own order `(i, j, c)`.
# 2. **one matmul**: reshape the kernel to `(kh*kw*Cin, Cout)`, one filter per column. Then
#    `z = cols @ K_flat + b` computes every dot product at once, in a single BLAS call.
#
# Here are the four windows of the tiny example as the four rows of `cols`.

# %%
cols = im2col(x_tiny, 3, 3)  # (N*Ho*Wo, kh*kw*Cin) = (4, 9)
k_flat = k_tiny.reshape(-1, 1)  # (kh*kw*Cin, Cout) = (9, 1)
print("cols = im2col(x, 3, 3), shape", cols.shape, "\n", cols)
print("K.reshape(-1, 1).T =", k_flat.T)
print("cols @ K_flat =", (cols @ k_flat).ravel(), "-> reshaped to (1, 2, 2, 1):")
print(as_image((cols @ k_flat).reshape(1, 2, 2, 1)))
assert np.array_equal((cols @ k_flat).reshape(z_loops.shape), z_loops), (
    "im2col then one matmul should give the loops' output"
)

# %% [markdown]
# The figure shows the same thing: each coloured window of the input becomes the row of
# `cols` with the same colour, and each output is that row times the kernel.


# %%
def draw_grid(ax, values, x0, y0, fill="white", cell=1.0, fontsize=11, edge="0.4"):
    """Draw `values` (2-D) as labelled cells of size `cell`, top-left corner at (x0, y0).

    `fill` is one colour, or an array of colours with the shape of `values`.
    """
    values = np.atleast_2d(values)
    fills = np.broadcast_to(np.asarray(fill, dtype=object), values.shape)
    for (r, c), v in np.ndenumerate(values):
        xy = (x0 + c * cell, y0 + r * cell)
        ax.add_patch(Rectangle(xy, cell, cell, facecolor=fills[r, c], edgecolor=edge))
        ax.text(
            xy[0] + cell / 2,
            xy[1] + cell / 2,
            f"{v:g}",
            ha="center",
            va="center",
            fontsize=fontsize,
        )


def grid_axes(fig, xlim, ylim, rect=(0, 0, 1, 1)):
    """An axes without ticks, y growing downwards like array rows, equal aspect."""
    ax = fig.add_axes(rect)
    ax.set_xlim(*xlim)
    ax.set_ylim(ylim[1], ylim[0])
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


WINDOW_COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]  # no red next to green
LIGHT = ["#cfe2f3", "#fde0c2", "#d2eed2", "#e4d7f2"]
POSITIONS = [(0, 0), (0, 1), (1, 0), (1, 1)]  # output pixel of window m

fig = Figure(figsize=(14, 4.4))
ax = grid_axes(fig, (-0.5, 26.5), (-1.9, 5.0))
ax.text(
    2.25,
    -0.55,
    "input x (4x4), drawn four times:\nthe window of each output pixel",
    ha="center",
    va="bottom",
    fontsize=10,
)
for m, (r, c) in enumerate(POSITIONS):
    fills = np.full((4, 4), "white", dtype=object)
    fills[r : r + 3, c : c + 3] = LIGHT[m]
    x0, y0 = 2.5 * c, 2.5 * r  # a 2x2 layout of small grids, like the output
    draw_grid(ax, as_image(x_tiny), x0, y0, fill=fills, cell=0.5, fontsize=8)
    ax.add_patch(
        Rectangle(
            (x0 + 0.5 * c, y0 + 0.5 * r),
            1.5,
            1.5,
            fill=False,
            edgecolor=WINDOW_COLORS[m],
            linewidth=2.2,
        )
    )
ax.annotate("", xy=(7.3, 2), xytext=(5.2, 2), arrowprops=dict(arrowstyle="->", lw=2))
ax.text(6.25, 1.8, "im2col", ha="center", va="bottom", fontsize=10)

X0 = 7.5  # cols: 4 rows x 9 columns, each row shaded like its window
draw_grid(ax, cols, X0, 0, fill=np.array(LIGHT, dtype=object)[:, None])
for m in range(4):
    ax.add_patch(Rectangle((X0, m), 9, 1, fill=False, edgecolor=WINDOW_COLORS[m], linewidth=2))
draw_grid(ax, k_flat.T, X0, -1.6, fill="#eeeeee")  # the kernel as a row above its columns
ax.text(X0 - 0.2, -1.1, "K flattened", ha="right", va="center", fontsize=10)
for j in range(9):
    ax.text(X0 + j + 0.5, -0.3, f"{j // 3},{j % 3}", ha="center", fontsize=8, color="0.35")
ax.text(
    X0 + 4.5,
    4.3,
    "cols: one window per row, shape (N*Ho*Wo, kh*kw*Cin) = (4, 9);\n"
    "column 'i,j' holds the window's pixel (i, j), weighted by K[i, j]",
    ha="center",
    va="top",
    fontsize=10,
)

z_rows = cols @ k_flat
ax.text(17.0, 2, "@ K =", ha="left", va="center", fontsize=12)
draw_grid(ax, z_rows, 19, 0, fill=np.array(LIGHT, dtype=object)[:, None])
ax.text(19.5, 4.3, "z\n(4, 1)", ha="center", va="top", fontsize=10)
ax.annotate("", xy=(22.3, 2), xytext=(20.4, 2), arrowprops=dict(arrowstyle="->", lw=2))
ax.text(21.35, 1.8, "reshape", ha="center", va="bottom", fontsize=10)
draw_grid(
    ax,
    as_image(z_rows.reshape(1, 2, 2, 1)),
    22.6,
    1,
    fill=np.array(LIGHT, dtype=object).reshape(2, 2),
)
ax.text(23.6, 3.3, "output z (2x2)", ha="center", va="top", fontsize=10)
fig.suptitle("im2col: each window of the input becomes a row; the convolution is one matmul", y=1.0)
save(fig, "01_im2col.png")

# %% [markdown]
# Now the real layer. `Conv2D` creates its parameters on the first `forward`, or when you
# call `build`; `set_weights` then puts our kernel and bias in. Below, the layer and the
# loops are compared on random inputs for kernel sizes 1, 2 and 3, both paddings, 3 input
# channels, 4 filters and an odd 7x6 image. They should agree to rounding error (about
# `1e-15` in float64).

# %%
layer = Conv2D(1, 3, padding="valid", dtype="float64")
layer.build(x_tiny.shape)
layer.set_weights([k_tiny, np.zeros(1)])
print("Conv2D on the tiny example:\n", as_image(layer.forward(x_tiny)))
assert np.abs(layer.forward(x_tiny) - z_loops).max() < 1e-12, "Conv2D should match the loops"

x_rand = rng.standard_normal((2, 7, 6, 3))
print(f"\n{'kernel':>6}  {'padding':>7}  {'output shape':>14}  max |Conv2D - loops|")
for k in (1, 2, 3):
    for padding in ("valid", "same"):
        conv = Conv2D(4, k, padding=padding, dtype="float64", seed=k)
        conv.build(x_rand.shape)
        conv.params["bias"][:] = rng.standard_normal(4)  # a non-zero bias, to test it too
        fast = conv.forward(x_rand)
        slow = conv2d_forward_loops(x_rand, conv.params["kernel"], conv.params["bias"], padding)
        diff = np.abs(fast - slow).max()
        print(f"{k}x{k:<4}  {padding:>7}  {str(fast.shape):>14}  {diff:.2e}")
        assert diff < 1e-12, f"Conv2D ({k}x{k}, {padding}) should match the loops to rounding"

# %% [markdown]
# Same numbers, very different speed. The loops run one Python iteration per output pixel
# and filter; im2col copies the windows once and hands the arithmetic to BLAS.
# (A `Conv2D` on its own always runs this im2col code of `layers/conv2d.py`. Inside a
# `UNet` whose speed switch is on, the model's engine computes z by faster algorithms where
# it has one, with the same numbers: `numpy_unet/fast/`, and tutorial 04.)

# %%
n, size, cin, cout = pick((2, 32, 32, 16), (1, 16, 8, 8))
x_big = rng.standard_normal((n, size, size, cin)).astype(np.float32)
conv = Conv2D(cout, 3, padding="same", seed=0)  # im2col, the version above
conv.build(x_big.shape)
t0 = time.perf_counter()
fast = conv.forward(x_big)
t_fast = time.perf_counter() - t0
t0 = time.perf_counter()
slow = conv2d_forward_loops(x_big, conv.params["kernel"], conv.params["bias"], "same")
t_slow = time.perf_counter() - t0
print(f"x {x_big.shape} -> z {fast.shape}, float32")
print(f"loops : {t_slow * 1e3:8.1f} ms")
print(f"im2col: {t_fast * 1e3:8.1f} ms   ({t_slow / t_fast:.0f}x faster)")
print(f"max |difference| = {np.abs(fast - slow).max():.1e}  (float32 rounding)")
assert np.abs(fast - slow).max() < 1e-4, "im2col and the loops should agree to float32 rounding"
assert t_fast < t_slow, "the im2col layer should be faster than the four loops"

# %% [markdown]
# ## 4. Output sizes: `'valid'` and `'same'`
#
# With `'valid'` the window must fit inside the image, so each axis shrinks by `k - 1`:
# `Ho = H - kh + 1`. With `'same'` the input is first padded with zeros so that the output
# has the input's size: `k - 1` zeros in total along each axis.
#
# For an odd kernel the zeros split evenly: a 3x3 kernel pads one row above and one below.
# For an even kernel they cannot. Keras (following TensorFlow) puts the smaller half
# before and the extra one after: a 2x2 kernel pads **0 before and 1 after**. PyTorch's
# `padding="same"` does the same. `numpy_unet.layers.padding.same_padding` holds the rule.

# %%
H = 5
print(f"input length H = {H}")
print(f"{'kernel':>6}  {'valid: H-k+1':>12}  {'same: H':>7}  {'same pads (before, after)':>25}")
for k in (1, 2, 3, 4, 5):
    before, after = same_padding(H, k)
    print(f"{k:>6}  {H - k + 1:>12}  {H:>7}  {str((before, after)):>25}")
    assert before + after == k - 1, "'same' pads k - 1 zeros in total"
    assert before == (k - 1) // 2, "'same' puts the smaller half before, the extra zero after"

# %% [markdown]
# This matters for the seed's UNet: its up-convolution is `UpSampling2D(2)` followed by
# `Conv2D(f, 2, padding="same")`. Below, a 2x2 kernel of ones (so each output is the sum of
# its 2x2 window) runs on a 3x3 input holding 1 to 9, row by row.

# %% [markdown]
# **Predict before you run.** With Keras's padding (0 before, 1 after), what are the
# top-left output `z[0, 0]` and the bottom-right output `z[2, 2]`? And with the padding the
# other way round (1 before, 0 after), what would `z[0, 0]` be?

# %%
x3 = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
ones2 = np.ones((2, 2, 1, 1))
up_conv = Conv2D(1, 2, padding="same", use_bias=False, dtype="float64")
up_conv.build(x3.shape)
up_conv.set_weights([ones2])
z_same = up_conv.forward(x3)
print("x (3x3):\n", as_image(x3))
print(
    "padded as 'same' does for a 2x2 kernel (0 before, 1 after):\n",
    as_image(pad_same(x3, 2, 2, "same")),
)
print("Conv2D(1, 2, padding='same') with a kernel of ones:\n", as_image(z_same))
print(f"z[0, 0] = 1 + 2 + 4 + 5 = {as_image(z_same)[0, 0]:g}")
print(f"z[2, 2] = 9 + 0 + 0 + 0 = {as_image(z_same)[2, 2]:g}  (three padded zeros)")
assert as_image(z_same)[0, 0] == 1 + 2 + 4 + 5, "the 2x2 window of (0, 0) reaches down-right"
assert as_image(z_same)[2, 2] == 9, "the last output's window holds three padded zeros"

# %% [markdown]
# The answer: the window of output `(h, w)` covers input rows `h, h+1` and columns
# `w, w+1`. It starts at the pixel itself and reaches down and right, so `z[0, 0]` adds
# 1, 2, 4 and 5, and the last row and column of the output see one padded zero row or
# column: `z[2, 2]` is 9 alone.

# %% [markdown]
# If the padding were put the other way round (1 before, 0 after), every output would be
# the window ending at the pixel, not starting at it: the whole map shifts by one pixel.
# With weights exported from Keras that shift would make every prediction slightly wrong,
# and no error would warn you. The comparison below does it by hand.

# %%
x_before = np.pad(x3, ((0, 0), (1, 0), (1, 0), (0, 0)))  # 1 before, 0 after
z_before = conv2d_forward_loops(x_before, ones2, None, "valid")
print("padding (1 before, 0 after) instead:\n", as_image(z_before))
shifted = np.array_equal(as_image(z_before)[1:, 1:], as_image(z_same)[:-1, :-1])
print("is it Keras's output shifted by one pixel?", shifted)
print(f"z[0, 0] with (1 before, 0 after) = 0 + 0 + 0 + 1 = {as_image(z_before)[0, 0]:g}")
assert shifted, "padding (1 before, 0 after) should shift Keras's output by one pixel"
assert as_image(z_before)[0, 0] == 1, "with 1 before, the window of (0, 0) holds three zeros"

# %% [markdown]
# The figure shows both paddings with the window of output pixel `(0, 0)` and of the last
# output pixel `(2, 2)`; grey cells are padding.

# %%
fig = Figure(figsize=(12, 4.4))
cases = [("3x3 kernel: pads 1 before, 1 after", 3), ("2x2 kernel: pads 0 before, 1 after", 2)]
for p, (title, k) in enumerate(cases):
    ax = fig.add_subplot(1, 2, p + 1)
    top, _ = same_padding(3, k)
    xp = as_image(pad_same(x3, k, k, "same"))
    fills = np.full(xp.shape, "#d0d0d0", dtype=object)
    fills[top : top + 3, top : top + 3] = "white"  # the image itself
    draw_grid(ax, xp, 0, 0, fill=fills, fontsize=12)
    conv = Conv2D(1, k, padding="same", use_bias=False, dtype="float64")
    conv.build(x3.shape)
    conv.set_weights([np.ones((k, k, 1, 1))])
    x_out = xp.shape[1] + 1.5
    draw_grid(ax, as_image(conv.forward(x3)), x_out, top, fill="#eef4fb", fontsize=12)
    for (r, c), color in (((0, 0), "tab:blue"), ((2, 2), "tab:red")):
        ax.add_patch(
            Rectangle(
                (c + 0.06, r + 0.06), k - 0.12, k - 0.12, fill=False, edgecolor=color, linewidth=3
            )
        )
        ax.add_patch(
            Rectangle(
                (x_out + c + 0.06, top + r + 0.06),
                0.88,
                0.88,
                fill=False,
                edgecolor=color,
                linewidth=3,
            )
        )
    ax.text(xp.shape[1] / 2, xp.shape[0] + 0.2, "padded input", ha="center", va="top")
    ax.text(x_out + 1.5, top + 3.2, "output (sum of window)", ha="center", va="top")
    ax.set_xlim(-0.3, x_out + 3.3)
    ax.set_ylim(xp.shape[0] + 0.9, -0.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(
        f"{title}\nblue: window of output (0, 0); red: window of output (2, 2)", fontsize=10
    )
fig.suptitle("'same' padding of a 3x3 input, kernel of ones (grey = zero padding)")
save(fig, "01_same_padding.png")

# %% [markdown]
# ## 5. The backward pass
#
# During training the layer above hands back `dy = dL/dy`, the gradient of the loss with
# respect to this layer's output. The activation's backward turns it into `dz = dL/dz`
# (for ReLU: `dz = dy * (z > 0)`). The layer must return `dL/dx` for the layer below, and
# store `dL/dK` and `dL/db` for the optimizer.
#
# Write the forward pass in im2col form. Let `C = im2col(xp)` (shape `M x P`, with
# `M = N*Ho*Wo` windows and `P = kh*kw*Cin` numbers per window) and `W = K.reshape(P, Cout)`:
#
#     Z = C W + b          Z[m, f] = sum_p C[m, p] W[p, f] + b[f]
#
# This is an ordinary linear layer applied to every window, so its gradients are the
# familiar ones. With `G = dL/dZ` (shape `M x Cout`, the `dz` reshaped):
#
# - **Kernel.** `Z[m, f]` depends on `W[p, f]` with slope `C[m, p]`, and `W[p, f]` is used
#   by every window `m`. Sum over the windows: `dW[p, f] = sum_m C[m, p] G[m, f]`, that is
#   **`dK = C^T G`**, one matmul, reshaped to `(kh, kw, Cin, Cout)`.
# - **Bias.** `b[f]` is added to every output of channel `f`: **`db = sum_m G[m, f]`**.
# - **Windows.** `dC = G W^T` (shape `M x P`): the gradient of every copied window.
# - **Input.** im2col *copied* each input pixel into up to `kh*kw` windows. A value used
#   several times receives the sum of the gradients of all its uses, so **`dx = col2im(dC)`**
#   adds every window row back onto the pixels it came from (then the padding is cut off).
#   `col2im` is the adjoint of `im2col`: copying forwards becomes summing backwards. You
#   will meet the same rule again in `UpSampling2D` (tutorial 02).
#
# In index form the input gradient is `dxp[n, h+i, w+j, c] += dz[n, h, w, f] * K[i, j, c, f]`:
# each output pixel sends its gradient back through the kernel to its own window. That is
# exactly what `conv2d_backward_loops` does, and it is also a transposed convolution of
# `dz` with `K`, which is why `Conv2DTranspose` is sometimes called a "backwards conv".
#
# Writing this backward pass is exercise `conv2d_backward` of the course kit
# (`numpy-unet exercises`): given `dz` and the padded input, compute `dK`, `db` and `dx`
# with im2col and col2im, exactly as derived above.
#
# First, col2im on its own. Fed a matrix of ones, it counts how many windows cover each
# pixel, i.e. how many terms each pixel's gradient is a sum of.
#
# **Predict before you run.** For a 3x3 `'same'` conv on a 5x5 image, how many windows
# contain a corner pixel? A pixel on the border but not in a corner? A pixel of the
# interior?

# %%
xp_shape = pad_same(np.zeros((1, 5, 5, 1)), 3, 3, "same").shape  # (1, 7, 7, 1)
coverage = col2im(np.ones((25, 9)), xp_shape, 3, 3)[:, 1:-1, 1:-1, :]  # cut the padding
print("windows covering each pixel of a 5x5 image (3x3 kernel, 'same'):\n", as_image(coverage))
corner, border, interior = (
    as_image(coverage)[0, 0],
    as_image(coverage)[0, 2],
    as_image(coverage)[2, 2],
)
print(f"corner: {corner:g} windows, border: {border:g}, interior: {interior:g}")
assert (corner, border, interior) == (4, 6, 9), (
    "col2im: 4 windows at a corner, 6 on a border, 9 inside"
)

# %% [markdown]
# The answer: 4, 6 and 9. A corner pixel is in the windows of the 2x2 outputs around it,
# a border pixel in 2x3, an interior pixel in all 3x3 windows that reach it. The zero
# padding takes the other windows' places, and its gradient is cut off.

# %% [markdown]
# Now the whole backward of `Conv2D` (im2col) against the loops, on the random 7x6 input
# from before with a 3x3 `'same'` kernel and a random `dz`.

# %%
conv = Conv2D(4, 3, padding="same", dtype="float64", seed=0)
z = conv.forward(x_rand)
dz = rng.standard_normal(z.shape)
dx_fast = conv.backward(dz)
dx_loop, dk_loop, db_loop = conv2d_backward_loops(x_rand, conv.params["kernel"], dz, "same")
print(
    "shapes: dx", dx_fast.shape, " dK", conv.grads["kernel"].shape, " db", conv.grads["bias"].shape
)
for name, fast_grad, loop_grad in (
    ("dx", dx_fast, dx_loop),
    ("dK", conv.grads["kernel"], dk_loop),
    ("db", conv.grads["bias"], db_loop),
):
    diff = np.abs(fast_grad - loop_grad).max()
    print(f"max |{name} fast - loops| = {diff:.1e}")
    assert diff < 1e-12, f"the im2col backward's {name} should match the loops to rounding"

# %% [markdown]
# Both versions could share the same mistake, so check them against the definition of a
# derivative. `gradcheck` perturbs every input element and every weight by `±1e-6`, measures
# how `sum(forward(x) * dy)` changes (central differences, for a random `dy`), and compares
# with what `backward(dy)` returned. It needs float64. The three layers below are the three
# kinds the seed's UNet uses: 3x3 `'same'` with ReLU, the 2x2 `'same'` up-conv, and, for
# the paper's variant, 3x3 `'valid'`. Every row should say `ok`, with relative errors
# around `1e-8` or smaller.

# %%
x_check = rng.standard_normal((2, 5, 4, 3))
for layer in (
    Conv2D(2, 3, padding="same", activation="relu", dtype="float64", seed=1, name="conv3x3_same"),
    Conv2D(2, 2, padding="same", activation="relu", dtype="float64", seed=2, name="upconv2x2_same"),
    Conv2D(2, 3, padding="valid", dtype="float64", seed=3, name="conv3x3_valid"),
):
    layer.build(x_check.shape)
    layer.params["bias"][:] = 0.1  # away from zero, so ReLU's kink is not hit by chance
    report = gradcheck(layer, x_check, raise_exception=False)
    print(report, end="\n\n")
    assert report.passed, f"gradcheck of {layer.name} should say ok for every tensor"
    assert report.max_rel_error < 1e-7, f"{layer.name}: relative errors should be around 1e-8"

# %% [markdown]
# ## 6. The receptive field
#
# An output pixel of a 3x3 conv depends on a 3x3 patch of the input: its **receptive
# field**. Stack a second 3x3 conv on top and each of its outputs sees 3x3 pixels of the
# first conv's output, each of which saw 3x3 input pixels: 5x5 in all. Each further 3x3
# conv adds 2 pixels, as long as the convs work at full resolution. A 2x2 max-pooling with
# stride 2 doubles the **jump**, the distance in input pixels between neighbouring outputs.
# From then on every layer adds `(k - 1) * jump` pixels instead of `k - 1`, the poolings
# themselves included: `pool1`, at jump 1, adds 1 pixel, but `pool2`, `pool3` and `pool4`,
# at jumps 2, 4 and 8, add 2, 4 and 8.
#
#     r_out = r_in + (k - 1) * jump_in,     jump_out = jump_in * stride
#
# The cell below applies this rule down the contracting path of the seed's UNet.
#
# **Predict before you run.** The bottom of the U, `conv5_2`, comes after ten 3x3 convs and
# four poolings. How wide is its receptive field: about 20 pixels (ten convs of 2 each),
# about 50, or more than 100?

# %%
r, jump = 1, 1
pool_adds = []  # pixels each pooling adds to the field
print(f"{'layer':>10}  {'kernel':>6}  {'stride':>6}  {'receptive field':>15}  {'jump':>4}")
for level in range(1, 6):
    names = [f"conv{level}_1", f"conv{level}_2"] + ([f"pool{level}"] if level < 5 else [])
    for name in names:
        k, stride = (2, 2) if name.startswith("pool") else (3, 1)
        added = (k - 1) * jump
        r, jump = r + added, jump * stride
        if name.startswith("pool"):
            pool_adds.append(added)
        print(f"{name:>10}  {k:>6}  {stride:>6}  {f'{r}x{r}':>15}  {jump:>4}")
print(f"conv5_2 sees {r}x{r} input pixels; ten 3x3 convs without poolings: {1 + 10 * 2}")
print(f"pool1 to pool4 add {pool_adds} pixels, (2 - 1) * jump each")
assert r == 140 and jump == 16, "the rule gives conv5_2 a 140x140 field with jump 16"
assert pool_adds == [1, 2, 4, 8], "a pooling adds 1 pixel only at jump 1; then 2, 4 and 8"

# %% [markdown]
# The answer: more than 100. The bottom of the U (`conv5_2`) already sees 140x140 input
# pixels, because the convs after each pooling take steps of 2, 4, 8, then 16 pixels.
#
# The expanding path widens this further, and there the rule above no longer applies
# directly: an up-sampling halves the jump, and whether a window straddles two copied
# pixels depends on where the output pixel sits. So follow the input interval instead.
# Start from one output pixel `[p, p]` and walk back through the layers on its deepest
# path: a 3x3 `'same'` conv widens `[a, b]` to `[a-1, b+1]`, the 2x2 up-conv to `[a, b+1]`
# (Keras's padding again), a pooling to `[2a, 2b+1]` and an up-sampling to
# `[a // 2, b // 2]`. The skip paths pass through fewer layers and see less, so the deepest
# path gives the whole field.


# %%
def seed_unet_path(depth: int) -> list[tuple[str, int]]:
    """The layers between the input and the output along the U's deepest path, in order."""
    path = []
    for _ in range(depth):
        path += [("conv", 3), ("conv", 3), ("pool", 2)]
    path += [("conv", 3), ("conv", 3)]  # the bottom
    for _ in range(depth):
        path += [("upsample", 2), ("conv", 2), ("conv", 3), ("conv", 3)]
    return path + [("conv", 3), ("conv", 1)]  # the head: Conv2D(2, 3) and Conv2D(1, 1)


def input_interval(path: list[tuple[str, int]], p: int) -> tuple[int, int]:
    """The input rows [a, b] that can influence output row p (no image border)."""
    a = b = p
    for kind, k in reversed(path):
        if kind == "conv":  # 'same': (k - 1) // 2 before, the rest after
            a, b = a - (k - 1) // 2, b + (k - 1 - (k - 1) // 2)
        elif kind == "pool":
            a, b = 2 * a, 2 * b + 1
        else:  # nearest up-sampling: output row h copies input row h // 2
            a, b = a // 2, b // 2
    return a, b


path = seed_unet_path(4)
offset = 256  # start well inside an imaginary infinite image
sizes = [
    input_interval(path, offset + p)[1] - input_interval(path, offset + p)[0] + 1 for p in range(16)
]
print("seed's UNet (depth 4): receptive field of output row p, for p mod 16 = 0 .. 15:")
print(sizes)
print(f"so {min(sizes)} to {max(sizes)} pixels wide, depending on the position mod 2**4 = 16")
assert (min(sizes), max(sizes)) == (204, 220), "the seed's UNet sees 204 to 220 pixels per axis"

# %% [markdown]
# So each output pixel of the seed's UNet can depend on a window of up to 220x220 input
# pixels: almost the whole 256x256 image. That is what lets it decide whether a thin dark
# line is a membrane or just noise, by looking at the cells around it.
#
# ### Seeing it: the gradient of one output pixel
#
# The receptive field is also where the gradient goes. Set `dy` to 1 at one output pixel
# and 0 elsewhere, run `backward`, and `dx` shows how much each input pixel influences that
# output; outside the receptive field it is exactly 0.
#
# With kernels of ones and no activation the numbers count paths: after one conv each of
# the 3x3 pixels has one path to the output, after two convs the centre pixel has 9 paths
# and the corners 1. The counts pile up in the middle: pixels near the centre of the
# field matter much more than those at its edge. The last panel adds a pooling and ReLUs
# with random weights, and averages `|dx|` over several random images. The max-pooling
# routes the gradient to one pixel of each 2x2 window per image, so the map is speckled.


# %%
def output_pixel_gradient(layers: list, x: np.ndarray) -> np.ndarray:
    """d(centre output pixel, channel 0) / dx for the stack `layers`, per image: (N, H, W)."""
    y = x
    for layer in layers:
        y = layer.forward(y)
    dy = np.zeros_like(y)
    dy[:, y.shape[1] // 2, y.shape[2] // 2, 0] = 1.0
    for layer in reversed(layers):
        dy = layer.backward(dy)
    return dy[..., 0]


def stack_path(layers: list) -> list[tuple[str, int]]:
    return [("pool", 2) if isinstance(lay, MaxPooling2D) else ("conv", 3) for lay in layers]


def ones_conv() -> Conv2D:
    conv = Conv2D(1, 3, padding="same", use_bias=False, dtype="float64")
    conv.build((1, 1, 1, 1))
    conv.set_weights([np.ones((3, 3, 1, 1))])
    return conv


panels = []
for depth in (1, 2, 3):
    stack = [ones_conv() for _ in range(depth)]
    g = output_pixel_gradient(stack, np.ones((1, 11, 11, 1)))[0]
    panels.append((f"{depth} conv{'s' if depth > 1 else ''} (kernels of ones)", g, stack))
    print(
        f"{depth} 3x3 conv(s): non-zero gradient on {np.count_nonzero(g.any(1))}x"
        f"{np.count_nonzero(g.any(0))} pixels, centre value {g[5, 5]:g}"
    )
    width = 2 * depth + 1
    assert np.count_nonzero(g.any(1)) == np.count_nonzero(g.any(0)) == width, (
        f"{depth} 3x3 conv(s) should see {width}x{width} pixels"
    )
    paths_1d = np.ones(1)
    for _ in range(depth):
        paths_1d = np.convolve(paths_1d, np.ones(3))  # paths along one axis: 1 2 3 2 1, ...
    field = g[5 - depth : 6 + depth, 5 - depth : 6 + depth]
    assert np.array_equal(field, np.outer(paths_1d, paths_1d)), (
        "the gradient of a stack of kernels of ones should count the paths to the output"
    )
    assert field[0, 0] == 1 and field.max() == g[5, 5], "corners: 1 path; most at the centre"

n_images, side = pick((32, 32), (8, 32))
stack = (
    [Conv2D(4, 3, padding="same", activation="relu", dtype="float64", seed=s) for s in range(2)]
    + [MaxPooling2D(2)]
    + [Conv2D(4, 3, padding="same", activation="relu", dtype="float64", seed=s) for s in (2, 3)]
)
g = np.abs(output_pixel_gradient(stack, rng.standard_normal((n_images, side, side, 1))))
g = g.mean(axis=0)
panels.append(
    (
        f"conv, conv, pool, conv, conv\n(ReLU, random weights, mean |dx| of {n_images} images)",
        g,
        stack,
    )
)
rows = np.flatnonzero(g.any(1))
a, b = input_interval(stack_path(stack), side // 4)  # centre row of the pooled map
print(
    f"conv-conv-pool-conv-conv: non-zero gradient on rows {rows.min()}..{rows.max()} "
    f"({rows.max() - rows.min() + 1} pixels; the rule above says {b - a + 1})"
)
assert (rows.min(), rows.max()) == (a, b) and b - a + 1 == 14, (
    "the gradient should be non-zero exactly on the 14 rows the rule predicts"
)

fig = Figure(figsize=(16, 4.6), layout="constrained")
for p, (title, g, stack) in enumerate(panels):
    ax = fig.add_subplot(1, 4, p + 1)
    im = ax.imshow(np.ma.masked_equal(g, 0), cmap="viridis", vmin=0)
    ax.set_facecolor("#e4e4e4")  # zero gradient: outside the receptive field
    # the theoretical field: the interval of the centre output pixel, mapped back to the input
    centre = g.shape[0] // 2 // (2 if p == 3 else 1)
    a, b = input_interval(stack_path(stack), centre)
    ax.add_patch(
        Rectangle(
            (a - 0.5, a - 0.5),
            b - a + 1,
            b - a + 1,
            fill=False,
            edgecolor="magenta",
            linewidth=1.5,
            linestyle="--",
        )
    )
    if p < 3:  # small integers: write them in the cells instead of a colour bar
        for (r, c), v in np.ndenumerate(g):
            if v:
                color = "k" if v > 0.6 * g.max() else "w"
                ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=8, color=color)
        ax.set_xticks(range(0, g.shape[1], 2))
        ax.set_yticks(range(0, g.shape[0], 2))
    else:
        fig.colorbar(im, ax=ax, shrink=0.8, label="mean |d output / d input|")
    ax.set_title(f"{title}\nfield {b - a + 1}x{b - a + 1} (magenta box)", fontsize=10)
    ax.set_xlabel("input column")
    ax.set_ylabel("input row")
fig.suptitle(
    "gradient of the centre output pixel with respect to the input (grey: exactly 0);"
    " numbers = paths from that input pixel to the output"
)
save(fig, "01_receptive_field.png")

# %% [markdown]
# ### The same for a whole (small) UNet
#
# The interval walk is easy to get wrong, so test it on a real network: a `UNet` with two
# poolings and 4 filters (the seed's layout otherwise), on random images. The gradient of
# the centre output pixel should be non-zero exactly inside the predicted interval.

# %%
side, n_images = pick((64, 16), (64, 4))
small = UNet((side, side, 1), filters=4, depth=2, dropout=0.0, dtype="float64", seed=0)
x_unet = rng.standard_normal((n_images, side, side, 1))
y_unet = small.forward(x_unet)
dy = np.zeros_like(y_unet)
centre = side // 2
dy[:, centre, centre, 0] = 1.0
g_unet = np.abs(small.backward(dy)[..., 0]).mean(axis=0)
rows, cols_nz = np.flatnonzero(g_unet.any(1)), np.flatnonzero(g_unet.any(0))
a, b = input_interval(seed_unet_path(2), centre)
print(f"depth-2 UNet, output pixel ({centre}, {centre}): predicted input rows/columns {a}..{b}")
print(
    f"non-zero gradient: rows {rows.min()}..{rows.max()}, columns {cols_nz.min()}..{cols_nz.max()}"
)
inside = g_unet[a : b + 1, a : b + 1]
print(f"pixels of the predicted field with a non-zero gradient: {np.mean(inside > 0):.0%}")
assert (rows.min(), rows.max(), cols_nz.min(), cols_nz.max()) == (a, b, a, b), (
    "the gradient should be non-zero inside the predicted interval and nowhere else"
)
assert np.all(inside > 0), "every pixel of the predicted field should get some gradient"
profile = g_unet[centre, a : b + 1]
ratio = profile.max() / min(profile[0], profile[-1])
print(f"row {centre}: the field's edge gets {ratio:,.0f}x less gradient than the peak")
assert ratio > 100, "the edge of the field should get at least 100x less gradient than the peak"

fig = Figure(figsize=(13, 5), layout="constrained")
ax = fig.add_subplot(1, 2, 1)
log_g = np.ma.masked_invalid(np.log10(g_unet, out=np.full_like(g_unet, np.nan), where=g_unet > 0))
im = ax.imshow(log_g, cmap="magma")
ax.set_facecolor("#e4e4e4")
ax.add_patch(
    Rectangle(
        (a - 0.5, a - 0.5),
        b - a + 1,
        b - a + 1,
        fill=False,
        edgecolor="tab:blue",
        linewidth=2,
        linestyle="--",
    )
)
ax.plot([centre], [centre], marker="+", color="tab:blue", markersize=14, mew=2)
ax.set_title(
    f"log10 of mean |d y[{centre}, {centre}] / dx| over {n_images} random images\n"
    f"grey: exactly 0; blue box: predicted field {b - a + 1}x{b - a + 1}; +: the pixel",
    fontsize=10,
)
ax.set_xlabel("input column")
ax.set_ylabel("input row")
fig.colorbar(im, ax=ax, shrink=0.85, label="log10 mean |gradient|")
ax = fig.add_subplot(1, 2, 2)
columns = np.arange(a, b + 1)
ax.semilogy(columns, g_unet[centre, a : b + 1], marker=".", label=f"row {centre} of the left map")
ax.axvspan(a - 0.5, b + 0.5, color="tab:blue", alpha=0.08, label="predicted receptive field")
ax.axvline(centre, color="0.4", linestyle=":", label="the output pixel's column")
ax.set_xlim(-0.5, side - 0.5)
ax.set_xlabel("input column")
ax.set_ylabel("mean |gradient| (log scale)")
ax.set_title(
    f"row {centre}: the field's edge gets {ratio:,.0f}x less gradient than the peak", fontsize=10
)
ax.legend(fontsize=9, loc="lower center")
fig.suptitle(f"receptive field of one output pixel of a depth-2 UNet ({side}x{side} input)")
save(fig, "01_unet_receptive_field.png")

# %% [markdown]
# Two things to read from this figure. First, the gradient is non-zero exactly on the
# predicted square and nowhere else, so the interval walk above is right. Second, the
# influence is far from uniform inside that square: the pixels near the output pixel count
# hundreds to thousands of times more than those at the edge (this run's ratio is printed
# above and in the right panel's title, which is on a log scale). The part of the field
# that really matters, sometimes called the *effective* receptive field, is much smaller
# than the theoretical one, for the same path-counting reason as in the kernels-of-ones
# panels.
#
# ## Summary
#
# - `Conv2D` computes, for every output pixel and filter, the dot product of a
#   `kh x kw x Cin` window with the filter, plus a bias (a cross-correlation).
# - The fast layer copies the windows into the rows of a matrix (im2col) and does one
#   matmul; it matches the four-loop version to about `1e-15`.
# - `'same'` pads `k - 1` zeros per axis, the extra one *after* for even kernels (Keras's
#   and PyTorch's rule); `'valid'` shrinks each axis by `k - 1`.
# - Backwards: `dK = C^T G`, `db = sum G`, `dx = col2im(G W^T)`, checked by `gradcheck`.
# - The receptive field grows by `(k - 1) * jump` per layer, poolings included, and each
#   pooling doubles the jump. The seed's UNet sees up to 220x220 pixels per output pixel.
#
# Next, tutorial 02 opens the two layers that change the resolution: `MaxPooling2D` and
# `UpSampling2D`.
