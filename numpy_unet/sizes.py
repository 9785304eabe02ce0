"""Which input sizes a UNet accepts, and what it does to them, one axis at a time.

Every pooling halves the height and width, and the expanding path doubles them again; the
doubled map must line up with the skip saved on the way down. With 'same' padding that
holds when H and W are divisible by 2**depth. With 'valid' padding each 3x3 conv also
loses 2 pixels, and every map entering a pooling must have an even size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .unet import UNet


def _lengths(n: int, depth: int, padding: str, upsampling: str, head_conv: bool) -> int | None:
    """Output length for an input of length ``n``, or None if the U cannot take it."""
    lost = 0 if padding == "same" else 2  # pixels each 3x3 conv removes
    skips = []
    for _ in range(depth):  # contracting path
        n -= 2 * lost
        if n < 2 or n % 2:  # the pooling needs an even length, or a row is dropped
            return None
        skips.append(n)
        n //= 2
    n -= 2 * lost  # bottom
    if n < 1:
        return None
    for skip in reversed(skips):  # expanding path
        n *= 2
        if upsampling == "upsample" and padding == "valid":
            n -= 1  # the 2x2 'valid' up-conv after UpSampling2D
        if n < 1 or n > skip or (padding == "same" and n != skip):
            return None
        n -= 2 * lost
        if n < 1:
            return None
    if head_conv:
        n -= lost
    return n if n >= 1 else None


def _args(model: UNet) -> tuple:
    c = model.config
    return c["depth"], c["padding"], c["upsampling"], c["head_conv"]


def output_length(model: UNet, n: int) -> int | None:
    """Length of the output along an axis of input length ``n`` (None: not accepted)."""
    return _lengths(int(n), *_args(model))


def nearest_valid(model: UNet, n: int) -> tuple[int | None, int | None]:
    """The closest accepted lengths below and above ``n``."""
    below = next((m for m in range(n - 1, 0, -1) if output_length(model, m)), None)
    above = next(
        (
            m
            for m in range(n + 1, 4 * n + 2 ** model.config["depth"] * 64)
            if output_length(model, m)
        ),
        None,
    )
    return below, above


def check_input_size(model: UNet, hwc: tuple) -> tuple[int, int, int]:
    """Raise a ValueError naming the nearest valid sizes unless (H, W, C) is accepted."""
    h, w, c = (int(v) for v in hwc)
    expected_c = model.config["input_shape"][2]
    if c != expected_c:
        raise ValueError(
            f"UNet '{model.name}': built for {expected_c}-channel input, got {c} channels "
            f"(input shape (H, W, C) = {(h, w, c)})"
        )
    depth, padding = model.config["depth"], model.config["padding"]
    for axis, n in (("height", h), ("width", w)):
        if output_length(model, n) is None:
            below, above = nearest_valid(model, n)
            nearest = " or ".join(str(m) for m in (below, above) if m)
            if padding == "same":
                why = (
                    f"with padding='same' it must be divisible by 2**depth = {2**depth}, or "
                    "a pooling drops a row and the skip concatenation fails"
                )
            else:
                why = (
                    "with padding='valid' every feature map entering a pooling must have an "
                    f"even size (and stay positive through {depth} poolings)"
                )
            raise ValueError(
                f"UNet '{model.name}': input {axis} {n} does not fit a depth-{depth} UNet: {why}. "
                f"Nearest valid {axis}s: {nearest}."
            )
    return h, w, c


def center_crop(skip_shape: tuple, up_shape: tuple) -> tuple[tuple[int, int], tuple[int, int]]:
    """Cropping ((top, bottom), (left, right)) that centres ``skip`` on the up-sampled map."""
    dh, dw = skip_shape[1] - up_shape[1], skip_shape[2] - up_shape[2]
    return (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)
