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
(:func:`in_one_product`). ``UNet.forward`` takes this path when the up-conv's ``fast``
switch is on (the default); the tests check it, both ways, against the two layers and
gradient-check it.
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
    beats four narrow ones, although 7 of its 16 blocks are zeros (the demo's up9, 16 -> 8
    channels at 64x64: 1.1 ms instead of 1.4 forward, 3.0 instead of 3.6 with backward, on
    one core). From 16 filters on the four phases were as fast or faster."""
    return f <= 8


def forward(upsample, upconv, x: np.ndarray) -> np.ndarray:
    """``upconv.forward(upsample.forward(x))``: (N, h, w, C) -> (N, 2h, 2w, F)."""
    x = upsample._check_input(x)
    n, h, w, c = x.shape
    if not upconv.built:
        upconv.build(upsample.compute_output_shape(x.shape))
    upconv._check_channels(x)
    x = x.astype(upconv.dtype, copy=False)
    f = upconv.filters
    xp = fast_conv.zeros_after(x, 1, 1)  # (N, h+1, w+1, C): zeros after
    bias = upconv.params.get("bias")
    z = np.empty((n, h, 2, w, 2, f), upconv.dtype)  # z[:, p, r, q, s] is z[2p+r, 2q+s]
    relu = fast_conv.relu_inside(upconv.activation)
    if in_one_product(c, f):  # z[:, p, q, (r, s, f)] from one convolution, then interleaved
        bias4 = None if bias is None else np.concatenate((bias,) * 4)  # (4F,)
        kernel4 = all_phases_kernel(upconv.params["kernel"])
        z4 = fast_conv.products(xp, kernel4, h, w, bias4, relu)  # (N, h, w, 4F)
        z[...] = z4.reshape(n, h, w, 2, 2, f).transpose(0, 1, 3, 2, 4, 5)
    else:
        for (r, s), k in phase_kernels(upconv.params["kernel"]).items():
            z[:, :, r, :, s] = fast_conv.products(xp, k, h, w, bias, relu)  # (N, h, w, F)
    z = z.reshape(n, 2 * h, 2 * w, f)  # (N, 2h, 2w, F), a view
    y = fast_conv.activate(z, upconv.activation)
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
    xp = fast_conv.zeros_after(x, 1, 1)  # (N, h+1, w+1, C)
    kernel = upconv.params["kernel"]
    dkernel = np.zeros_like(kernel)  # (2, 2, C, F)
    if in_one_product(c, kernel.shape[-1]):
        dz4 = dz.transpose(0, 1, 3, 2, 4, 5).reshape(n, h, w, -1)  # (N, h, w, 4F), a copy
        dxp, dk4 = fast_conv.backward(xp, all_phases_kernel(kernel), dz4)
        dk4 = dk4.reshape(2, 2, c, 2, 2, -1)
        for r, s in phase_kernels(kernel):  # phase (r, s)'s taps: dk4[:1+r, :1+s, :, r, s]
            dkernel += dk4[: 1 + r, : 1 + s, :, r, s]  # broadcast, as below
    else:
        dxp = np.zeros(xp.shape, upconv.dtype)
        for (r, s), k in phase_kernels(kernel).items():
            dxp_rs, dk = fast_conv.backward(xp, k, dz[:, :, r, :, s])
            dxp += dxp_rs
            dkernel += dk  # broadcast: each summed tap gets its phase kernel's gradient
    upconv.grads = {"kernel": dkernel}
    if upconv.use_bias:
        upconv.grads["bias"] = fast_conv.bias_grad(dz)  # (F,): dz summed over all else
    return dxp[:, :h, :w, :]  # (N, h, w, C)
