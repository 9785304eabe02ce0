"""The speed engine, kept apart from the readable layers.

- ``conv.py``: convolution as a sum of shifted matrix products. ``Conv2D(fast=True)`` (the
  default) uses it where :func:`numpy_unet.fast.conv.pays_off` says it is faster than the
  im2col math in ``layers/conv2d.py``; ``Conv2D(fast=False)`` never does. Both give the same
  numbers, which the tests check.
- ``allocator.py``: :func:`keep_freed_memory`, an explicit call that lets glibc reuse freed
  memory (10-25% off a training step here). Building a model does not make it; the
  ``numpy-unet`` command, the demo and the benchmarks do.

Nothing in ``layers/`` needs this package to be correct.
"""

from .allocator import keep_freed_memory

__all__ = ["keep_freed_memory"]
