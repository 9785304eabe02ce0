"""UpSampling2D: nearest-neighbour enlargement, each pixel copied into a block."""

from __future__ import annotations

import numpy as np

from .base import Layer
from .padding import pair


class UpSampling2D(Layer):
    """Repeat rows and columns, as ``keras.layers.UpSampling2D(size, interpolation='nearest')``.

    Shapes: x (N, H, W, C) -> y (N, H*sh, W*sw, C) for ``size=(sh, sw)``.

    Forward: ``y[n, h, w, c] = x[n, h // sh, w // sw, c]``.

    Backward: every input pixel was copied to an sh x sw block, so its gradient is the *sum*
    of the block (not one element of it)::

        dx[n, h, w, c] = sum_{a<sh, b<sw} dy[n, sh*h + a, sw*w + b, c]
    """

    def __init__(
        self,
        size: int | tuple[int, int] = 2,
        interpolation: str = "nearest",
        name: str | None = None,
        **options: bool,
    ) -> None:
        super().__init__(name, **options)  # retain_cache, check_finite: see Layer
        self.size = pair(size, "size", self.describe())
        if interpolation != "nearest":
            raise ValueError(
                f"{self.describe()}: only interpolation='nearest' is implemented (the seed's "
                f"UNet uses it), got {interpolation!r}"
            )
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        n, h, w, c = input_shape
        return (n, h * self.size[0], w * self.size[1], c)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._check_input(x)
        sh, sw = self.size
        n, h, w, c = x.shape
        # >>> exercise upsampling_forward: cut by `exercises --level forward`
        # write each pixel into its sh x sw block in one broadcast assignment: a single
        # pass over the output (two np.repeat calls make two copies, ~3x slower here)
        blocks = np.empty((n, h, sh, w, sw, c), x.dtype)
        blocks[...] = x[:, :, None, :, None, :]
        y = blocks.reshape(n, h * sh, w * sw, c)  # (N, H*sh, W*sw, C), a view
        # <<< exercise upsampling_forward
        return self._remember(y, x.shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = self._check_backward(dy)
        (n, h, w, c), (sh, sw) = self._take_cache()[0], self.size
        # >>> exercise upsampling_backward: `numpy-unet exercises` cuts out this block
        blocks = dy.reshape(n, h, sh, w, sw, c)  # a view: block (h, w) is [:, h, :, w, :, :]
        return blocks.sum(axis=(2, 4))  # (N, H, W, C)
        # <<< exercise upsampling_backward
