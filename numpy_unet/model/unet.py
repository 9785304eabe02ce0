"""The UNet of the seed's Keras code, and the original paper's variant, from the layers.

``forward`` and ``backward`` below are the U diagram written out: down the contracting path
saving each level's output as a skip, across the bottom, up the expanding path joining each
skip back in; and backwards the same way, where each skip's gradient is added to the
gradient coming up from the pooling below it. There is no graph engine in between.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..layers import (
    Concatenate,
    Conv2D,
    Conv2DTranspose,
    Cropping2D,
    Dropout,
    Layer,
    MaxPooling2D,
    UpSampling2D,
)
from ..layers.base import as_float_dtype, count_nonfinite
from ..train import fit as _fit
from . import summary as _summary
from . import weights as _weights
from .speed import SpeedSwitch, check_workers

MAX_PARAMS = 10**9  # 4 GB of float32 weights, 32 times the seed's UNet


def _seed_stream(seed: int | None):
    """A function returning a new seed per call, all drawn from ``seed`` (None: all None)."""
    rng = np.random.default_rng(seed)
    return lambda: None if seed is None else int(rng.integers(2**31))


@dataclass
class DownLevel:
    """One level of the contracting path: two 3x3 convs, maybe dropout, then a 2x2 pool."""

    conv1: Conv2D
    conv2: Conv2D
    drop: Dropout | None
    pool: MaxPooling2D | None  # None at the bottom of the U


@dataclass
class UpLevel:
    """One level of the expanding path: up-sample, merge the skip, two 3x3 convs."""

    upsample: UpSampling2D | None  # the seed's UpSampling2D; None with a transposed conv
    upconv: Conv2D | Conv2DTranspose  # the "up-convolution" that halves the channels
    merge: Concatenate
    conv1: Conv2D
    conv2: Conv2D
    # 'valid' only: centre-crops the skip to the up-sampled size; made by build(), once
    crop: Cropping2D | None = None


class UNet(SpeedSwitch):
    """The seed's Keras UNet by default; :meth:`paper` gives Ronneberger et al.'s network.

    Shapes: x (N, H, W, C) -> y (N, Ho, Wo, num_classes), probabilities (a sigmoid for one
    class, a softmax over the classes otherwise). With 'same' padding Ho, Wo = H, W and H, W
    must be divisible by 2**depth; with 'valid' padding every 3x3 conv loses 2 pixels (572 ->
    388 for the paper's network).

    Parameters
    ----------
    input_shape : (H, W, C)
        The shape the model is built and summarised for; it accepts any other (H, W) its
        depth allows, but C is fixed by the first conv's kernel.
    filters : int
        Filters of the first level; each level below doubles them (64 ... 1024).
    depth : int
        Number of poolings (4 in the seed and the paper).
    dropout : float
        Rate of the Dropout after the second conv of the deepest skip level and of the
        bottom (the seed's ``drop4`` and ``drop5``); 0 leaves them out.
    padding : {'same', 'valid'}
        'valid' is the paper's: unpadded 3x3 convs, each skip centre-cropped.
    upsampling : {'upsample', 'transpose'}
        'upsample': the seed's ``UpSampling2D(2)`` then ``Conv2D(f, 2, relu)``;
        'transpose': the paper's ``Conv2DTranspose(f, 2, strides=2)`` (linear).
    num_classes : int
        1: a 1x1 conv with a sigmoid; more: a 1x1 conv to that many channels and a softmax.
    head_conv : bool
        Keep the seed's extra ``Conv2D(2, 3, relu)`` before the 1x1 output conv.
    dtype : {'float32', 'float64'}
    seed : int, optional
        Seeds every layer's initialisation and every Dropout's masks.
    pretrained_weights : path, optional
        A weights file to load once built, as the seed's ``unet(pretrained_weights=...)``:
        our ``.npz``, Keras's ``.h5``, ``.weights.h5`` or ``.keras``, or an ``np.savez``
        export of ``get_weights()`` (see :meth:`load_weights`). It is not part of
        :meth:`get_config`: the configuration describes the network, not its weights.
    fast : bool
        The speed switch (see :attr:`fast`): True runs :meth:`forward` and :meth:`backward`
        through the model's speed engine (``numpy_unet/fast/``), the same numbers faster;
        False runs every layer's own forward and backward, as the tutorials show them.
    workers : int, optional
        Worker processes the engine may start to run parts of a thin network's batch
        (at most 32 filters) beside this one. None: one per core beyond the first (one on
        two cores); 0: none, never. ``fit`` says in its first line what it uses.

    Notes
    -----
    The UNet builds its layers with ``retain_cache=False`` (each backward frees what its
    forward kept) and, but for the first, ``check_finite=False``: only the first layer checks
    its input for NaN and inf, and :meth:`forward` checks the output once. Building a UNet
    changes nothing outside it and starts nothing; its engine starts helper threads and
    (for thin networks) worker processes at its first pass, and :meth:`close` (or a
    ``with`` block, or the end of the program) stops them. For more speed, see
    :func:`numpy_unet.fast.keep_freed_memory`.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (256, 256, 1),
        filters: int = 64,
        depth: int = 4,
        dropout: float = 0.5,
        padding: str = "same",
        upsampling: str = "upsample",
        num_classes: int = 1,
        head_conv: bool = True,
        dtype: str = "float32",
        seed: int | None = None,
        name: str = "unet",
        pretrained_weights: str | os.PathLike | None = None,
        fast: bool = True,
        workers: int | None = None,
    ) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"UNet: input_shape must be (H, W, C), got {input_shape!r}")
        whole = [v for v in (filters, depth, num_classes) if isinstance(v, bool) or int(v) != v]
        if whole or int(filters) < 1 or int(depth) < 1 or int(num_classes) < 1:
            raise ValueError(
                f"UNet: filters, depth and num_classes must be positive ints, got "
                f"filters={filters!r}, depth={depth!r}, num_classes={num_classes!r}"
            )
        if depth > 12:  # 2**12 = 4096: inputs a multiple of 4096 pixels high and wide
            raise ValueError(f"UNet: depth must be at most 12, got {depth}")
        if int(input_shape[2]) < 1:
            raise ValueError(f"UNet: input_shape needs at least 1 channel, got {input_shape!r}")
        if upsampling not in ("upsample", "transpose"):
            raise ValueError(
                f"UNet: upsampling must be 'upsample' or 'transpose', got {upsampling!r}"
            )
        if padding not in ("same", "valid"):
            raise ValueError(f"UNet: padding must be 'same' or 'valid', got {padding!r}")
        self.config = dict(
            input_shape=tuple(int(v) for v in input_shape),
            filters=int(filters),
            depth=int(depth),
            dropout=float(dropout),
            padding=padding,
            upsampling=upsampling,
            num_classes=int(num_classes),
            head_conv=bool(head_conv),
            dtype=str(as_float_dtype(dtype, "UNet")),
            seed=seed,
            name=name,
        )
        self.name = name
        self.dtype = as_float_dtype(dtype, "UNet")
        self.optimizer = self.loss = None  # set by compile()
        self.metrics: list[str] = []
        next_seed = _seed_stream(seed)
        # every layer frees its activations in backward; only the first checks for NaN
        inside = {"retain_cache": False, "check_finite": False}

        def conv(f: int, k: int, name: str, **kw: object) -> Conv2D:
            seed_conv = {
                "activation": "relu",
                "padding": padding,
                "kernel_initializer": "he_normal",
            }
            kw = seed_conv | inside | kw
            return Conv2D(f, k, dtype=dtype, seed=next_seed(), name=name, **kw)

        def drop(level: int) -> Dropout | None:
            if not dropout:
                return None
            return Dropout(dropout, seed=next_seed(), name=f"drop{level}", **inside)

        f = [int(filters) * 2**level for level in range(depth + 1)]  # 64, 128, ..., 1024
        self.down = []  # levels 1 .. depth; dropout only at the deepest (the seed's drop4)
        for i in range(depth):
            n = i + 1
            self.down.append(
                DownLevel(
                    conv(f[i], 3, f"conv{n}_1", check_finite=n == 1),  # the user's data enters
                    conv(f[i], 3, f"conv{n}_2"),
                    drop(n) if n == depth else None,
                    MaxPooling2D(2, name=f"pool{n}", **inside),
                )
            )
        n = depth + 1  # the bottom of the U (the seed's conv5 and drop5)
        self.bottom = DownLevel(
            conv(f[depth], 3, f"conv{n}_1"), conv(f[depth], 3, f"conv{n}_2"), drop(n), None
        )
        self.up = []  # levels depth+2 .. 2*depth+1 (the seed's 6 .. 9), deepest first
        for i in reversed(range(depth)):
            n = 2 * depth + 1 - i
            if upsampling == "upsample":  # the seed: UpSampling2D, then a 2x2 conv with ReLU
                upsample = UpSampling2D(2, name=f"upsample{n}", **inside)
                upconv = conv(f[i], 2, f"up{n}")
            else:  # the paper: a 2x2 transposed conv, stride 2 (the paper names no
                # activation; ports of its released model add a ReLU; here: none)
                upsample = None
                upconv = Conv2DTranspose(
                    f[i],
                    2,
                    strides=2,
                    kernel_initializer="he_normal",
                    dtype=dtype,
                    seed=next_seed(),
                    name=f"up{n}",
                    **inside,
                )
            merge = Concatenate(axis=-1, name=f"merge{n}", **inside)
            self.up.append(
                UpLevel(
                    upsample,
                    upconv,
                    merge,
                    conv(f[i], 3, f"conv{n}_1"),
                    conv(f[i], 3, f"conv{n}_2"),
                )
            )
        n = 2 * depth + 2
        self.head: list[Layer] = []
        if head_conv:  # the seed's Conv2D(2, 3, relu) before the output
            self.head.append(conv(2, 3, f"conv{n - 1}_3"))
        self.head.append(
            conv(
                num_classes,
                1,
                f"conv{n}",
                padding="same",
                activation="sigmoid" if num_classes == 1 else "softmax",
                kernel_initializer="glorot_uniform",
            )
        )
        self.rows = self.build(self.config["input_shape"])  # every parameter, and the crops
        self._engine = None  # the speed engine, made when the switch is first on
        self._workers = check_workers(workers)
        self.fast = fast  # the speed switch: sets the engine of every conv
        if pretrained_weights is not None:
            self.load_weights(pretrained_weights)

    @classmethod
    def paper(cls, **options: object) -> UNet:
        """Ronneberger et al. 2015: valid convs, cropped skips, 2x2 transposed convs, a 1x1 conv
        to 2 classes and a softmax; 572x572x1 -> 388x388x2, 31,030,658 parameters."""
        defaults = dict(
            input_shape=(572, 572, 1),
            padding="valid",
            upsampling="transpose",
            num_classes=2,
            head_conv=False,
            name="unet_paper",
        )
        return cls(**(defaults | options))

    @classmethod
    def from_keras(cls, path: str | os.PathLike, config: object = None) -> UNet:
        """The UNet a Keras file describes, with its weights: the seed's ``unet_membrane.hdf5``.

        ``path``: Keras's legacy ``.h5``/``.hdf5`` (``model.save``, ``ModelCheckpoint``,
        Keras 2's ``save_weights``), Keras 3's ``.weights.h5`` or ``.keras``, or an
        ``np.savez(path, *keras_model.get_weights())`` export. The configuration is the
        seed-style UNet (padding 'same', UpSampling2D) whose weights have the file's shapes;
        the input shape is the one the file records, else (256, 256, C). Needs h5py for the
        HDF5 and .keras files: ``pip install "numpy-unet[keras]"``.

        A file that records its model (``.keras``, ``model.save("x.h5")``) is compared with
        the UNet built, layer by layer: class, the settings that change the numbers
        (activation, interpolation, padding, strides, kernel and pool sizes, dropout rate,
        axis) and the inputs of each; a difference is refused, naming the layer and both
        values. A file without one (``.weights.h5``, Keras 2's ``save_weights``, a
        ``get_weights()`` export) loads with a warning that its architecture is unverified,
        unless ``config`` gives Keras's ``model.to_json()`` (its text, a path to a file
        holding it, or the parsed dict) to verify it against.
        """
        return _model_from_file(path, "UNet.from_keras", config)

    # -- the network -------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Down the U saving skips, across the bottom, up the U merging them back in."""
        x = self._check_input(x)  # (N, H, W, C)
        if self.fast and not self.engine.inside():
            # the speed engine: this same method on parts of the batch side by side, or with
            # each layer's work in halves (numpy_unet/fast/engine.py); the same numbers
            return self.engine.forward(self, x, training)
        skips = []
        for level in self.down:  # contracting path
            x = level.conv2.forward(level.conv1.forward(x))  # (N, h, w, f)
            if level.drop is not None:
                x = level.drop.forward(x, training)
            skips.append(x)  # this tensor goes both down (pool) and across (skip)
            x = level.pool.forward(x)  # (N, h/2, w/2, f)
        x = self.bottom.conv2.forward(self.bottom.conv1.forward(x))  # (N, h/2, w/2, 2f)
        if self.bottom.drop is not None:
            x = self.bottom.drop.forward(x, training)
        for level in self.up:  # expanding path
            skip = skips.pop()  # the skip of the same depth: last saved, first used
            if self.fast and level.upsample is not None:
                # the speed engine: the two lines below in one, on the small map (the same
                # numbers; numpy_unet/fast/upconv.py)
                x = self.engine.upsample_conv(level.upsample, level.upconv, x)  # (N, 2h, 2w, f)
            else:
                if level.upsample is not None:
                    x = level.upsample.forward(x)  # (N, 2h, 2w, 2f)
                x = level.upconv.forward(x)  # (N, 2h, 2w, f)
            if level.crop is not None:  # 'valid': the skip is larger, cut it to x's size
                skip = level.crop.forward(skip)  # (N, 2h, 2w, f)
            x = level.merge.forward([skip, x])  # (N, 2h, 2w, 2f), skip first
            x = level.conv2.forward(level.conv1.forward(x))  # (N, 2h, 2w, f)
        for layer in self.head:
            x = layer.forward(x)  # (N, H, W, num_classes)
        return self._check_output(x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """The same path in reverse; returns dL/dx and leaves every layer's ``grads`` set."""
        if count_nonfinite(np.asarray(dy)):
            raise ValueError(
                f"UNet '{self.name}': backward() got a dy with NaN or infinite values: the "
                "loss or its gradient has overflowed (check the loss's inputs)"
            )
        if self.fast and not self.engine.inside():  # as in forward: the speed engine
            return self.engine.backward(self, dy)
        # >>> exercise unet_backward: `numpy-unet exercises` cuts out this block
        d = dy
        for layer in reversed(self.head):
            d = layer.backward(d)
        d_skips = []
        for level in reversed(self.up):  # back down the expanding path
            d = level.conv1.backward(level.conv2.backward(d))  # (N, 2h, 2w, 2f)
            d_skip, d = level.merge.backward(d)  # the merge splits the gradient in two
            if level.crop is not None:
                d_skip = level.crop.backward(d_skip)  # zeros where the skip was cropped
            d_skips.append(d_skip)
            if self.fast and level.upsample is not None:  # the speed engine, as in forward
                d = self.engine.upsample_conv_backward(level.upsample, level.upconv, d)
            else:
                d = level.upconv.backward(d)
                if level.upsample is not None:
                    d = level.upsample.backward(d)  # (N, h, w, 2f)
        if self.bottom.drop is not None:
            d = self.bottom.drop.backward(d)
        d = self.bottom.conv1.backward(self.bottom.conv2.backward(d))
        for level in reversed(self.down):  # back up the contracting path
            # the skip's gradient joins the pooling's, where the two paths met
            d = level.pool.backward(d) + d_skips.pop()  # (N, h, w, f)
            if level.drop is not None:
                d = level.drop.backward(d)
            d = level.conv1.backward(level.conv2.backward(d))
        return d  # (N, H, W, C)
        # <<< exercise unet_backward

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(x, training=training)

    # -- shapes ----------------------------------------------------------------------------
    def walk(
        self, input_shape: tuple, visit: Callable | None = None, building: bool = False
    ) -> tuple:
        """Follow the U with shapes only: the one place the U's shape arithmetic is written.

        Calls ``visit(layer, in_shape, out_shape, inbound)`` for every layer in Keras's
        order (``inbound``: the names of the layers feeding it) and returns the output shape
        for an ``(N, H, W, C)`` input. Raises a ValueError where the U cannot take the input:
        a map shrinks to nothing, a pooling would drop an odd row or column, or a skip does
        not line up with its up-sampled map. With ``building`` (from :meth:`build`) it also
        makes each 'valid' level's Cropping2D, fixed from then on: a skip is always larger
        than its up-sampled map by the same number of pixels, whatever the input size.
        """
        visit = visit or (lambda *args: None)

        def through(layer: Layer, shape: tuple, inbound: list[str]) -> tuple:
            out = layer.compute_output_shape(shape)
            if min(out[1:3]) < 1:
                raise ValueError(f"{layer.describe()}: the map shrinks to {out[1]}x{out[2]}")
            visit(layer, shape, out, inbound)
            return out

        shape, last, skips = tuple(input_shape), ["input"], []
        for level in self.down:
            shape = through(level.conv1, shape, last)
            shape = through(level.conv2, shape, [level.conv1.name])
            last = [level.conv2.name]
            if level.drop is not None:
                shape, last = through(level.drop, shape, last), [level.drop.name]
            if shape[1] % 2 or shape[2] % 2:
                raise ValueError(f"{level.pool.describe()}: would drop a row of {shape[1:3]}")
            skips.append((shape, last))
            shape, last = through(level.pool, shape, last), [level.pool.name]
        shape = through(self.bottom.conv1, shape, last)
        shape = through(self.bottom.conv2, shape, [self.bottom.conv1.name])
        last = [self.bottom.conv2.name]
        if self.bottom.drop is not None:
            shape, last = through(self.bottom.drop, shape, last), [self.bottom.drop.name]
        for level in self.up:
            skip_shape, skip_last = skips.pop()
            if level.upsample is not None:
                shape, last = through(level.upsample, shape, last), [level.upsample.name]
            shape, last = through(level.upconv, shape, last), [level.upconv.name]
            if self.config["padding"] == "valid":  # cut the skip to the up-sampled size
                crop = level.crop or Cropping2D(
                    center_crop(skip_shape, shape),
                    name=level.merge.name.replace("merge", "crop"),
                    retain_cache=False,
                    check_finite=False,
                )
                if building:
                    level.crop = crop
                skip_shape, skip_last = through(crop, skip_shape, skip_last), [crop.name]
            shape = through(level.merge, [skip_shape, shape], skip_last + last)
            shape = through(level.conv1, shape, [level.merge.name])
            shape = through(level.conv2, shape, [level.conv1.name])
            last = [level.conv2.name]
        for layer in self.head:
            shape, last = through(layer, shape, last), [layer.name]
        return shape

    def build(self, input_shape: tuple[int, int, int]) -> list[_summary.Row]:
        """Build every layer for (H, W, C) inputs; return the rows of :meth:`summary`."""
        h, w, c = self._check_input_size(input_shape)
        weights = []  # count before creating: a typo in filters must not fill the memory

        def count(layer: Layer, shape: tuple, out: tuple, inbound: list[str]) -> None:
            if isinstance(layer, (Conv2D, Conv2DTranspose)):
                kh, kw = layer.kernel_size
                weights.append((kh * kw * shape[-1] + 1) * layer.filters)

        self.walk((None, h, w, c), count)
        if sum(weights) > MAX_PARAMS:
            raise ValueError(
                f"UNet: {sum(weights):,} parameters (filters={self.config['filters']}, "
                f"depth={self.config['depth']}) is more than the {MAX_PARAMS:,} allowed; the "
                "seed's UNet has 31,031,685"
            )
        rows = [_summary.Row("input", "InputLayer", (None, h, w, c), 0, 0, [])]

        def build_layer(layer: Layer, shape: tuple, out: tuple, inbound: list[str]) -> None:
            if not layer.built:
                layer.build(shape)
            rows.append(_summary.row(layer, shape, out, inbound))

        self.walk((None, h, w, c), build_layer, building=True)
        return rows

    def output_size(self, n: int) -> int | None:
        """The output's length along an axis whose input length is ``n``; None if the U
        cannot take ``n`` (572 -> 388 for the paper's network)."""
        n = int(n)
        if n < 1:
            return None
        known = self.__dict__.setdefault("_output_sizes", {})  # the U's layers never change:
        if n not in known:  # one walk per length, not two per forward
            try:
                known[n] = self.walk((1, n, n, self.config["input_shape"][2]))[1]
            except ValueError:
                known[n] = None
        return known[n]

    def nearest_valid_sizes(self, n: int) -> tuple[int | None, int | None]:
        """The input lengths closest to ``n`` that the U takes, below and above it."""
        n = int(n)
        below = next((m for m in range(n - 1, 0, -1) if self.output_size(m)), None)
        stop = n + 2 * 2 ** self.config["depth"] + 64  # the next valid size is nearer,
        if below is None:  # unless n is below the smallest valid size: look up to it
            stop = max(stop, 2 ** (self.config["depth"] + 1) * 16 + 256)
        above = next((m for m in range(n + 1, stop) if self.output_size(m)), None)
        return below, above

    def _check_input_size(self, hwc: tuple) -> tuple[int, int, int]:
        """(H, W, C) as ints; a ValueError naming the nearest valid sizes if the U cannot
        take them."""
        h, w, c = (int(v) for v in hwc)
        expected_c = self.config["input_shape"][2]
        if c != expected_c:
            raise ValueError(
                f"UNet '{self.name}': built for {expected_c}-channel input, got {c} channels "
                f"(input shape (H, W, C) = {(h, w, c)})"
            )
        depth, padding = self.config["depth"], self.config["padding"]
        for axis, n in (("height", h), ("width", w)):
            if self.output_size(n) is None:
                nearest = " or ".join(str(m) for m in self.nearest_valid_sizes(n) if m)
                if padding == "same":
                    why = (
                        f"with padding='same' it must be divisible by 2**depth = {2**depth}, "
                        "or a pooling drops a row and the skip concatenation fails"
                    )
                else:
                    why = (
                        "with padding='valid' every feature map entering a pooling must have an "
                        f"even size (and stay positive through {depth} poolings)"
                    )
                raise ValueError(
                    f"UNet '{self.name}': input {axis} {n} does not fit a depth-{depth} UNet: "
                    f"{why}. Nearest valid {axis}s: {nearest}."
                )
        return h, w, c

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """(N, Ho, Wo, classes) for an (N, H, W, C) input."""
        n, h, w, c = input_shape
        self._check_input_size((h, w, c))
        return (n, self.output_size(h), self.output_size(w), self.head[-1].filters)

    @property
    def layers(self) -> list[Layer]:
        """Every layer in Keras's order (the order the seed's code creates them)."""
        out: list[Layer] = []
        for level in [*self.down, self.bottom]:
            out += [level.conv1, level.conv2, level.drop, level.pool]
        for level in self.up:
            out += [level.upsample, level.upconv, level.crop, level.merge, level.conv1, level.conv2]
        return [layer for layer in out + self.head if layer is not None]

    def summary(self, print_fn=print) -> None:
        """Print a Keras-style table: layer, output shape, parameters, multiply-adds, inputs."""
        _summary.print_summary(self, self.rows, print_fn)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    # -- parameters and gradients ------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        """``{"conv1_1/kernel": array, ...}``: the layers' own arrays (not copies)."""
        return {f"{lay.name}/{k}": p for lay in self.layers for k, p in lay.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """The gradients of the last ``backward``, keyed like :attr:`params`."""
        return {f"{lay.name}/{k}": g for lay in self.layers for k, g in lay.grads.items()}

    def get_weights(self) -> list[np.ndarray]:
        """Copies of all parameters in Keras's ``model.get_weights()`` order and shapes."""
        return [p.copy() for p in self.params.values()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Load a list shaped like :meth:`get_weights` (e.g. from the seed's Keras model)."""
        if not isinstance(weights, (list, tuple)):
            raise TypeError(
                f"UNet.set_weights: weights must be a list of arrays, as get_weights() "
                f"returns, got {type(weights).__name__}"
            )
        _weights.set_weights(self, weights)

    def get_gradients(self) -> list[np.ndarray]:
        """The gradients of the last ``backward``, in :meth:`get_weights` order."""
        return _weights.get_gradients(self)

    def save_weights(self, path: str | os.PathLike, overwrite: bool = False) -> str:
        """Write the weights, atomically; returns the path. ``x.npz``: the weights and the
        configuration (for :func:`load_model`); ``x.h5``: Keras's legacy HDF5 layout, which
        ``keras_model.load_weights("x.h5")`` loads into the seed's Keras model (needs h5py)."""
        folder = Path(path).parent
        if not folder.is_dir():
            raise FileNotFoundError(f"UNet.save_weights: the folder {folder} does not exist")
        return _weights.save_weights(self, path, overwrite=overwrite)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load weights: our ``.npz``, Keras's ``.h5``, ``.weights.h5`` or ``.keras``, or an
        ``np.savez`` export of ``get_weights()`` (arr_0 ... arr_47). All or nothing: a file
        of another network is refused and the model left unchanged."""
        _weights.load_weights(self, path)

    def get_config(self) -> dict:
        return dict(self.config)

    def astype(self, dtype: str) -> UNet:
        """A copy with every parameter cast to ``dtype`` (float64 for gradient checks)."""
        config = self.get_config() | {"dtype": str(np.dtype(dtype))}
        twin = UNet(**config, fast=self.fast, workers=self.workers)
        twin.set_weights(self.get_weights())
        for mine, theirs in zip(self.layers, twin.layers):
            if isinstance(mine, Dropout):  # the copy draws the same masks from here on
                theirs.rng.bit_generator.state = mine.rng.bit_generator.state
        return twin

    # -- training ----------------------------------------------------------------------------
    def compile(
        self,
        optimizer: str | object = "adam",
        loss: str | object = "binary_crossentropy",
        metrics: list[str] | tuple[str, ...] = ("accuracy", "dice", "iou"),
        learning_rate: float | None = None,
    ) -> None:
        """Choose the optimizer ('adam', 'sgd' or an instance), the loss and the metrics.

        The seed: ``model.compile(optimizer=Adam(1e-4), loss="binary_crossentropy",
        metrics=["accuracy"])``. Metrics: 'accuracy' (pixel accuracy), 'dice', 'iou'.
        """
        _fit.compile_model(self, optimizer, loss, metrics, learning_rate)

    def fit(self, x: np.ndarray, y: np.ndarray, **options: object) -> _fit.History:
        """Train on images ``x`` (N, H, W, C) and masks ``y`` (N, Ho, Wo, 1) in {0, 1}.

        Options (Keras's names where Keras has them): ``batch_size`` (2), ``epochs`` (1),
        ``steps_per_epoch`` (one pass over x by default), ``validation_data`` or
        ``validation_split``, ``augment`` (an ``Augmenter``, ``ElasticDeformation`` or a
        ``Compose`` of them), ``sample_weight`` ((N, Ho, Wo) per-pixel weights for a weighted
        cross-entropy, e.g. the paper's weight maps), ``tile`` (train on one random tile of
        this input size per image, its context mirrored at the border; x and y are then whole
        images, and validation predicts them tile by tile), ``shuffle``, ``seed`` (batch
        order and tile positions), ``batches`` (a function of the step number k giving the
        k-th batch (xb, yb) of the run, which then replaces fit's own order: the seed's
        Keras stream, :class:`numpy_unet.train.seed.SeedStream`), ``checkpoint_dir`` (best
        and last weights, optimizer and random states, written atomically),
        ``checkpoint_every`` (steps), ``resume`` (continue the run in checkpoint_dir exactly
        where it stopped) and ``verbose`` (0, 1 or 2). Ctrl-C with a checkpoint_dir finishes
        the current step, saves, and raises KeyboardInterrupt.
        Returns a ``History``; ``history.history`` maps "loss", "val_dice", ... to lists.
        """
        return _fit.fit(self, x, y, **options)

    # -- inference ---------------------------------------------------------------------------
    def predict(self, x: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Forward in inference mode (no dropout), ``batch_size`` images at a time."""
        x = self._check_input(x)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"UNet.predict: batch_size must be a positive int, got {batch_size!r}")
        if len(x) == 0:  # no images: no predictions, of the right shape
            return np.zeros(self.compute_output_shape(x.shape), self.dtype)
        outputs = [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        self.clear_cache()  # inference keeps nothing for a backward pass
        return np.concatenate(outputs)

    def clear_cache(self) -> None:
        """Forget what the last forward kept for backward, in every layer and the engine."""
        for layer in self.layers:
            layer.clear_cache()
        if self._engine is not None:
            self._engine.clear()

    def _check_input(self, x: object) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4:
            hint = " Add the batch axis: x[None] for one image." if x.ndim == 3 else ""
            raise ValueError(
                f"UNet '{self.name}': expected a 4-D input (batch, height, width, channels), "
                f"got shape {x.shape}.{hint}"
            )
        self._check_input_size(x.shape[1:])
        return x

    def _check_output(self, y: np.ndarray) -> np.ndarray:
        """A NaN or inf anywhere inside reaches the output: one check here for them all."""
        bad = count_nonfinite(y)
        if not bad:
            return y
        raise ValueError(
            f"UNet '{self.name}': the output has {bad} NaN or infinite value(s) out of {y.size} "
            "although the input is finite: the weights have diverged (for instance a learning "
            "rate too high for this model) or a layer received extreme values"
        )

    def __repr__(self) -> str:
        c = self.config
        return (
            f"<UNet '{self.name}': filters {c['filters']}, depth {c['depth']}, "
            f"{c['padding']}, {c['upsampling']}, {c['num_classes']} class(es), "
            f"{self.count_params():,} parameters, {c['dtype']}>"
        )


def center_crop(skip_shape: tuple, up_shape: tuple) -> tuple[tuple[int, int], tuple[int, int]]:
    """Cropping ((top, bottom), (left, right)) that centres ``skip`` on the up-sampled map."""
    dh, dw = skip_shape[1] - up_shape[1], skip_shape[2] - up_shape[2]
    return (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)


def load_model(path: str | os.PathLike) -> UNet:
    """Build the UNet a weights file describes and load its weights.

    ``path``: a ``save_weights`` file (``.npz`` with its configuration), a Keras file
    (``.h5``, ``.weights.h5``, ``.keras``) or an ``np.savez`` export of ``get_weights()``;
    for those two the configuration is the seed-style UNet their shapes describe (see
    :meth:`UNet.from_keras`). The file's arrays are checked against the configuration (how
    many, which shapes) before the model is built, so a small file claiming a huge network is
    refused at once.
    """
    return _model_from_file(path, "load_model")


def _model_from_file(path: str | os.PathLike, where: str, keras_config: object = None) -> UNet:
    config, arrays = _weights.read_model(path, where)
    expected = expected_shapes(config, path)
    found = [a.shape for a in arrays]
    if found != expected:
        k = next((k for k, (a, b) in enumerate(zip(found, expected)) if a != b), None)
        detail = (
            f"{len(found)} arrays where it needs {len(expected)}"
            if len(found) != len(expected)
            else f"array {k} has shape {found[k]}, its configuration needs {expected[k]}"
        )
        raise ValueError(f"{where}: {path} does not match its own configuration: {detail}")
    model = UNet(**config)
    _verify_architecture(model, path, where, keras_config)
    try:
        model.set_weights(arrays)
    except ValueError as err:  # NaN or inf in the file: name it
        reason = str(err).removeprefix("UNet.set_weights: ")
        raise ValueError(f"{where}: {path}: {reason}") from None
    return model


def _verify_architecture(model: UNet, path: object, where: str, keras_config: object) -> None:
    """Compare a Keras file's network (or the given config's) with ``model``; warn when the
    file holds only weights and nothing says what network they belong to."""
    from . import keras_files

    keras_file = keras_files.is_keras_file(Path(path))
    layers = keras_files.keras_layers(path, where) if keras_file else None
    given = keras_files.layers_of_json(keras_config, where) if keras_config is not None else None
    for source, found in (("its model config", layers), ("the config given", given)):
        if not found:  # none, or this package's own .h5
            continue
        try:
            keras_files.verify_layers(found, model)
        except keras_files.NotUNetError as err:
            raise ValueError(
                f"{where}: {path} is not the seed-style UNet its weights describe ({source}): {err}"
            ) from None
    if layers is None and given is None and (keras_file or Path(path).suffix == ".npz"):
        if keras_file or not _weights.records_config(path):
            warnings.warn(
                f"{where}: {path} holds weights but no model config, so its architecture "
                "(pooling, up-sampling interpolation, activations, the order of each skip's "
                "concatenation) cannot be verified: it loads as the seed's UNet. Pass "
                "config=... (Keras's model.to_json()) to check it.",
                UserWarning,
                stacklevel=3,
            )


def expected_shapes(config: dict, path: object = "") -> list[tuple]:
    """The weight shapes of the UNet ``config`` describes, without building it: every
    dimension grows linearly with ``filters``, so two tiny twins (1 and 2 filters) give them."""
    try:
        small = [UNet(**(config | {"filters": f, "name": "twin"})) for f in (1, 2)]
    except (TypeError, ValueError) as err:
        raise ValueError(f"load_model: {path}: its configuration does not build: {err}") from None
    f = config["filters"]
    one, two = ([w.shape for w in m.get_weights()] for m in small)
    return [tuple(a + (b - a) * (f - 1) for a, b in zip(s1, s2)) for s1, s2 in zip(one, two)]
