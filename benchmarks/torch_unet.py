"""The same UNet in PyTorch, built from a numpy-unet model's configuration and weights.

Used by ``bench_unet.py`` (speed side by side) and by an optional test (same numbers out
for the same weights). PyTorch is never a dependency of numpy-unet: install it with
``pip install torch==2.13.0`` to use this file.

Layout: PyTorch is channels-first, so inputs go (N, H, W, C) -> (N, C, H, W) and kernels
(kh, kw, Cin, Cout) -> (Cout, Cin, kh, kw); a Conv2DTranspose kernel (kh, kw, Cout, Cin)
-> (Cin, Cout, kh, kw). Keras's 'same' padding of a 2x2 kernel (0 before, 1 after) is an
explicit ``F.pad(x, (0, 1, 0, 1))``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from numpy_unet import UNet
from numpy_unet.layers import Conv2D, Conv2DTranspose
from numpy_unet.layers.padding import same_padding


class TorchUNet:
    """Functional PyTorch twin of a :class:`numpy_unet.UNet` (same layers, same weights)."""

    def __init__(self, model: UNet, dtype: torch.dtype = torch.float32) -> None:
        self.model = model
        self.weights: dict[str, dict[str, torch.Tensor]] = {}
        for layer in model.layers:
            if isinstance(layer, Conv2D):
                k = layer.params["kernel"].transpose(3, 2, 0, 1)  # (Cout, Cin, kh, kw)
            elif isinstance(layer, Conv2DTranspose):
                k = layer.params["kernel"].transpose(3, 2, 0, 1)  # (Cin, Cout, kh, kw)
            else:
                continue
            self.weights[layer.name] = {
                "kernel": torch.tensor(np.ascontiguousarray(k), dtype=dtype, requires_grad=True),
                "bias": torch.tensor(layer.params["bias"], dtype=dtype, requires_grad=True),
            }

    def parameters(self) -> list[torch.Tensor]:
        return [t for w in self.weights.values() for t in w.values()]

    def _conv(self, layer: Conv2D, x: torch.Tensor) -> torch.Tensor:
        w = self.weights[layer.name]
        if layer.padding == "same":
            (kh, kw), h, wd = layer.kernel_size, x.shape[2], x.shape[3]
            (top, bottom), (left, right) = same_padding(h, kh), same_padding(wd, kw)
            x = F.pad(x, (left, right, top, bottom))
        z = F.conv2d(x, w["kernel"], w["bias"])
        return _activate(z, layer.activation_name)

    def _upconv(self, layer, x: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, Conv2D):
            return self._conv(layer, x)
        w = self.weights[layer.name]
        return F.conv_transpose2d(x, w["kernel"], w["bias"], stride=layer.strides)

    def forward(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        m, skips = self.model, []
        for level in m.down:
            x = self._conv(level.conv2, self._conv(level.conv1, x))
            if level.drop is not None:
                x = F.dropout(x, level.drop.rate, training)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self._conv(m.bottom.conv2, self._conv(m.bottom.conv1, x))
        if m.bottom.drop is not None:
            x = F.dropout(x, m.bottom.drop.rate, training)
        for level in m.up:
            skip = skips.pop()
            if level.upsample is not None:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self._upconv(level.upconv, x)
            dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
            skip = skip[:, :, dh // 2 : dh // 2 + x.shape[2], dw // 2 : dw // 2 + x.shape[3]]
            x = torch.cat([skip, x], dim=1)
            x = self._conv(level.conv2, self._conv(level.conv1, x))
        for layer in m.head:
            x = self._conv(layer, x)
        return x


def _activate(z: torch.Tensor, name: str | None) -> torch.Tensor:
    if name == "relu":
        return torch.relu(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "softmax":
        return torch.softmax(z, dim=1)
    return z


def to_torch(x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, H, W, C) NumPy -> (N, C, H, W) torch."""
    return torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), dtype=dtype)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) torch -> (N, H, W, C) NumPy."""
    return t.detach().numpy().transpose(0, 2, 3, 1)
