"""The shared registry of gradient checks: what `numpy-unet gradcheck` and `grade` run."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet.gradcheck import GradcheckError, away_from_kinks
from numpy_unet.layers import ReLU
from numpy_unet.teach.checks import CHECKS, random_biases
from numpy_unet.teach.course import TASKS
from numpy_unet.teach.selfcheck import builtin_checks


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_every_check_of_the_registry_passes(name):
    reports = CHECKS[name](False)
    assert reports and all(r.passed for r in reports), "\n".join(map(str, reports))


def test_the_registry_has_a_check_for_every_exercise_and_no_other():
    assert set(CHECKS) == set(TASKS)


def test_selfcheck_runs_the_registry():
    layers = [r.layer for r in builtin_checks()]
    assert len(layers) == sum(len(run(False)) for n, run in CHECKS.items() if n != "unet_backward")
    assert len(list(builtin_checks(include_unet=True))) == len(layers) + 1


def test_a_broken_backward_fails_its_check(monkeypatch):
    monkeypatch.setattr(ReLU, "backward", lambda self, dy: dy)  # forgets the mask
    assert not all(r.passed for r in CHECKS["relu_backward"](False))
    with pytest.raises(GradcheckError):
        CHECKS["relu_backward"](True)


def test_away_from_kinks_and_random_biases_keep_values_off_zero():
    x = np.array([-1.0, -1e-4, 0.0, 2e-4, 3e-3])
    np.testing.assert_allclose(away_from_kinks(x), [-1.0, -1.1e-3, 1e-3, 1.2e-3, 3e-3])

    class Model:
        params = {"a/kernel": np.zeros(3), "a/bias": np.zeros(50)}

    random_biases(Model(), seed=0)
    assert not Model.params["a/kernel"].any()
    assert np.abs(Model.params["a/bias"]).min() >= 1e-4
