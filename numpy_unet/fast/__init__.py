"""The speed engine, kept apart from the readable layers.

A UNet owns one :class:`Engine` while its switch is on (``UNet(fast=True)``, the default);
``model.fast = False`` or ``with model.readable():`` runs every layer's own forward and
backward instead. The same numbers either way, which the tests check.

- ``engine.py``: the :class:`Engine`, the one object a model talks to, and what it holds;
- ``conv.py``: convolution as a sum of shifted matrix products, no im2col matrix;
- ``pairs.py``: thin convolutions read two pixels at a time, for wider products;
- ``winograd.py``: wide 3x3 convolutions by Winograd's F(2x2, 3x3);
- ``upconv.py``: the seed's ``UpSampling2D(2)`` and 2x2 conv in one, on the small map;
- ``cores.py``: each layer's work in two halves, one per core;
- ``split.py`` and ``workers.py``: a thin network's batch in parts side by side, the parts
  after the first in worker processes;
- ``rules.py``: the size rules, read from this machine (cache, cores), and BLAS's threads;
- ``allocator.py``: :func:`keep_freed_memory`, an explicit call that lets glibc reuse freed
  memory. Building a model does not make it; the ``numpy-unet`` command, the demo and the
  benchmarks do.

Importing this package starts nothing and looks for no library; an engine does both at its
first pass. Nothing in ``layers/`` needs this package to be correct.
"""

from .allocator import keep_freed_memory
from .engine import Engine
from .rules import Rules

__all__ = ["Engine", "Rules", "keep_freed_memory"]
