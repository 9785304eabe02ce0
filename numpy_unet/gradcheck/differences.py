"""Finite differences: central, one-sided, along directions, and the kink rule.

``run()`` returns the outputs (a tuple of arrays) for the current values of a tensor ``a``
that it reads in place; ``dys`` holds one upstream gradient per output. The scalar whose
gradient is estimated is ``f = sum_i sum(y_i * dy_i)``. Each difference of outputs is taken
before summing, which keeps the rounding error small.

The kink rule, for one failing element (or direction): the gap between its *right* slope
``(f(t + h) - f(t)) / h`` and its *left* slope ``(f(t) - f(t - h)) / h``, at ``h = eps`` and
at ``h = eps / 10``. Where ``f`` is smooth the gap is ``h * f''`` (plus rounding): it shrinks
tenfold with the step. At a kink it does not shrink: the two sides have different slopes
however small the step. So a failure is a **kink** when the gap is above the rounding noise
and at ``eps / 10`` still at least half of what it was at ``eps``; the function has no
derivative there to compare with, and the label says which slope the analytic value took
(one of them at a single kink, such as a ReLU at 0, a tie in a pooling window or a clip
edge; neither where several kinks meet, as when a pixel of a black region moves several
ReLUs at 0 at once). Otherwise the element is judged again at ``eps / 10``: a kink just
beyond that step if the analytic value agrees there, else a **mismatch**: the analytic
value is wrong.

Its limits: a wrong analytic value *at* a kink is not seen there (a bug shows where the
function is smooth, which is almost everywhere), and a function that bends so sharply
that its slopes differ over ``eps / 10`` without a kink would be taken for one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Outputs = tuple[np.ndarray, ...]


def contract(ys: Outputs, base: Outputs, dys: Outputs) -> float:
    """``sum_i sum((ys_i - base_i) * dy_i)``: the change of f between two evaluations."""
    return float(sum(np.sum((y - b) * dy) for y, b, dy in zip(ys, base, dys)))


def numerical_gradient(
    a: np.ndarray, run: Callable[[], Outputs], dys: Outputs, eps: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """df/da element by element by central differences, with the right and left slopes
    (``a`` is restored): (central, right, left), each of ``a``'s shape."""
    base = run()
    central, right, left = np.empty(a.shape), np.empty(a.shape), np.empty(a.shape)
    for idx in np.ndindex(a.shape):
        original = a[idx]
        a[idx] = original + eps
        up = contract(run(), base, dys)
        a[idx] = original - eps
        down = -contract(run(), base, dys)
        a[idx] = original
        central[idx] = (up + down) / (2 * eps)
        right[idx], left[idx] = up / eps, down / eps
    return central, right, left


def directional_derivatives(
    a: np.ndarray,
    analytic: np.ndarray,
    run: Callable[[], Outputs],
    dys: Outputs,
    eps: float,
    directions: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each direction v: the central difference along v, <analytic, v>, and the right
    and left slopes along v.

    The step along v has length eps (h = eps / |v|), as small as an elementwise step, so
    it does not jump across ReLU or max-pooling kinks however many elements v moves.
    """
    original, base = a.copy(), run()
    central, predicted, right, left = [], [], [], []
    for v in directions:
        h = eps / (np.linalg.norm(v) or 1.0)
        np.copyto(a, original + h * v)
        up = contract(run(), base, dys)
        np.copyto(a, original - h * v)
        down = -contract(run(), base, dys)
        np.copyto(a, original)
        central.append((up + down) / (2 * h))
        predicted.append(np.sum(analytic * v))
        right.append(up / h)
        left.append(down / h)
    return tuple(np.array(values) for values in (central, predicted, right, left))


def slopes_at(
    move: Callable[[float], None], run: Callable[[], Outputs], dys: Outputs, h: float
) -> tuple[float, float]:
    """(right, left) slopes for a step ``h``; ``move(t)`` puts the tensor at ``t`` from its
    original value (``move(0)`` restores it)."""
    base = run()
    move(h)
    up = contract(run(), base, dys)
    move(-h)
    down = -contract(run(), base, dys)
    move(0.0)
    return up / h, down / h


def label(
    analytic: float,
    right: float,
    left: float,
    finer: Callable[[], tuple[float, float]],
    noise: float,
    atol: float,
    rtol: float,
) -> str:
    """'mismatch' or 'kink: ...' for one failing element, by the rule in the module's
    docstring. ``right`` and ``left`` are the slopes at eps; ``finer()`` gives them at
    eps / 10; ``noise`` is the rounding error of a slope at eps."""

    def agree(u: float, v: float) -> bool:
        return abs(u - v) <= atol + rtol * max(abs(u), abs(v))

    gap = abs(right - left)
    if not np.isfinite(analytic) or gap <= noise:
        return "mismatch"  # smooth here, to rounding: the analytic value is simply wrong
    right2, left2 = finer()
    if abs(right2 - left2) > max(10 * noise, gap / 2):  # the gap does not shrink: a kink
        slopes = f"one-sided slopes {left + 0.0:.6g} (left) and {right + 0.0:.6g} (right)"
        for side, values in (("left", (left, left2)), ("right", (right, right2))):
            if any(agree(analytic, v) for v in values):
                return f"kink: {slopes}; the analytic value is the {side} one"
        return f"kink: {slopes}; the analytic value is neither (several kinks meet here)"
    if agree(analytic, (right2 + left2) / 2):
        return "kink: within eps (at eps / 10 the central difference agrees)"
    return "mismatch"
