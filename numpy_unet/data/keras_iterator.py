"""Keras's image iterators, batch for batch: what ``flow`` and ``flow_from_directory`` yield.

The seed trains from two of Keras's iterators, one over the images and one over the masks,
both made with ``seed=1`` and zipped. They stay paired because each one replays the same
random stream (Keras 3's ``keras/src/legacy/preprocessing/image.py``, ``Iterator``):

1. before every batch, NumPy's global random state is reseeded with ``seed +
   total_batches_seen`` (0 for the first batch, 1 for the second, ...);
2. at the start of each pass over the data (``batch_index == 0``), the order is drawn from
   that state: ``np.random.permutation(n)`` (or ``arange(n)`` without shuffling);
3. the batch is the next ``batch_size`` indices of that order; the last batch of a pass is
   shorter when ``batch_size`` does not divide ``n``, and the next batch starts a new pass;
4. each sample of the batch, in order, draws its transform (``get_random_transform``) from
   the same state, and the transform is applied (``apply_transform``).

Here the state is a private ``numpy.random.RandomState(seed + total_batches_seen)`` driving
the very same draws, so NumPy's global state is never touched. With ``seed=None`` Keras keeps
drawing from the global state; here, from one private ``RandomState`` seeded from the
generator's ``rng``.

Two things surprise people. ``flow(x, y)`` transforms ``x`` only: ``y`` comes back as it was
given (Keras's labels), so masks must go through a second ``flow(masks, seed=...)`` with the
same seed, as the seed's ``trainGenerator`` does. And ``flow_from_directory`` lists files in
plain string order (``10.png`` before ``2.png``), as Keras does.

How ``flow_from_directory`` loads a file (Keras's ``load_img``, Pillow inside): the file's
stored values (0..255, or 0..65535 for a 16-bit grayscale PNG or TIFF) are converted to the
colour mode as Pillow's ``convert`` does, then resized to ``target_size`` with Pillow's
nearest-neighbour rule (:func:`~numpy_unet.data.resize.resize_like_pil_nearest`), then
turned into float32 **without** dividing by 255 (the seed's ``adjustData`` does that).
``"grayscale"`` turns colour into Pillow's ITU-R 601-2 luma with its integer rounding,
``L = (19595 R + 38470 G + 7471 B + 32768) >> 16``; ``"rgb"`` repeats a gray image three
times and drops alpha; ``"rgba"`` adds alpha 255 where there is none.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from .loading import IMAGE_SUFFIXES, _read_pixels
from .resize import _parse_size, resize_like_pil_nearest

KERAS_FORMATS = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")  # Keras's white list
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}  # channels of each mode
CLASS_MODES = ("categorical", "binary", "sparse", "input", None)
LUMA = np.array([19595, 38470, 7471])  # Pillow's L24: ITU-R 601-2 weights times 65536


class GeneratorLike(Protocol):
    """What the iterators use of an `~numpy_unet.data.ImageDataGenerator` (which imports
    this module, so it is described here rather than imported)."""

    rng: np.random.Generator

    def draw_transform(self, rng: np.random.RandomState, shape: tuple) -> dict: ...

    def apply_transform(self, x: np.ndarray, transform_parameters: dict) -> np.ndarray: ...


class KerasIterator:
    """Keras's ``Iterator``: the order of the samples and the random state of each batch.

    Parameters
    ----------
    n : int
        Number of samples.
    batch_size : int
        Samples per batch (the last batch of a pass may hold fewer).
    shuffle : bool
        Draw a new order at the start of every pass.
    seed : int or None
        Each batch's random state is ``RandomState(seed + total_batches_seen)``; None draws
        from one private state seeded from ``rng_source``.
    where : str
        The name used in error messages.
    rng_source : numpy.random.Generator
        Seeds the private state when ``seed`` is None.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        seed: int | None,
        where: str,
        rng_source: np.random.Generator,
    ) -> None:
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"{where}: batch_size must be an int >= 1, got {batch_size!r}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise ValueError(f"{where}: shuffle must be True or False, got {shuffle!r}")
        if seed is not None and (not _is_int(seed) or not 0 <= seed < 2**32):
            raise ValueError(f"{where}: seed must be an int in [0, 2**32) or None, got {seed!r}")
        self.n, self.batch_size, self.shuffle = n, int(batch_size), bool(shuffle)
        self.seed = None if seed is None else int(seed)
        self.where = where
        self.batch_index = 0  # position in the current pass, in batches
        self.total_batches_seen = 0
        self.index_array: np.ndarray | None = None  # the order of the current pass
        self._rng = np.random.RandomState(rng_source.integers(2**32)) if seed is None else None

    def __len__(self) -> int:
        """Batches per pass: ``ceil(n / batch_size)``."""
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> KerasIterator:
        return self

    def __next__(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The next batch; the stream never ends (passes follow one another)."""
        indices, rng = self._next_indices()
        return self._batch(indices, rng)

    def next(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Keras 2's name for ``next(iterator)``."""
        return self.__next__()

    def reset(self) -> None:
        """Start a new pass at the next batch (``total_batches_seen`` keeps counting)."""
        self.batch_index = 0

    def _next_indices(self) -> tuple[np.ndarray, np.random.RandomState]:
        """Keras's ``_flow_index``, one step: this batch's indices and random state."""
        if self.seed is None:
            rng = self._rng
        else:  # Keras: np.random.seed(self.seed + self.total_batches_seen)
            rng = np.random.RandomState(self.seed + self.total_batches_seen)
        if self.batch_index == 0:  # a new pass: a new order
            self.index_array = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        current = (self.batch_index * self.batch_size) % self.n
        self.batch_index = self.batch_index + 1 if self.n > current + self.batch_size else 0
        self.total_batches_seen += 1
        return self.index_array[current : current + self.batch_size], rng

    def batch(self, k: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The ``k``-th batch (from 0) of a fresh seeded stream, from ``k`` alone: the pass it
        belongs to draws its order from ``RandomState(seed + first batch of the pass)``, the
        batch its transforms from ``RandomState(seed + k)`` (after the order, for the first
        batch of a pass). What ``next()`` gives as its ``k``-th batch, without the ``k``
        batches before it: a training run resumed at step ``k`` continues the same stream."""
        if self.seed is None:
            raise ValueError(
                f"{self.where}: batch(k) needs a seed (the stream's batches are "
                "then functions of k)"
            )
        if not _is_int(k) or k < 0:
            raise ValueError(f"{self.where}: batch(k) needs an int k >= 0, got {k!r}")
        per_pass = len(self)
        start = (int(k) // per_pass) * per_pass  # the first batch of k's pass
        rng = np.random.RandomState(self.seed + start)
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        if k != start:
            rng = np.random.RandomState(self.seed + int(k))
        j = (int(k) - start) * self.batch_size
        return self._batch(order[j : j + self.batch_size], rng)

    def _batch(self, indices: np.ndarray, rng: np.random.RandomState) -> np.ndarray | tuple:
        raise NotImplementedError


class NumpyArrayIterator(KerasIterator):
    """Keras's ``NumpyArrayIterator``: batches of ``x`` transformed, with ``y`` untouched.

    Parameters
    ----------
    x : array-like
        ``(N, H, W, C)`` images, any real dtype; cast to float32 as Keras does.
    y : array-like or None
        ``(N, ...)`` labels, returned as given (**not** transformed; see the module docs).
    image_data_generator : ImageDataGenerator
        Draws and applies each sample's transform.
    batch_size, shuffle, seed, where
        As for `KerasIterator`.

    Yields
    ------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        ``batch_x`` of shape ``(B, H, W, C)``, float32, or ``(batch_x, y[indices])``.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray | None,
        image_data_generator: GeneratorLike,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int | None = None,
        where: str = "NumpyArrayIterator",
    ) -> None:
        if isinstance(x, (tuple, list)):
            raise ValueError(
                f"{where}: x must be one array (N, H, W, C); Keras's (x, x_misc) form is not "
                "supported (stack a list of images with np.stack first)"
            )
        try:
            self.x = np.asarray(x, dtype=np.float32)  # (N, H, W, C), Keras's floatx
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: x must be a numeric array (N, H, W, C)") from error
        if self.x.ndim != 4 or 0 in self.x.shape:
            raise ValueError(
                f"{where}: x must be a non-empty array of rank 4 (N, H, W, C), got shape "
                f"{self.x.shape}; add the channel axis with x[..., None]"
            )
        self.y = None if y is None else np.asarray(y)
        if self.y is not None and (self.y.ndim == 0 or len(self.y) != len(self.x)):
            raise ValueError(
                f"{where}: x and y must have the same length, got x.shape = {self.x.shape}, "
                f"y.shape = {self.y.shape}"
            )
        self.image_data_generator = image_data_generator
        super().__init__(len(self.x), batch_size, shuffle, seed, where, image_data_generator.rng)

    def _batch(self, indices: np.ndarray, rng: np.random.RandomState) -> np.ndarray | tuple:
        generator = self.image_data_generator
        batch_x = np.zeros((len(indices), *self.x.shape[1:]), dtype=np.float32)  # (B, H, W, C)
        for i, j in enumerate(indices):  # Keras's order: draw, apply, sample after sample
            params = generator.draw_transform(rng, self.x[j].shape)
            batch_x[i] = generator.apply_transform(self.x[j], params)
        return batch_x if self.y is None else (batch_x, self.y[indices])


class DirectoryIterator(KerasIterator):
    """Keras's ``DirectoryIterator``: image files of class subfolders, loaded and transformed.

    Parameters
    ----------
    directory : str or os.PathLike
        A folder holding one subfolder per class.
    image_data_generator : ImageDataGenerator
        Draws and applies each sample's transform.
    target_size : (int, int)
        ``(height, width)`` every image is resized to (Pillow's nearest neighbour).
    color_mode : {'grayscale', 'rgb', 'rgba'}
        1, 3 or 4 channels (see the module docstring for the conversions).
    classes : list of str or None
        The subfolders to read, in this order; None (or empty) takes every subfolder,
        sorted by name.
    class_mode : {'categorical', 'binary', 'sparse', 'input', None}
        What comes with the images: one-hot classes, class numbers (float32), the images
        again, or nothing (the seed's choice: batches of images alone).
    batch_size, shuffle, seed, where
        As for `KerasIterator`.

    Attributes
    ----------
    filenames : list of str
        The files, relative to ``directory``, in Keras's order: class by class, folders in
        sorted path order, files in plain string order (``10.png`` before ``2.png``); every
        name ending (in any case) in png, jpg, jpeg, bmp, ppm, tif or tiff counts.
    classes : numpy.ndarray
        ``(samples,)`` int32 class number of each file.
    class_indices : dict
        Subfolder name to class number.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        image_data_generator: GeneratorLike,
        target_size: tuple[int, int] = (256, 256),
        color_mode: str = "rgb",
        classes: list[str] | None = None,
        class_mode: str | None = "categorical",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        where: str = "DirectoryIterator",
    ) -> None:
        self.target_size = _parse_size(target_size, f"{where} (target_size)")
        if color_mode not in COLOR_MODES:
            raise ValueError(
                f"{where}: color_mode must be one of {list(COLOR_MODES)}, got {color_mode!r}"
            )
        if class_mode not in CLASS_MODES:
            raise ValueError(
                f"{where}: class_mode must be one of {CLASS_MODES}, got {class_mode!r}"
            )
        folder = Path(directory)
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise FileNotFoundError(f"{where}: the directory {folder} {what}")
        subfolders = sorted(d.name for d in folder.iterdir() if d.is_dir())
        if not classes:
            classes = subfolders
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"{where}: classes must be a list of subfolder names, got {classes!r}")
        for name in classes:
            if not (folder / name).is_dir():
                raise FileNotFoundError(
                    f"{where}: {folder} has no subfolder {name!r} (classes names the "
                    f"subfolders to read); its subfolders are: {subfolders}"
                )
        self.directory, self.color_mode, self.class_mode = folder, color_mode, class_mode
        self.class_indices = {name: k for k, name in enumerate(classes)}
        self.filenames, labels = [], []
        for k, name in enumerate(classes):
            for path in keras_image_files(folder / name):
                self.filenames.append(os.path.join(name, os.path.relpath(path, folder / name)))
                labels.append(k)
        if not self.filenames:
            raise FileNotFoundError(
                f"{where}: found no images in {[str(folder / c) for c in classes]} (Keras "
                f"reads names ending in {', '.join(KERAS_FORMATS)})"
            )
        unreadable = [f for f in self.filenames if Path(f).suffix.lower() not in IMAGE_SUFFIXES]
        if unreadable:
            raise ValueError(
                f"{where}: Keras would list {unreadable[:3]}, which cannot be read here "
                f"(readable: {', '.join(IMAGE_SUFFIXES)}); convert or move them"
            )
        self.filepaths = [str(folder / f) for f in self.filenames]
        self.classes = np.array(labels, dtype=np.int32)  # (samples,)
        self.samples, self.num_classes = len(self.filenames), len(classes)
        self.image_shape = (*self.target_size, COLOR_MODES[color_mode])  # (h, w, C)
        self.image_data_generator = image_data_generator
        super().__init__(self.samples, batch_size, shuffle, seed, where, image_data_generator.rng)

    def _batch(self, indices: np.ndarray, rng: np.random.RandomState) -> np.ndarray | tuple:
        generator = self.image_data_generator
        batch_x = np.zeros((len(indices), *self.image_shape), dtype=np.float32)  # (B, h, w, C)
        for i, j in enumerate(indices):
            x = load_like_keras(self.filepaths[j], self.color_mode, self.target_size, self.where)
            params = generator.draw_transform(rng, x.shape)
            batch_x[i] = generator.apply_transform(x, params)
        if self.class_mode is None:
            return batch_x
        if self.class_mode == "input":
            return batch_x, batch_x.copy()
        labels = self.classes[indices]  # (B,)
        if self.class_mode in ("binary", "sparse"):
            return batch_x, labels.astype(np.float32)
        return batch_x, (labels[:, None] == np.arange(self.num_classes)).astype(np.float32)


def keras_image_files(folder: Path) -> list[str]:
    """The files of ``folder`` and its subfolders that Keras lists, in Keras's order
    (``_iter_valid_files``): folders by path, then files by name, plain string order."""
    found = []
    for root, _, files in sorted(os.walk(folder), key=lambda walk: walk[0]):
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(KERAS_FORMATS)]
    return found


def load_like_keras(
    path: str | os.PathLike, color_mode: str, target_size: tuple[int, int], where: str
) -> np.ndarray:
    """One file as Keras's ``load_img`` and ``img_to_array`` give it: ``(h, w, C)`` float32
    of the stored values (0..255, or 0..65535 for 16-bit gray), not divided by 255."""
    path = Path(path)
    pixels = _read_pixels(path, where)  # uint8 / uint16, or float32 in [0, 1] from a PNG
    sixteen_bit = pixels.dtype == np.uint16
    if pixels.dtype.kind == "f":  # matplotlib divided a PNG's values: back to the stored ones
        depth = png_gray_depth(path)
        if depth is False or depth in (2, 4):
            what = "not a PNG" if depth is False else f"a {depth}-bit PNG; save it with 8 bits"
            raise ValueError(f"{where}: cannot read {path} as Keras does: {what}")
        sixteen_bit = depth == 16
        scale, dtype = (65535, np.uint16) if sixteen_bit else (255, np.uint8)
        pixels = np.rint(pixels * scale).astype(dtype)
    if pixels.dtype not in (np.uint8, np.uint16) or (sixteen_bit and pixels.ndim == 3):
        raise ValueError(f"{where}: {path}: unsupported pixels ({pixels.dtype}, {pixels.shape})")
    if sixteen_bit and color_mode != "grayscale":
        raise ValueError(
            f"{where}: {path} is a 16-bit image; only color_mode='grayscale' reads it as Keras "
            "does (Pillow's 16-bit to RGB conversion is not reproduced)"
        )
    levels = convert_like_pil(pixels, color_mode)  # (H, W, C)
    if levels.shape[:2] != tuple(target_size):
        levels = resize_like_pil_nearest(levels, target_size, sixteen_bit=sixteen_bit)
    return levels.astype(np.float32)  # (h, w, C)


def convert_like_pil(pixels: np.ndarray, color_mode: str) -> np.ndarray:
    """Pillow's ``convert('L' / 'RGB' / 'RGBA')`` of stored values: ``(H, W)`` gray,
    ``(H, W, 2)`` gray and alpha, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA -> ``(H, W, C)``."""
    if pixels.ndim == 2 or pixels.shape[-1] <= 2:  # gray (+ alpha)
        gray = pixels if pixels.ndim == 2 else pixels[..., 0]
        rgb = np.stack([gray] * 3, axis=-1)  # (H, W, 3)
    else:
        rgb = pixels[..., :3]
        gray = (rgb.astype(np.int64) @ LUMA + 0x8000) >> 16  # Pillow's L24 >> 16, exact
    if color_mode == "grayscale":
        return gray.astype(pixels.dtype)[..., None]  # (H, W, 1)
    if color_mode == "rgb":
        return rgb
    has_alpha = pixels.ndim == 3 and pixels.shape[-1] in (2, 4)
    alpha = pixels[..., -1] if has_alpha else np.full(pixels.shape[:2], 255, pixels.dtype)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)  # (H, W, 4)


def png_gray_depth(path: Path) -> int | None | bool:
    """The bit depth of a grayscale PNG (colour type 0), None for other PNGs (Pillow gives
    them 8 bits), False if the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    return head[24] if head[25] == 0 else None


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
