"""MaxPooling2D: equals the loop version, the tie rule, padding, gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from numpy_unet import gradcheck
from numpy_unet.layers import MaxPooling2D
from numpy_unet.layers.loops import maxpool_backward_loops, maxpool_forward_loops

CONFIGS = list(itertools.product((2, 3), (1, 2, 3), ((6, 6), (7, 5), (5, 8))))


@pytest.mark.parametrize(("pool", "stride", "hw"), CONFIGS)
@pytest.mark.parametrize("ties", [False, True])
def test_fast_pool_equals_loops(pool, stride, hw, ties, rng):
    x = rng.standard_normal((2, *hw, 3))
    if ties:  # few distinct values: most windows hold several equal maxima
        x = np.round(x)
    layer = MaxPooling2D(pool, strides=stride)
    y = layer.forward(x)
    y_ref, where = maxpool_forward_loops(x, (pool, pool), (stride, stride))
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(
        layer.backward(dy), maxpool_backward_loops(dy, where, x.shape), rtol=1e-13, atol=1e-13
    )


@pytest.mark.parametrize(("pool", "stride", "hw"), CONFIGS)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_gradcheck_without_ties(pool, stride, hw, padding, rng):
    x = rng.standard_normal((2, *hw, 2))  # continuous values: no ties, no kinks
    report = gradcheck(MaxPooling2D(pool, strides=stride, padding=padding), x)
    assert report.passed and report.max_rel_error < 1e-6


def test_tie_sends_gradient_to_first_maximum_only():
    x = np.ones((1, 4, 4, 1))  # every window is one big tie
    layer = MaxPooling2D(2)
    layer.forward(x)
    dx = layer.backward(np.full((1, 2, 2, 1), 5.0))[0, :, :, 0]
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 5.0  # the top-left (first in row-major order) of each window
    np.testing.assert_array_equal(dx, expected)
    # a tie in the second row of a window: the first of the tied elements wins
    x = np.array([[0.0, 1.0], [3.0, 3.0]]).reshape(1, 2, 2, 1)
    layer.forward(x)
    np.testing.assert_array_equal(
        layer.backward(np.ones((1, 1, 1, 1)))[0, :, :, 0], [[0, 0], [1, 0]]
    )


@pytest.mark.parametrize("seed", range(4))
def test_gradient_at_ties_is_that_of_the_tie_broken_towards_the_chosen_element(seed):
    # At a tie the max is not differentiable, so finite differences at the tie are
    # meaningless. Check instead that the gradient equals the (checkable) gradient of the
    # same input with the tie broken in favour of the element the rule picks.
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (2, 6, 6, 2)).astype(np.float64)  # many ties
    layer = MaxPooling2D(2)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx_tied = layer.backward(dy)
    # one element per window receives the gradient: each window's sum equals dy
    np.testing.assert_allclose(dx_tied.reshape(2, 3, 2, 3, 2, 2).sum(axis=(2, 4)), dy)
    chosen = layer.backward(np.ones_like(dy)) > 0
    broken = x + 0.1 * chosen  # now the chosen element is the strict maximum
    layer.forward(broken)
    np.testing.assert_array_equal(layer.backward(dy), dx_tied)
    assert gradcheck(MaxPooling2D(2), broken).passed


def test_shapes_odd_sizes_and_same_padding():
    x = np.zeros((1, 7, 6, 3), np.float32)
    assert MaxPooling2D(2).forward(x).shape == (1, 3, 3, 3)  # 'valid' drops the last row
    assert MaxPooling2D(2, padding="same").forward(x).shape == (1, 4, 3, 3)
    assert MaxPooling2D(3, strides=1).forward(x).shape == (1, 5, 4, 3)


def test_same_padding_never_picks_the_padding():
    x = -np.ones((1, 3, 3, 1))  # all negative: zero padding would win, -inf padding cannot
    y = MaxPooling2D(2, padding="same").forward(x)
    np.testing.assert_array_equal(y, -np.ones((1, 2, 2, 1)))
