"""The course kit: a student copy with the backward passes cut out, and the teacher's files.

In the package's source, every exercise is a block (or several) between two marker comments::

    # >>> exercise relu_backward: `numpy-unet exercises` cuts out this block
    return dy * (y > 0)
    # <<< exercise relu_backward

``numpy-unet exercises OUT`` copies the package to ``OUT/numpy_unet`` with each such block
replaced by ``raise NotImplementedError(...)``, writes the tasks to ``OUT/EXERCISES.md`` and
tests that students run themselves to ``OUT/tests/``: the checks' trials and the values
they should give, stored as data (``tests/cases.bin``), since the copy holds no code that
computes an answer. The speed engine (``numpy_unet/fast/``, whose convolutions compute
gradients of their own) is left out, so the copy's models run every layer's own code, the
code of the exercises (its ``UNet.fast`` stays False); so are the loop versions of the
passes the level cuts. ``numpy-unet grade OUT`` (:mod:`numpy_unet.teach.grading`) scores
the copy on other inputs; ``numpy-unet solutions OUT`` writes the reference code of every
exercise.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # numpy_unet/
BEGIN = re.compile(r"^(?P<indent>\s*)# >>> exercise (?P<name>\w+)")
END = re.compile(r"^\s*# <<< exercise (?P<name>\w+)")

TASKS = {
    "relu_backward": "ReLU.backward (layers/activations.py): dx = dy where x > 0, else 0 "
    "(also at x = 0 exactly, as Keras does).",
    "sigmoid_backward": "Sigmoid.backward (layers/activations.py): use the cached output y.",
    "softmax_backward": "Softmax.backward (layers/activations.py): the Jacobian-vector product "
    "over the channel axis, without building the Jacobian.",
    "conv2d_backward": "Conv2D.backward (layers/conv2d.py): given dz (the gradient after the "
    "activation) and the padded input xp, the kernel and bias gradients and dxp with "
    "im2col; and col2im, which folds the windows' gradients back onto the input.",
    "conv2d_transpose_backward": "Conv2DTranspose.backward (layers/conv2d_transpose.py): "
    "gather each kernel offset's strided slice of the output gradient.",
    "maxpool_backward": "MaxPooling2D.backward (layers/pooling.py): route each window's "
    "gradient to its first maximum, row by row (found again from the cached input and "
    "output); a tied maximum that comes later gets nothing.",
    "upsampling_backward": "UpSampling2D.backward (layers/upsampling.py): sum each block.",
    "concatenate_backward": "Concatenate.backward (layers/concatenate.py): one slice per input.",
    "cropping_backward": "Cropping2D.backward (layers/cropping.py): zeros where cropped.",
    "dropout_backward": "Dropout.backward (layers/dropout.py): the same mask as the forward.",
    "bce_backward": "BinaryCrossentropy.backward (losses.py): mind the clipping.",
    "dice_backward": "DiceLoss.backward (losses.py): differentiate the ratio.",
    "cce_backward": "CategoricalCrossentropy.backward (losses.py): with the weight map, and "
    "through the renormalisation of each pixel's probabilities to sum 1 (as Keras does).",
    "unet_backward": "UNet.backward (model/unet.py): the whole U in reverse; add each "
    "skip's gradient where the two paths met. Its check also runs your ReLU, sigmoid, conv, "
    "pooling, up-sampling, concatenation, dropout and binary cross-entropy backward passes.",
}

FORWARD_TASKS = {
    "relu_forward": "ReLU.forward (layers/activations.py): y = max(x, 0).",
    "sigmoid_forward": "sigmoid (layers/activations.py): 1 / (1 + exp(-x)) without overflow "
    "for large negative x.",
    "softmax_forward": "Softmax.forward (layers/activations.py): over the last axis, without "
    "overflow for large logits.",
    "conv2d_forward": "Conv2D.forward (layers/conv2d.py): im2col, then one matrix product and "
    "the bias; and im2col itself.",
    "conv2d_transpose_forward": "Conv2DTranspose.forward (layers/conv2d_transpose.py): every "
    "input pixel paints a kernel-sized patch; compute kmat, (hf, wf), (top, left) and z, "
    "which the lines after the block use.",
    "maxpool_forward": "MaxPooling2D.forward (layers/pooling.py): the maximum of each window.",
    "upsampling_forward": "UpSampling2D.forward (layers/upsampling.py): repeat each pixel.",
    "concatenate_forward": "Concatenate.forward (layers/concatenate.py): join along the axis.",
    "cropping_forward": "Cropping2D.forward (layers/cropping.py): cut the borders off.",
    "dropout_forward": "Dropout.forward (layers/dropout.py): one uniform draw per element, "
    "u = self.rng.random(x.shape), kept where u >= rate, kept values scaled by 1 / (1 - rate) "
    "(inverted dropout; the same draws as the reference, so the same mask for a seed).",
}

ENGINE = "fast"  # the package's speed engine: left out of a student copy
LEVELS = {"backward": ("_backward",), "forward": ("_forward",), "all": ("_backward", "_forward")}


def exercises_of(level: str) -> list[str]:
    """The exercise names a copy of ``level`` cuts out, in teaching order."""
    if level not in LEVELS:
        raise ValueError(f"numpy-unet: --level must be one of {sorted(LEVELS)}, got {level!r}")
    names = [*FORWARD_TASKS, *TASKS] if level == "all" else [*TASKS, *FORWARD_TASKS]
    return [n for n in names if n.endswith(LEVELS[level])]


def exercises_in(source: str) -> list[str]:
    """Names of the exercise blocks in a source file's text (a name once per block)."""
    return [m.group("name") for line in source.splitlines() if (m := BEGIN.match(line))]


def cut_exercises(source: str, names: list[str] | None = None) -> str:
    """Replace the body of every exercise block (of ``names``, default all) by
    ``raise NotImplementedError``."""
    out, inside = [], None
    for line in source.splitlines(keepends=True):
        if inside is None:
            out.append(line)
            begin = BEGIN.match(line)
            if begin and (names is None or begin.group("name") in names):
                inside = begin.group("name")
                out.append(
                    f'{begin.group("indent")}raise NotImplementedError("exercise {inside}: '
                    'see EXERCISES.md")\n'
                )
        elif END.match(line):
            out.append(line)
            inside = None
    if inside is not None:
        raise ValueError(f"exercise {inside} has no end marker")
    return "".join(out)


def leave_out_loops(source: str, level: str = "backward") -> str:
    """``loops.py`` without the loop versions of the passes ``level`` cuts: each is an answer."""
    lines = source.splitlines(keepends=True)
    ends = tuple(f"{suffix}_loops" for suffix in LEVELS[level])
    drop = [
        (node.lineno - 1, node.end_lineno, node.name)
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name.endswith(ends)
    ]
    for start, stop, name in reversed(drop):
        note = f"# {name}: left out of the course copy (it would answer an exercise)\n"
        lines[start:stop] = [note]
    return "".join(lines)


def _student_text(src: Path, text: str, names: list[str], level: str) -> str:
    relative = src.relative_to(PACKAGE).as_posix()
    if relative == "layers/loops.py":
        text = leave_out_loops(text, level)
    if relative == "teach/course.py":  # its docstring shows the markers; keep it as it is
        return text
    return cut_exercises(text, names)


STUDENT_TEST = '''"""Your exercises, checked as the grader checks them: python -m pytest tests/

cases.bin holds each check's inputs and the values a correct answer gives for them (the
grader draws other inputs). A failure names the tensor and its worst element.
"""

import pathlib

import pytest

from numpy_unet.teach.checks import judge, package_lib
from numpy_unet.teach.runner import decode, perform

STORED = decode((pathlib.Path(__file__).parent / "cases.bin").read_bytes())


@pytest.mark.parametrize("name", list(STORED))
def test_exercise(name):
    lib = package_lib()
    failed = []
    for check in STORED[name]:
        given = perform(lib, check["trial"])  # your code: its errors show here in full
        items = judge(check["case"], check["against"], check["labels"], check["expected"], given)
        failed += [f"{i.name}: {i.detail}" for i in items if not i.passed]
    assert not failed, "\\n".join(failed)
'''


def write_tests(folder: Path, names: list[str], seed: int = 0) -> None:
    """A copy's ``tests/``: its checks' trials and expected values for ``seed``, as data."""
    from .checks import prepared
    from .runner import encode

    folder.mkdir()
    stored = {
        name: [
            {
                "case": case.name,
                "against": case.against,
                "labels": case.labels,
                "trial": trial,
                "expected": expected,
            }
            for case, trial, expected in prepared(name, seed)
        ]
        for name in names
    }
    (folder / "cases.bin").write_bytes(encode(stored))
    (folder / "conftest.py").write_text(
        "import pathlib\nimport sys\n\n"
        "sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))\n"
    )
    (folder / "test_exercises.py").write_text(STUDENT_TEST)


def make_exercises(out: str | os.PathLike, level: str = "backward") -> Path:
    """Write the student copy into ``out`` (which must be new or empty).

    ``level``: 'backward' cuts the backward passes (the default), 'forward' the forward
    passes, 'all' both.
    """
    names = exercises_of(level)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"numpy-unet exercises: {out} is not empty; choose a new folder")
    found = []
    for src in sorted(PACKAGE.rglob("*.py")):
        if src.relative_to(PACKAGE).parts[0] == ENGINE:  # the speed engine stays out
            continue
        dest = out / "numpy_unet" / src.relative_to(PACKAGE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text()
        if src.name != "course.py":
            found += [n for n in exercises_in(text) if n in names and n not in found]
        dest.write_text(_student_text(src, text, names, level))
    write_tests(out / "tests", names)
    what = {
        "backward": "backward passes",
        "forward": "forward passes",
        "all": "forward and backward passes",
    }
    lines = [
        f"# Exercises: the {what[level]} of a UNet",
        "",
        "Fill in each block marked `raise NotImplementedError` in `numpy_unet/`. The "
        "docstring of each class gives the formula. Check your work with "
        "`python -m pytest tests/` from this folder (and `python -m numpy_unet gradcheck`); "
        f"your teacher grades it with `numpy-unet grade --level {level}`, which runs the "
        "same checks on inputs it draws when grading.",
        "",
    ]
    tasks = TASKS | FORWARD_TASKS
    ordered = [name for name in names if name in found]
    lines += [f"{k}. `{name}`: {tasks[name]}" for k, name in enumerate(ordered, start=1)]
    (out / "EXERCISES.md").write_text("\n".join(lines) + "\n")
    return out


def _blocks(text: str, name: str) -> list[tuple[int, int]]:
    """(first, last) line index of every block of exercise ``name``, markers included."""
    lines, spans, start = text.splitlines(), [], None
    for i, line in enumerate(lines):
        if (m := BEGIN.match(line)) and m.group("name") == name:
            start = i
        elif (m := END.match(line)) and m.group("name") == name and start is not None:
            spans.append((start, i))
            start = None
    return spans


def reference_code(name: str) -> list[tuple[str, str]]:
    """(file, code) of every block of exercise ``name`` in this package."""
    found = []
    for src in sorted(PACKAGE.rglob("*.py")):
        if src.name == "course.py":
            continue
        text = src.read_text()
        lines = text.splitlines()
        for start, stop in _blocks(text, name):
            code = "\n".join(lines[start + 1 : stop])
            found.append((src.relative_to(PACKAGE).as_posix(), code))
    if not found:
        raise ValueError(f"no exercise named {name!r}")
    return found


def write_solutions(out: str | os.PathLike) -> Path:
    """``out/SOLUTIONS.md``: every exercise's task and reference code (for the teacher)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"numpy-unet solutions: {out} is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Solutions: the reference code of every exercise", ""]
    tasks = TASKS | FORWARD_TASKS
    for k, name in enumerate(exercises_of("all"), start=1):
        lines += [f"## {k}. `{name}`", "", tasks[name], ""]
        for file, code in reference_code(name):
            lines += [f"In `numpy_unet/{file}`:", "", "```python", code, "```", ""]
    path = out / "SOLUTIONS.md"
    path.write_text("\n".join(lines))
    return path


def copy_solution(name: str, folder: str | os.PathLike) -> None:
    """Put the reference code of exercise ``name`` back into a student copy (for tests,
    and for teachers who hand out solutions one at a time)."""
    done = False
    for src in PACKAGE.rglob("*.py"):
        text = src.read_text()
        if src.name == "course.py" or name not in exercises_in(text):
            continue
        dest = Path(folder) / "numpy_unet" / src.relative_to(PACKAGE)
        dest.write_text(_merge(dest.read_text(), text, name))
        done = True
    if not done:
        raise ValueError(f"no exercise named {name!r}")


def _merge(student: str, reference: str, name: str) -> str:
    """``student`` with every block ``name`` taken from ``reference``."""
    s_lines, r_lines = student.splitlines(keepends=True), reference.splitlines(keepends=True)
    s_spans, r_spans = _blocks(student, name), _blocks(reference, name)
    if len(s_spans) != len(r_spans):
        raise ValueError(f"exercise {name}: the copy has {len(s_spans)} blocks, not {len(r_spans)}")
    for (s0, s1), (r0, r1) in reversed(list(zip(s_spans, r_spans))):
        s_lines[s0 : s1 + 1] = r_lines[r0 : r1 + 1]
    return "".join(s_lines)
