"""Plain-text tables: the one formatter behind every table the package prints."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[Sequence[str]], rule: str = "-") -> list[str]:
    """Lines of an aligned table: ``rows[0]`` is the header, a rule of ``rule`` under it.

    Columns are left-aligned, two spaces apart, each as wide as its widest cell; trailing
    spaces are dropped. ``"-" * len(lines[1])`` is a full-width line.

    >>> print("\\n".join(format_table([("layer", "result"), ("conv2d", "ok")])))
    layer   result
    ------  ------
    conv2d  ok
    """
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join(rule * w for w in widths))
    return lines
