"""The shared registry of checks: what `numpy-unet gradcheck` and `numpy-unet grade` run."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet.gradcheck import away_from_kinks
from numpy_unet.layers import MaxPooling2D, ReLU
from numpy_unet.teach.checks import CHECKS, package_lib, random_biases
from numpy_unet.teach.course import FORWARD_TASKS, TASKS
from numpy_unet.teach.selfcheck import builtin_checks

CASES = [(exercise, case) for exercise, cases in CHECKS.items() for case in cases]


@pytest.mark.parametrize(("exercise", "case"), CASES, ids=[f"{e}: {c.name}" for e, c in CASES])
def test_every_case_of_the_registry_passes(exercise, case):
    report = case.run(package_lib())
    assert report.checks and report.passed, str(report)


def test_the_registry_has_checks_for_every_exercise_and_no_other():
    assert set(CHECKS) == set(TASKS) | set(FORWARD_TASKS)
    assert all(len(cases) >= 1 for cases in CHECKS.values())
    names = [(e, c.name) for e, c in CASES]
    assert len(names) == len(set(names))  # case names are unique within an exercise


def test_selfcheck_runs_the_registrys_gradient_checks():
    backward = [c for e, c in CASES if e.endswith("_backward")]
    reports = list(builtin_checks())
    assert len(reports) == len(backward) - len(CHECKS["unet_backward"])
    assert len(list(builtin_checks(include_unet=True))) == len(backward)


def test_a_broken_backward_fails_its_cases(monkeypatch):
    monkeypatch.setattr(ReLU, "backward", lambda self, dy: dy)  # forgets the mask
    assert not any(case.run(package_lib()).passed for case in CHECKS["relu_backward"])


def test_the_tie_rule_fails_a_pooling_that_feeds_every_tied_maximum(monkeypatch):
    def every_maximum(self, dy):
        xp, y, _, _ = self._take_cache()
        dx = np.zeros_like(xp)
        for i, j in np.ndindex(2, 2):
            self._window_offset(dx, i, j, *dy.shape[1:3])[...] += dy * (
                self._window_offset(xp, i, j, *dy.shape[1:3]) == y
            )
        return dx

    monkeypatch.setattr(MaxPooling2D, "backward", every_maximum)  # 2x2 'valid' windows only
    cases = {c.name: c for c in CHECKS["maxpool_backward"]}
    assert cases["2x2"].run(package_lib()).passed  # random inputs have no ties
    assert not cases["ties"].run(package_lib()).passed  # the stated rule catches it


def test_away_from_kinks_and_random_biases_keep_values_off_zero():
    x = np.array([-1.0, -1e-4, 0.0, 2e-4, 3e-3])
    np.testing.assert_allclose(away_from_kinks(x), [-1.0, -1.1e-3, 1e-3, 1.2e-3, 3e-3])

    class Model:
        params = {"a/kernel": np.zeros(3), "a/bias": np.zeros(50)}

    random_biases(Model(), seed=0)
    assert not Model.params["a/kernel"].any()
    assert np.abs(Model.params["a/bias"]).min() >= 1e-4
