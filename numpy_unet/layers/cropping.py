"""Cropping2D: cut rows and columns off the borders (the paper crops its skips)."""

from __future__ import annotations

import numpy as np

from .base import Layer


def _cropping(value: object, where: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Keras's three spellings: ``c``, ``(ch, cw)`` or ``((top, bottom), (left, right))``."""
    try:
        if isinstance(value, int):
            crop = ((value, value), (value, value))
        elif all(isinstance(v, int) for v in value):
            ch, cw = value
            crop = ((ch, ch), (cw, cw))
        else:
            (t, b), (lft, r) = value
            crop = ((int(t), int(b)), (int(lft), int(r)))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{where}: cropping must be an int, (height, width) or "
            f"((top, bottom), (left, right)), got {value!r}"
        ) from err
    if min(crop[0] + crop[1]) < 0:
        raise ValueError(f"{where}: cropping must not be negative, got {value!r}")
    return crop


class Cropping2D(Layer):
    """Remove ``((top, bottom), (left, right))`` pixels, as ``keras.layers.Cropping2D``.

    Shapes: x (N, H, W, C) -> y (N, H - top - bottom, W - left - right, C).

    Forward: ``y = x[:, top : H - bottom, left : W - right, :]``.

    Backward: the cropped pixels did not reach the output, so their gradient is 0::

        dx = zeros(N, H, W, C);  dx[:, top : H - bottom, left : W - right, :] = dy
    """

    def __init__(
        self,
        cropping: int | tuple = ((0, 0), (0, 0)),
        name: str | None = None,
        **options: bool,
    ) -> None:
        super().__init__(name, **options)  # retain_cache, check_finite: see Layer
        self.cropping = _cropping(cropping, self.describe())

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        n, h, w, c = input_shape
        (t, b), (lft, r) = self.cropping
        return (n, h - t - b, w - lft - r, c)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._check_input(x)
        _, h, w, _ = x.shape
        (t, b), (lft, r) = self.cropping
        if t + b >= h or lft + r >= w:
            raise ValueError(
                f"{self.describe()}: cropping {self.cropping} leaves nothing of a {h}x{w} input"
            )
        # >>> exercise cropping_forward: cut by `exercises --level forward`
        y = x[:, t : h - b, lft : w - r, :]  # (N, H-t-b, W-l-r, C), a view
        # <<< exercise cropping_forward
        return self._remember(y, x.shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = self._check_backward(dy)
        (x_shape,) = self._take_cache()
        # >>> exercise cropping_backward: `numpy-unet exercises` cuts out this block
        (t, _), (lft, _) = self.cropping
        dx = np.zeros(x_shape, dy.dtype)
        dx[:, t : t + dy.shape[1], lft : lft + dy.shape[2], :] = dy
        return dx
        # <<< exercise cropping_backward
