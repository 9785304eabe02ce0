"""``numpy-unet grade``: the teacher's grader. The student's code only computes; it judges.

For every exercise, :func:`grade`

1. makes the exercise's trials here, in the grader's process (inputs drawn from a seed
   chosen at grading time, so that answers stored in a copy are worth nothing), and
   computes what each should give with this package as the reference
   (:mod:`numpy_unet.teach.checks`);
2. runs them on the student's classes in a child process that holds no answer: started
   with ``python -I -S``, its ``sys.path`` holds the standard library, a fresh copy of the
   student's ``numpy_unet/`` and a folder linking NumPy alone (not this package), in a
   session of its own, as another user if asked (``user``), with a time limit;
3. reads back only the arrays the child sends over a pipe (checked: shape, finite values;
   decoded without pickle), and judges each against the reference, tensor by tensor.

Nothing else the child writes or prints is read, and nothing of the copy's grading files
runs. When an exercise's child ends or times out, its process group is killed, and so is
every process it left behind (the grader is a child subreaper meanwhile: :mod:`.contain`).

What it does not guarantee: the student's code runs with the rights of its user. Run as
yourself, it can read your disk (and this package's answers with it) or kill the grader;
grade untrusted submissions in a container, as Gradescope does, or with ``user``.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .checks import CHECKS, NEEDS, Case, Item, prepared
from .contain import children_map, is_subreaper, kill_group, subreaper, sweep
from .course import exercises_of
from .runner import BOOT, decode, encode

RUNNER = Path(__file__).with_name("runner.py")
MAX_ANSWER = 256 * 2**20  # bytes a child may send back
MEMORY = 4 * 2**30  # the child's address space, in bytes (NumPy itself takes about 0.5 GB)


@dataclass
class ExerciseResult:
    name: str
    items: list[Item] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)  # other exercises its checks rely on

    @property
    def score(self) -> float:
        """The fraction of items passed: partial credit, 1 for a complete exercise."""
        return sum(i.passed for i in self.items) / len(self.items) if self.items else 0.0


def find_copy(folder: Path) -> tuple[Path | None, str]:
    """The folder holding the submission's ``numpy_unet/`` (the folder itself or one of its
    subfolders), or None and why not."""
    if not folder.is_dir():
        return None, f"the submission {folder} is not a folder"
    if (folder / "numpy_unet" / "__init__.py").is_file():
        return folder, ""
    inside = [d for d in sorted(folder.iterdir()) if (d / "numpy_unet" / "__init__.py").is_file()]
    if len(inside) == 1:
        return inside[0], ""
    where = "none of its subfolders" if not inside else "several of its subfolders"
    return None, f"the submission holds no numpy_unet/ package ({where} holds one either)"


# -- the child -----------------------------------------------------------------------------
def _workspace(copy: Path, trials: list[dict], user: tuple[int, int] | None) -> Path:
    """A fresh folder: the copy's numpy_unet/, NumPy linked, the runner and the request."""
    work = Path(tempfile.mkdtemp(prefix="numpy-unet-grade-"))
    shutil.copytree(
        copy / "numpy_unet",
        work / "copy" / "numpy_unet",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    numpy_dir = Path(np.__file__).resolve().parent
    (work / "lib").mkdir()
    (work / "lib" / "numpy").symlink_to(numpy_dir)
    if (numpy_dir.parent / "numpy.libs").is_dir():  # a wheel's own OpenBLAS
        (work / "lib" / "numpy.libs").symlink_to(numpy_dir.parent / "numpy.libs")
    shutil.copyfile(RUNNER, work / "runner.py")
    (work / "request.bin").write_bytes(encode(trials))
    if user is not None:
        for root, dirs, files in os.walk(work):
            for name in [".", *dirs, *files]:
                os.lchown(os.path.join(root, name), *user)
    return work


def _read(fd: int, child: subprocess.Popen, timeout: float) -> tuple[bytes, str]:
    """What the child sends until it closes the pipe, or why there is nothing to judge."""
    chunks, size, end, exited = [], 0, time.monotonic() + timeout, None
    while True:
        now = time.monotonic()
        if now > end:
            return b"", f"timed out after {timeout:g} s"
        if exited is None and child.poll() is not None:
            exited = now
        if exited is not None and now - exited > 1.0:
            break  # a process the child left behind holds the pipe: judge what came
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_ANSWER:
                return b"", f"the student's code sent more than {MAX_ANSWER >> 20} MB back"
            chunks.append(chunk)
    return b"".join(chunks), ""


def run_child(
    copy: Path,
    trials: list[dict],
    timeout: float,
    user: tuple[int, int] | None,
    keep: frozenset[int],
    memory: int = MEMORY,
) -> tuple[object, str]:
    """Run ``trials`` on the copy's classes in a contained child (``timeout`` seconds,
    ``memory`` bytes of address space, as ``user``): (decoded answer, "") or (None, what
    went wrong). Every process of the child is gone when this returns."""
    work = _workspace(copy, trials, user)
    try:
        read, write = os.pipe()
        argv = [
            sys.executable,
            "-I",
            "-S",
            "-c",
            BOOT,
            str(work / "copy"),
            str(work / "lib"),
            str(work / "runner.py"),
            str(work / "request.bin"),
            str(write),
            str(int(memory)),
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(work),
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
        account = {} if user is None else {"user": user[0], "group": user[1], "extra_groups": []}
        try:
            stderr = open(work / "stderr.txt", "wb")  # noqa: SIM115 - on disk: a flood of output
            child = subprocess.Popen(
                argv,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=[write],
                start_new_session=True,
                **account,
            )
        except OSError as err:  # the interpreter, or the account, cannot run it
            os.close(read)
            return None, f"the grader could not start the student's code: {err}"[:300]
        finally:
            stderr.close()
            os.close(write)
        try:
            data, failure = _read(read, child, timeout)
        finally:
            kill_group(child.pid)  # the child's group, ended or not
            child.wait()
            sweep(keep)  # and whatever left the group
            os.close(read)
        if failure:
            return None, failure
        if not data:
            tail = _tail(work / "stderr.txt")
            return None, f"the student's code stopped the check (exit {child.returncode}): {tail}"
        try:
            return decode(data), ""
        except (ValueError, TypeError, KeyError, RecursionError) as err:
            return None, f"the answer of the student's code is malformed: {err}"[:300]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _tail(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 4000))
        lines = f.read().decode(errors="replace").strip().splitlines()
    return (lines or ["(no message)"])[-1][:300]


# -- judging -------------------------------------------------------------------------------
def _failed(case: Case, expected: dict, why: str) -> list[Item]:
    return [Item(f"{case.name}: {case.labels.get(key, key)}", False, why) for key in expected]


def judge_answer(cases: list[tuple[Case, dict, dict]], answer: object, failure: str) -> list[Item]:
    """Every case's items, from what the child sent back (anything: it is checked here)."""
    items = []
    if not failure and not (isinstance(answer, list) and len(answer) == len(cases)):
        failure = "the student's code sent back no result for each check"
    for k, (case, _trial, expected) in enumerate(cases):
        outcome = None if failure else answer[k]
        if failure:
            items += _failed(case, expected, failure)
        elif not isinstance(outcome, dict) or not isinstance(outcome.get("arrays", {}), dict):
            items += _failed(case, expected, "no result")
        elif "error" in outcome:
            items += _failed(case, expected, str(outcome["error"])[:300])
        else:
            arrays = {
                k: v for k, v in outcome.get("arrays", {}).items() if isinstance(v, np.ndarray)
            }
            items += case.judge(expected, {k: v.astype(np.float64) for k, v in arrays.items()})
    return items


def grade(
    folder: str | os.PathLike,
    timeout: float = 60.0,
    exercises: list[str] | None = None,
    level: str = "backward",
    seed: int | None = None,
    user: str | int | None = None,
    memory: int = MEMORY,
) -> dict[str, ExerciseResult]:
    """Grade the submission in ``folder``: the exercises of ``level`` (the teacher's
    choice; nothing in the copy is read for it), or the named ``exercises``.

    ``seed`` draws the inputs (default: a fresh one, see :func:`last_seed`); ``user`` (a
    name or number; the grader must be root) runs the student's code as that account;
    ``memory`` caps each child's address space, in bytes. A submission that cannot be
    graded scores 0 on every exercise, with the reason.
    """
    graded = exercises_of(level)
    unknown = [n for n in exercises or [] if n not in CHECKS]
    if unknown:
        raise ValueError(f"numpy-unet grade: no exercise named {unknown[0]!r}")
    account = _account(user)
    seed = secrets.randbits(31) if seed is None else int(seed)
    _LAST_SEED[0] = seed
    copy, problem = find_copy(Path(folder).resolve())
    keep = frozenset(children_map().get(os.getpid(), []))  # the caller's own children
    was = is_subreaper()
    subreaper(True)
    results = {}
    try:
        for name in exercises or graded:
            # a backward's checks run the student's forward too when that is an exercise
            forward = name.replace("_backward", "_forward")
            needs = NEEDS.get(name, []) + (
                [forward] if forward != name and forward in graded else []
            )
            cases = prepared(name, seed)
            answer, failure = (
                (None, problem)
                if problem
                else run_child(copy, [t for _, t, _ in cases], timeout, account, keep, memory)
            )
            results[name] = ExerciseResult(name, judge_answer(cases, answer, failure), needs)
    finally:
        sweep(keep)
        subreaper(was)
    return results


_LAST_SEED = [0]


def last_seed() -> int:
    """The seed of the last :func:`grade` call (to grade again on the same inputs)."""
    return _LAST_SEED[0]


def _account(user: str | int | None) -> tuple[int, int] | None:
    if user is None:
        return None
    import pwd

    try:
        entry = pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"numpy-unet grade: no user {user!r} on this system") from None
    if os.geteuid() != 0:
        raise PermissionError(
            "numpy-unet grade: running the student's code as another user "
            "needs the grader to run as root"
        )
    return entry.pw_uid, entry.pw_gid


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


def gradescope(results: dict[str, ExerciseResult], note: str = "") -> dict:
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
    out = {"score": score, "max_score": float(len(tests)), "tests": tests}
    return out | ({"output": note} if note else {})


def as_dict(results: dict[str, ExerciseResult]) -> dict:
    return {name: asdict(r) | {"score": r.score} for name, r in results.items()}
