"""Loading images and their masks from a folder, in the seed's layout or as ISBI's TIFF stacks.

Two layouts are recognised:

- the seed repository's: ``folder/image/0.png``, ``folder/image/1.png``, ... with the masks
  of the same names in ``folder/label/``;
- the ISBI 2012 challenge's: two multi-page TIFF files, ``folder/train-volume.tif`` (the
  images) and ``folder/train-labels.tif`` (the masks).

Images come back as float32 arrays ``(N, H, W, 1)`` in [0, 1]; masks as float32 arrays of the
same shape holding exactly 0.0 or 1.0 (1 = cell interior, 0 = membrane, as in the ISBI data).

How a mask's stored values become 0 and 1. A mask holds 0 for membrane and a "cell" value
that depends on how it was saved: 1 (a "0/1" mask), 255 (8-bit) or 65535 (16-bit). The values
stored in the file are divided by the smallest of 1, 255 and 65535 that is at least their
maximum (PNG values, which matplotlib returns divided by 255 or 65535, are first turned back
into the stored integers, so that a 0/1 PNG is recognised). Each pixel is then a cell where
that value is at least 0.5 (half of 255 for an 8-bit mask: gray levels from JPEG compression
go to the nearer label, and a 0/128 mask reads as 0/255 does), and membrane below. Only then
is the 0/1 mask resized, and thresholded at 0.5 again as the seed does. A mask whose maximum
is not above half of that scale, such as 0, 1, 2, 3 numbering several classes, is refused:
every pixel would become membrane.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from ..files import require_file
from .bands import BAND_ROWS, Bands, array_bands, pillow_bands
from .class_masks import levels_to_labels, pixels_to_labels, resize_labels
from .resize import _is_positive_int, _parse_size, resize
from .tiff import IMAGE_LENGTH, IMAGE_WIDTH, _read_ifd, read_tiff_stack
from .tiff import MAX_PIXELS as TIFF_MAX_PIXELS

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
# the largest image read, in pixels (8192 x 8192): a few bytes of header can claim billions,
# and decoding them would take minutes and gigabytes; pass max_pixels to read larger ones
MAX_PIXELS = TIFF_MAX_PIXELS
# the most pixels load_folder decodes from one folder, its images and masks together, counted
# from the files' headers before any is decoded (2**30: sixteen files of 8192 x 8192, 2,048
# pairs of 512 x 512). Each image is resized as it is read, so what the folder's size costs is
# time, about a minute of decoding at the budget, and, with size=None, the memory of keeping
# every image whole: 4 GiB of float32 at the budget. Pass max_total_pixels to read more
MAX_TOTAL_PIXELS = 2**30
LUMINANCE = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of red, green and blue


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a grayscale image file as floats in [0, 1].

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, JPEG or BMP file (decoded by Pillow, to the values ``matplotlib.image.imread``
        gives), or a single-page TIFF file (read with :func:`read_tiff_stack`).
    max_pixels : int
        Refuse, before decoding, a PNG, JPEG or BMP whose header declares more pixels
        (``MAX_PIXELS``, 8192 x 8192, by default).

    Returns
    -------
    np.ndarray
        The image, shape ``(H, W)``, float32 in [0, 1]. 8-bit values are divided by 255 and
        16-bit values by 65535. A colour image whose three channels are equal gives one of
        them; any other colour image is converted to gray with the luminance weights
        (0.299, 0.587, 0.114). An alpha channel is dropped.
    """
    with _open_pixels(Path(path), "read_image", max_pixels) as bands:  # a band of rows at a time
        out = np.empty(bands.shape[:2], np.float32)  # (H, W)
        # a colour image is gray when its channels are equal everywhere: one pass to know
        gray = len(bands.shape) == 2 or all(_channels_equal(_drop_alpha(b)) for b in bands)
        for top, band in zip(range(0, len(out), BAND_ROWS), bands):
            out[top : top + len(band)] = _gray(band, gray)
    return out


def _gray(pixels: np.ndarray, gray: bool) -> np.ndarray:
    """Rows of an image as floats in [0, 1]: ``(h, W)`` or ``(h, W, C)`` -> ``(h, W)``."""
    if pixels.dtype.kind == "u":  # 8- or 16-bit integers; PNGs already come as floats
        pixels = pixels / np.iinfo(pixels.dtype).max
    if pixels.ndim == 3:
        rgb = _drop_alpha(pixels)
        pixels = rgb[..., 0] if gray else rgb @ np.array(LUMINANCE)
    return pixels


def load_folder(
    path: str | os.PathLike,
    size: int | tuple[int, int] | None = 256,
    max_images: int | None = None,
    max_pixels: int = MAX_PIXELS,
    classes: int | None = None,
    palette: object | None = None,
    max_total_pixels: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the images and masks of a folder, resized to one size.

    Each image and its mask are resized as they are read: one file at a time is held at full
    size, and only the resized arrays are kept. Before any file is decoded, the pixels its
    header declares are added up over the folder and checked against ``max_total_pixels``.

    Parameters
    ----------
    path : str or os.PathLike
        A folder holding either ``image/`` and ``label/`` subfolders of files with matching
        names (``image/0.png`` goes with ``label/0.png``; ``.png``, ``.tif``, ``.tiff``,
        ``.jpg``, ``.jpeg`` or ``.bmp``), or a pair of multi-page TIFF files:
        ``train-volume.tif`` and ``train-labels.tif``, or one ``*volume*.tif`` and one
        ``*labels*.tif``. If both layouts are present, the subfolders are used.
    size : int, (int, int) or None
        The size ``n`` (n x n) or ``(h, w)`` to resize every image and mask to (see
        :func:`resize`); None keeps the files' size, which must then be the same for all.
    max_images : int, optional
        Load only the first ``max_images`` pairs (in natural order: 2 before 10).
    max_pixels : int
        Refuse larger images before decoding them (see :func:`read_image`).
    classes : int, optional
        For masks of more than two classes: ``K``, and each mask pixel holds its class number
        ``0 .. K-1`` (see :mod:`numpy_unet.data.class_masks`). None (the default) reads
        two-class masks by the rules of the module docstring.
    palette : array-like, optional
        ``(K, 3)`` 8-bit colours: the masks are colour-coded, class ``k`` painted in
        ``palette[k]`` (e.g. ``numpy_unet.labels.COLOR_DICT``). ``classes`` defaults to
        ``len(palette)``.
    max_total_pixels : int, optional
        Refuse, before decoding any file, a folder whose images and masks declare more pixels
        in all (the first ``max_images`` pairs; every page of a TIFF file). None (the default)
        is ``MAX_TOTAL_PIXELS`` (2**30), or an image and its mask at ``max_pixels`` if that
        is more.

    Returns
    -------
    images : np.ndarray
        float32, shape ``(N, h, w, 1)``, values in [0, 1].
    masks : np.ndarray
        float32, shape ``(N, h, w, 1)``, values exactly 0.0 (membrane) or 1.0 (cell); with
        ``classes`` or ``palette``, the class numbers 0.0, 1.0, ..., K - 1.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist or holds neither layout, or if an image has no mask or a
        mask no image.
    ValueError
        If an image and its mask differ in size, if a mask is in colour or its values fit none
        of the conventions (0/1, 0/255, 0/65535), if a file cannot be read, or if the files
        declare more pixels than ``max_total_pixels``.

    Examples
    --------
    >>> images, masks = load_folder("data/membrane/train")  # doctest: +SKIP
    >>> images.shape, masks.shape  # doctest: +SKIP
    ((30, 256, 256, 1), (30, 256, 256, 1))
    """
    folder = Path(path)
    if size is not None:
        size = _parse_size(size, "load_folder")
    if max_images is not None and not _is_positive_int(max_images):
        raise ValueError(
            f"load_folder: max_images must be a positive int or None, got {max_images!r}"
        )
    multi = _class_options(classes, palette)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"load_folder: {folder} {what}")

    if max_total_pixels is None:
        max_total_pixels = max(MAX_TOTAL_PIXELS, 2 * max_pixels)

    fit = _Resizer(size)
    if (folder / "image").is_dir() and (folder / "label").is_dir():
        pairs = _find_pairs(folder, max_images)
        _check_total_pixels(folder, [file for pair in pairs for file in pair], max_total_pixels)
        count, read = len(pairs), _read_pairs(pairs, fit, max_pixels, multi)
    else:
        volume, labels = _find_stacks(folder)
        _check_total_pixels(folder, [volume, labels], max_total_pixels)
        count, read = _read_stacks(volume, labels, fit, max_images, max_pixels, multi)

    images = masks = None
    for k, (image, mask) in enumerate(read):  # (h, w) each, resized as they were read
        if images is None:  # the first pair: the size is known, make room for all
            images = np.empty((count, *image.shape, 1), np.float32)  # (N, h, w, 1)
            masks = np.empty((count, *image.shape, 1), np.float32)
        images[k, ..., 0], masks[k, ..., 0] = image, mask
    return images, masks


class _Resizer:
    """Resizes each image and mask to ``size`` as it is read, so that only one file at a time
    is held at full size; with ``size=None``, to the first image's size, which every image
    must then have."""

    def __init__(self, size: tuple[int, int] | None) -> None:
        self.size, self.first = size, None

    def image(self, image: np.ndarray, name: object) -> np.ndarray:
        """``(H, W)`` -> ``(h, w)`` float32."""
        if self.size is None:
            self.size, self.first = image.shape, name
        elif self.first is not None and image.shape != self.size:
            raise ValueError(
                f"load_folder: with size=None all images must have one size, but {self.first} "
                f"has shape {self.size} and {name} has shape {image.shape}; pass "
                "size=(height, width) to resize them all"
            )
        return resize(image, self.size)

    def mask(self, mask: np.ndarray, multi: dict | None) -> np.ndarray:
        """``(H, W)`` -> ``(h, w)``: class numbers resized class by class, or 0 and 1 (the
        mask made 0/1 before resizing, then thresholded again as the seed does)."""
        if multi is not None:
            return resize_labels(mask, self.size, multi["classes"])
        return resize(mask >= 0.5, self.size) > 0.5


def _class_options(classes: object, palette: object) -> dict | None:
    """None for two-class masks, else ``{"classes": K, "palette": palette or None}``."""
    if classes is None and palette is None:
        return None
    if palette is not None:
        palette = np.asarray(palette)
        if classes is None:
            classes = len(palette) if palette.ndim == 2 else 0
    if not _is_positive_int(classes) or classes < 2:
        raise ValueError(f"load_folder: classes must be an int of at least 2, got {classes!r}")
    if palette is not None and (palette.ndim != 2 or len(palette) < classes):
        raise ValueError(
            f"load_folder: palette must hold one (R, G, B) colour per class ({classes}), got "
            f"shape {palette.shape}"
        )
    return {"classes": int(classes), "palette": palette}


# -- the two layouts ------------------------------------------------------------------------
def _find_pairs(folder: Path, max_images: int | None) -> list[tuple[Path, Path]]:
    """The seed's layout: ``image/N.png`` with ``label/N.png``, matched by file name stem, in
    natural order; the first ``max_images`` pairs."""
    image_files = _image_files(folder / "image")
    label_files = _image_files(folder / "label")
    if not image_files and not label_files:
        raise FileNotFoundError(
            f"load_folder: the folders {folder / 'image'} and {folder / 'label'} hold no image "
            f"files (expected names ending in {', '.join(IMAGE_SUFFIXES)})"
        )
    for files, other in ((image_files, label_files), (label_files, image_files)):
        unpaired = sorted(set(files) - set(other), key=_natural_key)
        if unpaired:
            missing = "label" if files is image_files else "image"
            shown = ", ".join(files[stem].name for stem in unpaired[:5])
            more = f" and {len(unpaired) - 5} more" if len(unpaired) > 5 else ""
            raise FileNotFoundError(
                f"load_folder: {len(unpaired)} file(s) in {files[unpaired[0]].parent} have no "
                f"{missing} of the same name in {folder / missing}: {shown}{more}"
            )
    stems = sorted(image_files, key=_natural_key)[:max_images]
    return [(image_files[stem], label_files[stem]) for stem in stems]


def _read_pairs(
    pairs: list[tuple[Path, Path]], fit: _Resizer, max_pixels: int, multi: dict | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, mask) of each pair, each file resized as soon as it is decoded."""
    for image_file, label_file in pairs:
        image = read_image(image_file, max_pixels)
        shape, image = image.shape, fit.image(image, image_file)  # the full size freed
        mask = _read_mask(label_file, max_pixels, multi)
        if mask.shape != shape:
            raise ValueError(
                f"load_folder: the image {image_file} has shape {shape} but its label "
                f"{label_file} has shape {mask.shape}; an image and its label must have the "
                "same size"
            )
        yield image, fit.mask(mask, multi)


def _find_stacks(folder: Path) -> tuple[Path, Path]:
    """ISBI's layout: ``train-volume.tif`` and ``train-labels.tif``, or one of each kind."""
    if (folder / "train-volume.tif").is_file() and (folder / "train-labels.tif").is_file():
        return folder / "train-volume.tif", folder / "train-labels.tif"
    tiffs = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in (".tif", ".tiff")]
    volumes = sorted(f for f in tiffs if "volume" in f.name.lower())
    labels = sorted(f for f in tiffs if "labels" in f.name.lower())
    if len(volumes) == 1 and len(labels) == 1:
        return volumes[0], labels[0]

    looked_for = (
        "expected either the subfolders image/ and label/ (the seed's layout: image/0.png "
        "with label/0.png, ...) or the TIFF stacks train-volume.tif and train-labels.tif "
        "(ISBI's layout; or one *volume*.tif and one *labels*.tif)"
    )
    if not any(folder.iterdir()):
        raise FileNotFoundError(f"load_folder: the folder {folder} is empty; {looked_for}")
    for present, absent in (("image", "label"), ("label", "image")):
        if (folder / present).is_dir() and not (folder / absent).is_dir():
            raise FileNotFoundError(
                f"load_folder: {folder} has a folder {present}/ but no folder {absent}/; "
                f"{looked_for}"
            )
    if volumes or labels:
        found = ", ".join(f.name for f in volumes + labels)
        raise FileNotFoundError(
            f"load_folder: {folder} holds {len(volumes)} *volume* and {len(labels)} *labels* "
            f"TIFF file(s) ({found}); {looked_for}"
        )
    present = sorted(f.name + ("/" if f.is_dir() else "") for f in folder.iterdir())
    shown = ", ".join(present[:10]) + (", ..." if len(present) > 10 else "")
    raise FileNotFoundError(
        f"load_folder: {folder} holds neither layout; {looked_for}. Found: {shown}"
    )


def _read_stacks(
    volume: Path,
    labels: Path,
    fit: _Resizer,
    max_images: int | None,
    max_pixels: int = TIFF_MAX_PIXELS,
    multi: dict | None = None,
) -> tuple[int, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """Read the two TIFF stacks and check that their pages match; the number of pages kept,
    and (image, mask) of each page, turned into floats and resized one page at a time."""
    images = read_tiff_stack(volume, max_pixels)  # (pages, H, W), as stored
    masks = read_tiff_stack(labels, max_pixels)
    if images.shape != masks.shape:
        raise ValueError(
            f"load_folder: the image stack {volume} has shape {images.shape} (pages, H, W) but "
            f"the label stack {labels} has shape {masks.shape}; they must match page for page"
        )
    images, masks = images[:max_images], masks[:max_images]
    top = np.iinfo(images.dtype).max
    scale = None if multi is not None else _mask_scale(masks, labels)  # one for the stack
    if multi is not None:  # gray class numbers (a TIFF stack holds no colours)
        masks = levels_to_labels(masks, multi["classes"], labels)
    pages = (
        (
            fit.image(images[k] / top, f"{volume}, page {k}"),
            fit.mask(masks[k] if scale is None else masks[k] / scale, multi),
        )
        for k in range(len(images))
    )
    return len(images), pages


# -- reading files ----------------------------------------------------------------------------
def _read_pixels(path: Path, where: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The pixels as stored: uint8/uint16 (TIFF, JPEG, BMP) or float32 in [0, 1] (PNG).

    Shape ``(H, W)`` for gray, ``(H, W, 3)`` or ``(H, W, 4)`` for colour (with alpha).
    """
    with _open_pixels(path, where, max_pixels) as bands:
        return bands.whole()


@contextmanager
def _open_pixels(path: Path, where: str, max_pixels: int = MAX_PIXELS) -> Iterator[Bands]:
    """The pixels of :func:`_read_pixels`, a band of rows at a time (see ``bands.py``)."""
    require_file(path, where, "image")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(
            f"{where}: cannot read {path}: expected a file ending in "
            f"{', '.join(IMAGE_SUFFIXES)}, got {suffix or 'no suffix'}"
        )
    if suffix in (".tif", ".tiff"):
        pages = read_tiff_stack(path, max_pixels)
        if len(pages) != 1:
            raise ValueError(
                f"{where}: {path} has {len(pages)} pages, expected a single image; "
                "read stacks with read_tiff_stack"
            )
        yield _checked(array_bands(pages[0]), path, where)
        return
    _check_signature(path, suffix, where)
    declared = declared_size(path)
    if declared is not None and declared[0] * declared[1] > max_pixels:
        raise ValueError(
            f"{where}: {path} declares {declared[0]}x{declared[1]} pixels, more than the limit "
            f"of {max_pixels:,} (max_pixels, or --max-pixels on the command line); nothing was "
            "decoded"
        )
    # decoding holds up to 4 bytes a pixel and what is made of it 4 to 8 more: refuse what
    # could not fit in half of this machine's memory, however high max_pixels was set
    if declared is not None and 16 * declared[0] * declared[1] > _machine_memory() // 2:
        need = 16 * declared[0] * declared[1] / 2**30
        raise ValueError(
            f"{where}: {path} declares {declared[0]}x{declared[1]} pixels; decoding it takes "
            f"about {need:.1f} GiB, more than half this machine's memory; nothing was decoded"
        )
    try:
        with ExitStack() as stack:
            try:  # Pillow decodes the whole file here; the bands are made as they are read
                bands = stack.enter_context(pillow_bands(path))
            except (OSError, ValueError, SyntaxError) as err:  # what Pillow raises for a bad file
                raise ValueError(f"{where}: cannot read {path} as an image: {err}") from err
            yield _checked(bands, path, where)
    except MemoryError:  # decoding, or what the caller makes of the bands
        size = f" ({declared[0]}x{declared[1]} pixels)" if declared else ""
        raise ValueError(
            f"{where}: decoding {path}{size} ran out of memory; shrink the file, or lower "
            "max_pixels (--max-pixels) to refuse such files before decoding"
        ) from None


def _checked(bands: Bands, path: Path, where: str) -> Bands:
    """``bands`` with one channel made gray, refused unless gray, gray+alpha, RGB or RGBA."""
    shape = bands.shape
    if len(shape) == 3 and shape[-1] == 1:
        read = bands._read
        return Bands(shape[0], lambda top, bottom: read(top, bottom)[..., 0])
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[-1] not in (2, 3, 4)):
        raise ValueError(f"{where}: {path} gave an array of unexpected shape {shape}")
    return bands


SIGNATURES = {  # the first bytes of each kind of file: what a file named .png really is
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".bmp": (b"BM",),
}
KINDS = {
    b"\x89PNG": "a PNG",
    b"\xff\xd8\xff": "a JPEG",
    b"BM": "a BMP",
    b"II*\x00": "a TIFF",
    b"MM\x00*": "a TIFF",
    b"GIF8": "a GIF",
}


def _check_signature(path: Path, suffix: str, where: str) -> None:
    """Refuse a file whose first bytes are not those of its suffix, saying what it is."""
    with open(path, "rb") as f:
        head = f.read(8)
    if any(head.startswith(sig) for sig in SIGNATURES.get(suffix, (head,))):
        return
    kind = next((name for sig, name in KINDS.items() if head.startswith(sig)), None)
    if kind is None:
        raise ValueError(
            f"{where}: cannot read {path} as an image: its first bytes are not those of a "
            f"{suffix} file (is it damaged?)"
        )
    raise ValueError(f"{where}: {path} is named {suffix} but it is {kind} file; rename it")


def _machine_memory() -> int:
    """This machine's physical memory in bytes (8 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _drop_alpha(pixels: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` colour pixels without their alpha channel (gray+alpha keeps the gray)."""
    return pixels[..., :-1] if pixels.shape[-1] in (2, 4) else pixels


def _read_mask(path: Path, max_pixels: int = MAX_PIXELS, classes: dict | None = None) -> np.ndarray:
    """A mask file as floats in [0, 1] (see the module docstring), shape ``(H, W)``; with
    ``classes = {"classes": K, "palette": ...}``, as class numbers (see ``class_masks``)."""
    if classes is not None:
        pixels = _read_pixels(path, "load_folder", max_pixels)
        if pixels.dtype.kind == "f":  # a PNG: back to the stored values
            pixels = _png_levels(pixels)
        pixels = _drop_alpha(pixels) if pixels.ndim == 3 else pixels
        return pixels_to_labels(pixels, classes["classes"], classes["palette"], path)
    with _open_pixels(path, "load_folder", max_pixels) as bands:  # a band of rows at a time
        levels = np.empty(bands.shape[:2], bands.dtype)  # (H, W)
        for top, band in zip(range(0, len(levels), BAND_ROWS), bands):
            levels[top : top + len(band)] = _gray_mask(band, path) if band.ndim == 3 else band
    rows = [levels[top : top + BAND_ROWS] for top in range(0, len(levels), BAND_ROWS)]
    if levels.dtype.kind == "f":  # a PNG: matplotlib's values k / 255 or k / 65535
        eight_bit = all(_eight_bit(band) for band in rows)  # decided once, from all bands
        for band in rows:
            band[...] = _png_levels(band, eight_bit)
    scale = _mask_scale(levels, path)
    unit = np.empty(levels.shape, np.float32)
    for top, band in zip(range(0, len(levels), BAND_ROWS), rows):
        np.divide(band, scale, out=unit[top : top + len(band)])
    return unit


def _gray_mask(pixels: np.ndarray, path: Path) -> np.ndarray:
    """The gray channel of a colour mask ``(H, W, C)``, copied; its channels must be equal."""
    channels = _drop_alpha(pixels)
    if not _channels_equal(channels):
        raise ValueError(
            f"load_folder: the mask {path} is a colour image whose channels differ; "
            "expected a grayscale mask (1 or 255 = cell, 0 = membrane). If cells and "
            "membranes are marked in colours, convert it to a two-valued gray image first"
        )
    return channels[..., 0].copy()


def _channels_equal(pixels: np.ndarray) -> bool:
    """Whether every channel of ``(H, W, C)`` equals the first, compared one at a time."""
    return all(np.array_equal(pixels[..., c], pixels[..., 0]) for c in range(1, pixels.shape[-1]))


def _png_levels(values: np.ndarray, eight_bit: bool | None = None) -> np.ndarray:
    """Undo matplotlib's scaling of a PNG: back to the stored values 0..255 or 0..65535
    (8-bit when ``eight_bit``, or when None and every value is k / 255)."""
    if eight_bit is None:
        eight_bit = _eight_bit(values)
    return np.rint(values * (255 if eight_bit else 65535))


def _eight_bit(values: np.ndarray) -> bool:
    """Whether PNG values from matplotlib are all k / 255, as an 8-bit file's are."""
    scaled = values * 255
    scaled -= np.rint(scaled)  # in place: a mask may be 8192 x 8192
    return bool(np.abs(scaled, out=scaled).max() < 1e-3)


def _mask_scale(levels: np.ndarray, path: Path) -> int:
    """What stored mask values are divided by: 1, 255 or 65535, the smallest at least their
    maximum; a ValueError for values that would make every pixel membrane."""
    top = float(levels.max())
    scale = 1 if top <= 1 else 255 if top <= 255 else 65535
    if 0 < top <= 0.5 * scale:  # e.g. values 0, 1, 2, 3: the labels of several classes
        raise ValueError(
            f"load_folder: the mask {path} holds values in [{float(levels.min()):g}, {top:g}], "
            "out of the range of a mask: expected 0/1, 0/255 or 0/65535 (cell/membrane), or "
            f"gray levels reaching above half of 255 or 65535; divided by {scale}, every pixel "
            "would be membrane. If the mask numbers several classes or objects, make it binary "
            "first (1 = cell, 0 = membrane), or load it with classes=K"
        )
    return scale


def image_files(folder: str | Path) -> list[Path]:
    """The images of ``folder`` in natural order (2 before 10): the one rule that
    ``load_folder`` and ``numpy-unet predict`` use. Files ending in one of
    ``IMAGE_SUFFIXES`` count; hidden files (``.DS_Store``, macOS's ``._0.png``) do not."""
    found = [
        file
        for file in Path(folder).iterdir()
        if not file.name.startswith(".")
        and file.suffix.lower() in IMAGE_SUFFIXES
        and file.is_file()
    ]
    return sorted(found, key=lambda f: _natural_key(f.name))


def _image_files(folder: Path) -> dict[str, Path]:
    """The image files of ``folder``, keyed by file name without suffix."""
    files: dict[str, Path] = {}
    for file in image_files(folder):
        if file.stem in files:
            raise ValueError(
                f"load_folder: {files[file.stem]} and {file} have the same name; expected one "
                "file per name, so that each image has exactly one label"
            )
        files[file.stem] = file
    return files


def _natural_key(name: str) -> list:
    """Sort key that orders the numbers inside names by value: 2 before 10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _check_total_pixels(folder: Path, files: list[Path], budget: int) -> None:
    """Refuse files whose headers declare more than ``budget`` pixels in all, before any is
    decoded: a ValueError naming the folder, the total, the largest file and the budget."""
    declared = {file: _declared_pixels(file, budget) for file in files}
    total = sum(declared.values())
    if total > budget:
        largest = max(declared, key=declared.get)
        raise ValueError(
            f"load_folder: the {len(files)} image and mask files of {folder} declare "
            f"{total:,} pixels in all (the largest, {largest.name}, {declared[largest]:,}), "
            f"more than the budget of {budget:,} (max_total_pixels); nothing was decoded. "
            "Load fewer pairs (max_images), shrink the files first, or raise max_total_pixels"
        )


def _declared_pixels(path: Path, stop: int) -> int:
    """The pixels a file's header declares, all pages of a TIFF file (counted until they pass
    ``stop``); 0 when the header says nothing readable (the decoder will say what is wrong)."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        size = declared_size(path)
        return 0 if size is None else size[0] * size[1]
    try:  # walk the IFDs, one per page, through a memory map: only the headers are read
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            order = {b"II": "<", b"MM": ">"}.get(data[:2])
            if order is None or len(data) < 8 or struct.unpack_from(order + "H", data, 2)[0] != 42:
                return 0
            (offset,) = struct.unpack_from(order + "I", data, 4)
            total, seen = 0, set()
            while offset and offset not in seen and total <= stop:
                seen.add(offset)
                tags, offset = _read_ifd(data, offset, order, path)
                total += tags.get(IMAGE_WIDTH, (0,))[0] * tags.get(IMAGE_LENGTH, (0,))[0]
            return total
    except (OSError, ValueError, struct.error):  # empty, truncated: read_tiff_stack says so
        return 0


def declared_size(path: Path) -> tuple[int, int] | None:
    """(height, width) that a PNG, BMP or JPEG file's header declares, read without decoding
    the file; None when the header says nothing readable (the decoder will complain)."""
    with open(path, "rb") as f:
        head = f.read(32)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return height, width
        if head[:2] == b"BM" and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            return abs(height), abs(width)  # a negative height: rows stored top-down
        if head[:2] == b"\xff\xd8":  # JPEG: walk the segments to a start-of-frame marker
            f.seek(2)
            while (marker := f.read(2)) and len(marker) == 2 and marker[0] == 0xFF:
                length = struct.unpack(">H", f.read(2) or b"\0\0")[0]
                if 0xC0 <= marker[1] <= 0xCF and marker[1] not in (0xC4, 0xC8, 0xCC):
                    height, width = struct.unpack(">HH", f.read(5)[1:5])
                    return height, width
                f.seek(length - 2, 1)
    return None
