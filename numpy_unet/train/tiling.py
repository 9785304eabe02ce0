"""Overlap-tile prediction (the U-Net paper, Fig. 2): an image of any size, tile by tile.

A 'valid' UNet's output is smaller than its input: 572 -> 388 for the paper's network, so
each output pixel sees a context of (572 - 388) / 2 = 92 pixels on every side. To predict an
image of any size, cut it into tiles; give each tile's input that context, taken from the
neighbouring pixels or, past the image border, from the image mirrored there; and write each
tile's output into its place. Every output pixel of a 'valid' network depends only on its
receptive field, so the tiles join without a seam: the result does not depend on the tile.

Conventions used here:

- ``tile`` is the size of the network's INPUT tile (572 for the paper's network), so it is
  what the network accepts (``model.output_size``), what bounds the memory, and what
  :meth:`UNet.paper`'s ``input_shape`` means. Its output tile is ``model.output_size(tile)``.
- Mirroring is NumPy's ``np.pad(mode='reflect')``: the border pixel is not repeated
  (``... 2 1 | 0 1 2 ... n-1 | n-2 ...``), the paper's "extrapolated by mirroring". An image
  smaller than the context is mirrored again and again (see :func:`mirror_indices`).
- Pooling makes a UNet shift-equivariant only by multiples of ``2**depth``, so tiles step by
  their output size rounded down to such a multiple (384 for the paper's 388): the few output
  pixels two tiles share are computed identically, and each is written once.
- A 'same' UNet (the seed's) sees zeros past every tile edge. Its tiles overlap by
  ``overlap`` pixels and only their centres are kept; by default the overlap is a quarter of
  the tile rounded to a multiple of ``2**depth`` (64 for a 256 tile), so every kept pixel
  has at least an eighth of the tile of real or mirrored context on each side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.resample import reflect_index
from ..layers.padding import pair


@dataclass(frozen=True)
class Tile:
    """One tile, in image coordinates; every window is half-open ``(start, stop)``.

    ``input_rows``/``input_cols``: the window the network reads, ``tile`` pixels; where it
    reaches outside the image, the image is mirrored. ``output_rows``/``output_cols``: the
    pixels of the prediction this tile writes. ``keep_rows``/``keep_cols``: where those
    pixels sit in the tile's own output.
    """

    input_rows: tuple[int, int]
    input_cols: tuple[int, int]
    output_rows: tuple[int, int]
    output_cols: tuple[int, int]
    keep_rows: tuple[int, int]
    keep_cols: tuple[int, int]


@dataclass(frozen=True)
class _Axis:
    """How one axis is cut: input tile, step between tiles, context before, first kept."""

    tile: int
    step: int
    context: int  # pixels of input before the first pixel a tile writes
    keep_from: int  # index in the tile's output of that pixel


def mirror_indices(start: int, stop: int, n: int) -> np.ndarray:
    """Indices into an axis of length ``n`` for positions ``start .. stop - 1``, mirrored.

    Positions outside ``[0, n)`` are reflected at the border without repeating it, as
    ``np.pad(mode='reflect')`` does, as often as needed: with n = 3, positions -3 .. 5 give
    1 2 1 0 1 2 1 0 1. A length-1 axis gives 0 everywhere.
    """
    return reflect_index(np.arange(start, stop), n)  # the rule the data generator uses too


def _default_overlap(model: object, tile: int) -> int:
    """A quarter of the tile, rounded to a multiple of 2**depth; half a tile if too small."""
    grid = 2 ** model.config["depth"]
    overlap = grid * max(1, round(tile / grid / 4))
    return overlap if overlap < tile else tile // 2


def _axis(model: object, tile: int, overlap: int | None, where: str) -> _Axis:
    """Check ``tile`` (and ``overlap``) along one axis; raise naming what would work."""
    depth, padding = model.config["depth"], model.config["padding"]
    grid = 2**depth
    out = model.output_size(tile)
    if out is None:
        below, above = model.nearest_valid_sizes(max(tile, 1))
        nearest = " or ".join(str(m) for m in (below, above) if m)
        raise ValueError(
            f"{where}: tile {tile} is not an input size this depth-{depth} '{padding}' UNet "
            f"accepts; nearest valid tile sizes: {nearest}"
        )
    if padding == "valid":
        if overlap is not None:
            raise ValueError(
                f"{where}: overlap applies to 'same' UNets only; a 'valid' UNet's tiles "
                f"overlap by exactly the context they need ({tile - out} pixels here)"
            )
        step = out - out % grid  # tiles must start on the pooling grid
        if step < 1:
            smallest = next(t for t in range(tile, 8 * tile + 64) if _valid_step(model, t))
            raise ValueError(
                f"{where}: tile {tile} is too small: its {out}-pixel output is less than "
                f"2**depth = {grid}, the step tiles must take; use a tile of at least {smallest}"
            )
        return _Axis(tile, step, (tile - out) // 2, 0)
    overlap = _default_overlap(model, tile) if overlap is None else overlap
    if overlap >= tile:
        raise ValueError(f"{where}: overlap {overlap} must be smaller than the tile {tile}")
    return _Axis(tile, tile - overlap, overlap // 2, overlap // 2)


def _valid_step(model: object, tile: int) -> bool:
    out = model.output_size(tile)
    return out is not None and out >= 2 ** model.config["depth"]


def _default_tile(model: object, length: int, built: int, overlap: int | None) -> int:
    """The smallest tile covering ``length`` in one step, but no larger than ``built``."""
    tile = 0
    while True:
        tile += 1
        if model.output_size(tile) is None:
            continue
        if model.config["padding"] == "valid":
            if not _valid_step(model, tile):
                continue
            step = _axis(model, tile, None, "").step
        else:
            if overlap is not None and overlap >= tile:
                continue
            step = tile - (_default_overlap(model, tile) if overlap is None else overlap)
        if step >= length or tile >= built:
            return tile


def _spatial(image_shape: tuple, where: str) -> tuple[int, int]:
    if len(image_shape) not in (2, 3, 4):
        raise ValueError(
            f"{where}: expected an image shape (H, W), (H, W, C) or (N, H, W, C), "
            f"got {tuple(image_shape)}"
        )
    h, w = (int(v) for v in (image_shape[:2] if len(image_shape) < 4 else image_shape[1:3]))
    if h < 1 or w < 1:
        raise ValueError(f"{where}: the image must be at least 1x1, got {h}x{w}")
    return h, w


def _plan(
    model: object, hw: tuple[int, int], tile: object, overlap: object, where: str
) -> list[_Axis]:
    overlaps = (None, None) if overlap is None else pair(overlap, "overlap", where, minimum=0)
    if tile is None:
        built = model.config["input_shape"][:2]
        tile = tuple(_default_tile(model, *args) for args in zip(hw, built, overlaps))
    tiles = pair(tile, "tile", where)
    axes = [_axis(model, t, o, where) for t, o in zip(tiles, overlaps)]  # valid tiles first
    # the largest tile worth its memory: what the image needs, or the model was built for
    built = model.config["input_shape"][:2]
    needs = [_default_tile(model, n, t, o) for t, n, o in zip(tiles, hw, overlaps)]
    limit = max(*needs, *built)
    if max(tiles) > limit:
        raise ValueError(
            f"{where}: tile {max(tiles)} is larger than a {hw[0]}x{hw[1]} image needs (tiles of "
            f"{needs[0]}x{needs[1]} cover it in one step) and than the model was built for "
            f"({built[0]}x{built[1]}); use a tile of at most {limit}"
        )
    return axes


def _windows(length: int, a: _Axis) -> list[tuple[tuple[int, int], ...]]:
    """(input, output, keep) windows along one axis of the image."""
    windows = []
    for start in range(0, length, a.step):  # (k * step) .. in image coordinates
        stop = min(start + a.step, length)
        windows.append(
            (
                (start - a.context, start - a.context + a.tile),
                (start, stop),
                (a.keep_from, a.keep_from + stop - start),
            )
        )
    return windows


def tile_layout(
    model: object,
    image_shape: tuple,
    tile: int | tuple[int, int] | None = None,
    overlap: int | tuple[int, int] | None = None,
) -> list[Tile]:
    """The tiles :func:`predict_tiled` uses, row by row: enough to draw the paper's Fig. 2.

    Parameters
    ----------
    model : UNet
    image_shape : (H, W), (H, W, C) or (N, H, W, C)
    tile, overlap : see :func:`predict_tiled`.

    Returns
    -------
    list of Tile
        The output windows cover every pixel of the (H, W) image exactly once; each input
        window is ``tile`` pixels and reaches past the image where context is mirrored.
    """
    return _layout(model, tuple(image_shape), tile, overlap, "tile_layout")


def check_tile(model: object, tile: int | tuple[int, int], where: str = "check_tile") -> None:
    """Raise a ValueError naming ``where`` unless ``model`` takes ``tile`` as its input tile,
    with the nearest tiles it would take."""
    for t in pair(tile, "tile", where):
        _axis(model, t, None, where)


def _layout(model: object, shape: tuple, tile: object, overlap: object, where: str) -> list[Tile]:
    hw = _spatial(shape, where)
    rows, cols = (_windows(n, a) for n, a in zip(hw, _plan(model, hw, tile, overlap, where)))
    return [Tile(ri, ci, ro, co, rk, ck) for ri, ro, rk in rows for ci, co, ck in cols]


def tile_input(image: np.ndarray, tile: Tile) -> np.ndarray:
    """The network's input for ``tile``: (H, W, C) -> (th, tw, C), mirrored past the border."""
    h, w = image.shape[:2]
    rows = mirror_indices(*tile.input_rows, h)  # (th,)
    cols = mirror_indices(*tile.input_cols, w)  # (tw,)
    return image[rows[:, None], cols[None, :]]  # (th, tw, C)


def predict_tiled(
    model: object,
    image: np.ndarray,
    tile: int | tuple[int, int] | None = None,
    overlap: int | tuple[int, int] | None = None,
    batch_size: int = 2,
    tta: bool = False,
) -> np.ndarray:
    """Predict an image of any size tile by tile, each tile's context mirrored at the border.

    Parameters
    ----------
    model : UNet
        'valid' (the paper's): the result is exactly what the network gives for the whole
        mirror-padded image, whatever the tile. 'same' (the seed's): tiles overlap and only
        their centres are kept, which hides the zero padding at the tile edges.
    image : (H, W, C) or (N, H, W, C), float
        Any H, W >= 1; C must be the model's input channels.
    tile : int or (rows, cols), optional
        Size of the network's input tile; it must be an input size the model accepts
        (e.g. 572 for :meth:`UNet.paper`, a multiple of 2**depth for 'same'). Default: the
        smallest tile that covers the image at once, but no larger than the model's
        ``input_shape``.
    overlap : int or (rows, cols), optional
        'same' UNets only: pixels two neighbouring tiles share; half of it is dropped on
        each side of a tile. Default: a quarter of the tile, rounded to a multiple of
        2**depth.
    batch_size : int
        Tiles per forward pass; memory grows with ``batch_size * tile**2``.
    tta : bool
        Test-time augmentation, as the paper's ISBI entry averaged over rotated inputs: predict
        the image in its 8 orientations (4 quarter turns, each also mirrored), turn each
        prediction back, and average them. 8 times the work.

    Returns
    -------
    np.ndarray
        (H, W, K) or (N, H, W, K) as the input, K = the model's output channels, in the
        model's dtype.
    """
    where = "predict_tiled"
    x = np.asarray(image)
    if x.ndim not in (3, 4):
        hint = " Add the channel axis: image[..., None]." if x.ndim == 2 else ""
        raise ValueError(
            f"{where}: expected an image (H, W, C) or a batch (N, H, W, C), "
            f"got shape {x.shape}.{hint}"
        )
    if x.dtype.kind != "f":
        raise ValueError(
            f"{where}: expected a float image, got dtype {x.dtype}; convert it first, e.g. "
            f"image.astype(np.float32) / 255 for 8-bit pixels"
        )
    channels = model.config["input_shape"][2]
    if x.shape[-1] != channels:
        raise ValueError(
            f"{where}: the model takes {channels}-channel images, got {x.shape[-1]} channels "
            f"in shape {x.shape} (the last axis is the channels)"
        )
    if int(batch_size) < 1:
        raise ValueError(f"{where}: batch_size must be positive, got {batch_size}")
    if tta:  # the mean over the 8 orientations, each prediction turned back
        total = 0.0
        for turns in range(4):
            for mirror in (False, True):
                xt = np.rot90(x[..., ::-1, :] if mirror else x, turns, axes=(-3, -2))
                pred = predict_tiled(model, np.ascontiguousarray(xt), tile, overlap, batch_size)
                pred = np.rot90(pred, -turns, axes=(-3, -2))  # undo the turn, then the mirror
                total = total + (pred[..., ::-1, :] if mirror else pred)
        return (total / 8).astype(model.dtype)
    batch = x if x.ndim == 4 else x[None]  # (N, H, W, C)
    n, h, w, _ = batch.shape
    tiles = _layout(model, (h, w), tile, overlap, where)
    out = np.empty((n, h, w, model.head[-1].filters), model.dtype)  # (N, H, W, K)
    jobs = [(i, t) for i in range(n) for t in tiles]
    for start in range(0, len(jobs), int(batch_size)):
        chunk = jobs[start : start + int(batch_size)]
        inputs = np.stack([tile_input(batch[i], t) for i, t in chunk])  # (B, th, tw, C)
        preds = model.predict(inputs.astype(model.dtype, copy=False), batch_size=len(chunk))
        for (i, t), pred in zip(chunk, preds):  # pred: (th_out, tw_out, K)
            (r0, r1), (c0, c1) = t.output_rows, t.output_cols
            (k0, k1), (l0, l1) = t.keep_rows, t.keep_cols
            out[i, r0:r1, c0:c1] = pred[k0:k1, l0:l1]
    return out if x.ndim == 4 else out[0]


def sample_tiles(
    model: object,
    images: np.ndarray,
    masks: np.ndarray,
    weights: np.ndarray | None,
    tile: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One random training tile per image, as the paper trains: "one large tile per batch".

    For each image an output window of ``O = model.output_size(tile)`` pixels is placed at a
    random position; the network's input is the ``tile`` x ``tile`` window around it, with
    its context mirrored past the image border exactly as :func:`predict_tiled` does, and
    the target is the mask (and the weight map) under the output window.

    Shapes: images (B, H, W, C), masks (B, H, W, 1), weights (B, H, W) or None ->
    (B, tile, tile, C), (B, O, O, 1), (B, O, O) or None.
    """
    check_tile(model, tile, "fit")  # a tile the network accepts, or a clear error
    t_rows, t_cols = pair(tile, "tile", "fit")
    outs = [model.output_size(t) for t in (t_rows, t_cols)]
    context = [(t - o) // 2 for t, o in zip((t_rows, t_cols), outs)]  # 0 for 'same'
    _, h, w, _ = images.shape
    xs, ys, ws = [], [], []
    for i in range(len(images)):
        r0 = int(rng.integers(max(h - outs[0], 0) + 1))  # top-left of the output window
        c0 = int(rng.integers(max(w - outs[1], 0) + 1))
        t = Tile(
            input_rows=(r0 - context[0], r0 - context[0] + t_rows),
            input_cols=(c0 - context[1], c0 - context[1] + t_cols),
            output_rows=(r0, r0 + outs[0]),
            output_cols=(c0, c0 + outs[1]),
            keep_rows=(0, outs[0]),
            keep_cols=(0, outs[1]),
        )
        rows = mirror_indices(*t.output_rows, h)[:, None]  # (O, 1): the target window,
        cols = mirror_indices(*t.output_cols, w)[None, :]  # mirrored if the image is smaller
        xs.append(tile_input(images[i], t))  # (tile, tile, C)
        ys.append(masks[i][rows, cols])  # (O, O, 1)
        if weights is not None:
            ws.append(weights[i][rows, cols])  # (O, O)
    return np.stack(xs), np.stack(ys), (np.stack(ws) if weights is not None else None)
