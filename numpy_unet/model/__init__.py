"""The UNet, built from the layers: its topology, its sizes, its summary and weight files.

``unet.py`` is the U itself (forward and backward read like the diagram, and one walk of
the U with shapes only gives its sizes and its summary); ``summary.py`` prints Keras's
table; ``weights.py`` reads and writes the weights in Keras's order, and ``keras_files.py``
Keras's own weight files (``.h5``, ``.weights.h5``, ``.keras``; with h5py).
"""

from .unet import UNet, load_model

__all__ = ["UNet", "load_model"]
