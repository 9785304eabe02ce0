"""Data: generated membranes (the default), real EM images from folders, augmentation."""

from .augment import Augmenter, augment_batch
from .elastic import Compose, ElasticDeformation, elastic_deform
from .image_data_generator import ImageDataGenerator
from .loading import image_files, load_folder, read_image
from .resize import resize, resize_like_pil_nearest, resize_like_skimage
from .saving import save_result
from .synthetic import synthetic_membranes
from .tiff import read_tiff_stack, write_tiff_stack
from .weight_map import weight_map, weight_map_bruteforce

__all__ = [
    "Augmenter",
    "Compose",
    "ElasticDeformation",
    "ImageDataGenerator",
    "augment_batch",
    "elastic_deform",
    "image_files",
    "load_folder",
    "read_image",
    "read_tiff_stack",
    "resize",
    "resize_like_pil_nearest",
    "resize_like_skimage",
    "save_result",
    "synthetic_membranes",
    "weight_map",
    "weight_map_bruteforce",
    "write_tiff_stack",
]
