"""Readable loop versions of convolution, transposed convolution and max pooling.

These follow the formulas in the layers' docstrings one index at a time, forward and
backward. They are slow (Python loops over every output pixel) and exist to be read, and to
be the reference that the tests compare the layers (and the speed engine) against.
"""

from __future__ import annotations

import numpy as np

from .padding import pad_same, unpad_same


def conv2d_forward_loops(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, padding: str
) -> np.ndarray:
    """z[n,h,w,f] = b[f] + sum_{i,j,c} xp[n,h+i,w+j,c] K[i,j,c,f] (no activation)."""
    kh, kw, _, filters = kernel.shape
    xp = pad_same(x, kh, kw, padding)  # (N, Hp, Wp, Cin)
    n_batch, hp, wp, _ = xp.shape
    ho, wo = hp - kh + 1, wp - kw + 1
    z = np.zeros((n_batch, ho, wo, filters), x.dtype)
    for n in range(n_batch):
        for h in range(ho):
            for w in range(wo):
                window = xp[n, h : h + kh, w : w + kw, :]  # (kh, kw, Cin)
                for f in range(filters):
                    z[n, h, w, f] = np.sum(window * kernel[:, :, :, f])
                    if bias is not None:
                        z[n, h, w, f] += bias[f]
    return z


def conv2d_backward_loops(
    x: np.ndarray, kernel: np.ndarray, dz: np.ndarray, padding: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dK, db) of the convolution for the upstream gradient dz = dL/dz."""
    kh, kw, _, filters = kernel.shape
    xp = pad_same(x, kh, kw, padding)
    dxp = np.zeros_like(xp)
    dkernel = np.zeros_like(kernel)
    dbias = np.zeros(filters, x.dtype)
    n_batch, ho, wo, _ = dz.shape
    for n in range(n_batch):
        for h in range(ho):
            for w in range(wo):
                window = xp[n, h : h + kh, w : w + kw, :]
                for f in range(filters):
                    g = dz[n, h, w, f]  # this output's gradient flows to ...
                    dkernel[:, :, :, f] += g * window  # ... every weight it used,
                    dbias[f] += g  # ... its bias,
                    dxp[n, h : h + kh, w : w + kw, :] += g * kernel[:, :, :, f]  # ... its window.
    return unpad_same(dxp, x.shape, kh, kw, padding), dkernel, dbias


def conv2d_transpose_forward_loops(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, strides: tuple[int, int]
) -> np.ndarray:
    """The full (uncropped) transposed convolution: each input pixel paints a patch.

    ``kernel`` has Keras's layout (kh, kw, F, Cin); the result is (N, Hf, Wf, F) with
    Hf = (H - 1) * s + max(k, s). Cropping for 'same' is left to the caller.
    """
    kh, kw, filters, _ = kernel.shape
    sh, sw = strides
    n_batch, h_in, w_in, _ = x.shape
    hf, wf = (h_in - 1) * sh + max(kh, sh), (w_in - 1) * sw + max(kw, sw)
    y = np.zeros((n_batch, hf, wf, filters), x.dtype)
    for n in range(n_batch):
        for h in range(h_in):
            for w in range(w_in):
                for i in range(kh):
                    for j in range(kw):  # pixel (h, w) paints y[s*h + i, s*w + j]
                        y[n, sh * h + i, sw * w + j, :] += kernel[i, j] @ x[n, h, w, :]
    if bias is not None:
        y += bias
    return y


def conv2d_transpose_backward_loops(
    x: np.ndarray, kernel: np.ndarray, dyf: np.ndarray, strides: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dK, db) of the full transposed convolution for dyf = dL/dyf (N, Hf, Wf, F).

    Forward, pixel (h, w) painted ``K[i, j] @ x[n, h, w]`` onto ``y[s*h + i, s*w + j]``; so
    backward, each painted value's gradient flows back to that pixel and that kernel entry.
    """
    kh, kw, filters, _ = kernel.shape
    sh, sw = strides
    n_batch, h_in, w_in, _ = x.shape
    dx, dkernel = np.zeros_like(x), np.zeros_like(kernel)
    dbias = dyf.sum(axis=(0, 1, 2))  # every output element had the bias added once
    for n in range(n_batch):
        for h in range(h_in):
            for w in range(w_in):
                for i in range(kh):
                    for j in range(kw):
                        g = dyf[n, sh * h + i, sw * w + j, :]  # (F,): this painted value's
                        dx[n, h, w, :] += kernel[i, j].T @ g  # ... gradient to the pixel,
                        dkernel[i, j] += np.outer(g, x[n, h, w, :])  # ... and to K[i, j].
    return dx, dkernel, dbias


def maxpool_forward_loops(
    x: np.ndarray, pool: tuple[int, int], strides: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """'valid' max pooling; returns y and, per output, the (row, col) of the chosen maximum.

    Ties: the first maximum met when scanning the window row by row wins (strict ``>``).
    """
    (ph, pw), (sh, sw) = pool, strides
    n_batch, h_in, w_in, channels = x.shape
    ho, wo = (h_in - ph) // sh + 1, (w_in - pw) // sw + 1
    y = np.zeros((n_batch, ho, wo, channels), x.dtype)
    where = np.zeros((n_batch, ho, wo, channels, 2), int)
    for n in range(n_batch):
        for h in range(ho):
            for w in range(wo):
                for c in range(channels):
                    best, best_at = -np.inf, (0, 0)
                    for i in range(ph):
                        for j in range(pw):
                            v = x[n, sh * h + i, sw * w + j, c]
                            if v > best:  # strict: a later equal value does not win
                                best, best_at = v, (sh * h + i, sw * w + j)
                    y[n, h, w, c] = best
                    where[n, h, w, c] = best_at
    return y, where


def maxpool_backward_loops(dy: np.ndarray, where: np.ndarray, x_shape: tuple) -> np.ndarray:
    """Route each output's gradient to the input element that was its maximum."""
    dx = np.zeros(x_shape, dy.dtype)
    n_batch, ho, wo, channels = dy.shape
    for n in range(n_batch):
        for h in range(ho):
            for w in range(wo):
                for c in range(channels):
                    r, q = where[n, h, w, c]
                    dx[n, r, q, c] += dy[n, h, w, c]
    return dx
