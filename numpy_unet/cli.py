"""The ``numpy-unet`` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def _gradcheck(args: argparse.Namespace) -> int:
    from .selfcheck import builtin_checks

    rows = [("layer / loss", "tensor", "shape", "max abs err", "max rel err", "result")]
    failed = []
    for report in builtin_checks(seed=args.seed):
        if args.verbose:
            print(report, end="\n\n")
        for c in report.checks:
            rows.append(
                (
                    report.layer,
                    c.name,
                    str(c.shape),
                    f"{c.max_abs_error:.1e}",
                    f"{c.max_rel_error:.1e}",
                    "ok" if c.passed else "FAIL",
                )
            )
        if not report.passed:
            failed.append(report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    worst = max(float(r[4]) for r in rows[1:])
    print(
        f"\n{len(rows) - 1} gradients checked in float64 against central differences "
        f"(eps 1e-6, atol 1e-5, rtol 1e-3); worst relative error {worst:.1e}."
    )
    if failed:
        print(f"FAILED: {', '.join(r.layer for r in failed)}")
        return 1
    print("All gradients agree.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``numpy-unet`` command."""
    parser = argparse.ArgumentParser(
        prog="numpy-unet", description="The UNet, written out layer by layer in NumPy."
    )
    parser.add_argument("--version", action="version", version=f"numpy-unet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("gradcheck", help="gradient-check every built-in layer and loss")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("-v", "--verbose", action="store_true", help="print each layer's table")
    p.set_defaults(func=_gradcheck)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
