"""Every tutorial runs top to bottom in quick mode, headless, and saves its figures."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


def test_there_are_at_least_eight_tutorials():
    assert len(TUTORIALS) >= 8, [p.name for p in TUTORIALS]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs_in_quick_mode(path, tmp_path):
    text = path.read_text()
    assert text.startswith("# %% [markdown]") or "\n# %% [markdown]" in text  # notebook cells
    assert "\n# %%\n" in text
    env = dict(os.environ, NUMPY_UNET_QUICK="1", MPLBACKEND="Agg", NUMPY_UNET_FIGURES=str(tmp_path))
    env.pop("NUMPY_UNET_DATA", None)
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    number = path.name[:2]
    figures = sorted(p.name for p in tmp_path.glob("*.png"))
    assert figures, f"{path.name} saved no figure"
    assert all(name.startswith(number) for name in figures), figures
    assert all((tmp_path / name).stat().st_size > 1000 for name in figures)
