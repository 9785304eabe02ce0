"""``numpy-unet grade``: the teacher's grader, which runs a student's code but judges it itself.

For every exercise, :func:`grade` starts a child process of *this* package::

    python -m numpy_unet.teach.grading EXERCISE STUDENT_FOLDER RESULT.json

with a clean environment, a temporary working folder and a time limit. The child loads the
student's copy under another name (``student_numpy_unet``), takes only its classes (the
layers, the losses and ``UNet``), runs this package's cases on them
(:data:`numpy_unet.teach.checks.CHECKS`) with this package's ``gradcheck``, and writes one
verdict per checked tensor. Nothing of the copy's own grading files runs. A hang becomes
"timed out", a crash the exception's last line, in that exercise's row only.

Grading executes the student's code, with the rights of whoever runs ``grade``: run
untrusted submissions in a container or a throw-away account.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

from .checks import CHECKS, CLASSES, NEEDS, package_lib
from .course import exercises_of, recorded_level

STUDENT = "student_numpy_unet"  # the name the student's copy is loaded under


@dataclass
class Item:
    """One scored tensor of one case: ``"conv2d 3x3 'same': 'kernel'"``."""

    name: str
    passed: bool
    detail: str = ""  # why it failed: the worst element, numerical and analytic


@dataclass
class ExerciseResult:
    name: str
    items: list[Item] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)  # other exercises its checks rely on

    @property
    def score(self) -> float:
        """The fraction of items passed: partial credit, 1 for a complete exercise."""
        return sum(i.passed for i in self.items) / len(self.items) if self.items else 0.0


# -- the child: runs in its own process, on the student's classes --------------------------
def student_lib(folder: Path) -> SimpleNamespace:
    """The classes of the copy in ``folder`` (its ``numpy_unet/``), loaded as ``STUDENT``."""
    init = Path(folder) / "numpy_unet" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        STUDENT, init, submodule_search_locations=[str(init.parent)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[STUDENT] = package
    spec.loader.exec_module(package)
    layers = importlib.import_module(f"{STUDENT}.layers")
    losses = importlib.import_module(f"{STUDENT}.losses")
    model = importlib.import_module(f"{STUDENT}.model")
    found = {name: getattr(layers, name, None) or getattr(losses, name, None) for name in CLASSES}
    return SimpleNamespace(**(found | {"UNet": model.UNet}))


def _last_line(err: BaseException) -> str:
    return traceback.format_exception_only(type(err), err)[-1].strip()[:300]


def run_exercise(exercise: str, lib: SimpleNamespace) -> dict[str, dict]:
    """``{case: {"tensors": [{name, passed, detail}]} or {"error": ...}}`` for ``lib``."""
    results = {}
    for case in CHECKS[exercise]:
        try:
            report = case.run(lib)
        except Exception as err:  # noqa: BLE001 - the student's code may raise anything
            results[case.name] = {"error": _last_line(err)}
            continue
        tensors = []
        for c in report.checks:
            detail = ""
            if not c.passed:
                detail = (
                    f"element {c.worst_index}: expected {c.numerical:.6g}, got {c.analytic:.6g}"
                    if report.mode.startswith("rule")
                    else f"element {c.worst_index}: numerical {c.numerical:.6g}, "
                    f"analytic {c.analytic:.6g}"
                )
            tensors.append({"name": c.name, "passed": bool(c.passed), "detail": detail})
        results[case.name] = {"tensors": tensors}
    return results


class _HideReference:
    """An import hook that refuses ``numpy_unet`` itself: the student's code, which runs in
    this process, cannot borrow the reference classes it is graded against."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "numpy_unet" or name.startswith("numpy_unet."):
            raise ImportError(f"{name}: the reference package is not available while grading")


def _hide_reference() -> None:
    """Take the reference package out of reach; the cases hold what they use already."""
    for name in [m for m in sys.modules if m == "numpy_unet" or m.startswith("numpy_unet.")]:
        del sys.modules[name]  # this module keeps its own references to what it needs
    sys.meta_path.insert(0, _HideReference())


def _check_own(lib: SimpleNamespace, folder: Path) -> None:
    """Every class graded must be defined in the student's copy, not borrowed."""
    for name, cls in vars(lib).items():
        module = getattr(cls, "__module__", "") or ""
        if cls is not None and not module.startswith(STUDENT):
            raise ValueError(f"{name} is not the copy's own class (it comes from {module})")


def _child(argv: list[str]) -> int:
    exercise, folder, out = argv
    _hide_reference()
    try:
        lib = student_lib(Path(folder))
        _check_own(lib, Path(folder))
        results = run_exercise(exercise, lib)
    except Exception as err:  # noqa: BLE001 - the copy does not even import
        results = {"error": f"the copy does not load: {_last_line(err)}"}
    Path(out).write_text(json.dumps(results))
    return 0


# -- the parent: what `numpy-unet grade` runs ----------------------------------------------
_REFERENCE: dict[str, list[tuple[str, list[str]]]] = {}


def reference_items(exercise: str) -> list[tuple[str, list[str]]]:
    """(case, tensor names) as this package's own classes produce them: what is scored."""
    if exercise not in _REFERENCE:
        lib = package_lib()
        _REFERENCE[exercise] = [
            (case.name, [c.name for c in case.run(lib).checks]) for case in CHECKS[exercise]
        ]
    return _REFERENCE[exercise]


def _clean_env(home: str) -> dict[str, str]:
    """Only what Python needs, and this package on the path (not the student's)."""
    here = str(Path(__file__).resolve().parents[2])  # the folder holding this numpy_unet/
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8"}
    env |= {"PYTHONPATH": here, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    return env


def grade_exercise(
    exercise: str, folder: Path, timeout: float, needs: list[str] | None = None
) -> ExerciseResult:
    """Run one exercise's cases on the copy in ``folder``, contained; score every item."""
    result = ExerciseResult(exercise, needs=needs or [])
    with tempfile.TemporaryDirectory(prefix="numpy-unet-grade-") as work:
        out = Path(work) / "result.json"
        failure = ""
        try:
            errors = Path(work) / "stderr.txt"  # on disk: a student's flood of output
            with open(errors, "wb") as stderr:  # must not fill the grader's memory
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "numpy_unet.teach.grading",
                        exercise,
                        str(folder),
                        str(out),
                    ],
                    cwd=work,
                    env=_clean_env(work),
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    timeout=timeout,
                    stdin=subprocess.DEVNULL,
                )
            if not out.is_file():
                with open(errors, "rb") as f:
                    f.seek(max(0, errors.stat().st_size - 4000))
                    lines = f.read().decode(errors="replace").strip().splitlines()
                tail = (lines or ["(no message)"])[-1]
                failure = f"the student's code stopped the check (exit {done.returncode}): {tail}"
        except subprocess.TimeoutExpired:
            failure = f"timed out after {timeout:g} s"
        found = {} if failure else json.loads(out.read_text())
    if not failure and isinstance(found.get("error"), str):
        failure = found["error"]  # the copy does not even import
    for case, tensors in reference_items(exercise):
        verdict = found.get(case, {"error": failure or "no result"})
        given = {t["name"]: t for t in verdict.get("tensors", [])}
        for tensor in tensors:
            name = f"{case}: {tensor}"
            if "error" in verdict:
                result.items.append(Item(name, False, verdict["error"]))
            elif tensor not in given:
                result.items.append(Item(name, False, "not checked: the gradient is missing"))
            else:
                result.items.append(Item(name, given[tensor]["passed"], given[tensor]["detail"]))
    return result


def grade(
    folder: str | os.PathLike,
    timeout: float = 60.0,
    exercises: list[str] | None = None,
    level: str = "backward",
) -> dict[str, ExerciseResult]:
    """Grade the exercises of the student's copy in ``folder``: those of ``level`` (the
    copy's ``exercises --level``), or the named ``exercises``."""
    folder = Path(folder).resolve()
    if not (folder / "numpy_unet" / "__init__.py").is_file():
        raise FileNotFoundError(f"numpy-unet grade: {folder} holds no numpy_unet/ package")
    made = recorded_level(folder)
    if made is not None and made != level:
        raise ValueError(
            f"numpy-unet grade: {folder} was made with --level {made}; grade it with "
            f"--level {made} (its other exercises were not cut, so they would score for free)"
        )
    graded = exercises_of(level)
    unknown = [n for n in exercises or [] if n not in CHECKS]
    if unknown:
        raise ValueError(f"numpy-unet grade: no exercise named {unknown[0]!r}")
    results = {}
    for name in exercises or graded:
        # a backward's checks run the student's forward too when that is an exercise
        forward = name.replace("_backward", "_forward")
        needs = NEEDS.get(name, []) + ([forward] if forward != name and forward in graded else [])
        results[name] = grade_exercise(name, folder, timeout, needs)
    return results


def score_table(results: dict[str, ExerciseResult]) -> str:
    """The table ``numpy-unet grade`` prints: a row per exercise, its failures below it."""
    from ..tables import format_table

    failing = {n for n, r in results.items() if r.score < 1}
    rows = [("exercise", "checks passed", "score", "first failure")]
    for name, r in results.items():
        passed = sum(i.passed for i in r.items)
        first = next((i for i in r.items if not i.passed), None)
        detail = f"{first.name}: {first.detail}"[:72] if first else ""
        rows.append((name, f"{passed} / {len(r.items)}", f"{r.score:.2f}", detail))
        broken = [n for n in r.needs if n in failing]
        if broken and first:  # say which other exercises its checks ran, and failed
            names = [", ".join(broken[k : k + 3]) for k in range(0, len(broken), 3)]
            rows += [("", "", "", f"also runs the failing {n}") for n in names[:1]]
            rows += [("", "", "", f" {n}") for n in names[1:]]
    total = sum(r.score for r in results.values())
    return "\n".join(format_table(rows)) + f"\n\nscore: {total:.2f} / {len(results)}"


def gradescope(results: dict[str, ExerciseResult]) -> dict:
    """The result as Gradescope's autograder reads it (``results.json``)."""
    tests = []
    for name, r in results.items():
        lines = [
            f"{'pass' if i.passed else 'FAIL'}  {i.name}  {i.detail}".rstrip() for i in r.items
        ]
        if r.needs:
            lines.append(f"(its checks also run: {', '.join(r.needs)})")
        tests.append(
            {"name": name, "score": round(r.score, 4), "max_score": 1.0, "output": "\n".join(lines)}
        )
    score = round(sum(t["score"] for t in tests), 4)
    return {"score": score, "max_score": float(len(tests)), "tests": tests}


def as_dict(results: dict[str, ExerciseResult]) -> dict:
    return {name: asdict(r) | {"score": r.score} for name, r in results.items()}


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
