"""The hand-written layers, channels-last (N, H, W, C), named as in Keras."""

from .activations import ReLU, Sigmoid, Softmax
from .base import Layer
from .concatenate import Concatenate
from .conv2d import Conv2D
from .conv2d_transpose import Conv2DTranspose
from .cropping import Cropping2D
from .dropout import Dropout
from .pooling import MaxPooling2D
from .upsampling import UpSampling2D

__all__ = [
    "Concatenate",
    "Conv2D",
    "Conv2DTranspose",
    "Cropping2D",
    "Dropout",
    "Layer",
    "MaxPooling2D",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "UpSampling2D",
]
