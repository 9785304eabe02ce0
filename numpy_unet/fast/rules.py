"""The speed engine's size rules, read from the machine it runs on.

The engine cuts its work into blocks that stay in a core's level-2 cache, and uses as many
cores as NumPy's BLAS has threads. Both come from this machine when an engine first runs
(:meth:`Rules.for_this_machine`): the L2 size from ``os.sysconf`` or
``/sys/devices/system/cpu``, the core count from OpenBLAS (:class:`Blas`). Where neither
can be read, the fallbacks are those of the machine the rules were first tuned on (1 MB of
L2 per core, 2 cores). The blocks shrink with a smaller L2 but do not grow past
:data:`BLOCK_CACHE_CAP`; ``benchmarks/RESULTS.md`` records what each rule gained.

Nothing here runs at import: :class:`Blas` looks for OpenBLAS only when an engine asks.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

FALLBACK_L2 = 2**20  # bytes of L2 per core where the machine does not say
# the block sizes follow L2 up to this size and no further: blocks twice as large on a 2 MB
# L2 ran the thin networks slower, not faster (benchmarks/RESULTS.md)
BLOCK_CACHE_CAP = 2**20


def l2_cache_bytes() -> int:
    """This machine's level-2 cache per core, in bytes, or :data:`FALLBACK_L2`."""
    try:
        size = os.sysconf("SC_LEVEL2_CACHE_SIZE")
        if size > 0:
            return int(size)
    except (AttributeError, ValueError, OSError):
        pass
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() != "2":
                continue
            text = (index / "size").read_text().strip().upper()  # e.g. "2048K"
        except OSError:
            continue
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        number, unit = (text[:-1], units[text[-1]]) if text[-1] in units else (text, 1)
        if number.isdigit() and int(number) > 0:
            return int(number) * unit
    return FALLBACK_L2


# the names NumPy's wheels give OpenBLAS's thread functions (64-bit integer build first)
NAMES = [("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "")]


class Blas:
    """The thread count of the OpenBLAS that NumPy's wheels ship, read and set through ctypes.

    Where NumPy uses another BLAS, :attr:`found` is False, :meth:`threads` is 1 and
    :meth:`one_thread` changes nothing.
    """

    def __init__(self) -> None:
        self._set, self._get = None, None
        root = os.path.dirname(np.__file__)
        paths = glob.glob(os.path.join(root, "..", "numpy.libs", "*openblas*"))  # Linux
        paths += glob.glob(os.path.join(root, ".dylibs", "*openblas*"))  # macOS
        for path in paths:
            try:
                lib = ctypes.CDLL(path)  # NumPy has loaded it already: this only finds it
            except OSError:
                continue
            for prefix, suffix in NAMES:
                setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = (ctypes.c_int,), None
                    getter.argtypes, getter.restype = (), ctypes.c_int
                    self._set, self._get = setter, getter
                    return

    @property
    def found(self) -> bool:
        return self._get is not None

    def threads(self) -> int:
        """How many threads BLAS uses for a product now."""
        return int(self._get()) if self._get is not None else 1

    @contextmanager
    def one_thread(self) -> Iterator[None]:
        """BLAS on one thread meanwhile (each core runs its own part), then as before."""
        before = self.threads()
        if self._set is not None and before != 1:
            self._set(1)
        try:
            yield
        finally:
            if self._set is not None and before != 1:
                self._set(before)


@dataclass(frozen=True)
class Rules:
    """The thresholds the engine's algorithms and its use of the cores follow.

    Parameters
    ----------
    cores : int
        Cores to use side by side: parts of a batch, or halves of a layer. 1: none.
    l2_bytes : int
        Level-2 cache per core. The block sizes below derive from it.
    half_work : int
        With a layer in halves, the fewest multiply-adds (rows x C x F x kh x kw) worth
        the two halves' meeting (tens of microseconds): about a millisecond's work.
    halves_pixels : int
        A thin network's batch that is not split runs in halves from this many pixels
        (N x H x W) on; below, BLAS's own threads run its small layers faster.
    min_tiles : int
        With a layer in halves, the fewest Winograd tiles per block.
    chunk_work : int
        C x F x rows of one product of a thin layer's kernel gradient in chunks.
    split_filters : int
        The widest first level (filters) whose batches are split over the cores; a wider
        network runs each layer in halves.
    threads_tile_floats : int
        Winograd's transformed tiles made at once when BLAS runs on several threads.
    block_floats, block, thin_input_floats, tile_floats : int, optional
        The block sizes in values (``block``: in rows), derived from ``l2_bytes`` where not
        given; see :func:`numpy_unet.fast.conv.block_rows` and ``winograd.products``.
    """

    cores: int = 2
    l2_bytes: int = FALLBACK_L2
    half_work: int = 2**26
    halves_pixels: int = 256 * 256
    min_tiles: int = 128
    chunk_work: int = 2**19
    split_filters: int = 32
    threads_tile_floats: int = 2**21
    # derived from l2_bytes where None (the tests set small ones to reach every path)
    block_floats: int | None = None
    block: int | None = None
    thin_input_floats: int | None = None
    tile_floats: int | None = None

    def __post_init__(self) -> None:
        cache = min(self.l2_bytes, BLOCK_CACHE_CAP)
        block_floats = cache // 8  # half of it (2048 rows of 64 floats in 1 MB)
        derived = {
            # a block of rows of an input or output, in values
            "block_floats": block_floats,
            # the fewest rows of a block: those of 64 channels
            "block": (self.block_floats or block_floats) // 64,
            # on one core, a thin product's (B, K) input: 3/16 of L2 (OpenBLAS ran larger
            # ones a quarter slower)
            "thin_input_floats": 3 * cache // 64,
            # Winograd's transformed tiles made at once, BLAS on one thread: all of it
            "tile_floats": cache // 4,
        }
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, max(1, value))

    def one_core(self) -> Rules:
        """The same rules for a part that runs on one core (a worker's)."""
        return replace(self, cores=1)

    @classmethod
    def for_this_machine(cls, blas: Blas) -> Rules:
        """Cores from BLAS's thread count (at most 8), L2 from the machine."""
        return cls(cores=min(blas.threads(), 8), l2_bytes=l2_cache_bytes())
