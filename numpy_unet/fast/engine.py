"""The speed engine of one model: the object that holds and runs every fast path.

A UNet whose switch is on (``UNet(fast=True)``, the default) owns one :class:`Engine`, and
its layers reach it through two doors only, each an ``if`` in the readable code:

- ``Conv2D.forward``/``backward``: ``if self.engine is not None and
  self.engine.runs_conv(...)``: the convolution by a faster algorithm (:meth:`Engine.conv`),
  a ReLU taken inside its products and handed to the ReLU layer (``ReLU.keep``), whose
  own backward then runs;
- ``UNet.forward``/``backward``: ``if self.fast``: the whole pass through
  :meth:`Engine.forward` (the batch split over the cores, or each layer in halves), and
  each ``UpSampling2D`` with its 2x2 conv in one (:meth:`Engine.upsample_conv`).

Everything the engine holds lives in this object and goes with it: helper threads
(``cores.py``), worker processes (``workers.py``), the machine's rules (``rules.py``).
None of it exists before the first pass that needs it; :meth:`Engine.close` (or the
model's ``close()``, a ``with`` block, the end of the program, or the model being
garbage-collected) lets it all go. BLAS's thread count is changed only during a pass and
restored after it. In a process forked from the owner, the engine drops what it inherited
without touching it and starts its own when needed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..layers import Conv2D, Layer, ReLU
from . import conv, pairs, winograd
from . import upconv as phases
from .cores import Cores
from .rules import Blas, Rules
from .split import Split
from .workers import can_start

MODULES = {"shifted": conv, "pairs": pairs, "winograd": winograd}
ALGORITHMS = ("im2col", *MODULES)
NAMES = {
    "im2col": "im2col, one product (layers/conv2d.py)",
    "shifted": "shifted products (fast/conv.py)",
    "pairs": "shifted products of pixel pairs (fast/pairs.py)",
    "winograd": "Winograd F(2x2, 3x3) (fast/winograd.py)",
}


@dataclass
class Runtime:
    """What an engine holds while it runs: made at its first pass, closed by ``close``."""

    blas: Blas
    rules: Rules
    cores: Cores
    split: Split
    pid: int  # the process that made it: a forked child must not close the parent's

    def close(self) -> None:
        if os.getpid() == self.pid:
            self.split.close()
            self.cores.close()


class Engine:
    """The speed engine of one model.

    Parameters
    ----------
    workers : int, optional
        Worker processes that run parts of a thin network's batch, beside this process.
        None (the default): one per core beyond the first, where processes can start (one
        on two cores); 0: none (a batch then runs undivided, each layer in halves where the
        rules say so).
    rules : Rules, optional
        The size thresholds; by default read from this machine at the first pass.
    algorithm : {None, 'im2col', 'shifted', 'pairs', 'winograd'}
        None: each conv's algorithm by the rules. Otherwise that one wherever the kernel
        allows (Winograd: 3x3 only; pairs: at least 2 wide; else shifted products), for
        tests and benchmarks.
    """

    def __init__(
        self, workers: int | None = None, rules: Rules | None = None, algorithm: str | None = None
    ) -> None:
        if algorithm not in (None, *ALGORITHMS):
            raise ValueError(
                f"Engine: algorithm must be None or one of {ALGORITHMS}, got {algorithm!r}"
            )
        self._workers = check_workers(workers, "Engine")
        self._rules = rules
        self.algorithm = algorithm
        self._runtime: Runtime | None = None
        self._finalizer: weakref.finalize | None = None
        self._fresh()

    def _fresh(self) -> None:
        """The per-process state: a lock, thread flags, the fused up-convs' inputs."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._local = threading.local()  # .inside: this thread runs a pass of the engine
        self._fused: dict[int, np.ndarray] = {}  # id(up-conv) -> its small input, for backward
        self._mode: str | None = None  # how the last forward ran: split, halves or plain
        self._chosen: dict[tuple, str] = {}  # choose()'s answers: a pass asks each conv twice

    # -- life cycle -----------------------------------------------------------------------
    @property
    def workers(self) -> int | None:
        return self._workers

    @workers.setter
    def workers(self, value: int | None) -> None:
        value = check_workers(value, "Engine")
        if value != self._workers:
            self.close()  # the next pass starts what the new setting asks for
            self._workers = value

    def runtime(self) -> Runtime:
        """The engine's threads, workers and rules, made at the first call."""
        if self._pid != os.getpid():  # forked: what we hold is the parent's
            if self._runtime is not None:
                self._runtime.split.forget()
                self._finalizer.detach()
            self._runtime = None
            self._fresh()
        if self._runtime is None:
            blas = Blas()
            rules = self._rules or Rules.for_this_machine(blas)
            count = self._workers if self._workers is not None else max(0, rules.cores - 1)
            count = count if can_start() else 0
            self._runtime = Runtime(blas, rules, Cores(rules, blas), Split(count), os.getpid())
            self._finalizer = weakref.finalize(self, self._runtime.close)  # also at exit
        return self._runtime

    def close(self) -> None:
        """Stop the helper threads and the worker processes. The engine stays usable: the
        next pass starts what it needs again."""
        if self._runtime is not None:
            self._finalizer()  # runs Runtime.close once
            self._runtime = None
        self._fused.clear()
        self._chosen.clear()
        self._mode = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        """A pickled engine keeps its settings only (a model sent to another process)."""
        return {"workers": self._workers, "rules": self._rules, "algorithm": self.algorithm}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    # -- whole passes of a model ----------------------------------------------------------
    def inside(self) -> bool:
        """Is this thread inside one of the engine's passes? The model's own ``forward``
        and ``backward`` then run the readable U; the engine is not asked again."""
        return getattr(self._local, "inside", False)

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        self._local.inside = True
        try:
            yield
        finally:
            self._local.inside = False

    def splits(self, model: object, n: int) -> bool:
        """Is a batch of n images of this model split over the cores (thin networks)?"""
        runtime = self.runtime()
        thin = model.config["filters"] <= runtime.rules.split_filters
        return runtime.split.count > 0 and n >= 2 and thin

    def halves_pay(self, model: object, shape: tuple) -> bool:
        """Is a batch of this shape (N, H, W, C) that is not split run with each layer in
        halves? A wide network's always; a thin one's from ``rules.halves_pixels`` on."""
        rules = self.runtime().rules
        n, h, w = shape[:3]
        wide = model.config["filters"] > rules.split_filters
        return rules.cores > 1 and (wide or n * h * w >= rules.halves_pixels)

    def forward(self, model: object, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``model.forward(x, training)``: the batch in parts side by side, or each layer in
        halves, or neither; the same numbers as the readable path."""
        runtime = self.runtime()
        with self._lock, self._running():
            self._mode = None
            if self.splits(model, len(x)):
                y = runtime.split.forward(model, x, training, runtime.rules, runtime.blas)
                if y is not None:
                    self._mode = "split"
                    return y
            self._mode = "halves" if self.halves_pay(model, x.shape) else "plain"
            halves = runtime.cores.halves() if self._mode == "halves" else contextlib.nullcontext()
            with halves:
                return model.forward(x, training)

    def backward(self, model: object, dy: np.ndarray) -> np.ndarray:
        """``model.backward(dy)``, the way the last forward ran."""
        runtime = self.runtime()
        with self._lock, self._running():
            if self._mode == "split" and runtime.split.pending is not None:
                return runtime.split.backward(model, dy, runtime.blas)
            halves = runtime.cores.halves() if self._mode == "halves" else contextlib.nullcontext()
            with halves:
                return model.backward(dy)

    def clear(self) -> None:
        """Forget what the last forward kept (the workers' activations, the fused inputs)."""
        self._fused.clear()
        if self._runtime is not None and self._pid == os.getpid():
            self._runtime.split.clear()

    # -- convolutions -----------------------------------------------------------------------
    def choose(
        self, c: int, f: int, kernel_size: tuple, ho: int, wo: int, n: int, halving: bool, one: bool
    ) -> str:
        """The algorithm for a conv of C -> F channels and n outputs of Ho x Wo, with the
        layer in halves or not and BLAS on one thread or not: a key of :data:`NAMES`."""
        if self.algorithm is not None:
            if self.algorithm == "winograd" and tuple(kernel_size) != (3, 3):
                return "shifted"
            if self.algorithm == "pairs" and kernel_size[1] < 2:
                return "shifted"
            return self.algorithm
        if winograd.pays_off(c, f, kernel_size, n * ho * wo, one):
            return "winograd"
        if not conv.pays_off(c, f, ho, wo, kernel_size, halving):
            return "im2col"
        return "pairs" if pairs.pays_off(c, f, kernel_size[1]) else "shifted"

    def _algorithm(self, xp_shape: tuple, kernel_shape: tuple) -> str:
        cores = self.runtime().cores
        key = (xp_shape, kernel_shape, cores.halving(), cores.one_thread())
        if key not in self._chosen:
            if len(self._chosen) > 1000:  # many sizes (say, tiles of every size): start over
                self._chosen.clear()
            n, hp, wp, c = xp_shape
            kh, kw, _, f = kernel_shape
            ho, wo = hp - kh + 1, wp - kw + 1
            self._chosen[key] = self.choose(c, f, (kh, kw), ho, wo, n, *key[2:])
        return self._chosen[key]

    def runs_conv(self, xp_shape: tuple, kernel_shape: tuple) -> bool:
        """Does the engine have a faster way than im2col for a conv of the padded input's
        shape (N, Hp, Wp, C) and the kernel's (kh, kw, C, F)?"""
        return self._algorithm(xp_shape, kernel_shape) != "im2col"

    def conv(
        self,
        xp: np.ndarray,
        kernel: np.ndarray,
        bias: np.ndarray | None,
        activation: Layer | None = None,
    ) -> np.ndarray:
        """``Conv2D``'s y (N, Ho, Wo, F), faster: ``activation(z)``, z the 'valid'
        convolution of the padded input ``xp`` (N, Hp, Wp, C) with ``kernel`` (kh, kw, C, F)
        plus ``bias``. A ReLU is taken inside the products, block by block, and handed to
        the activation layer (``ReLU.keep``); any other activation runs its own forward."""
        module = MODULES[self._algorithm(xp.shape, kernel.shape)]
        kh, kw = kernel.shape[:2]
        ho, wo = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
        relu = isinstance(activation, ReLU)
        z = module.forward(xp, kernel, ho, wo, self.runtime().cores, bias, relu)
        return activated(z, activation)

    def conv_backward(
        self, xp: np.ndarray, kernel: np.ndarray, dz: np.ndarray, use_bias: bool
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(dxp, grads) of :meth:`conv` for dz (N, Ho, Wo, F): the padded input's gradient
        and ``{"kernel": dK, "bias": db}`` (no bias without ``use_bias``)."""
        module = MODULES[self._algorithm(xp.shape, kernel.shape)]
        dxp, dkernel = module.backward(xp, kernel, dz, self.runtime().cores)
        grads = {"kernel": dkernel}
        if use_bias:
            grads["bias"] = conv.bias_grad(dz)  # dz summed over all axes but the last
        return dxp, grads

    # -- the seed's up-sampling and up-conv in one --------------------------------------------
    @staticmethod
    def fuses(upsample: object, upconv: object) -> bool:
        """Is this pair the seed's: ``UpSampling2D(2)``, then a 2x2 'same' conv?"""
        return (
            getattr(upsample, "size", None) == (2, 2)
            and getattr(upconv, "kernel_size", None) == (2, 2)
            and getattr(upconv, "padding", None) == "same"
            and hasattr(upconv, "filters")
        )

    def upsample_conv(self, upsample: object, upconv: object, x: np.ndarray) -> np.ndarray:
        """``upconv.forward(upsample.forward(x))`` for the seed's pair, (N, h, w, C) ->
        (N, 2h, 2w, F), computed on the small map (``fast/upconv.py``), a ReLU inside the
        products as in :meth:`conv`. Any other pair runs its two layers."""
        if not self.fuses(upsample, upconv):
            return upconv.forward(upsample.forward(x))
        kernel, bias = upconv.params["kernel"], upconv.params.get("bias")
        x = x.astype(upconv.dtype, copy=False)
        relu = isinstance(upconv.activation, ReLU)
        z = phases.forward(x, kernel, self.runtime().cores, bias, relu)  # (N, 2h, 2w, F)
        self._fused[id(upconv)] = x  # (N, h, w, C), for backward
        return activated(z, upconv.activation)

    def upsample_conv_backward(
        self, upsample: object, upconv: object, dy: np.ndarray
    ) -> np.ndarray:
        """dL/dx (N, h, w, C) of :meth:`upsample_conv`; sets ``upconv.grads``."""
        if id(upconv) not in self._fused:
            if not self.fuses(upsample, upconv):
                return upsample.backward(upconv.backward(dy))
            raise RuntimeError(
                f"{upconv.describe()}: backward() with the speed engine on, but its forward "
                "did not run through the engine (run forward() again)"
            )
        x = self._fused[id(upconv)] if upconv.retain_cache else self._fused.pop(id(upconv))
        dz = dy if upconv.activation is None else upconv.activation.backward(dy)
        dz = np.asarray(dz).astype(upconv.dtype, copy=False)
        dx, dkernel, dbias = phases.backward(x, upconv.params["kernel"], dz, self.runtime().cores)
        upconv.grads = {"kernel": dkernel}
        if upconv.use_bias:
            upconv.grads["bias"] = dbias
        return dx

    # -- telling what runs -------------------------------------------------------------------
    def headline(self, model: object, n: int) -> str:
        """One line: how a batch of n images of this model runs."""
        runtime = self.runtime()
        if self.splits(model, n):
            count = min(runtime.split.count, n - 1)
            where = "a worker process" if count == 1 else f"{count} worker processes"
            return (
                f"speed engine: on; a batch of {n} runs in {count + 1} parts side by side, "
                f"the parts after the first in {where} (UNet(workers=0): none)"
            )
        shape = (n, *model.config["input_shape"])
        if self.halves_pay(model, shape):
            return f"speed engine: on; each layer's work in halves on {runtime.rules.cores} cores"
        return "speed engine: on; one pass, BLAS's own threads"

    def plan(self, model: object, shape: tuple) -> list[tuple[str, str]]:
        """(layer, what runs it) for every layer of ``model`` on inputs of ``shape`` (N, H,
        W, C), in the mode a batch of that shape runs in."""
        runtime = self.runtime()
        n = shape[0]
        split = self.splits(model, n)
        if split:
            n = -(-n // (min(runtime.split.count, n - 1) + 1))  # the largest part
        halving = not split and self.halves_pay(model, shape)
        one = split or halving or runtime.blas.threads() == 1
        fused = {}
        for level in getattr(model, "up", []):
            if level.upsample is not None and self.fuses(level.upsample, level.upconv):
                fused[level.upsample.name] = level.upconv.name
        rows = []

        def visit(layer: object, in_shape: tuple, out_shape: tuple, inbound: list) -> None:
            if layer.name in fused:
                rows.append((layer.name, f"in one with {fused[layer.name]} (fast/upconv.py)"))
            elif layer.name in fused.values():
                rows.append((layer.name, "up-sampling and 2x2 conv in one (fast/upconv.py)"))
            elif isinstance(layer, Conv2D):
                kh, kw, c, f = layer.params["kernel"].shape
                ho, wo = out_shape[1:3]
                rows.append(
                    (layer.name, NAMES[self.choose(c, f, (kh, kw), ho, wo, n, halving, one)])
                )
            else:
                rows.append((layer.name, f"{type(layer).__name__}'s own forward and backward"))

        model.walk((n, *shape[1:]), visit)
        return rows


def activated(z: np.ndarray, activation: Layer | None) -> np.ndarray:
    """y from the engine's z: a ReLU was taken inside the products, so its layer only keeps
    y (``ReLU.keep``); any other activation runs its forward."""
    if activation is None:
        return z
    return activation.keep(z) if isinstance(activation, ReLU) else activation.forward(z)


def check_workers(value: object, where: str) -> int | None:
    """``workers`` must be None or an int >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{where}: workers must be None or an int >= 0, got {value!r}")
    return int(value)
