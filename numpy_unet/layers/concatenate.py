"""Concatenate: join tensors along the channels; where a UNet's skip meets its decoder."""

from __future__ import annotations

import numpy as np

from .base import Layer


class Concatenate(Layer):
    """Join a list of tensors along ``axis``, as ``keras.layers.Concatenate(axis=-1)``.

    Shapes: ``[(N, H, W, C1), (N, H, W, C2), ...]`` -> (N, H, W, C1 + C2 + ...) for
    ``axis=-1``; all other axes must agree. ``forward`` takes a list, ``backward`` returns
    a list, one gradient per input, in the same order.

    Forward: ``y = [x1 | x2 | ...]`` along ``axis``.

    Backward: each input gets back its own slice of the gradient::

        dx1 = dy[..., :C1],  dx2 = dy[..., C1:C1+C2],  ...

    In a UNet, ``dx1`` is the skip's gradient: the encoder tensor also fed the pooling
    below, so the encoder adds this to the gradient arriving from that path.
    """

    def __init__(self, axis: int = -1, name: str | None = None, **options: bool) -> None:
        super().__init__(name, **options)  # retain_cache, check_finite: see Layer
        if axis not in (1, 2, 3, -1, -2, -3):
            raise ValueError(
                f"{self.describe()}: axis must be 1, 2 or 3 (or -3..-1) for (N, H, W, C) "
                f"inputs, got {axis!r}"
            )
        self.axis = axis % 4

    def build(self, input_shapes: list[tuple]) -> None:
        self.built = True  # nothing to create; input_shapes is a list, one per input

    def compute_output_shape(self, input_shapes: list[tuple]) -> tuple:
        """The joined shape; a ValueError if the shapes differ on another axis."""
        first = input_shapes[0]
        other = [d for d in range(4) if d != self.axis]
        for k, shape in enumerate(input_shapes[1:], start=1):
            if [shape[d] for d in other] != [first[d] for d in other]:
                hint = ""
                if self.axis == 3 and tuple(shape[1:3]) != tuple(first[1:3]):
                    hint = (
                        " In a UNet this means a pooling dropped a row or column: height "
                        "and width must be divisible by 2**depth (16 for four poolings)."
                    )
                raise ValueError(
                    f"{self.describe()}: inputs must agree on every axis but {self.axis}; "
                    f"input 0 has shape {tuple(first)}, input {k} has {tuple(shape)}.{hint}"
                )
        out = list(first)
        out[self.axis] = sum(s[self.axis] for s in input_shapes)
        return tuple(out)

    def forward(self, xs: list[np.ndarray], training: bool = False) -> np.ndarray:
        if isinstance(xs, np.ndarray) or len(xs) < 2:
            raise ValueError(f"{self.describe()}: forward() takes a list of at least two tensors")
        xs = [self._check_input(x) for x in xs]
        self.compute_output_shape([x.shape for x in xs])  # the shapes must fit together
        for k, x in enumerate(xs[1:], start=1):
            if x.dtype != xs[0].dtype:
                raise ValueError(
                    f"{self.describe()}: inputs must share a dtype; input 0 is {xs[0].dtype}, "
                    f"input {k} is {x.dtype}"
                )
        # >>> exercise concatenate_forward: cut by `exercises --level forward`
        y = np.concatenate(xs, axis=self.axis)
        # <<< exercise concatenate_forward
        sizes = [x.shape[self.axis] for x in xs]
        return self._remember(y, sizes)

    def backward(self, dy: np.ndarray) -> list[np.ndarray]:
        dy = self._check_backward(dy)
        (sizes,) = self._take_cache()
        # >>> exercise concatenate_backward: `numpy-unet exercises` cuts out this block
        bounds = np.cumsum(sizes)[:-1]  # where one input's channels end and the next begin
        return np.split(dy, bounds, axis=self.axis)
        # <<< exercise concatenate_backward
