# %% [markdown]
# # 02 · Pooling and up-sampling: where the gradient goes
#
# The UNet changes resolution with two layers that have no weights at all:
# `MaxPooling2D(2)` halves the height and width on the way down, and `UpSampling2D(2)`
# doubles them on the way up. Their forward passes are one line each. Their backward
# passes are where students (and sometimes libraries) make mistakes, so this tutorial
# looks at them element by element.
#
# **You will learn**
#
# - what `MaxPooling2D` computes, and that its backward sends each window's gradient to
#   the one element that won the window;
# - the tie rule (the first maximum in row-major order), why the derivative at a tie does
#   not exist, and how the tests check the gradient there anyway;
# - why `UpSampling2D`'s backward must *sum* each block, and how `gradcheck` catches the
#   classic bug of taking one element;
# - why pooling drops the last row of an odd-sized map, and why a UNet therefore needs
#   sizes divisible by `2**depth` (with the error message you get for 250x250).
#
# **Time:** about 15 minutes to read; its run time, measured, is in `tutorials/README.md`
# (`NUMPY_UNET_QUICK=1` runs a small version in seconds).
#
# If you know PyTorch: these are `nn.MaxPool2d(2)` and `nn.Upsample(scale_factor=2,
# mode="nearest")`, on channels-last tensors.

# %%
# ruff: noqa: E402
import itertools

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from numpy_unet import GradcheckError, UNet, gradcheck
from numpy_unet.layers import Concatenate, MaxPooling2D, UpSampling2D
from numpy_unet.layers.loops import maxpool_backward_loops, maxpool_forward_loops
from numpy_unet.teach.tutorial import quick, save

np.set_printoptions(precision=4, suppress=True, linewidth=100)
print("quick mode: the same small examples and checks as a full run" if quick() else "full mode")


def as_image(a: np.ndarray) -> np.ndarray:
    """(1, H, W, 1) -> (H, W): how the small examples are printed."""
    return a[0, :, :, 0]


def image(rows: list) -> np.ndarray:
    """A hand-written 2-D list -> a float64 batch of one single-channel image (1, H, W, 1)."""
    return np.array(rows, dtype=np.float64)[None, :, :, None]


def draw_grid(ax, values, x0=0.0, y0=0.0, fill="white", fmt="{:g}", fontsize=12, bold=None):
    """Draw `values` (2-D) as labelled unit cells, top-left corner at (x0, y0).

    `fill` is one colour or an array of colours shaped like `values`; `bold` a boolean mask.
    """
    values = np.atleast_2d(values)
    fills = np.broadcast_to(np.asarray(fill, dtype=object), values.shape)
    for (r, c), v in np.ndenumerate(values):
        ax.add_patch(Rectangle((x0 + c, y0 + r), 1, 1, facecolor=fills[r, c], edgecolor="0.5"))
        weight = "bold" if bold is not None and bold[r, c] else "normal"
        ax.text(
            x0 + c + 0.5,
            y0 + r + 0.5,
            fmt.format(v),
            ha="center",
            va="center",
            fontsize=fontsize,
            fontweight=weight,
        )


def window_lines(ax, size=4, step=2):
    """Thick lines between the 2x2 windows of a size x size grid."""
    for v in range(step, size, step):
        ax.plot([v, v], [0, size], color="k", lw=2)
        ax.plot([0, size], [v, v], color="k", lw=2)


def grid_axes(ax, width, height, title):
    """Square cells, row 0 at the top, no ticks."""
    ax.set_xlim(-0.15, width + 0.15)
    ax.set_ylim(height + 0.15, -0.15)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=11)


# %% [markdown]
# ## 1. `MaxPooling2D`, forward
#
# A 2x2 max-pooling with stride 2 (the UNet's) cuts each channel into non-overlapping 2x2
# windows and keeps the largest value of each:
#
#     y[n, h, w, c] = max over i, j < 2 of  x[n, 2h + i, 2w + j, c]
#
# Channels are pooled separately, so the channel count does not change. Here is a 4x4
# example; its four windows are the four 2x2 quarters.

# %%
x = image(
    [
        [1, 3, 2, 0],
        [4, 2, 1, 5],
        [0, 6, 3, 2],
        [1, 2, 7, 1],
    ]
)
pool = MaxPooling2D(2)
y = pool.forward(x)
print("x (4x4):\n", as_image(x))
print("y = MaxPooling2D(2).forward(x), shape", y.shape, "\n", as_image(y))

# %% [markdown]
# The loop version in `numpy_unet.layers.loops` returns, besides `y`, *where* each maximum
# was: the row and column in `x` of the winner of every window. That position is all the
# backward pass needs.

# %%
y_loops, where = maxpool_forward_loops(x, (2, 2), (2, 2))
print("same output as the layer:", np.array_equal(y, y_loops))
assert np.array_equal(y, y_loops), "the layer and the loops should pool to the same maxima"
for h, w in itertools.product(range(2), range(2)):
    r, c = where[0, h, w, 0]
    print(f"window ({h}, {w}): max {as_image(y)[h, w]:g} found at x[{r}, {c}]")
    assert as_image(x)[r, c] == as_image(y)[h, w], "the recorded position holds the maximum"

# %% [markdown]
# ## 2. Backward: the gradient goes to the winner
#
# Take one window, say `[[1, 3], [4, 2]]`, whose output is `4`. Nudge the `4` a little and
# the output moves by the same amount: its derivative is 1. Nudge any of the other three and
# the output does not move at all (they are not the maximum, and a small nudge does not make
# them one): their derivative is 0. So the chain rule says
#
#     dx[n, 2h + i*, 2w + j*, c] = dy[n, h, w, c]   for the winner (i*, j*) of each window
#     dx = 0                                        everywhere else
#
# Three out of four inputs get no gradient at all. Below, a hand-written upstream gradient
# `dy` is routed back by the layer and by the loop version.
#
# Writing this backward pass is exercise `maxpool_backward` of the course kit
# (`numpy-unet exercises`): find each window's first maximum again from the cached input
# and output, and route the window's gradient there.

# %%
dy = image([[0.1, -0.2], [0.3, 0.4]])
dx = pool.backward(dy)
print("dy (2x2):\n", as_image(dy))
print("dx = pool.backward(dy):\n", as_image(dx))
same = np.array_equal(dx, maxpool_backward_loops(dy, where, x.shape))
print("same as the loop version:", same)
print(f"non-zero elements of dx: {np.count_nonzero(dx)} of {dx.size}, summing to {dx.sum():.1f}")
assert same, "the layer's backward should route dy exactly as the loop version does"
assert np.count_nonzero(dx) == 4, "one element per window (the winner) gets the gradient"
assert np.isclose(dx.sum(), dy.sum()), "routing moves dy to the winners: nothing lost or added"

# %% [markdown]
# The figure shows the same thing: the input with its windows, the winner of each window,
# and the gradient arriving at the input.

# %%
x_img, y_img, dy_img, dx_img = as_image(x), as_image(y), as_image(dy), as_image(dx)
won = np.zeros((4, 4), bool)
for h, w in itertools.product(range(2), range(2)):
    won[tuple(where[0, h, w, 0])] = True
WINDOW = np.array([["#cfe2f3", "#fde0c2"], ["#d2eed2", "#e4d7f2"]], dtype=object)
window_fill = WINDOW.repeat(2, axis=0).repeat(2, axis=1)  # each 2x2 window its own colour

fig = Figure(figsize=(15, 4.4), layout="constrained")
axes = fig.subplots(1, 4, width_ratios=[4, 4, 2.4, 4])
draw_grid(axes[0], x_img, fill=window_fill)
grid_axes(axes[0], 4, 4, "input x, four 2x2 windows")
winner_fill = np.where(won, window_fill, "white")
draw_grid(axes[1], x_img, fill=winner_fill, bold=won)
for r, c in zip(*np.nonzero(won)):
    axes[1].add_patch(Rectangle((c + 0.06, r + 0.06), 0.88, 0.88, fill=False, lw=2.5))
grid_axes(axes[1], 4, 4, "which element won each window\n(framed; y = these four values)")
draw_grid(axes[2], dy_img, 0, 1, fill=WINDOW)
grid_axes(axes[2], 2, 4, "upstream gradient dy\n(one value per window)")
draw_grid(axes[3], dx_img, fill=np.where(won, window_fill, "#eeeeee"), bold=won)
grid_axes(axes[3], 4, 4, "routed gradient dx = pool.backward(dy)\n(grey: 0, not the max)")
for ax in axes[[0, 1, 3]]:
    window_lines(ax)
for r, c in zip(*np.nonzero(won)):
    axes[3].add_patch(Rectangle((c + 0.06, r + 0.06), 0.88, 0.88, fill=False, lw=2.5))
fig.suptitle("MaxPooling2D backward: each window's gradient goes to the element that won it")
save(fig, "02_maxpool_backward.png")

# %% [markdown]
# On inputs without ties (random real numbers), the pooling is differentiable and
# `gradcheck` confirms the routing for several pool sizes, strides and odd image sizes,
# in quick mode too (they are cheap). The last three have a stride smaller than the pool,
# so their windows overlap.

# %%
rng = np.random.default_rng(0)
configs = [(2, 2, (6, 6)), (2, 2, (7, 5)), (3, 2, (7, 7)), (3, 1, (5, 6)), (2, 1, (4, 5))]
for size, stride, hw in configs:
    layer = MaxPooling2D(size, strides=stride)
    report = gradcheck(layer, rng.standard_normal((2, *hw, 2)), raise_exception=False)
    check = report.checks[0]
    print(
        f"pool {size}, stride {stride}, input {hw}: max rel err {check.max_rel_error:.1e} "
        f"over {check.checked} elements -> {'ok' if report.passed else 'FAIL'}"
    )
    assert report.passed, f"gradcheck of MaxPooling2D({size}, strides={stride}) should pass"

# %% [markdown]
# **Predict before you run.** With `MaxPooling2D(2, strides=1)`, a 3x3 image has four 2x2
# windows that overlap in its centre pixel. Take the image below, whose centre 9 is the
# maximum of all four windows, and the upstream gradient `dy = [[0.1, -0.2], [0.3, 0.4]]`.
# What gradient does the 9 receive? And the other eight pixels?
#
#     1 2 1
#     2 9 2
#     1 2 1

# %%
x_overlap = image([[1, 2, 1], [2, 9, 2], [1, 2, 1]])
pool_overlap = MaxPooling2D(2, strides=1)
y_overlap = pool_overlap.forward(x_overlap)  # (1, 2, 2, 1): four windows, one per output
dx_overlap = pool_overlap.backward(dy)  # the same dy as above
print("y = MaxPooling2D(2, strides=1).forward(x):\n", as_image(y_overlap))
print("dx = backward(dy):\n", as_image(dx_overlap))
print(f"the 9 receives {as_image(dx_overlap)[1, 1]:.1f} = 0.1 - 0.2 + 0.3 + 0.4")
assert np.isclose(as_image(dx_overlap)[1, 1], dy.sum()), (
    "an element that wins several overlapping windows receives the sum of their gradients"
)
assert np.count_nonzero(dx_overlap) == 1, "the pixels that win no window get no gradient"

# %% [markdown]
# The answer: the 9 wins all four windows, so it receives the sum of all four gradients,
# 0.6; the other pixels win nothing and get 0. It is the rule of tutorial 01 again: a value
# used several times forwards receives the sum of the gradients of its uses.

# %% [markdown]
# ## 3. Ties: the first maximum wins
#
# When two elements of a window share the maximum, which one gets the gradient? In
# `numpy_unet` it is the **first one in row-major order**: scan the window row by row, left
# to right, and take the first element equal to the maximum. That is what `np.argmax`
# returns, and what the loop version does with its strict `>`.
#
# Ties are not rare. After a ReLU, a window of four zeros is a four-way tie; 8-bit images
# are full of repeated values. Below, two windows side by side: the first has three 3s
# (the top-left one wins), the second a tie in its bottom row (the bottom-left wins).

# %%
x_tie = image(
    [
        [3, 3, 0, 1],
        [1, 3, 3, 3],
    ]
)
pool_tie = MaxPooling2D(2)
y_tie = pool_tie.forward(x_tie)
dx_tie = pool_tie.backward(np.ones_like(y_tie))
_, where_tie = maxpool_forward_loops(x_tie, (2, 2), (2, 2))
print("x:\n", as_image(x_tie))
print("y:", as_image(y_tie))
print("dx = backward(ones): the elements that receive the gradient\n", as_image(dx_tie))
winners = [tuple(int(v) for v in w) for w in where_tie[0, 0, :, 0]]
print("winners in the loop version:", winners)
assert winners == [(0, 0), (1, 2)], "the first maximum in row-major order should win a tie"
assert np.array_equal(as_image(dx_tie), [[1, 0, 0, 0], [0, 0, 1, 0]]), (
    "the layer should give a tied window's gradient to its first maximum only"
)

# %% [markdown]
# ## 4. At a tie there is no derivative
#
# Why a rule at all? Because at a tie the maximum is not differentiable. Take the window
# `[[3, 3], [1, 0]]` and vary only its first element, `t`. The output is `max(t, 3)`:
#
# - push `t` up by `eps` and the output rises by `eps`: the slope from the right is **1**;
# - push `t` down by `eps` and the output stays at 3 (the other 3 takes over): the slope
#   from the left is **0**.
#
# The two one-sided derivatives disagree, so there is no derivative, and the central
# difference that `gradcheck` uses, `(f(t + eps) - f(t - eps)) / 2 eps`, returns their
# average, **0.5**, which is the gradient of neither side. The layer's answer, 1 for the
# first 3 and 0 for the second, is one valid choice (a subgradient); giving everything to
# the second 3 instead would be just as valid.

# %%
x_kink = image([[3, 3], [1, 0]])
pool_kink = MaxPooling2D(2)
pool_kink.forward(x_kink)
analytic = as_image(pool_kink.backward(np.ones((1, 1, 1, 1))))
eps = 1e-6


def f(x_: np.ndarray) -> float:
    return float(MaxPooling2D(2).forward(x_).sum())


print(
    f"{'element':>8}  {'(f(x+e)-f(x))/eps':>18}  {'(f(x)-f(x-e))/eps':>18}  "
    f"{'central':>8}  {'layer':>6}"
)
for r, c in itertools.product(range(2), range(2)):
    e = np.zeros_like(x_kink)
    e[0, r, c, 0] = eps
    right = (f(x_kink + e) - f(x_kink)) / eps
    left = (f(x_kink) - f(x_kink - e)) / eps
    central = (f(x_kink + e) - f(x_kink - e)) / (2 * eps)
    print(f"{str((r, c)):>8}  {right:18.3f}  {left:18.3f}  {central:8.3f}  {analytic[r, c]:6g}")
    if r == 0:  # a tied 3: the one-sided slopes are 1 and 0, the central difference 0.5
        assert abs(right - 1) < 1e-6 and abs(left) < 1e-6 and abs(central - 0.5) < 1e-6, (
            "at a tie the slopes from the right and the left should be 1 and 0, central 0.5"
        )
assert np.array_equal(analytic, [[1, 0], [0, 0]]), "the layer picks the first 3 (a subgradient)"

# %% [markdown]
# So the central difference at a tie disagrees with the layer, although the layer is right.
# `gradcheck` knows this pattern. For every element that fails its rule it also measures
# the two one-sided slopes; when they differ, and keep differing at a ten times smaller
# step, the function has a kink there and no derivative to compare with. It labels the
# failure a *kink* and does not count it. Here it is on the tied input from section 3:

# %%
report = gradcheck(MaxPooling2D(2, name="pool_at_a_tie"), x_tie, raise_exception=False)
print(report)
check = report.checks[0]
tied = next(f for f in check.failures if f.index == (0, 1, 3, 0))
print(f"element {tied.index}: numerical {tied.numerical:.4f}, analytic {tied.analytic:.4f}")
print(f"  {tied.label}")
assert report.passed and check.failing == check.kinks > 0, "every failure at a tie is a kink"
assert tied.analytic == 0 and tied.kink and "the left one" in tied.label, (
    "the tied 3 that lost the second window: analytic 0, the slope from the left"
)
strict = gradcheck(MaxPooling2D(2), x_tie, allow_kinks=False, raise_exception=False)
assert not strict.passed, "allow_kinks=False counts the kinks as failures"

# %% [markdown]
# Look at the tied 3 that lost: row 1, column 3, in the second window. The layer gives it 0;
# the central difference gives it half of that window's (random) `dy`. From the left its
# slope is 0 (lowering it leaves the other 3 the maximum), from the right the whole `dy`:
# the layer took the left one. The winning 3 next to it has the mirror-image problem. Neither
# number is "the" derivative, because there is none. `allow_kinks=False` counts kinks as
# failures, as torch's `gradcheck` does.

# %% [markdown]
# The figure draws `max(t, 3)` around the tie with the three slopes. The step is 0.3 here,
# not `1e-6`, only so that it can be seen.

# %%
t = np.linspace(2.4, 3.6, 241)
h = 0.3
fig = Figure(figsize=(7.5, 4.8), layout="constrained")
ax = fig.add_subplot()
ax.plot(t, np.maximum(t, 3), color="0.7", lw=6, label="f(t) = max(t, 3): the pooled output")
ax.plot(
    [2.75, 3.6],
    [2.75, 3.6],
    color="tab:green",
    lw=2,
    ls="--",
    label="tangent from the right: slope 1",
)
ax.plot([2.4, 3.3], [3, 3], color="tab:blue", lw=2, ls="--", label="tangent from the left: slope 0")
ax.plot(
    [3 - h, 3 + h],
    [3, 3 + h],
    color="magenta",
    lw=2,
    marker="o",
    label=f"central difference, step {h}: slope 0.5",
)
ax.plot([3], [3], marker="o", color="k", markersize=8)
ax.annotate(
    "the tie: t = 3, equal to the other element",
    xy=(3, 3),
    xytext=(3.02, 2.82),
    fontsize=10,
    arrowprops=dict(arrowstyle="->"),
)
ax.set_xlabel("t, the first element of the window [[t, 3], [1, 0]]")
ax.set_ylabel("pooled output")
ax.set_title("at a tie the max has a kink: the one-sided slopes disagree")
ax.legend(loc="upper left", fontsize=9)
ax.grid(alpha=0.3)
save(fig, "02_tie_kink.png")

# %% [markdown]
# ### How the tests check a tie
#
# The tests (`tests/test_pooling.py`) cannot finite-difference at the tie, so they check the
# next best thing. Move the element the rule chose up by 0.1, so that it becomes the strict
# maximum of its window. Near that input the pooling is differentiable and `gradcheck`
# applies. Then require:
#
# 1. the gradient at the tie equals the gradient at the tie-broken input, exactly;
# 2. `gradcheck` passes at the tie-broken input.
#
# Together these say: at a tie, the layer returns the true gradient of the input you get by
# breaking the tie towards the element it chose. That is the most a tie rule can promise.

# %%
x_ties = rng.integers(0, 3, (2, 6, 6, 2)).astype(np.float64)  # values 0, 1, 2: many ties
layer = MaxPooling2D(2)
dy_rand = rng.standard_normal(layer.forward(x_ties).shape)
dx_at_tie = layer.backward(dy_rand)
chosen = layer.backward(np.ones_like(dy_rand)) > 0  # the element each window picked
windows = x_ties.reshape(2, 3, 2, 3, 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(2, 3, 3, 2, 4)
n_tied = int(np.sum((windows == windows.max(axis=-1, keepdims=True)).sum(axis=-1) > 1))
print(f"{n_tied} of {windows[..., 0].size} windows hold a tie")
broken = x_ties + 0.1 * chosen
layer.forward(broken)
unchanged = np.array_equal(layer.backward(dy_rand), dx_at_tie)
print("1. gradient at the tie == gradient at the tie-broken input:", unchanged)
report = gradcheck(MaxPooling2D(2, name="pool_tie_broken"), broken, raise_exception=False)
print("2.", report)
assert n_tied > 0, "the example should hold ties"
assert unchanged, "at a tie the gradient should equal the gradient with the tie broken"
assert report.passed, "gradcheck should pass at the tie-broken input"

# %% [markdown]
# ## 5. `UpSampling2D`: copy forwards, sum backwards
#
# Nearest-neighbour up-sampling by 2 copies every pixel into a 2x2 block:
#
#     y[n, h, w, c] = x[n, h // 2, w // 2, c]
#
# Each input pixel therefore appears in **four** outputs, and the loss depends on it
# through all four. The chain rule adds the four contributions:
#
#     dx[n, h, w, c] = sum over a, b < 2 of  dy[n, 2h + a, 2w + b, c]
#
# This is the rule from tutorial 01's col2im: a value used several times forwards gets the
# sum of the gradients of its uses backwards. Writing it is exercise `upsampling_backward`
# of the course kit (`numpy-unet exercises`).
#
# **Predict before you run.** Up-sample `[[1, 2], [3, 4]]` and send back the upstream
# gradient `dy` holding 1 to 16, row by row (4x4). What is `dx` for the pixel that held 1,
# and for the pixel that held 4?

# %%
up = UpSampling2D(2)
x_small = image([[1, 2], [3, 4]])
y_up = up.forward(x_small)
dy_up = image(np.arange(1, 17).reshape(4, 4))
dx_up = up.backward(dy_up)
print("x (2x2):\n", as_image(x_small))
print("y = UpSampling2D(2).forward(x) (4x4):\n", as_image(y_up))
print("dy (4x4):\n", as_image(dy_up))
print("dx = up.backward(dy): each 2x2 block of dy summed\n", as_image(dx_up))
print(f"check dx[0, 0] = 1 + 2 + 5 + 6 = {1 + 2 + 5 + 6}, dx[1, 1] = 11 + 12 + 15 + 16 = 54")
block_sums = as_image(dy_up).reshape(2, 2, 2, 2).sum(axis=(1, 3))  # (2, 2): each block's sum
assert np.array_equal(as_image(dx_up), block_sums), "UpSampling2D's backward sums each block"
assert as_image(dx_up)[0, 0] == 14 and as_image(dx_up)[1, 1] == 54, "dx[0, 0] = 14, dx[1, 1] = 54"

# %% [markdown]
# The answer: 14 and 54, the sums of the 2x2 blocks of `dy` that their copies went to. The
# values of `x` do not matter at all: up-sampling is linear, and its gradient depends only
# on where each copy went.

# %% [markdown]
# ### The classic bug, and how `gradcheck` catches it
#
# It is tempting to think of the backward of "copy" as "take back one copy", and write
# `dx = dy[:, ::2, ::2]`. The shape comes out right, so nothing crashes, and the network
# may even still learn something, with a gradient that is wrong. Here is that bug as a
# subclass:


# %%
class OneElementUpSampling(UpSampling2D):
    """UpSampling2D with a wrong backward: one element of each block instead of the sum."""

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy[:, ::2, ::2]  # BUG: should be the sum of each 2x2 block


x_check = rng.standard_normal((2, 3, 4, 2))
report = gradcheck(UpSampling2D(2), x_check, raise_exception=False)
print(report, end="\n\n")
assert report.passed, "gradcheck should pass for UpSampling2D's summing backward"
caught = False
try:
    gradcheck(OneElementUpSampling(2, name="one_element_upsampling"), x_check)
except GradcheckError as err:
    print("GradcheckError:", err)
    caught = True
assert caught, "gradcheck should catch the one-element backward"

# %% [markdown]
# The error names the layer, the tensor and the worst element, with both values: the
# numerical gradient is the sum of four random `dy` values, the analytic one only the first
# of them. Note that `gradcheck` draws a *random* `dy`. With `dy` all ones the bug would
# still show (1 instead of 4), but a bug such as swapping two output channels would not.
#
# The figure puts the right and the wrong backward side by side.

# %%
bug = OneElementUpSampling(2)
bug.forward(x_small)
dx_bug = bug.backward(dy_up)
BLOCK = np.array([["#cfe2f3", "#fde0c2"], ["#d2eed2", "#e4d7f2"]], dtype=object)
block_fill = BLOCK.repeat(2, axis=0).repeat(2, axis=1)
first_of_block = np.zeros((4, 4), bool)
first_of_block[::2, ::2] = True

fig = Figure(figsize=(15, 4.2), layout="constrained")
axes = fig.subplots(1, 5, width_ratios=[2.6, 4, 4, 2.6, 2.6])
draw_grid(axes[0], as_image(x_small), 0, 1, fill=BLOCK)
grid_axes(axes[0], 2, 4, "x (2x2)")
draw_grid(axes[1], as_image(y_up), fill=block_fill)
grid_axes(axes[1], 4, 4, "y = UpSampling2D(2)(x):\neach pixel copied into a 2x2 block")
draw_grid(axes[2], as_image(dy_up), fill=block_fill, bold=first_of_block)
for r, c in zip(*np.nonzero(first_of_block)):
    axes[2].add_patch(Rectangle((c + 0.06, r + 0.06), 0.88, 0.88, fill=False, ec="k", lw=2.5))
grid_axes(axes[2], 4, 4, "upstream gradient dy\n(the buggy backward reads only the framed ones)")
draw_grid(axes[3], as_image(dx_up), 0, 1, fill=BLOCK)
grid_axes(axes[3], 2, 4, "right: dx = block sums\n(gradcheck: ok)")
draw_grid(axes[4], as_image(dx_bug), 0, 1, fill="#eeeeee")
axes[4].add_patch(Rectangle((0, 1), 2, 2, fill=False, edgecolor="k", lw=3))
grid_axes(axes[4], 2, 4, "bug: dx = dy[:, ::2, ::2]\n(gradcheck: FAIL)")
fig.suptitle(
    "UpSampling2D: forward copies each pixel four times, so backward sums the four gradients"
)
save(fig, "02_upsampling_backward.png")

# %% [markdown]
# ## 6. Odd sizes: pooling drops the last row
#
# A 2x2 `'valid'` pooling of a 5x5 map makes 2x2 windows starting at rows 0 and 2; a window
# starting at row 4 would need a row 5, which does not exist, so row 4 is simply ignored
# (Keras does the same: `Ho = (H - 2) // 2 + 1 = H // 2`). The ignored row and column never
# influence the output, so their gradient is always 0.

# %%
x5 = image(np.arange(25).reshape(5, 5))
pool5 = MaxPooling2D(2)
y5 = pool5.forward(x5)
dx5 = pool5.backward(np.ones_like(y5))
print("x (5x5):\n", as_image(x5))
print("y (2x2):\n", as_image(y5))
print("dx = backward(ones): last row and column get nothing\n", as_image(dx5))
assert y5.shape == (1, 2, 2, 1), "pooling 5x5 by 2 should give 2x2 (H // 2)"
assert not as_image(dx5)[4, :].any() and not as_image(dx5)[:, 4].any(), (
    "the row and column in no window should get no gradient"
)

# %% [markdown]
# In a UNet this breaks the skip connections. Going down, 5 pools to 2; coming back up, 2
# up-samples to 4, and the skip saved at 5x5 no longer fits the 4x4 up-sampled map. The
# concatenation refuses, with a hint:

# %%
skip = rng.standard_normal((1, 5, 5, 2))
up_path = UpSampling2D(2).forward(MaxPooling2D(2).forward(skip))
print("skip", skip.shape, "-> pool -> up-sample ->", up_path.shape)
refused = False
try:
    Concatenate(name="merge").forward([skip, up_path])
except ValueError as err:
    print("ValueError:", err)
    refused = "divisible by 2**depth" in str(err)
assert refused, "the concatenation should refuse 5x5 with 4x4, and say why"

# %% [markdown]
# With four poolings, every one of them must see an even size, so the height and width
# must be divisible by `2**4 = 16`.
#
# **Predict before you run.** The seed's UNet gets a 250x250 image. 250 is even, so the
# first pooling is fine. Going down, which pooling is the first to drop a row? Coming back
# up, the merges run deepest first (level 4, then 3, 2, 1): at which merge does the
# concatenation fail, and with which two sizes?

# %%
depth, size = 4, 250
sizes = [size]
for _ in range(depth):
    sizes.append(sizes[-1] // 2)
print(" -> ".join(str(s) for s in sizes), "(going down, four poolings)")
for level in reversed(range(depth)):  # the expanding path merges the deepest skip first
    skip_size, back_up = sizes[level], 2 * sizes[level + 1]
    fits = skip_size == back_up
    print(
        f"merge at level {level + 1}: skip {skip_size}x{skip_size}, up-sampled from below "
        f"{back_up}x{back_up}: {'fits' if fits else 'MISMATCH, the concatenation fails'}"
    )
    if not fits:
        break
odd = [s for s in sizes[:-1] if s % 2]  # the sizes a pooling loses a row of
print("odd sizes that a pooling halves:", odd)
assert odd == [125, 31], "going down from 250, the poolings of 125 and of 31 drop a row"
assert (level + 1, skip_size, back_up) == (4, 31, 30), (
    "250 should fail at the first merge on the way up (level 4): skip 31, up-sampled 30"
)

# %% [markdown]
# The answer: 125 is the first odd size, so the second pooling drops a row (125 -> 62);
# 31 is odd too, so the fourth pooling drops another (31 -> 15). The merges run deepest
# first, so the concatenation fails at the first merge on the way up, level 4: the skip is
# 31x31, while 15 up-sampled gives 30x30. The row lost at 125 would break the level-2 merge
# as well, but the network never gets that far.

# %% [markdown]
# `UNet` checks this before it creates any weights, and names the nearest sizes that work:

# %%
messages = []
try:
    UNet(input_shape=(250, 250, 1))
except ValueError as err:
    print("ValueError:", err)
    messages.append(str(err))

model = UNet(input_shape=(256, 256, 1), filters=2, seed=0)  # tiny filters: quick to build
try:
    model.forward(np.zeros((1, 250, 250, 1), np.float32))
except ValueError as err:
    print("\nand at forward time, for a model built for 256x256:\nValueError:", err)
    messages.append(str(err))
assert len(messages) == 2 and all("240 or 256" in m for m in messages), (
    "UNet should refuse 250 when built and at forward time, naming 240 and 256"
)

# %% [markdown]
# The usual fixes are to resize or crop the images to a multiple of 16 (the seed resizes to
# 256x256), or to pad them, for example with reflection, and crop the prediction back.
#
# The figure shows both halves of the story: the 5x5 pooling that ignores its last row and
# column, and the map sizes down and up the U for 256 and for 250.

# %%
fig = Figure(figsize=(15, 4.6), layout="constrained")
ax, ax2 = fig.subplots(1, 2, width_ratios=[1, 2.2])
fill5 = np.full((5, 5), "#dddddd", dtype=object)
fill5[:4, :4] = window_fill
draw_grid(ax, as_image(x5), fill=fill5, bold=as_image(dx5) > 0)
ax.text(
    2.5,
    5.4,
    "grey: in no window, never reaches the output (gradient 0)",
    ha="center",
    va="top",
    fontsize=10,
)
grid_axes(ax, 5, 5.8, "MaxPooling2D(2) on 5x5 -> 2x2\n(bold: the four maxima)")

labels = ["input", "pool1", "pool2", "pool3", "pool4", "up6", "up7", "up8", "up9"]
for row, n in enumerate((256, 250)):
    down = [n]
    for _ in range(depth):
        down.append(down[-1] // 2)
    cells, current, broken = [(str(v), "#eef4fb") for v in down], down[-1], False
    for level in reversed(range(depth)):  # the merges, deepest first
        current *= 2  # up-sampled from below
        if broken:
            cells.append(("not\nreached", "#dddddd"))
        elif current == down[level]:
            cells.append((f"{current}\nskip {down[level]}\nfits", "#d2eed2"))
        else:
            cells.append((f"{current}\nskip {down[level]}\nMISMATCH", "#f2b8ef"))  # magenta
            broken = True
    y0 = 1.3 * row
    ax2.text(-0.15, y0 + 0.5, f"{n}x{n}", ha="right", va="center", fontsize=12)
    for k, (text, color) in enumerate(cells):
        ax2.add_patch(Rectangle((k, y0), 1, 1, facecolor=color, edgecolor="0.5"))
        ax2.text(k + 0.5, y0 + 0.5, text, ha="center", va="center", fontsize=10)
for k, label in enumerate(labels):
    ax2.text(k + 0.5, -0.15, label, ha="center", va="bottom", fontsize=10)
ax2.annotate("", xy=(4.9, -0.75), xytext=(0.1, -0.75), arrowprops=dict(arrowstyle="->"))
ax2.text(
    2.5,
    -0.85,
    "contracting path: each pooling halves (rounding down)",
    ha="center",
    va="bottom",
    fontsize=9,
)
ax2.annotate("", xy=(8.9, -0.75), xytext=(5.1, -0.75), arrowprops=dict(arrowstyle="->"))
ax2.text(7, -0.85, "expanding path: doubled size vs the skip", ha="center", va="bottom", fontsize=9)
ax2.set_xlim(-1.3, 9.1)
ax2.set_ylim(2.5, -1.2)
ax2.axis("off")
ax2.set_title("feature-map height through the seed's UNet (depth 4): 250 fails at the first merge")
fig.suptitle("odd sizes: 'valid' pooling drops the last row and column")
save(fig, "02_odd_sizes.png")

# %% [markdown]
# ## Summary
#
# - `MaxPooling2D` keeps the maximum of each window; backwards, each window's gradient goes
#   to its winner and the other elements get 0.
# - At a tie the first maximum in row-major order wins. The derivative does not exist
#   there (the one-sided slopes are 1 and 0), so the tests compare with the tie broken
#   towards the chosen element.
# - `UpSampling2D` copies each pixel into a 2x2 block; backwards it sums each block. Taking
#   one element instead is a silent bug that `gradcheck` catches.
# - `'valid'` pooling ignores an odd last row and column, so a depth-`d` UNet needs sizes
#   divisible by `2**d`; `UNet` says so, and names the nearest valid sizes.
#
# Next, tutorial 03 joins the two paths of the U with `Concatenate`, and follows the
# gradient through the skip connections.
