"""What runs the student's code: build a layer from plain data, call it, send the arrays back.

A *trial* is plain data (a dict of strings, numbers and arrays): the class to build and its
arguments, the parameter values to set, the inputs, and the upstream gradient. The
trial's *outcome* is the arrays the code under test returns: the output, the gradient of
every input and every parameter. :func:`perform` turns one into the other for any set of
classes (``lib``); it never judges.

The grader (:mod:`numpy_unet.teach.grading`) runs this file *by its path*, in a child
process whose ``sys.path`` holds only the standard library, the student's copy and a folder
linking NumPy (:data:`BOOT` puts them there before NumPy is imported)::

    python -I -S -c BOOT COPY NUMPY_FOLDER runner.py REQUEST RESULT_FD MEMORY

It caps its own address space at MEMORY bytes (soft and hard limit: a process that is not
root cannot raise it again), reads the trials from the file REQUEST, runs them on the
copy's classes, and writes the outcomes to the file descriptor RESULT_FD. So this file
imports nothing of the package; in the grader's own process it is imported as usual, for
the same functions.

The wire format is :func:`encode`: an 8-byte length, a JSON header, then the arrays'
bytes. No pickle, so decoding what a student's process sends can run no code.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from types import SimpleNamespace

import numpy as np

CLASSES = (
    "ReLU Sigmoid Softmax Conv2D Conv2DTranspose MaxPooling2D UpSampling2D Concatenate "
    "Cropping2D Dropout BinaryCrossentropy DiceLoss CategoricalCrossentropy UNet"
).split()
DTYPES = {"<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "|i1", "|u1", "|b1"}  # what may come back
KINDS = ("layer", "loss", "model")
BOOT = (  # python -I -S -c BOOT COPY NUMPY_FOLDER RUNNER ARGS...: run RUNNER on that path
    "import runpy, sys; sys.path[:0] = sys.argv[1:3]; "
    "sys.argv = [sys.argv[3], *sys.argv[1:3], *sys.argv[4:]]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


# -- the wire format ----------------------------------------------------------------------
def encode(obj: object) -> bytes:
    """``obj`` (dicts, lists, str, int, float, bool, None, numeric arrays) as bytes."""
    blobs: list[bytes] = []
    offset = 0

    def walk(o: object) -> object:
        nonlocal offset
        if isinstance(o, np.ndarray):
            a = np.ascontiguousarray(o)
            a = a.astype(a.dtype.newbyteorder("<")) if a.dtype.byteorder == ">" else a
            if a.dtype.str not in DTYPES:
                raise TypeError(f"an array of dtype {a.dtype} cannot be sent")
            blobs.append(a.tobytes())
            entry = {"@array": [a.dtype.str, list(a.shape), offset, a.nbytes]}
            offset += a.nbytes
            return entry
        if isinstance(o, dict):
            return {str(k): walk(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v) for v in o]
        if o is None or isinstance(o, (str, bool, int, float)):
            return o
        raise TypeError(f"a {type(o).__name__} cannot be sent")

    head = json.dumps(walk(obj)).encode()
    return len(head).to_bytes(8, "little") + head + b"".join(blobs)


def decode(data: bytes) -> object:
    """The object :func:`encode` wrote; raises ``ValueError`` on anything malformed."""
    if len(data) < 8:
        raise ValueError("the message is shorter than its header")
    n = int.from_bytes(data[:8], "little")
    if not 0 < n <= len(data) - 8:
        raise ValueError("the message's header length is wrong")
    body = memoryview(data)[8 + n :]

    def walk(o: object) -> object:
        if isinstance(o, dict):
            if set(o) == {"@array"}:
                dtype, shape, start, nbytes = o["@array"]
                if dtype not in DTYPES or not all(isinstance(s, int) and s >= 0 for s in shape):
                    raise ValueError(f"an array of dtype {dtype!r}, shape {shape!r}")
                size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                if size != nbytes or not 0 <= start <= len(body) - nbytes:
                    raise ValueError("an array's bytes lie outside the message")
                return np.frombuffer(body[start : start + nbytes], dtype).reshape(shape).copy()
            return {k: walk(v) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o

    return walk(json.loads(bytes(data[8 : 8 + n])))


# -- one trial ----------------------------------------------------------------------------
def construct(lib: SimpleNamespace, trial: dict) -> object:
    """The trial's subject built from ``lib``, with the trial's parameter values set."""
    cls = getattr(lib, trial["subject"], None)
    if cls is None:
        raise LookupError(f"the copy has no class {trial['subject']}")
    subject = cls(**trial["kwargs"])
    if trial.get("build") is not None:
        subject.build(tuple(trial["build"]))
    for key, value in trial.get("params", {}).items():
        if key not in subject.params:
            raise KeyError(f"{trial['subject']} has no parameter {key!r} after build")
        subject.params[key][...] = value
    return subject


def inputs_of(trial: dict) -> list[np.ndarray]:
    """Fresh copies of the trial's inputs (a list, even for one)."""
    x = trial["inputs"]
    return [np.array(a, copy=True) for a in (x if isinstance(x, list) else [x])]


def input_names(trial: dict) -> list[str]:
    """How the gradients of the inputs are named: 'input', or 'input 0', 'input 1', ..."""
    if trial["kind"] == "loss":
        return ["y_pred"]
    return (
        ["input"]
        if not isinstance(trial["inputs"], list)
        else [f"input {k}" for k in range(len(trial["inputs"]))]
    )


def forward(subject: object, trial: dict, xs: list[np.ndarray], lib: SimpleNamespace) -> tuple:
    """The subject's forward on ``xs``: (output, the loss object of a model trial or None)."""
    x = xs if isinstance(trial["inputs"], list) else xs[0]
    if trial["kind"] == "loss":
        return subject.forward(x, trial["target"], **trial.get("extra", {})), None
    y = subject.forward(x, training=trial["training"])
    if trial["kind"] == "layer":
        return y, None
    loss = getattr(lib, trial["loss"])()
    return loss.forward(y, trial["target"], **trial.get("extra", {})), loss


def perform(lib: SimpleNamespace, trial: dict) -> dict[str, np.ndarray]:
    """Run one trial on ``lib``'s classes: the output and every gradient, as arrays.

    ``layer``: ``y = forward(x, training)``, then ``backward(dy)`` when the trial has a dy.
    ``loss``: ``forward(y_pred, target, **extra)``, then ``backward()``.
    ``model``: the model's forward, its loss, then ``model.backward(loss.backward() * dy)``.
    """
    if trial["kind"] not in KINDS:
        raise ValueError(f"a trial of kind {trial['kind']!r}")
    subject = construct(lib, trial)
    xs = inputs_of(trial)
    y, loss = forward(subject, trial, xs, lib)
    out = {"output": np.asarray(y, dtype=float)}
    if trial["kind"] == "layer" and trial.get("dy") is None:
        return out  # a forward pass only
    if trial["kind"] == "loss":
        grads = [subject.backward()]
    else:
        dy = trial["dy"] if loss is None else loss.backward() * trial["dy"]
        given = subject.backward(dy)
        grads = list(given) if isinstance(trial["inputs"], list) else [given]
    out |= {name: np.asarray(g, dtype=float) for name, g in zip(input_names(trial), grads)}
    params_grads = getattr(subject, "grads", {}) if trial["kind"] != "loss" else {}
    out |= {
        f"'{k}'": np.asarray(params_grads[k], dtype=float)
        for k in trial.get("params", {})
        if k in params_grads
    }
    return out


# -- the child process --------------------------------------------------------------------
def load_classes() -> SimpleNamespace:
    """The classes of the ``numpy_unet`` first on ``sys.path`` (the student's copy)."""
    import importlib

    layers = importlib.import_module("numpy_unet.layers")
    losses = importlib.import_module("numpy_unet.losses")
    model = importlib.import_module("numpy_unet.model")
    found = {n: getattr(layers, n, None) or getattr(losses, n, None) for n in CLASSES}
    return SimpleNamespace(**(found | {"UNet": getattr(model, "UNet", None)}))


def last_line(err: BaseException) -> str:
    """The exception as its traceback's last line says it, cut to 300 characters."""
    return traceback.format_exception_only(type(err), err)[-1].strip()[:300]


def limit_memory(nbytes: int) -> None:
    """Cap this process's address space (and write no core file), where the system can."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return
    for limit, value in ((resource.RLIMIT_AS, nbytes), (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):  # above a hard limit set before us: keep that one
            pass


def main(argv: list[str]) -> int:
    _copy, _numpy_folder, request, fd, memory = argv  # the first two are on sys.path already
    limit_memory(int(memory))
    trials = decode(open(request, "rb").read())  # noqa: SIM115 - read once, closed by GC
    try:
        lib = load_classes()
    except BaseException as err:  # noqa: BLE001 - the copy does not even import
        outcomes = [{"error": f"the copy does not load: {last_line(err)}"}] * len(trials)
    else:
        outcomes = []
        for trial in trials:
            try:
                outcomes.append({"arrays": perform(lib, trial)})
            except BaseException as err:  # noqa: BLE001 - the student's code may raise anything
                outcomes.append({"error": last_line(err)})
    data = encode(outcomes)
    view = memoryview(data)
    while view:
        view = view[os.write(int(fd), view) :]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
