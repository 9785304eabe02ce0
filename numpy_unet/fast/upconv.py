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
summed. For the thinnest up-convs the four phase kernels sit side by side in one
(2, 2, C, 4F) kernel, zeros on the taps a phase lacks: one wider product instead of four
(:func:`in_one_product`). A UNet whose speed switch is on takes this path (through
``Engine.upsample_conv``); the tests check it against the two layers and gradient-check it.
"""

from __future__ import annotations

import numpy as np

from . import conv as fast_conv
from .cores import Cores


def phase_kernels(kernel: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """The kernel of each output phase (r, s), from K (2, 2, C, F): see the module."""
    return {
        (0, 0): kernel.sum(axis=(0, 1))[None, None],  # (1, 1, C, F)
        (0, 1): kernel.sum(axis=0)[None],  # (1, 2, C, F)
        (1, 0): kernel.sum(axis=1)[:, None],  # (2, 1, C, F)
        (1, 1): kernel,  # (2, 2, C, F)
    }


def all_phases_kernel(kernel: np.ndarray) -> np.ndarray:
    """The four phase kernels side by side: (2, 2, C, 4F), phase (r, s) in columns
    ``(2r + s) * F`` on, zero on the taps its kernel does not have."""
    _, _, c, f = kernel.shape
    together = np.zeros((2, 2, c, 2, 2, f), kernel.dtype)
    for (r, s), k in phase_kernels(kernel).items():
        together[: 1 + r, : 1 + s, :, r, s] = k
    return together.reshape(2, 2, c, 4 * f)


def in_one_product(c: int, f: int) -> bool:
    """Run the four phases as one convolution with 4F outputs (:func:`all_phases_kernel`)?
    For the thinnest up-convs (at most 8 filters): there one product four times as wide
    beats four narrow ones, although 7 of its 16 blocks are zeros. From 16 filters on the
    four phases are as fast or faster."""
    return f <= 8


def forward(
    x: np.ndarray,
    kernel: np.ndarray,
    cores: Cores,
    bias: np.ndarray | None = None,
    relu: bool = False,
) -> np.ndarray:
    """z (N, 2h, 2w, F), the 2x2 'same' convolution (plus ``bias``, then ``max(z, 0)`` if
    ``relu``) of x (N, h, w, C) up-sampled by 2, computed on x itself."""
    n, h, w, c = x.shape
    f = kernel.shape[-1]
    xp = fast_conv.zeros_after(x, 1, 1)  # (N, h+1, w+1, C): zeros after
    z = np.empty((n, h, 2, w, 2, f), x.dtype)  # z[:, p, r, q, s] is z[2p+r, 2q+s]
    if in_one_product(c, f):  # z[:, p, q, (r, s, f)] from one convolution, then interleaved
        bias4 = None if bias is None else np.concatenate((bias,) * 4)  # (4F,)
        z4 = fast_conv.forward(xp, all_phases_kernel(kernel), h, w, cores, bias4, relu)
        z[...] = z4.reshape(n, h, w, 2, 2, f).transpose(0, 1, 3, 2, 4, 5)
    else:
        for (r, s), k in phase_kernels(kernel).items():
            z[:, :, r, :, s] = fast_conv.forward(xp, k, h, w, cores, bias, relu)  # (N, h, w, F)
    return z.reshape(n, 2 * h, 2 * w, f)  # (N, 2h, 2w, F), a view


def backward(
    x: np.ndarray, kernel: np.ndarray, dz: np.ndarray, cores: Cores
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx (N, h, w, C), dkernel (2, 2, C, F), dbias (F,)) for dz (N, 2h, 2w, F), the
    gradient of :func:`forward`'s z."""
    n, h, w, c = x.shape
    dz = dz.reshape(n, h, 2, w, 2, -1)
    xp = fast_conv.zeros_after(x, 1, 1)  # (N, h+1, w+1, C)
    dkernel = np.zeros_like(kernel)  # (2, 2, C, F)
    if in_one_product(c, kernel.shape[-1]):
        dz4 = dz.transpose(0, 1, 3, 2, 4, 5).reshape(n, h, w, -1)  # (N, h, w, 4F), a copy
        dxp, dk4 = fast_conv.backward(xp, all_phases_kernel(kernel), dz4, cores)
        dk4 = dk4.reshape(2, 2, c, 2, 2, -1)
        for r, s in phase_kernels(kernel):  # phase (r, s)'s taps: dk4[:1+r, :1+s, :, r, s]
            dkernel += dk4[: 1 + r, : 1 + s, :, r, s]  # broadcast, as below
    else:
        dxp = np.zeros(xp.shape, x.dtype)
        for (r, s), k in phase_kernels(kernel).items():
            dxp_rs, dk = fast_conv.backward(xp, k, dz[:, :, r, :, s], cores)
            dxp += dxp_rs
            dkernel += dk  # broadcast: each summed tap gets its phase kernel's gradient
    dbias = fast_conv.bias_grad(dz)  # (F,): dz summed over all else
    return dxp[:, :h, :w, :], dkernel, dbias  # (N, h, w, C)
