"""``model.summary()``: Keras's table, plus the multiply-adds each layer costs per image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..layers import Conv2D, Conv2DTranspose, Layer
from ..tables import format_table


@dataclass
class Row:
    name: str
    kind: str
    shape: tuple  # output shape, batch as None
    params: int
    mult_adds: int  # per image
    inbound: list[str]


def multiply_adds(layer: Layer, in_shape: tuple, out_shape: tuple) -> int:
    """Multiply-adds of one image through ``layer`` (0 for layers without weights).

    Conv2D: every output pixel and filter sums kh*kw*Cin products; Conv2DTranspose: every
    *input* pixel multiplies its Cin values into a kh x kw x filters patch.
    """
    if isinstance(layer, Conv2D):
        kh, kw, cin, cout = layer.params["kernel"].shape
        return int(out_shape[1] * out_shape[2] * kh * kw * cin * cout)
    if isinstance(layer, Conv2DTranspose):
        kh, kw, cout, cin = layer.params["kernel"].shape
        return int(in_shape[1] * in_shape[2] * kh * kw * cin * cout)
    return 0


def row(layer: Layer, in_shape: tuple, out_shape: tuple, inbound: list[str]) -> Row:
    out = (None, *out_shape[1:])
    return Row(
        layer.name,
        type(layer).__name__,
        out,
        layer.count_params(),
        multiply_adds(layer, in_shape, out_shape),
        inbound,
    )


def _si(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def print_summary(model: object, rows: list[Row], print_fn: Callable[[str], None] = print) -> None:
    """Print the table for ``rows`` (from ``UNet.build``) the way Keras lays it out."""
    table = [("Layer (type)", "Output Shape", "Param #", "Mult-Adds", "Connected to")]
    for r in rows:
        table.append(
            (
                f"{r.name} ({r.kind})",
                str(r.shape),
                f"{r.params:,}",
                _si(r.mult_adds) if r.mult_adds else "0",
                ", ".join(r.inbound) or "-",
            )
        )
    lines = format_table(table)
    full = "-" * len(lines[1])
    total = sum(r.params for r in rows)
    macs = sum(r.mult_adds for r in rows)
    dtype = np.dtype(model.dtype)
    print_fn(f'Model: "{model.name}"')
    print_fn(full)
    for line in lines:
        print_fn(line)
    print_fn(full)
    print_fn(f"Total params: {total:,} ({total * dtype.itemsize / 2**20:.2f} MB in {dtype})")
    print_fn(f"Multiply-adds per image: {_si(macs)} (forward pass about {_si(2 * macs)}FLOP)")
