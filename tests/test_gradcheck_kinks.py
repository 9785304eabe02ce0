"""Kinks told from bugs: on inputs full of zeros and ties, every failure of the rule is
labelled a kink and the check passes; planted bugs still fail, as mismatches, where they
sit."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet import GradcheckError, gradcheck
from numpy_unet.gradcheck import away_from_kinks
from numpy_unet.layers import (
    Concatenate,
    Conv2D,
    Layer,
    MaxPooling2D,
    ReLU,
    Sigmoid,
    UpSampling2D,
)

SEEDS = range(200)


def assert_kinks_only(reports: list) -> int:
    """Every failure in ``reports`` is a kink and every check passed; how many failed the
    rule (what the checker without labels reported)."""
    failing = 0
    for report in reports:
        assert report.passed, str(report)
        for c in report.checks:
            assert all(f.kink for f in c.failures), str(report)
        failing += any(c.failing for c in report.checks)
    return failing


def test_relu_on_pixel_values_fails_the_rule_only_at_kinks():
    reports = []
    for seed in SEEDS:
        x = (np.random.default_rng(seed).integers(0, 256, (2, 4, 5, 3)) - 128) / 255
        reports.append(gradcheck(ReLU(), x, raise_exception=False))
    failing = assert_kinks_only(reports)
    assert failing > 50  # every seed that holds a zero (the old checker failed each)
    assert "ReLU at 0, most likely" in " ".join(n for r in reports for n in r.notes)
    x = (np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3)) - 128) / 255
    with pytest.raises(GradcheckError, match="kink: one-sided slopes"):
        gradcheck(ReLU(), x, allow_kinks=False)  # counted on demand


def test_max_pooling_on_pixel_values_fails_the_rule_only_at_ties():
    reports = []
    for seed in SEEDS:
        x = np.random.default_rng(seed).integers(0, 256, (2, 6, 6, 2)) / 255
        reports.append(gradcheck(MaxPooling2D(2), x, raise_exception=False))
    assert assert_kinks_only(reports) > 30
    labels = {f.label.split(";")[1].strip() for r in reports for c in r.checks for f in c.failures}
    assert labels <= {"the analytic value is the left one", "the analytic value is the right one"}


class Stack:
    """conv-ReLU-pool-conv-ReLU-upsample-concat-conv-sigmoid, from the package's layers,
    with its backward written out (the skip's gradient added where the paths meet)."""

    def __init__(self, seed: int, biases: bool) -> None:
        kw = {"padding": "same", "dtype": "float64"}
        self.conv1 = Conv2D(3, 3, activation="relu", seed=seed, **kw)
        self.pool, self.up, self.cat = MaxPooling2D(2), UpSampling2D(2), Concatenate()
        self.conv2 = Conv2D(3, 3, activation="relu", seed=seed + 1, **kw)
        self.conv3, self.sigmoid = Conv2D(1, 1, seed=seed + 2, **kw), Sigmoid()
        self.convs = {"conv1": self.conv1, "conv2": self.conv2, "conv3": self.conv3}
        for conv, channels in zip(self.convs.values(), (1, 3, 6)):
            conv.build((None, 8, 8, channels))
            if biases:
                conv.params["bias"][...] = 0.1 * np.random.default_rng(seed).standard_normal(
                    conv.params["bias"].shape
                )

    @property
    def params(self) -> dict:
        return {f"{n}/{k}": p for n, c in self.convs.items() for k, p in c.params.items()}

    @property
    def grads(self) -> dict:
        return {f"{n}/{k}": g for n, c in self.convs.items() for k, g in c.grads.items()}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        a = self.conv1.forward(x)  # (1, 8, 8, 3)
        b = self.up.forward(self.conv2.forward(self.pool.forward(a)))  # (1, 8, 8, 3)
        return self.sigmoid.forward(self.conv3.forward(self.cat.forward([a, b])))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        da, db = self.cat.backward(self.conv3.backward(self.sigmoid.backward(dy)))
        da = da + self.pool.backward(self.conv2.backward(self.up.backward(db)))  # the skip
        return self.conv1.backward(da)


def black_region(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random((1, 8, 8, 1))
    top, left = rng.integers(0, 5, 2)
    x[:, top : top + 4, left : left + 4] = 0.0  # black: every conv window there sees zeros
    return x


@pytest.mark.parametrize("biases", [False, True], ids=["zero biases", "random biases"])
@pytest.mark.parametrize(
    "seeds",
    [pytest.param(range(40), id="40 seeds"), pytest.param(SEEDS, id="200", marks=pytest.mark.slow)],
)
def test_a_stack_of_layers_on_black_regions_fails_the_rule_only_at_kinks(biases, seeds):
    reports = [
        gradcheck(Stack(seed, biases), black_region(seed), raise_exception=False) for seed in seeds
    ]
    assert assert_kinks_only(reports) > 0
    # the same inputs with the values moved off zero and ties broken: nothing to label
    clean = [
        gradcheck(Stack(s, biases), away_from_kinks(black_region(s)), raise_exception=False)
        for s in range(20)
    ]
    assert all(r.passed for r in clean)


# -- planted bugs: each fails, as a mismatch, where it is ---------------------------------
class LeakyReLU(Layer):
    """y = x where x > 0, 0.2 x elsewhere; ``bug``: the slope doubled on the last row."""

    def __init__(self, bug: bool = False) -> None:
        super().__init__("leaky")
        self.bug = bug

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.x = x
        return np.where(x > 0, x, 0.2 * x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = dy * np.where(self.x > 0, 1.0, 0.2)
        if self.bug:
            dx[:, -1] *= 2  # (N, H, W, C): the last image row
        return dx


def test_the_last_row_bug_is_located_on_the_last_row():
    x = np.random.default_rng(0).integers(0, 256, (2, 6, 5, 3)) / 255 - 0.5  # kinks too
    assert gradcheck(LeakyReLU(), x, raise_exception=False).passed
    report = gradcheck(LeakyReLU(bug=True), x, raise_exception=False)
    check = report.checks[0]
    assert not report.passed and check.mismatches > 0
    assert {f.index[1] for f in check.failures if not f.kink} == {5}
    heat = report.error_map("input")  # (H, W), summed over the batch and channels
    assert heat.shape == (6, 5) and heat[:-1].max() < 1e-6 * heat[-1].min()  # hot: last row


class GroupNorm(Layer):
    """(x - mean) / sqrt(var + e) over groups of channels; ``bug``: dx without the variance
    term (the part of the gradient that flows through var)."""

    def __init__(self, groups: int, bug: bool = False) -> None:
        super().__init__("group_norm")
        self.groups, self.bug = groups, bug

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        n, h, w, c = x.shape
        g = x.reshape(n, h, w, self.groups, c // self.groups)
        mean = g.mean(axis=(1, 2, 4), keepdims=True)
        self.inv = 1 / np.sqrt(g.var(axis=(1, 2, 4), keepdims=True) + 1e-5)
        self.xhat = (g - mean) * self.inv
        return self.xhat.reshape(x.shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        d = dy.reshape(self.xhat.shape)
        m = d.shape[1] * d.shape[2] * d.shape[4]
        dx = d - d.sum(axis=(1, 2, 4), keepdims=True) / m
        if not self.bug:
            dx -= self.xhat * (d * self.xhat).sum(axis=(1, 2, 4), keepdims=True) / m
        return (dx * self.inv).reshape(dy.shape)


class DepthwiseConv(Layer):
    """A 3x3 'valid' depthwise convolution; ``bug``: the kernel gradient transposed."""

    def __init__(self, channels: int, bug: bool = False) -> None:
        super().__init__("depthwise")
        self.params = {"kernel": np.random.default_rng(0).standard_normal((3, 3, channels))}
        self.bug = bug

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.x, k = x, self.params["kernel"]
        ho, wo = x.shape[1] - 2, x.shape[2] - 2
        return sum(x[:, i : i + ho, j : j + wo] * k[i, j] for i in range(3) for j in range(3))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        ho, wo = dy.shape[1:3]
        dk = np.empty_like(self.params["kernel"])
        dx = np.zeros_like(self.x)
        for i, j in np.ndindex(3, 3):
            dk[i, j] = (self.x[:, i : i + ho, j : j + wo] * dy).sum(axis=(0, 1, 2))
            dx[:, i : i + ho, j : j + wo] += dy * self.params["kernel"][i, j]
        self.grads = {"kernel": dk.transpose(1, 0, 2) if self.bug else dk}
        return dx


class Blend(Layer):
    """Two inputs: y = a * b + a; ``bug``: 'channel' doubles channel 1 of da, 'swap' returns
    the two gradients the wrong way round."""

    def __init__(self, bug: str | None = None) -> None:
        super().__init__("blend")
        self.bug = bug

    def forward(self, xs: list, training: bool = False) -> np.ndarray:
        self.a, self.b = xs
        return self.a * self.b + self.a

    def backward(self, dy: np.ndarray) -> list:
        da, db = dy * (self.b + 1), dy * self.a
        if self.bug == "channel":
            da[..., 1] *= 2
        return [db, da] if self.bug == "swap" else [da, db]


@pytest.mark.parametrize(
    ("make", "inputs", "tensor", "where"),
    [
        (lambda bug: GroupNorm(2, bug), "x", "input", None),
        (lambda bug: DepthwiseConv(4, bug), "x", "'kernel'", None),
        (lambda bug: Blend("channel" if bug else None), "ab", "input 0", 1),
        (lambda bug: Blend("swap" if bug else None), "ab", "input 1", None),
    ],
    ids=[
        "group norm without the variance term",
        "depthwise kernel transposed",
        "one channel doubled",
        "outputs swapped",
    ],
)
def test_planted_bugs_are_mismatches_in_the_right_tensor(make, inputs, tensor, where):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 6, 4 if inputs == "x" else 3))
    given = x if inputs == "x" else [x, rng.standard_normal(x.shape)]
    assert gradcheck(make(False), given, raise_exception=False).passed
    report = gradcheck(make(True), given, raise_exception=False)
    bad = report.check(tensor)
    assert not bad.passed and bad.mismatches > 0 and bad.kinks == 0
    if where is not None:  # every mismatch in that channel
        assert {f.index[-1] for f in bad.failures} == {where}
    if tensor == "'kernel'":  # transposed: the diagonal i == j is right, the rest wrong
        assert {f.index[0] == f.index[1] for f in bad.failures} == {False}
        assert report.check("input").passed
