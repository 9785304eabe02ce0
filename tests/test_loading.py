"""Reading images and masks: the TIFF reader, resizing, read_image and load_folder."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from numpy_unet.data.loading import load_folder, read_image
from numpy_unet.data.resize import resize
from numpy_unet.data.tiff import read_tiff_stack, write_tiff_stack

ISBI = Path("/work/shared/data/isbi2012-membrane")


# -- writing test files -----------------------------------------------------------------------
def write_gray_png(path: Path, pixels: np.ndarray) -> None:
    """A grayscale PNG (8- or 16-bit, like the ISBI files), written with zlib.

    ``matplotlib.image.imsave`` always writes RGBA, and with ``cmap='gray'`` it is off by one
    for 24 of the 256 gray levels, so it cannot write exact grayscale test files.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    height, width = pixels.shape
    rows = pixels.astype(">u2" if pixels.dtype == np.uint16 else np.uint8)
    header = struct.pack(">IIBBBBB", width, height, 8 * pixels.itemsize, 0, 0, 0, 0)
    data = b"".join(b"\0" + row.tobytes() for row in rows)  # filter type 0 before each row
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(data))
        + chunk(b"IEND", b"")
    )


def handmade_tiff(
    path: Path,
    pixels: np.ndarray,
    byteorder: str = ">",
    rows_per_strip: int = 3,
    tags: dict | None = None,
) -> None:
    """A one-page TIFF built without write_tiff_stack: several strips, stored in reverse order
    (so the reader must follow StripOffsets), a text tag, and any tag values in ``tags``
    (``{tag: (type, values)}``, type 3 = SHORT, 4 = LONG)."""
    order = byteorder
    height, width = pixels.shape
    out = bytearray(struct.pack(order + "2sHI", b"II" if order == "<" else b"MM", 42, 0))
    strips = [pixels[r : r + rows_per_strip] for r in range(0, height, rows_per_strip)]
    offsets = [0] * len(strips)
    for k in reversed(range(len(strips))):
        offsets[k] = len(out)
        out += strips[k].astype(pixels.dtype.newbyteorder(order)).tobytes()
    entries = {
        256: (4, [width]),
        257: (4, [height]),
        258: (3, [8 * pixels.itemsize]),
        259: (3, [1]),
        262: (3, [1]),
        270: (2, b"made by hand\0"),  # ImageDescription, ASCII: to be skipped
        273: (4, offsets),
        277: (3, [1]),
        278: (3, [rows_per_strip]),
        279: (4, [s.nbytes for s in strips]),
    }
    entries.update(tags or {})
    ifd = []
    for tag, (kind, values) in sorted(entries.items()):
        count = len(values)
        raw = values if kind == 2 else struct.pack(f"{order}{count}{'HI'[kind - 3]}", *values)
        if len(raw) > 4:  # too long for the entry: stored elsewhere, the entry holds its offset
            out += b"\0" * (len(out) % 2)
            where = len(out)
            out += raw
            raw = struct.pack(order + "I", where)
        ifd.append(struct.pack(order + "HHI", tag, kind, count) + raw.ljust(4, b"\0"))
    out += b"\0" * (len(out) % 2)
    struct.pack_into(order + "I", out, 4, len(out))
    out += struct.pack(order + "H", len(ifd)) + b"".join(ifd) + struct.pack(order + "I", 0)
    path.write_bytes(bytes(out))


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def make_pairs(rng: np.random.Generator, n: int, shape=(32, 32)):
    """``n`` random 8-bit images and 0/1 masks of one shape."""
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    masks = (rng.random((n, *shape)) < 0.7).astype(np.uint8)
    return images, masks


def write_seed_layout(folder: Path, images, masks) -> None:
    """``folder/image/k.png`` and ``folder/label/k.png``; masks stored 0/255."""
    (folder / "image").mkdir(parents=True)
    (folder / "label").mkdir()
    for k, (image, mask) in enumerate(zip(images, masks)):
        write_gray_png(folder / "image" / f"{k}.png", image)
        write_gray_png(folder / "label" / f"{k}.png", mask * np.uint8(255))


# -- the TIFF reader ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_tiff_round_trip(tmp_path, rng, dtype, byteorder):
    pages = rng.integers(0, np.iinfo(dtype).max + 1, (3, 5, 7)).astype(dtype)
    path = tmp_path / "stack.tif"
    write_tiff_stack(path, pages, byteorder=byteorder)
    assert path.read_bytes()[:2] == (b"II" if byteorder == "<" else b"MM")
    back = read_tiff_stack(path)
    assert back.dtype == dtype and back.shape == (3, 5, 7)
    np.testing.assert_array_equal(back, pages)


def test_tiff_single_page(tmp_path):
    page = np.arange(35, dtype=np.uint8).reshape(5, 7)  # odd size: the IFD is padded
    write_tiff_stack(tmp_path / "one.tif", page)
    np.testing.assert_array_equal(read_tiff_stack(tmp_path / "one.tif"), page[None])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_tiff_handmade_strips(tmp_path, rng, dtype, byteorder):
    pixels = rng.integers(0, np.iinfo(dtype).max + 1, (7, 5)).astype(dtype)
    handmade_tiff(tmp_path / "strips.tif", pixels, byteorder, rows_per_strip=3)  # 3, 3, 1 rows
    np.testing.assert_array_equal(read_tiff_stack(tmp_path / "strips.tif"), pixels[None])


def test_tiff_white_is_zero(tmp_path):
    pixels = np.array([[0, 100], [200, 255]], np.uint8)
    handmade_tiff(tmp_path / "w.tif", pixels, tags={262: (3, [0])})
    np.testing.assert_array_equal(read_tiff_stack(tmp_path / "w.tif")[0], 255 - pixels)


@pytest.mark.parametrize(
    "tags, message",
    [
        ({259: (3, [5])}, r"Compression = 5 \(LZW\)"),
        ({259: (3, [8])}, r"Compression = 8 \(Deflate\)"),
        (
            {322: (3, [16]), 323: (3, [16]), 324: (4, [8]), 325: (4, [512])},
            r"TileWidth = 16: .* tiles",
        ),
        ({277: (3, [3]), 258: (3, [8, 8, 8]), 262: (3, [2])}, r"SamplesPerPixel = 3"),
        ({262: (3, [3])}, r"PhotometricInterpretation = 3 \(palette"),
        ({258: (3, [32]), 339: (3, [3])}, r"BitsPerSample = 32"),
        ({339: (3, [2])}, r"SampleFormat = 2 \(signed"),
    ],
    ids=["lzw", "deflate", "tiled", "rgb", "palette", "float32", "signed"],
)
def test_tiff_unsupported(tmp_path, tags, message):
    path = tmp_path / "odd.tif"
    handmade_tiff(path, np.zeros((4, 4), np.uint8), tags=tags)
    with pytest.raises(ValueError, match=rf"read_tiff_stack: .*odd\.tif, page 0: {message}.*PNG"):
        read_tiff_stack(path)


def test_tiff_not_a_tiff_and_missing(tmp_path):
    write_gray_png(tmp_path / "fake.tif", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"read_tiff_stack: .*fake\.tif is not a TIFF.*PNG"):
        read_tiff_stack(tmp_path / "fake.tif")
    with pytest.raises(FileNotFoundError, match=r"read_tiff_stack: no such file: .*nope\.tif"):
        read_tiff_stack(tmp_path / "nope.tif")
    with pytest.raises(ValueError, match="write_tiff_stack: expected uint8 or uint16"):
        write_tiff_stack(tmp_path / "f.tif", np.zeros((2, 2), np.float32))


def test_tiff_truncated(tmp_path):
    write_tiff_stack(tmp_path / "t.tif", np.ones((2, 8, 8), np.uint8))
    data = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "t.tif").write_bytes(data[:100])
    with pytest.raises(ValueError, match=r"t\.tif.*truncated"):
        read_tiff_stack(tmp_path / "t.tif")


# -- resizing ---------------------------------------------------------------------------------
def test_resize_integer_factor_is_block_mean(rng):
    image = rng.random((12, 18))
    out = resize(image, (4, 6))
    assert out.dtype == np.float32 and out.shape == (4, 6)
    np.testing.assert_allclose(out, block_mean(image, 3), rtol=1e-6)
    np.testing.assert_allclose(resize(image, (12, 18)), image, rtol=1e-6)  # factor 1: a copy
    np.testing.assert_allclose(resize(image, (6, 18)), image.reshape(6, 2, 18).mean(1), rtol=1e-6)


@pytest.mark.parametrize("shape, size", [((10, 9), (7, 4)), ((4, 6), (9, 15)), ((5, 5), 8)])
def test_resize_bilinear_keeps_a_ramp(shape, size):
    """A linear ramp stays a linear ramp, read at the half-pixel-centre positions (and, when
    enlarging, flat beyond the first and last pixel centres)."""
    (H, W), (h, w) = shape, (size, size) if isinstance(size, int) else size
    y, x = np.mgrid[:H, :W]
    ramp = 2.0 * y + 3.0 * x + 1.0
    ys = np.clip((np.arange(h) + 0.5) * H / h - 0.5, 0, H - 1)
    xs = np.clip((np.arange(w) + 0.5) * W / w - 0.5, 0, W - 1)
    expected = 2.0 * ys[:, None] + 3.0 * xs[None, :] + 1.0
    np.testing.assert_allclose(resize(ramp, size), expected, rtol=1e-6)


def test_resize_known_values():
    np.testing.assert_allclose(resize(np.array([[0.0, 1.0]]), (1, 4)), [[0, 0.25, 0.75, 1]])
    out = resize(np.random.default_rng(1).random((7, 9)), (20, 5))
    assert 0 <= out.min() and out.max() <= 1  # weighted means stay in range


def test_resize_errors():
    with pytest.raises(ValueError, match=r"resize: expected a non-empty 2-D image.*\(2, 4, 4\)"):
        resize(np.zeros((2, 4, 4)), 2)
    for bad in (0, 2.5, (2, 0), (1, 2, 3), True, "4"):
        with pytest.raises(ValueError, match="resize: size must be a positive int"):
            resize(np.zeros((4, 4)), bad)


# -- read_image ---------------------------------------------------------------------------------
def test_read_image_formats(tmp_path, rng):
    gray = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    deep = rng.integers(0, 65536, (6, 5)).astype(np.uint16)
    write_gray_png(tmp_path / "gray.png", gray)
    write_gray_png(tmp_path / "deep.png", deep)
    matplotlib.image.imsave(tmp_path / "rgb.png", np.stack([gray] * 3, axis=-1))  # RGBA
    write_tiff_stack(tmp_path / "gray.tif", gray)
    write_tiff_stack(tmp_path / "deep.tif", deep)
    for name, expected in [
        ("gray.png", gray / 255),
        ("deep.png", deep / 65535),
        ("rgb.png", gray / 255),
        ("gray.tif", gray / 255),
        ("deep.tif", deep / 65535),
    ]:
        image = read_image(tmp_path / name)
        assert image.dtype == np.float32 and image.shape == (6, 5), name
        np.testing.assert_allclose(image, expected, rtol=1e-6, err_msg=name)


def test_read_image_colour_and_jpeg(tmp_path, rng):
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    matplotlib.image.imsave(tmp_path / "colour.png", rgb)
    np.testing.assert_allclose(
        read_image(tmp_path / "colour.png"), rgb @ [0.299, 0.587, 0.114] / 255, rtol=1e-6
    )
    flat = np.full((16, 16, 3), 128, np.uint8)
    matplotlib.image.imsave(tmp_path / "flat.jpg", flat)
    matplotlib.image.imsave(tmp_path / "flat.bmp", flat)
    for name in ("flat.jpg", "flat.bmp"):
        image = read_image(tmp_path / name)
        assert image.dtype == np.float32 and image.shape == (16, 16)
        np.testing.assert_allclose(image, 128 / 255, atol=2 / 255)  # JPEG is lossy


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"read_image: no such file: .*gone\.png"):
        read_image(tmp_path / "gone.png")
    write_tiff_stack(tmp_path / "stack.tif", np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"read_image: .*stack\.tif has 3 pages.*read_tiff_stack"):
        read_image(tmp_path / "stack.tif")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"read_image: cannot read .*notes\.txt.*\.png"):
        read_image(tmp_path / "notes.txt")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"read_image: cannot read .*broken\.png as an image"):
        read_image(tmp_path / "broken.png")


# -- load_folder: the two layouts -------------------------------------------------------------
def test_load_folder_seed_layout(tmp_path, rng):
    images, masks = make_pairs(rng, 12)  # names 0..11: natural order puts 2 before 10
    write_seed_layout(tmp_path, images, masks)
    (tmp_path / "image" / ".DS_Store").write_bytes(b"\0")  # ignored, like any non-image file
    (tmp_path / "label" / "README.txt").write_text("masks")

    x, y = load_folder(tmp_path, size=16)
    assert x.shape == y.shape == (12, 16, 16, 1) and x.dtype == y.dtype == np.float32
    for k in range(12):
        np.testing.assert_allclose(x[k, ..., 0], block_mean(images[k] / 255, 2), rtol=1e-6)
        np.testing.assert_array_equal(y[k, ..., 0], block_mean(masks[k], 2) > 0.5)

    x, y = load_folder(tmp_path, size=None, max_images=3)
    assert x.shape == (3, 32, 32, 1)
    np.testing.assert_allclose(x[..., 0], images[:3] / 255, rtol=1e-6)
    np.testing.assert_array_equal(y[..., 0], masks[:3])

    x, y = load_folder(str(tmp_path), size=(8, 24))  # a string path, a (height, width) size
    assert x.shape == y.shape == (12, 8, 24, 1)
    assert set(np.unique(y)) <= {0.0, 1.0} and 0 <= x.min() and x.max() <= 1


def test_load_folder_mixed_formats(tmp_path, rng):
    images, masks = make_pairs(rng, 2)
    write_seed_layout(tmp_path, images[:1], masks[:1])
    write_tiff_stack(tmp_path / "image" / "1.tif", images[1])
    write_tiff_stack(tmp_path / "label" / "1.tiff", masks[1])  # stored 0/1
    x, y = load_folder(tmp_path, size=None)
    np.testing.assert_allclose(x[..., 0], images / 255, rtol=1e-6)
    np.testing.assert_array_equal(y[..., 0], masks)


@pytest.mark.parametrize(
    "volume, labels", [("train-volume.tif", "train-labels.tif"), ("a-volume.tiff", "a-labels.tif")]
)
def test_load_folder_isbi_layout(tmp_path, rng, volume, labels):
    images, masks = make_pairs(rng, 5)
    write_tiff_stack(tmp_path / volume, images)
    write_tiff_stack(tmp_path / labels, masks * np.uint8(255))
    if volume == "train-volume.tif":  # ISBI's download also holds the unlabelled test stack
        write_tiff_stack(tmp_path / "test-volume.tif", images)

    x, y = load_folder(tmp_path, size=16)
    assert x.shape == y.shape == (5, 16, 16, 1) and x.dtype == y.dtype == np.float32
    for k in range(5):
        np.testing.assert_allclose(x[k, ..., 0], block_mean(images[k] / 255, 2), rtol=1e-6)
        np.testing.assert_array_equal(y[k, ..., 0], block_mean(masks[k], 2) > 0.5)

    x, y = load_folder(tmp_path, size=None, max_images=2)
    np.testing.assert_allclose(x[..., 0], images[:2] / 255, rtol=1e-6)
    np.testing.assert_array_equal(y[..., 0], masks[:2])


# -- load_folder: the ways a mask can be stored -----------------------------------------------
def write_mask(path: Path, mask01: np.ndarray, storage: str) -> None:
    m = mask01.astype(np.uint8)
    if storage == "png 0/255":
        write_gray_png(path, m * np.uint8(255))
    elif storage == "png 0/1":
        write_gray_png(path, m)  # matplotlib reads it as 0 and 1/255
    elif storage == "png16 0/65535":
        write_gray_png(path, m.astype(np.uint16) * np.uint16(65535))
    elif storage == "png16 0/1":
        write_gray_png(path, m.astype(np.uint16))
    elif storage == "rgba png 0/255":
        matplotlib.image.imsave(path, m * 255, cmap="gray", vmin=0, vmax=255)
    elif storage == "rgba png 0/1":
        matplotlib.image.imsave(path, m, cmap="gray", vmin=0, vmax=255)
    elif storage == "tif 0/1":
        write_tiff_stack(path, m)
    elif storage == "tif16 0/255":  # 8-bit values in a 16-bit file, as ImageJ may save them
        write_tiff_stack(path, m.astype(np.uint16) * np.uint16(255))
    elif storage == "tif16 0/65535":
        write_tiff_stack(path, m.astype(np.uint16) * np.uint16(65535))
    else:
        raise AssertionError(storage)


MASK_STORAGES = [
    "png 0/255",
    "png 0/1",
    "png16 0/65535",
    "png16 0/1",
    "rgba png 0/255",
    "rgba png 0/1",
    "tif 0/1",
    "tif16 0/255",
    "tif16 0/65535",
]


@pytest.mark.parametrize("storage", MASK_STORAGES)
def test_masks_are_scaled(tmp_path, rng, storage):
    images, masks = make_pairs(rng, 2, shape=(8, 8))
    masks[1] = 1  # an all-cell mask: one value only
    (tmp_path / "image").mkdir()
    (tmp_path / "label").mkdir()
    suffix = ".tif" if storage.startswith("tif") else ".png"
    for k in range(2):
        write_gray_png(tmp_path / "image" / f"{k}.png", images[k])
        write_mask(tmp_path / "label" / f"{k}{suffix}", masks[k], storage)
    _, y = load_folder(tmp_path, size=None)
    np.testing.assert_array_equal(y[..., 0], masks)


def test_soft_masks_are_thresholded(tmp_path):
    """Gray levels (from JPEG compression, say) go to the nearer label, as in the seed."""
    (tmp_path / "image").mkdir()
    (tmp_path / "label").mkdir()
    write_gray_png(tmp_path / "image" / "0.png", np.zeros((2, 3), np.uint8))
    write_gray_png(tmp_path / "label" / "0.png", np.array([[0, 3, 127], [128, 250, 255]], np.uint8))
    _, y = load_folder(tmp_path, size=None)
    np.testing.assert_array_equal(y[0, ..., 0], [[0, 0, 0], [1, 1, 1]])


# -- load_folder: errors ------------------------------------------------------------------------
def test_error_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_folder: .*nowhere does not exist"):
        load_folder(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"load_folder: .*file\.png is a file"):
        load_folder(tmp_path / "file.png")


def test_error_empty_or_unknown_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_folder: the folder .* is empty.*image/"):
        load_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(
        FileNotFoundError,
        match=r"holds neither layout.*image/ and label/.*train-volume\.tif.*Found: notes\.txt",
    ):
        load_folder(tmp_path)
    (tmp_path / "image").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has a folder image/ but no folder label/"):
        load_folder(tmp_path)
    (tmp_path / "label").mkdir()
    with pytest.raises(FileNotFoundError, match=r"hold no image files"):
        load_folder(tmp_path)


def test_error_missing_label_file(tmp_path, rng):
    write_seed_layout(tmp_path, *make_pairs(rng, 3))
    (tmp_path / "label" / "1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 file\(s\) in .*image have no label .*: 1\.png"):
        load_folder(tmp_path)


def test_error_missing_image_file(tmp_path, rng):
    write_seed_layout(tmp_path, *make_pairs(rng, 3))
    (tmp_path / "image" / "0.png").unlink()
    (tmp_path / "image" / "2.png").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"2 file\(s\) in .*label have no image.*0\.png, 2\.png"
    ):
        load_folder(tmp_path)


def test_error_mismatched_sizes(tmp_path, rng):
    write_seed_layout(tmp_path, *make_pairs(rng, 2))
    write_gray_png(tmp_path / "label" / "1.png", np.zeros((32, 30), np.uint8))
    with pytest.raises(
        ValueError,
        match=r"image .*1\.png has shape \(32, 32\) but its label .*1\.png has shape \(32, 30\)",
    ):
        load_folder(tmp_path)


def test_error_size_none_with_different_sizes(tmp_path, rng):
    write_seed_layout(tmp_path, *make_pairs(rng, 1))
    write_gray_png(tmp_path / "image" / "1.png", np.zeros((16, 16), np.uint8))
    write_gray_png(tmp_path / "label" / "1.png", np.zeros((16, 16), np.uint8))
    with pytest.raises(
        ValueError, match=r"size=None .*0\.png has shape \(32, 32\).*1\.png has shape \(16, 16\)"
    ):
        load_folder(tmp_path, size=None)
    assert load_folder(tmp_path, size=8)[0].shape == (2, 8, 8, 1)


@pytest.mark.parametrize(
    "name, mask, found",
    [
        ("0.png", np.array([[0, 1], [2, 3]], np.uint8), r"\[0, 3\]"),  # class numbers
        ("0.tif", np.array([[0, 1], [2, 1000]], np.uint16), r"\[0, 1000\]"),  # object numbers
    ],
)
def test_error_out_of_range_mask(tmp_path, name, mask, found):
    (tmp_path / "image").mkdir()
    (tmp_path / "label").mkdir()
    write_gray_png(tmp_path / "image" / "0.png", np.zeros((2, 2), np.uint8))
    if name.endswith(".png"):
        write_gray_png(tmp_path / "label" / name, mask)
    else:
        write_tiff_stack(tmp_path / "label" / name, mask)
    with pytest.raises(
        ValueError, match=rf"mask .*{name} holds values in {found}, out of the range"
    ):
        load_folder(tmp_path)


def test_error_rgb_mask(tmp_path, rng):
    write_seed_layout(tmp_path, *make_pairs(rng, 1, shape=(4, 4)))
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[:2, :, 0] = 255  # red cells, green membranes
    colour[2:, :, 1] = 255
    matplotlib.image.imsave(tmp_path / "label" / "0.png", colour)
    with pytest.raises(ValueError, match=r"mask .*0\.png is a colour image whose channels differ"):
        load_folder(tmp_path)


def test_error_unsupported_tiff(tmp_path, rng):
    images, masks = make_pairs(rng, 1, shape=(4, 4))
    write_tiff_stack(tmp_path / "train-volume.tif", images)
    handmade_tiff(tmp_path / "train-labels.tif", masks[0], tags={259: (3, [5])})
    with pytest.raises(ValueError, match=r"train-labels\.tif, page 0: Compression = 5.*PNG"):
        load_folder(tmp_path)


def test_error_stacks_differ(tmp_path, rng):
    images, masks = make_pairs(rng, 3, shape=(4, 4))
    write_tiff_stack(tmp_path / "train-volume.tif", images)
    write_tiff_stack(tmp_path / "train-labels.tif", masks[:2])
    with pytest.raises(ValueError, match=r"train-volume\.tif has shape \(3, 4, 4\).*\(2, 4, 4\)"):
        load_folder(tmp_path)


def test_error_two_volumes(tmp_path, rng):
    images, masks = make_pairs(rng, 1, shape=(4, 4))
    write_tiff_stack(tmp_path / "a-volume.tif", images)
    write_tiff_stack(tmp_path / "b-volume.tif", images)
    write_tiff_stack(tmp_path / "a-labels.tif", masks)
    with pytest.raises(FileNotFoundError, match=r"2 \*volume\* and 1 \*labels\*.*a-volume\.tif"):
        load_folder(tmp_path)


def test_error_duplicate_names(tmp_path, rng):
    write_seed_layout(tmp_path, *make_pairs(rng, 1, shape=(4, 4)))
    write_tiff_stack(tmp_path / "image" / "0.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"0\.(png|tif) and .*0\.(png|tif) have the same name"):
        load_folder(tmp_path)


def test_error_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="load_folder: size must be a positive int"):
        load_folder(tmp_path, size=0)
    with pytest.raises(ValueError, match="load_folder: max_images must be a positive int"):
        load_folder(tmp_path, max_images=0)


# -- the real data, if this machine has it ------------------------------------------------------
def test_isbi_membrane():
    if not ISBI.is_dir():
        pytest.skip(f"{ISBI} is not on this machine")
    images, masks = load_folder(ISBI, size=256)
    assert images.shape == masks.shape == (20, 256, 256, 1)
    assert images.dtype == masks.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert set(np.unique(masks)) == {0.0, 1.0}
    assert 0.70 < masks.mean() < 0.85  # about 78% of the pixels are cells
