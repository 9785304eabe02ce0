"""The speed engine's up-convolution: the seed's ``UpSampling2D(2)`` and ``Conv2D(f, 2,
padding='same')`` in one, computed on the small map, without the up-sampled one.

The seed's UNet up-samples x (N, h, w, C) to u (N, 2h, 2w, C), ``u[a, b] = x[a//2, b//2]``,
then convolves u with a 2x2 kernel K, padding one zero row and column after ('same')::

    z[a, b] = bias + sum_{i,j in {0,1}} u[a+i, b+j] @ K[i, j]

Write a = 2p + r and b = 2q + s. For r = 0 both kernel rows read the same row of x
(u[2p] and u[2p+1] are copies of x[p]); for r = 1 they read x[p] and x[p+1]. Columns
alike. So each of the four output phases (r, s) is a small convolution of x itself,
padded with one zero row and column after, whose kernel adds up K's taps that read the
same pixel::

    (r, s) = (0, 0):  1x1 kernel  K[0,0] + K[0,1] + K[1,0] + K[1,1]
    (r, s) = (0, 1):  1x2 kernel  [K[0,0] + K[1,0],  K[0,1] + K[1,1]]
    (r, s) = (1, 0):  2x1 kernel  [K[0,0] + K[0,1],  K[1,0] + K[1,1]]
    (r, s) = (1, 1):  2x2 kernel  K

1 + 2 + 2 + 4 = 9 products of (C, F) per pixel of x, where the up-sampled map needs
4 x 4 = 16, and no (N, 2h, 2w, C) map is made. Backward runs each phase's convolution
backward (``conv.backward``) and adds the kernels' gradients back onto the taps they
summed. ``UNet.forward`` takes this path when the up-conv's ``fast`` switch is on (the
default); the tests check it against the two layers and gradient-check it.
"""

from __future__ import annotations

import numpy as np

from . import conv as fast_conv

FUSED = object()  # marks an up-conv's cache as this module's


def applies(upsample: object, upconv: object) -> bool:
    """Is this (UpSampling2D, Conv2D) pair the seed's: size 2, 2x2 'same', ``fast`` on?"""
    return (
        upsample is not None
        and getattr(upsample, "size", None) == (2, 2)
        and getattr(upconv, "fast", False)
        and getattr(upconv, "kernel_size", None) == (2, 2)
        and getattr(upconv, "padding", None) == "same"
    )


def phase_kernels(kernel: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """The kernel of each output phase (r, s), from K (2, 2, C, F): see the module."""
    return {
        (0, 0): kernel.sum(axis=(0, 1))[None, None],  # (1, 1, C, F)
        (0, 1): kernel.sum(axis=0)[None],  # (1, 2, C, F)
        (1, 0): kernel.sum(axis=1)[:, None],  # (2, 1, C, F)
        (1, 1): kernel,  # (2, 2, C, F)
    }


def forward(upsample, upconv, x: np.ndarray) -> np.ndarray:
    """``upconv.forward(upsample.forward(x))``: (N, h, w, C) -> (N, 2h, 2w, F)."""
    x = upsample._check_input(x)
    n, h, w, c = x.shape
    if not upconv.built:
        upconv.build(upsample.compute_output_shape(x.shape))
    upconv._check_channels(x)
    x = x.astype(upconv.dtype, copy=False)
    f = upconv.filters
    xp = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))  # (N, h+1, w+1, C): zeros after
    bias = upconv.params.get("bias")
    z = np.empty((n, h, 2, w, 2, f), upconv.dtype)  # z[:, p, r, q, s] is z[2p+r, 2q+s]
    for (r, s), k in phase_kernels(upconv.params["kernel"]).items():
        z[:, :, r, :, s] = fast_conv.forward(xp, k, h, w, bias)  # (N, h, w, F)
    z = z.reshape(n, 2 * h, 2 * w, f)  # (N, 2h, 2w, F), a view
    y = z if upconv.activation is None else upconv.activation.forward(z)
    return upconv._remember(y, FUSED, x)


def fused(upconv) -> bool:
    """Did the up-conv's last forward take this module's path?"""
    cache = upconv._cache
    return cache is not None and cache[0] is FUSED


def backward(upconv, dy: np.ndarray) -> np.ndarray:
    """dL/dx (N, h, w, C) of :func:`forward`; sets ``upconv.grads``."""
    dy = upconv._check_backward(dy)
    _, x = upconv._take_cache()
    n, h, w, c = x.shape
    dz = dy if upconv.activation is None else upconv.activation.backward(dy)
    dz = dz.astype(upconv.dtype, copy=False).reshape(n, h, 2, w, 2, -1)
    xp = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))  # (N, h+1, w+1, C)
    dxp = np.zeros(xp.shape, upconv.dtype)
    dkernel = np.zeros_like(upconv.params["kernel"])  # (2, 2, C, F)
    for (r, s), k in phase_kernels(upconv.params["kernel"]).items():
        dxp_rs, dk = fast_conv.backward(xp, k, dz[:, :, r, :, s])
        dxp += dxp_rs
        dkernel += dk  # broadcast: each summed tap gets its phase kernel's gradient
    upconv.grads = {"kernel": dkernel}
    if upconv.use_bias:
        upconv.grads["bias"] = fast_conv.bias_grad(dz)  # (F,): dz summed over all else
    return dxp[:, :h, :w, :]  # (N, h, w, C)
