"""A small reader and writer for baseline TIFF stacks, written with numpy and struct.

The ISBI 2012 challenge ships its data as multi-page TIFF files (``train-volume.tif``, 30
pages of 512x512, 8-bit). This module reads such files without any imaging library.

TIFF in one paragraph. A file starts with an 8-byte header: ``II`` (little-endian) or ``MM``
(big-endian), the number 42, and the offset of the first IFD ("image file directory"). An IFD
is a list of 12-byte entries ``(tag, type, count, value or offset)`` followed by the offset of
the next IFD (0 for the last one); each IFD describes one page. The pixels of a page are stored
in strips of ``RowsPerStrip`` rows, at the positions listed in ``StripOffsets``.

Only the simplest kind of TIFF is read: uncompressed, grayscale, 8 or 16 bits per pixel, in
strips. Anything else (compressed, tiled, RGB, floating point) raises a ``ValueError`` that
names the file and the tag that is not supported.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

# tags used below (TIFF 6.0 specification, section 8)
IMAGE_WIDTH = 256
IMAGE_LENGTH = 257
BITS_PER_SAMPLE = 258
COMPRESSION = 259
PHOTOMETRIC = 262
STRIP_OFFSETS = 273
SAMPLES_PER_PIXEL = 277
ROWS_PER_STRIP = 278
STRIP_BYTE_COUNTS = 279
TILE_WIDTH = 322
TILE_OFFSETS = 324
SAMPLE_FORMAT = 339

# struct codes of the integer field types; other types (text, fractions, floats) are skipped,
# as no tag needed to read the pixels uses them
_INTEGER_TYPES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i"}

_COMPRESSION_NAMES = {
    2: "CCITT Huffman",
    5: "LZW",
    7: "JPEG",
    8: "Deflate",
    32773: "PackBits",
    32946: "Deflate",
}
_PHOTOMETRIC_NAMES = {2: "RGB", 3: "palette colour", 4: "transparency mask", 5: "CMYK"}

_CONVERT_HINT = (
    "Convert it to PNG files (one per page), or save it as an uncompressed grayscale TIFF "
    "(in ImageJ/Fiji: Image > Type > 8-bit, then File > Save As > Tiff...)"
)


# the most pixels read from one file, all pages together (8192 x 8192): a small file can
# declare huge pages, or many pages pointing at one strip; raise it with max_pixels
MAX_PIXELS = 2**26


def read_tiff_stack(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read every page of an uncompressed grayscale TIFF file.

    Parameters
    ----------
    path : str or os.PathLike
        The TIFF file: little- or big-endian, one or more pages, uncompressed, grayscale with 8
        or 16 bits per pixel, stored in strips.

    Returns
    -------
    np.ndarray
        The pages, shape ``(pages, H, W)``, dtype ``uint8`` or ``uint16`` as stored.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a TIFF file, is truncated, uses a feature this reader does not
        support (compression, tiles, colour, more than 16 bits), or has pages of different
        sizes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_tiff_stack: no such file: {path}")
    data = path.read_bytes()
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8:
        raise ValueError(
            f"read_tiff_stack: {path} is not a TIFF file: expected it to start with b'II' or "
            f"b'MM', got {data[:4]!r}"
        )
    version, offset = struct.unpack_from(order + "HI", data, 2)
    if version != 42:
        kind = "a BigTIFF file (version 43)" if version == 43 else f"version {version}"
        raise ValueError(
            f"read_tiff_stack: {path} is {kind}; only classic TIFF (version 42) can be read. "
            + _CONVERT_HINT
        )

    pages, seen, total = [], set(), 0
    while offset != 0:  # follow the chain of IFDs, one per page
        if offset in seen:
            raise ValueError(f"read_tiff_stack: {path} is corrupt: its IFD chain loops")
        seen.add(offset)
        tags, offset = _read_ifd(data, offset, order, path)
        width, height = (tags.get(t, (0,))[0] for t in (IMAGE_WIDTH, IMAGE_LENGTH))
        if width < 1 or height < 1:
            raise ValueError(
                f"read_tiff_stack: {path}, page {len(pages)} is {width}x{height} pixels: empty"
            )
        total += width * height
        if total > max_pixels:
            raise ValueError(
                f"read_tiff_stack: {path} declares more than {max_pixels:,} pixels (page "
                f"{len(pages)} is {width}x{height}); the limit is max_pixels (--max-pixels on "
                "the command line)"
            )
        pages.append(_read_page(data, tags, order, path, len(pages)))

    if not pages:
        raise ValueError(f"read_tiff_stack: {path} holds no pages")
    for k, page in enumerate(pages):
        if page.shape != pages[0].shape or page.dtype != pages[0].dtype:
            raise ValueError(
                f"read_tiff_stack: the pages of {path} differ: page 0 is {_describe(pages[0])}, "
                f"page {k} is {_describe(page)}; expected all pages to have one size and type"
            )
    return np.stack(pages)


def write_tiff_stack(path: str | os.PathLike, pages: np.ndarray, byteorder: str = "<") -> None:
    """Write images as an uncompressed multi-page grayscale TIFF file.

    Each page is stored as one strip, followed by its IFD. The file can be read by
    :func:`read_tiff_stack`, ImageJ/Fiji and any other TIFF reader.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (overwritten if it exists).
    pages : np.ndarray
        ``uint8`` or ``uint16`` images, shape ``(N, H, W)``, or ``(H, W)`` for one page.
    byteorder : {'<', '>'}
        ``'<'`` writes a little-endian file (``II``), ``'>'`` a big-endian one (``MM``).
    """
    pages = np.asarray(pages)
    if pages.ndim == 2:
        pages = pages[None]
    if pages.ndim != 3 or pages.dtype not in (np.uint8, np.uint16) or 0 in pages.shape:
        raise ValueError(
            "write_tiff_stack: expected uint8 or uint16 pages of shape (N, H, W) or (H, W), "
            f"got dtype {pages.dtype} and shape {pages.shape}"
        )
    if byteorder not in ("<", ">"):
        raise ValueError(f"write_tiff_stack: byteorder must be '<' or '>', got {byteorder!r}")
    if pages.nbytes > 2**32 - 2**20:  # offsets are 32-bit numbers (BigTIFF is not written)
        raise ValueError(
            f"write_tiff_stack: {pages.nbytes} bytes of pixels do not fit in a TIFF file (4 GiB)"
        )
    _, height, width = pages.shape
    pixels = pages.astype(pages.dtype.newbyteorder(byteorder))
    order = byteorder

    out = bytearray(struct.pack(order + "2sHI", b"II" if order == "<" else b"MM", 42, 0))
    next_ifd_at = 4  # where the offset of the next IFD is to be written
    for page in pixels:
        strip_at = len(out)
        out += page.tobytes()
        out += b"\0" * (len(out) % 2)  # an IFD starts on an even offset
        struct.pack_into(order + "I", out, next_ifd_at, len(out))
        entries = [  # (tag, type: 3 = SHORT, 4 = LONG, value), sorted by tag as TIFF requires
            (IMAGE_WIDTH, 4, width),
            (IMAGE_LENGTH, 4, height),
            (BITS_PER_SAMPLE, 3, 8 * pages.itemsize),
            (COMPRESSION, 3, 1),
            (PHOTOMETRIC, 3, 1),  # 1 = black is zero
            (STRIP_OFFSETS, 4, strip_at),
            (SAMPLES_PER_PIXEL, 3, 1),
            (ROWS_PER_STRIP, 4, height),
            (STRIP_BYTE_COUNTS, 4, page.nbytes),
        ]
        out += struct.pack(order + "H", len(entries))
        for tag, kind, value in entries:  # a SHORT value is padded to 4 bytes
            out += struct.pack(order + ("HHIH2x" if kind == 3 else "HHII"), tag, kind, 1, value)
        next_ifd_at = len(out)
        out += struct.pack(order + "I", 0)  # no next IFD yet
    Path(path).write_bytes(bytes(out))


def _read_ifd(
    data: bytes, offset: int, order: str, path: Path
) -> tuple[dict[int, tuple[int, ...]], int]:
    """Return the integer tags of the IFD at ``offset`` and the offset of the next IFD."""
    if offset + 2 > len(data):
        raise ValueError(f"read_tiff_stack: {path} is truncated: an IFD starts after its end")
    (count,) = struct.unpack_from(order + "H", data, offset)
    end = offset + 2 + 12 * count
    if end + 4 > len(data):
        raise ValueError(f"read_tiff_stack: {path} is truncated: an IFD runs past its end")
    tags = {}
    for entry in range(offset + 2, end, 12):
        tag, kind, n = struct.unpack_from(order + "HHI", data, entry)
        code = _INTEGER_TYPES.get(kind)
        if code is None:
            continue
        size = n * struct.calcsize(code)
        where = entry + 8  # values of up to 4 bytes are stored in the entry itself
        if size > 4:
            (where,) = struct.unpack_from(order + "I", data, where)
        if where + size > len(data):
            raise ValueError(f"read_tiff_stack: {path} is truncated: tag {tag} points past its end")
        tags[tag] = struct.unpack_from(f"{order}{n}{code}", data, where)
    (next_offset,) = struct.unpack_from(order + "I", data, end)
    return tags, next_offset


def _read_page(
    data: bytes, tags: dict[int, tuple[int, ...]], order: str, path: Path, page: int
) -> np.ndarray:
    """Check that a page is a supported kind of TIFF image, then read its strips."""
    where = f"read_tiff_stack: {path}, page {page}"

    def tag(number: int, name: str, default: int | None = None) -> tuple[int, ...]:
        if number in tags:
            return tags[number]
        if default is None:
            raise ValueError(f"{where}: the required tag {name} ({number}) is missing")
        return (default,)

    compression = tag(COMPRESSION, "Compression", 1)[0]
    if compression != 1:
        name = _COMPRESSION_NAMES.get(compression, "unknown")
        raise ValueError(
            f"{where}: Compression = {compression} ({name}) is not supported; expected "
            f"uncompressed data (Compression = 1). " + _CONVERT_HINT
        )
    if TILE_WIDTH in tags or TILE_OFFSETS in tags:
        tile_width = tags.get(TILE_WIDTH, ("?",))[0]
        raise ValueError(
            f"{where}: TileWidth = {tile_width}: the page is stored in tiles, which are not "
            "supported; expected strips (StripOffsets). " + _CONVERT_HINT
        )
    samples = tag(SAMPLES_PER_PIXEL, "SamplesPerPixel", 1)[0]
    if samples != 1:
        raise ValueError(
            f"{where}: SamplesPerPixel = {samples} (a colour image) is not supported; expected "
            "grayscale (SamplesPerPixel = 1). " + _CONVERT_HINT
        )
    photometric = tag(PHOTOMETRIC, "PhotometricInterpretation", 1)[0]
    if photometric not in (0, 1):
        name = _PHOTOMETRIC_NAMES.get(photometric, "unknown")
        raise ValueError(
            f"{where}: PhotometricInterpretation = {photometric} ({name}) is not supported; "
            "expected grayscale (0 or 1). " + _CONVERT_HINT
        )
    bits = tag(BITS_PER_SAMPLE, "BitsPerSample", 1)[0]
    if bits not in (8, 16):
        raise ValueError(
            f"{where}: BitsPerSample = {bits} is not supported; expected 8 or 16. " + _CONVERT_HINT
        )
    sample_format = tag(SAMPLE_FORMAT, "SampleFormat", 1)[0]
    if sample_format != 1:
        kind = {2: "signed integers", 3: "floating point"}.get(sample_format, "unknown")
        raise ValueError(
            f"{where}: SampleFormat = {sample_format} ({kind}) is not supported; expected "
            "unsigned integers (SampleFormat = 1). " + _CONVERT_HINT
        )

    width = tag(IMAGE_WIDTH, "ImageWidth")[0]
    height = tag(IMAGE_LENGTH, "ImageLength")[0]
    rows_per_strip = min(tag(ROWS_PER_STRIP, "RowsPerStrip", height)[0], height)
    offsets = tag(STRIP_OFFSETS, "StripOffsets")
    byte_counts = tags.get(STRIP_BYTE_COUNTS)
    dtype = np.dtype(order + ("u1" if bits == 8 else "u2"))
    row_bytes = width * dtype.itemsize
    n_strips = -(-height // rows_per_strip)  # ceil
    if len(offsets) != n_strips:
        raise ValueError(
            f"{where}: expected {n_strips} strips ({height} rows, {rows_per_strip} per strip), "
            f"StripOffsets lists {len(offsets)}"
        )

    strips = []
    for k, offset in enumerate(offsets):
        size = min(rows_per_strip, height - k * rows_per_strip) * row_bytes
        if byte_counts is not None and byte_counts[k] < size:
            raise ValueError(
                f"{where}: strip {k} holds {byte_counts[k]} bytes, expected {size} "
                "for uncompressed rows"
            )
        if offset + size > len(data):
            raise ValueError(f"{where}: the file is truncated: strip {k} runs past its end")
        strips.append(data[offset : offset + size])
    pixels = np.frombuffer(b"".join(strips), dtype).reshape(height, width)
    if photometric == 0:  # "white is zero": invert, so that 0 is black as everywhere else
        pixels = np.iinfo(dtype).max - pixels
    return pixels.astype(dtype.newbyteorder("="))  # native byte order


def _describe(page: np.ndarray) -> str:
    """``"shape (512, 512), 8-bit"``: how error messages describe a page."""
    return f"shape {page.shape}, {8 * page.itemsize}-bit"
