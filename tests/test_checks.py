"""The shared registry of checks: what `numpy-unet gradcheck`, `numpy-unet grade` and a
student copy's tests run, and the references it judges by."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet.gradcheck import away_from_kinks
from numpy_unet.layers import MaxPooling2D, ReLU
from numpy_unet.layers.loops import (
    conv2d_forward_loops,
    conv2d_transpose_forward_loops,
    maxpool_backward_loops,
    maxpool_forward_loops,
)
from numpy_unet.teach.checks import CHECKS, TIES, TIES_DX, package_lib, random_biases
from numpy_unet.teach.course import FORWARD_TASKS, TASKS
from numpy_unet.teach.runner import decode, encode, perform
from numpy_unet.teach.selfcheck import builtin_checks

CASES = [(exercise, case) for exercise, cases in CHECKS.items() for case in cases]
BACKWARD = [(e, c) for e, c in CASES if e.endswith("_backward")]
FORWARD = [(e, c) for e, c in CASES if e.endswith("_forward")]


@pytest.mark.parametrize(
    ("exercise", "case"), BACKWARD, ids=[f"{e}: {c.name}" for e, c in BACKWARD]
)
def test_every_backward_case_passes_on_the_package(exercise, case):
    verdict = case.run(package_lib())
    assert verdict.items and verdict.passed, verdict.items


def _by_formula(exercise: str, trial: dict) -> np.ndarray:
    """The forward cases' expected outputs, from formulas and loops independent of the
    layers (the registry itself takes them from the reference layers)."""
    x, kw, p = trial["inputs"], trial["kwargs"], trial["params"]
    if exercise == "relu_forward":
        return np.maximum(x, 0)
    if exercise == "sigmoid_forward":
        return np.exp(-np.logaddexp(0, -x))
    if exercise == "softmax_forward":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    if exercise == "conv2d_forward":
        return conv2d_forward_loops(x, p["kernel"], p["bias"], kw["padding"])
    if exercise == "conv2d_transpose_forward":
        k, s = kw["kernel_size"], kw["strides"]
        full = conv2d_transpose_forward_loops(x, p["kernel"], p["bias"], (s, s))
        if kw["padding"] == "valid":
            return full
        top = max(k - s, 0) // 2  # Keras: the smaller half on top
        return full[:, top : top + x.shape[1] * s, top : top + x.shape[2] * s]
    if exercise == "maxpool_forward":
        if kw.get("padding") == "same":  # 3x3 stride 2 on 7x6: Keras's -inf pads
            x = np.pad(x, ((0, 0), (1, 1), (0, 1), (0, 0)), constant_values=-np.inf)
            return maxpool_forward_loops(x, (3, 3), (2, 2))[0]
        return maxpool_forward_loops(x, (2, 2), (2, 2))[0]
    if exercise == "upsampling_forward":
        return np.repeat(np.repeat(x, 2, axis=1), 3, axis=2)
    if exercise == "concatenate_forward":
        return np.concatenate(x, -1)
    if exercise == "cropping_forward":
        return x[:, 1:4, 0:4]
    assert exercise == "dropout_forward"
    keep = np.random.default_rng(kw["seed"]).random(x.shape) >= kw["rate"]
    return np.where(keep, x / (1 - kw["rate"]), 0.0)  # inverted dropout


@pytest.mark.parametrize(("exercise", "case"), FORWARD, ids=[f"{e}: {c.name}" for e, c in FORWARD])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_forward_reference_agrees_with_an_independent_formula(exercise, case, seed):
    lib = package_lib()
    trial, expected = case.prepare(lib, seed)
    np.testing.assert_allclose(expected["output"], _by_formula(exercise, trial), rtol=1e-12)
    assert all(i.passed for i in case.judge(expected, perform(lib, trial)))


def test_the_stated_rules_are_the_rules():
    x = np.array([-1.0, 0.0, 2.0, 0.0, -0.0, 3.0]).reshape(1, 1, 6, 1)
    rule = {c.name: c for c in CHECKS["relu_backward"]}["relu at 0"].rule
    np.testing.assert_array_equal(rule({})["input"], (x > 0) * 5.0)
    _, where = maxpool_forward_loops(TIES, (2, 2), (2, 2))
    dy = np.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    np.testing.assert_array_equal(TIES_DX, maxpool_backward_loops(dy, where, TIES.shape))


def test_the_registry_has_checks_for_every_exercise_and_no_other():
    assert set(CHECKS) == set(TASKS) | set(FORWARD_TASKS)
    assert all(len(cases) >= 1 for cases in CHECKS.values())
    names = [(e, c.name) for e, c in CASES]
    assert len(names) == len(set(names))  # case names are unique within an exercise


def test_a_seed_draws_other_inputs_and_the_same_seed_the_same():
    case = CHECKS["conv2d_backward"][0]
    lib = package_lib()
    a, b, c = (case.make(lib, case.rng(seed)) for seed in (0, 0, 1))
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    np.testing.assert_array_equal(a["params"]["kernel"], b["params"]["kernel"])
    assert not np.allclose(a["inputs"], c["inputs"])


def test_selfcheck_runs_the_registrys_backward_cases():
    reports = list(builtin_checks())
    assert len(reports) == len(BACKWARD) - len(CHECKS["unet_backward"])
    assert len(list(builtin_checks(include_unet=True))) == len(BACKWARD)


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


def test_judging_refuses_wrong_shapes_missing_and_non_finite_values():
    case = CHECKS["sigmoid_backward"][0]
    lib = package_lib()
    trial, expected = case.prepare(lib, 0)
    good = perform(lib, trial)["input"]
    details = [
        case.judge(expected, given)[0].detail
        for given in ({}, {"input": good[:1]}, {"input": np.where(good > 0, np.nan, good)})
    ]
    assert details[0] == "not checked: the gradient is missing"
    assert details[1] == f"shape {good[:1].shape}, expected {good.shape}"
    assert details[2].endswith(f"of {good.size} values are not finite")


def test_the_wire_format_round_trips_and_refuses_what_it_cannot_carry():
    sent = {"a": [np.arange(6.0).reshape(2, 3), np.array(3, np.int64)], "b": None, "c": "x"}
    back = decode(encode(sent))
    np.testing.assert_array_equal(back["a"][0], sent["a"][0])
    assert back["a"][1].dtype == np.int64 and back["b"] is None and back["c"] == "x"
    with pytest.raises(TypeError, match="dtype object"):
        encode(np.array([None]))
    data = bytearray(encode({"a": np.zeros(4)}))
    for broken in (bytes(data[:-8]), b"\xff" * 8 + bytes(data[8:]), b""):
        with pytest.raises(ValueError):
            decode(broken)


def test_away_from_kinks_and_random_biases_keep_values_off_zero():
    x = np.array([-1.0, -1e-4, 0.0, 2e-4, 3e-3])
    np.testing.assert_allclose(away_from_kinks(x), [-1.0, -1.1e-3, 1e-3, 1.2e-3, 3e-3])

    class Model:
        params = {"a/kernel": np.zeros(3), "a/bias": np.zeros(50)}

    random_biases(Model(), seed=0)
    assert not Model.params["a/kernel"].any()
    assert np.abs(Model.params["a/bias"]).min() >= 1e-4
