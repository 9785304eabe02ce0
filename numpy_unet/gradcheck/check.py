"""``gradcheck``: a layer, a loss, a model with its loss, or a plain function with its
vector-Jacobian product, against finite differences (see the package's docstring)."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator
from types import ModuleType, SimpleNamespace

import numpy as np

from .differences import directional_derivatives, label, numerical_gradient, slopes_at
from .report import (
    GradcheckError,
    GradcheckReport,
    TensorCheck,
    compare,
    raw_relative_error,
)

KINK_HINTS = {  # what a kink usually is in the package's own layers (a hint in the notes)
    "ReLU": "ReLU at 0",
    "MaxPooling2D": "a tie in a pooling window",
    "BinaryCrossentropy": "a probability at a clip edge",
    "CategoricalCrossentropy": "a probability at a clip edge",
}


def away_from_kinks(
    x: np.ndarray, margin: float = 1e-3, break_ties: bool = True, seed: int = 0
) -> np.ndarray:
    """``x`` with every value in (-margin, margin) pushed out to at least ``margin``, and
    (``break_ties``) every value that occurs more than once moved up by a random amount in
    [0.1 margin, margin], so that max pooling sees no tie.

    Central differences straddling a kink (ReLU's at 0, a tie between two maxima) measure
    the average of two slopes, where the analytic gradient takes one: a legitimate
    disagreement, not a bug. Values that occur once are not moved by the tie-breaking.
    """
    x = np.asarray(x)
    if break_ties and x.size > 1:
        _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
        tied = (counts[inverse] > 1).reshape(x.shape)
        if tied.any():
            shift = np.random.default_rng(seed).uniform(0.1, 1.0, x.shape) * margin
            x = np.where(tied, x + shift, x)
    return np.where(np.abs(x) < margin, np.copysign(margin, x) + x, x)


def _name_of(obj: object) -> str:
    describe = getattr(obj, "describe", None)
    if callable(describe):
        return describe()
    return getattr(obj, "__name__", None) or type(obj).__name__


def _walk(obj: object) -> Iterator[tuple[object, object, object]]:
    """Every attribute, dict value and list item reachable from ``obj`` (not through
    modules: a layer may keep one, and a module's globals are not the layer's state)."""
    seen, todo = set(), [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, (np.ndarray, str, bytes, int, float, ModuleType)):
            continue
        seen.add(id(o))
        if isinstance(o, dict):
            items = list(o.items())
        elif isinstance(o, list):
            items = list(enumerate(o))
        elif isinstance(o, tuple):
            items = [(None, v) for v in o]
        elif hasattr(o, "__dict__") and not isinstance(o, type):
            items = list(vars(o).items())
        else:
            continue
        for key, value in items:
            yield o, key, value
            todo.append(value)


def _generators(obj: object) -> list[np.random.Generator]:
    """Every ``np.random.Generator`` reachable from ``obj``."""
    found = [v for _, _, v in _walk(obj) if isinstance(v, np.random.Generator)]
    return list({id(g): g for g in found}.values())


def _widened(obj: object) -> object:
    """A deep copy of ``obj`` with every float16/float32 array and dtype made float64."""
    twin = copy.deepcopy(obj)
    for holder, key, value in list(_walk(twin)):
        if key is None:
            continue  # inside a tuple: cannot be replaced
        new = value
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.itemsize < 8:
            new = value.astype(np.float64)
        elif key == "dtype":
            try:
                if np.dtype(value).kind == "f" and np.dtype(value).itemsize < 8:
                    new = "float64" if isinstance(value, str) else np.dtype(np.float64)
            except TypeError:
                pass
        if new is not value:
            if isinstance(holder, (dict, list)):
                holder[key] = new
            else:
                setattr(holder, key, new)
    return twin


def _require_float64(arrays: list[tuple[str, np.ndarray]], layer: str) -> None:
    for name, a in arrays:
        if a.dtype != np.float64:
            raise TypeError(
                f"gradcheck {layer}: {name} is {a.dtype}, but gradient checks need float64 "
                "(float32 rounding is larger than the differences being measured). Build the "
                "layer with dtype='float64' and pass x.astype(np.float64), or pass "
                "dtype='float64' to check a float64 copy of the layer."
            )


def _forward_caller(layer: object, name: str, training: bool) -> Callable:
    """``x -> layer.forward(x, training=training)``, or ``layer.forward(x)`` for a forward
    without a ``training`` argument."""
    try:
        params = inspect.signature(layer.forward).parameters
    except (TypeError, ValueError):
        params = {"training": None}
    if "training" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values() if p is not None
    ):
        return lambda x: layer.forward(x, training=training)
    if training:
        raise TypeError(f"gradcheck {name}: training=True, but its forward takes no training")
    return lambda x: layer.forward(x)


def _outputs(y: object) -> tuple[tuple[np.ndarray, ...], type | None]:
    """The outputs as a tuple of float64 copies, and the container of several (or None)."""
    if isinstance(y, (tuple, list)):
        return tuple(np.array(v, dtype=np.float64, copy=True) for v in y), type(y)
    return (np.array(y, dtype=np.float64, copy=True),), None


def gradcheck(
    layer: object,
    inputs: np.ndarray | list[np.ndarray] | tuple[np.ndarray, ...],
    *,
    vjp: Callable | None = None,
    training: bool = False,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    directional: bool = False,
    n_directions: int = 8,
    seed: int = 0,
    raise_exception: bool = True,
    allow_kinks: bool = True,
    dtype: str | None = None,
) -> GradcheckReport:
    """Check ``layer.backward`` (input and parameter gradients) against finite differences.

    Parameters
    ----------
    layer : object or callable
        Anything with ``forward(x[, training])``, ``backward(dy)``, ``params`` and ``grads``
        (dicts of arrays with the same keys, which ``forward`` reads in place). A forward
        that returns a tuple or list has several outputs, and ``backward`` then gets one
        ``dy`` per output, in the same container. Or, with ``vjp``, a plain function.
    inputs : ndarray, list or tuple of ndarray
        float64. For a layer, a list is passed to ``forward`` as one list (multi-input
        layers such as ``Concatenate``), and ``backward`` must return a list of gradients.
        For a function, each array is a positional argument.
    vjp : callable, optional
        ``vjp(dy, *inputs)``: the function's vector-Jacobian product, one gradient per input
        (a tuple for several); ``dy`` is a tuple when ``layer`` returns a tuple.
    training : bool
        Passed to ``forward`` (``True`` to check dropout masks).
    eps, atol, rtol : float
        Step of the central differences and tolerances (torch's defaults).
    directional : bool
        Instead of every element, compare ``(f(t + h v) - f(t - h v)) / 2h`` with
        ``<grad, v>`` for ``n_directions`` random directions v per tensor (entries drawn from
        N(0, 1); h = eps / |v|): for tensors too big to check element by element.
    seed : int
        Seed of the random upstream gradient and directions.
    raise_exception : bool
        Raise :class:`GradcheckError` on failure (default); else just return the report.
    allow_kinks : bool
        A failure labelled a kink (see :mod:`numpy_unet.gradcheck.differences`) does not
        fail the check (default); ``False`` counts every failure.
    dtype : {None, 'float64'}
        ``'float64'`` checks a float64 copy of a float32 layer (its arrays and dtypes
        widened) on float64 copies of the inputs.

    Returns
    -------
    GradcheckReport
        Per tensor: shape, elements checked, failures (kinks and mismatches, worst first),
        the numerical and analytic gradients, and the errors; plus notes.
    """
    function = vjp is not None
    if function and not callable(layer):
        raise TypeError("gradcheck: with vjp=..., the first argument must be a function")
    if not function and not callable(getattr(layer, "forward", None)):
        raise TypeError(
            f"gradcheck: {_name_of(layer)} has no forward method; to check a plain "
            "function pass its vector-Jacobian product as vjp=..."
        )
    several = not isinstance(inputs, np.ndarray)  # a layer's list, or a function's arguments
    xs = [np.array(x, copy=True) for x in (inputs if several else [inputs])]
    notes = []
    if dtype is not None:
        if dtype != "float64":
            raise ValueError(f"gradcheck: dtype must be 'float64' or None, got {dtype!r}")
        layer = layer if function else _widened(layer)
        xs = [x.astype(np.float64) for x in xs]
        notes.append("checked on a float64 copy of the layer and its inputs (dtype='float64')")
    name = _name_of(layer)
    subject = SimpleNamespace(params={}, grads={}) if function else layer
    _require_float64([(f"input {k}" if several else "input", x) for k, x in enumerate(xs)], name)
    generators = _generators(subject)
    states = [g.bit_generator.state for g in generators]
    call = (lambda x: layer(*x)) if function else _forward_caller(layer, name, training)

    def run() -> tuple[np.ndarray, ...]:
        for g, s in zip(generators, states):  # replay the same random draws every time
            g.bit_generator.state = s
        return _outputs(call(xs if several else xs[0]))[0]

    y0, container = _outputs(call(xs if several else xs[0]))  # builds lazily-built layers
    params = getattr(subject, "params", {}) or {}
    _require_float64([(f"parameter '{k}'", p) for k, p in params.items()], name)
    bad = sum(int((~np.isfinite(y)).sum()) for y in y0)
    if bad:
        raise GradcheckError(
            f"gradcheck {name}: forward gave {bad} NaN or infinite values for the inputs "
            "given; the checker needs a finite output (look for a log of 0, a division by "
            "0 or an overflow in forward)"
        )
    if any(not np.array_equal(a, b) for a, b in zip(run(), y0)):
        raise GradcheckError(
            f"gradcheck {name}: two forward passes on the same input gave different outputs. "
            "If the layer is random, keep its np.random.Generator as an attribute so the "
            "checker can replay it."
        )
    rng = np.random.default_rng(seed)
    dys = tuple(rng.standard_normal(y.shape) for y in y0)
    run()  # the forward state backward reads: that of the replayed draws
    dy = container(dys) if container is not None else dys[0]
    if function:
        given = vjp(dy, *xs)
    else:
        given = layer.backward(dy)
    dxs = list(given) if several else [given]
    if len(dxs) != len(xs):
        raise ValueError(
            f"gradcheck {name}: backward returned {len(dxs)} gradients for {len(xs)} inputs"
        )
    grads = getattr(subject, "grads", {}) or {}
    missing = set(params) - set(grads)
    if missing:
        raise ValueError(f"gradcheck {name}: backward() left no grads for {sorted(missing)}")
    tensors = [
        (f"input {k}" if several else "input", x, np.asarray(g, dtype=np.float64))
        for k, (x, g) in enumerate(zip(xs, dxs))
    ]
    tensors += [(f"'{k}'", p, np.array(grads[k], dtype=np.float64)) for k, p in params.items()]
    report = _run_checks(
        name,
        tensors,
        run,
        dys,
        eps=eps,
        atol=atol,
        rtol=rtol,
        directional=directional,
        n_directions=n_directions,
        rng=rng,
        allow_kinks=allow_kinks,
        hint=KINK_HINTS.get(type(layer).__name__),
    )
    report.notes[:0] = notes
    _check_params_are_read(report, params, run, y0, name)
    return _finish(report, raise_exception)


def _check_params_are_read(
    report: GradcheckReport, params: dict, run: Callable, y0: tuple, name: str
) -> None:
    """A parameter whose numerical gradient is 0 everywhere while its analytic one is not:
    if changing it changes nothing, forward does not read it in place. Say so."""
    for c in report.checks:
        key = c.name.strip("'")
        if c.passed or key not in params or np.any(c.numerical_grad) or not np.any(c.analytic_grad):
            continue
        p = params[key]
        original = p.copy()
        p += np.random.default_rng(0).standard_normal(p.shape) * (1.0 + np.abs(p))
        unchanged = all(np.array_equal(a, b) for a, b in zip(run(), y0))
        np.copyto(p, original)
        if unchanged:
            raise GradcheckError(
                f"gradcheck {name}: forward does not read params['{key}']: changing every "
                "value of it left the output unchanged. params must hold the very arrays "
                "forward uses (not copies), and forward must not keep a copy made from them "
                "(such as a cached W.T) from one call to the next.",
                report,
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
    allow_kinks: bool = True,
    **forward_kwargs: object,
) -> GradcheckReport:
    """Check ``loss.backward()`` (dL/dy_pred) against finite differences of ``loss.forward``.

    ``forward_kwargs`` are passed on to ``forward`` (e.g. ``weight_map=...``). The other
    arguments are those of :func:`gradcheck`.
    """
    name = _name_of(loss)
    p = np.array(y_pred, copy=True)
    _require_float64([("y_pred", p)], name)

    def run() -> tuple[np.ndarray, ...]:
        return (np.array(loss.forward(p, y_true, **forward_kwargs), dtype=np.float64),)

    value = run()
    if not np.isfinite(value[0]).all():
        raise GradcheckError(f"gradcheck {name}: the loss is {value[0]} for the y_pred given")
    analytic = np.asarray(loss.backward(), dtype=np.float64)
    report = _run_checks(
        name,
        [("y_pred", p, analytic)],
        run,
        (np.array(1.0),),
        eps=eps,
        atol=atol,
        rtol=rtol,
        directional=directional,
        n_directions=n_directions,
        rng=np.random.default_rng(seed),
        allow_kinks=allow_kinks,
        hint=KINK_HINTS.get(type(loss).__name__),
    )
    return _finish(report, raise_exception)


def _run_checks(
    layer_name: str,
    tensors: list[tuple[str, np.ndarray, np.ndarray]],  # (name, array read by run(), analytic)
    run: Callable[[], tuple[np.ndarray, ...]],
    dys: tuple[np.ndarray, ...],
    *,
    eps: float,
    atol: float,
    rtol: float,
    directional: bool,
    n_directions: int,
    rng: np.random.Generator,
    allow_kinks: bool,
    hint: str | None,
) -> GradcheckReport:
    """Compare every tensor's analytic gradient with finite differences; label failures."""
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
    # the rounding error of a difference of f: 10 ulps of sum |y * dy|
    rounding = (
        10
        * np.finfo(np.float64).eps
        * sum(float(np.sum(np.abs(y * dy))) for y, dy in zip(run(), dys))
    )
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
            central, predicted, right, left = directional_derivatives(
                a, analytic, run, dys, eps, directions
            )
            check = compare(name, central, predicted, atol, rtol)
            check.shape = tuple(a.shape)  # the tensor's shape, not the number of directions
        else:
            directions, predicted = None, None
            central, right, left = numerical_gradient(a, run, dys, eps)
            check = compare(name, central, analytic, atol, rtol)
        scale = [1.0] if directions is None else [np.linalg.norm(v) for v in directions]
        for f in check.failures:
            finer = _finer_slopes(a, f.index, directions, run, dys, eps / 10)
            noise = rounding * scale[f.index[0] if directions else 0] / eps
            f.label = label(f.analytic, right[f.index], left[f.index], finer, noise, atol, rtol)
        check.kinks = sum(f.kink for f in check.failures)
        if check.kinks:
            skip = [f.index for f in check.failures if f.kink]
            given = predicted if directional else analytic
            check.rel_error = raw_relative_error(central, given, atol, skip)
        check.passed = check.mismatches == 0 if allow_kinks else check.failing == 0
        report.checks.append(check)
        _notes(report, check, allow_kinks, hint)
    return report


def _finer_slopes(
    a: np.ndarray,
    index: tuple,
    directions: list[np.ndarray] | None,
    run: Callable[[], tuple[np.ndarray, ...]],
    dys: tuple[np.ndarray, ...],
    h: float,
) -> Callable[[], tuple[float, float]]:
    """The (right, left) slopes of element ``index`` (or along direction ``index[0]``, per
    unit of that direction, as <grad, v>) at step ``h``, computed when asked."""
    original = a.copy()
    if directions is None:

        def move(t: float) -> None:
            a[index] = original[index] + t

        return lambda: slopes_at(move, run, dys, h)
    v = directions[index[0]]
    norm = np.linalg.norm(v) or 1.0

    def move_along(t: float) -> None:
        np.copyto(a, original + t * (v / norm))

    return lambda: tuple(s * norm for s in slopes_at(move_along, run, dys, h))


def _notes(report: GradcheckReport, c: TensorCheck, allow_kinks: bool, hint: str | None) -> None:
    if c.kinks:
        what = f" ({hint}, most likely)" if hint else ""
        counted = "not counted" if allow_kinks else "counted (allow_kinks=False)"
        report.notes.append(
            f"{c.name}: {c.kinks} of {c.failing} failing values are kinks{what}: the "
            f"function is not differentiable there (its one-sided slopes differ); {counted}"
        )
    if c.below_atol > 0.5 and c.rel_error > 10 * report.rtol:
        report.notes.append(
            f"warning: {c.below_atol:.0%} of the gradients of {c.name} are below atol "
            f"({report.atol:g}), where the rule cannot see errors of their size, and its "
            f"relative error without the floor is {c.rel_error:.2g}: check with a summed loss "
            "(not a mean) or a smaller atol"
        )


def _finish(report: GradcheckReport, raise_exception: bool) -> GradcheckReport:
    if raise_exception and not report.passed:
        bad = next(c for c in report.checks if not c.passed)
        f = next((f for f in bad.failures if not f.kink), bad.failures[0])
        where = "direction" if report.mode.startswith("directional") else "element"
        raise GradcheckError(
            f"gradcheck failed for {report.layer}: gradient of {bad.name}, {where} "
            f"{f.index}: numerical {f.numerical:.10g}, analytic {f.analytic:.10g} "
            f"(|difference| {abs(f.numerical - f.analytic):.3g} > atol + rtol*|numerical| "
            f"= {report.atol + report.rtol * abs(f.numerical):.3g}; {f.label})\n{report}",
            report,
        )
    return report


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
