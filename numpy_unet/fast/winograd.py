"""The speed engine's Winograd convolution F(2x2, 3x3): 16 products for every 2x2 outputs,
where the shifted products (``conv.py``) make 36.

For a 3x3 kernel, Winograd's minimal filtering (Lavin and Gray, 2015) computes a 2x2 tile of
outputs from the 4x4 tile of inputs around it, one input channel and one filter at a time::

    Y (2x2) = A^T [ (G g G^T) * (B^T d B) ] A           * element-wise, 4x4

with g the 3x3 kernel, d the 4x4 input tile (tiles two pixels apart, overlapping by two)::

    B^T = [[1, 0, -1,  0],     G = [[  1,    0,   0 ],     A^T = [[1, 1,  1,  0],
           [0, 1,  1,  0],          [ 1/2,  1/2, 1/2],            [0, 1, -1, -1]]
           [0, -1, 1,  0],          [ 1/2, -1/2, 1/2],
           [0, 1,  0, -1]]          [  0,    0,   1 ]]

Over C channels and F filters the element-wise product becomes, for each of the 16
positions (a, b) of the 4x4 tile, one matrix product over all tiles::

    M[a, b] (tiles, F) = V[a, b] (tiles, C) @ U[a, b] (C, F)

with V = B^T d B the transformed input tiles and U = G g G^T the transformed kernel. So 16
products of (C, F) per 2x2 outputs instead of 4 x 9 = 36: 4/9 of the multiply-adds. The
price is the transforms: V takes 8 passes of additions over the image (about 6 C operations
per output pixel), Y = A^T M A one product (4, 16) @ (16, tiles x F) and a copy, U one
product (16, 9) @ (9, C x F). They pay where C and F are wide (at least 32), and U where the
image has at least as many pixels as C or F. The rule is :func:`pays_off`, measured layer
by layer with ``benchmarks/bench_layers.py --algorithms``.

Backward is the shifted products' (``conv.backward``): it needs only the padded input and
the kernel, whatever computed the forward.
"""

from __future__ import annotations

import numpy as np

from . import conv as fast_conv
from .cores import Cores

G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])  # (4, 3)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])  # (2, 4)
# both sides of a transform in one matrix: kron(G, G)[4a + b, 3i + j] = G[a, i] G[b, j]
G_BOTH = np.kron(G, G)  # (16, 9): U = G g G^T for all 16 (a, b) at once
A_BOTH = np.kron(A_T, A_T)  # (4, 16): Y = A^T M A for all 4 outputs (r, s) at once


def pays_off(c: int, f: int, kernel_size: tuple[int, int], pixels: int, one_thread: bool) -> bool:
    """Winograd for a 3x3 kernel with at least 32 channels in and out, on an output of at
    least max(C, F) pixels (N x Ho x Wo): below that U's 16 x C x F values cost more than the
    products save. When BLAS runs on several threads (not ``one_thread``: a thin network's
    single small image),
    the products run faster while NumPy's transforms do not: then only for C x F of at
    least 128 x 256."""
    if tuple(kernel_size) != (3, 3) or min(c, f) < 32 or pixels < max(c, f):
        return False
    return one_thread or c * f >= 128 * 256


def kernel_transform(kernel: np.ndarray) -> np.ndarray:
    """U (16, C, F): U[4a + b] = (G g G^T)[a, b] for every channel and filter of K (3, 3, C, F),
    as one product (16, 9) @ (9, C F)."""
    _, _, c, f = kernel.shape
    return (G_BOTH.astype(kernel.dtype) @ kernel.reshape(9, c * f)).reshape(16, c, f)


def input_transform(x: np.ndarray, tiles_w: int, rows: np.ndarray, v: np.ndarray) -> None:
    """V = B^T d B of every 4x4 tile of ``x`` (N, 2t + 2, 2 tiles_w + 2, C) into ``v``
    (4, 4, N, t, tiles_w, C), through ``rows`` (4, N, t, 2 tiles_w + 2, C)."""
    t = v.shape[3]
    d = [x[:, r : r + 2 * t : 2] for r in range(4)]  # row r of every tile: (N, t, Wp, C)
    np.subtract(d[0], d[2], out=rows[0])  # B^T along the tile's rows
    np.add(d[1], d[2], out=rows[1])
    np.subtract(d[2], d[1], out=rows[2])
    np.subtract(d[1], d[3], out=rows[3])
    e = [rows[:, :, :, s : s + 2 * tiles_w : 2] for s in range(4)]  # column s: (4, N, t, tw, C)
    np.subtract(e[0], e[2], out=v[:, 0])  # B along its columns
    np.add(e[1], e[2], out=v[:, 1])
    np.subtract(e[2], e[1], out=v[:, 2])
    np.subtract(e[1], e[3], out=v[:, 3])


def output_transform(m: np.ndarray, y4: np.ndarray, z: np.ndarray) -> None:
    """Z = A^T M A of every tile: ``m`` (16, tiles, F), tiles in (N, t, tw) order, into ``z``
    (N, t, 2, tw, 2, F), through ``y4`` (4, tiles, F). A^T M A is a sum over the 16 positions
    for each of the 4 outputs: one product (4, 16) @ (16, tiles F), then one copy that puts
    output (r, s) of tile (p, q) at z[:, p, r, q, s]. (As additions, like
    :func:`input_transform`, it took 8 NumPy passes and more time.)"""
    n, t, _, tw, _, f = z.shape
    np.matmul(A_BOTH.astype(m.dtype), m.reshape(16, -1), out=y4.reshape(4, -1))
    z[...] = y4.reshape(2, 2, n, t, tw, f).transpose(2, 3, 0, 4, 1, 5)


def products(xp: np.ndarray, kernel: np.ndarray, ho: int, wo: int, cores: Cores) -> np.ndarray:
    """z, the 3x3 convolution of the padded input ``xp`` (N, Hp, Wp, C), on a grid of whole
    2x2 tiles: (N, Ho, Wo, F) with Ho and Wo rounded up to even (the extra row or column
    is cut off by the caller). With the layer in halves (``cores.halving()``), the first
    half of the tile rows on one core, the second on the other."""
    n, hp, wp, c = xp.shape
    f = kernel.shape[-1]
    th, tw = -(-ho // 2), -(-wo // 2)  # tiles down and across
    need_h, need_w = 2 * th + 2, 2 * tw + 2
    if hp < need_h or wp < need_w:  # an odd Ho or Wo: one zero row or column more, cut later
        xp = fast_conv.zeros_after(xp, max(0, need_h - hp), max(0, need_w - wp))
    xp = xp[:, :, :need_w]
    u = kernel_transform(kernel)  # (16, C, F)
    z = np.empty((n, th, 2, tw, 2, f), xp.dtype)  # z[:, p, r, q, s] is output (2p + r, 2q + s)
    # tile rows per block: as many as keep V (16 x tiles x C) within the cache the rules
    # allow, but with the layer in halves at least rules.min_tiles tiles (below that, BLAS
    # spends more time on U than on them)
    rules = cores.rules
    floats = rules.tile_floats if cores.one_thread() else rules.threads_tile_floats
    step = max(1, floats // (16 * n * tw * max(c, f)))
    if cores.halving() and th >= 2:
        step, h = max(step, -(-rules.min_tiles // (n * tw))), th // 2
        cores.run(
            [lambda: tile_rows(xp, u, z, 0, h, step), lambda: tile_rows(xp, u, z, h, th, step)]
        )
    else:
        tile_rows(xp, u, z, 0, th, step)
    return z.reshape(n, 2 * th, 2 * tw, f)  # (N, 2 th, 2 tw, F)


def tile_rows(
    xp: np.ndarray, u: np.ndarray, z: np.ndarray, first: int, last: int, step: int
) -> None:
    """Tile rows [first, last) of :func:`products`' z (N, th, 2, tw, 2, F), from ``xp`` and
    U (16, C, F), ``step`` tile rows at a time."""
    n, _, _, tw, _, f = z.shape
    c = xp.shape[-1]
    step = min(step, last - first)
    rows = np.empty((4, n, step, xp.shape[2], c), xp.dtype)
    v = np.empty((16, n * step * tw, c), xp.dtype)
    m = np.empty((16, n * step * tw, f), xp.dtype)
    y4 = np.empty((4, n * step * tw, f), xp.dtype)
    for start in range(first, last, step):
        t = min(step, last - start)
        count = n * t * tw  # tiles in this block
        v_t = v[:, :count].reshape(4, 4, n, t, tw, c)  # splitting axes: always a view
        assert v_t.base is v, "the transformed tiles must be written into v itself"
        input_transform(xp[:, 2 * start : 2 * (start + t) + 2], tw, rows[:, :, :t], v_t)
        np.matmul(v[:, :count], u, out=m[:, :count])  # (16, tiles, C) @ (16, C, F)
        output_transform(m[:, :count], y4[:, :count], z[:, start : start + t])


def forward(
    xp: np.ndarray,
    kernel: np.ndarray,
    ho: int,
    wo: int,
    cores: Cores,
    bias: np.ndarray | None = None,
    relu: bool = False,
) -> np.ndarray:
    """z (N, Ho, Wo, F): what ``conv.forward(xp, kernel, ho, wo, cores, bias, relu)`` gives,
    for a 3x3 kernel. The bias and the ReLU go over the whole grid of tiles in one pass
    each (F is at least 32 here, wide enough for NumPy's broadcasting)."""
    z = products(xp, kernel, ho, wo, cores)  # (N, 2 th, 2 tw, F)
    if bias is not None:
        z += bias
    if relu:
        np.maximum(z, 0, out=z)
    return z[:, :ho, :wo]  # (N, Ho, Wo, F), a view


def backward(
    xp: np.ndarray, kernel: np.ndarray, dz: np.ndarray, cores: Cores
) -> tuple[np.ndarray, np.ndarray]:
    """(dxp, dkernel): the shifted products' backward (``conv.backward``), which needs only
    the padded input and the kernel, not how the forward computed z. (The input gradient
    is a 3x3 convolution too, and ran through :func:`products` faster on some layers,
    slower on others: too little gained for the code.)"""
    return fast_conv.backward(xp, kernel, dz, cores)
