"""The speed engine, kept apart from the readable layers.

- ``conv.py``: convolution as a sum of shifted matrix products. ``Conv2D(fast=True)`` (the
  default) uses it where :func:`numpy_unet.fast.conv.pays_off` says it is faster than the
  im2col math in ``layers/conv2d.py``; ``Conv2D(fast=False)`` never does. Both give the same
  numbers, which the tests check.
- ``pairs.py``: for thin convolutions (at most 32 channels, 8 or fewer on one side), the
  same sum read two pixels at a time, as a convolution with twice the channels: wider
  products. :func:`conv_engine` picks the module for a shape. Both apply a conv's bias and
  ReLU inside their blocks of rows.
- ``upconv.py``: the seed's ``UpSampling2D(2)`` and 2x2 ``Conv2D`` in one, on the small
  map; ``UNet.forward`` takes it where the up-conv's ``fast`` switch is on.
- ``parallel.py``: ``fit`` and ``predict`` split a batch of a thin UNet (at most 32
  filters) over the cores, on copies of the model that share its weights; the same numbers.
  ``parallel.WORKERS = 1`` switches it off.
- ``allocator.py``: :func:`keep_freed_memory`, an explicit call that lets glibc reuse freed
  memory (10-25% off a training step here). Building a model does not make it; the
  ``numpy-unet`` command, the demo and the benchmarks do.

Nothing in ``layers/`` needs this package to be correct.
"""

from types import ModuleType

from . import conv, pairs
from .allocator import keep_freed_memory

__all__ = ["conv_engine", "keep_freed_memory"]


def conv_engine(
    c: int, f: int, kernel_size: tuple[int, int], ho: int, wo: int
) -> ModuleType | None:
    """The speed engine's module for a convolution of C -> F channels and an Ho x Wo output
    (``pairs`` or ``conv``: both have ``forward`` and ``backward``), or None where the
    im2col of ``layers/conv2d.py`` is as fast."""
    if not conv.pays_off(c, f, ho, wo, kernel_size):
        return None
    return pairs if pairs.pays_off(c, f, kernel_size[1]) else conv
