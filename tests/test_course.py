"""The course kit round trip: the student copy fails exactly the exercise tests, the full
package passes them, and putting one solution back makes exactly that test pass."""

from __future__ import annotations

import pathlib

import pytest

from numpy_unet.app.cli import main
from numpy_unet.teach import course

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> pathlib.Path:
    return course.make_exercises(tmp_path_factory.mktemp("course") / "student")


def test_every_backward_pass_is_an_exercise(student):
    tasks = (student / "EXERCISES.md").read_text()
    for name in course.TASKS:
        assert f"`{name}`" in tasks
    cut = (student / "numpy_unet" / "layers" / "conv2d.py").read_text()
    assert 'raise NotImplementedError("exercise conv2d_backward' in cut
    assert "col2im(dcols" not in cut.split("def backward")[1].split("def im2col")[0]
    assert (student / "numpy_unet" / "layers" / "conv2d.py").read_text() != (
        ROOT / "numpy_unet" / "layers" / "conv2d.py"
    ).read_text()


def test_student_copy_fails_exactly_the_exercises(student):
    results = course.grade(student)
    exercises = {n: r for n, r in results.items() if r["kind"] == "exercise"}
    assert set(exercises) == set(course.TASKS)
    assert not any(r["passed"] for r in exercises.values())
    assert all("NotImplementedError" in r["error"] for r in exercises.values())
    forward = [r for r in results.values() if r["kind"] == "forward"]
    assert forward and all(r["passed"] for r in forward)  # the forward passes still work


def test_full_package_passes_every_exercise_test():
    results = course.grade(ROOT)
    assert all(r["passed"] for r in results.values()), results


def test_one_solution_back_passes_exactly_that_exercise(student, tmp_path):
    copy = course.make_exercises(tmp_path / "one")
    course.copy_solution("maxpool_backward", copy)
    results = course.grade(copy)
    passed = {n for n, r in results.items() if r["kind"] == "exercise" and r["passed"]}
    assert passed == {"maxpool_backward"}


def test_grade_command_prints_the_score_table(student, capsys):
    assert main(["grade", str(student)]) == 1
    out = capsys.readouterr().out
    assert "relu_backward" in out and "FAIL" in out and "score: 0 / 14" in out
    assert main(["exercises", str(student)]) == 2  # never writes over an earlier copy
    assert "not empty" in capsys.readouterr().err
