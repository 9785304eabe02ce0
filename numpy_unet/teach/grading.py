"""The gradient tests that grade the course exercises, one per exercise.

The checks are the shared registry :data:`numpy_unet.teach.checks.CHECKS`, one per exercise:
each builds the layer (or loss, or a small UNet) in float64 and runs the gradient checker on
a few configurations, raising on the first failure. :func:`run` runs them all and reports,
for each exercise, whether it passed and why not. ``numpy-unet grade DIR`` runs this module
inside a student's copy of the package, so the checks exercise the student's code. The
forward checks at the end must pass even in an untouched exercise copy.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable

import numpy as np

from ..model import UNet
from .checks import CHECKS

FORWARD_CHECKS: dict[str, Callable[[], None]] = {}


def _forward_check(fn: Callable[[], None]) -> Callable[[], None]:
    FORWARD_CHECKS[fn.__name__.strip("_")] = fn
    return fn


@_forward_check
def _unet_forward_shapes() -> None:
    x = np.random.default_rng(0).standard_normal((1, 16, 16, 1)).astype("float32")
    y = UNet((16, 16, 1), filters=2, depth=2, seed=0).forward(x)
    assert y.shape == (1, 16, 16, 1), y.shape


def run() -> dict[str, dict]:
    """Run every check; ``{name: {"passed": bool, "kind": ..., "error": str}}``."""
    results = {}
    for kind, checks in (("exercise", CHECKS), ("forward", FORWARD_CHECKS)):
        for name, fn in checks.items():
            try:
                fn()  # an exercise's check raises GradcheckError on its first failure
                results[name] = {"kind": kind, "passed": True, "error": ""}
            except Exception as err:  # noqa: BLE001 - any failure is a failed check
                last = traceback.format_exception_only(type(err), err)[-1].strip()
                results[name] = {"kind": kind, "passed": False, "error": last[:300]}
    return results


if __name__ == "__main__":
    print(json.dumps(run()))
