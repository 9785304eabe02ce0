"""A gradient checker for any object with ``forward``/``backward``/``params``/``grads``, and
for plain functions with a vector-Jacobian product.

Modelled on ``torch.autograd.gradcheck``: float64 only, central differences with
eps = 1e-6, and an element passes when ``|numerical - analytic| <= atol + rtol * |numerical|``
(atol = 1e-5, rtol = 1e-3). The report's relative error of an element is
``|numerical - analytic| / max(|numerical|, |analytic|, atol / rtol)``; it also gives the
relative error without that floor.

How it avoids building a Jacobian: draw a random upstream gradient ``dy`` once (one per
output) and check the gradient of the scalar ``f(x) = sum(forward(x) * dy)``. Its analytic
gradient is exactly what ``backward(dy)`` returns; its numerical one, for element k of any
tensor, is::

    (sum((forward(x + eps e_k) - forward(x - eps e_k)) * dy)) / (2 eps)

(differencing the outputs before summing keeps the rounding error small). A random ``dy``
catches mistakes that an all-ones ``dy`` would hide, such as swapped output channels.

Kinks: where the function is not differentiable (a ReLU at exactly 0, a tie between two
maxima of a pooling window, a probability at a loss's clip edge), central differences
average two slopes and the analytic value takes one. Each failing element is labelled a
kink or a mismatch by comparing its one-sided slopes (:mod:`.differences`); kinks do not
fail the check unless ``allow_kinks=False``, and the report says how many were skipped.

Randomness: layers that draw random numbers (dropout) must keep their
``np.random.Generator`` as an attribute; the checker finds every such generator on the layer
(and on layers inside it) and rewinds it before each forward, so every call draws the same
mask.

Parts: ``check.py`` (``gradcheck``, ``gradcheck_loss``, ``ModelWithLoss``,
``away_from_kinks``), ``differences.py`` (the finite differences and the kink rule),
``report.py`` (what a check found), ``plot.py`` (the heat map, with matplotlib).
"""

from __future__ import annotations

from .check import (
    ModelWithLoss,
    _generators,
    away_from_kinks,
    gradcheck,
    gradcheck_loss,
)
from .differences import numerical_gradient
from .report import Failure, GradcheckError, GradcheckReport, TensorCheck, compare

__all__ = [
    "Failure",
    "GradcheckError",
    "GradcheckReport",
    "ModelWithLoss",
    "TensorCheck",
    "_generators",
    "away_from_kinks",
    "compare",
    "gradcheck",
    "gradcheck_loss",
    "numerical_gradient",
]
