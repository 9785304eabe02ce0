# %% [markdown]
# # 06 · Losses and activations: the last layer and what it is scored by
#
# A UNet ends in an activation (a sigmoid for one class, a softmax over channels for
# several) and is trained by a loss on the resulting probabilities. This tutorial opens
# both up, with the package's own code.
#
# **You will learn**
#
# - how the sigmoid is computed without overflow, and why it uses `exp(-|x|)`;
# - binary cross-entropy as Keras computes it on probabilities (clipped to
#   `[1e-7, 1 - 1e-7]`), which Keras versions clip and which do not, and why its gradient
#   through the sigmoid collapses to `(p - y) / M`;
# - the softmax over channels and the paper's weighted cross-entropy, with a weight map
#   that makes the thin border between two touching cells count about ten times more;
# - the Dice loss: its value, its unusual gradient, and when to prefer it;
# - how to gradient-check each loss, and that none of them warns at saturated inputs.
#
# **Time:** about 20 minutes to read; its run time, measured, is in `tutorials/README.md`
# (`NUMPY_UNET_QUICK=1` runs a small version in seconds).
#
# If you know PyTorch: `BinaryCrossentropy` here is `nn.BCELoss` (on probabilities), and
# the sigmoid + BCE pair is what `nn.BCEWithLogitsLoss` fuses. In Keras it is
# `keras.losses.BinaryCrossentropy()` with `from_logits=False`, the seed's loss.

# %%
# ruff: noqa: E402
import warnings

import numpy as np
from matplotlib.figure import Figure

from numpy_unet import gradcheck, gradcheck_loss
from numpy_unet.data import synthetic_membranes
from numpy_unet.gradcheck import ModelWithLoss
from numpy_unet.layers import Sigmoid, Softmax
from numpy_unet.layers.activations import sigmoid
from numpy_unet.losses import BinaryCrossentropy, CategoricalCrossentropy, DiceLoss
from numpy_unet.teach.tutorial import pick, quick, save

np.set_printoptions(precision=4, suppress=False, linewidth=100)
print("quick mode" if quick() else "full mode")

# %% [markdown]
# ## 1. The sigmoid, computed without overflow
#
# The textbook formula is `1 / (1 + exp(-x))`. For a very negative `x`, `exp(-x)` is
# larger than any float and overflows to `inf`. The answer, `1 / inf = 0`, happens to be
# right, but NumPy warns, and the other textbook form, `exp(x) / (1 + exp(x))`, gives
# `inf / inf = nan` for a large positive `x`.
#
# A network's logits are not usually ±1000, but a diverging run can produce them, and a
# `nan` anywhere spreads to every weight after one update. So let us watch both formulas.

# %%
x = np.array([-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0])

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    naive_a = 1 / (1 + np.exp(-x))
    naive_b = np.exp(x) / (1 + np.exp(x))
print("x                      ", x)
print("1 / (1 + exp(-x))      ", naive_a)
print("exp(x) / (1 + exp(x))  ", naive_b)
messages = sorted({str(w.message) for w in caught})
print("warnings raised:", messages)
assert naive_a[0] == 0 and np.isnan(naive_b[-1]), "1/inf = 0 happens to be right; inf/inf = nan"
assert "overflow encountered in exp" in messages, "exp(1000) overflows, and NumPy warns"

# %% [markdown]
# The package's `sigmoid` (in `numpy_unet/layers/activations.py`) only ever calls `exp`
# on `-|x|`, which lies in `(-inf, 0]`, so `e = exp(-|x|)` lies in `(0, 1]` and cannot
# overflow. It then picks the form that is safe on each side:
#
# - `x >= 0`: `1 / (1 + e)`, the textbook form, since here `e = exp(-x)`;
# - `x < 0`: `e / (1 + e)`, the same fraction multiplied by `exp(x) / exp(x)`.
#
# Both branches divide by `1 + e`, a number between 1 and 2. Nothing can blow up.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("error")  # any warning would now stop the script
    stable = sigmoid(x)
print("stable sigmoid(x)      ", stable)
print("exp(-|x|)              ", np.exp(-np.abs(x)))
assert np.all((0 <= stable) & (stable <= 1)), "the stable sigmoid stays in [0, 1]"
assert np.allclose(stable, naive_a, rtol=1e-15, atol=0), "and agrees with the textbook form"

# %% [markdown]
# One more fact matters for the loss below. Float32 is the default dtype of the layers,
# and it has about seven significant digits.
#
# **Predict before you run.** For which of `x = 10, 16, 17, 40` does the float32 sigmoid
# return exactly `1.0`, not merely something close to it?

# %%
for v in (10.0, 16.0, 17.0, 40.0):
    p32 = sigmoid(np.float32(v))
    print(f"sigmoid(float32({v:4.0f})) = {p32:.9f}   equals 1.0? {bool(p32 == 1.0)}")
grid = np.arange(16.0, 17.0, 0.01, dtype=np.float32)
first_one = grid[sigmoid(grid) == 1.0].min()
spacing = np.spacing(np.float32(1.0))
print(f"from x = {first_one:.2f} on, exp(-x) = {np.exp(-first_one):.2e} < {spacing / 2:.2e}")
assert [bool(sigmoid(np.float32(v)) == 1) for v in (10, 16, 17, 40)] == [0, 0, 1, 1], "17, 40"
assert 16.5 < first_one < 16.7, "float32 sigmoid is exactly 1.0 from x = 16.6 on"

# %% [markdown]
# The answer: 17 and 40. In float32 the sigmoid **rounds to exactly 1.0** from `x ≈ 16.6` on
# (printed above): there `exp(-x)` is below half the float32 spacing just above 1 (`1.2e-7 / 2`),
# so `1 + exp(-x)` rounds to 1. Then `log(1 - p)` is `log(0) = -inf`. Clipping, next,
# fixes that.

# %% [markdown]
# ## 2. Binary cross-entropy, Keras's way
#
# For probabilities `p` and masks `y` in `{0, 1}` over `M` pixels:
#
# `L = -(1/M) Σ [ y log p + (1 - y) log(1 - p) ]`
#
# Keras first clips `p` to `[ε, 1 - ε]` with `ε = 1e-7` (`keras.backend.epsilon()`), so
# the worst a single pixel can cost is `-log(1e-7) ≈ 16.12`, never `inf`. That figure is
# float64, as this tutorial computes. Keras trains in float32, where `1 - 1e-7` rounds to
# `1 - 1.19e-7`: there a pixel with `y = 0` and `p = 1` costs 15.94, and one with `y = 1`
# and `p = 0` still 16.12 (the cell below prints both). (PyTorch's `BCELoss` clamps the
# log at -100 instead.) The derivative of the clip is zero outside the range, so
# `BinaryCrossentropy.backward` returns zero there too:
#
# `dL/dp = (p - y) / (p (1 - p)) / M` inside the clip range, `0` outside.
#
# **Which Keras clips.** The seed's loss is computed this way by Keras 3 on the torch or
# JAX backend, and by the Keras 2 of the seed's time (2.0 to 2.2, on TensorFlow): both take
# the sigmoid's output as probabilities. Keras on TensorFlow (tf.keras 2.4 and later, and
# Keras 3 on TensorFlow) does not clip a sigmoid layer's output: in the graph that `fit`
# compiles, it takes the logits from before the sigmoid and computes the fused loss of the
# next subsection, which has no cap and whose gradient does not vanish at saturation. (On
# a probability tensor that does not come from a sigmoid, tf.keras clips and also adds `ε`
# inside each log, a cap of about 15.4.)
#
# Writing this backward, clip included, is exercise `bce_backward` of the course kit
# (`numpy-unet exercises`).
#
# The figure plots the loss of one pixel (`M = 1`) and the size of its gradient against
# `p`, on a *logit* axis that stretches both ends, so that the clips at `1e-7` and
# `1 - 1e-7` are visible.

# %%
bce = BinaryCrossentropy()
eps = bce.epsilon
p_grid = 1 / (1 + np.exp(-np.linspace(-21, 21, pick(841, 211))))  # 1e-9 ... 1 - 1e-9


def per_pixel(y_value: float) -> tuple[np.ndarray, np.ndarray]:
    """Loss and dL/dp of one pixel (M = 1) for every p on the grid."""
    values, grads = [], []
    for p in p_grid:
        values.append(bce.forward(np.array([p]), np.array([y_value])))
        grads.append(bce.backward()[0])
    return np.array(values), np.array(grads)


curves = {}
fig = Figure(figsize=(12, 4.2))
ax_loss, ax_grad = fig.subplots(1, 2)
for y_value, colour in ((1.0, "tab:blue"), (0.0, "tab:orange")):
    values, grads = curves[y_value] = per_pixel(y_value)
    ax_loss.plot(p_grid, values, color=colour, label=f"y = {y_value:g}")
    inside = grads != 0
    ax_grad.plot(
        p_grid[inside], np.abs(grads[inside]), color=colour, label=f"|dL/dp|, y = {y_value:g}"
    )
    ax_grad.plot(
        p_grid,
        np.abs(p_grid - y_value),
        color=colour,
        ls="--",
        label=f"|dL/dz| = |p - y|, y = {y_value:g}",
    )
for ax in (ax_loss, ax_grad):
    ax.set_xscale("logit")
    for edge in (eps, 1 - eps):
        ax.axvline(edge, color="gray", lw=1)
    ax.axvspan(p_grid[0], eps, color="gray", alpha=0.15)
    ax.axvspan(1 - eps, p_grid[-1], color="gray", alpha=0.15)
    ax.set_xlabel("predicted probability p (logit scale)")
    ticks = [1e-8, 1e-4, 0.5, 1 - 1e-4, 1 - 1e-8]  # the default ticks crowd on the right
    ax.set_xticks(ticks, ["1e-8", "1e-4", "1/2", "1 - 1e-4", "1 - 1e-8"])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
for ax, y_text, what in ((ax_loss, 8, "loss"), (ax_grad, 1e-4, "dL/dp = 0")):
    for x_text, side in ((1e-8, "p < 1e-7"), (1 - 1e-8, "p > 1 - 1e-7")):
        label = f"clipped: {side}" if what == "loss" else f"{what}: {side}"
        ax.text(
            x_text,
            y_text,
            label,
            fontsize=8,
            color="dimgray",
            rotation=90,
            ha="center",
            va="center",
        )
ax_loss.set(
    ylabel="loss of one pixel", title="binary cross-entropy: flat beyond the clip (16.12, float64)"
)
ax_grad.set_yscale("log")
ax_grad.set(
    ylabel="gradient magnitude (log scale)",
    title="gradient: w.r.t. p (solid), w.r.t. the logit z (dashed)",
)
ax_loss.legend(fontsize=8, loc="upper center")
ax_grad.legend(fontsize=7, loc="lower center")
save(fig, "06_bce_and_gradient.png")
print(f"loss of a pixel clipped at p = 1e-7 with y = 1: {-np.log(eps):.2f}")
y_wrong = np.array([1.0, 0.0])  # a certain mistake at each end: p = 0 with y = 1, p = 1 with y = 0
caps32 = [bce.forward(np.float32([1 - y]), np.array([y])) for y in y_wrong]
print(f"in float32 (Keras's dtype): y = 1, p = 0: {caps32[0]:.2f}; y = 0, p = 1: {caps32[1]:.2f}")
print("Look at: the solid curves grow like 1/p (or 1/(1-p)) towards a wrong answer,")
print("then drop to 0 in the gray bands; the dashed curves, |p - y|, never exceed 1.")
clipped = (p_grid < eps) | (p_grid > 1 - eps)
inside = ~clipped & (p_grid < 0.5)  # left of 1/2, inside the clip
times_p = np.abs(curves[1.0][1][inside]) * p_grid[inside]  # y = 1: |dL/dp| * p
print(f"largest loss {max(v.max() for v, _ in curves.values()):.4f}; for y = 1, ", end="")
print(f"|dL/dp| * p left of 1/2 lies in [{times_p.min():.6f}, {times_p.max():.6f}]")
for values, grads in curves.values():
    assert abs(values.max() + np.log(eps)) < 1e-6, "the loss is capped at -log(1e-7) = 16.12"
    assert np.all(grads[clipped] == 0), "dL/dp is 0 in the gray bands, where the clip is flat"
assert np.allclose(times_p, 1, rtol=1e-6), "for y = 1, |dL/dp| = 1/p: it grows like 1/p"
assert [round(c, 2) for c in caps32] == [16.12, 15.94], "float32: 16.12 for y = 1, 15.94 for y = 0"

# %% [markdown]
# ### Through the sigmoid, the gradient simplifies to `(p - y) / M`
#
# The network never outputs `p` directly: `p = sigmoid(z)` for a logit `z`. The sigmoid's
# derivative is `dp/dz = p (1 - p)`, computed from the cached output `p` alone (writing
# `Sigmoid.backward` that way is exercise `sigmoid_backward` of the course kit), and it
# cancels the denominator of the loss's:
#
# `dL/dz = dL/dp · dp/dz = (p - y) / (p (1 - p)) / M · p (1 - p) = (p - y) / M`
#
# The dashed curves above are this gradient: bounded by `1/M`, largest where the network is
# most wrong. (They are drawn as a fused, from-logits loss computes them; through Keras's
# clip they too drop to 0 in the gray bands, as we will see.) The solid curves, `dL/dp`
# alone, blow up near 0 and 1, which is why frameworks prefer to fuse the two
# (`from_logits=True` in Keras, `BCEWithLogitsLoss` in PyTorch). Below, the chain
# `Sigmoid.backward(BinaryCrossentropy.backward())` gives `(p - y) / M` up to rounding, and
# the gradient checker confirms it against finite differences.

# %%
rng = np.random.default_rng(0)
z = rng.normal(0, 3, (2, 4, 4, 1))  # float64 logits, as the gradient checker needs
y = (rng.random(z.shape) < 0.8).astype(np.float64)
act = Sigmoid()
p = act.forward(z)
value = bce.forward(p, y)
dz = act.backward(bce.backward())
gap_to_formula = np.abs(dz - (p - y) / y.size).max()
print(f"M = {y.size} pixels, loss = {value:.4f}")
print(f"max |Sigmoid.backward(BCE.backward()) - (p - y) / M| = {gap_to_formula:.1e}")
assert gap_to_formula < 1e-15, "through the sigmoid, dL/dz = (p - y) / M up to rounding"
report = gradcheck(ModelWithLoss(Sigmoid(), BinaryCrossentropy(), y), z, raise_exception=False)
print(report)
assert report.passed, "sigmoid + BCE: the backward agrees with finite differences"

# %% [markdown]
# ### A saturated, confidently wrong pixel
#
# The clip has a price. A pixel with logit `z = 40` and truth `y = 0` has
# `p = sigmoid(40) = 1.0` exactly: it is as wrong as a pixel can be.
#
# **Predict before you run.** The cell below puts that pixel, its mirror image
# (`z = -40`, `y = 1`) and a merely wrong pixel (`z = 3`, `y = 0`) through the sigmoid and
# Keras's binary cross-entropy. Which of the three gets the largest gradient `dL/dz`?

# %%
z_sat = np.array([40.0, -40.0, 3.0])  # two saturated, wrong pixels and a merely wrong one
y_sat = np.array([0.0, 1.0, 0.0])
act = Sigmoid()
p_sat = act.forward(z_sat)
loss_sat = bce.forward(p_sat, y_sat)
dz_sat = act.backward(bce.backward())
fused = (p_sat - y_sat) / y_sat.size
p_clip = np.clip(p_sat, eps, 1 - eps)  # Keras's clip, then the formula of section 2
per_pixel_loss = -(y_sat * np.log(p_clip) + (1 - y_sat) * np.log(1 - p_clip))
terms = " + ".join(f"{v:.2f}" for v in per_pixel_loss)
p_sat32 = Sigmoid().forward(z_sat.astype(np.float32))  # Keras's dtype
terms32 = [bce.forward(p_sat32[i : i + 1], y_sat[i : i + 1]) for i in range(3)]
loss_sat32 = bce.forward(p_sat32, y_sat)
print("p                       ", p_sat)
print(f"loss                     {loss_sat:.4f}  (= ({terms}) / 3)")
print(f"  in float32:            {loss_sat32:.4f}  (= (", end="")
print(" + ".join(f"{v:.2f}" for v in terms32) + ") / 3)")
print("dL/dz through the clip  ", dz_sat)
print("(p - y) / M, fused      ", fused)
assert abs(loss_sat - per_pixel_loss.mean()) < 1e-12, "each saturated pixel costs 16.12"
assert [round(v, 2) for v in terms32[:2]] == [15.94, 16.12], "float32: 15.94 and 16.12"
assert np.all(dz_sat[:2] == 0), "a saturated pixel gets no gradient through the clip"
assert abs(dz_sat[2] - fused[2]) < 1e-15, "inside the clip: (p - y) / M, as fused"

# %% [markdown]
# The answer: only the merely wrong pixel gets a gradient. The two saturated ones cost the capped
# 16.12 each in float64 (15.94 and 16.12 in float32, printed above), and their gradient is
# **zero**, because the clip is flat there; the fused formula would have given them
# `(p - y) / M = ±1/M`. With He initialisation and a sensible learning rate, logits stay
# far from ±17, so this rarely bites; but it is one reason a diverged network can stay
# stuck. That holds for Keras 3 on torch or JAX and for the seed's Keras 2. Keras on
# TensorFlow (tf.keras 2.4 and later, Keras 3 on TensorFlow) computes the fused loss from the
# logits instead: there the two saturated pixels cost 40 each (`log(1 + e^40)`) and keep
# their gradient `±1/M`.

# %% [markdown]
# ## 3. Softmax over channels and the paper's weighted cross-entropy
#
# The paper's UNet (`UNet.paper()`) ends in two channels, `(N, H, W, 2)`: membrane and cell.
# A softmax over the last axis turns each pixel's two logits into probabilities that sum
# to one. The package subtracts each pixel's largest logit before `exp` (softmax does not
# change when a constant is added to all logits), so `exp` sees numbers `<= 0`: no overflow.
#
# The loss is the categorical cross-entropy, weighted per pixel by a map `w` and averaged
# over the `P = N·H·W` pixels:
#
# `L = -(1/P) Σ_pixels w · Σ_k y_k log p_k`
#
# The paper computes `w` before training so that the thin background gaps between
# touching cells weigh most:
#
# `w(x) = w_c(x) + w_0 · exp(-(d_1(x) + d_2(x))² / (2σ²))`, with `w_0 = 10`, `σ = 5` px,
#
# where `d_1` and `d_2` are the distances to the nearest and second-nearest cell, and `w_c`
# balances the class frequencies (here simply 1; the border term is added on background
# pixels only). Let us build it for two cells separated
# by a gap two pixels wide.

# %%
H, W = 28, 40
rows, cols = np.mgrid[0:H, 0:W]
centres = [(14, 11), (14, 29)]
dist_to_centre = np.stack([np.hypot(rows - r, cols - c) for r, c in centres])  # (2, H, W)
nearest = dist_to_centre.argmin(axis=0)
gap = np.abs(cols - 19.5) < 1.0  # columns 19 and 20: a gap two pixels wide
cell_id = np.where((dist_to_centre.min(axis=0) < 11) & ~gap, nearest + 1, 0)  # 0 = background
labels = (cell_id > 0).astype(np.int64)  # class per pixel: 0 background, 1 cell

# distance of every pixel to each cell (brute force: fine for a small image)
cell_pixels = [np.argwhere(cell_id == k) for k in (1, 2)]
pix = np.stack([rows.ravel(), cols.ravel()], axis=1)
d = np.stack(
    [np.sqrt(((pix[:, None, :] - cp[None]) ** 2).sum(-1)).min(axis=1) for cp in cell_pixels]
)  # (2, H*W)
d1, d2 = np.sort(d, axis=0).reshape(2, H, W)
w0, sigma = 10.0, 5.0
weight = 1.0 + w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2)) * (labels == 0)
print(f"weight map: {weight.min():.2f} (far background, cells) ... {weight.max():.2f} (the gap)")
between = (labels == 0) & (d2 <= 3)  # background within 3 px of both cells: the gap
print(f"mean weight in the gap between the cells: {weight[between].mean():.2f}")
assert np.all(weight[labels == 1] == 1), "w_c = 1 on the cells: no border term there"
assert 8 < weight[between].mean() <= 1 + w0, "the gap counts about ten times more"

# %% [markdown]
# Now a prediction from a hypothetical network that has found both cells but blurred their
# edges: right next to every cell, including in the gap, it says "cell" with probability
# 0.7, fading to 0.03 further out. We compute the loss with and without the weight map,
# and the gradient with respect to the logits, which works out as for the sigmoid:
# softmax's Jacobian cancels the `1/p_k` of the loss, leaving
#
# `dL/dz_k = w · (p_k - y_k) / P`.
#
# The two backward passes behind it are exercises of the course kit: `cce_backward`
# (`-w · y_k / p_k / P`, with the weight map, passed back through the step where Keras
# divides each pixel's `p` by its sum; the docstring of `CategoricalCrossentropy` derives
# it) and `softmax_backward`
# (`dz = p · (dp - Σ_k p_k dp_k)` per pixel, the Jacobian-vector product without building
# the Jacobian).
#
# **Predict before you run.** The prediction is equally wrong, `p = 0.7` for "cell", on a
# background pixel in the gap and on a background pixel just outside a cell's outer edge.
# Which of the two gets the larger gradient, and by roughly how much?

# %%
to_cell = d.min(axis=0).reshape(H, W)  # distance to the nearest cell pixel (0 inside)
p_cell = np.where(labels == 1, 0.95, np.maximum(0.7 * np.exp(-(to_cell - 1) / 1.5), 0.03))
logit_cell = np.log(p_cell / (1 - p_cell))
logits = np.stack([np.zeros_like(p_cell), logit_cell], axis=-1)[None]  # (1, H, W, 2)

softmax = Softmax()
cce = CategoricalCrossentropy()
probs = softmax.forward(logits)
plain = cce.forward(probs, labels[None])
weighted = cce.forward(probs, labels[None], weight_map=weight[None])
dlogits = softmax.backward(cce.backward())
one_hot = np.eye(2)[labels][None]
expected = weight[None, ..., None] * (probs - one_hot) / labels.size
gap_to_formula = np.abs(dlogits - expected).max()
print(f"probabilities sum to 1 per pixel: {np.allclose(probs.sum(axis=-1), 1, atol=1e-15)}")
print(f"cross-entropy, unweighted: {plain:.4f}   weighted by the map: {weighted:.4f}")
print(f"max |Softmax.backward(CCE.backward()) - w (p - y) / P| = {gap_to_formula:.1e}")
assert np.allclose(probs.sum(axis=-1), 1, atol=1e-15), "softmax: each pixel's p sums to 1"
assert gap_to_formula < 1e-15, "through the softmax, dL/dz = w (p - y) / P up to rounding"
assert weighted > plain, "the weights make the blurred gap cost more"
report = gradcheck(
    ModelWithLoss(Softmax(), CategoricalCrossentropy(), labels[None], weight_map=weight[None]),
    logits,
    raise_exception=False,
)
print(report)
assert report.passed, "softmax + weighted CCE: the backward agrees with finite differences"

fig = Figure(figsize=(15, 3.3), layout="constrained")
axes = fig.subplots(1, 4)
panels = [
    (labels, "true classes", "gray", "class (0 background, 1 cell)"),
    (weight, "weight map w", "viridis", "weight w (no unit)"),
    (probs[0, ..., 1], "predicted P(cell), edges blurred", "magma", "probability"),
    (
        np.abs(dlogits[0, ..., 1]) * labels.size,
        "gradient |dL/dz_cell| x P = w |p - y|",
        "viridis",
        "w |p - y| (no unit)",
    ),
]
for ax, (img, title, cmap, unit) in zip(axes, panels):
    im = ax.imshow(img, cmap=cmap)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    bar = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
    bar.set_label(unit, fontsize=8)
    if img is labels:
        bar.set_ticks([0, 1])
fig.suptitle(f"the paper's weighted cross-entropy on two touching cells ({H}x{W} pixels)")
save(fig, "06_weight_map.png")

# %% [markdown]
# The answer, from the gradient map: compare the gap with the background pixels that touch
# a cell's outer edge, where the prediction is just as wrong.

# %%
adjacent = (labels == 0) & (to_cell == 1)  # background pixels touching a cell
in_gap, on_edge = adjacent & between, adjacent & (d2 > 3)
pull = np.abs(dlogits[0, ..., 1]) * labels.size
print(f"p(cell) there: gap {np.unique(probs[0, ..., 1][in_gap].round(6))}, ", end="")
print(f"outer edge {np.unique(probs[0, ..., 1][on_edge].round(6))}")
gap_pull, edge_pull = pull[in_gap].mean(), pull[on_edge].mean()
print(f"gradient x P: in the gap {gap_pull:.2f}, on the outer edge {edge_pull:.2f}")
print("Look at: both get the same wrong p = 0.7; the gap, with its large weight, pulls hardest.")
assert np.allclose(probs[0, ..., 1][adjacent], 0.7), "the same wrong p = 0.7 next to every cell"
assert gap_pull > 3 * edge_pull, "the gap pulls several times harder"

# %% [markdown]
# ## 4. The Dice loss
#
# Dice measures the overlap of two sets: `2 |P ∩ T| / (|P| + |T|)`. The soft version uses
# probabilities instead of sets. With `I = Σ p·y`, `U = Σ p + Σ y` and a smoothing term
# `s = 1` (which keeps `0/0` away when both are empty):
#
# `L = 1 - (2I + s) / (U + s)`,  `dL/dp = -(2y (U + s) - (2I + s)) / (U + s)²`
#
# Two things differ from cross-entropy. The loss is a ratio over the whole batch, not a
# mean over pixels, so a rare class weighs as much as a common one. And each pixel's
# gradient depends on the sums over all pixels; for a binary mask it takes only two values,
# one for the pixels with `y = 1` and one for those with `y = 0`. Written with the Dice
# score `D = (2I + s) / (U + s)`, the formula gives
#
# `dL/dp = -(2 - D) / (U + s)` where `y = 1`,  `dL/dp = D / (U + s)` where `y = 0`.
#
# Differentiating the ratio is exercise `dice_backward` of the course kit. The cell below
# compares `DiceLoss.backward` with the formula above, written out, and with these two
# values.

# %%
size = pick(128, 64)
_, masks = synthetic_membranes(1, size=size, seed=3)
y_cells = masks.astype(np.float64)
print(f"cell pixels: {y_cells.mean():.1%} of the image (ISBI's labels: about 78%)")

p_guess = np.clip(y_cells + np.random.default_rng(1).normal(0, 0.2, y_cells.shape), 0, 1)
dice_loss = DiceLoss()
value = dice_loss.forward(p_guess, y_cells)
grad = dice_loss.backward()
intersection, union, smooth = np.sum(p_guess * y_cells), np.sum(p_guess) + np.sum(y_cells), 1.0
by_formula = -(2 * y_cells * (union + smooth) - (2 * intersection + smooth)) / (union + smooth) ** 2
on_y1, on_y0 = np.unique(grad[y_cells == 1]), np.unique(grad[y_cells == 0])
print(f"Dice loss of a noisy guess: {value:.4f}")
print(f"dL/dp where y = 1: {on_y1}   (pushes p up)")
print(f"dL/dp where y = 0: {on_y0}   (pushes p down)")
print(f"max |DiceLoss.backward() - the formula| = {np.abs(grad - by_formula).max():.1e}")
dice = (2 * intersection + smooth) / (union + smooth)  # the Dice score, 1 - L
scale = 1 / (union + smooth)
print(f"Dice score D = {dice:.4f}, 1 / (U + s) = {scale:.3e}:")
print(f"  -(2 - D) / (U + s) = {-(2 - dice) * scale:.6e},  D / (U + s) = {dice * scale:.6e}")
assert np.allclose(grad, by_formula, rtol=1e-12, atol=0), "dL/dp as in the formula above"
assert len(on_y1) == len(on_y0) == 1, "a binary mask: only two gradient values"
assert on_y1[0] < 0 < on_y0[0], "negative where y = 1 (p goes up), positive where y = 0"
assert np.isclose(on_y1[0], -(2 - dice) * scale) and np.isclose(on_y0[0], dice * scale), (
    "dL/dp = -(2 - D) / (U + s) where y = 1 and D / (U + s) where y = 0"
)

# %% [markdown]
# ### When to use it: class imbalance
#
# On membranes the "cell" class is the common one (about 78-80% of the pixels on ISBI's
# labels, the share printed above on the generated ones). Dice can be computed on either
# class: on the cells, `p` against `y`, or on the membranes, `1 - p` against `1 - y`.
#
# **Predict before you run.** A lazy network paints every pixel "cell" with full
# confidence. Which of three scores calls it bad: BCE, the Dice loss on the cells, or the
# Dice loss on the membranes (each 0 at best; the Dice losses are at most 1)?

# %%
all_cells = np.full_like(y_cells, 1 - 1e-7)
bce_lazy = bce.forward(all_cells, y_cells)
on_cells = dice_loss.forward(all_cells, y_cells)
on_membranes = dice_loss.forward(1 - all_cells, 1 - y_cells)
cell_share = y_cells.mean()
print("all-cells prediction (p = 1 - 1e-7 everywhere):")
print(f"  pixel accuracy          {cell_share:.3f}")
print(f"  BCE                     {bce_lazy:.3f}   (= {1 - cell_share:.3f} x {-np.log(eps):.2f})")
bce_lazy32 = bce.forward(all_cells.astype(np.float32), y_cells)  # 1 - 1e-7 rounds in float32
per_membrane32 = bce_lazy32 / (1 - cell_share)
print(
    f"    in float32            {bce_lazy32:.3f}   (= {1 - cell_share:.3f} x {per_membrane32:.2f})"
)
print(f"  Dice loss on cells      {on_cells:.3f}   (Dice score {1 - on_cells:.3f})")
print(f"  Dice loss on membranes  {on_membranes:.3f}")
best_constant = np.full_like(y_cells, cell_share)
bce_constant = bce.forward(best_constant, y_cells)
print(f"best constant p = {cell_share:.2f}: BCE {bce_constant:.3f}")
assert on_cells < 0.15 and on_membranes > 0.99, "Dice on cells likes it, on membranes: worst"
assert abs(bce_lazy - (1 - cell_share) * -np.log(eps)) < 1e-3, "16.12 per membrane pixel"
assert round(per_membrane32, 2) == 15.94, "in float32: 15.94 per membrane pixel"
assert bce_constant < bce_lazy / 3, "the best constant guess costs far less"

# %% [markdown]
# The answer: not the Dice loss on the cells. It hardly objects: the lazy prediction is right on
# most pixels and its Dice score on the cell class is high (printed above). The Dice loss
# on the membranes is the worst possible, 1: Dice punishes imbalance only when you compute
# it on the **rare** class.
#
# BCE is high here only because the prediction is *confident*: each membrane pixel costs
# the full 16.12 (15.94 in float32). The best constant guess costs far less, and a network
# finds that guess within a few steps; training must then leave it (tutorial 07 shows the
# curves).
#
# So for membranes, binary cross-entropy (the seed's choice) works because the imbalance is
# mild, about 4 to 1 on ISBI's labels. Reach for Dice (often as `BCE + Dice`) when the
# class you care about covers a few percent of the image (small lesions, nuclei, thin
# vessels), and compute it on that class. Its gradient can be large and noisy, though, for
# a reason the two gradient values above show: `-(2 - D) / (U + s)` on the foreground and
# `D / (U + s)` elsewhere. The overlap enters only through the Dice score `D`, between 0
# and 1, so it changes the foreground's gradient at most twofold, from `-2 / (U + s)` to
# `-1 / (U + s)`. The size is set by `1 / (U + s)`: where BCE divides by the number of
# pixels `M`, Dice divides by the foreground mass `U`, predicted plus true. On a batch with
# almost no foreground, every pixel's gradient is large and changes a lot from one batch to
# the next, which is why Dice is usually combined with cross-entropy.
#
# ## 5. Gradient checks of the three losses
#
# `gradcheck_loss(loss, y_pred, y_true)` compares `loss.backward()` with central
# differences of `loss.forward`, element by element, in float64. Predictions are kept away
# from the clip (where the true derivative jumps).

# %%
rng = np.random.default_rng(0)
p_check = rng.uniform(0.05, 0.95, (2, 5, 5, 1))
y_check = (rng.random(p_check.shape) < 0.8).astype(np.float64)
p_soft = Softmax().forward(rng.normal(0, 1, (2, 5, 5, 3)))
y_soft = rng.integers(0, 3, (2, 5, 5))
w_soft = rng.uniform(0.5, 10, (2, 5, 5))
for exercise, loss, inputs, options in (
    ("bce_backward", BinaryCrossentropy(), (p_check, y_check), {}),
    ("dice_backward", DiceLoss(), (p_check, y_check), {}),
    ("cce_backward", CategoricalCrossentropy(), (p_soft, y_soft), {"weight_map": w_soft}),
):
    report = gradcheck_loss(loss, *inputs, raise_exception=False, **options)
    print(f"{exercise}:\n{report}")
    assert report.passed, f"{exercise}: the loss's backward agrees with finite differences"

# %% [markdown]
# ## 6. No warnings at saturated inputs
#
# Finally, the extreme cases, with every NumPy overflow, division by zero and invalid
# operation turned into an error and every Python warning into an exception. Logits of
# ±10,000 and probabilities of exactly 0 and 1 all give finite losses and gradients.
# (Underflow, such as `exp(-10000)` becoming 0, is harmless and stays allowed.)

# %%
extreme = np.array([-1e4, -100.0, -17.0, 0.0, 17.0, 100.0, 1e4], dtype=np.float32).reshape(
    1, 1, 7, 1
)
truth = np.array([0, 1, 0, 1, 0, 1, 1], dtype=np.float32).reshape(1, 1, 7, 1)
with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
    warnings.simplefilter("error")
    act = Sigmoid()
    p_ext = act.forward(extreme)
    bce_ext = BinaryCrossentropy()
    results = {"sigmoid + BCE": bce_ext.forward(p_ext, truth)}
    dz_ext = act.backward(bce_ext.backward())
    dice_ext = DiceLoss()
    results["Dice, p in {0, 1}"] = dice_ext.forward(np.round(p_ext), truth)
    d_dice = dice_ext.backward()
    sm = Softmax()
    p2 = sm.forward(np.concatenate([extreme, -extreme], axis=-1))  # (1, 1, 7, 2), logits ±1e4
    cce_ext = CategoricalCrossentropy()
    results["softmax + CCE"] = cce_ext.forward(p2, truth[..., 0].astype(np.int64))
    dz2 = sm.backward(cce_ext.backward())
print("sigmoid(logits)     ", p_ext.ravel())
for name, v in results.items():
    print(f"{name:20s} loss {v:8.4f}  finite: {np.isfinite(v)}")
print("all gradients finite:", all(np.isfinite(g).all() for g in (dz_ext, d_dice, dz2)))
print("dL/dz of sigmoid + BCE:", dz_ext.ravel())
print("Look at: the zeros in dL/dz at the saturated logits: the clip is flat there (section 2).")
assert all(np.isfinite(v) for v in results.values()), "finite losses at saturated inputs"
assert all(np.isfinite(g).all() for g in (dz_ext, d_dice, dz2)), "and finite gradients"
saturated = np.abs(extreme.ravel()) >= 17  # float32 sigmoid is within 1e-7 of 0 or 1 there
assert np.all(dz_ext.ravel()[saturated] == 0) and np.all(dz_ext.ravel()[~saturated] != 0), (
    "dL/dz is 0 exactly at the saturated logits"
)

# %% [markdown]
# ## What to remember
#
# - Compute `exp` only of non-positive numbers: `exp(-|x|)` in the sigmoid, `x - max(x)` in
#   the softmax.
# - Cross-entropy through its activation has the gradient `w (p - y) / M`: bounded, and
#   largest where the network is most wrong. Keras's clip at `1e-7` (Keras 3 on torch or
#   JAX, and the seed's Keras 2) caps a pixel's loss at 16.12 (15.94 for `y = 0` in
#   float32) and zeroes the gradient of saturated pixels; Keras on TensorFlow takes a
#   sigmoid layer's logits instead and does neither.
# - The paper's weight map turns the thin gaps between touching cells into the most
#   expensive pixels of the image.
# - Dice helps with strong imbalance when computed on the rare class; on membranes (4 to 1)
#   plain BCE does the job.
# - Five backward passes of the course kit (`numpy-unet exercises`) live here:
#   `sigmoid_backward`, `bce_backward`, `softmax_backward`, `cce_backward` and
#   `dice_backward`; each agreed with finite differences above.
#
# Next: `07_training_on_membranes.py` trains a UNet with this loss.
