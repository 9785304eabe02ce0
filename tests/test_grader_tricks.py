"""A cheating student's tricks, each on a fresh copy with no exercise written, graded as a
teacher grades (`numpy-unet grade COPY --json results.json`): each scores 0 in the results
file, read again after a pause, and leaves no process behind.

Every trick is code the student adds to the copy's ``numpy_unet/__init__.py``, so it runs
before anything else of the student's in the grader's child process.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import numpy_unet
from numpy_unet.app.cli import main
from numpy_unet.teach import course, grading
from numpy_unet.teach.contain import children_map

PAUSE = 2.0  # seconds between grading and reading the results file again
SOLVED = ["relu_backward", "sigmoid_backward"]


def cheat(tmp_path: pathlib.Path, code: str, name: str = "copy") -> pathlib.Path:
    """A fresh copy whose ``numpy_unet/__init__.py`` ends with ``code``."""
    copy = course.make_exercises(tmp_path / name)
    init = copy / "numpy_unet" / "__init__.py"
    init.write_text(init.read_text() + "\n" + textwrap.dedent(code))
    return copy


def graded(copy: pathlib.Path, results: pathlib.Path, *extra: str) -> dict:
    """Grade ``copy`` into ``results`` with the command, pause, read the file again."""
    argv = ["grade", str(copy), "--json", str(results), "--seed", "0", "--timeout", "20"]
    for name in SOLVED:
        argv += ["--exercise", name]
    assert main(argv + list(extra)) == 1
    time.sleep(PAUSE)
    return json.loads(results.read_text())


def assert_zero(result: dict, max_score: float = len(SOLVED)) -> None:
    assert result["score"] == 0 and result["max_score"] == max_score, result
    assert all(t["score"] == 0 for t in result["tests"])


def no_process_left(before: set[int]) -> bool:
    return not set(_descendants(os.getpid())) - before


def _descendants(root: int) -> list[int]:
    children, found, todo = children_map(), [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def test_removing_import_hooks_and_grafting_the_reference_finds_none(tmp_path):
    trick = """
    import importlib.util, os, sys
    sys.meta_path[:] = [f for f in sys.meta_path if "Hide" not in type(f).__name__]
    _here = os.path.dirname(os.path.abspath(__file__))

    def _graft():
        for entry in list(sys.path):
            init = os.path.join(entry, "numpy_unet", "__init__.py")
            if os.path.isfile(init) and os.path.dirname(os.path.abspath(init)) != _here:
                spec = importlib.util.spec_from_file_location(
                    "reference_unet", init, submodule_search_locations=[os.path.dirname(init)])
                ref = importlib.util.module_from_spec(spec)
                sys.modules["reference_unet"] = ref
                spec.loader.exec_module(ref)
                import reference_unet.layers as theirs
                from . import layers as mine
                for name in ("ReLU", "Sigmoid"):
                    getattr(mine, name).backward = getattr(theirs, name).backward
                return entry

    GRAFTED = _graft()
    """
    copy = cheat(tmp_path, trick)
    assert_zero(graded(copy, tmp_path / "results.json"))
    # the same copy where the installed package is on the path (as when the grader shared
    # its process with the student's code): the trick finds it and its answers are right
    installed = str(pathlib.Path(numpy_unet.__file__).resolve().parents[1])
    code = (
        f"import sys; sys.path[:0] = [{str(copy)!r}]; sys.path.append({installed!r})\n"
        "import numpy as np, numpy_unet\n"
        "from numpy_unet.layers import ReLU\n"
        "assert numpy_unet.GRAFTED, 'found nothing'\n"
        "r = ReLU(); r.forward(np.array([-1.0, 2.0])); print(r.backward(np.ones(2)))\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[0. 1.]", done.stderr


def test_replacing_the_runners_functions_sends_nothing_that_passes(tmp_path):
    trick = """
    import sys
    import numpy as np

    def _fake(lib, trial):  # all-zero gradients of the right shapes, and a forged verdict
        x = trial["inputs"]
        return {"output": np.zeros(1), "input": np.zeros_like(x), "passed": np.ones(1)}

    for _module in list(sys.modules.values()):
        for _name in ("perform", "run_exercise", "judge", "compare"):
            if hasattr(_module, _name):
                setattr(_module, _name, _fake)
    """
    copy = cheat(tmp_path, trick)
    result = graded(copy, tmp_path / "results.json")
    assert_zero(result)
    assert "numerical" in result["tests"][0]["output"]  # judged, and wrong


def test_a_forged_result_on_the_channel_and_in_the_results_file_then_exit(tmp_path):
    results = tmp_path / "results.json"
    trick = f"""
    import json, os, sys
    _verdict = {{"score": 2.0, "max_score": 2.0, "tests": []}}
    for _fd in os.listdir("/proc/self/fd"):  # the result pipe is one of them
        try:
            os.write(int(_fd), json.dumps(_verdict).encode())
        except OSError:
            pass
    with open({str(results)!r}, "w") as _f:  # and the file Gradescope reads
        json.dump(_verdict, _f)
    os._exit(0)
    """
    copy = cheat(tmp_path, trick)
    result = graded(copy, results)
    assert_zero(result)
    assert "malformed" in result["tests"][0]["output"]


def test_patching_numpy_changes_only_the_childs_numpy(tmp_path):
    trick = """
    import numpy as np
    from .layers import ReLU, Sigmoid

    for _name in ("abs", "allclose", "isclose", "isfinite", "max", "maximum", "all"):
        setattr(np, _name, lambda *a, **k: np.zeros(1))
    ReLU.backward = Sigmoid.backward = lambda self, dy: dy * 0.0
    """
    copy = cheat(tmp_path, trick)
    assert_zero(graded(copy, tmp_path / "results.json"))


def test_the_checker_cannot_be_reached_through_globals(tmp_path):
    trick = """
    import gc, types

    def _always(*args, **kwargs):
        return True

    for _f in gc.get_objects():
        if isinstance(_f, types.FunctionType):
            for _name in ("compare", "_compare", "judge", "run_exercise", "gradcheck"):
                if _name in _f.__globals__:
                    _f.__globals__[_name] = _always
    """
    copy = cheat(tmp_path, trick)
    assert_zero(graded(copy, tmp_path / "results.json"))


GC_SEARCH = """
import gc

def _reference_classes(mine):
    return [o for o in gc.get_objects() if isinstance(o, type) and o.__name__ in
            ("ReLU", "Sigmoid") and o not in mine and "numpy_unet" in str(o.__module__)]
"""
GRAFT = """
from . import layers as _layers
for _cls in _reference_classes((_layers.ReLU, _layers.Sigmoid)):
    getattr(_layers, _cls.__name__).backward = _cls.backward
"""


def test_no_reference_class_in_the_childs_memory(tmp_path):
    copy = cheat(tmp_path, GC_SEARCH + GRAFT)
    assert_zero(graded(copy, tmp_path / "results.json"))
    # the same search, in a process that holds this package (as the old grader's child
    # did), finds the reference classes
    from numpy_unet.layers import ReLU  # noqa: F401 - loaded

    namespace = {}
    exec(GC_SEARCH, namespace)
    with warnings.catch_warnings():  # other libraries' deprecated objects, met on the way
        warnings.simplefilter("ignore")
        assert namespace["_reference_classes"](())


def test_a_detached_grandchild_cannot_rewrite_the_results_after_grade_exits(tmp_path):
    alive = tmp_path / "alive"
    trick = f"""
    import json, os, time
    _grader = os.getppid()
    if os.fork() == 0:
        os.setsid()  # leave the session and the process group
        if os.fork() == 0:
            _args = open(f"/proc/{{_grader}}/cmdline", "rb").read().split(b"\\0")
            _path = _args[_args.index(b"--json") + 1].decode()
            while os.path.exists(f"/proc/{{_grader}}"):  # until grade has exited
                open({str(alive)!r}, "w").close()
                time.sleep(0.05)
            time.sleep(0.3)
            with open(_path, "w") as _f:
                json.dump({{"score": 2.0, "max_score": 2.0, "tests": []}}, _f)
        os._exit(0)
    """
    copy = cheat(tmp_path, trick)
    results = tmp_path / "results.json"
    argv = [sys.executable, "-m", "numpy_unet", "grade", str(copy), "--json", str(results)]
    argv += ["--exercise", "relu_backward", "--exercise", "sigmoid_backward", "--seed", "0"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    ended = time.time()
    time.sleep(PAUSE)
    assert_zero(json.loads(results.read_text()))
    assert alive.exists(), "the grandchild ran"
    assert alive.stat().st_mtime < ended, "and was gone before grade exited"


def test_a_level_edited_in_the_copy_changes_nothing(tmp_path):
    copy = course.make_exercises(tmp_path / "copy")
    tasks = copy / "EXERCISES.md"
    tasks.write_text(tasks.read_text().replace("--level backward", "--level forward"))
    tasks.write_text(tasks.read_text() + "\n<!-- numpy-unet exercises --level forward -->\n")
    results = tmp_path / "results.json"
    assert main(["grade", str(copy), "--json", str(results), "--seed", "0"]) == 1
    time.sleep(PAUSE)
    result = json.loads(results.read_text())
    assert_zero(result, max_score=len(course.TASKS))  # the backward passes, the default
    assert {t["name"] for t in result["tests"]} == set(course.TASKS)


def test_a_looping_exercise_that_forks_a_busy_child_times_out_and_leaves_nothing(tmp_path):
    alive = tmp_path / "alive"
    busy = f"""
    import os, time
    if os.fork() == 0:
        os.setsid()  # out of the group, still below the grader
        while True:
            open({str(alive)!r}, "w").close()
            time.sleep(0.02)
    while True:
        pass
    """
    copy = course.make_exercises(tmp_path / "copy")
    path = copy / "numpy_unet" / "layers" / "activations.py"
    lines = path.read_text().splitlines(keepends=True)
    start, stop = course._blocks(path.read_text(), "relu_backward")[0]
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    lines[start + 1 : stop] = [textwrap.indent(textwrap.dedent(busy).strip() + "\n", indent)]
    path.write_text("".join(lines))
    before = set(_descendants(os.getpid()))
    results = tmp_path / "results.json"
    argv = ["grade", str(copy), "--json", str(results), "--exercise", "relu_backward"]
    started = time.monotonic()
    assert main([*argv, "--timeout", "2", "--seed", "0"]) == 1
    assert time.monotonic() - started < 15
    ended = time.time()
    time.sleep(PAUSE)
    result = json.loads(results.read_text())
    assert result["score"] == 0 and "timed out after 2 s" in result["tests"][0]["output"]
    assert alive.exists() and alive.stat().st_mtime < ended
    assert no_process_left(before)


def test_a_child_that_eats_memory_stops_at_its_cap(tmp_path):
    copy = course.make_exercises(tmp_path / "copy")
    path = copy / "numpy_unet" / "layers" / "activations.py"
    lines = path.read_text().splitlines(keepends=True)
    start, stop = course._blocks(path.read_text(), "relu_backward")[0]
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    eat = "kept = [np.ones(2**23) for _ in range(400)]  # 64 MB at a time, 25 GB in all"
    lines[start + 1 : stop] = [indent + eat + "\n"]
    path.write_text("".join(lines))
    result = grading.grade(copy, exercises=["relu_backward"], seed=0, memory=2**30)
    details = [i.detail for i in result["relu_backward"].items]
    assert details and all("MemoryError: Unable to allocate 64.0 MiB" in d for d in details)


def test_a_submission_without_the_package_gets_a_zero_with_the_reason(tmp_path, capsys):
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "notes.txt").write_text("my answers are elsewhere")
    results = tmp_path / "results.json"
    assert main(["grade", str(tmp_path / "submission"), "--json", str(results)]) == 1
    result = json.loads(results.read_text())
    assert result["score"] == 0 and result["max_score"] == len(course.TASKS)
    assert "holds no numpy_unet/ package" in result["tests"][0]["output"]


def test_a_results_path_that_cannot_be_written_is_refused_before_grading(tmp_path, capsys):
    copy = course.make_exercises(tmp_path / "copy")
    started = time.monotonic()
    assert main(["grade", str(copy), "--json", str(tmp_path / "nodir" / "r.json")]) == 2
    assert time.monotonic() - started < 2  # nothing was graded
    assert "the --json folder" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root")
def test_as_root_the_students_code_runs_as_the_given_user(tmp_path):
    trick = """
    import os
    from .layers import ReLU
    def _who(self, dy):
        raise RuntimeError(f"uid {os.getuid()}")
    ReLU.backward = _who
    """
    copy = cheat(tmp_path, trick)
    import pwd

    nobody = pwd.getpwnam("nobody")
    result = grading.grade(copy, exercises=["relu_backward"], seed=0, user="nobody")
    detail = result["relu_backward"].items[0].detail
    if "No module named 'numpy'" in detail or "Permission denied" in detail:
        pytest.skip(f"NumPy is not readable by the user nobody here: {detail}")
    assert detail == f"RuntimeError: uid {nobody.pw_uid}"
