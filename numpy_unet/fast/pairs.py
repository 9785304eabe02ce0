"""The speed engine's thin convolutions: two neighbouring pixels as one, to widen the products.

A 3x3 convolution with 8-16 channels is a sum of products (rows, C) @ (C, F) with C and F
of 8-16 (``conv.py``); BLAS runs such narrow products at a third of its speed or less.
Read the image two pixels at a time instead. In NHWC memory the pixels (h, 2q) and
(h, 2q+1) are side by side, so the padded input (N, Hp, Wp, C) *is* an image of pixel
pairs (N, Hp, Wp/2, 2C) without a copy (Wp even). Output pair q, pixels 2q + b (b = 0, 1),
reads the input pixels 2q + b + j for the kernel columns j < kw, which lie in the input
pairs q + jj, jj = (b + j) // 2. So the convolution of pairs is again a convolution::

    z_pairs[n, h, q] = sum_{i, jj} x_pairs[n, h+i, q+jj] @ T[i, jj]      (2F,) per pair

with a kernel T (kh, kw//2 + 1, 2C, 2F) whose block (a, b), for input pixel a and output
pixel b of the pairs, is K[i, 2*jj + a - b] when that column exists and 0 otherwise. For a
3x3 kernel 6 of T's 8 blocks are K's, so the products do 4/3 of the multiply-adds, in
products twice as wide both ways, which BLAS runs up to 3 times faster.

Backward is ``conv.backward`` of the pair convolution: its input gradient, read as pixels,
is dL/dx; dK adds up the blocks of dT where each K[i, j] was placed.
"""

from __future__ import annotations

import numpy as np

from . import conv as fast_conv
from .cores import Cores


def pays_off(c: int, f: int, kw: int) -> bool:
    """Pairs for kernels at least 3 wide (a 2x2 kernel fills only half of T: twice the
    multiply-adds) with at most 32 channels in and out, one side of them 8 or fewer. From
    16 channels on both sides the plain shifted products are as fast forward and faster
    backward (``benchmarks/RESULTS.md``)."""
    return kw >= 3 and max(c, f) <= 32 and min(c, f) <= 8


def blocks(kh: int, kw: int) -> list[tuple[int, int, int, int]]:
    """(jj, a, b, j): block (a, b) of T[:, jj] holds kernel column j."""
    return [
        (jj, a, b, 2 * jj + a - b)
        for jj in range(kw // 2 + 1)
        for a in range(2)
        for b in range(2)
        if 0 <= 2 * jj + a - b < kw
    ]


def pair_kernel(kernel: np.ndarray) -> np.ndarray:
    """T (kh, kw//2 + 1, 2C, 2F) from K (kh, kw, C, F): see the module."""
    kh, kw, c, f = kernel.shape
    pair = np.zeros((kh, kw // 2 + 1, 2 * c, 2 * f), kernel.dtype)
    for jj, a, b, j in blocks(kh, kw):
        pair[:, jj, a * c : (a + 1) * c, b * f : (b + 1) * f] = kernel[:, j]
    return pair


def kernel_grad(dpair: np.ndarray, kw: int) -> np.ndarray:
    """dK (kh, kw, C, F) from dT: each K[:, j] gets the gradient of every block it filled."""
    kh, _, c2, f2 = dpair.shape
    c, f = c2 // 2, f2 // 2
    dkernel = np.zeros((kh, kw, c, f), dpair.dtype)
    for jj, a, b, j in blocks(kh, kw):
        dkernel[:, j] += dpair[:, jj, a * c : (a + 1) * c, b * f : (b + 1) * f]
    return dkernel


def as_pairs(xp: np.ndarray, kw: int, wo: int) -> np.ndarray:
    """The padded input as pairs (N, Hp, Wq + kw//2, 2C), Wq = ceil(Wo / 2): a view when
    Wp = Wo + kw - 1 is even, else with a zero column added (never read for an output)."""
    n, hp, wp, c = xp.shape
    width = 2 * (-(-wo // 2) + kw // 2)  # >= Wp
    if width > wp:
        xp = fast_conv.zeros_after(xp, 0, width - wp)
    return np.ascontiguousarray(xp).reshape(n, hp, width // 2, 2 * c)


def forward(
    xp: np.ndarray,
    kernel: np.ndarray,
    ho: int,
    wo: int,
    cores: Cores,
    bias: np.ndarray | None = None,
    relu: bool = False,
) -> np.ndarray:
    """z (N, Ho, Wo, F): what ``conv.forward(xp, kernel, ho, wo, cores, bias, relu)`` gives."""
    n = xp.shape[0]
    kh, kw, _, f = kernel.shape
    wq = -(-wo // 2)  # output pairs per row
    pair_bias = None if bias is None else np.concatenate((bias, bias))  # (2F,)
    pairs, pair_k = as_pairs(xp, kw, wo), pair_kernel(kernel)
    z = fast_conv.forward(pairs, pair_k, ho, wq, cores, pair_bias, relu)
    return z.reshape(n, ho, 2 * wq, f)[:, :, :wo]  # (N, Ho, Wo, F), a view


def backward(
    xp: np.ndarray, kernel: np.ndarray, dz: np.ndarray, cores: Cores
) -> tuple[np.ndarray, np.ndarray]:
    """(dxp, dkernel): what ``conv.backward(xp, kernel, dz, cores)`` gives."""
    n, hp, wp, c = xp.shape
    kh, kw, _, f = kernel.shape
    _, ho, wo, _ = dz.shape
    wq = -(-wo // 2)
    if 2 * wq != wo:  # odd width: the last pair's second pixel was never an output
        dz = fast_conv.zeros_after(dz, 0, 1)
    pairs = as_pairs(xp, kw, wo)
    dpairs, dpair_kernel = fast_conv.backward(
        pairs, pair_kernel(kernel), dz.reshape(n, ho, wq, 2 * f), cores
    )
    dxp = dpairs.reshape(n, hp, -1, c)  # (N, Hp, width, C), pixels again
    return dxp[:, :, :wp], kernel_grad(dpair_kernel, kw)  # cut the added column off
