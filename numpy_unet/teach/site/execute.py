"""Running one tutorial script in a fresh Jupyter kernel, as a student running it as a notebook.

The script (jupytext's percent format: ``# %%`` cells) is read as a notebook and executed
cell by cell by ``nbclient`` in a new ``python3`` kernel, which is shut down when the tutorial
ends, fails or is interrupted. A failing cell (a lesson's assert) raises :class:`LessonFailedError`
naming the tutorial, the cell, its first line in the script and the error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# run after the tutorial and never shown: what produced the page's numbers, asked of the
# kernel itself (its numpy_unet is the one the tutorial imported)
MACHINE_CELL = """\
import json as _json, os as _os, platform as _platform, sys as _sys
import numpy as _np, numpy_unet as _nu
def _cpu():
    try:
        with open("/proc/cpuinfo") as _f:
            return next(l.split(":", 1)[1].strip() for l in _f if l.startswith("model name"))
    except (OSError, StopIteration):
        return _platform.processor() or _platform.machine()
print(_json.dumps({"numpy_unet": _nu.__version__, "numpy": _np.__version__,
    "python": _platform.python_version(), "system": _platform.system(),
    "machine": _platform.machine(), "cpu": _cpu(), "cores": _os.cpu_count(),
    "package": _os.path.dirname(_nu.__file__)}))
"""


SOCKETS = "numpy-unet-kernel-"  # + this process's pid: the kernel's private folder in /tmp


class LessonFailedError(RuntimeError):
    """A tutorial's cell raised: its lesson no longer holds, so no site is written."""


@dataclass
class Executed:
    """A tutorial after its run: the notebook with outputs, seconds taken, the machine."""

    notebook: object
    seconds: float
    machine: dict


def run_tutorial(
    script: Path, quick: bool, figures: Path, timeout: float = 1200, data: Path | None = None
) -> Executed:
    """Execute ``script`` in a fresh kernel whose working folder is the script's repository.

    Parameters
    ----------
    script : Path
        A tutorial, ``tutorials/NN_name.py``.
    quick : bool
        Set ``NUMPY_UNET_QUICK=1`` in the kernel (small sizes, seconds).
    figures : Path
        ``NUMPY_UNET_FIGURES`` in the kernel: where the tutorial saves its PNGs (they also
        come back inline, in the notebook's outputs).
    timeout : float
        Seconds one cell may run.
    data : Path, optional
        ``NUMPY_UNET_DATA`` in the kernel: a folder of real ISBI images.

    Raises
    ------
    LessonFailedError
        When a cell raises: names the tutorial, the cell (its number, 1-based, and its first
        line in the script) and the exception.
    """
    import jupytext
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook = jupytext.read(script)
    lines = _cell_lines(script.read_text(), len(notebook.cells))
    notebook.cells.append(nbformat.v4.new_code_cell(MACHINE_CELL))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMPY_UNET_")}
    env.update(NUMPY_UNET_FIGURES=str(figures), NUMPY_UNET_QUICK="1" if quick else "0")
    env.pop("MPLBACKEND", None)  # the kernel's own (inline) backend, as a student's
    if data is not None:
        env["NUMPY_UNET_DATA"] = str(data)
    # the kernel talks to this process over Unix sockets in a private folder, not TCP ports
    sockets = Path(tempfile.mkdtemp(prefix=f"{SOCKETS}{os.getpid()}-"))  # short: a socket's path
    manager = KernelManager(kernel_name="python3", transport="ipc", ip=str(sockets / "k"))
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(script.resolve().parent.parent)}},
    )
    start = time.perf_counter()
    try:
        with open(sockets / "kernel.log", "wb") as log:  # the kernel's own messages, if it dies
            err = _execute(client, manager, env=env, stdout=log, stderr=log)
        if isinstance(err, (CellExecutionError, CellTimeoutError)):
            index = _failed_cell(notebook)
            where = "the last cell" if index is None else f"cell {index + 1}"
            if index is not None and index < len(lines):
                where += f" (line {lines[index] + _line_in_cell(err)} of {script.name})"
            message = f"site: tutorial {script.name} failed in {where}: {_reason(err)}"
            raise LessonFailedError(message) from None
        if err is not None:
            tail = (sockets / "kernel.log").read_text(errors="replace").strip()[-2000:]
            raise RuntimeError(
                f"site: the kernel running {script.name} failed ({type(err).__name__}: {err})"
                + (f"; its last words:\n{tail}" if tail else "")
            ) from None
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    seconds = time.perf_counter() - start
    last = notebook.cells.pop()  # the machine cell, not shown
    text = "".join(out.get("text", "") for out in last.get("outputs", []))
    return Executed(notebook, seconds, json.loads(text.strip().splitlines()[-1]))


def _execute(client: object, manager: object, **kwargs: object) -> BaseException | None:
    """Run the notebook in a helper thread and return what it raised, if anything.

    The main thread only waits, so Ctrl-C reaches it as a KeyboardInterrupt (nbclient's own
    signal handling, which it installs only in the main thread, could wait for a busy
    kernel's cell to end). On Ctrl-C the kernel is killed, the thread ends as the client
    sees the kernel die, and the KeyboardInterrupt goes on to the caller.
    """
    raised: list[BaseException] = []

    def run() -> None:
        try:
            client.execute(cleanup_kc=True, **kwargs)  # shuts the kernel down when done
        except BaseException as err:  # handed to the main thread
            raised.append(err)

    thread = threading.Thread(target=run, name="numpy-unet site: kernel client", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        process = getattr(getattr(manager, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()  # the kernel runs in a session of its own: no Ctrl-C reached it
        thread.join(30)
        raise
    return raised[0] if raised else None


def _cell_lines(source: str, count: int) -> list[int]:
    """The line (1-based) where each cell starts in a percent-format script."""
    starts = [k + 1 for k, line in enumerate(source.splitlines()) if line.startswith("# %%")]
    if starts and starts[0] != 1 and source.splitlines()[0].strip():
        starts.insert(0, 1)  # text before the first marker is a cell of its own
    return starts[:count]


def _line_in_cell(err: Exception) -> int:
    """The line of the cell that raised, counted from the cell's ``# %%`` line (0: the
    marker itself, when IPython's traceback does not say)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    found = re.findall(r"Cell In\[\d+\], line (\d+)", text)
    return int(found[0]) if found else 0


def _failed_cell(notebook: object) -> int | None:
    """The index of the cell whose outputs hold an error, else None."""
    for k, cell in enumerate(notebook.cells):
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return k
    return None


def _reason(err: Exception) -> str:
    """The exception's type and message, without the traceback nbclient adds."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename:
        return f"{ename}: {evalue}" if evalue else ename
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
    return text[-1] if text else type(err).__name__
