"""Gradient-check every built-in layer and loss on small random float64 inputs.

This is what ``numpy-unet gradcheck`` runs: every backward case of the shared registry
(:mod:`numpy_unet.teach.checks`) on this package's own classes, each against central
differences of its own forward (or a stated rule), one verdict per case. In a student copy
it checks the student's code the same way. The test suite sweeps many more configurations.
"""

from __future__ import annotations

from collections.abc import Iterator

from .checks import CHECKS, Verdict, package_lib


def builtin_checks(include_unet: bool = False) -> Iterator[tuple[str, Verdict]]:
    """Yield (exercise, verdict) for every backward case; failures are verdicts, not errors.

    ``include_unet`` adds the end-to-end check of a small UNet with its loss.
    """
    lib = package_lib()
    for name, cases in CHECKS.items():
        if name.endswith("_backward") and (name != "unet_backward" or include_unet):
            for case in cases:
                yield name, case.run(lib)
