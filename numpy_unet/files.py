"""Writing files without losing any: atomic saves and output folders that never overwrite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez`` to ``path`` through a temporary file, flushed to disk, then renamed.

    A crash or a kill at any moment leaves either the old file or the new one, never half a
    file: the rename is atomic, and ``fsync`` makes sure the data is on disk before it.
    """
    path = Path(path)
    tmp = temporary(path)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a read-only folder, Ctrl-C: leave no half file
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all: a new temporary file of a name no
    other file has (``tempfile.mkstemp``) in the same folder, flushed, then renamed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a results file is read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def temporary(path: Path) -> Path:
    """The temporary file :func:`atomic_savez` writes before renaming it to ``path``."""
    return path.with_name(f".{path.name}.tmp")


def fresh_dir(path: str | os.PathLike) -> Path:
    """``path`` if it is new or empty, else ``path-2``, ``path-3``, ...: never overwrite."""
    path = Path(path)
    candidate, k = path, 1
    while candidate.exists() and any(candidate.iterdir()):
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate
