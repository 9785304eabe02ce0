"""The package's layout: every import points down the list below, and none closes a cycle.

The parts of ``numpy_unet``, from the bottom up. A module may import from its own part and
from the parts on lower levels, never from a higher one. The package's ``__init__`` (the
names a user imports) and ``__main__`` stand on top of everything.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "numpy_unet"

LEVELS = {
    "tables": 0,
    "files": 0,
    "budgets": 0,  # what a file may declare before it is read
    "layers": 1,  # the layers: numpy only; a conv's engine is handed to it by its model
    "fast": 2,  # the speed engine: the layers' readable code, numpy, ctypes
    "losses": 2,
    "optimizers": 2,
    "gradcheck": 2,
    "metrics": 2,
    "labels": 2,  # class numbers and colours
    "class_metrics": 2,
    "data": 3,
    "train": 4,  # fit, checkpoints, tiling: work on any model with forward and backward
    "model": 5,  # the UNet, which offers fit as Keras's Model does
    "teach": 6,
    "app": 7,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").is_file() or (
        PACKAGE.parent / relative / "__init__.py"
    ).is_file()


def imports_of(path: Path) -> set[str]:
    """The package's modules ``path`` imports, at the top or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "numpy_unet"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "numpy_unet":
                continue
            for alias in node.names:  # `from . import summary` imports a module
                candidate = f"{source}.{alias.name}"
                found.add(candidate if is_module(candidate) else source)
    return found - {name}


GRAPH = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def part(name: str) -> str | None:
    pieces = name.split(".")
    return pieces[1] if len(pieces) > 1 else None  # None: the package itself


def test_every_part_of_the_package_has_a_level():
    tops = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert tops - {"__init__", "__main__"} == set(LEVELS)


def level(module: str) -> int:
    """A part's level; the package itself stands as high as what it imports at once (its
    other names load on first use, see its ``__getattr__``)."""
    if part(module) is None:
        return max(level(t) for t in GRAPH["numpy_unet"])
    return LEVELS[part(module)]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    if part(module) in (None, "__main__"):
        return  # the package's front door may import anything
    up = [t for t in GRAPH[module] if level(t) > level(module)]
    assert not up, f"{module} (level {level(module)}) imports from higher levels: {up}"


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [node])


def test_the_checker_sees_relative_and_late_imports():
    assert "numpy_unet.train.fit" in GRAPH["numpy_unet.model.unet"]  # from ..train import fit
    assert "numpy_unet.model" in GRAPH["numpy_unet.app.cli"]  # inside functions
    assert GRAPH["numpy_unet.fast.allocator"] == set()  # imports nothing of the package


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_layers_losses_and_gradcheck_import_without_matplotlib():
    out = run_python(
        "import sys\n"
        "sys.modules['matplotlib'] = None  # any import of matplotlib now fails\n"
        "import numpy_unet.layers, numpy_unet.losses, numpy_unet.gradcheck\n"
        "from numpy_unet import UNet\n"  # the model and fit need no matplotlib either
        "from numpy_unet.data import synthetic_membranes\n"
        "x, y = synthetic_membranes(2, size=16, seed=0)\n"
        "model = UNet((16, 16, 1), filters=2, depth=2, seed=0)\n"
        "model.compile('adam', 'binary_crossentropy', metrics=[])\n"
        "model.fit(x, y, verbose=0)\n"
        "print('ok')\n"
    )
    assert out.strip() == "ok"


def test_importing_the_layers_loads_only_the_layers():
    out = run_python(
        "import sys\nimport numpy_unet.layers\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('numpy_unet'))))"
    )
    loaded = {part(m) for m in out.split()}
    assert loaded <= {None, "layers", "gradcheck", "tables"}, out
    assert "matplotlib" not in out


def test_importing_the_package_or_building_a_model_starts_nothing():
    """No thread, no process, no search for a library (ctypes) before a model's first pass;
    the first pass of a thin network's batch starts one worker process, which close() ends."""
    out = run_python(
        "import ctypes, os, threading\n"
        "loaded = []\n"
        "real = ctypes.CDLL.__init__\n"
        "ctypes.CDLL.__init__ = lambda self, *a, **k: loaded.append(a[0]) or real(self, *a, **k)\n"
        "def children():\n"
        "    path = f'/proc/{os.getpid()}/task/{os.getpid()}/children'\n"
        "    return open(path).read().split() if os.path.exists(path) else []\n"
        "import numpy_unet.layers, numpy_unet.fast\n"
        "from numpy_unet import UNet\n"
        "model = UNet((8, 8, 1), filters=2, depth=2)\n"
        "print(len(loaded), threading.active_count(), len(children()))\n"
        "import numpy as np\n"
        "model.predict(np.zeros((2, 8, 8, 1), np.float32))\n"
        "print(len(loaded) > 0, len(children()))\n"
        "model.close()\n"
        "print(len(children()))\n"
    )
    before, first, closed = out.splitlines()
    assert before == "0 1 0", out  # nothing loaded, one thread, no child
    if os.path.exists("/proc/self/task") and os.name == "posix":
        assert first == "True 1" and closed == "0", out
