"""`numpy-unet autograder`: the zip a teacher uploads to Gradescope, its run_autograder run
against folders laid out like /autograder with an honest, an untouched and a cheating copy."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

from numpy_unet.app.cli import main
from numpy_unet.teach import course


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    assert main(["autograder", str(out)]) == 0
    return out


def test_the_zip_holds_what_gradescope_runs_and_the_package(bundle):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        setup = z.read("setup.sh").decode()
    assert {"setup.sh", "run_autograder", "numpy-unet/pyproject.toml"} <= names
    assert "numpy-unet/numpy_unet/teach/grading.py" in names
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    assert not any("__pycache__" in n for n in names)
    check = subprocess.run(["bash", "-n", "-c", setup], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # setup.sh parses (it runs on Gradescope only)
    assert "chmod -R go-rwx" in setup and "useradd" in setup


def run_autograder(bundle: pathlib.Path, root: pathlib.Path, submission: pathlib.Path) -> dict:
    """Unzip the bundle into ROOT/source, put the submission in ROOT/submission, run it."""
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
    shutil.copytree(submission, root / "submission")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), NUMPY_UNET_PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", str(root / "source" / "run_autograder")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads((root / "results" / "results.json").read_text())


def assert_gradescope_format(result: dict) -> None:
    assert set(result) == {"score", "max_score", "tests", "output"}
    assert isinstance(result["score"], float) and result["max_score"] == len(course.TASKS)
    for test in result["tests"]:
        assert set(test) == {"name", "score", "max_score", "output"}
        assert 0 <= test["score"] <= test["max_score"] == 1.0


def test_run_autograder_grades_an_honest_an_untouched_and_a_cheating_copy(bundle, tmp_path):
    honest = course.make_exercises(tmp_path / "honest")
    for name in course.TASKS:
        course.copy_solution(name, honest)
    untouched = course.make_exercises(tmp_path / "untouched")
    cheating = course.make_exercises(tmp_path / "cheating")
    init = cheating / "numpy_unet" / "__init__.py"
    forged = {"score": 14.0, "max_score": 14.0, "tests": []}
    init.write_text(
        init.read_text()
        + textwrap.dedent(
            f"""
            import json, os, sys
            for _fd in os.listdir("/proc/self/fd"):  # the result pipe is one of them
                try:
                    os.write(int(_fd), json.dumps({forged!r}).encode())
                except OSError:
                    pass
            for _root in ("/autograder", {str(tmp_path)!r}):
                for _dir, _, _ in os.walk(_root):
                    if _dir.endswith("results"):
                        with open(os.path.join(_dir, "results.json"), "w") as _f:
                            json.dump({forged!r}, _f)
            os._exit(0)
            """
        )
    )
    scores = {}
    for name, copy in [("honest", honest), ("untouched", untouched), ("cheating", cheating)]:
        result = run_autograder(bundle, tmp_path / f"autograder-{name}", copy)
        assert_gradescope_format(result)
        scores[name] = result["score"]
    assert scores == {"honest": 14.0, "untouched": 0.0, "cheating": 0.0}


def test_a_nested_upload_is_found_and_an_empty_one_scores_zero(bundle, tmp_path):
    honest = course.make_exercises(tmp_path / "upload" / "my-copy")
    course.copy_solution("relu_backward", honest)
    result = run_autograder(bundle, tmp_path / "nested", tmp_path / "upload")
    assert result["score"] == 1.0  # relu_backward, found one folder down
    (tmp_path / "empty").mkdir()
    result = run_autograder(bundle, tmp_path / "none", tmp_path / "empty")
    assert result["score"] == 0 and "holds no numpy_unet/" in result["tests"][0]["output"]
