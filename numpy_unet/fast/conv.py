"""The speed engine's convolution: a sum of shifted matrix products, no im2col matrix.

``layers/conv2d.py`` holds the readable im2col version. A model's engine
(``engine.py``) sends a conv here where the rule in :func:`pays_off` says this one is
faster. Both give the same numbers (``tests/test_engine_kernels.py``);
``benchmarks/bench_layers.py --algorithms`` times both.

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

from .cores import Cores


def pays_off(c: int, f: int, ho: int, wo: int, kernel_size: tuple[int, int], halving: bool) -> bool:
    """The rule: shifted products from 8 input channels up, except on small outputs with
    C <= F (16x16 and below, or 32x32 from 256 channels), where im2col's one wider product
    wins. Below 8 channels (a first layer) only for at most 32 filters and a kernel wider
    than one pixel: there im2col's copy of every (kh, kw, 1) window costs more than the
    products, while with 64 filters the shifted backward's products of one output channel
    are slower. With the layer in halves (``halving``) always: im2col's one product would
    run on one core."""
    if c < 8:
        return f <= 32 and kernel_size[0] * kernel_size[1] > 1
    if halving:
        return True
    return not (c <= f and (ho * wo <= 16 * 16 or (ho * wo <= 32 * 32 and c >= 256)))


def block_rows(c: int, f: int, cores: Cores, k: int | None = None) -> int:
    """Rows per block of :func:`shifted_sum`, whose products are (B, K) @ (K, F) with K = C,
    or kh*C with the rows stacked: as many as keep the block's C or F columns within half
    of L2 (``rules.block_floats``), and at least ``rules.block``. On one core with
    K >= 32 and 8 <= F <= 16, only as many as keep the (B, K) input within
    ``rules.thin_input_floats``: OpenBLAS runs those thin products slower on larger inputs.
    Larger blocks mean fewer NumPy calls but spill out of the cache."""
    rules = cores.rules
    rows = max(rules.block, rules.block_floats // max(c, f))
    if k is not None and k >= 32 and 8 <= f <= 16 and cores.one_thread():
        rows = min(rows, max(1, rules.thin_input_floats // k))
    return rows


def stack_rows(c: int, f: int, kh: int, rows: int, cores: Cores) -> bool:
    """Stack each row's kw neighbours side by side (see :func:`stack_windows`)? It pays when
    the products are tall and thin (C <= F, and at least a block of rows); on smaller
    inputs its copy of the kernel costs more than it saves."""
    return kh > 1 and c <= f and rows >= cores.rules.block


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
    values (stacking the kh row shifts instead would copy pieces of C values)."""
    assert start + span <= len(view), "stack_windows would read past src"
    np.copyto(buf[:span], view[start : start + span])
    return buf[:span]


def shifted_sum(
    src: np.ndarray,
    kernel: np.ndarray,
    wp: int,
    out: np.ndarray,
    cores: Cores,
    bias: np.ndarray | None = None,
    relu: bool = False,
) -> np.ndarray:
    """``out[p] = bias + sum_{i,j} src[p + i*wp + j] @ kernel[i, j]`` for every row p of ``out``.

    ``src`` is (rows, C), ``kernel`` (kh, kw, C, F), ``out`` (P, F), with
    P + (kh-1)*wp + (kw-1) <= rows, ``bias`` (F,) or None. Computed :func:`block_rows`
    rows of ``out`` at a time, every product of a block while it is in cache; the bias is
    added with the first product and, if ``relu``, ``max(out, 0)`` taken after the last.
    With the layer in halves (``cores.halving()``), the first half of ``out``'s rows on one
    core and the second on the other.
    """
    kh, kw, c, f = kernel.shape
    if cores.halving() and len(out) * c * f * kh * kw >= cores.rules.half_work and len(out) > 1:
        h = len(out) // 2  # row p of out reads src from row p on: the second half from h on
        cores.run(
            [
                lambda: shifted_sum(src, kernel, wp, out[:h], cores, bias, relu),
                lambda: shifted_sum(src[h:], kernel, wp, out[h:], cores, bias, relu),
            ]
        )
        return out
    stacked_path = stack_rows(c, f, kh, len(out), cores)
    size = block_rows(c, f, cores, kw * c if stacked_path else c)
    first = min(size, len(out))
    part = np.empty((first, f), out.dtype)  # one product at a time, reused by every block
    # NumPy runs an element-wise pass over two C-ordered arrays of one shape several times
    # faster than one that broadcasts a bias (F,) or the scalar 0 over rows of 8-64 values
    bias_rows = None
    if bias is not None:  # (B, F), C order
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
            np.maximum(block, zeros[: len(block)], out=block)  # the ReLU, while in cache
    return out


def forward(
    xp: np.ndarray,
    kernel: np.ndarray,
    ho: int,
    wo: int,
    cores: Cores,
    bias: np.ndarray | None = None,
    relu: bool = False,
) -> np.ndarray:
    """z (N, Ho, Wo, F), the convolution of the padded input ``xp`` (N, Hp, Wp, C) plus
    ``bias`` (F,) if given, and ``max(z, 0)`` if ``relu``: a view of the whole grid (see
    the module)."""
    n, hp, wp, c = xp.shape
    kh, kw, _, f = kernel.shape
    flat = np.ascontiguousarray(xp).reshape(-1, c)  # (N*Hp*Wp, C), a view when contiguous
    rows = n * hp * wp - ((kh - 1) * wp + (kw - 1))  # L: the longest slice that fits
    grid = np.empty((n * hp * wp, f), xp.dtype)  # rows >= L are never read
    shifted_sum(flat, kernel, wp, grid[:rows], cores, bias, relu)
    return grid.reshape(n, hp, wp, f)[:, :ho, :wo, :]  # (N, Ho, Wo, F), a view


def zeros_after(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """x (N, H, W, C) with ``rows`` zero rows and ``cols`` zero columns after it: what
    ``np.pad(x, ((0, 0), (0, rows), (0, cols), (0, 0)))`` gives, without its Python
    overhead (as long as a small layer's whole forward)."""
    n, h, w, c = x.shape
    out = np.empty((n, h + rows, w + cols, c), x.dtype)
    out[:, :h, :w] = x
    out[:, h:], out[:, :h, w:] = 0, 0
    return out


def backward(
    xp: np.ndarray, kernel: np.ndarray, dz: np.ndarray, cores: Cores
) -> tuple[np.ndarray, np.ndarray]:
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
    shifted_sum(dz_pad, flipped, wp, dxp, cores)  # (N*Hp*Wp, C)
    return dxp.reshape(n, hp, wp, c), kernel_grad(flat, dz_grid, kh, kw, wp, cores)


def kernel_grad(
    flat: np.ndarray, dz_grid: np.ndarray, kh: int, kw: int, wp: int, cores: Cores
) -> np.ndarray:
    """dK (kh, kw, C, F): ``dK[i, j] = flat[s : s + L].T @ dz_grid`` with s = i*wp + j and
    L = len(dz_grid), by one of three paths: in chunks for thin layers, a kernel row at a time
    on the stacks of :func:`shifted_sum`, or one product per offset. With the layer in halves
    (``cores.halving()``): on a long grid, each core sums half of the L rows and the two
    sums are added; on a short one (the deep layers, few rows and many channels), each core
    takes half of the F filters."""
    rows, (c, f) = len(dz_grid), (flat.shape[1], dz_grid.shape[1])
    halves = cores.halving() and rows * c * f * kh * kw >= cores.rules.half_work
    if halves and rows >= 2 * cores.rules.block:
        h = rows // 2  # dz_grid row p meets flat rows from p on: the second half from h on
        first, second = cores.run(
            [
                lambda: kernel_grad(flat, dz_grid[:h], kh, kw, wp, cores),
                lambda: kernel_grad(flat[h:], dz_grid[h:], kh, kw, wp, cores),
            ]
        )
        return np.add(first, second, out=first)
    if halves and f >= 2:
        dkernel = np.empty((kh, kw, c, f), flat.dtype)

        def half(filters: slice) -> None:
            dkernel[..., filters] = kernel_grad(flat, dz_grid[:, filters], kh, kw, wp, cores)

        cores.run([lambda: half(slice(0, f // 2)), lambda: half(slice(f // 2, f))])
        return dkernel
    if chunked_grad(c, f, rows, cores):
        return kernel_grad_in_chunks(flat, dz_grid, kh, kw, wp, cores)
    if stack_rows(c, f, kh, rows, cores):
        # the kernel gradient a kernel row at a time, with the stacks of shifted_sum:
        # dK[i] (kw*C, F) = sum over blocks of stacked[i*Wp : i*Wp + B].T @ dz_grid[block]
        dkernel = np.zeros((kh, kw * c, f), flat.dtype)
        size = block_rows(kw * c, f, cores)
        stack = np.empty((min(size, rows) + (kh - 1) * wp, kw * c), flat.dtype)
        view = windows(flat, kw)  # (N*Hp*Wp - kw + 1, kw*C), a view
        for start in range(0, rows, size):
            stop = min(start + size, rows)
            stacked = stack_windows(view, start, stop - start + (kh - 1) * wp, stack)
            for i in range(kh):
                dkernel[i] += stacked[i * wp : i * wp + stop - start].T @ dz_grid[start:stop]
        return dkernel.reshape(kh, kw, c, f)
    # one product per offset; on a long grid a block of rows at a time, all kh*kw offsets
    # of a block while it is in cache (rather than streaming the grid kh*kw times)
    size = block_rows(c, f, cores)
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


THIN = 32 * 32  # C * F up to which the kernel gradient is summed in chunks


def chunk_rows(c: int, f: int, cores: Cores) -> int:
    """Rows per product of :func:`kernel_grad_in_chunks` (2048 for 16 x 16 channels with
    the default ``rules.chunk_work``). OpenBLAS runs products this small on one thread,
    and faster than one long (C, L) @ (L, F) product on two."""
    return max(1, cores.rules.chunk_work // (c * f))


def chunked_grad(c: int, f: int, rows: int, cores: Cores) -> bool:
    """Sum the kernel gradient of a thin layer (C * F <= 32 * 32) in chunks? From 64 x 32
    on, the long products are as fast."""
    return c * f <= THIN and rows >= 2 * chunk_rows(c, f, cores)


def kernel_grad_in_chunks(
    flat: np.ndarray, dz_grid: np.ndarray, kh: int, kw: int, wp: int, cores: Cores
) -> np.ndarray:
    """``dK[i, j] = flat[s : s + L].T @ dz_grid`` (s = i*wp + j, L = len(dz_grid)), each
    product cut into :func:`chunk_rows` pieces that ``np.matmul`` runs as one stack, then
    summed."""
    rows, (c, f) = len(dz_grid), (flat.shape[1], dz_grid.shape[1])
    chunk = chunk_rows(c, f, cores)
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
    2))`` gives it. That sum walks F-wide rows one at a time; summed as rows of about 512
    values, then those rows' F-wide parts, it takes a fraction of the time and rounds less
    in float32 (pairwise sums)."""
    f = dz.shape[-1]
    rows = dz.reshape(-1, f)  # (P, F)
    group = max(1, 512 // f)  # pixels per long row
    while len(rows) % group:
        group //= 2
    return rows.reshape(-1, group * f).sum(axis=0).reshape(group, f).sum(axis=0)  # (F,)
