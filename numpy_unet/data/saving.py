"""Writing predictions as pictures: the seed's ``saveResult`` and the PNGs of ``predict``.

The seed's ``saveResult(save_path, results)`` writes one ``N_predict.png`` per prediction,
``N`` counting from 0: for one class, the predicted probability of 'cell' as a gray image
(white = 1); for several classes (``flag_multi_class=True``), each pixel in the colour of its
class (``labelVisualize`` with ``COLOR_DICT``). `save_result` does the same, with two
differences a user would want: it writes each file whole or not at all (a temporary file,
then a rename), and it refuses to replace a file that is already there unless asked.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..files import naming, temporary
from ..labels import COLOR_DICT, label_to_rgb


def prediction_picture(probs: np.ndarray, colors: object = COLOR_DICT) -> np.ndarray:
    """What the seed saves of one prediction ``(H, W, K)``: P(cell) ``(H, W)`` in [0, 1] for
    one or two classes (the sigmoid, or class 1 of a softmax), else the classes in colour
    ``(H, W, 3)`` (see :func:`numpy_unet.labels.label_to_rgb`)."""
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"save_result: a prediction is (H, W, K), got shape {probs.shape}")
    if probs.shape[-1] <= 2:
        return np.clip(probs[..., -1], 0.0, 1.0)
    return label_to_rgb(probs, colors)  # (H, W, K) -> (H, W, 3)


def png_bytes(levels: np.ndarray) -> bytes:
    """An 8-bit PNG of ``levels`` (uint8): gray ``(H, W)`` or colour ``(H, W, 3)``, as
    skimage's ``io.imsave`` writes the seed's predictions (no alpha channel). The format:
    the signature, an IHDR chunk (size, 8 bits, colour type 0 gray or 2 RGB), the rows each
    led by filter byte 0 and deflated (zlib) in one IDAT chunk, and IEND; each chunk is its
    length, its type, its data and the CRC-32 of type and data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    height, width = levels.shape[:2]
    colour = 2 if levels.ndim == 3 else 0
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    rows = levels.reshape(height, -1)  # (H, W) or (H, 3W): one scanline per row
    data = b"".join(b"\0" + row.tobytes() for row in rows)  # filter type 0: none
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(data, 6))
        + chunk(b"IEND", b"")
    )


def write_png(path: str | os.PathLike, picture: np.ndarray, overwrite: bool = False) -> Path:
    """Write a gray ``(H, W)`` or colour ``(H, W, 3)`` picture in [0, 1] as an 8-bit PNG,
    grayscale or RGB (values rounded to the nearest of 0, 1/255, ..., 1), through a temporary
    file renamed over ``path``: a crash leaves the old file or the new, whole."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"write_png: {path} exists; pass overwrite=True to replace it")
    picture = np.asarray(picture)
    if picture.ndim not in (2, 3) or (picture.ndim == 3 and picture.shape[2] != 3):
        raise ValueError(f"write_png: a picture is (H, W) or (H, W, 3), got {picture.shape}")
    levels = np.empty(picture.shape, np.uint8)  # 8-bit, rounded; made 512 rows at a time,
    for top in range(0, len(picture), 512):  # so that a large picture is not copied whole
        band = np.clip(picture[top : top + 512], 0.0, 1.0)
        levels[top : top + 512] = np.rint(band * 255)
    tmp = temporary(path)
    try:
        try:
            with open(tmp, "wb") as f:
                f.write(png_bytes(np.ascontiguousarray(levels)))
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:  # a full disk: name the file
            raise naming(err, path) from None
        if overwrite:
            os.replace(tmp, path)
        else:  # a link fails if the file appeared meanwhile (another run): nothing replaced
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(
                    f"write_png: {path} appeared while it was being written (another run "
                    "writing into the same folder?); it was left as it is"
                ) from None
            except OSError:  # a file system without hard links: check, then rename
                if path.exists():
                    raise FileExistsError(f"write_png: {path} exists; left as it is") from None
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_result(
    save_path: str | os.PathLike,
    predictions: np.ndarray,
    names: list[str] | None = None,
    *,
    overwrite: bool = False,
    colors: object = COLOR_DICT,
) -> list[Path]:
    """Write ``N_predict.png`` for each prediction, as the seed's ``saveResult`` does.

    Parameters
    ----------
    save_path : str or os.PathLike
        An existing folder (the seed writes beside its test images).
    predictions : numpy.ndarray
        ``(N, H, W, K)``, what ``model.predict`` returns.
    names : list of str, optional
        The ``N`` of each file name; by default ``0, 1, 2, ...`` as in the seed. Pass the
        input files' stems to name outputs after inputs (``cell_a.png`` ->
        ``cell_a_predict.png``).
    overwrite : bool
        Replace files already there; by default nothing is written if any one exists.
    colors : array-like
        The palette for several classes (the seed's ``COLOR_DICT`` by default).

    Returns
    -------
    list of pathlib.Path
        The files written, in order.
    """
    folder, predictions = Path(save_path), np.asarray(predictions)
    if not folder.is_dir():
        raise FileNotFoundError(f"save_result: {folder} is not a folder")
    if predictions.ndim != 4:
        raise ValueError(f"save_result: predictions are (N, H, W, K), got {predictions.shape}")
    names = [str(i) for i in range(len(predictions))] if names is None else list(names)
    if len(names) != len(predictions) or len(set(names)) != len(names):
        raise ValueError(
            f"save_result: {len(names)} names for {len(predictions)} predictions; give one "
            "distinct name per prediction"
        )
    paths = [folder / f"{name}_predict.png" for name in names]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:  # checked before anything is written
        raise FileExistsError(
            f"save_result: {existing[0]} exists (and {len(existing) - 1} more); pass "
            "overwrite=True to replace them"
        )
    pictures = [prediction_picture(p, colors) for p in predictions]  # every check first
    return [write_png(path, pic, overwrite=True) for path, pic in zip(paths, pictures)]
