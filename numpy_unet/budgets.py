"""How much a file may make this package allocate, known from its headers before it is read.

A few bytes of header can declare gigabytes (an ``.npy`` header, an HDF5 dataset of unwritten
chunks): the readers of weights files and checkpoints compare what a file declares with the
budget here first, and refuse it, naming the largest array, before reading any.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

MAX_PARAMS = 10**9  # as UNet's own limit: read no more than a UNet may hold
# the most bytes of weights read from one file, from the shapes and dtypes it declares, before
# any is read: MAX_PARAMS float32 parameters (4 GB; half as many in float64), or a quarter of
# the memory this process may use if that is less (a 71 kB HDF5 file of unwritten chunks can
# declare gigabytes). Loading holds the file's arrays, the model's own copy and the copy
# set_weights checks; training adds gradients and Adam's two moments
MAX_WEIGHT_BYTES = 4 * MAX_PARAMS


class BudgetError(ValueError):
    """The file declares more than this package reads; nothing of it was read."""


def memory_limit() -> int:
    """The bytes of memory this process may use: the machine's, or less under ``ulimit -v``
    (RLIMIT_AS); 8 GiB where the system does not say."""
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        limit = 8 * 2**30
    try:
        import resource
    except ImportError:  # Windows
        return limit
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    return limit if soft == resource.RLIM_INFINITY else min(limit, soft)


def weights_budget() -> tuple[int, str]:
    """(bytes, why): the most bytes of weights read from one file (see MAX_WEIGHT_BYTES)."""
    quarter = memory_limit() // 4
    if quarter < MAX_WEIGHT_BYTES:
        return quarter, f"a quarter of the {4 * quarter / 2**30:.1f} GiB this process may use"
    return MAX_WEIGHT_BYTES, f"{MAX_PARAMS:,} float32 parameters, the most a UNet may have here"


def check_weight_bytes(arrays: list[tuple[str, tuple, np.dtype]], what: str = "weights") -> None:
    """Refuse, before any is read, arrays ``(name, shape, dtype)`` that declare more bytes in
    all than :func:`weights_budget`: a BudgetError naming the total and the largest array.
    ``what`` names them in the message ("weights", or a checkpoint's "arrays")."""
    budget, why = weights_budget()
    sizes = [math.prod(shape) * np.dtype(dtype).itemsize for _, shape, dtype in arrays]
    total = sum(sizes)
    if total > budget:
        name, shape, dtype = arrays[sizes.index(max(sizes))]
        raise BudgetError(
            f"its {what} declare {total:,} bytes ({total / 2**30:.1f} GiB), more than the "
            f"budget of {budget:,} bytes ({why}); the largest array, {name}, has shape "
            f"{tuple(shape)} of {np.dtype(dtype)}; nothing was read"
        )


def npz_contents(path: Path) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """(name, shape, dtype) of each member of an ``.npz``, read from the ``.npy`` headers
    alone: what ``np.load`` would allocate for it, known before it does. A member that is not
    ``.npy``, which ``np.load`` gives as bytes, counts its size in the zip directory."""
    if not zipfile.is_zipfile(path):
        raise ValueError("it is neither an .npz archive nor an .npy array")
    contents = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                contents.append((info.filename, (info.file_size,), np.dtype(np.uint8)))
                continue
            with z.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0  # 3.0 differs only in encoding
                )
                shape, _, dtype = read_header(member)
            contents.append((info.filename.removesuffix(".npy"), shape, dtype))
    return contents
