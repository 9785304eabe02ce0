"""A gradient checker for any object with ``forward``/``backward``/``params``/``grads``.

Modelled on ``torch.autograd.gradcheck``: float64 only, central differences with
eps = 1e-6, and an element passes when ``|numerical - analytic| <= atol + rtol * |numerical|``
(atol = 1e-5, rtol = 1e-3). The report's relative error of an element is
``|numerical - analytic| / max(|numerical|, |analytic|, atol / rtol)``.

How it avoids building a Jacobian: draw a random upstream gradient ``dy`` once and check the
gradient of the scalar ``f(x) = sum(forward(x) * dy)``. Its analytic gradient is exactly what
``backward(dy)`` returns; its numerical one, for element k of any tensor, is::

    (sum((forward(x + eps e_k) - forward(x - eps e_k)) * dy)) / (2 eps)

(differencing the outputs before summing keeps the rounding error small). A random ``dy``
catches mistakes that an all-ones ``dy`` would hide, such as swapped output channels.

Randomness: layers that draw random numbers (dropout) must keep their
``np.random.Generator`` as an attribute; the checker finds every such generator on the layer
(and on layers inside it) and rewinds it before each forward, so every call draws the same
mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from .tables import format_table

__all__ = [
    "GradcheckError",
    "GradcheckReport",
    "ModelWithLoss",
    "TensorCheck",
    "away_from_kinks",
    "compare",
    "gradcheck",
    "gradcheck_loss",
]


def away_from_kinks(x: np.ndarray, margin: float = 1e-3) -> np.ndarray:
    """``x`` with every value in (-margin, margin) pushed out to at least ``margin``.

    Central differences straddling a kink (ReLU's at 0) measure the average of two slopes,
    where the analytic gradient takes one: a legitimate disagreement, not a bug. Inputs and
    biases passed through this keep every pre-activation at least ``margin`` from 0 as long
    as ``eps`` is far smaller than ``margin``.
    """
    x = np.asarray(x)
    return np.where(np.abs(x) < margin, np.copysign(margin, x) + x, x)


class GradcheckError(AssertionError):
    """A gradient disagrees with its finite-difference estimate (``.report`` has the table)."""

    def __init__(self, message: str, report: GradcheckReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class TensorCheck:
    """The verdict for one tensor (an input or a parameter)."""

    name: str
    shape: tuple
    checked: int  # elements (or directions) compared
    max_abs_error: float
    max_rel_error: float  # max of |num - ana| / max(|num|, |ana|, atol / rtol)
    passed: bool
    worst_index: tuple  # element (or direction number) with the largest excess error
    numerical: float  # the values at worst_index
    analytic: float


@dataclass
class GradcheckReport:
    """All tensors' verdicts for one layer; ``print(report)`` shows a table."""

    layer: str
    mode: str
    eps: float
    atol: float
    rtol: float
    checks: list[TensorCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    def __str__(self) -> str:
        head = (
            f"gradcheck {self.layer}: {self.mode}, eps {self.eps:g}, atol {self.atol:g}, "
            f"rtol {self.rtol:g}"
        )
        rows = [("tensor", "shape", "checked", "max abs err", "max rel err", "result")]
        for c in self.checks:
            rows.append(
                (
                    c.name,
                    str(c.shape),
                    str(c.checked),
                    f"{c.max_abs_error:.2e}",
                    f"{c.max_rel_error:.2e}",
                    "ok" if c.passed else "FAIL",
                )
            )
        return "\n".join([head, *format_table(rows)])


def _name_of(obj: object) -> str:
    describe = getattr(obj, "describe", None)
    return describe() if callable(describe) else type(obj).__name__


def _generators(obj: object) -> list[np.random.Generator]:
    """Every ``np.random.Generator`` reachable from ``obj``'s attributes, lists and dicts
    (not through modules: a layer may keep one, e.g. the speed engine it used, and a
    module's globals are not the layer's state)."""
    found, seen, todo = [], set(), [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, (np.ndarray, str, bytes, int, float, ModuleType)):
            continue
        seen.add(id(o))
        if isinstance(o, np.random.Generator):
            found.append(o)
        elif isinstance(o, dict):
            todo.extend(o.values())
        elif isinstance(o, (list, tuple, set)):
            todo.extend(o)
        elif hasattr(o, "__dict__"):
            todo.extend(vars(o).values())
    return found


def _require_float64(arrays: list[tuple[str, np.ndarray]], layer: str) -> None:
    for name, a in arrays:
        if a.dtype != np.float64:
            raise TypeError(
                f"gradcheck {layer}: {name} is {a.dtype}, but gradient checks need float64 "
                "(float32 rounding is larger than the differences being measured). Build the "
                "layer with dtype='float64' and pass x.astype(np.float64)."
            )


def compare(
    name: str, numerical: np.ndarray, analytic: np.ndarray, atol: float, rtol: float
) -> TensorCheck:
    """The verdict for one tensor: ``analytic`` against ``numerical`` (or any reference)."""
    return _compare(name, np.asarray(numerical, float), np.asarray(analytic, float), atol, rtol)


def _compare(
    name: str, numerical: np.ndarray, analytic: np.ndarray, atol: float, rtol: float
) -> TensorCheck:
    err = np.abs(numerical - analytic)
    excess = err - (atol + rtol * np.abs(numerical))  # > 0 where the element fails
    worst = np.unravel_index(int(np.argmax(excess)), numerical.shape) if err.size else ()
    # Relative error, measured against atol / rtol (0.01 by default) for smaller gradients:
    # below that size the pass/fail test is ruled by atol, and finite differences carry a
    # rounding error of ~1e-10 that would make tiny gradients look relatively wrong.
    floor = atol / rtol if rtol > 0 else atol
    rel = err / np.maximum(np.maximum(np.abs(numerical), np.abs(analytic)), floor)
    return TensorCheck(
        name=name,
        shape=tuple(numerical.shape),
        checked=int(err.size),
        max_abs_error=float(err.max(initial=0.0)),
        max_rel_error=float(rel.max(initial=0.0)),
        passed=bool(err.size == 0 or excess.max() <= 0),
        worst_index=tuple(int(i) for i in worst),
        numerical=float(numerical[worst]) if err.size else 0.0,
        analytic=float(analytic[worst]) if err.size else 0.0,
    )


def _numerical_gradient(
    a: np.ndarray, run: Callable[[], np.ndarray], dy: np.ndarray, eps: float
) -> np.ndarray:
    """d sum(run() * dy) / d a, element by element, by central differences (a is restored)."""
    numerical = np.empty(a.shape)
    for idx in np.ndindex(a.shape):
        original = a[idx]
        a[idx] = original + eps
        y_plus = run()
        a[idx] = original - eps
        y_minus = run()
        a[idx] = original
        numerical[idx] = np.sum((y_plus - y_minus) * dy) / (2 * eps)
    return numerical


def _directional_derivatives(
    a: np.ndarray,
    analytic: np.ndarray,
    run: Callable[[], np.ndarray],
    dy: np.ndarray,
    eps: float,
    directions: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """For each direction v: the central difference along v, and <analytic, v>.

    The step along v has length eps (h = eps / |v|), as small as an elementwise step, so
    it does not jump across ReLU or max-pooling kinks however many elements v moves.
    """
    original = a.copy()
    numerical, predicted = [], []
    for v in directions:
        h = eps / (np.linalg.norm(v) or 1.0)
        np.copyto(a, original + h * v)
        y_plus = run()
        np.copyto(a, original - h * v)
        y_minus = run()
        np.copyto(a, original)
        numerical.append(np.sum((y_plus - y_minus) * dy) / (2 * h))
        predicted.append(np.sum(analytic * v))
    return np.array(numerical), np.array(predicted)


def _run_checks(
    layer_name: str,
    tensors: list[tuple[str, np.ndarray, np.ndarray]],  # (name, array read by run(), analytic)
    run: Callable[[], np.ndarray],
    dy: np.ndarray,
    *,
    eps: float,
    atol: float,
    rtol: float,
    directional: bool,
    n_directions: int,
    rng: np.random.Generator,
    raise_exception: bool,
) -> GradcheckReport:
    """Compare every tensor's analytic gradient with finite differences; raise on failure."""
    checks = {"eps": (eps, eps > 0), "atol": (atol, atol >= 0), "rtol": (rtol, rtol >= 0)}
    for option, (value, ok) in checks.items():
        if not (np.isfinite(value) and ok):
            sign = "> 0" if option == "eps" else ">= 0"
            raise ValueError(
                f"gradcheck {layer_name}: {option} must be finite and {sign}, got {value!r}"
            )
    if directional and not (isinstance(n_directions, (int, np.integer)) and n_directions >= 1):
        raise ValueError(
            f"gradcheck {layer_name}: n_directions must be at least 1, got {n_directions!r}"
        )
    mode = f"directional ({n_directions} random directions)" if directional else "elementwise"
    report = GradcheckReport(layer_name, mode, eps, atol, rtol)
    for name, a, analytic in tensors:
        if analytic.shape != a.shape:
            raise ValueError(
                f"gradcheck {layer_name}: the gradient of {name} has shape {analytic.shape}, "
                f"but {name} has shape {a.shape}"
            )
        if directional:
            # N(0, 1) entries, not unit vectors: <grad, v> is then about the size of the
            # gradient's norm, so the tolerances mean the same as for one element.
            directions = [rng.standard_normal(a.shape) for _ in range(n_directions)]
            numerical, predicted = _directional_derivatives(a, analytic, run, dy, eps, directions)
            check = _compare(name, numerical, predicted, atol, rtol)
            check.shape = tuple(a.shape)  # the tensor's shape, not the number of directions
        else:
            check = _compare(name, _numerical_gradient(a, run, dy, eps), analytic, atol, rtol)
        report.checks.append(check)
    if raise_exception and not report.passed:
        bad = next(c for c in report.checks if not c.passed)
        where = "direction" if directional else "element"
        raise GradcheckError(
            f"gradcheck failed for {layer_name}: gradient of {bad.name}, {where} "
            f"{bad.worst_index}: numerical {bad.numerical:.10g}, analytic {bad.analytic:.10g} "
            f"(|difference| {abs(bad.numerical - bad.analytic):.3g} > atol + rtol*|numerical| "
            f"= {atol + rtol * abs(bad.numerical):.3g})\n{report}",
            report,
        )
    return report


def gradcheck(
    layer: object,
    inputs: np.ndarray | list[np.ndarray],
    *,
    training: bool = False,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    directional: bool = False,
    n_directions: int = 8,
    seed: int = 0,
    raise_exception: bool = True,
) -> GradcheckReport:
    """Check ``layer.backward`` (input and parameter gradients) against finite differences.

    Parameters
    ----------
    layer : object
        Anything with ``forward(x, training)``, ``backward(dy)``, ``params`` and ``grads``
        (dicts of arrays with the same keys). Parameters must be float64; a layer that
        builds its parameters on the first forward is built by the checker's first call.
    inputs : ndarray or list of ndarray
        float64. A list is passed to ``forward`` as a list (multi-input layers such as
        ``Concatenate``), and ``backward`` must then return a list of gradients.
    training : bool
        Passed to ``forward`` (``True`` to check dropout masks).
    eps, atol, rtol : float
        Step of the central differences and tolerances (torch's defaults).
    directional : bool
        Instead of every element, compare ``(f(t + h v) - f(t - h v)) / 2h`` with
        ``<grad, v>`` for ``n_directions`` random directions v per tensor (entries drawn from
        N(0, 1); h = eps / |v|, a step of length eps): for tensors too big to check element
        by element, such as a whole UNet's.
    seed : int
        Seed of the random upstream gradient and directions.
    raise_exception : bool
        Raise :class:`GradcheckError` on failure (default); else just return the report.

    Returns
    -------
    GradcheckReport
        Per tensor: shape, elements checked, max abs and max relative error, pass or fail.
    """
    name = _name_of(layer)
    multi = not isinstance(inputs, np.ndarray)
    xs = [np.array(x, copy=True) for x in inputs] if multi else [np.array(inputs, copy=True)]
    _require_float64([(f"input {k}" if multi else "input", x) for k, x in enumerate(xs)], name)
    generators = _generators(layer)
    states = [g.bit_generator.state for g in generators]

    def run() -> np.ndarray:
        for g, s in zip(generators, states):  # replay the same random draws every time
            g.bit_generator.state = s
        return np.array(layer.forward(xs if multi else xs[0], training=training), copy=True)

    y = run()  # builds lazily-built layers
    _require_float64([(f"parameter '{k}'", p) for k, p in layer.params.items()], name)
    if not np.array_equal(run(), y):
        raise GradcheckError(
            f"gradcheck {name}: two forward passes on the same input gave different outputs. "
            "If the layer is random, keep its np.random.Generator as an attribute so the "
            "checker can replay it."
        )
    rng = np.random.default_rng(seed)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    dxs = list(dx) if multi else [dx]
    if len(dxs) != len(xs):
        raise ValueError(
            f"gradcheck {name}: backward returned {len(dxs)} gradients for {len(xs)} inputs"
        )
    missing = set(layer.params) - set(layer.grads)
    if missing:
        raise ValueError(f"gradcheck {name}: backward() left no grads for {sorted(missing)}")
    tensors = [
        (f"input {k}" if multi else "input", x, np.asarray(g, dtype=np.float64))
        for k, (x, g) in enumerate(zip(xs, dxs))
    ]
    tensors += [
        (f"'{k}'", p, np.array(layer.grads[k], dtype=np.float64)) for k, p in layer.params.items()
    ]
    return _run_checks(
        name,
        tensors,
        run,
        dy,
        eps=eps,
        atol=atol,
        rtol=rtol,
        directional=directional,
        n_directions=n_directions,
        rng=rng,
        raise_exception=raise_exception,
    )


def gradcheck_loss(
    loss: object,
    y_pred: np.ndarray,
    y_true: np.ndarray,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    directional: bool = False,
    n_directions: int = 8,
    seed: int = 0,
    raise_exception: bool = True,
    **forward_kwargs: object,
) -> GradcheckReport:
    """Check ``loss.backward()`` (dL/dy_pred) against finite differences of ``loss.forward``.

    ``forward_kwargs`` are passed on to ``forward`` (e.g. ``weight_map=...``). The other
    arguments are those of :func:`gradcheck`.
    """
    name = _name_of(loss)
    p = np.array(y_pred, copy=True)
    _require_float64([("y_pred", p)], name)

    def run() -> np.ndarray:
        return np.array(loss.forward(p, y_true, **forward_kwargs), dtype=np.float64)

    run()
    analytic = np.asarray(loss.backward(), dtype=np.float64)
    return _run_checks(
        name,
        [("y_pred", p, analytic)],
        run,
        np.array(1.0),
        eps=eps,
        atol=atol,
        rtol=rtol,
        directional=directional,
        n_directions=n_directions,
        rng=np.random.default_rng(seed),
        raise_exception=raise_exception,
    )


class ModelWithLoss:
    """``loss(model(x), y_true)`` as one scalar-valued layer, to check a model end to end.

    ``gradcheck(ModelWithLoss(model, BinaryCrossentropy(), y), x)`` checks dL/dx and dL/dθ
    for every parameter θ of the model, through the loss.
    """

    def __init__(self, model: object, loss: object, y_true: np.ndarray, **loss_kwargs: object):
        self.model, self.loss, self.y_true, self.loss_kwargs = model, loss, y_true, loss_kwargs

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.model.params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self.model.grads

    def describe(self) -> str:
        return f"{_name_of(self.model)} + {_name_of(self.loss)}"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y_pred = self.model.forward(x, training=training)
        return np.array(self.loss.forward(y_pred, self.y_true, **self.loss_kwargs))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.model.backward(self.loss.backward() * dy)
