"""Conventions shared by the tutorial scripts in ``tutorials/``.

- ``NUMPY_UNET_QUICK=1``: run in well under a minute (smaller sizes, fewer steps), with the
  same code path; the tests run every tutorial this way.
- ``NUMPY_UNET_FIGURES=DIR``: where figures go (default ``tutorials/figures/``), as PNG.
  Opened as a notebook (jupytext), the figures also show inline, below their cell, and go
  to ``figures/`` in the notebook's folder.
- ``--data DIR`` on the command line, or ``NUMPY_UNET_DATA=DIR``: a folder of real ISBI 2012
  images (the seed's image/ + label/ layout); without it, generated membranes are used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np


def quick() -> bool:
    """True when ``NUMPY_UNET_QUICK`` is set to something other than '' or '0'."""
    return os.environ.get("NUMPY_UNET_QUICK", "") not in ("", "0")


def pick(full: object, fast: object) -> object:
    """``fast`` in quick mode, ``full`` otherwise: ``steps = pick(300, 5)``."""
    return fast if quick() else full


def in_notebook() -> bool:
    """True when running in a Jupyter (IPython) kernel rather than as a script."""
    return "ipykernel" in sys.modules


def figures_dir() -> Path:
    """``NUMPY_UNET_FIGURES``, else ``figures/`` beside the running tutorial script; in a
    notebook, where no script runs, ``figures/`` in the kernel's folder (the notebook's)."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if in_notebook() or not script:
        default = Path.cwd() / "figures"
    else:
        default = Path(script).resolve().parent / "figures"
    folder = Path(os.environ.get("NUMPY_UNET_FIGURES", default))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save(fig: object, name: str) -> None:
    """Save a matplotlib figure as ``name`` (a .png) in the figures folder and print the
    path; in a notebook, also show it below the cell."""
    path = figures_dir() / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"saved figure {path}")
    show(path)


def show(path: str | os.PathLike) -> None:
    """In a notebook, show the PNG at ``path`` below the cell (as a script: nothing)."""
    if in_notebook():
        from IPython.display import Image, display

        display(Image(filename=str(path)))


def data_dir() -> Path | None:
    """The ISBI folder given by ``--data DIR`` or ``NUMPY_UNET_DATA``, if any."""
    args = sys.argv[1:]
    if "--data" in args and args.index("--data") + 1 < len(args):
        return Path(args[args.index("--data") + 1])
    env = os.environ.get("NUMPY_UNET_DATA")
    return Path(env) if env else None


def membranes(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` images and masks of ``size`` x ``size``: real ISBI ones if a folder was given
    (in the folder's order, at most as many as it holds), else generated with ``seed``.
    Returns (images, masks, a description for titles)."""
    from ..data import load_folder, synthetic_membranes

    folder = data_dir()
    if folder is not None:
        x, y = load_folder(folder, size=size)
        if len(x) < n:
            print(f"note: {folder} holds {len(x)} image(s), fewer than the {n} asked for")
        return x[:n], y[:n], f"ISBI 2012 ({folder})"
    x, y = synthetic_membranes(n, size=size, seed=seed)
    return x, y, "generated membranes"
