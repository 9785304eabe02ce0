"""Writing files without losing any: atomic saves and output folders that never overwrite.

Two rules keep every file a user saved:

- a save goes to a temporary file of a name no other file has (:func:`temporary`), which is
  then renamed over the target: a crash leaves the old file or the new one, never half a
  file, and never touches a file this process did not make;
- a run's output folder is claimed by creating it (:func:`fresh_dir`): two runs started at
  once into the same ``--out`` get two folders, never one folder between them.
"""

from __future__ import annotations

import os
import secrets
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
    except OSError as err:  # a full disk, a read-only folder: leave no half file, say which
        tmp.unlink(missing_ok=True)
        raise naming(err, path) from None
    except BaseException:  # Ctrl-C: leave no half file
        tmp.unlink(missing_ok=True)
        raise
    return path


def naming(err: OSError, path: Path) -> OSError:
    """``err`` with the file it was writing named: ``[Errno 28] No space left on device``
    alone does not say where."""
    if err.filename is not None and str(err.filename) == str(path):
        return err
    return type(err)(err.errno, f"cannot write {path}: {err.strerror or err}")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all: a :func:`temporary` file in the same
    folder, flushed, then renamed."""
    path = Path(path)
    tmp = temporary(path)
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise naming(err, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def temporary(path: str | os.PathLike) -> Path:
    """Create a new, empty file beside ``path`` for a save that is then renamed over it.

    Its name, ``.NAME.XXXXXXXX.tmp`` (8 random hex digits), is one no other file has: it is
    created with ``O_EXCL``, as ``tempfile.mkstemp`` creates its files, so a user's file,
    or another process's temporary file, is never opened, overwritten or deleted. Unlike
    ``mkstemp``'s, its permissions are those of an ordinary ``open`` (``0o666`` less the
    umask), which the renamed file keeps.

    Parameters
    ----------
    path : str or os.PathLike
        The file the caller will write; its folder must exist.

    Returns
    -------
    pathlib.Path
        The temporary file, made by this call and empty. The caller opens it for writing
        (``"wb"``), ``os.replace``\\ s it over ``path``, and unlinks it if anything fails:
        the only file a caller may delete is this one.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):  # 16**8 names: a clash is rare, a hundred in a row impossible
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(candidate, flags, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{path.parent}: no free name for a temporary file beside {path.name}")


def require_file(path: Path, where: str, what: str = "file") -> None:
    """A readable regular file at ``path``, or a one-line error saying what is there."""
    if path.is_file():
        return
    if path.is_dir():
        raise IsADirectoryError(f"{where}: {path} is a folder, not a {what}")
    if path.exists():  # a device, a FIFO, a socket: reading it could block or never end
        raise ValueError(f"{where}: {path} is not a regular file (a device or a pipe?)")
    raise FileNotFoundError(f"{where}: no such file: {path}")


def fresh_dir(path: str | os.PathLike) -> Path:
    """Create a new folder for a run's results: ``path``, or ``path-2``, ``path-3``, ... if
    that exists.

    The folder is claimed by creating it (``mkdir`` without ``exist_ok``), which succeeds in
    exactly one process: two runs started at once into the same ``--out`` get two folders.
    A folder that exists is never written into, even an empty one, since another run may
    have just made it; missing parent folders are made.

    Parameters
    ----------
    path : str or os.PathLike
        The folder wanted.

    Returns
    -------
    pathlib.Path
        The folder made, new and empty.

    Raises
    ------
    FileExistsError
        ``path`` is a file, or has no name to number (``.``, ``/``).
    """
    path = Path(path)
    candidate, k = path, 1
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            if k == 1 and path.exists() and not path.is_dir():
                raise FileExistsError(
                    f"{path} is a file, not a folder; name a folder for the results"
                ) from None
            if k == 1 and path.name in ("", ".", ".."):
                raise FileExistsError(
                    f"{path} exists, and results go into a new folder; name one, e.g. "
                    f"{path / 'results'}"
                ) from None
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")
