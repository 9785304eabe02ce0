"""The checks of every layer, loss and a small UNet, in one registry, by course exercise.

``CHECKS`` maps an exercise name (``"conv2d_backward"``, ...) to its named :class:`Case` s.
A case *makes a trial* (plain data: a layer's class and arguments, its parameter values,
inputs, an upstream gradient; see :mod:`numpy_unet.teach.runner`), knows what the trial's
outcome should be, and *judges* an outcome, tensor by tensor. What a case expects is one of:

- ``"differences"``: every gradient, against central differences of a reference's forward
  (atol 1e-5, rtol 1e-3, as :func:`~numpy_unet.gradcheck.gradcheck`);
- ``"rule"``: a stated rule's values, written out for a fixed input (what a ReLU passes at
  exactly 0, where max pooling sends the gradient of a tie), to rounding;
- ``"reference"``: a forward pass's output, against the reference's, to rounding.

Four users:

- ``numpy-unet gradcheck`` (:func:`numpy_unet.teach.selfcheck.builtin_checks`): every
  backward case on this package's classes, each its own reference (a gradient check);
- ``numpy-unet grade`` (:mod:`numpy_unet.teach.grading`): the trials run on the student's
  classes in another process; the reference is this package, and the verdict is made here;
- a student copy's ``tests/``: the same trials and expected values, stored by
  ``numpy-unet exercises`` (the copy holds no code that computes an answer);
- ``tests/test_checks.py``, which also checks the references against independent formulas.

Inputs are float64 and kept off the ReLU's kink (:func:`away_from_kinks`), except in the
cases that test what happens on it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from types import SimpleNamespace

import numpy as np

from ..gradcheck import _generators, away_from_kinks, compare, numerical_gradient
from .runner import CLASSES, construct, forward, input_names, inputs_of, perform

TOLERANCES = {"differences": (1e-5, 1e-3), "rule": (1e-12, 1e-9), "reference": (1e-12, 1e-9)}


def package_lib() -> SimpleNamespace:
    """This package's own classes, as the cases take them."""
    from .. import layers, losses
    from ..model import UNet

    found = {name: getattr(layers, name, None) or getattr(losses, name, None) for name in CLASSES}
    return SimpleNamespace(**(found | {"UNet": UNet}))


@dataclass
class Item:
    """One scored tensor of one case: ``"conv2d 3x3 'same': 'kernel'"``."""

    name: str
    passed: bool
    detail: str = ""  # why it failed: the worst element, expected and given
    checked: int = 0  # values compared
    rel_error: float = float("nan")  # the largest relative error (as gradcheck reports it)


@dataclass
class Verdict:
    """A case's items, as :meth:`Case.run` returns them."""

    case: str
    against: str
    items: list[Item] = field(default_factory=list)
    subject: str = ""  # the class checked: "Conv2D", "DiceLoss", "UNet" ...

    @property
    def passed(self) -> bool:
        return bool(self.items) and all(i.passed for i in self.items)

    @property
    def max_rel_error(self) -> float:
        return max((i.rel_error for i in self.items), default=float("nan"))


@dataclass
class Case:
    """One named configuration of an exercise's checks.

    ``make(lib, rng)`` returns a trial (``lib``'s classes may set its parameters' values);
    ``rule(trial)``, for a rule case, the expected values; ``labels`` names its tensors.
    """

    exercise: str
    name: str
    make: Callable[[SimpleNamespace, np.random.Generator], dict]
    against: str = "differences"
    rule: Callable[[dict], dict[str, np.ndarray]] | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def rng(self, seed: int, attempt: int = 0) -> np.random.Generator:
        """The case's own random stream for ``seed``: the same on every machine."""
        return np.random.default_rng(
            [seed, zlib.crc32(f"{self.exercise}/{self.name}".encode()), attempt]
        )

    def expected(self, trial: dict, reference: SimpleNamespace) -> dict[str, np.ndarray]:
        """What the trial's outcome should hold, tensor by tensor, from ``reference``."""
        if self.against == "rule":
            return self.rule(trial)
        if self.against == "reference":
            return {"output": perform(reference, trial)["output"]}
        return by_differences(trial, reference)

    def prepare(self, reference: SimpleNamespace, seed: int) -> tuple[dict, dict]:
        """A trial for ``seed`` and its expected values. A trial on which the reference fails
        its own gradient check (an input within eps of a kink) is drawn again."""
        for attempt in range(5):
            trial = self.make(reference, self.rng(seed, attempt))
            expected = self.expected(trial, reference)
            if self.against != "differences":
                return trial, expected
            if all(i.passed for i in self.judge(expected, perform(reference, trial))):
                return trial, expected
        raise RuntimeError(f"{self.exercise} {self.name}: the reference fails its own check")

    def judge(self, expected: dict[str, np.ndarray], given: dict) -> list[Item]:
        """One item per expected tensor: ``given`` (the code under test) against it."""
        return judge(self.name, self.against, self.labels, expected, given)

    def run(
        self, lib: SimpleNamespace, reference: SimpleNamespace | None = None, seed: int = 0
    ) -> Verdict:
        """Check ``lib``'s classes in this process (a gradient case: against differences of
        ``lib``'s own forward, unless a ``reference`` is given). Errors are failed items."""
        reference = reference or (lib if self.against != "reference" else None)
        if reference is None:
            raise ValueError(f"{self.exercise} {self.name}: a forward case needs a reference")
        verdict = Verdict(self.name, self.against)
        try:
            trial = self.make(lib, self.rng(seed))
            verdict.subject = trial["subject"]
            expected = self.expected(trial, reference)
            verdict.items = self.judge(expected, perform(lib, trial))
        except Exception as err:  # noqa: BLE001 - a student's code may raise anything
            message = f"{type(err).__name__}: {err}"[:300]
            verdict.items = [Item(f"{self.name}", False, message)]
        return verdict


@cache
def prepared(exercise: str, seed: int) -> list[tuple[Case, dict, dict]]:
    """(case, trial, expected) for every case of ``exercise``, with this package as the
    reference (kept: the grader and ``numpy-unet exercises`` ask for the same again)."""
    reference = package_lib()
    return [(case, *case.prepare(reference, seed)) for case in CHECKS[exercise]]


def by_differences(trial: dict, reference: SimpleNamespace, eps: float = 1e-6) -> dict:
    """Every gradient of the trial by central differences of ``reference``'s forward,
    with the trial's upstream gradient (random draws replayed, as ``gradcheck`` does)."""
    subject = construct(reference, trial)
    xs = inputs_of(trial)
    generators = _generators(subject)
    states = [g.bit_generator.state for g in generators]

    def run() -> tuple[np.ndarray]:
        for g, s in zip(generators, states):
            g.bit_generator.state = s
        return (np.array(forward(subject, trial, xs, reference)[0], dtype=float, copy=True),)

    dys = (np.asarray(1.0 if trial["kind"] == "loss" else trial["dy"], dtype=float),)
    tensors = dict(zip(input_names(trial), xs))
    tensors |= {f"'{key}'": subject.params[key] for key in trial.get("params", {})}
    return {name: numerical_gradient(a, run, dys, eps)[0] for name, a in tensors.items()}


def judge(case: str, against: str, labels: dict, expected: dict, given: dict) -> list[Item]:
    """Compare each expected tensor with the given one: shape, finite values, then every
    element within the tolerances of ``against``."""
    atol, rtol = TOLERANCES[against]
    items = []
    for key, want in expected.items():
        name = f"{case}: {labels.get(key, key)}"
        got = given.get(key)
        if got is None:
            missing = "the output" if key == "output" else "the gradient"
            items.append(Item(name, False, f"not checked: {missing} is missing"))
        elif got.shape != want.shape:
            items.append(Item(name, False, f"shape {got.shape}, expected {want.shape}"))
        elif not np.isfinite(got).all():
            bad = int((~np.isfinite(got)).sum())
            items.append(Item(name, False, f"{bad} of {got.size} values are not finite"))
        else:
            c = compare(key, want, got, atol, rtol)
            words = ("expected", "got") if against != "differences" else ("numerical", "analytic")
            detail = (
                ""
                if c.passed
                else (
                    f"element {c.worst_index}: {words[0]} {c.numerical:.6g}, {words[1]} "
                    f"{c.analytic:.6g}"
                )
            )
            items.append(Item(name, c.passed, detail, c.checked, c.max_rel_error))
    return items


CHECKS: dict[str, list[Case]] = {}

# exercises whose checks need other exercises' code; the grader says so in their row
NEEDS = {
    "unet_backward": [
        "relu_backward",
        "sigmoid_backward",
        "conv2d_backward",
        "maxpool_backward",
        "upsampling_backward",
        "concatenate_backward",
        "dropout_backward",
        "bce_backward",
    ]
}


def case(exercise: str, name: str, against: str = "differences", **options: object) -> Callable:
    """Register ``make(lib, rng) -> trial`` as a case of ``exercise`` under ``name``."""

    def register(make: Callable) -> Callable:
        CHECKS.setdefault(exercise, []).append(Case(exercise, name, make, against, **options))
        return make

    return register


def x_of(*shape: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Standard normal float64 values of ``shape``, none within 1e-3 of 0."""
    return away_from_kinks(np.random.default_rng(seed).standard_normal(shape))


def probs_of(*shape: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Probabilities in [0.05, 0.95]: away from the losses' clipping."""
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape)


def random_biases(model: object, seed: int | np.random.Generator = 0, scale: float = 0.1) -> None:
    """Give every bias of ``model`` a small random value, none within 1e-4 of 0.

    With zero biases, a conv whose window sees only zeros (a dead ReLU's output, or
    padding) has a pre-activation of exactly 0: right on the ReLU's kink.
    """
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        if name.endswith("bias"):
            p[...] = scale * away_from_kinks(rng.standard_normal(p.shape), 1e-3)


def layer_trial(
    lib: SimpleNamespace,
    rng: np.random.Generator,
    subject: str,
    kwargs: dict,
    inputs: np.ndarray | list,
    training: bool = False,
    build: tuple | None = None,
    backward: bool = True,
) -> dict:
    """A layer's trial: built (and its biases randomised) by ``lib``, a random dy drawn."""
    trial = {
        "kind": "layer",
        "subject": subject,
        "kwargs": kwargs,
        "inputs": inputs,
        "training": training,
        "build": build,
        "params": {},
        "dy": None,
    }
    layer = construct(lib, trial)
    if layer.params:
        random_biases(layer, rng)
        trial["params"] = {k: np.array(p, copy=True) for k, p in layer.params.items()}
    if backward:
        y = forward(layer, trial, inputs_of(trial), lib)[0]
        trial["dy"] = rng.standard_normal(np.shape(y))
    return trial


def seed_of(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31))


# -- backward passes: against central differences, or a stated rule ------------------------
@case("relu_backward", "relu")
def _relu(lib, rng):
    return layer_trial(lib, rng, "ReLU", {"name": "relu"}, x_of(2, 4, 5, 3, seed=rng))


@case(
    "relu_backward",
    "relu at 0",
    "rule",
    labels={"input": "gradient of input at x = 0"},
    rule=lambda t: {"input": np.array([0.0, 0, 5, 0, 0, 5]).reshape(1, 1, 6, 1)},
)
def _relu_zero(lib, rng):
    """Keras's rule at the kink: x == 0 passes no gradient (x = -1, 0, 2, 0, -0, 3)."""
    trial = layer_trial(
        lib,
        rng,
        "ReLU",
        {"name": "relu at 0"},
        np.array([-1.0, 0.0, 2.0, 0.0, -0.0, 3.0]).reshape(1, 1, 6, 1),
    )
    trial["dy"] = np.full((1, 1, 6, 1), 5.0)
    return trial


@case("sigmoid_backward", "sigmoid")
def _sigmoid(lib, rng):
    return layer_trial(lib, rng, "Sigmoid", {"name": "sigmoid"}, 2 * x_of(2, 4, 5, 3, seed=rng))


@case("softmax_backward", "softmax, 3 classes")
def _softmax(lib, rng):
    kwargs = {"name": "softmax, 3 classes"}
    return layer_trial(lib, rng, "Softmax", kwargs, 2 * x_of(2, 4, 5, 3, seed=rng))


@case("softmax_backward", "softmax, 2 classes")
def _softmax2(lib, rng):
    kwargs = {"name": "softmax, 2 classes"}
    return layer_trial(lib, rng, "Softmax", kwargs, 2 * x_of(2, 3, 4, 2, seed=rng))


def _conv(lib, rng, k: int, padding: str, hw: tuple, backward: bool = True) -> dict:
    kwargs = {
        "filters": 4,
        "kernel_size": k,
        "padding": padding,
        "dtype": "float64",
        "seed": seed_of(rng),
        "name": f"conv2d {k}x{k} '{padding}'",
    }
    x = x_of(2, *hw, 3, seed=rng)
    return layer_trial(lib, rng, "Conv2D", kwargs, x, build=(None, *hw, 3), backward=backward)


for _k, _padding, _hw, _label in [
    (3, "same", (5, 6), "conv2d 3x3 'same'"),
    (2, "same", (4, 5), "conv2d 2x2 'same' (even kernel)"),
    (3, "valid", (6, 5), "conv2d 3x3 'valid'"),
    (1, "valid", (3, 3), "conv2d 1x1"),
    (3, "same", (4, 7), "conv2d 3x3 'same', odd width"),
]:
    case("conv2d_backward", _label)(
        lambda lib, rng, k=_k, p=_padding, hw=_hw: _conv(lib, rng, k, p, hw)
    )


def _transpose(lib, rng, k: int, s: int, padding: str, backward: bool = True) -> dict:
    kwargs = {
        "filters": 3,
        "kernel_size": k,
        "strides": s,
        "padding": padding,
        "dtype": "float64",
        "seed": seed_of(rng),
        "name": f"conv2d_transpose {k}x{k} stride {s} '{padding}'",
    }
    x = x_of(2, 3, 4, 2, seed=rng)
    return layer_trial(lib, rng, "Conv2DTranspose", kwargs, x, build=x.shape, backward=backward)


for _k, _s, _padding in [(2, 2, "valid"), (3, 2, "same"), (3, 1, "valid")]:
    case("conv2d_transpose_backward", f"{_k}x{_k} stride {_s} '{_padding}'")(
        lambda lib, rng, k=_k, s=_s, p=_padding: _transpose(lib, rng, k, s, p)
    )


@case("maxpool_backward", "2x2")
def _maxpool(lib, rng):
    kwargs = {"pool_size": 2, "name": "maxpool 2x2"}
    return layer_trial(lib, rng, "MaxPooling2D", kwargs, x_of(2, 6, 5, 3, seed=rng))


@case("maxpool_backward", "3x3 stride 2 'same'")
def _maxpool_same(lib, rng):
    kwargs = {"pool_size": 3, "strides": 2, "padding": "same", "name": "maxpool 3x3/2 'same'"}
    return layer_trial(lib, rng, "MaxPooling2D", kwargs, x_of(1, 7, 6, 2, seed=rng))


TIES = np.array([[3, 3, 0, 1], [1, 0, 1, 1], [2, 5, 4, 4], [5, 2, 4, 4]], float)[None, :, :, None]
# where the rule sends dy = [[1, 2], [3, 4]]: each window's first maximum, row by row
TIES_DX = np.array([[1, 0, 0, 2], [0, 0, 0, 0], [0, 3, 4, 0], [0, 0, 0, 0]], float)[
    None, :, :, None
]


@case(
    "maxpool_backward",
    "ties",
    "rule",
    labels={"input": "gradient of input at tied maxima"},
    rule=lambda t: {"input": TIES_DX},
)
def _maxpool_ties(lib, rng):
    """The stated rule: a window's first maximum (row by row) gets all of dy."""
    trial = layer_trial(lib, rng, "MaxPooling2D", {"pool_size": 2, "name": "maxpool ties"}, TIES)
    trial["dy"] = np.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    return trial


@case("upsampling_backward", "2x2")
def _upsampling(lib, rng):
    kwargs = {"size": 2, "name": "upsampling 2x2"}
    return layer_trial(lib, rng, "UpSampling2D", kwargs, x_of(2, 3, 4, 2, seed=rng))


@case("upsampling_backward", "2x3")
def _upsampling23(lib, rng):
    kwargs = {"size": [2, 3], "name": "upsampling 2x3"}
    return layer_trial(lib, rng, "UpSampling2D", kwargs, x_of(1, 2, 3, 2, seed=rng))


@case("concatenate_backward", "two inputs")
def _concatenate(lib, rng):
    inputs = [x_of(2, 4, 4, 3, seed=rng), x_of(2, 4, 4, 2, seed=rng)]
    return layer_trial(lib, rng, "Concatenate", {"name": "concatenate"}, inputs)


@case("cropping_backward", "((1, 2), (0, 1))")
def _cropping(lib, rng):
    kwargs = {"cropping": [[1, 2], [0, 1]], "name": "cropping"}
    return layer_trial(lib, rng, "Cropping2D", kwargs, x_of(2, 6, 5, 2, seed=rng))


@case("dropout_backward", "training (seeded mask)")
def _dropout(lib, rng):
    kwargs = {"rate": 0.5, "seed": seed_of(rng), "name": "dropout, training"}
    return layer_trial(lib, rng, "Dropout", kwargs, x_of(2, 4, 4, 3, seed=rng), training=True)


@case("dropout_backward", "inference")
def _dropout_inference(lib, rng):
    kwargs = {"rate": 0.5, "seed": seed_of(rng), "name": "dropout, inference"}
    return layer_trial(lib, rng, "Dropout", kwargs, x_of(2, 4, 4, 3, seed=rng))


def loss_trial(subject: str, probs: np.ndarray, target: np.ndarray, **extra: np.ndarray) -> dict:
    return {
        "kind": "loss",
        "subject": subject,
        "kwargs": {},
        "inputs": probs,
        "target": target,
        "extra": extra,
        "params": {},
    }


def _masks(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (probs_of(*shape, seed=rng) > 0.4).astype(np.float64)


@case("bce_backward", "binary cross-entropy")
def _bce(lib, rng):
    return loss_trial("BinaryCrossentropy", probs_of(2, 4, 4, 1, seed=rng), _masks(rng, 2, 4, 4, 1))


@case("dice_backward", "Dice loss")
def _dice(lib, rng):
    return loss_trial("DiceLoss", probs_of(2, 4, 4, 1, seed=rng), _masks(rng, 2, 4, 4, 1))


@case("cce_backward", "cross-entropy with a weight map")
def _cce(lib, rng):
    e = np.exp(x_of(2, 4, 4, 3, seed=rng))
    probs = e / e.sum(axis=-1, keepdims=True)  # a softmax output, computed here
    labels = rng.integers(0, 3, (2, 4, 4))
    return loss_trial(
        "CategoricalCrossentropy", probs, labels, weight_map=10 * probs_of(2, 4, 4, seed=rng)
    )


@case("unet_backward", "depth-2 UNet with its loss")
def _unet(lib, rng):
    """A depth-2 UNet with 2 filters and binary cross-entropy, from the input through every
    parameter (dropout on, seeded), by every layer's own code (the speed switch off)."""
    kwargs = {
        "input_shape": [8, 8, 1],
        "filters": 2,
        "depth": 2,
        "dtype": "float64",
        "seed": seed_of(rng),
        "fast": False,
    }
    model = lib.UNet(**kwargs)
    random_biases(model, rng)
    return {
        "kind": "model",
        "subject": "UNet",
        "kwargs": kwargs,
        "inputs": rng.random((1, 8, 8, 1)),
        "training": True,
        "params": {k: np.array(p, copy=True) for k, p in model.params.items()},
        "loss": "BinaryCrossentropy",
        "target": (rng.random((1, 8, 8, 1)) > 0.3) * 1.0,
        "dy": np.array(rng.standard_normal()),
    }


# -- forward passes (`numpy-unet exercises --level forward`): against the reference --------
def forward_case(exercise: str, name: str) -> Callable:
    return case(exercise, name, "reference", labels={"output": "output"})


@forward_case("relu_forward", "relu")
def _relu_fwd(lib, rng):
    x = np.array([-2.0, -0.0, 0.0, 0.5, 3.0]).reshape(1, 1, 5, 1)
    return layer_trial(lib, rng, "ReLU", {"name": "relu"}, x, backward=False)


@forward_case("sigmoid_forward", "sigmoid, down to -800")
def _sigmoid_fwd(lib, rng):
    x = np.array([-800.0, -5.0, 0.0, 2.0, 40.0]).reshape(1, 1, 5, 1) + rng.uniform(0, 0.1, 5)
    return layer_trial(lib, rng, "Sigmoid", {"name": "sigmoid"}, x, backward=False)


@forward_case("softmax_forward", "softmax, large logits")
def _softmax_fwd(lib, rng):
    return layer_trial(lib, rng, "Softmax", {}, 300 * x_of(2, 3, 4, 3, seed=rng), backward=False)


for _k, _padding, _hw in [(3, "same", (5, 6)), (2, "same", (4, 5)), (3, "valid", (6, 5))]:
    forward_case("conv2d_forward", f"{_k}x{_k} '{_padding}'")(
        lambda lib, rng, k=_k, p=_padding, hw=_hw: _conv(lib, rng, k, p, hw, backward=False)
    )

for _k, _s, _padding in [(2, 2, "valid"), (3, 2, "same")]:
    forward_case("conv2d_transpose_forward", f"{_k}x{_k} stride {_s} '{_padding}'")(
        lambda lib, rng, k=_k, s=_s, p=_padding: _transpose(lib, rng, k, s, p, backward=False)
    )


@forward_case("maxpool_forward", "2x2, odd size")
def _maxpool_fwd(lib, rng):
    return layer_trial(
        lib, rng, "MaxPooling2D", {"pool_size": 2}, x_of(2, 7, 6, 3, seed=rng), backward=False
    )


@forward_case("maxpool_forward", "3x3 stride 2 'same'")
def _maxpool_same_fwd(lib, rng):
    kwargs = {"pool_size": 3, "strides": 2, "padding": "same"}
    return layer_trial(lib, rng, "MaxPooling2D", kwargs, x_of(1, 7, 6, 2, seed=rng), backward=False)


@forward_case("upsampling_forward", "2x3")
def _upsampling_fwd(lib, rng):
    return layer_trial(
        lib, rng, "UpSampling2D", {"size": [2, 3]}, x_of(2, 3, 4, 2, seed=rng), backward=False
    )


@forward_case("concatenate_forward", "two inputs")
def _concatenate_fwd(lib, rng):
    inputs = [x_of(2, 4, 4, 3, seed=rng), x_of(2, 4, 4, 2, seed=rng)]
    return layer_trial(lib, rng, "Concatenate", {}, inputs, backward=False)


@forward_case("cropping_forward", "((1, 2), (0, 1))")
def _cropping_fwd(lib, rng):
    kwargs = {"cropping": [[1, 2], [0, 1]]}
    return layer_trial(lib, rng, "Cropping2D", kwargs, x_of(2, 6, 5, 2, seed=rng), backward=False)


@forward_case("dropout_forward", "training, seeded")
def _dropout_fwd(lib, rng):
    kwargs = {"rate": 0.5, "seed": seed_of(rng)}
    return layer_trial(
        lib, rng, "Dropout", kwargs, x_of(1, 40, 50, 5, seed=rng), training=True, backward=False
    )
