"""numpy-unet: the UNet of the Keras seed, written out layer by layer in NumPy.

The package, from the bottom up (each part imports only the parts above it in this list):

- ``layers``: the layers, each forward beside its backward, and their loop versions;
- ``fast``: the speed engine a UNet owns while its switch is on (faster convolutions, the
  cores' use), and the allocator setting;
- ``losses``, ``optimizers``, ``gradcheck``, ``metrics`` (and ``tables``, ``files``);
- ``data``: generated membranes, image folders, augmentation, the paper's weight maps;
- ``train``: ``fit`` and its checkpoints, tiled prediction, the paper's recipe;
- ``model``: the UNet itself, its sizes, summary and weight files;
- ``teach``: the course kit, its grader, the shared gradient checks, the tutorials' helpers;
- ``app``: the ``numpy-unet`` command, the demo and the plots.

``import numpy_unet.layers`` loads only the layers and the gradient checker (and numpy), and
starts nothing; ``UNet`` and the other parts are loaded when first used.
"""

from __future__ import annotations

import importlib

# the function, not the module of the same name: imported here so that it always wins
from .gradcheck import GradcheckError, gradcheck, gradcheck_loss

__version__ = "0.1.0"

# name -> the module that defines it, imported on first use (PEP 562)
_EXPORTS = {"UNet": ".model", "load_model": ".model"}  # relative: a course copy loads as is
_SUBPACKAGES = (
    "app",
    "data",
    "fast",
    "files",
    "layers",
    "losses",
    "metrics",
    "model",
    "optimizers",
    "tables",
    "teach",
    "train",
)

__all__ = [
    "GradcheckError",
    "__version__",
    "gradcheck",
    "gradcheck_loss",
    *_EXPORTS,
    *_SUBPACKAGES,
]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'numpy_unet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
