"""numpy-unet: the UNet of the Keras seed, written out layer by layer in NumPy."""

from . import layers, losses, metrics, optimizers
from .gradcheck import GradcheckError, gradcheck, gradcheck_loss
from .unet import UNet
from .weights import load_model

__version__ = "0.1.0"

__all__ = [
    "GradcheckError",
    "UNet",
    "gradcheck",
    "gradcheck_loss",
    "layers",
    "load_model",
    "metrics",
    "optimizers",
    "losses",
    "__version__",
]
