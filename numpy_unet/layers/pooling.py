"""MaxPooling2D: the largest value of each window, and the gradient routed back to it."""

from __future__ import annotations

import numpy as np

from .base import Layer
from .padding import check_padding, conv_output_length, pair, same_padding


class MaxPooling2D(Layer):
    """Max pooling over height and width, as ``keras.layers.MaxPooling2D``.

    Shapes
    ------
    x : (N, H, W, C)  ->  y : (N, Ho, Wo, C), per axis with pool p and stride s:
    'valid': Ho = (H - p) // s + 1 (a last row that does not fill a window is dropped);
    'same':  Ho = ceil(H / s), padding with -inf so that padding is never the maximum.
    The UNet's pooling is p = s = 2, 'valid': Ho = H // 2.

    Forward: ``y[n,h,w,c] = max_{i,j} xp[n, s*h+i, s*w+j, c]``.

    Backward: each window's gradient goes to exactly one element, its maximum::

        dxp[n, s*h+i*, s*w+j*, c] += dy[n,h,w,c],   (i*, j*) = argmax of the window

    Tie rule: when several elements of a window share the maximum, the first one in
    row-major order within the window (smallest i, then smallest j) gets all of dy, as
    ``np.argmax`` picks it; the others get 0. With overlapping windows (s < p) an element
    that is the maximum of several windows receives the sum of their gradients.

    Parameters
    ----------
    pool_size : int or (int, int)
    strides : int or (int, int), optional
        Defaults to ``pool_size``, as in Keras.
    padding : {'valid', 'same'}
    """

    def __init__(
        self,
        pool_size: int | tuple[int, int] = 2,
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        name: str | None = None,
        **options: bool,
    ) -> None:
        super().__init__(name, **options)  # retain_cache, check_finite: see Layer
        where = self.describe()
        self.pool_size = pair(pool_size, "pool_size", where)
        self.strides = self.pool_size if strides is None else pair(strides, "strides", where)
        self.padding = check_padding(padding, where)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        n, h, w, c = input_shape
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        return (
            n,
            conv_output_length(h, ph, self.padding, sh),
            conv_output_length(w, pw, self.padding, sw),
            c,
        )

    def _pads(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        if self.padding == "valid":
            return (0, 0), (0, 0)
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        return same_padding(h, ph, sh), same_padding(w, pw, sw)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._check_input(x)
        n, h, w, c = x.shape
        _, ho, wo, _ = self.compute_output_shape(x.shape)
        ph, pw = self.pool_size
        if ho < 1 or wo < 1:
            raise ValueError(f"{self.describe()}: input {h}x{w} is smaller than the {ph}x{pw} pool")
        pad_h, pad_w = self._pads(h, w)
        xp = x
        if self.padding == "same":
            xp = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=-np.inf)
        # >>> exercise maxpool_forward: cut by `exercises --level forward`
        # One pass per position (i, j) inside the window, never per pixel: offset (i, j) of
        # every window is the strided view xp[:, i::sh, j::sw] (no copy).
        y = self._window_offset(xp, 0, 0, ho, wo).copy()  # (N, Ho, Wo, C)
        for i, j in list(np.ndindex(ph, pw))[1:]:
            np.maximum(y, self._window_offset(xp, i, j, ho, wo), out=y)
        # <<< exercise maxpool_forward
        # backward finds the winners again from xp and y: forward (and so predict) needs
        # no argmax, and xp is the previous layer's output, kept anyway ('valid': no copy)
        return self._remember(y, xp, y, (pad_h[0], pad_w[0]), x.shape)

    def _window_offset(self, xp: np.ndarray, i: int, j: int, ho: int, wo: int) -> np.ndarray:
        """Element (i, j) of every window: a strided view of shape (N, Ho, Wo, C)."""
        sh, sw = self.strides
        return xp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = self._check_backward(dy)
        xp, y, (top, left), (_, h, w, _) = self._take_cache()
        # >>> exercise maxpool_backward: `numpy-unet exercises` cuts out this block
        _, ho, wo, _ = dy.shape
        ph, pw = self.pool_size
        dxp = np.zeros(xp.shape, dy.dtype)
        routed = np.zeros(y.shape, bool)  # windows whose gradient has found its element
        for i, j in np.ndindex(ph, pw):  # row-major: the first maximum of a window wins
            hit = self._window_offset(xp, i, j, ho, wo) == y
            hit &= ~routed
            routed |= hit
            self._window_offset(dxp, i, j, ho, wo)[...] += dy * hit
        return dxp[:, top : top + h, left : left + w, :]
        # <<< exercise maxpool_backward
