"""The command line and the package's promises (dependencies, no frameworks inside)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

from numpy_unet.app.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_gradcheck_command_checks_every_builtin_layer_and_loss(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for name in (
        "Conv2D",
        "Conv2DTranspose",
        "MaxPooling2D",
        "UpSampling2D",
        "Concatenate",
        "Cropping2D",
        "Dropout",
        "ReLU",
        "Sigmoid",
        "Softmax",
        "BinaryCrossentropy",
        "DiceLoss",
        "CategoricalCrossentropy",
    ):
        assert name in out
    assert "FAIL" not in out and "All gradients agree." in out
    worst = float(out.split("worst relative error ")[1].split(".\n")[0])
    assert worst < 1e-6


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "numpy_unet", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("numpy-unet ")


def test_runtime_dependencies_are_numpy_and_matplotlib_only():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = sorted(d.split(">")[0].split("=")[0].strip() for d in project["dependencies"])
    assert names == ["matplotlib", "numpy"]
    assert project["scripts"]["numpy-unet"] == "numpy_unet.app.cli:main"


@pytest.mark.parametrize("path", sorted((ROOT / "numpy_unet").rglob("*.py")), ids=str)
def test_package_imports_no_framework(path):
    allowed = {"numpy", "matplotlib", "numpy_unet", "__future__"}
    if path.name == "tutorial.py":
        allowed.add("IPython")  # only when running in a Jupyter kernel, which is IPython
    if path.parent.name == "site":  # the optional extra numpy-unet[site], imported when used
        allowed |= {"jupytext", "nbclient", "nbformat", "jupyter_client", "markdown_it", "pygments"}
    if path.name == "bands.py":
        allowed.add("PIL")  # Pillow: matplotlib's own decoder, which matplotlib requires
    if path.name == "keras_files.py":
        allowed.add("h5py")  # the optional extra numpy-unet[keras], imported when first needed
    stdlib = set(sys.stdlib_module_names)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            tops = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            tops = [node.module.split(".")[0]]
        else:
            continue
        for top in tops:
            assert top in allowed or top in stdlib, f"{path.name} imports {top}"


def test_readme_shows_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert "pip install . && numpy-unet demo" in text
    assert 'pip install ".[test]" && python -m pytest' in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install . && numpy-unet demo" in ci
    assert 'pip install ".[test]" && python -m pytest' in ci


def test_readme_python_examples_run(capsys, tmp_path, monkeypatch):
    import re

    monkeypatch.chdir(tmp_path)  # the training example writes a checkpoint folder
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102
    assert "Total params: 31,031,685" in capsys.readouterr().out


def test_demo_help_describes_the_demo_as_it_runs(capsys):
    import re

    from numpy_unet.app.demo import DemoRecipe

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    r = DemoRecipe()
    n = r.train + r.validation + r.test
    assert f"Generate {n} EM-like membrane images ({r.size}x{r.size})" in text
    assert f"on {r.train} of them" in text and f"with {r.filters} filters" in text
    assert f"{r.epochs} epochs of {r.steps_per_epoch} steps" in text
    assert f"score {r.test} held-out images" in text
    assert re.search(r"--seed SEED\s+seed of the images", text)
