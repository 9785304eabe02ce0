"""``numpy-unet autograder OUT.zip``: what a teacher uploads to Gradescope as the autograder.

The zip holds, at its top level, the two files Gradescope runs and this package's source:

- ``setup.sh`` (run once, as root, when the autograder image is built): installs Python,
  NumPy at this machine's version and this package into ``/opt/numpy-unet``; makes the
  package (the reference answers) and ``/autograder/source`` readable by root alone; adds
  the account ``student`` that the students' code runs as;
- ``run_autograder`` (run for each submission, as root): ``numpy-unet grade`` on
  ``/autograder/submission`` into ``/autograder/results/results.json``, as ``student``
  when that account exists. ``AUTOGRADER_ROOT`` and ``NUMPY_UNET_PYTHON`` move the paths
  (the tests run it in a temporary folder laid out like ``/autograder``);
- ``numpy-unet/``: this package's ``numpy_unet/`` and a ``pyproject.toml`` to install it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .. import __version__
from .course import PACKAGE, exercises_of

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
if ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q python3 python3-venv python3-pip
fi
python3 -m venv /opt/numpy-unet
/opt/numpy-unet/bin/pip install --quiet "numpy=={numpy}" "matplotlib>=3.5"
/opt/numpy-unet/bin/pip install --quiet --no-deps "$HERE/numpy-unet"
# the reference answers, and this folder: readable by root alone
FIND='import numpy_unet, os; print(os.path.dirname(numpy_unet.__file__))'
PACKAGE="$(/opt/numpy-unet/bin/python -c "$FIND")"
chmod -R go-rwx "$PACKAGE" "$HERE"
# the account the students' code runs as
id -u student >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin student
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for each submission, as root. Paths: AUTOGRADER_ROOT (default
# /autograder) and NUMPY_UNET_PYTHON (default the interpreter setup.sh installed).
set -u
ROOT="$(cd "${{AUTOGRADER_ROOT:-/autograder}}" && pwd)"
PYTHON="${{NUMPY_UNET_PYTHON:-/opt/numpy-unet/bin/python}}"
AS=()
if [ "$(id -u)" = 0 ] && id -u student >/dev/null 2>&1; then AS=(--run-as student); fi
mkdir -p "$ROOT/results"
cd /  # -I and a neutral folder: no numpy_unet/ but the installed one is imported
exec "$PYTHON" -I -m numpy_unet grade "$ROOT/submission" --level {level} --timeout {timeout} \\
    --json "$ROOT/results/results.json" ${{AS[@]+"${{AS[@]}}"}}
"""

PYPROJECT = """[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "numpy-unet"
version = "{version}"
requires-python = ">=3.10"
dependencies = ["numpy>=1.23", "matplotlib>=3.5"]

[project.scripts]
numpy-unet = "numpy_unet.app.cli:main"

[tool.setuptools.packages.find]
include = ["numpy_unet*"]
"""


def write_bundle(out: str | os.PathLike, level: str = "backward", timeout: float = 60.0) -> Path:
    """Write the autograder zip to ``out`` (a new file)."""
    exercises_of(level)  # refuses an unknown level
    if not (np.isfinite(timeout) and timeout > 0):
        raise ValueError(f"numpy-unet autograder: --timeout must be positive, got {timeout}")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"numpy-unet autograder: {out} exists; choose another file")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"numpy-unet autograder: the folder {out.parent} does not exist")

    def executable(name: str, text: str) -> tuple[zipfile.ZipInfo, str]:
        info = zipfile.ZipInfo(name)
        info.external_attr = 0o100755 << 16  # a regular file, rwxr-xr-x
        return info, text

    with zipfile.ZipFile(out, "x", zipfile.ZIP_DEFLATED) as z:
        z.writestr(*executable("setup.sh", SETUP.replace("{numpy}", np.__version__)))
        z.writestr(*executable("run_autograder", RUN.format(level=level, timeout=f"{timeout:g}")))
        z.writestr("numpy-unet/pyproject.toml", PYPROJECT.format(version=__version__))
        for src in sorted(PACKAGE.rglob("*.py")):
            z.write(src, f"numpy-unet/numpy_unet/{src.relative_to(PACKAGE).as_posix()}")
    return out
