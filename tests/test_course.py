"""The course kit: the student copy gives no answer away, the teacher's grader judges with its
own checks, contained, and every round trip a teacher makes works."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from numpy_unet.app.cli import main
from numpy_unet.teach import course, grading
from numpy_unet.teach.checks import CHECKS

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> pathlib.Path:
    return course.make_exercises(tmp_path_factory.mktemp("course") / "student")


def replace_block(copy: pathlib.Path, file: str, name: str, code: str, block: int = 0) -> None:
    """Write ``code`` as the student's answer in block ``block`` of exercise ``name``."""
    path = copy / "numpy_unet" / file
    lines = path.read_text().splitlines(keepends=True)
    start, stop = course._blocks(path.read_text(), name)[block]
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    body = textwrap.indent(textwrap.dedent(code).strip() + "\n", indent)
    lines[start + 1 : stop] = [body]
    path.write_text("".join(lines))


def scores(copy: pathlib.Path, *names: str, timeout: float = 60) -> dict[str, float]:
    return {n: r.score for n, r in grading.grade(copy, timeout, list(names), seed=0).items()}


def test_every_backward_pass_is_an_exercise_and_no_answer_ships(student):
    tasks = (student / "EXERCISES.md").read_text()
    assert all(f"`{name}`" in tasks for name in course.TASKS)
    assert set(course.TASKS) | set(course.FORWARD_TASKS) == set(CHECKS)
    assert "def forward" in (student / "numpy_unet" / "layers" / "pooling.py").read_text()
    assert "exercise maxpool_forward" not in tasks  # the default level cuts backward only
    conv = (student / "numpy_unet" / "layers" / "conv2d.py").read_text()
    assert conv.count('raise NotImplementedError("exercise conv2d_backward') == 2  # and col2im
    assert "dcols @ kernel" not in conv
    assert not (student / "numpy_unet" / "fast").exists()  # the speed engine stays out
    loops = (student / "numpy_unet" / "layers" / "loops.py").read_text()
    assert "def conv2d_forward_loops" in loops  # the forward references stay
    assert "def conv2d_backward_loops" not in loops and "def maxpool_backward_loops" not in loops
    assert "def conv2d_transpose_backward_loops" not in loops


def test_a_copys_models_run_the_readable_layers(student):
    # no engine in the copy: its UNet's switch stays off, its fit and predict still run
    code = (  # the copy's package under its own name, whatever else is installed
        "import importlib.util, sys\n"  # (an editable install's finder would win: not here)
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        "spec = importlib.util.spec_from_file_location('numpy_unet', 'numpy_unet/__init__.py',"
        " submodule_search_locations=['numpy_unet'])\n"
        "sys.modules['numpy_unet'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(sys.modules['numpy_unet'])\n"
        "import numpy as np\n"
        "from numpy_unet import UNet\n"
        "model = UNet((8, 8, 1), filters=2, depth=1)\n"
        "print(model.fast, model.engine_headline(2))\n"
        "print(model.predict(np.zeros((2, 8, 8, 1), np.float32)).shape)\n"
        "assert UNet.__module__ == 'numpy_unet.model.unet' and 'student' in sys.modules["
        "'numpy_unet'].__file__\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=student, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "False speed engine: off (this copy has no numpy_unet/fast); every layer's own "
        "forward and backward",
        "(2, 8, 8, 1)",
    ]


def test_an_untouched_copy_scores_zero_and_the_package_full_marks(student):
    untouched = grading.grade(student, seed=0)
    assert set(untouched) == set(course.TASKS)  # the default level: the backward passes
    assert all(r.score == 0 for r in untouched.values())
    assert all("NotImplementedError" in i.detail for r in untouched.values() for i in r.items)
    assert all(r.score == 1 for r in grading.grade(ROOT, seed=0).values())


def test_the_solutions_score_full_marks_on_any_inputs_and_a_doubled_bias_keeps_part(tmp_path):
    copy = course.make_exercises(tmp_path / "solved")
    for name in course.TASKS:
        course.copy_solution(name, copy)
    assert all(r.score == 1 for r in grading.grade(copy, seed=0).values())
    fresh = grading.grade(copy, exercises=["conv2d_backward", "unet_backward"], seed=1)
    assert all(r.score == 1 for r in fresh.values())  # other inputs than the copy's tests
    path = copy / "numpy_unet" / "layers" / "conv2d.py"
    text = path.read_text()
    assert text.count('self.grads["bias"] = dz.sum(axis=0)') == 1
    path.write_text(
        text.replace(
            'self.grads["bias"] = dz.sum(axis=0)', 'self.grads["bias"] = 2 * dz.sum(axis=0)'
        )
    )
    result = grading.grade(copy, exercises=["conv2d_backward"], seed=0)["conv2d_backward"]
    failed = [i.name for i in result.items if not i.passed]
    assert failed and all(name.endswith("'bias'") for name in failed)
    assert result.score == 10 / 15  # the kernels and inputs of five cases still count


def test_a_copy_without_a_class_scores_zero_on_it_with_the_reason(tmp_path):
    copy = course.make_exercises(tmp_path / "no-softmax")
    init = copy / "numpy_unet" / "layers" / "__init__.py"
    init.write_text(init.read_text() + "\ndel Softmax\n")
    result = grading.grade(copy, exercises=["softmax_backward"], seed=0)["softmax_backward"]
    assert result.score == 0
    assert all(i.detail == "LookupError: the copy has no class Softmax" for i in result.items)


def test_the_three_cheats_score_zero(tmp_path):
    copy = course.make_exercises(tmp_path / "cheats")
    # 1. a wrapper around the speed engine's kernel, which a copy once shipped
    replace_block(
        copy,
        "layers/conv2d.py",
        "conv2d_backward",
        """
        from ..fast.conv import backward as engine
        dxp, dk = engine(xp, self.params["kernel"], dz)
        self.grads = {"kernel": dk, "bias": dz.sum(axis=(0, 1, 2))}
        """,
    )
    # 2. the loop reference of max pooling
    replace_block(
        copy,
        "layers/pooling.py",
        "maxpool_backward",
        "from .loops import maxpool_backward_loops\n"
        "return maxpool_backward_loops(dy, None, xp.shape)",
    )
    # 3. the grader's files in the copy, edited to pass everything
    (copy / "numpy_unet" / "teach" / "grading.py").write_text("print('score: 14 / 14')\n")
    checks = copy / "numpy_unet" / "teach" / "checks.py"
    checks.write_text(checks.read_text().replace("report.checks.append(", "report.checks and ("))
    assert scores(copy, "conv2d_backward", "maxpool_backward", "relu_backward") == {
        "conv2d_backward": 0,
        "maxpool_backward": 0,
        "relu_backward": 0,
    }


def test_the_stated_rules_at_ties_and_zeros_are_graded(tmp_path):
    copy = course.make_exercises(tmp_path / "rules")
    course.copy_solution("maxpool_backward", copy)
    every_tied_maximum = """
    _, ho, wo, _ = dy.shape
    ph, pw = self.pool_size
    dxp = np.zeros(xp.shape, dy.dtype)
    for i, j in np.ndindex(ph, pw):  # every maximum of a window gets dy, ties included
        hit = self._window_offset(xp, i, j, ho, wo) == y
        self._window_offset(dxp, i, j, ho, wo)[...] += dy * hit
    return dxp[:, top : top + h, left : left + w, :]
    """
    replace_block(copy, "layers/pooling.py", "maxpool_backward", every_tied_maximum)
    replace_block(copy, "layers/activations.py", "relu_backward", "return dy * (y >= 0)")
    results = grading.grade(copy, exercises=["maxpool_backward", "relu_backward"], seed=0)
    pool = {i.name: i.passed for i in results["maxpool_backward"].items}
    assert pool.pop("ties: gradient of input at tied maxima") is False
    assert all(pool.values())  # without ties the broken rule is invisible: partial credit
    assert 0 < results["maxpool_backward"].score < 1
    relu = {i.name: i.passed for i in results["relu_backward"].items}
    assert relu["relu at 0: gradient of input at x = 0"] is False


def test_a_hanging_or_printing_copy_gets_its_row_and_grade_goes_on(tmp_path, capsys):
    copy = course.make_exercises(tmp_path / "hang")
    replace_block(copy, "layers/activations.py", "relu_backward", "import time\ntime.sleep(60)")
    replace_block(
        copy, "layers/activations.py", "sigmoid_backward", "print('{}')\nraise KeyError(7)"
    )
    results = grading.grade(
        copy, timeout=3, exercises=["relu_backward", "sigmoid_backward"], seed=0
    )
    assert all("timed out after 3 s" in i.detail for i in results["relu_backward"].items)
    assert results["sigmoid_backward"].items[0].detail == "KeyError: 7"
    table = grading.score_table(results)
    assert "timed out after 3 s" in table and "score: 0.00 / 2" in table


def test_round_trip_exercises_solve_grade_json_solutions(tmp_path, capsys):
    copy = tmp_path / "class"
    assert main(["exercises", str(copy)]) == 0
    course.copy_solution("conv2d_backward", copy)  # both blocks: backward and col2im
    report = tmp_path / "results.json"
    assert main(["grade", str(copy), "--json", str(report), "--seed", "0"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"conv2d_backward\s+15 / 15\s+1.00", out) and "score: 1.00 / 14" in out
    result = json.loads(report.read_text())
    assert result["score"] == 1.0 and result["max_score"] == 14.0
    rows = {t["name"]: t for t in result["tests"]}
    assert rows["conv2d_backward"]["score"] == 1.0 and rows["relu_backward"]["score"] == 0.0
    assert set(rows["relu_backward"]) == {"name", "score", "max_score", "output"}
    assert result["output"] == "graded by numpy-unet 0.1.0 at level backward, inputs of seed 0"
    assert main(["solutions", str(tmp_path / "key")]) == 0
    key = (tmp_path / "key" / "SOLUTIONS.md").read_text()
    assert "`conv2d_transpose_backward`" in key and "`maxpool_forward`" in key
    assert "dcols = dz @ kernel.reshape(-1, self.filters).T" in key
    assert main(["exercises", str(copy)]) == 2  # never writes over an earlier copy
    assert "not empty" in capsys.readouterr().err


def run_in(copy: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    """``python ARGS`` in the copy's folder, as a student runs it (the copy first on the path)."""
    return subprocess.run(
        [sys.executable, *args], cwd=copy, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("level", ["backward", "forward"])
def test_the_copys_own_tests_and_gradcheck_run_in_a_fresh_and_a_correct_copy(tmp_path, level):
    copy = course.make_exercises(tmp_path / level, level=level)
    names = course.exercises_of(level)
    fresh = run_in(copy, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider")
    assert fresh.returncode == 1, fresh.stdout + fresh.stderr
    assert f"{len(names)} failed" in fresh.stdout and "NotImplementedError" in fresh.stdout
    check = run_in(copy, "-m", "numpy_unet", "gradcheck")
    assert check.returncode == 1 and "FAILED: " in check.stdout, check.stderr
    assert "Traceback" not in check.stderr
    for name in names:
        course.copy_solution(name, copy)
    solved = run_in(copy, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider")
    assert solved.returncode == 0 and f"{len(names)} passed" in solved.stdout, solved.stdout
    check = run_in(copy, "-m", "numpy_unet", "gradcheck")
    assert check.returncode == 0 and "All gradients agree." in check.stdout, check.stdout


def test_the_forward_level_is_graded_against_the_references(tmp_path, capsys):
    copy = tmp_path / "forward"
    assert main(["exercises", str(copy), "--level", "forward"]) == 0
    tasks = (copy / "EXERCISES.md").read_text()
    assert "`conv2d_forward`" in tasks and "_backward`" not in tasks
    course.copy_solution("maxpool_forward", copy)
    replace_block(copy, "layers/activations.py", "relu_forward", "y = np.abs(x)")  # wrong
    results = grading.grade(copy, level="forward", seed=0)
    assert set(results) == set(course.FORWARD_TASKS)
    assert results["maxpool_forward"].score == 1
    assert (
        results["relu_forward"].score == 0
        and "expected 0, got 2" in results["relu_forward"].items[0].detail
    )
    assert sum(r.score for r in results.values()) == 1
    assert main(["grade", str(copy), "--level", "forward", "--seed", "0"]) == 1
    assert "score: 1.00 / 10" in capsys.readouterr().out


def test_at_level_all_a_backward_row_names_the_forward_it_runs(tmp_path):
    copy = course.make_exercises(tmp_path / "all", level="all")
    results = grading.grade(copy, level="all", exercises=["relu_forward", "relu_backward"], seed=0)
    assert results["relu_backward"].needs == ["relu_forward"]
    assert "also runs the failing relu_forward" in grading.score_table(results)


def test_the_copy_holds_no_backward_helper_a_student_could_call(student):
    """Every function of the copy with 'backward' in its name is a class's own backward
    (cut, or calling the student's code) or the shape check: no loop reference, no kernel."""
    import ast

    names = set()
    for path in (student / "numpy_unet").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names |= {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and "backward" in node.name
        }
    # forward_backward: fit's step, the model's forward, the loss, the model's backward
    assert names == {"backward", "_check_backward", "forward_backward"}


def test_no_copy_holds_the_loop_version_of_a_pass_it_cuts(tmp_path):
    forward = course.make_exercises(tmp_path / "forward", level="forward")
    loops = (forward / "numpy_unet" / "layers" / "loops.py").read_text()
    assert "_forward_loops(" not in loops and "def maxpool_backward_loops" in loops
    both = course.make_exercises(tmp_path / "all", level="all")
    assert "_loops(" not in (both / "numpy_unet" / "layers" / "loops.py").read_text()
