"""The speed engine, kept apart from the readable layers.

- ``conv.py``: convolution as a sum of shifted matrix products. ``Conv2D(fast=True)`` (the
  default) uses it where :func:`numpy_unet.fast.conv.pays_off` says it is faster than the
  im2col math in ``layers/conv2d.py``; ``Conv2D(fast=False)`` never does. Both give the same
  numbers, which the tests check.
- ``pairs.py``: for thin convolutions (at most 32 channels, 8 or fewer on one side), the
  same sum read two pixels at a time, as a convolution with twice the channels: wider
  products. Both apply a conv's bias and ReLU inside their blocks of rows.
- ``winograd.py``: for 3x3 convolutions of at least 32 channels in and out, Winograd's
  F(2x2, 3x3): 16 products for every 2x2 outputs instead of 36, the input transformed by
  additions, the output and the kernel by one small product each. :func:`conv_engine`
  picks the module for a shape.
- ``upconv.py``: the seed's ``UpSampling2D(2)`` and 2x2 ``Conv2D`` in one, on the small
  map; ``UNet.forward`` takes it where the up-conv's ``fast`` switch is on.
- ``parallel.py``: ``fit`` and ``predict`` split a batch of a thin UNet (at most 32
  filters) over the cores, on copies of the model with its weights; a wider UNet's batch
  (or a thin one's single large image) runs each layer in two halves, one per core, which
  ``conv.py`` and ``winograd.py`` cut where ``parallel.halving()`` says so. The same
  numbers either way; ``parallel.WORKERS = 1`` switches both off.
- ``workers.py``: the worker processes that run the parts of a split batch after the
  first, so that the parts never wait on each other for Python's lock;
  ``parallel.PROCESSES = False`` runs them in threads instead.
- ``allocator.py``: :func:`keep_freed_memory`, an explicit call that lets glibc reuse freed
  memory (10-25% off a training step here). Building a model does not make it; the
  ``numpy-unet`` command, the demo and the benchmarks do.

Nothing in ``layers/`` needs this package to be correct.
"""

from types import ModuleType

from . import conv, pairs, winograd
from .allocator import keep_freed_memory

__all__ = ["conv_engine", "keep_freed_memory"]


def conv_engine(
    c: int, f: int, kernel_size: tuple[int, int], ho: int, wo: int, n: int = 1
) -> ModuleType | None:
    """The speed engine's module for a convolution of C -> F channels and an output of n
    images of Ho x Wo (``winograd``, ``pairs`` or ``conv``: each has ``forward`` and
    ``backward``), or None where the im2col of ``layers/conv2d.py`` is as fast."""
    if winograd.pays_off(c, f, kernel_size, n * ho * wo):
        return winograd
    if not conv.pays_off(c, f, ho, wo, kernel_size):
        return None
    return pairs if pairs.pays_off(c, f, kernel_size[1]) else conv
