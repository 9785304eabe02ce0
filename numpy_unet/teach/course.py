"""The course kit: a student copy with the backward passes cut out, and a grader for it.

In the package's source, every exercise is a block between two marker comments::

    # >>> exercise relu_backward: `numpy-unet exercises` cuts out this block
    return dy * (y > 0)
    # <<< exercise relu_backward

``numpy-unet exercises OUT`` copies the package to ``OUT/numpy_unet`` with each such block
replaced by ``raise NotImplementedError(...)``, writes the tasks to ``OUT/EXERCISES.md`` and
the gradient tests to ``OUT/tests/`` (they run with pytest too). ``numpy-unet grade OUT``
runs those tests on the student's code and prints a table of scores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from ..tables import format_table

PACKAGE = Path(__file__).resolve().parents[1]  # numpy_unet/
BEGIN = re.compile(r"^(?P<indent>\s*)# >>> exercise (?P<name>\w+)")
END = re.compile(r"^\s*# <<< exercise (?P<name>\w+)")

TASKS = {
    "relu_backward": "ReLU.backward (layers/activations.py): dx = dy where x > 0, else 0.",
    "sigmoid_backward": "Sigmoid.backward (layers/activations.py): use the cached output y.",
    "softmax_backward": "Softmax.backward (layers/activations.py): the Jacobian-vector product "
    "over the channel axis, without building the Jacobian.",
    "conv2d_backward": "Conv2D.backward (layers/conv2d.py): given dz (the gradient after the "
    "activation) and the padded input xp, the kernel and bias gradients and dxp with "
    "im2col / col2im.",
    "conv2d_transpose_backward": "Conv2DTranspose.backward (layers/conv2d_transpose.py): "
    "gather each kernel offset's strided slice of the output gradient.",
    "maxpool_backward": "MaxPooling2D.backward (layers/pooling.py): route each window's "
    "gradient to its first maximum (found again from the cached input and output).",
    "upsampling_backward": "UpSampling2D.backward (layers/upsampling.py): sum each block.",
    "concatenate_backward": "Concatenate.backward (layers/concatenate.py): one slice per input.",
    "cropping_backward": "Cropping2D.backward (layers/cropping.py): zeros where cropped.",
    "dropout_backward": "Dropout.backward (layers/dropout.py): the same mask as the forward.",
    "bce_backward": "BinaryCrossentropy.backward (losses.py): mind the clipping.",
    "dice_backward": "DiceLoss.backward (losses.py): differentiate the ratio.",
    "cce_backward": "CategoricalCrossentropy.backward (losses.py): with the weight map.",
    "unet_backward": "UNet.backward (model/unet.py): the whole U in reverse; add each "
    "skip's gradient where the two paths met. Its check needs the layers' backward passes "
    "and bce_backward first.",
}


def exercises_in(source: str) -> list[str]:
    """Names of the exercise blocks in a source file's text."""
    return [m.group("name") for line in source.splitlines() if (m := BEGIN.match(line))]


def cut_exercises(source: str) -> str:
    """Replace every exercise block's body by ``raise NotImplementedError``."""
    out, inside = [], None
    for line in source.splitlines(keepends=True):
        if inside is None:
            out.append(line)
            begin = BEGIN.match(line)
            if begin:
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


def make_exercises(out: str | os.PathLike) -> Path:
    """Write the student copy into ``out`` (which must be new or empty)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"numpy-unet exercises: {out} is not empty; choose a new folder")
    found = []
    for src in sorted(PACKAGE.rglob("*.py")):
        dest = out / "numpy_unet" / src.relative_to(PACKAGE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text()
        if src.name != "course.py":  # its docstring shows the markers; keep it as it is
            found += exercises_in(text)
            text = cut_exercises(text)
        dest.write_text(text)
    tests = out / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(
        "import pathlib\nimport sys\n\n"
        "sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))\n"
    )
    (tests / "test_exercises.py").write_text(
        '"""Gradient tests of the exercises: python -m pytest tests/"""\n\n'
        "import pytest\n\nfrom numpy_unet.teach import grading\n\n\n"
        '@pytest.mark.parametrize("name", list(grading.CHECKS))\n'
        "def test_exercise(name):\n    grading.CHECKS[name]()\n"
    )
    lines = [
        "# Exercises: the backward passes of a UNet",
        "",
        "Fill in each block marked `raise NotImplementedError` in `numpy_unet/`. The "
        "docstring of each class gives the formula. Check your work with "
        "`numpy-unet grade .` (or `python -m pytest tests/`) from this folder.",
        "",
    ]
    ordered = [name for name in TASKS if name in found] + [n for n in found if n not in TASKS]
    lines += [f"{k}. `{name}`: {TASKS.get(name, '')}" for k, name in enumerate(ordered, start=1)]
    (out / "EXERCISES.md").write_text("\n".join(lines) + "\n")
    return out


def grade(folder: str | os.PathLike) -> dict[str, dict]:
    """Run the grading checks on the package inside ``folder``; return their results."""
    folder = Path(folder).resolve()
    if not (folder / "numpy_unet" / "__init__.py").is_file():
        raise FileNotFoundError(f"numpy-unet grade: {folder} holds no numpy_unet/ package")
    env = dict(os.environ, PYTHONPATH=str(folder))  # the student's package, not this one
    done = subprocess.run(
        [sys.executable, "-m", "numpy_unet.teach.grading"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"numpy-unet grade: the student's package does not run: {tail[0]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def score_table(results: dict[str, dict]) -> str:
    """The table ``numpy-unet grade`` prints."""
    rows = [("exercise", "result", "detail")]
    for name, r in results.items():
        label = name if r["kind"] == "exercise" else f"{name} (forward, not graded)"
        detail = "" if r["passed"] else r["error"][:90]
        rows.append((label, "pass" if r["passed"] else "FAIL", detail))
    lines = format_table(rows)
    graded = [r for r in results.values() if r["kind"] == "exercise"]
    passed = sum(r["passed"] for r in graded)
    lines.append(f"\nscore: {passed} / {len(graded)} exercises pass their gradient checks")
    return "\n".join(lines)


def copy_solution(name: str, folder: str | os.PathLike) -> None:
    """Put the reference solution of exercise ``name`` back into a student copy (for tests
    and for teachers who hand out solutions one at a time)."""
    for src in PACKAGE.rglob("*.py"):
        text = src.read_text()
        if src.name != "course.py" and name in exercises_in(text):
            dest = Path(folder) / "numpy_unet" / src.relative_to(PACKAGE)
            dest.write_text(_merge(dest.read_text(), text, name))
            return
    raise ValueError(f"no exercise named {name!r}")


def _merge(student: str, reference: str, name: str) -> str:
    """``student`` with the block ``name`` taken from ``reference``."""

    def block(text: str) -> tuple[int, int, list[str]]:
        lines = text.splitlines(keepends=True)
        start = next(
            i for i, ln in enumerate(lines) if (m := BEGIN.match(ln)) and m.group("name") == name
        )
        stop = next(
            i
            for i in range(start, len(lines))
            if (m := END.match(lines[i])) and m.group("name") == name
        )
        return start, stop, lines

    s0, s1, s_lines = block(student)
    r0, r1, r_lines = block(reference)
    return "".join(s_lines[:s0] + r_lines[r0:r1] + s_lines[s1:])
