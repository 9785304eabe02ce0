# %% [markdown]
# # 05 · Gradient checking: how to know that a backward pass is right
#
# Every layer in `numpy_unet` has a hand-written `backward`. A wrong one rarely crashes: the
# network still trains, only worse, and nothing says why. The only reliable test is to
# compare each gradient with a numerical estimate from the forward pass alone. This
# tutorial shows how `numpy_unet.gradcheck` does that, what it catches, where finite
# differences themselves go wrong, and how to check a layer of your own.
#
# **You will learn**
#
# - the method: a random upstream gradient, central differences in float64, and the
#   tolerances `eps`, `atol`, `rtol` of `torch.autograd.gradcheck`;
# - how to read a failure: the checker on a deliberately broken layer, then fixed;
# - why float32 is too coarse for this, with the V-shaped error curve of finite
#   differences;
# - the two places where a correct backward legitimately fails the check: the ReLU's kink
#   at 0 and ties in max-pooling;
# - how to check the whole 31-million-parameter UNet along random directions;
# - a template to check your own layer.
#
# **Time:** about 25 minutes to read. Quick mode (`NUMPY_UNET_QUICK=1`) runs in about ten
# seconds. The full run takes one to two minutes, most of it for the directional check of
# the full-size UNet.
#
# If you use PyTorch: `gradcheck(layer, x)` here plays the part of
# `torch.autograd.gradcheck(fn, inputs)`, with the same default tolerances. One
# difference: torch checks the tensors you pass as inputs, while this checker also finds
# the layer's parameters in `layer.params` and checks them all.

# %%
# ruff: noqa: E402
import time

import numpy as np
from matplotlib.figure import Figure

from numpy_unet import GradcheckError, UNet, gradcheck
from numpy_unet.gradcheck import ModelWithLoss, away_from_kinks
from numpy_unet.layers import Conv2D, Layer, MaxPooling2D, ReLU
from numpy_unet.losses import BinaryCrossentropy
from numpy_unet.teach.selfcheck import builtin_checks
from numpy_unet.teach.tutorial import pick, quick, save

np.set_printoptions(precision=4, linewidth=100)
print("quick mode: smaller networks" if quick() else "full mode")

# %% [markdown]
# ## 1. The method
#
# A layer maps a tensor `x` to a tensor `y`. Its `backward(dy)` must return
# `dx = dL/dx`, where `dy = dL/dy` comes from the layers above. To check that without a
# real loss, the checker invents one: it draws a random `dy` once and uses the scalar
#
#     f(x) = sum(forward(x) * dy)
#
# whose exact gradient is what `backward(dy)` should return. It then nudges one element
# `x[k]` up and down by `eps` and measures the slope:
#
#     numerical[k] = (f(x + eps e_k) - f(x - eps e_k)) / (2 eps)
#
# This is a *central* difference. Its error shrinks like `eps**2`, where the one-sided
# `(f(x + eps e_k) - f(x)) / eps` shrinks only like `eps`. The same is done for every
# element of every parameter (`kernel`, `bias`), comparing with `layer.grads`.
#
# Why a random `dy` and not all ones? With `dy = 1` every output channel has the same
# weight in `f`, so a backward that mixes up two output channels would still pass.
#
# Here is one element done by hand, on a small float64 conv.

# %%
rng = np.random.default_rng(0)
conv = Conv2D(4, 3, padding="same", dtype="float64", seed=0)
x = rng.standard_normal((2, 5, 5, 3))
y = conv.forward(x)
dy = rng.standard_normal(y.shape)  # the invented upstream gradient
conv.backward(dy)  # sets conv.grads["kernel"], conv.grads["bias"]

kernel, k, eps = conv.params["kernel"], (1, 2, 0, 3), 1e-6
original = kernel[k]
kernel[k] = original + eps
f_plus = np.sum(conv.forward(x) * dy)
kernel[k] = original - eps
f_minus = np.sum(conv.forward(x) * dy)
kernel[k] = original  # always put the element back
numerical = (f_plus - f_minus) / (2 * eps)
analytic = conv.grads["kernel"][k]
print(f"kernel{k}: numerical {numerical:.10f}, analytic {analytic:.10f}")
print(f"difference {abs(numerical - analytic):.1e}")

# %% [markdown]
# `gradcheck` does this for every element of the input and of each parameter, and
# compares with the same rule as `torch.autograd.gradcheck`. An element passes when
#
#     |numerical - analytic| <= atol + rtol * |numerical|,   atol = 1e-5, rtol = 1e-3
#
# with `eps = 1e-6`, and every array must be float64 (section 4 shows why). The report
# lists each tensor with its worst absolute and relative error.

# %%
report = gradcheck(conv, x)
print(report)

# %% [markdown]
# Relative errors from about `1e-10` to `1e-6` are what a correct backward gives in
# float64: the rounding error of the finite differences themselves, larger when a
# gradient sums many products. A bug (a wrong formula, a wrong index, a missing term)
# usually gives `1e-2` or more. So does a kink (section 5), with a correct backward: a
# failure has to be read, not just counted.
#
# ## 2. Every layer of the package
#
# `numpy_unet.teach.selfcheck.builtin_checks()` runs the checker on each layer and loss of the
# package with small random float64 inputs: convs with 1x1, 2x2 and 3x3 kernels in both
# paddings, transposed convs, pooling, up-sampling, concatenation, cropping, dropout in
# training mode, the three activations and the three losses. The command
# `numpy-unet gradcheck` runs the same checks, and so does the course kit's grader: they are
# one registry, `numpy_unet/teach/checks.py`.

# %%
print(f"{'layer':44s} {'tensors':23s} {'elements':>8s} {'max rel err':>11s}  result")
t0 = time.perf_counter()
for r in builtin_checks():
    tensors = ", ".join(c.name.strip("'") for c in r.checks)
    checked = sum(c.checked for c in r.checks)
    verdict = "ok" if r.passed else "FAIL"
    print(f"{r.layer:44s} {tensors:23s} {checked:8d} {r.max_rel_error:11.1e}  {verdict}")
print(f"({time.perf_counter() - t0:.1f} s)")

# %% [markdown]
# The selection is small on purpose. The test suite (`tests/test_*.py`) sweeps many more
# configurations: odd and even sizes, strides 1 and 2, every padding, and inputs with ties.
#
# ## 3. A broken layer, caught
#
# Now the point of the exercise: a layer with a bug. Below is a LeakyReLU,
# `y = x` for `x > 0` and `y = alpha * x` otherwise, with `alpha = 0.2`. Its derivative on
# the negative side is the constant `alpha`. The backward below makes a common slip: it
# uses `alpha * x`, the *value* of the function, instead of its slope.
#
# The layer follows the package's protocol: it subclasses `Layer`, which provides `name`,
# `params` and `grads` (both empty here, since a LeakyReLU has no parameters).


# %%
class LeakyReLU(Layer):
    """y = x where x > 0, alpha * x elsewhere.  Shapes: any (...) in, the same out."""

    def __init__(self, alpha: float = 0.2, name: str | None = None) -> None:
        super().__init__(name)
        self.alpha = alpha

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.x = x
        return np.where(x > 0, x, self.alpha * x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        slope = np.where(self.x > 0, 1.0, self.alpha * self.x)  # BUG: should be self.alpha
        return dy * slope


x = away_from_kinks(np.random.default_rng(1).standard_normal((2, 4, 4, 3)))
try:
    gradcheck(LeakyReLU(name="leaky_relu_buggy"), x)
except GradcheckError as err:
    print("GradcheckError:", err)
    bad = next(c for c in err.report.checks if not c.passed)

# %% [markdown]
# Read the message from left to right: the layer (`LeakyReLU 'leaky_relu_buggy'`), the
# tensor whose gradient is wrong (`input`), the element with the largest error, and the
# numerical and analytic values there. The error is `GradcheckError`, a subclass of
# `AssertionError`, so pytest reports it as a failed assertion, and `err.report` holds the
# whole table.
#
# The two values already point at the bug. At that element the input is negative, so the
# true slope is `alpha`, and the analytic value is the numerical one times the input:
# the backward multiplied the slope by `x`.

# %%
at = bad.worst_index
print(f"worst element {at}: x = {x[at]:.4f}")
print(f"analytic / numerical = {bad.analytic / bad.numerical:.4f}")

# %% [markdown]
# Fix the slope and check again.


# %%
class FixedLeakyReLU(LeakyReLU):
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * np.where(self.x > 0, 1.0, self.alpha)


print(gradcheck(FixedLeakyReLU(name="leaky_relu_fixed"), x))

# %% [markdown]
# Why `away_from_kinks(x)`? The LeakyReLU has a kink at 0. Section 5 explains why a finite
# difference must not straddle it. `numpy_unet.gradcheck.away_from_kinks` moves every value
# out of `(-1e-3, 1e-3)`, far more than `eps = 1e-6`.
#
# ## 4. Why float64: the V-shaped error of finite differences
#
# A finite difference has two sources of error, and they pull in opposite directions.
#
# - **Truncation.** The central difference is exact only for a quadratic. For a smooth
#   function the error is about `eps**2 * f''' / 6`: it shrinks with `eps`.
# - **Rounding.** `f(x + eps)` and `f(x - eps)` are each rounded to the float format's
#   precision `u` (about `6e-8` for float32, `1.1e-16` for float64). Dividing their
#   difference by `2 eps` amplifies that rounding to about `u * |f| / eps`: it *grows* as
#   `eps` shrinks.
#
# The total is smallest near `eps ~ u**(1/3)`: about `1e-5` in float64, but `4e-3` in
# float32. With float32 and the checker's `eps = 1e-6`, rounding swamps the measurement.
#
# First by hand. Take a conv with a sigmoid (a smooth function, so that only truncation and
# rounding matter) in float32, and an exact float64 twin with the same weights. The
# analytic gradient of the twin is the reference. Compute the numerical kernel gradient
# with `eps = 1e-6` and `1e-3`, in both dtypes.

# %%
rng = np.random.default_rng(2)
x64 = rng.standard_normal((1, 6, 6, 2))
conv64 = Conv2D(2, 3, padding="same", activation="sigmoid", dtype="float64", seed=3)
conv64.forward(x64)
conv64.params["kernel"][...] = conv64.params["kernel"].astype(np.float32)  # same numbers
conv64.params["bias"][...] = rng.uniform(-0.5, 0.5, 2).astype(np.float32)
conv32 = Conv2D(2, 3, padding="same", activation="sigmoid", dtype="float32", seed=3)
conv32.forward(x64.astype(np.float32))
conv32.set_weights(conv64.get_weights())
dy = rng.standard_normal(conv64.forward(x64).shape)
conv64.backward(dy)
reference = conv64.grads["kernel"].copy()  # exact to ~1e-16


def numerical_kernel_gradient(layer: Conv2D, x: np.ndarray, eps: float) -> np.ndarray:
    """Central differences of sum(forward(x) * dy) for every kernel element, in the
    layer's own dtype (the kernel, the step and the outputs are all rounded to it)."""
    kernel = layer.params["kernel"]
    out = np.empty(kernel.shape)
    for k in np.ndindex(kernel.shape):
        original = kernel[k]
        kernel[k] = original + eps  # stored in the kernel's dtype: the step is rounded too
        y_plus = layer.forward(x)
        kernel[k] = original - eps
        y_minus = layer.forward(x)
        kernel[k] = original
        out[k] = np.sum((y_plus - y_minus) * dy) / (2 * eps)
    return out


def relative_error(numerical: np.ndarray) -> float:
    return float(np.linalg.norm(numerical - reference) / np.linalg.norm(reference))


x32 = x64.astype(np.float32)
print("relative error ||numerical - analytic|| / ||analytic|| over the 36 kernel elements")
for eps in (1e-6, 1e-3):
    e32 = relative_error(numerical_kernel_gradient(conv32, x32, eps))
    e64 = relative_error(numerical_kernel_gradient(conv64, x64, eps))
    print(f"  eps {eps:g}:  float32 {e32:.1e}   float64 {e64:.1e}")

k = (1, 1, 0, 0)
w, eps = conv32.params["kernel"][k], np.float32(1e-6)
step = float((w + eps) - (w - eps))  # what the two float32 kernels really differ by
print(
    f"\nfloat32 kernel{k} = {w:.8f}: float32 values near it are {abs(np.spacing(w)):.2e} apart,"
    f"\nso w + eps and w - eps differ by {step:.5e} instead of 2e-06 "
    f"({abs(step / 2e-6 - 1):.2%} off)"
)

# %% [markdown]
# In float32, `eps = 1e-6` gives an error of more than 10 %: that alone fails the check, even
# though the backward is right. `eps = 1e-3` is better, but then truncation costs
# accuracy, the tolerance `rtol = 1e-3` would have to be loosened, and a loose tolerance
# lets real bugs through. Even the step is not what was asked for: a float32 number near
# 0.18 can only change in multiples of about `1.5e-8`, so the two perturbed kernels differ
# by a slightly wrong amount, and that error alone is close to `rtol`.
#
# The checker therefore refuses float32 outright:

# %%
try:
    gradcheck(conv32, x32)
except TypeError as err:
    print("TypeError:", err)

# %% [markdown]
# The whole curve: the error for many values of `eps`, in both dtypes, on log-log axes.
# The dotted lines are the two error terms. The rounding line is `c * u / eps`, with `c`
# fitted on the float64 curve and then used unchanged for float32; the truncation line is
# `c' * eps**2`, the same for both dtypes.

# %%
steps = np.logspace(-12, 0, pick(37, 13))
curves = {
    name: np.array([relative_error(numerical_kernel_gradient(layer, xs, e)) for e in steps])
    for name, layer, xs in (("float32", conv32, x32), ("float64", conv64, x64))
}
for name, errors in curves.items():
    best = int(np.argmin(errors))
    print(f"{name}: smallest error {errors[best]:.1e} at eps = {steps[best]:.0e}")

u = {name: np.finfo(name).eps / 2 for name in curves}  # unit roundoff
i = np.argmin(np.abs(steps - 1e-9))  # fit the rounding constant where float64 rounds
c_round = curves["float64"][i] * steps[i] / u["float64"]
i = np.argmin(np.abs(steps - 1e-2))  # and the truncation constant where it truncates
c_trunc = curves["float64"][i] / steps[i] ** 2

fig = Figure(figsize=(8.5, 6.5), layout="constrained")
ax = fig.subplots()
for name, colour in zip(curves, ("tab:red", "tab:blue")):
    label = f"{name} (unit roundoff u = {u[name]:.1e})"
    ax.loglog(steps, curves[name], "o-", color=colour, label=label)
    ax.loglog(steps, c_round * u[name] / steps, ":", color=colour, lw=1.2)
ax.loglog(steps, c_trunc * steps**2, "k:", lw=1.2)
ax.text(3e-12, 3e-8, "rounding ~ u / eps", fontsize=9)
ax.text(2e-4, 0.4 * c_trunc * 2e-4**2, "truncation ~ eps²", fontsize=9)
ax.text(
    2e-12,
    0.3,
    "float32: eps below the spacing of\nthe weights, both sides round equal",
    fontsize=8,
    color="tab:red",
    va="top",
)
ax.axvline(1e-6, color="0.4", lw=1, ls="--")
ax.text(1.3e-6, 2e1, "checker's eps = 1e-6", color="0.3", fontsize=9)
ax.axhline(1e-3, color="tab:green", lw=1, ls="--")
ax.text(1.5e-12, 1.4e-3, "rtol = 1e-3", color="tab:green", fontsize=9)
ax.set_ylim(1e-13, 1e2)
ax.set_xlabel("finite-difference step eps")
ax.set_ylabel("relative error of the numerical gradient")
ax.set_title("Finite differences: rounding error (left) vs truncation error (right)")
ax.grid(which="major", alpha=0.3)
fig.legend(loc="outside lower center", ncols=2)
save(fig, "05_error_vs_eps.png")

# %% [markdown]
# Both curves are V-shaped, as the two formulas predict, and the rounding line fitted on
# float64 predicts the float32 curve without any new constant. The float32 V bottoms out
# near `eps = 1e-2` at about `3e-5`; float64 does better than that at every `eps` from
# `1e-11` to `1e-3`. Below `eps ~ 1e-8` float32 does not even register the step, and the
# error is 100 % or more. The checker's `eps = 1e-6` sits
# near the bottom of the float64 V, where a correct gradient is right to about `1e-10`
# and the tolerances have six orders of magnitude to spare.
#
# ## 5. Kinks: where a correct backward fails the check
#
# Central differences assume the function is smooth between `x - eps` and `x + eps`. Two
# layers of the UNet are not smooth everywhere.
#
# ### The ReLU at 0
#
# `relu(z) = max(z, 0)` has no derivative at `z = 0`: the slope is 0 on the left and 1 on
# the right. `ReLU.backward` uses 0 there, as TensorFlow and PyTorch do. A central
# difference across the kink measures the average slope, 0.5.

# %%
relu = ReLU()
z = np.zeros((1, 1, 1, 1))
relu.forward(z)
analytic = relu.backward(np.ones_like(z)).item()
eps = 1e-6
numerical = (np.maximum(z + eps, 0) - np.maximum(z - eps, 0)).item() / (2 * eps)
print(f"relu at z = 0: numerical slope {numerical}, analytic slope {analytic}")

# %% [markdown]
# A random input never lands exactly on 0. Inside a network it does, and often: when a
# conv's window sees only zeros and its bias is 0, its output is exactly 0. Zeros are
# everywhere in a ReLU network: every dead unit outputs 0, an `UpSampling2D` copies a 0
# into a 2x2 block, and 'same' padding adds zeros at the borders. A freshly built UNet
# has zero biases (Keras's default, and the package's), so a small one with few channels
# has many such windows.
#
# The next cell builds a tiny UNet in float64 (2 filters), counts the pre-activations that
# are exactly 0, and runs the check of the whole network with its loss (section 6 explains
# `ModelWithLoss`). In quick mode the network is smaller still (one pooling, 8x8 input).


# %%
def exact_zeros(model: UNet, x: np.ndarray) -> dict[str, int]:
    """How many inputs of each conv's ReLU are exactly 0, in one forward pass."""
    counts = {}
    relus = [lay for lay in model.layers if isinstance(getattr(lay, "activation", None), ReLU)]
    for layer in relus:

        def hooked(z, training=False, _forward=layer.activation.forward, _name=layer.name):
            counts[_name] = int(np.count_nonzero(z == 0))
            return _forward(z, training=training)

        layer.activation.forward = hooked  # an instance attribute shadows the method
    try:
        model.forward(x)
    finally:
        for layer in relus:
            del layer.activation.forward
    return {name: n for name, n in counts.items() if n}


size, depth = pick((16, 2), (8, 1))
rng = np.random.default_rng(1)
tiny = UNet((size, size, 1), filters=2, depth=depth, dtype="float64", seed=1)
x = rng.random((1, size, size, 1))
y = (rng.random((1, size, size, 1)) < 0.6).astype(np.float64)
print(tiny)
print("pre-activations exactly 0, per conv:", exact_zeros(tiny, x))
t0 = time.perf_counter()
report = gradcheck(ModelWithLoss(tiny, BinaryCrossentropy(), y), x, raise_exception=False)
print(f"elementwise check ({time.perf_counter() - t0:.1f} s): passed = {report.passed}")
for c in report.checks:
    if not c.passed:
        print(
            f"  FAIL {c.name:16s} element {c.worst_index}: numerical {c.numerical:.6f}, "
            f"analytic {c.analytic:.6f}"
        )

# %% [markdown]
# The failures are in the biases: a bias's gradient sums over every pixel of its channel,
# so it collects every kink in that channel. The backward is not wrong. At a pre-activation
# of exactly 0, nudging the bias up switches the unit on and nudging it down leaves it off,
# so the numerical slope is half of what the switched-on unit contributes, while the
# analytic one counts nothing.
#
# The remedy is to keep the check away from the kinks: give every bias a small random
# value. A window of zeros then gives the bias, not 0, and no pre-activation sits on a
# kink. The tests do exactly this (`nudge_biases` in `tests/conftest.py`):


# %%
def random_biases(model: UNet, rng: np.random.Generator, scale: float = 0.1) -> None:
    """Give every bias a small random value, moving pre-activations off the ReLU's kink."""
    for name, p in model.params.items():
        if name.endswith("/bias"):
            p[...] = scale * rng.standard_normal(p.shape)


random_biases(tiny, rng)
print("pre-activations exactly 0 after nudging:", exact_zeros(tiny, x) or "none")
report = gradcheck(ModelWithLoss(tiny, BinaryCrossentropy(), y), x, raise_exception=False)
print(f"passed = {report.passed}, worst relative error {report.max_rel_error:.1e}")

# %% [markdown]
# Does the kink matter for training? No. An exact 0 is an event of probability zero once the
# biases have moved away from 0, which happens in the first optimizer step. Whichever
# slope the backward picks at the kink, 0 or 1, training works: it is a subgradient.
#
# ### Ties in max-pooling
#
# `MaxPooling2D` sends each window's gradient to its maximum. When two elements of a
# window tie, the backward gives all of it to the first one (row-major order, as
# `np.argmax` picks it). A finite difference sees it otherwise: nudging either tied
# element up makes it the unique maximum, nudging it down hands the maximum to the other,
# so each gets half. One window, by hand:

# %%
pool = MaxPooling2D(2)
window = np.array([[1.0, 2.0], [0.0, 2.0]]).reshape(1, 2, 2, 1)  # two maxima of 2
pool.forward(window)
analytic = pool.backward(np.ones((1, 1, 1, 1)))[0, :, :, 0]
numerical = np.zeros((2, 2))
for i, j in np.ndindex(2, 2):
    bump = np.zeros_like(window)
    bump[0, i, j, 0] = eps
    numerical[i, j] = (pool.forward(window + bump) - pool.forward(window - bump)).item() / (2 * eps)
print("window:\n", window[0, :, :, 0])
print("analytic gradient (all to the first maximum):\n", analytic)
print("numerical gradient (half to each):\n", numerical)

# %% [markdown]
# The checker flags this as an error, because it is one in the sense that matters here:
# the two gradients disagree. Inputs with many repeated values, such as small integers,
# make ties likely:

# %%
ties = np.random.default_rng(3).integers(0, 3, (1, 4, 4, 2)).astype(np.float64)
print("channel 0 of the input:\n", ties[0, :, :, 0])
try:
    gradcheck(pool, ties)
except GradcheckError as err:
    print("\nGradcheckError:", str(err).splitlines()[0])

smooth = np.random.default_rng(3).standard_normal((1, 4, 4, 2))
print("\nthe same check with continuous random input:")
print(gradcheck(pool, smooth))

# %% [markdown]
# A numerical value half the size of the analytic one, or a numerical value where the
# analytic one is 0, is the signature of a tie. Here it is the bottom-right window of
# channel 0, the very window worked by hand above. With continuous random inputs a tie
# has probability zero, which is why the checks use `standard_normal` inputs.
#
# In a real UNet ties do occur: a pooling window over a dead ReLU's output holds four
# zeros. They are harmless there, because that ReLU passes no gradient back through a
# zero output anyway, whichever of the four receives it.
#
# ## 6. The whole UNet, along random directions
#
# `ModelWithLoss(model, loss, y_true)` wraps a model and its loss as one layer whose
# output is the loss value, so that `gradcheck` checks `dL/dx` and `dL/dθ` for every
# parameter `θ` of every layer, through the loss. On the tiny UNet above that took
# thousands of forward passes. The full network has 31,031,685 parameters, and checking
# them one by one takes two forward passes each. Build the network, time one forward
# pass, and multiply. (In quick mode the network has 8 filters instead of 64: 485,813
# parameters.)

# %%
filters, n_directions = pick(64, 8), 2
rng = np.random.default_rng(4)
full = UNet((16, 16, 1), filters=filters, dtype="float64", seed=4)
random_biases(full, rng)  # section 5: keep pre-activations off the ReLU's kink
x = rng.random((1, 16, 16, 1))
y = (rng.random((1, 16, 16, 1)) < 0.6).astype(np.float64)
per_forward = np.inf
for _ in range(3):  # the fastest of three: the first call also allocates memory
    t0 = time.perf_counter()
    full.forward(x)
    per_forward = min(per_forward, time.perf_counter() - t0)
n = full.count_params() + x.size
print(full)
print(f"one forward pass at 16x16 in float64: {per_forward * 1000:.0f} ms")
hours = 2 * n * per_forward / 3600
duration = f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.0f} days"
print(f"elementwise check: 2 x {n:,} forward passes, about {duration}")

# %% [markdown]
# The directional check replaces "every element" with "a few random directions". For a
# tensor `t` with gradient `g` and a random direction `v` (entries drawn from N(0, 1)),
# the derivative of `f` along `v` is `<g, v>`. The checker compares it with
#
#     (f(t + h v) - f(t - h v)) / (2 h),   h = eps / |v|
#
# so the step `h v` has length `eps`, just as small as an elementwise step. That costs two
# forward passes per direction and per tensor, whatever the tensor's size. A wrong
# gradient `g'` gives `<g', v> != <g, v>` for almost every `v`, so one or two directions
# already catch it.

# %%
t0 = time.perf_counter()
report = gradcheck(
    ModelWithLoss(full, BinaryCrossentropy(), y), x, directional=True, n_directions=n_directions
)
seconds = time.perf_counter() - t0
print(report)
print(f"\n{len(report.checks)} tensors, {n_directions} directions each, in {seconds:.0f} s")

# %% [markdown]
# All 49 tensors (the input, then a kernel and a bias for each of the 24 convs) pass, with
# relative errors around `1e-9` to `1e-6`. The errors grow towards the bottom of the U,
# where each kernel sums over thousands of products and the finite difference rounds
# accordingly; they stay far below `rtol = 1e-3`.
#
# Does a check along two random directions really catch a bug? Make one: scale one
# layer's kernel gradient by 1.01, an error of 1 %. The experiment uses an 8-filter UNet
# in both modes, to keep it quick.

# %%
small = UNet((16, 16, 1), filters=8, dtype="float64", seed=5)
random_biases(small, np.random.default_rng(5))
victim = next(layer for layer in small.layers if layer.name == "conv7_1")
correct_backward = victim.backward


def off_by_one_percent(dy: np.ndarray) -> np.ndarray:
    dx = correct_backward(dy)
    victim.grads["kernel"] = victim.grads["kernel"] * 1.01  # the planted bug
    return dx


victim.backward = off_by_one_percent
try:
    gradcheck(ModelWithLoss(small, BinaryCrossentropy(), y), x, directional=True, n_directions=2)
except GradcheckError as err:
    print("GradcheckError:", str(err).splitlines()[0])
    print([c.name for c in err.report.checks if not c.passed], "failed; the others passed")
del victim.backward  # back to the correct method

# %% [markdown]
# The check names the right tensor, `conv7_1/kernel`, and only that one: the planted bug
# does not touch the gradient that `conv7_1` passes on, so every other tensor still
# agrees.
#
# One limit to keep in mind: the tolerance is `atol + rtol * |numerical|`, and `atol =
# 1e-5` is absolute. A 1 % error is caught here because the derivative along a direction
# is of order `1e-3` to `1e-2`. A small relative error in a tensor whose gradient is tiny
# can stay below `atol`; check such a layer on its own, with inputs that give it larger
# gradients.
#
# ## 7. Checking your own layer: a template
#
# Copy this cell and replace `ChannelAffine` with your layer. This one is a per-channel
# scale and shift, `y = x * gamma + beta` (the learnable part of batch normalization), with
# two parameters. The checklist:
#
# 1. The protocol: `forward(x, training=False)` returns `y`; `backward(dy)` returns `dx`
#    and sets `self.grads` with the same keys as `self.params`.
# 2. Float64 everywhere: parameters, inputs, and whatever `forward` computes with.
# 3. Inputs away from kinks (`away_from_kinks`), continuous values (no ties), and biases that
#    are not exactly 0 in anything with a ReLU.
# 4. A layer that draws random numbers (like dropout) keeps its `np.random.Generator` as
#    an attribute; the checker replays it. Then check with `training=True`.
# 5. Sizes: small but not trivial, odd and even, batch size 2 (so that a sum over the batch
#    is tested), more than one channel.
# 6. For a loss, use `gradcheck_loss(loss, y_pred, y_true)`; for a large model,
#    `directional=True`.
# 7. In a test, just call `gradcheck(...)`: a `GradcheckError` fails the test with the
#    message. In a notebook, `raise_exception=False` returns the report without raising.


# %%
class ChannelAffine(Layer):
    """y = x * gamma + beta per channel.  x, y: (N, H, W, C); gamma, beta: (C,)."""

    def __init__(self, channels: int, seed: int = 0, name: str | None = None) -> None:
        super().__init__(name)
        rng = np.random.default_rng(seed)
        self.params = {"gamma": 1 + 0.1 * rng.standard_normal(channels), "beta": np.zeros(channels)}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.x = x  # keep what backward needs
        return x * self.params["gamma"] + self.params["beta"]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.grads = {
            "gamma": np.sum(dy * self.x, axis=(0, 1, 2)),  # summed over every position
            "beta": np.sum(dy, axis=(0, 1, 2)),
        }
        return dy * self.params["gamma"]


x = np.random.default_rng(5).standard_normal((2, 5, 4, 3))  # batch 2, odd and even sizes
print(gradcheck(ChannelAffine(3, name="channel_affine"), x))

# %% [markdown]
# ## Summary
#
# - `gradcheck(layer, x)` compares `backward` with central differences of
#   `sum(forward(x) * dy)` for a random `dy`, in float64, with torch's tolerances
#   (`eps = 1e-6`, `atol = 1e-5`, `rtol = 1e-3`).
# - A correct gradient agrees to `1e-10` to `1e-6`; a bug usually shows up as `1e-2` or
#   worse, and the error message names the tensor, the element and both values.
# - Float32 cannot do this: at `eps = 1e-6` its rounding error was over 10 % here.
# - A correct backward fails at kinks (ReLU at exactly 0, ties in max-pooling): nudge the
#   biases, use continuous random inputs.
# - For a large model, `directional=True` checks each tensor along a few random
#   directions, at two forward passes per direction.
