"""Gradient-check every built-in layer and loss on small random float64 inputs.

This is what ``numpy-unet gradcheck`` runs: every check of the shared registry
(:mod:`numpy_unet.teach.checks`), one report per layer configuration. The test suite sweeps
many more configurations.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..gradcheck import GradcheckReport
from .checks import CHECKS


def builtin_checks(include_unet: bool = False) -> Iterator[GradcheckReport]:
    """Yield one report per configuration of every check; failures are reports, not errors.

    ``include_unet`` adds the end-to-end check of a small UNet with its loss.
    """
    for name, run in CHECKS.items():
        if name != "unet_backward" or include_unet:
            yield from run(False)
