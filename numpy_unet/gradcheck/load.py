"""``FILE.py:NAME``: a class (or function) from a user's file, for ``numpy-unet gradcheck``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def load_target(target: str) -> object:
    """The object ``NAME`` defined in ``FILE.py``. The file runs as a module of its own,
    with its folder first on ``sys.path`` while it loads, so it may import its neighbours."""
    path, sep, name = target.rpartition(":")
    if not sep or not path.endswith(".py") or not name.isidentifier():
        raise ValueError(f"numpy-unet gradcheck: name the layer as FILE.py:NAME, got {target!r}")
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"numpy-unet gradcheck: no file {path}")
    module_name = f"_numpy_unet_gradcheck_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.parent))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(file.parent))
    found = getattr(module, name, None)
    if found is None:
        raise ValueError(f"numpy-unet gradcheck: {path} defines no {name}")
    return found
