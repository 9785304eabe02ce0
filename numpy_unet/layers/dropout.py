"""Dropout: zero a random fraction of the activations while training (inverted dropout)."""

from __future__ import annotations

import numpy as np

from .base import Layer


class Dropout(Layer):
    """Inverted dropout, as ``keras.layers.Dropout(rate, seed=...)``.

    Shapes: any ``(...)`` in, the same shape out.

    Forward, training: each element is kept with probability ``1 - rate`` and scaled by
    ``1 / (1 - rate)``, so the expected output equals the input and inference needs no
    rescaling::

        m = [u >= rate] / (1 - rate),  u ~ Uniform[0, 1);   y = x * m

    Forward, not training: ``y = x`` (identity).

    Backward: ``dx = dy * m`` with the mask of the last forward (``dx = dy`` at inference).

    The masks come from ``self.rng = np.random.default_rng(seed)``: two layers with the same
    seed draw the same sequence of masks, whatever their dtype (the uniforms are drawn in
    float64). The gradient checker finds ``rng`` and replays the same mask on every call.
    """

    def __init__(
        self, rate: float, seed: int | None = None, name: str | None = None, **options: bool
    ) -> None:
        super().__init__(name, **options)  # retain_cache, check_finite: see Layer
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"{self.describe()}: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._check_input(x, ndim=None)
        if not training or self.rate == 0.0:
            return self._remember(x, None)
        # >>> exercise dropout_forward: cut by `exercises --level forward`
        keep = self.rng.random(x.shape) >= self.rate  # bool, True with probability 1-rate
        mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.rate)
        # <<< exercise dropout_forward
        return self._remember(x * mask, mask)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = self._check_backward(dy)
        (mask,) = self._take_cache()
        # >>> exercise dropout_backward: `numpy-unet exercises` cuts out this block
        return dy if mask is None else dy * mask
        # <<< exercise dropout_backward
