"""Optimizers: one step against a hand-computed update, momentum, state save/restore."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet.optimizers import SGD, Adam, CosineDecay, get_optimizer


class Params:
    """The smallest model an optimizer accepts: params and grads dicts."""

    def __init__(self, p: np.ndarray, g: np.ndarray) -> None:
        self.params, self.grads = {"w": p}, {"w": g}


def test_adam_first_and_second_step_by_hand():
    p = np.array([1.0, -2.0, 0.5])
    g = np.array([0.1, -0.4, 0.0])
    model = Params(p, g)
    opt = Adam(learning_rate=0.01)  # beta_1 0.9, beta_2 0.999, epsilon 1e-7
    opt.step(model)
    # t = 1: m = 0.1 g, v = 0.001 g^2, alpha = 0.01 sqrt(0.001) / 0.1
    m, v = 0.1 * g, 0.001 * g**2
    alpha = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9)
    expected = np.array([1.0, -2.0, 0.5]) - alpha * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    # each non-zero coordinate moved by almost exactly lr (Adam's first step is ~lr * sign(g))
    np.testing.assert_allclose(np.abs(p - [1.0, -2.0, 0.5])[:2], 0.01, rtol=1e-4)
    assert p[2] == 0.5  # zero gradient, no move
    g2 = np.array([0.2, 0.2, 0.2])
    model.grads["w"] = g2
    before = p.copy()
    opt.step(model)
    m = 0.9 * m + 0.1 * g2
    v = 0.999 * v + 0.001 * g2**2
    alpha = 0.01 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    np.testing.assert_allclose(p, before - alpha * m / (np.sqrt(v) + 1e-7), rtol=1e-12)
    assert opt.iterations == 2


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_by_hand(nesterov):
    p, g = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    model = Params(p, g)
    opt = SGD(learning_rate=0.1, momentum=0.9, nesterov=nesterov)
    opt.step(model)  # u = -0.1 g
    u = -0.1 * g
    first = np.array([1.0, 2.0]) + (0.9 * u - 0.1 * g if nesterov else u)
    np.testing.assert_allclose(p, first, rtol=1e-12)
    opt.step(model)  # u = 0.9 u - 0.1 g
    u = 0.9 * u - 0.1 * g
    np.testing.assert_allclose(p, first + (0.9 * u - 0.1 * g if nesterov else u), rtol=1e-12)


def test_plain_sgd_and_float32_stays_float32():
    p = np.array([1.0, 2.0], np.float32)
    SGD(0.5).step(Params(p, np.array([1.0, -1.0], np.float32)))
    np.testing.assert_array_equal(p, [0.5, 2.5])
    assert p.dtype == np.float32
    q = np.ones(3, np.float32)
    Adam(1e-3).step(Params(q, np.ones(3, np.float32)))
    assert q.dtype == np.float32


def test_state_roundtrip_continues_identically():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(4) for _ in range(6)]
    a, b = Params(np.zeros(4), None), Params(np.zeros(4), None)
    opt_a, opt_b = Adam(0.01), Adam(0.01)
    for g in grads[:3]:
        a.grads["w"] = g
        opt_a.step(a)
    b.params["w"][...] = a.params["w"]
    opt_b.set_state({k: v.copy() for k, v in opt_a.get_state().items()})
    for g in grads[3:]:
        a.grads["w"] = b.grads["w"] = g
        opt_a.step(a)
        opt_b.step(b)
    np.testing.assert_array_equal(a.params["w"], b.params["w"])


def test_errors():
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        Adam(0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(0.1, momentum=1.0)
    with pytest.raises(RuntimeError, match="call model.backward"):
        Adam().step(type("M", (), {"params": {"w": np.zeros(1)}, "grads": {}})())
    with pytest.raises(ValueError, match="optimizer must be one of"):
        get_optimizer("rmsprop")
    assert get_optimizer("sgd", 0.5).learning_rate == 0.5


def test_an_optimizer_refuses_a_model_of_other_shapes():
    opt = Adam()
    opt.step(Params(np.zeros(3), np.ones(3)))
    with pytest.raises(ValueError, match="give each model its own optimizer"):
        opt.step(Params(np.zeros(4), np.ones(4)))


def test_cosine_decay_follows_keras_formula_and_drives_the_optimizer():
    schedule = CosineDecay(0.1, decay_steps=10, alpha=0.2)
    for t in (0, 3, 5, 10, 15):  # Keras: initial * ((1 - alpha) * 0.5 (1 + cos(pi t / T)) + alpha)
        cosine = 0.5 * (1 + np.cos(np.pi * min(t, 10) / 10))
        assert schedule(t) == pytest.approx(0.1 * (0.8 * cosine + 0.2), abs=1e-15)
    assert schedule(0) == pytest.approx(0.1) and schedule(10) == schedule(99) == pytest.approx(0.02)
    # plain SGD with the schedule: step t moves p by -schedule(t) * g, t = 0, 1, ...
    p = np.zeros(1)
    opt = SGD(schedule)
    for t in range(12):
        opt.step(Params(p, np.ones(1)))
        assert opt.learning_rate == schedule(t)
    np.testing.assert_allclose(p, -sum(schedule(t) for t in range(12)), rtol=1e-14)
    assert opt.get_config()["learning_rate"] == {
        "name": "CosineDecay",
        "initial_learning_rate": 0.1,
        "decay_steps": 10,
        "alpha": 0.2,
    }
    for bad, match in (
        (dict(initial_learning_rate=0, decay_steps=5), "initial_learning_rate must be positive"),
        (dict(initial_learning_rate=1, decay_steps=0), "decay_steps must be a positive int"),
        (dict(initial_learning_rate=1, decay_steps=5, alpha=2), "alpha must be in"),
    ):
        with pytest.raises(ValueError, match=match):
            CosineDecay(**bad)
