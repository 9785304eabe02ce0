"""Images decoded a band of rows at a time (``data/bands.py``) give exactly what
``matplotlib.image.imread`` gives for the whole file, in every PNG pixel format, JPEG and BMP;
``read_image`` and the mask reader give what they gave when they read the whole array.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from PIL import Image

import numpy_unet.data.bands as bands
from numpy_unet.data import read_image
from numpy_unet.data.loading import LUMINANCE, _read_mask, _read_pixels

HEIGHT, WIDTH = 11, 7  # bands of 3 rows: three whole bands and a short one


@pytest.fixture(autouse=True)
def small_bands(monkeypatch):
    monkeypatch.setattr(bands, "BAND_ROWS", 3)
    import numpy_unet.data.loading as loading

    monkeypatch.setattr(loading, "BAND_ROWS", 3)


def write_png(path: Path, values: np.ndarray, bits: int, color_type: int, palette=None) -> Path:
    """A PNG of ``values`` (H, W) or (H, W, C), at any bit depth PNG allows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = []
    for row in values.reshape(len(values), -1):
        if bits < 8:  # pack the samples into bytes, most significant first
            per = 8 // bits
            row = np.pad(row, (0, -len(row) % per)).reshape(-1, per)
            row = (row << (bits * np.arange(per - 1, -1, -1))).sum(1).astype(np.uint8)
            rows.append(b"\0" + row.tobytes())
        else:
            rows.append(b"\0" + row.astype(">u2" if bits == 16 else np.uint8).tobytes())
    header = struct.pack(">IIBBBBB", values.shape[1], values.shape[0], bits, color_type, 0, 0, 0)
    body = chunk(b"IHDR", header)
    if palette is not None:
        body += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    body += chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


FORMATS = {  # name: (bits, colour type, channels)
    "gray1": (1, 0, 1),
    "gray2": (2, 0, 1),
    "gray4": (4, 0, 1),
    "gray8": (8, 0, 1),
    "gray16": (16, 0, 1),
    "rgb8": (8, 2, 3),
    "rgb16": (16, 2, 3),
    "gray_alpha8": (8, 4, 2),
    "gray_alpha16": (16, 4, 2),
    "rgba8": (8, 6, 4),
    "rgba16": (16, 6, 4),
    "palette4": (4, 3, 1),
    "palette8": (8, 3, 1),
}


def a_png(tmp_path: Path, name: str, seed: int = 0, equal: bool = False) -> Path:
    bits, color_type, channels = FORMATS[name]
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2**bits, (HEIGHT, WIDTH, channels))  # palette: the indices
    if equal and channels >= 3:
        values[..., 1:3] = values[..., :1]  # gray stored as colour
    palette = rng.integers(0, 256, (2**bits, 3)) if color_type == 3 else None
    return write_png(
        tmp_path / f"{name}.png",
        values[..., 0] if channels == 1 else values,
        bits,
        color_type,
        palette,
    )


def old_read_image(path: Path) -> np.ndarray:
    """read_image as it was, from the whole array matplotlib returns."""
    pixels = matplotlib.image.imread(path)
    if pixels.dtype.kind == "u":
        pixels = pixels / np.iinfo(pixels.dtype).max
    if pixels.ndim == 3:
        rgb = pixels[..., :-1] if pixels.shape[-1] in (2, 4) else pixels
        same = all(np.array_equal(rgb[..., c], rgb[..., 0]) for c in range(1, rgb.shape[-1]))
        pixels = rgb[..., 0] if same else rgb @ np.array(LUMINANCE)
    return pixels.astype(np.float32)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("equal", [False, True])
def test_png_bands_equal_matplotlib_in_every_format(tmp_path, name, equal):
    path = a_png(tmp_path, name, equal=equal)
    whole = matplotlib.image.imread(path)
    ours = _read_pixels(path, "test")
    assert ours.dtype == whole.dtype and ours.shape == whole.shape
    np.testing.assert_array_equal(ours, whole)
    np.testing.assert_array_equal(read_image(path), old_read_image(path))


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [(".jpg", m) for m in ("L", "RGB", "CMYK")] + [(".bmp", m) for m in ("L", "RGB", "RGBA", "P")],
)
def test_jpeg_and_bmp_bands_equal_matplotlib(tmp_path, mode, suffix):
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    path = tmp_path / f"x{suffix}"
    (rgb.convert(mode) if mode != "P" else rgb.quantize(16)).save(path)
    np.testing.assert_array_equal(_read_pixels(path, "test"), matplotlib.image.imread(path))
    np.testing.assert_array_equal(read_image(path), old_read_image(path))


def test_a_colour_image_gray_in_every_band_but_one_is_converted_with_luminance(tmp_path):
    values = np.repeat(np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH, 1) % 256, 3, axis=2)
    values[9, 2] = (10, 200, 30)  # one pixel of colour, in the last band
    path = write_png(tmp_path / "x.png", values, 8, 2)
    image = read_image(path)
    np.testing.assert_array_equal(image, old_read_image(path))
    assert image[9, 2] == np.float32((0.299 * 10 + 0.587 * 200 + 0.114 * 30) / 255)


def old_read_mask(path: Path) -> np.ndarray:
    """The mask reader as it was, from the whole array matplotlib returns (a PNG)."""
    pixels = matplotlib.image.imread(path)
    if pixels.ndim == 3:
        pixels = pixels[..., 0]
    scaled = pixels * 255
    eight_bit = np.abs(scaled - np.rint(scaled)).max() < 1e-3
    levels = np.rint(scaled) if eight_bit else np.rint(pixels * 65535)
    top = float(levels.max())
    return levels / (1 if top <= 1 else 255 if top <= 255 else 65535)


def test_masks_read_in_bands_equal_the_whole_array_rule(tmp_path):
    # 16-bit, with the first bands holding only multiples of 257 (which alone look 8-bit)
    values = np.zeros((HEIGHT, WIDTH), np.int64)
    values[:6] = 257 * np.arange(WIDTH) * 30
    values[6:] = 40000 + np.arange(WIDTH)  # not k * 257: 16-bit
    path = write_png(tmp_path / "m16.png", values, 16, 0)
    np.testing.assert_array_equal(_read_mask(path), old_read_mask(path))
    np.testing.assert_allclose(_read_mask(path), values / 65535, rtol=1e-7)
    # 8-bit, stored as RGBA with equal channels; and 0/1 masks
    values = np.where(np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) % 3, 255, 0)
    rgba = np.stack([values] * 3 + [np.full_like(values, 255)], -1)
    np.testing.assert_array_equal(
        _read_mask(write_png(tmp_path / "m8.png", rgba, 8, 6)), values / 255
    )
    ones = (values > 0).astype(np.int64)
    np.testing.assert_array_equal(_read_mask(write_png(tmp_path / "m1.png", ones, 8, 0)), ones)
    assert _read_mask(write_png(tmp_path / "b.png", ones, 1, 0)).dtype == np.float32


def test_a_colour_mask_is_refused_whichever_band_the_colour_is_in(tmp_path):
    values = np.zeros((HEIGHT, WIDTH, 3), np.int64)
    values[10, 6] = (255, 0, 0)  # the last band's last pixel
    with pytest.raises(ValueError, match="is a colour image whose channels differ"):
        _read_mask(write_png(tmp_path / "m.png", values, 8, 2))
