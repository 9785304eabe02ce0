"""Data: generated membranes (the default), real EM images from folders, augmentation."""

from .augment import Augmenter, augment_batch
from .loading import load_folder, read_image
from .resize import resize
from .synthetic import synthetic_membranes
from .tiff import read_tiff_stack, write_tiff_stack

__all__ = [
    "Augmenter",
    "augment_batch",
    "load_folder",
    "read_image",
    "read_tiff_stack",
    "resize",
    "synthetic_membranes",
    "write_tiff_stack",
]
