"""What the gradient checker takes (functions, several outputs, float32 layers, forwards
without `training`), what it says when it cannot check, what its report shows, and the
command for a layer in a user's file."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from numpy_unet import GradcheckError, gradcheck
from numpy_unet.app.cli import main
from numpy_unet.gradcheck import ModelWithLoss, numerical_gradient
from numpy_unet.layers import Conv2D, Layer, Sigmoid
from numpy_unet.losses import BinaryCrossentropy


def polar(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two inputs, two outputs of different shapes: (x * y, sum of sin(x) + y**2)."""
    return x * y, np.sum(np.sin(x) + y**2, axis=-1)


def polar_vjp(dys: tuple, x: np.ndarray, y: np.ndarray, bug: bool = False) -> tuple:
    da, db = dys
    db = db[..., None]
    dx = da * y + db * np.cos(x)
    dy = da * x + db * 2 * y * (1.5 if bug else 1.0)
    return dx, dy


def test_a_plain_function_with_two_outputs_and_its_vjp():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    report = gradcheck(polar, (x, y), vjp=polar_vjp)
    assert report.passed and [c.name for c in report.checks] == ["input 0", "input 1"]
    assert report.layer == "polar"
    buggy = gradcheck(
        polar, (x, y), vjp=lambda d, a, b: polar_vjp(d, a, b, bug=True), raise_exception=False
    )
    assert buggy.check("input 0").passed and not buggy.check("input 1").passed
    with pytest.raises(TypeError, match="pass its vector-Jacobian product as vjp"):
        gradcheck(polar, (x, y))


def test_a_layer_with_several_outputs_gets_one_dy_per_output():
    class Split(Layer):
        def forward(self, x: np.ndarray) -> tuple:  # no training argument either
            self.x = x
            return x**2, 3 * x[..., :1]

        def backward(self, dys: tuple) -> np.ndarray:
            dsq, dfirst = dys
            dx = 2 * self.x * dsq
            dx[..., :1] += 3 * dfirst
            return dx

    x = np.random.default_rng(1).standard_normal((2, 3, 3, 2))
    assert gradcheck(Split(), x).passed
    with pytest.raises(TypeError, match="takes no training"):
        gradcheck(Split(), x, training=True)


def test_a_float32_layer_is_checked_on_a_float64_copy():
    conv = Conv2D(2, 3, padding="same", seed=0)  # float32, the default
    conv.build((None, 5, 5, 2))
    x = np.random.default_rng(2).standard_normal((1, 5, 5, 2)).astype(np.float32)
    with pytest.raises(TypeError, match="dtype='float64' to check a float64 copy"):
        gradcheck(conv, x)
    report = gradcheck(conv, x, dtype="float64")
    assert report.passed and "float64 copy" in report.notes[0]
    assert conv.params["kernel"].dtype == np.float32  # the layer itself is untouched


def test_nan_in_forward_and_parameters_not_read_in_place_get_clear_errors():
    class Log(Layer):
        def forward(self, x, training=False):
            self.x = x
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.log(x)

        def backward(self, dy):
            return dy / self.x

    with pytest.raises(GradcheckError, match="forward gave 2 NaN or infinite values"):
        gradcheck(Log(), np.array([[1.0, -1.0, 0.0, 2.0]]))

    class Copies(Layer):
        """params returns copies: the checker's nudges never reach forward."""

        def __init__(self):
            super().__init__("copies")
            self._w = np.array([2.0, -1.0])

        @property
        def params(self):
            return {"w": self._w.copy()}

        @params.setter
        def params(self, value):
            pass

        def forward(self, x, training=False):
            self.x = x
            return x * self._w

        def backward(self, dy):
            self.grads = {"w": (dy * self.x).sum(axis=0)}
            return dy * self._w

    class CachedTranspose(Layer):
        """forward keeps W.T from its first call."""

        def __init__(self):
            super().__init__("cached")
            self.params = {"w": np.random.default_rng(0).standard_normal((3, 2))}
            self.wt = None

        def forward(self, x, training=False):
            if self.wt is None:
                self.wt = self.params["w"].T.copy()
            self.x = x
            return x @ self.wt

        def backward(self, dy):
            self.grads = {"w": (dy.T @ self.x)}
            return dy @ self.params["w"].T.T

    x = np.random.default_rng(3).standard_normal((4, 2))
    for layer, xx in [(Copies(), x), (CachedTranspose(), np.random.default_rng(4).random((4, 2)))]:
        with pytest.raises(GradcheckError, match=r"forward does not read params\['w'\]"):
            gradcheck(layer, xx)


def test_the_report_says_how_many_fail_which_and_keeps_both_arrays():
    class Doubled(Sigmoid):
        def backward(self, dy):
            dx = super().backward(dy)
            dx[0, 1] *= 2  # two wrong elements: (0, 1, 0) and (0, 1, 1)
            return dx

    x = np.random.default_rng(5).standard_normal((2, 3, 2))
    report = gradcheck(Doubled(), x, raise_exception=False)
    c = report.check("input")
    assert c.failing == c.mismatches == 2 and c.kinks == 0
    assert sorted(f.index for f in c.failures) == [(0, 1, 0), (0, 1, 1)]
    np.testing.assert_allclose(c.analytic_grad[0, 1], 2 * c.numerical_grad[0, 1], rtol=1e-6)
    text = str(report)
    assert "failing" in text and "input element (0, 1, " in text and ": mismatch" in text
    heat = report.error_map()
    assert heat.shape == (2, 3) and heat[0, 1] > 1e6 * (heat.sum() - heat[0, 1])


def test_the_plot_draws_the_error_map(tmp_path):
    class LastRow(Sigmoid):
        def backward(self, dy):
            dx = super().backward(dy)
            dx[:, -1] *= 1.5
            return dx

    report = gradcheck(
        LastRow(), np.random.default_rng(6).standard_normal((1, 5, 4, 2)), raise_exception=False
    )
    fig = report.plot(tmp_path / "where.png")
    assert (tmp_path / "where.png").stat().st_size > 1000
    assert "gradient of input" in fig.axes[0].get_title()


def test_a_bug_under_atol_passes_the_rule_but_gets_a_warning():
    class Chain:
        """LeakyReLU (slope doubled on the last row), scaled by 0.01, then a sigmoid: a mean
        BCE over 1024 pixels makes every gradient smaller than atol, and hides the bug."""

        params, grads = {}, {}

        def __init__(self):
            self.sigmoid = Sigmoid()

        def forward(self, x, training=False):
            self.x = x
            return self.sigmoid.forward(0.01 * np.where(x > 0, x, 0.2 * x))

        def backward(self, dy):
            dz = 0.01 * self.sigmoid.backward(dy) * np.where(self.x > 0, 1.0, 0.2)
            dz[:, -1] *= 2
            return dz

    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 16, 16, 1))
    y = (rng.random(x.shape) > 0.5) * 1.0
    report = gradcheck(ModelWithLoss(Chain(), BinaryCrossentropy(), y), x, raise_exception=False)
    c = report.check("input")
    assert report.passed and c.below_atol > 0.5 and c.rel_error > 0.3  # hidden, yet visible
    assert any(n.startswith("warning: ") and "below atol" in n for n in report.notes)


def test_numerical_gradient_is_public():
    a = np.array([1.0, 2.0])
    central, right, left = numerical_gradient(a, lambda: (a**2,), (np.ones(2),))
    np.testing.assert_allclose(central, [2, 4], atol=1e-8)
    np.testing.assert_allclose(right, [2, 4], atol=1e-5)


USER_FILE = '''
import numpy as np


class LeakyReLU:
    """A user's layer: no base class, no arguments needed."""

    def __init__(self, alpha=0.2, bug=False):
        self.alpha, self.bug = alpha, bug
        self.params, self.grads = {}, {}

    def forward(self, x, training=False):
        self.x = x
        return np.where(x > 0, x, self.alpha * x)

    def backward(self, dy):
        dx = dy * np.where(self.x > 0, 1.0, self.alpha)
        if self.bug:
            dx[:, -1] *= 2
        return dx
'''


def test_the_command_checks_a_layer_in_a_users_file(tmp_path, capsys):
    path = tmp_path / "mylayers.py"
    path.write_text(textwrap.dedent(USER_FILE))
    target = f"{path}:LeakyReLU"
    assert main(["gradcheck", target, "--shape", "2,8,8,3"]) == 0
    out = capsys.readouterr().out
    assert "gradcheck LeakyReLU" in out and "input" in out and "ok" in out
    plot = tmp_path / "where.png"
    args = ["--args", json.dumps({"bug": True}), "--plot", str(plot), "--shape", "2,8,8,3"]
    assert main(["gradcheck", target, *args]) == 1
    out = capsys.readouterr().out
    assert "mismatch" in out and plot.stat().st_size > 1000
    assert main(["gradcheck", target, "--shape", "2,8,8,3", "--directional", "3"]) == 0
    assert "directional (3 random directions)" in capsys.readouterr().out
    for bad, message in [
        (f"{tmp_path / 'none.py'}:X", "no file"),
        (f"{path}:Missing", "defines no Missing"),
        (str(path), "FILE.py:NAME"),
    ]:
        assert main(["gradcheck", bad, "--shape", "2,3"]) == 2
        assert message in capsys.readouterr().err
    assert main(["gradcheck", target]) == 2
    assert "--shape" in capsys.readouterr().err


def test_the_command_without_a_file_checks_the_builtin_layers(capsys):
    assert main(["gradcheck"]) == 0
    assert "All gradients agree." in capsys.readouterr().out


def test_a_users_file_may_import_its_neighbours(tmp_path, capsys):
    (tmp_path / "helpers.py").write_text("ALPHA = 0.3\n")
    (tmp_path / "layer.py").write_text(
        "from helpers import ALPHA\n" + textwrap.dedent(USER_FILE).replace("0.2", "ALPHA")
    )
    assert main(["gradcheck", f"{tmp_path / 'layer.py'}:LeakyReLU", "--shape", "4,5"]) == 0
