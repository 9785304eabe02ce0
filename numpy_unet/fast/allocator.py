"""Ask the C library's allocator to keep freed memory for reuse (Linux with glibc only).

Why a NumPy UNet cares: a training step allocates and frees hundreds of MB of activations
and scratch arrays. By default glibc hands large freed blocks back to the kernel at once
(``munmap``, or trimming the heap), so the next step gets fresh pages from the kernel,
and the first write to each 4 KB page is a page fault: the kernel stops the program,
finds a page and zeroes it. The seed's UNet at 256x256 takes thousands of such faults per
training step, a sizeable part of its time (``benchmarks/RESULTS.md``).

:func:`keep_freed_memory` sets two of glibc's ``mallopt`` knobs, the same ones the
environment variables ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set:

- ``M_MMAP_THRESHOLD`` = 32 MB (glibc's largest): blocks below it come from the heap,
  which is reused, rather than from a private ``mmap`` that dies when freed;
- ``M_TRIM_THRESHOLD`` = 2 GB: the heap is not shrunk until that much of it is free.

The price: after a step, the process keeps (but reuses) the memory its largest step
needed, as PyTorch's own caching allocators do. The peak is not higher: the heap only
grows when no freed block fits. It changes the whole process, so nothing calls it behind
your back: the ``numpy-unet`` command (train, predict, demo) and the benchmarks call it;
in your own script, call it once before training. ``keep_freed_memory(False)`` puts glibc's
starting values back. Elsewhere (macOS, Windows, musl) it does nothing and returns False.

    from numpy_unet.fast import keep_freed_memory
    keep_freed_memory()  # before model.fit(...)
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
M_MMAP_THRESHOLD = -3

KEEP = {M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 2**31 - 1}  # mallopt takes an int
GLIBC_DEFAULTS = {M_MMAP_THRESHOLD: 128 * 2**10, M_TRIM_THRESHOLD: 128 * 2**10}

applied: bool | None = None  # what the last call did; None: never called


def keep_freed_memory(keep: bool = True) -> bool:
    """Let glibc keep freed memory for the next allocation (True) or not (False).

    Parameters
    ----------
    keep : bool
        True: the settings above. False: glibc's documented starting values (128 KB each;
        glibc's own adaptive threshold stays off once a value has been set).

    Returns
    -------
    bool
        True if glibc accepted the settings, False where there is no glibc.
    """
    global applied
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = KEEP if keep else GLIBC_DEFAULTS
    ok = all(mallopt(param, value) == 1 for param, value in settings.items())
    applied = keep if ok else None
    return ok
