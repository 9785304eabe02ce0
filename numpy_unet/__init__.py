"""numpy-unet: the UNet of the Keras seed, written out layer by layer in NumPy."""

from . import layers, losses
from .gradcheck import GradcheckError, gradcheck, gradcheck_loss
from .unet import UNet

__version__ = "0.1.0"

__all__ = [
    "GradcheckError",
    "UNet",
    "gradcheck",
    "gradcheck_loss",
    "layers",
    "losses",
    "__version__",
]
