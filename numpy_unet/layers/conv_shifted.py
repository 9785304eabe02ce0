"""Convolution as a sum of shifted matrix products: no im2col matrix at all.

For a kernel offset (i, j), every output pixel (h, w) reads the input pixel (h+i, w+j).
Flatten the padded input (N, Hp, Wp, C) to rows ``flat`` (N*Hp*Wp, C); then the row of
(n, h+i, w+j) is the row of (n, h, w) plus ``s = i*Wp + j``. So, computing the output on the
whole padded grid (and cutting it down afterwards)::

    z_grid[p] = sum_{i,j} flat[p + s_ij] @ K[i, j]        for every grid row p

which is kh*kw large BLAS products of contiguous slices ``flat[s : s + L]``, with no copy
of the input. The price: the grid has Hp*Wp positions instead of Ho*Wo (2% more work at
256x256, 27% more at 16x16 with 'same' padding), and L = N*Hp*Wp - s_max rows per product,
so that no slice runs past the end. Grid rows whose window wraps around a row or image edge
are computed and thrown away; every wanted output position p = (n, h < Ho, w < Wo) has
p + s_max < N*Hp*Wp, so all of them are exact.

What it buys against im2col: no (N*Ho*Wo, kh*kw*C) matrix (9x the input, 150 MB for one
256x256x64 image in float32), and each product reads its operand straight from the input.
im2col wins when C is small (one product with K = kh*kw*C beats nine with K = C).
"""

from __future__ import annotations

import numpy as np


def shifted_forward(xp: np.ndarray, kernel: np.ndarray, ho: int, wo: int) -> np.ndarray:
    """z (N, Ho, Wo, F) = the convolution of the padded input ``xp`` (N, Hp, Wp, C)."""
    n, hp, wp, c = xp.shape
    kh, kw, _, f = kernel.shape
    flat = np.ascontiguousarray(xp).reshape(-1, c)  # (N*Hp*Wp, C), a view when contiguous
    rows = n * hp * wp - ((kh - 1) * wp + (kw - 1))  # L: the longest slice that fits
    grid = np.empty((n * hp * wp, f), xp.dtype)  # rows >= L are never read
    tmp = np.empty((rows, f), xp.dtype)  # one buffer for every product: no reallocation
    np.matmul(flat[:rows], kernel[0, 0], out=grid[:rows])
    for i in range(kh):
        for j in range(kw):
            if i == j == 0:
                continue
            s = i * wp + j
            np.matmul(flat[s : s + rows], kernel[i, j], out=tmp)  # (L, C) @ (C, F)
            grid[:rows] += tmp
    return grid.reshape(n, hp, wp, f)[:, :ho, :wo, :]  # (N, Ho, Wo, F), a view


def shifted_backward(
    xp: np.ndarray, kernel: np.ndarray, dz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(dxp, dkernel) for the upstream gradient dz (N, Ho, Wo, F), the same shifts in reverse.

    With dz placed on the padded grid (zeros where no output was kept)::

        dK[i, j]             = flat[s : s + L].T @ dz_grid[:L]      (C, F)
        dxp_flat[s : s + L] += dz_grid[:L] @ K[i, j].T               (L, C)
    """
    n, hp, wp, c = xp.shape
    kh, kw, _, f = kernel.shape
    _, ho, wo, _ = dz.shape
    flat = np.ascontiguousarray(xp).reshape(-1, c)
    rows = n * hp * wp - ((kh - 1) * wp + (kw - 1))
    dz_grid = np.zeros((n, hp, wp, f), dz.dtype)
    dz_grid[:, :ho, :wo, :] = dz  # the discarded grid positions get no gradient
    dz_grid = dz_grid.reshape(-1, f)[:rows]  # (L, F)
    dkernel = np.empty_like(kernel)
    dxp = np.zeros((n * hp * wp, c), dz.dtype)
    tmp = np.empty((rows, c), dz.dtype)
    for i in range(kh):
        for j in range(kw):
            s = i * wp + j
            np.matmul(flat[s : s + rows].T, dz_grid, out=dkernel[i, j])  # (C, F)
            np.matmul(dz_grid, kernel[i, j].T, out=tmp)  # (L, C)
            dxp[s : s + rows] += tmp
    return dxp.reshape(n, hp, wp, c), dkernel
