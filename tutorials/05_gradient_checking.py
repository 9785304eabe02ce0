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
# **Time:** about 25 minutes to read; its run time, measured, is in `tutorials/README.md`
# (`NUMPY_UNET_QUICK=1` runs a small version in seconds).
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
from numpy_unet.tables import format_table
from numpy_unet.teach.checks import CHECKS, package_lib
from numpy_unet.teach.course import TASKS
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
assert abs(numerical - analytic) < 1e-8 * abs(numerical), "one element: they agree to 1e-8"

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
assert report.passed and report.max_rel_error < 1e-6, "a correct backward: 1e-10 to 1e-6"

# %% [markdown]
# Writing `Conv2D.backward` (the kernel, bias and input gradients, with `im2col` and
# `col2im`) is exercise `conv2d_backward` of the course kit (`numpy-unet exercises`), and
# this check is how its grader scores it.
#
# Relative errors from about `1e-10` to `1e-6` are what a correct backward gives in
# float64: the rounding error of the finite differences themselves, larger when a
# gradient sums many products. A bug (a wrong formula, a wrong index, a missing term)
# usually gives `1e-2` or more. So does a kink (section 5), with a correct backward: a
# failure has to be read, not just counted.
#
# ## 2. Every layer of the package
#
# The course kit (`numpy-unet exercises DIR`) cuts the backward passes out of the package
# for students to write, one exercise each. The registry `CHECKS` in
# `numpy_unet/teach/checks.py` lists, for each exercise, the cases its grader runs. For the
# backward passes those are: the
# three activations, convs with 1x1, 2x2 and 3x3 kernels in both paddings, transposed
# convs, pooling, up-sampling, concatenation, cropping, dropout in training mode, the three
# losses and a small UNet with its loss, all with small random float64 inputs. The command
# `numpy-unet gradcheck` (`numpy_unet.teach.selfcheck.builtin_checks()`) runs the same
# cases. Below, the backward exercises' cases run on the package's own classes, one row
# per case.
#
# Two rows are not finite-difference checks but a stated rule, compared value by value:
# what `ReLU.backward` passes at exactly 0, and where max pooling sends the gradient of a
# tie. Section 5 shows why finite differences cannot judge those two.

# %%
lib = package_lib()  # the classes under test: this package's own
rows, reports = [("exercise", "case", "against", "values", "max rel err", "result")], []
t0 = time.perf_counter()
backward = [name for name in CHECKS if name.endswith("_backward")]
for exercise in backward:
    for case in CHECKS[exercise]:
        r = case.run(lib)
        reports.append((exercise, case.name, r))
        against = "the rule" if r.against == "rule" else "differences"
        checked = sum(item.checked for item in r.items)
        verdict = "ok" if r.passed else "FAIL"
        rows.append((exercise, case.name, against, checked, f"{r.max_rel_error:.1e}", verdict))
print("\n".join(format_table(rows)))
failed = [f"{exercise} ({name})" for exercise, name, r in reports if not r.passed]
print(f"\n{len(reports)} cases of {len(backward)} backward exercises, {len(failed)} failed")
print(f"({time.perf_counter() - t0:.1f} s)")
assert not failed, f"every backward of the package passes its checks; failed: {failed}"
in_kit = {name for name in TASKS if name.endswith("_backward")}
assert set(backward) == in_kit, "every backward exercise of the course kit has its checks"

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
# `params` and `grads` (both empty here, since a LeakyReLU has no parameters). Its
# backward is the ReLU's with a second slope; writing `ReLU.backward` is exercise
# `relu_backward` of the course kit.
#
# **Predict before you run.** The checker reports the element with the largest error.
# Which tensor will it name? At that element, what will the ratio analytic / numerical be,
# in terms of the input `x` there?


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
else:
    raise AssertionError("the checker must catch the buggy LeakyReLU")

# %% [markdown]
# The answer is in the message, read from left to right: the layer (`LeakyReLU 'leaky_relu_buggy'`),
# the tensor whose gradient is wrong (`input`), the element with the largest error, and the
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
assert bad.name == "input" and x[at] < 0, "the input's gradient, on the negative side"
assert abs(bad.analytic / bad.numerical - x[at]) < 1e-6, "analytic = numerical * x: slope * x"

# %% [markdown]
# The answer to the question: the tensor is `input` (the layer has no other), and the
# ratio is the input value itself, printed above.

# %% [markdown]
# Fix the slope and check again.


# %%
class FixedLeakyReLU(LeakyReLU):
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * np.where(self.x > 0, 1.0, self.alpha)


report = gradcheck(FixedLeakyReLU(name="leaky_relu_fixed"), x)
print(report)
assert report.passed, "the fixed slope passes"

# %% [markdown]
# ### Where the error sits
#
# The message names the worst element; the report keeps every failing one (worst first),
# both gradients as arrays (`numerical_grad`, `analytic_grad` of each tensor), and draws
# where the error sits: `report.error_map()` sums `|numerical - analytic|` over the batch
# and the channels into an image, and `report.plot()` draws it. Here is a subtler bug: the
# slope is right everywhere but doubled on the last image row (an off-by-one in a loop
# over rows could do this).
#
# **Predict before you run.** Which rows of the map will be hot?


# %%
class LastRowLeakyReLU(FixedLeakyReLU):
    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = super().backward(dy)
        dx[:, -1] *= 2  # BUG: (N, H, W, C), the last row counted twice
        return dx


report = gradcheck(LastRowLeakyReLU(name="leaky_relu_last_row"), x, raise_exception=False)
print(report)
heat = report.error_map("input")  # (H, W): summed over the batch and the channels
print("error per row:", heat.sum(axis=1).round(3))
save(report.plot(), "05_error_map.png")
failing_rows = {f.index[1] for f in report.checks[0].failures}
assert failing_rows == {3}, "every failure is on the last row (row 3 of 4)"
assert heat[:-1].max() < 1e-6 * heat[-1].min(), "the map is hot on the last row only"

# %% [markdown]
# The answer: all the failures sit on row 3, the last one, and nowhere else: a pattern no single
# worst element shows. The table's "failing" column counts them (every element of the last
# row, since the input is away from the kink), and the lines under it list the worst five
# with both values, each labelled a *mismatch*: the function is smooth there, so the
# analytic value is simply wrong. Section 5 shows the other label.

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
#
# **Predict before you run.** The backward is right, so only the finite difference can be
# wrong. With the checker's `eps = 1e-6`, how large is the relative error of the float32
# estimate: about `1e-6`, about `1e-3`, or more than 10 %? And with `eps = 1e-3`?

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
e32, e64 = {}, {}
for eps in (1e-6, 1e-3):
    e32[eps] = relative_error(numerical_kernel_gradient(conv32, x32, eps))
    e64[eps] = relative_error(numerical_kernel_gradient(conv64, x64, eps))
    print(f"  eps {eps:g}:  float32 {e32[eps]:.1e}   float64 {e64[eps]:.1e}")
assert e32[1e-6] > 0.1, "float32 at eps = 1e-6: an error of more than 10 %"
assert e32[1e-3] < e32[1e-6] / 100 and e32[1e-3] > 1e-5, "eps = 1e-3: better, still coarse"
assert e64[1e-6] < 1e-9, "float64 at eps = 1e-6: right to about 1e-10"

k = (1, 1, 0, 0)
w, eps = conv32.params["kernel"][k], np.float32(1e-6)
step = float((w + eps) - (w - eps))  # what the two float32 kernels really differ by
step_error = abs(step / 2e-6 - 1)
print(
    f"\nfloat32 kernel{k} = {w:.8f}: float32 values near it are {abs(np.spacing(w)):.2e} apart,"
    f"\nso w + eps and w - eps differ by {step:.5e} instead of 2e-06 ({step_error:.2%} off)"
)
assert 0.5e-3 < step_error < 5e-3, "the step alone is off by about rtol = 1e-3"

# %% [markdown]
# The answer: in float32, `eps = 1e-6` gives an error of more than 10 %, printed above:
# that alone fails the check, even though the backward is right. `eps = 1e-3` is better,
# but then truncation costs accuracy, the tolerance `rtol = 1e-3` would have to be
# loosened, and a loose tolerance lets real bugs through. Even the step is not what was
# asked for: a float32 number near 0.18 can only change in multiples of about `1.5e-8`, so
# the two perturbed kernels differ by a slightly wrong amount, and that error alone is
# close to `rtol`.
#
# The checker therefore refuses float32 outright:

# %%
try:
    gradcheck(conv32, x32)
except TypeError as err:
    print("TypeError:", err)
else:
    raise AssertionError("the checker must refuse float32")

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
u = {name: np.finfo(name).eps / 2 for name in curves}  # unit roundoff
best = {}
for name, errors in curves.items():
    best[name] = int(np.argmin(errors))
    print(
        f"{name}: smallest error {errors[best[name]]:.1e} at eps = {steps[best[name]]:.0e} "
        f"(u**(1/3) = {u[name] ** (1 / 3):.0e})"
    )
for name in curves:  # the bottom of each V sits near u**(1/3)
    assert 0.1 < steps[best[name]] / u[name] ** (1 / 3) < 10, f"{name}: bottom near u**(1/3)"

i = np.argmin(np.abs(steps - 1e-9))  # fit the rounding constant where float64 rounds
c_round = curves["float64"][i] * steps[i] / u["float64"]
i = np.argmin(np.abs(steps - 1e-2))  # and the truncation constant where it truncates
c_trunc = curves["float64"][i] / steps[i] ** 2

fig = Figure(figsize=(8.5, 6.5), layout="constrained")
ax = fig.subplots()
for name, colour in zip(curves, ("tab:orange", "tab:blue")):
    label = f"{name} (unit roundoff u = {u[name]:.1e})"
    ax.loglog(steps, curves[name], "o-", color=colour, label=label)
    ax.loglog(steps, c_round * u[name] / steps, ":", color=colour, lw=1.2)
ax.loglog(steps, c_trunc * steps**2, "k:", lw=1.2, label="dotted: the two error terms")
ax.text(3e-12, 3e-8, "rounding ~ u / eps", fontsize=9)
ax.text(2e-4, 0.4 * c_trunc * 2e-4**2, "truncation ~ eps²", fontsize=9)
ax.text(
    2e-12,
    0.3,
    "float32: eps below the spacing of\nthe weights, both sides round equal",
    fontsize=8,
    color="tab:orange",
    va="top",
)
ax.axvline(1e-6, color="0.4", lw=1, ls="--")
ax.text(1.3e-6, 2e1, "checker's eps = 1e-6", color="0.3", fontsize=9)
ax.axhline(1e-3, color="tab:purple", lw=1, ls="--")
ax.text(1.5e-12, 1.4e-3, "rtol = 1e-3", color="tab:purple", fontsize=9)
ax.set_ylim(1e-13, 1e2)
ax.set_xlabel("finite-difference step eps")
ax.set_ylabel("relative error of the numerical gradient")
ax.set_title("Finite differences: rounding error (left) vs truncation error (right)")
ax.grid(which="major", alpha=0.3)
fig.legend(loc="outside lower center", ncols=3)
save(fig, "05_error_vs_eps.png")

e32_curve, e64_curve = curves["float32"], curves["float64"]
rounding32 = (steps >= 1e-7) & (steps <= 1e-4)  # where float32's error is rounding
ratio = e32_curve[rounding32] / (c_round * u["float32"] / steps[rounding32])
middle = (steps >= 1e-10) & (steps <= 1e-3)
at_checker = e64_curve[np.argmin(np.abs(steps - 1e-6))]
print(f"float32 curve / rounding line fitted on float64: {ratio.min():.2f} to {ratio.max():.2f}")
print(f"float64, eps from 1e-10 to 1e-3: at most {e64_curve[middle].max():.1e}")
print(f"float32 below eps = 1e-8: at least {e32_curve[steps < 1e-8].min():.2f}")
print(f"float64 at the checker's eps = 1e-6: {at_checker:.1e}")
assert 1 / 3 < ratio.min() and ratio.max() < 3, "one rounding constant fits both dtypes"
assert e64_curve[middle].max() < e32_curve.min(), "float64 beats float32's best, 1e-10..1e-3"
assert e32_curve[steps < 1e-8].min() >= 0.999, "below 1e-8 float32's error is 100 % or more"
assert at_checker < 1e-9, "at the checker's eps float64 is right to about 1e-10"

# %% [markdown]
# Both curves are V-shaped, as the two formulas predict, and the rounding line fitted on
# float64 predicts the float32 curve without any new constant (within the factor printed
# above). The float32 V bottoms out near `eps = 1e-2`, at the error printed above (about
# `3e-5`); float64 does better than that at every `eps` from `1e-10` to `1e-3`. Below
# `eps ~ 1e-8` float32 does not even register the step, and the error is 100 % or more.
# The checker's `eps = 1e-6` sits near the bottom of the float64 V, where a correct
# gradient is right to about `1e-10` and the tolerances have six orders of magnitude to
# spare.
#
# ## 5. Kinks: where a correct backward fails the check
#
# Central differences assume the function is smooth between `x - eps` and `x + eps`. Two
# layers of the UNet are not smooth everywhere.
#
# ### The ReLU at 0
#
# `relu(z) = max(z, 0)` has no derivative at `z = 0`: the slope is 0 on the left and 1 on
# the right. `ReLU.backward` uses 0 there, as TensorFlow and PyTorch do (exercise
# `relu_backward` of the course kit; its "relu at 0" case in section 2 checks this rule). A
# central difference across the kink measures the average slope, 0.5.

# %%
relu = ReLU()
z = np.zeros((1, 1, 1, 1))
relu.forward(z)
analytic = relu.backward(np.ones_like(z)).item()
eps = 1e-6
numerical = (np.maximum(z + eps, 0) - np.maximum(z - eps, 0)).item() / (2 * eps)
print(f"relu at z = 0: numerical slope {numerical}, analytic slope {analytic}")
assert (numerical, analytic) == (0.5, 0.0), "at the kink: the average slope against Keras's 0"

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
# To count, it wraps each conv's ReLU `forward`, with the model's speed switch off
# meanwhile (`with model.readable():`): the speed engine takes the ReLU inside its matrix
# products, where no wrapper sees it. The numbers are the same either way.
#
# **Predict before you run.** Every backward in this UNet is correct (section 2). Will the
# elementwise check of the whole network fail its rule somewhere? If so, in which tensors:
# inputs, kernels or biases? The cell runs the check twice: counting every failure
# (`allow_kinks=False`, as torch's `gradcheck` does), and as the checker does by default.


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
        with model.readable():  # every layer's own forward: each ReLU's runs
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
checked = ModelWithLoss(tiny, BinaryCrossentropy(), y)
strict = gradcheck(checked, x, allow_kinks=False, raise_exception=False)
print(f"counting every failure ({time.perf_counter() - t0:.1f} s): passed = {strict.passed}")
for c in strict.checks:
    if not c.passed:
        f = c.failures[0]
        print(
            f"  FAIL {c.name:16s} element {f.index}: numerical {f.numerical:.6f}, "
            f"analytic {f.analytic:.6f}"
        )
        print(f"       {f.label}")
report = gradcheck(checked, x, raise_exception=False)
print(f"by default: passed = {report.passed}")
for note in report.notes:
    print("  note:", note)
flagged = [c.name.strip("'") for c in strict.checks if not c.passed]
assert exact_zeros(tiny, x), "a fresh UNet with zero biases has pre-activations of exactly 0"
assert flagged and all(name.endswith("/bias") for name in flagged), "only biases fail the rule"
assert all(f.kink for c in strict.checks for f in c.failures), "every failure is a kink"
assert report.passed, "kinks are labelled and not counted: the check passes"

# %% [markdown]
# The answer: counting every failure, it does not pass, and the failures are all in biases. A bias's
# gradient sums over every pixel of its channel, so it collects every kink in that channel.
# The backward is not wrong. At a pre-activation of exactly 0, nudging the bias up switches
# the unit on and nudging it down leaves it off, so the numerical slope is half of what the
# switched-on unit contributes, while the analytic one counts nothing.
#
# The checker tells this from a bug. For each failing element it measures the slope from
# the right and from the left, at `eps` and at `eps / 10`. Where the function is smooth the
# two agree, up to a gap that shrinks tenfold with the step: a failure there is a
# *mismatch*, a bug. At a kink the gap stays whatever the step: the failure is a *kink*, and
# the label says which slope the backward took (here the left one: Keras's rule counts a
# unit at exactly 0 as off). Kinks are not
# counted, and a note says how many were skipped. The rule has limits: a wrong value *at* a
# kink is not seen there (a bug shows where the function is smooth, which is almost
# everywhere), and a function bending sharply within `eps / 10` would pass for a kink.
#
# A check can also keep away from the kinks: give every bias a small random value. A
# window of zeros then gives the bias, not 0, and no pre-activation sits on a kink. The
# tests do this too (`nudge_biases` in `tests/conftest.py`):


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
assert not exact_zeros(tiny, x) and report.passed, "off the kinks, the whole UNet passes"
assert not any(c.failing for c in report.checks), "and nothing fails the rule at all"

# %% [markdown]
# Does the kink matter for training? No. An exact 0 is an event of probability zero once the
# biases have moved away from 0, which happens in the first optimizer step. Whichever
# slope the backward picks at the kink, 0 or 1, training works: it is a subgradient.
#
# ### Ties in max-pooling
#
# `MaxPooling2D` sends each window's gradient to its maximum (exercise `maxpool_backward`
# of the course kit). When two elements of a window tie, the backward gives all of it to
# the first one (row-major order, as `np.argmax` picks it).
#
# **Predict before you run.** The window below holds two maxima of 2. The analytic
# gradient (for an upstream gradient of 1) puts 1 on the first and 0 elsewhere. What will
# the central difference give each of the four elements?

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
assert np.array_equal(analytic, [[0, 1], [0, 0]]), "the backward: all to the first maximum"
assert np.allclose(numerical, [[0, 0.5], [0, 0.5]], atol=1e-9), "finite differences: half each"

# %% [markdown]
# The answer: half to each tied maximum. Nudging either one up makes it the unique maximum
# (slope 1), nudging it down hands the maximum to the other (slope 0); the central difference
# averages the two.

# %% [markdown]
# Counting every failure (`allow_kinks=False`), the checker flags this as an error: the
# two gradients disagree. By default it labels it a kink. Inputs with many repeated values,
# such as small integers, make ties likely:

# %%
ties = np.random.default_rng(3).integers(0, 3, (1, 4, 4, 2)).astype(np.float64)
print("channel 0 of the input:\n", ties[0, :, :, 0])
try:
    gradcheck(pool, ties, allow_kinks=False)
except GradcheckError as err:
    print("\nGradcheckError:", str(err).splitlines()[0])
    tie = err.report.checks[0]
else:
    raise AssertionError("ties must fail the rule")
_, i, j, channel = tie.worst_index
assert channel == 0 and i >= 2 and j >= 2, "the worst element: channel 0, bottom-right window"
assert np.array_equal(ties[0, 2:, 2:, 0], window[0, :, :, 0]), "the window worked by hand"
assert tie.analytic == 0 and tie.numerical > 0, "a numerical value where the analytic one is 0"
labelled = gradcheck(pool, ties)
print("\nby default:", labelled.notes[0])
assert labelled.passed and labelled.checks[0].kinks == tie.failing, "every tie: a kink"

smooth = np.random.default_rng(3).standard_normal((1, 4, 4, 2))
print("\nthe same check with continuous random input:")
report = gradcheck(pool, smooth)
print(report)
assert report.passed, "continuous random inputs: no ties, the check passes"

# %% [markdown]
# A numerical value half the size of the analytic one, or a numerical value where the
# analytic one is 0, is the signature of a tie, and the one-sided slopes (0 and 1) confirm
# it. Here it is the bottom-right window of
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
# parameters.) Writing `UNet.backward`, the whole U in reverse with each skip's gradient
# added where the two paths met, is exercise `unet_backward` of the course kit; this is
# the kind of check that grades it.

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
by_name = {c.name.strip("'"): c.max_rel_error for c in report.checks}
top, bottom = by_name["conv1_2/kernel"], by_name["conv5_2/kernel"]
print(f"worst relative error {report.max_rel_error:.1e}; conv1_2/kernel {top:.1e}, ", end="")
print(f"conv5_2/kernel {bottom:.1e}")
assert report.passed and len(report.checks) == 49, "all 49 tensors pass"
assert report.max_rel_error < 1e-5, "far below rtol = 1e-3"
assert bottom > top, "the errors grow towards the bottom of the U"

# %% [markdown]
# All 49 tensors (the input, then a kernel and a bias for each of the 24 convs) pass, with
# relative errors from about `1e-10` to a few `1e-6` in a full run (the 8-filter network of
# quick mode sums fewer products and stays below `1e-6`). The errors grow towards the
# bottom of the U, where each kernel sums over thousands of products and the finite
# difference rounds accordingly; they stay far below `rtol = 1e-3`.
#
# Does a check along two random directions really catch a bug? Make one: scale one
# layer's kernel gradient by 1.01, an error of 1 %. The experiment uses an 8-filter UNet
# in both modes, to keep it quick.
#
# **Predict before you run.** Each tensor is checked along only two random directions,
# and the error is 1 % in one of 49 tensors. Will the check catch it? If so, which tensors
# will it flag?

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
    caught = [c.name.strip("'") for c in err.report.checks if not c.passed]
    print(caught, "failed; the others passed")
else:
    caught = []
del victim.backward  # back to the correct method
assert caught == ["conv7_1/kernel"], "two directions catch a 1 % error, in that tensor only"

# %% [markdown]
# The answer: yes. The check names the right tensor, `conv7_1/kernel`, and only that one: the
# planted bug does not touch the gradient that `conv7_1` passes on, so every other tensor still
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
#    an attribute; the checker replays it. Then check with `training=True` (the
#    "training (seeded mask)" case of exercise `dropout_backward` in section 2).
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
report = gradcheck(ChannelAffine(3, name="channel_affine"), x)
print(report)
assert report.passed, "the template layer passes"

# %% [markdown]
# ### A plain function
#
# Not everything is a layer. A function of arrays with its vector-Jacobian product (the
# backward: given the upstream gradient of each output, the gradient of each input) is
# checked with `gradcheck(f, inputs, vjp=vjp)`. The inputs are a tuple of positional
# arguments, and a function with several outputs gets one upstream gradient per output.
# Here: the soft-thresholded magnitude of a 2-D vector field, and its mean direction,
# two outputs of different shapes. The same command line checks a layer in your own file:
# `numpy-unet gradcheck mylayers.py:MyLayer --shape 2,8,8,3` (`--plot where.png` saves the
# map above).


# %%
def field_stats(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sqrt(u^2 + v^2 + 1) - 1 per pixel, the mean of u / (1 + v^2) per image)."""
    return np.sqrt(u**2 + v**2 + 1) - 1, np.mean(u / (1 + v**2), axis=(1, 2))


def field_stats_vjp(dys: tuple, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d_mag, d_mean = dys  # (N, H, W), (N,)
    r = np.sqrt(u**2 + v**2 + 1)
    per_pixel = d_mean[:, None, None] / (u[0].size)  # the mean spreads its gradient evenly
    du = d_mag * u / r + per_pixel / (1 + v**2)
    dv = d_mag * v / r - per_pixel * u * 2 * v / (1 + v**2) ** 2
    return du, dv


u, v = np.random.default_rng(6).standard_normal((2, 2, 4, 5))
report = gradcheck(field_stats, (u, v), vjp=field_stats_vjp)
print(report)
assert report.passed and [c.name for c in report.checks] == ["input 0", "input 1"]
wrong = gradcheck(
    field_stats,
    (u, v),
    raise_exception=False,
    vjp=lambda d, a, b: (field_stats_vjp(d, a, b)[0], -field_stats_vjp(d, a, b)[1]),
)
assert wrong.check("input 0").passed and not wrong.check("input 1").passed, (
    "a sign error in dv fails input 1 only"
)

# %% [markdown]
# ## Summary
#
# - `gradcheck(layer, x)` compares `backward` with central differences of
#   `sum(forward(x) * dy)` for a random `dy`, in float64, with torch's tolerances
#   (`eps = 1e-6`, `atol = 1e-5`, `rtol = 1e-3`).
# - A correct gradient agrees to `1e-10` to `1e-6`; a bug usually shows up as `1e-2` or
#   worse, and the error message names the tensor, the element and both values.
# - Float32 cannot do this: at `eps = 1e-6` its rounding error was over 10 % here.
# - A correct backward fails the rule at kinks (ReLU at exactly 0, ties in max-pooling):
#   the checker labels such failures kinks from their one-sided slopes and does not count
#   them; a bug is a mismatch, and `report.error_map()` / `report.plot()` show where it sits.
# - Any function with a vector-Jacobian product can be checked (`vjp=`), and a layer in your
#   own file from the command line (`numpy-unet gradcheck FILE.py:NAME --shape ...`).
# - For a large model, `directional=True` checks each tensor along a few random
#   directions, at two forward passes per direction; two directions caught a 1 % error.
# - Every exercise of the course kit (`numpy-unet exercises`) is graded by the checks of
#   section 2.
