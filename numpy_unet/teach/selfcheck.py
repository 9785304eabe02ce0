"""Gradient-check every built-in layer and loss on small random float64 inputs.

This is what ``numpy-unet gradcheck`` runs: every case of the shared registry
(:mod:`numpy_unet.teach.checks`) on this package's own classes, one report per case. The
test suite sweeps many more configurations.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..gradcheck import GradcheckReport
from .checks import CHECKS, package_lib


def builtin_checks(include_unet: bool = False) -> Iterator[GradcheckReport]:
    """Yield one report per case of every exercise; failures are reports, not errors.

    ``include_unet`` adds the end-to-end check of a small UNet with its loss.
    """
    lib = package_lib()
    for name, cases in CHECKS.items():
        if name.endswith("_backward") and (name != "unet_backward" or include_unet):
            for case in cases:
                yield case.run(lib)
