"""The speed engine's convolution: a sum of shifted matrix products, no im2col matrix.

``layers/conv2d.py`` holds the readable im2col version; ``Conv2D(fast=True)`` (the default)
sends the shapes where this one is faster here, by the rule in :func:`pays_off`. Both give
the same numbers (``tests/test_conv2d.py``); ``benchmarks/bench_layers.py --algorithms``
times both on the seed's and the demo's layers.

For a kernel offset (i, j), every output pixel (h, w) reads the input pixel (h+i, w+j).
Flatten the padded input (N, Hp, Wp, C) to rows ``flat`` (N*Hp*Wp, C); then the row of
(n, h+i, w+j) is the row of (n, h, w) plus ``s = i*Wp + j``. So, computing the output on the
whole padded grid (and cutting it down afterwards)::

    z_grid[p] = sum_{i,j} flat[p + s_ij] @ K[i, j]        for every grid row p

which is kh*kw BLAS products of contiguous slices ``flat[s : s + L]``, with no copy of the
input. The price: the grid has Hp*Wp positions instead of Ho*Wo, and L = N*Hp*Wp - s_max
rows, so that no slice runs past the end. Grid rows whose window wraps around a row or image
edge are computed and thrown away; every wanted output position p = (n, h < Ho, w < Wo) has
p + s_max < N*Hp*Wp, so all of them are exact.

Three more tricks:

- :func:`shifted_sum` runs the sum a block of rows at a time, all products of one block
  before the next, so the block's partial sum stays in the CPU's cache;
- when C <= F it first copies each row's kw neighbours side by side
  (:func:`stack_windows`): kh products with K = kw*C replace kh*kw products with K = C;
- the input gradient is itself such a sum, of dz with the kernel flipped and transposed, so
  the backward reuses :func:`shifted_sum`.
"""

from __future__ import annotations

import numpy as np

from . import parallel

BLOCK = 2048  # rows per block: 2048 x 64 floats (512 KB) fit in a core's 1 MB L2 cache


def pays_off(c: int, f: int, ho: int, wo: int, kernel_size: tuple[int, int] = (3, 3)) -> bool:
    """The rule: shifted products from 8 input channels up, except on small outputs with
    C <= F (16x16 and below, or 32x32 from 256 channels), where im2col's one wider product
    wins. Below 8 channels (a first layer) only for at most 32 filters and a kernel wider
    than one pixel: there im2col's copy of every (kh, kw, 1) window costs more than the
    products (twice the time of a thin first layer's forward here), while with 64 filters
    the shifted backward's products of one output channel are slower. Measured with
    ``benchmarks/bench_layers.py --algorithms``."""
    if c < 8:
        return f <= 32 and kernel_size[0] * kernel_size[1] > 1
    if parallel.halving():  # im2col's one product would run on one core; these run on both
        return True
    return not (c <= f and (ho * wo <= 16 * 16 or (ho * wo <= 32 * 32 and c >= 256)))


# with the layer in halves, the fewest multiply-adds (rows x C x F x kh x kw) that are
# worth the two halves' meeting (tens of microseconds): about a millisecond's work
HALF_WORK = 2**26
BLOCK_FLOATS = 2048 * 64  # the most values per row block of an input or output: 512 KB
A_FLOATS = 3 * 2**14  # on one core, the most values of a thin product's (B, K) input: 192 KB


def block_rows(c: int, f: int, k: int | None = None) -> int:
    """Rows per block of :func:`shifted_sum`, whose products are (B, K) @ (K, F) with K = C,
    or kh*C with the rows stacked: BLOCK, or more for thin layers, as many as keep the
    block's C or F columns within BLOCK_FLOATS (8192 rows for 16 channels). But on one core
    (BLAS on one thread, as in the parts of a split batch) with K >= 32 and 8 <= F <= 16, only
    as many as keep the (B, K) input within A_FLOATS: OpenBLAS ran those products a
    quarter slower from 256 KB of input on. Measured on one core, forward: 32 -> 16
    channels at 2x64x64, 1.26 -> 0.98 ms; at 256x256, 9.8 -> 7.5 ms; the pairs of 16 -> 8
    at 2x128x128, 1.68 -> 1.31 ms; 16 -> 16 at 256x256, 5.8 -> 5.3 ms. With F = 32 or
    F = 4 the shorter blocks were slower, and with BLAS on two threads slower everywhere
    (the seed's 64 -> 64 at 256x256: 34 -> 41 ms).

    Fewer blocks are fewer NumPy calls: blocks of 2 MB made the 16-filter network's
    predict slower (119 -> 133 ms), so 512 KB it is."""
    rows = max(BLOCK, BLOCK_FLOATS // max(c, f))
    if k is not None and k >= 32 and 8 <= f <= 16 and parallel.one_core():
        rows = min(rows, A_FLOATS // k)
    return rows


def stack_rows(c: int, f: int, kh: int, rows: int) -> bool:
    """Stack each row's kw neighbours side by side (see :func:`stack_windows`)? It pays when
    the products are tall and thin (C <= F, and at least a block of rows); on smaller
    inputs its copy of the kernel costs more than it saves."""
    return kh > 1 and c <= f and rows >= BLOCK


def windows(src: np.ndarray, kw: int) -> np.ndarray:
    """Every row of ``src`` (rows, C) with its kw - 1 next rows, as one overlapping view
    (rows - kw + 1, kw*C), no copy: ``view[r] = src[r : r + kw].ravel()``. BLAS cannot read
    rows that overlap, so :func:`stack_windows` copies a block of them."""
    step, item = src.strides
    assert step == src.shape[1] * item, "the rows of src must be contiguous"
    return np.lib.stride_tricks.as_strided(
        src, (len(src) - kw + 1, kw * src.shape[1]), (step, item), writeable=False
    )


def stack_windows(view: np.ndarray, start: int, span: int, buf: np.ndarray) -> np.ndarray:
    """Rows ``src[r : r + kw].ravel()`` for r in [start, start + span), copied from the view
    :func:`windows` into ``buf`` (span, kw*C): the kw pixels to the right of each, side by
    side. Each row is one contiguous piece of ``src``, so the copy runs in pieces of kw*C
    values; stacking the kh row shifts instead (r, r + Wp, r + 2 Wp) copied pieces of C
    and took 0.99 ms instead of 0.80 for the pairs of an 8 -> 8 conv at 2x128x128."""
    assert start + span <= len(view), "stack_windows would read past src"
    np.copyto(buf[:span], view[start : start + span])
    return buf[:span]


def shifted_sum(
    src: np.ndarray,
    kernel: np.ndarray,
    wp: int,
    out: np.ndarray,
    bias: np.ndarray | None = None,
    relu: bool = False,
) -> np.ndarray:
    """``out[p] = bias + sum_{i,j} src[p + i*wp + j] @ kernel[i, j]`` for every row p of ``out``.

    ``src`` is (rows, C), ``kernel`` (kh, kw, C, F), ``out`` (P, F), with
    P + (kh-1)*wp + (kw-1) <= rows, ``bias`` (F,) or None. Computed :func:`block_rows`
    rows of ``out`` at a time; the bias is added with the first product and, if ``relu``,
    ``max(out, 0)`` taken after the last, while the block is in cache. With the layer in
    halves (``parallel.halving()``), the first half of ``out``'s rows on one core and the
    second on the other.
    """
    kh, kw, c, f = kernel.shape
    if parallel.halving() and len(out) * c * f * kh * kw >= HALF_WORK and len(out) >= 2:
        h = len(out) // 2  # row p of out reads src from row p on: the second half from h on
        parallel.run(
            [
                lambda: shifted_sum(src, kernel, wp, out[:h], bias, relu),
                lambda: shifted_sum(src[h:], kernel, wp, out[h:], bias, relu),
            ]
        )
        return out
    stacked_path = stack_rows(c, f, kh, len(out))
    size = block_rows(c, f, kw * c if stacked_path else c)
    first = min(size, len(out))
    part = np.empty((first, f), out.dtype)  # one product at a time, reused by every block
    # NumPy runs an element-wise pass over two C-ordered arrays of one shape several times
    # faster than one that broadcasts a bias (F,) or the scalar 0 over rows of 8-64 values
    bias_rows = None
    if bias is not None:  # (B, F), C order; np.tile gives the same, in 10x the Python time
        bias_rows = np.empty((first, f), out.dtype)
        bias_rows[...] = bias
    zeros = np.zeros((first, f), out.dtype) if relu else None
    if stacked_path:
        # with each row's kw neighbours side by side, kernel row i is one (kw*C, F) matrix:
        # a copy of kw*C columns per block buys kh products with K = kw*C instead of kh*kw
        # with K = C, and kh - 1 additions instead of kh*kw - 1
        kernel_rows = [np.ascontiguousarray(kernel[i]).reshape(kw * c, f) for i in range(kh)]
        stack = np.empty((first + (kh - 1) * wp, kw * c), out.dtype)
        view = windows(src, kw)  # (rows - kw + 1, kw*C), a view
    for start in range(0, len(out), size):
        stop = min(start + size, len(out))
        block = out[start:stop]  # (B, F)
        if stacked_path:
            span = stop - start + (kh - 1) * wp
            stacked = stack_windows(view, start, span, stack)  # (B + (kh-1)*Wp, kw*C)
            products = [(stacked[i * wp : i * wp + len(block)], kernel_rows[i]) for i in range(kh)]
        else:
            products = [
                (src[start + i * wp + j : stop + i * wp + j], kernel[i, j])
                for i in range(kh)
                for j in range(kw)
            ]
        for index, (a, k) in enumerate(products):
            # BLAS writes only into `part`, reused by every block: when its threads write
            # into fresh pages of `out` instead, they page-fault in parallel and contend
            # for the kernel's lock
            np.matmul(a, k, out=part[: len(block)])  # (B, K) @ (K, F)
            if index == 0 and bias_rows is not None:
                np.add(part[: len(block)], bias_rows[: len(block)], out=block)
            elif index == 0:
                block[...] = part[: len(block)]
            else:
                block += part[: len(block)]
        if zeros is not None:
            np.maximum(block, zeros[: len(block)], out=block)  # the ReLU
    return out


def forward(
    xp: np.ndarray,
    kernel: np.ndarray,
    ho: int,
    wo: int,
    bias: np.ndarray | None = None,
    activation: object = None,
) -> np.ndarray:
    """y (N, Ho, Wo, F) = activation(z), z the convolution of the padded input ``xp``
    (N, Hp, Wp, C) plus ``bias`` (F,) if given; ``activation`` is the conv's activation
    layer or None (see :func:`activate`)."""
    z = products(xp, kernel, ho, wo, bias, relu_inside(activation))
    return activate(z, activation)


def products(
    xp: np.ndarray,
    kernel: np.ndarray,
    ho: int,
    wo: int,
    bias: np.ndarray | None = None,
    relu: bool = False,
) -> np.ndarray:
    """z (N, Ho, Wo, F) = the convolution of ``xp`` (N, Hp, Wp, C), plus ``bias``, and
    ``max(z, 0)`` if ``relu``."""
    n, hp, wp, c = xp.shape
    kh, kw, _, f = kernel.shape
    flat = np.ascontiguousarray(xp).reshape(-1, c)  # (N*Hp*Wp, C), a view when contiguous
    rows = n * hp * wp - ((kh - 1) * wp + (kw - 1))  # L: the longest slice that fits
    grid = np.empty((n * hp * wp, f), xp.dtype)  # rows >= L are never read
    shifted_sum(flat, kernel, wp, grid[:rows], bias, relu)
    return grid.reshape(n, hp, wp, f)[:, :ho, :wo, :]  # (N, Ho, Wo, F), a view


def zeros_after(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """x (N, H, W, C) with ``rows`` zero rows and ``cols`` zero columns after it: what
    ``np.pad(x, ((0, 0), (0, rows), (0, cols), (0, 0)))`` gives, without its 50 us of
    Python per call (as long as an up-conv's whole forward on the demo's deepest level)."""
    n, h, w, c = x.shape
    out = np.empty((n, h + rows, w + cols, c), x.dtype)
    out[:, :h, :w] = x
    out[:, h:], out[:, :h, w:] = 0, 0
    return out


def relu_inside(activation: object) -> bool:
    """Is the activation a ReLU, which :func:`shifted_sum` applies block by block?"""
    return type(activation).__name__ == "ReLU"


def activate(z: np.ndarray, activation: object) -> np.ndarray:
    """The conv's output from :func:`products`' z: a ReLU was applied inside, so its layer
    only keeps y for its backward, as ``ReLU.forward`` does; any other activation runs
    its forward."""
    if activation is None:
        return z
    if relu_inside(activation):
        return activation._remember(z, z)  # what ReLU.forward keeps: y > 0 where z > 0
    return activation.forward(z)


def backward(xp: np.ndarray, kernel: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dxp, dkernel) for the upstream gradient dz (N, Ho, Wo, F), the same shifts in reverse.

    With dz placed on the padded grid (zeros where no output was kept), s_max the largest
    shift and dz_pad the grid with s_max zero rows in front::

        dK[i, j] = flat[s : s + L].T @ dz_grid[:L]                          (C, F)
        dxp[q]   = sum_{i,j} dz_grid[q - s] @ K[i, j].T
                 = sum_{i,j} dz_pad[q + s_max - s] @ K[i, j].T              (C,) per row

    The second line is the forward's sum again, with shifts s_max - s: the input gradient
    is the 'full' correlation of dz with the flipped, transposed kernel.
    """
    n, hp, wp, c = xp.shape
    kh, kw, _, f = kernel.shape
    _, ho, wo, _ = dz.shape
    flat = np.ascontiguousarray(xp).reshape(-1, c)  # (N*Hp*Wp, C)
    s_max = (kh - 1) * wp + (kw - 1)
    rows = n * hp * wp - s_max  # L
    dz_pad = np.empty((s_max + n * hp * wp, f), dz.dtype)
    grid = dz_pad[s_max:].reshape(n, hp, wp, f)  # (N, Hp, Wp, F), a view
    grid[:, :ho, :wo, :] = dz
    dz_pad[:s_max], grid[:, ho:], grid[:, :ho, wo:] = 0, 0, 0  # discarded positions get 0
    dz_grid = dz_pad[s_max : s_max + rows]  # (L, F)

    flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2)  # (kh, kw, F, C): offset s_max - s
    dxp = np.empty((n * hp * wp, c), dz.dtype)
    shifted_sum(dz_pad, flipped, wp, dxp)  # (N*Hp*Wp, C)
    return dxp.reshape(n, hp, wp, c), kernel_grad(flat, dz_grid, kh, kw, wp)


def kernel_grad(flat: np.ndarray, dz_grid: np.ndarray, kh: int, kw: int, wp: int) -> np.ndarray:
    """dK (kh, kw, C, F): ``dK[i, j] = flat[s : s + L].T @ dz_grid`` with s = i*wp + j and
    L = len(dz_grid), by one of three paths: in chunks for thin layers, a kernel row at a time
    on the stacks of :func:`shifted_sum`, or one product per offset. With the layer in halves
    (``parallel.halving()``): on a long grid, each core sums half of the L rows and the two
    sums are added; on a short one (the deep layers, few rows and many channels), each core
    takes half of the F filters."""
    rows, (c, f) = len(dz_grid), (flat.shape[1], dz_grid.shape[1])
    halves = parallel.halving() and rows * c * f * kh * kw >= HALF_WORK
    if halves and rows >= 2 * BLOCK:
        h = rows // 2  # dz_grid row p meets flat rows from p on: the second half from h on
        first, second = parallel.run(
            [
                lambda: kernel_grad(flat, dz_grid[:h], kh, kw, wp),
                lambda: kernel_grad(flat[h:], dz_grid[h:], kh, kw, wp),
            ]
        )
        return np.add(first, second, out=first)
    if halves and f >= 2:
        dkernel = np.empty((kh, kw, c, f), flat.dtype)

        def half(filters: slice) -> None:
            dkernel[..., filters] = kernel_grad(flat, dz_grid[:, filters], kh, kw, wp)

        parallel.run([lambda: half(slice(0, f // 2)), lambda: half(slice(f // 2, f))])
        return dkernel
    if chunked_grad(c, f, rows):
        return kernel_grad_in_chunks(flat, dz_grid, kh, kw, wp)
    if stack_rows(c, f, kh, rows):
        # the kernel gradient a kernel row at a time, with the stacks of shifted_sum:
        # dK[i] (kw*C, F) = sum over blocks of stacked[i*Wp : i*Wp + B].T @ dz_grid[block]
        dkernel = np.zeros((kh, kw * c, f), flat.dtype)
        size = block_rows(kw * c, f)
        stack = np.empty((min(size, rows) + (kh - 1) * wp, kw * c), flat.dtype)
        view = windows(flat, kw)  # (N*Hp*Wp - kw + 1, kw*C), a view
        for start in range(0, rows, size):
            stop = min(start + size, rows)
            stacked = stack_windows(view, start, stop - start + (kh - 1) * wp, stack)
            for i in range(kh):
                dkernel[i] += stacked[i * wp : i * wp + stop - start].T @ dz_grid[start:stop]
        return dkernel.reshape(kh, kw, c, f)
    # one product per offset; on a long grid a block of rows at a time, all kh*kw offsets
    # of a block while it is in cache: the seed's 128 -> 64 at 256x256 took 72 ms in two
    # halves streaming each half nine times, 55 ms in blocks
    size = block_rows(c, f)
    size = rows if rows <= 4 * size else size
    dkernel = np.empty((kh, kw, c, f), flat.dtype)
    part = np.empty((c, f), flat.dtype)
    for start in range(0, rows, size):
        stop = min(start + size, rows)
        for i, j in np.ndindex(kh, kw):
            s = i * wp + j
            a, b = flat[s + start : s + stop].T, dz_grid[start:stop]  # (C, B), (B, F)
            if start == 0:
                np.matmul(a, b, out=dkernel[i, j])  # (C, F)
            else:
                dkernel[i, j] += np.matmul(a, b, out=part)
    return dkernel


CHUNK_WORK = 2**19  # C * F * rows of one product of the chunked kernel gradient
THIN = 32 * 32  # C * F up to which the kernel gradient is summed in chunks


def chunk_rows(c: int, f: int) -> int:
    """Rows per product of :func:`kernel_grad_in_chunks`: 2048 for 16 x 16 channels, 512
    for 32 x 32. OpenBLAS runs products this small on one thread, and runs them 1.5-4x
    faster than it runs one long (C, L) @ (L, F) product on two threads."""
    return max(1, CHUNK_WORK // (c * f))


def chunked_grad(c: int, f: int, rows: int) -> bool:
    """Sum the kernel gradient of a thin layer (C * F <= 32 * 32) in chunks? From 64 x 32
    on, the long products are as fast; measured on the UNets' shapes here."""
    return c * f <= THIN and rows >= 2 * chunk_rows(c, f)


def kernel_grad_in_chunks(
    flat: np.ndarray, dz_grid: np.ndarray, kh: int, kw: int, wp: int
) -> np.ndarray:
    """``dK[i, j] = flat[s : s + L].T @ dz_grid`` (s = i*wp + j, L = len(dz_grid)), each
    product cut into :func:`chunk_rows` pieces that ``np.matmul`` runs as one stack, then
    summed."""
    rows, (c, f) = len(dz_grid), (flat.shape[1], dz_grid.shape[1])
    chunk = chunk_rows(c, f)
    whole = rows // chunk * chunk  # rows in whole chunks; the rest is one more product
    dz_chunks = dz_grid[:whole].reshape(-1, chunk, f)  # (B, chunk, F)
    dkernel = np.empty((kh, kw, c, f), flat.dtype)
    for i, j in np.ndindex(kh, kw):
        s = i * wp + j
        x_chunks = flat[s : s + whole].reshape(-1, chunk, c).transpose(0, 2, 1)  # (B, C, chunk)
        np.sum(np.matmul(x_chunks, dz_chunks), axis=0, out=dkernel[i, j])  # (C, F)
        dkernel[i, j] += flat[s + whole : s + rows].T @ dz_grid[whole:]
    return dkernel


def bias_grad(dz: np.ndarray) -> np.ndarray:
    """db (F,) = the sum of dz (..., F) over all but its last axis, as ``dz.sum(axis=(0, 1,
    2))`` gives it. That sum walks F-wide rows one at a time (0.5 ms for 8 channels at
    2x128x128 here); summed as rows of about 512 values, then those rows' F-wide parts,
    it takes a tenth of the time, and rounds less in float32 (pairwise sums)."""
    f = dz.shape[-1]
    rows = dz.reshape(-1, f)  # (P, F)
    group = max(1, 512 // f)  # pixels per long row
    while len(rows) % group:
        group //= 2
    return rows.reshape(-1, group * f).sum(axis=0).reshape(group, f).sum(axis=0)  # (F,)
