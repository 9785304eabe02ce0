"""What a gradient check found: a verdict per tensor, its failing elements, and where they sit.

An element *fails* the rule ``|numerical - analytic| <= atol + rtol * |numerical|``. The
checker then labels each failure: a **kink** (the function is not differentiable there: its
one-sided slopes differ, and the analytic value is one of them, as at a ReLU's 0 or a tie in
a pooling window) or a **mismatch** (a bug: the slopes agree with each other, not with the
analytic value). A tensor passes when all its failures are kinks (``allow_kinks``, the
default) or when nothing fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tables import format_table


class GradcheckError(AssertionError):
    """A gradient disagrees with its finite-difference estimate (``.report`` has the table)."""

    def __init__(self, message: str, report: GradcheckReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Failure:
    """One element (or direction) outside the rule, and what the checker made of it."""

    index: tuple
    numerical: float
    analytic: float
    label: str = "mismatch"  # or "kink: ..." (see the module's docstring)

    @property
    def kink(self) -> bool:
        return self.label.startswith("kink")


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
    failing: int = 0  # elements outside the rule
    kinks: int = 0  # of those, labelled kinks
    rel_error: float = 0.0  # max |num - ana| / max(|num|, |ana|): no floor, no kinks
    below_atol: float = 0.0  # the share of the non-zero gradients smaller than atol
    failures: list[Failure] = field(default_factory=list)  # every failure, worst first
    numerical_grad: np.ndarray | None = field(default=None, repr=False)
    analytic_grad: np.ndarray | None = field(default=None, repr=False)

    @property
    def mismatches(self) -> int:
        return self.failing - self.kinks


def compare(
    name: str, numerical: np.ndarray, analytic: np.ndarray, atol: float, rtol: float
) -> TensorCheck:
    """The verdict for one tensor: ``analytic`` against ``numerical`` (or any reference).
    Every failure is a mismatch here; the checker labels kinks afterwards."""
    numerical = np.asarray(numerical, float)
    analytic = np.asarray(analytic, float)
    err = np.abs(numerical - analytic)
    excess = err - (atol + rtol * np.abs(numerical))  # > 0 where the element fails
    worst = np.unravel_index(int(np.argmax(excess)), numerical.shape) if err.size else ()
    # Relative error, measured against atol / rtol (0.01 by default) for smaller gradients:
    # below that size the pass/fail test is ruled by atol, and finite differences carry a
    # rounding error of ~1e-10 that would make tiny gradients look relatively wrong.
    floor = atol / rtol if rtol > 0 else atol
    size = np.maximum(np.abs(numerical), np.abs(analytic))
    rel = err / np.maximum(size, floor)
    nonzero = size > 0
    failing = np.argwhere(excess > 0)
    order = np.argsort(-excess[tuple(failing.T)], kind="stable") if failing.size else []
    failures = [
        Failure(
            tuple(int(i) for i in failing[k]),
            float(numerical[tuple(failing[k])]),
            float(analytic[tuple(failing[k])]),
        )
        for k in order
    ]
    return TensorCheck(
        name=name,
        shape=tuple(numerical.shape),
        checked=int(err.size),
        max_abs_error=float(err.max(initial=0.0)),
        max_rel_error=float(rel.max(initial=0.0)),
        passed=not failures,
        worst_index=tuple(int(i) for i in worst),
        numerical=float(numerical[worst]) if err.size else 0.0,
        analytic=float(analytic[worst]) if err.size else 0.0,
        failing=len(failures),
        rel_error=raw_relative_error(numerical, analytic, atol),
        below_atol=float(np.mean(size[nonzero] < atol)) if nonzero.any() else 0.0,
        failures=failures,
        numerical_grad=numerical,
        analytic_grad=analytic,
    )


def raw_relative_error(
    numerical: np.ndarray, analytic: np.ndarray, atol: float, skip: list[tuple] = ()
) -> float:
    """max |num - ana| / max(|num|, |ana|) without a floor, over the values above the
    rounding noise of finite differences (atol / 100), leaving out the indices ``skip``."""
    err = np.abs(numerical - analytic)
    size = np.maximum(np.abs(numerical), np.abs(analytic))
    seen = size >= atol / 100
    for index in skip:
        seen[index] = False
    return float((err[seen] / size[seen]).max(initial=0.0))


@dataclass
class GradcheckReport:
    """All tensors' verdicts for one layer; ``print(report)`` shows a table, the worst
    failures and the notes; :meth:`error_map` and :meth:`plot` show where errors sit."""

    layer: str
    mode: str
    eps: float
    atol: float
    rtol: float
    checks: list[TensorCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # kinks skipped, warnings
    top: int = 5  # failures printed per tensor

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    def check(self, tensor: str | None = None) -> TensorCheck:
        """The verdict of ``tensor`` (its name, quotes optional), or the first that fails."""
        if tensor is None:
            return next((c for c in self.checks if not c.passed), self.checks[0])
        for c in self.checks:
            if tensor in (c.name, c.name.strip("'")):
                return c
        raise KeyError(
            f"gradcheck {self.layer}: no tensor {tensor!r}; it has {[c.name for c in self.checks]}"
        )

    def error_map(self, tensor: str | None = None) -> np.ndarray:
        """|numerical - analytic| of ``tensor`` as a 2-D map: an image-shaped (N, H, W, C)
        tensor summed over N and C to (H, W); 3-D summed over the last axis; 1-D as a row.
        Directional checks have no map (their errors are per direction)."""
        c = self.check(tensor)
        if self.mode.startswith("directional"):
            raise ValueError(f"gradcheck {self.layer}: a directional check has no error map")
        err = np.abs(c.numerical_grad - c.analytic_grad)
        if err.ndim == 4:
            return err.sum(axis=(0, 3))
        if err.ndim == 3:
            return err.sum(axis=-1)
        return err.reshape(1, -1) if err.ndim < 2 else err.reshape(err.shape[0], -1)

    def plot(self, path: str | None = None, tensor: str | None = None) -> object:
        """A heat map of :meth:`error_map` (matplotlib, imported only here); saved to
        ``path`` if given. Returns the figure."""
        from .plot import plot_error_map

        c = self.check(tensor)
        state = "passed" if c.passed else f"{c.mismatches} mismatches"
        title = f"{self.layer}: gradient of {c.name} ({state})"
        return plot_error_map(self.error_map(c.name), title, len(c.shape) in (3, 4), path)

    def __str__(self) -> str:
        head = (
            f"gradcheck {self.layer}: {self.mode}, eps {self.eps:g}, atol {self.atol:g}, "
            f"rtol {self.rtol:g}"
        )
        rows = [
            (
                "tensor",
                "shape",
                "checked",
                "failing",
                "kinks",
                "max abs err",
                "max rel err",
                "rel err, no floor",
                "result",
            )
        ]
        for c in self.checks:
            rows.append(
                (
                    c.name,
                    str(c.shape),
                    str(c.checked),
                    str(c.failing),
                    str(c.kinks),
                    f"{c.max_abs_error:.2e}",
                    f"{c.max_rel_error:.2e}",
                    f"{c.rel_error:.2e}",
                    "ok" if c.passed else "FAIL",
                )
            )
        lines = [head, *format_table(rows)]
        where = "direction" if self.mode.startswith("directional") else "element"
        for c in self.checks:
            shown = [f for f in c.failures if not f.kink][: self.top] or (
                c.failures[: self.top] if not c.passed else []
            )
            for f in shown:
                lines.append(
                    f"  {c.name} {where} {f.index}: numerical {f.numerical:.6g}, "
                    f"analytic {f.analytic:.6g}: {f.label}"
                )
            if len(shown) < c.mismatches:
                lines.append(f"  ... and {c.mismatches - len(shown)} more mismatches in {c.name}")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])
