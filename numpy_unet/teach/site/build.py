"""Building the course site: every tutorial executed, then written as pages, all or nothing.

The pages are built in a temporary folder beside ``out`` and moved into place only when every
tutorial has run: a lesson that fails (an assert) stops the build, and nothing is written
where ``out`` is. Like a run's results, a site never lands on an earlier folder: ``out`` is
claimed new (``out-2``, ``out-3``, ... if it exists) unless ``overwrite`` replaces a site this
command built there before.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ...files import fresh_dir
from .execute import SOCKETS, Executed, run_tutorial
from .render import index_page, nav_html, title_of, tutorial_page

# which tutorial teaches what each exercise of the course kit asks (``numpy-unet exercises``
# cuts the backward passes, ``--level forward`` the forward ones); every exercise is in one
# (tests/test_site.py checks this against the kit's list)
EXERCISES_BY_TUTORIAL = {
    "01": ["conv2d"],
    "02": ["maxpool", "upsampling"],
    "03": ["concatenate", "unet_backward"],
    "06": ["relu", "sigmoid", "softmax", "bce_backward", "dice_backward", "cce_backward"],
    "08": ["dropout"],
    "09": ["conv2d_transpose", "cropping"],
}
MARK = ".numpy-unet-site"  # the file that says a folder holds a site built here
TUTORIAL = re.compile(r"^\d\d_\w+\.py$")


def find_tutorials(folder: Path) -> list[Path]:
    """The tutorial scripts of ``folder`` (``NN_name.py``), in order."""
    return sorted(p for p in folder.iterdir() if TUTORIAL.match(p.name))


def default_tutorials() -> Path:
    """``tutorials/`` in the current folder, else beside the package (a source checkout)."""
    for folder in (Path.cwd() / "tutorials", Path(__file__).resolve().parents[3] / "tutorials"):
        if folder.is_dir() and find_tutorials(folder):
            return folder
    raise FileNotFoundError(
        "site: no tutorials/ folder here or beside the package; run from the repository's "
        "root or pass --tutorials DIR"
    )


def build_site(
    out: str | os.PathLike,
    quick: bool = False,
    tutorials: str | os.PathLike | None = None,
    overwrite: bool = False,
    data: str | os.PathLike | None = None,
    log: Callable[[str], object] = print,
) -> Path:
    """Execute every tutorial in a fresh kernel and write the course as a static site.

    Parameters
    ----------
    out : str or os.PathLike
        The site's folder: ``index.html``, one ``NN_name.html`` per tutorial and its figures
        in ``NN_name/``. Open ``index.html`` in a browser, or put the folder on any static
        host.
    quick : bool
        Run the tutorials in quick mode (``NUMPY_UNET_QUICK=1``): a check of the build in a
        minute or two; the full run's numbers are the course's.
    tutorials : str or os.PathLike, optional
        The folder of tutorial scripts (default: :func:`default_tutorials`). Its
        ``README.md`` gives each tutorial's summary for the course plan.
    overwrite : bool
        Replace ``out`` if it holds a site built by this command; otherwise a site never
        replaces a folder (it goes to ``out-2``, ...).
    data : str or os.PathLike, optional
        A folder of real ISBI 2012 images for tutorials 07-09 (``NUMPY_UNET_DATA``).
    log : callable
        Called with a line of progress per tutorial.

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    LessonFailedError
        A tutorial's cell raised; the message names the tutorial and the cell. Nothing is
        written.
    """
    _require_extra()
    out = Path(out)
    folder = Path(tutorials) if tutorials is not None else default_tutorials()
    if not folder.is_dir():
        raise FileNotFoundError(f"site: the tutorials folder {folder} does not exist")
    scripts = find_tutorials(folder)
    if not scripts:
        raise FileNotFoundError(f"site: {folder} holds no tutorial scripts (NN_name.py)")
    if overwrite and out.exists() and not (out / MARK).is_file():
        raise FileExistsError(
            f"site: {out} exists and is not a site built by 'numpy-unet site' (it has no "
            f"{MARK}); nothing was replaced"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(out)
    prefix = f".{out.name}.building-{os.getpid()}-"  # the pid: whose build it is
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    try:
        runs = {}
        for k, script in enumerate(scripts, 1):
            log(f"[{k}/{len(scripts)}] {script.name}: running in a fresh Jupyter kernel")
            figures = work / ".figures" / script.stem
            runs[script] = run_tutorial(script, quick, figures, data=data)
            _check_figures_shown(script, runs[script], figures)
            log(f"[{k}/{len(scripts)}] {script.name}: {runs[script].seconds:.1f} s")
        shutil.rmtree(work / ".figures", ignore_errors=True)
        _write_pages(work, folder, runs, quick)
        (work / MARK).write_text("built by numpy-unet site\n")
        return _move_into_place(work, out, overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already when the site was moved


def _write_pages(work: Path, folder: Path, runs: dict[Path, Executed], quick: bool) -> None:
    """index.html, one page per tutorial and its figures, into ``work``."""
    scripts = list(runs)
    titles = {s: title_of(runs[s].notebook, s.stem) for s in scripts}
    pages = {s: f"{s.stem}.html" for s in scripts}
    machine = next(iter(runs.values())).machine
    when = time.strftime("%Y-%m-%d")
    mode = "quick mode (NUMPY_UNET_QUICK=1: small sizes, few steps)" if quick else "full mode"
    for k, script in enumerate(scripts):
        previous = (pages[scripts[k - 1]], titles[scripts[k - 1]]) if k > 0 else None
        following = (
            (pages[scripts[k + 1]], titles[scripts[k + 1]]) if k + 1 < len(scripts) else None
        )
        footer = _footer(runs[script].machine, when, mode, runs[script].seconds)
        page = tutorial_page(
            runs[script].notebook,
            script.stem,
            nav_html(previous, following),
            footer,
            titles[script],
        )
        _write(work, pages[script], page)
    summaries = _summaries(folder / "README.md")
    rows = []
    for script in scripts:
        text = script.read_text()
        reading = re.search(r"\*\*Time:\*\* about (\d+ minutes) to read", text)
        rows.append(
            {
                "number": script.name[:2],
                "href": pages[script],
                "title": titles[script],
                "teaches": summaries.get(script.name, ""),
                "reading": reading.group(1) if reading else "",
                "seconds": runs[script].seconds,
                "exercises": _exercises(script.name[:2]),
            }
        )
    total = sum(run.seconds for run in runs.values())
    _write(
        work,
        "index.html",
        index_page(
            "UNet, layer by layer: the numpy-unet course",
            INTRO.format(count=len(rows)),
            rows,
            _footer(machine, when, mode, total, "all tutorials"),
        ),
    )


INTRO = """\
The course's {count} tutorials run from what a convolution computes to a UNet trained on
membranes with every gradient checked by hand. Each page is a tutorial as it ran: its text,
its code, what the code printed and the figures it drew. Read them in order.

Where a tutorial says **Predict before you run**, write your prediction down first: the run
and the answer stay folded until you open them.

To run them yourself: `pip install .` in the repository, then
`python tutorials/01_convolution.py`, or open them as notebooks (`pip install ".[notebooks]"`).
Teachers: `numpy-unet exercises DIR` makes the student copy; the last column names the
exercises each tutorial prepares.
"""


def _remove_abandoned(out: Path) -> None:
    """Remove the building folders of earlier builds into ``out``, and their kernels' socket
    folders, whose process is gone (killed with SIGKILL, which no code can clean up after);
    a running build's folders are kept."""
    for parent, pattern in (
        (out.parent, rf"^\.{re.escape(out.name)}\.building-(\d+)-"),
        (Path(tempfile.gettempdir()), rf"^{SOCKETS}(\d+)-"),  # a kernel's sockets
    ):
        for folder in parent.iterdir():
            match = re.match(pattern, folder.name)
            if match and folder.is_dir() and not _alive(int(match.group(1))):
                shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_figures_shown(script: Path, run: Executed, figures: Path) -> None:
    """Every figure the tutorial saved must show in its notebook, so on its page."""
    saved = len(list(figures.glob("*.png"))) if figures.is_dir() else 0
    shown = sum(
        "image/png" in out.get("data", {})
        for cell in run.notebook.cells
        for out in cell.get("outputs", [])
    )
    if shown < saved:
        raise RuntimeError(
            f"site: tutorial {script.name} saved {saved} figures but showed {shown}; save "
            "figures with numpy_unet.teach.tutorial.save, which also shows them in a notebook"
        )


def _exercises(number: str) -> list[str]:
    """The course kit's exercises a tutorial prepares: a layer's name stands for both its
    passes (``conv2d`` -> ``conv2d_backward``, ``conv2d_forward``)."""
    names = []
    for name in EXERCISES_BY_TUTORIAL.get(number, []):
        whole = name.endswith(("_backward", "_forward"))
        names += [name] if whole else [f"{name}_backward", f"{name}_forward"]
    return names


def _require_extra() -> None:
    """An ImportError saying how to install what building the site needs, if it is missing."""
    import importlib.util

    missing = [
        name
        for name in ("jupytext", "nbclient", "nbformat", "ipykernel", "markdown_it")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ImportError(
            f"site: building the site needs {', '.join(missing)}: "
            'pip install "numpy-unet[site]" (or pip install ".[site]" in the repository)'
        )


def _summaries(readme: Path) -> dict[str, str]:
    """What each tutorial teaches, from the table of ``tutorials/README.md``."""
    if not readme.is_file():
        return {}
    rows = re.findall(
        r"^\| \d\d \| `(\d\d_\w+\.py)` \| (.+?) \| [^|]* \|$", readme.read_text(), re.M
    )
    return dict(rows)


def _footer(machine: dict, when: str, mode: str, seconds: float, what: str = "it") -> str:
    """Which package and which machine produced the page's numbers."""
    return (
        f"Executed on {when} in {mode}, {what} in {seconds:.0f} s, with numpy-unet "
        f"{machine['numpy_unet']}, NumPy {machine['numpy']} and Python {machine['python']}, "
        f"on {machine['cpu']} ({machine['cores']} cores, {machine['system']} "
        f"{machine['machine']}). Another machine gives other times, and its last digits may "
        "differ."
    )


def _write(work: Path, name: str, page: object) -> None:
    """A page and its figure files."""
    (work / name).write_text(page.html, encoding="utf-8")
    for relative, data in page.figures.items():
        target = work / relative
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(data)


def _move_into_place(work: Path, out: Path, overwrite: bool) -> Path:
    """Move the finished site to ``out``: replacing an earlier site there with
    ``overwrite``, else into a folder claimed new (``out``, ``out-2``, ...)."""
    if overwrite and out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "site")
        os.replace(work, out)
        shutil.rmtree(old, ignore_errors=True)
        return out
    target = fresh_dir(out)  # claimed empty; a rename replaces an empty folder at once
    os.replace(work, target)
    return target
