"""A tutorial opened as a notebook runs in a real Jupyter kernel and shows its figures inline.

Needs the ``notebooks`` extra (jupytext, nbclient, ipykernel); ``.ci/run`` installs it, so CI
runs this test. Without the extra it is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "tutorials" / "02_pooling_and_upsampling.py"


def test_a_tutorial_in_a_kernel_shows_every_figure_inline(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMPY_UNET_QUICK", "1")  # the kernel inherits this environment
    monkeypatch.delenv("NUMPY_UNET_FIGURES", raising=False)  # the default folder, as a user
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own (inline) backend
    notebook = jupytext.read(TUTORIAL)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()

    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    saved = re.findall(r'save\(fig, "(\w+\.png)"\)', TUTORIAL.read_text())
    assert len(saved) >= 3
    assert len(images) == len(saved)  # each figure shows below its cell
    figures = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert figures == sorted(saved)  # and is saved beside the notebook, not elsewhere
    shown = [out.get("data", {}).get("text/plain", "") for out in outputs]
    assert not any("PosixPath" in text for text in shown)  # no stray return values
