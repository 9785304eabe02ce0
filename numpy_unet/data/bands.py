"""Decoding an image file a band of rows at a time, so that a large image never exists whole
as floating-point numbers.

``matplotlib.image.imread`` returns an 8192 x 8192 RGBA PNG as 1 GiB of float32, and turning
that into gray in float64 takes 1.5 GiB more. Here Pillow (which matplotlib requires, and
uses to decode) decodes the file into its own compact image, 256 MiB for 8-bit RGBA at that
size, and :class:`Bands` hands out its rows ``BAND_ROWS`` at a time, each band exactly the rows
``imread`` would have returned: the same dtype (float32 in [0, 1] for a PNG, uint8 or uint16
for JPEG, BMP and TIFF) and the same channels. The caller turns each band into what it keeps
(gray float32, mask levels) and drops it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

BAND_ROWS = 512  # rows converted at a time: 8192 wide x 4 channels x 4 bytes = 64 MiB a band


class Bands:
    """The pixels of one decoded image, a band of rows at a time.

    Parameters
    ----------
    height : int
        The image's number of rows.
    read : callable
        ``read(top, bottom)`` returns rows ``top:bottom`` as ``(rows, W)`` or
        ``(rows, W, C)``, as ``matplotlib.image.imread`` would.
    """

    def __init__(self, height: int, read: Callable[[int, int], np.ndarray]) -> None:
        self.height, self._read = height, read
        first = read(0, min(1, height))
        self.shape, self.dtype = (height, *first.shape[1:]), first.dtype

    def __iter__(self) -> Iterator[np.ndarray]:
        """Each band of rows in turn, from the top."""
        for top in range(0, self.height, BAND_ROWS):
            yield self._read(top, min(top + BAND_ROWS, self.height))

    def whole(self) -> np.ndarray:
        """The whole image, as ``imread`` returns it."""
        out = np.empty(self.shape, self.dtype)
        for top, band in zip(range(0, self.height, BAND_ROWS), self):
            out[top : top + len(band)] = band
        return out


def array_bands(pixels: np.ndarray) -> Bands:
    """Bands of an image already in memory (a TIFF page)."""
    return Bands(len(pixels), lambda top, bottom: pixels[top:bottom])


@contextmanager
def pillow_bands(path: Path) -> Iterator[Bands]:
    """Decode ``path`` with Pillow and give its rows as ``matplotlib.image.imread`` would.

    Raises what Pillow raises for a file it cannot read (OSError, ValueError, SyntaxError).
    """
    from PIL import Image, PngImagePlugin  # Pillow comes with matplotlib

    is_png = path.suffix.lower() == ".png"
    with (PngImagePlugin.PngImageFile if is_png else Image.open)(os.fspath(path)) as image:
        convert = _png_floats(image) if is_png else _integers(image)  # before load closes it
        image.load()  # decoded once, into Pillow's own compact buffer
        width = image.size[0]
        yield Bands(image.size[1], lambda top, bottom: convert(image.crop((0, top, width, bottom))))


def _png_floats(image) -> Callable:
    """What matplotlib's PNG reader does to each band: stored values divided by the largest
    a pixel of the file's bit depth can hold, as float32 (palette and gray+alpha as RGBA)."""
    mode, rawmode = image.mode, image.png.im_rawmode
    if rawmode == "1":
        return lambda band: np.asarray(band, np.float32)
    top = {"L;2": 2**2 - 1, "L;4": 2**4 - 1, "L": 2**8 - 1, "I;16B": 2**16 - 1}.get(rawmode)
    if top is not None:
        return lambda band: np.divide(band, top, dtype=np.float32)
    if mode in ("RGB", "RGBA"):  # 16-bit colour comes from Pillow already coarsened to 8 bits
        return lambda band: np.divide(band, 2**8 - 1, dtype=np.float32)
    if mode in ("P", "LA"):
        return lambda band: np.divide(band.convert("RGBA"), 2**8 - 1, dtype=np.float32)
    raise ValueError(f"unknown PNG pixel format {rawmode!r}")


def _integers(image) -> Callable:
    """What matplotlib's reader does to each band of a JPEG or BMP: its integers as stored."""
    mode = image.mode
    if mode in ("RGBA", "RGBX", "RGB", "L"):
        return np.asarray
    if mode.startswith("I;16"):
        order = ">u2" if mode.endswith("B") else "<u2"

        def sixteen(band) -> np.ndarray:
            raw = np.frombuffer(band.tobytes("raw", mode), order)
            return raw.reshape(band.size[::-1]).astype("=u2")

        return sixteen
    return lambda band: np.asarray(band.convert("RGBA"))
