"""A UNet's speed switch: ``fast``, ``workers``, ``readable()``, ``close()``, and the engine
they govern (``numpy_unet/fast/``).

``UNet`` inherits these from :class:`SpeedSwitch`, kept here so that ``unet.py`` is the U.
While the switch is on, ``UNet.forward`` and ``UNet.backward`` hand the pass to the engine
(an ``if`` at the top of each, and one where an up-sampling meets its conv) and every
``Conv2D`` holds the engine (its one ``if``); off, every layer runs its own code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..layers import Conv2D
from ..tables import format_table

if TYPE_CHECKING:
    from ..fast import Engine


class SpeedSwitch:
    """The speed switch of a model with ``layers`` and a ``config`` (a UNet's)."""

    _engine: Engine | None = None
    _fast: bool = False
    _workers: int | None = None

    @property
    def fast(self) -> bool:
        """The speed switch. True: :meth:`forward` and :meth:`backward` run through this
        model's speed engine (:attr:`engine`), which takes every fast path there is and
        gives the same numbers. False: every layer's own forward and backward (im2col,
        ``UpSampling2D``, ``ReLU``, the whole batch at once): the code the tutorials show."""
        return self._fast

    @fast.setter
    def fast(self, on: bool) -> None:
        if on and self._engine is None:
            engine = engine_class()  # None in a copy without the engine (the course kit's)
            self._engine = None if engine is None else engine(workers=self._workers)
        self._fast = bool(on) and self._engine is not None
        for layer in self.layers:
            if isinstance(layer, Conv2D):  # its one door to the engine
                layer.engine = self._engine if self._fast else None

    @property
    def engine(self) -> Engine | None:
        """The speed engine this model owns (``numpy_unet.fast.Engine``); None before the
        switch was first on. Assign one (say, with rules of your own) to use it instead."""
        return self._engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        if self._engine is not None and self._engine is not engine:
            self._engine.close()
        self._engine, self._workers = engine, engine.workers
        self.fast = True

    @property
    def workers(self) -> int | None:
        """Worker processes the engine may start (None: one per extra core; 0: none)."""
        return self._workers

    @workers.setter
    def workers(self, value: int | None) -> None:
        self._workers = check_workers(value)
        if self._engine is not None:
            self._engine.workers = self._workers  # closes what the old setting started

    @contextlib.contextmanager
    def readable(self) -> Iterator[SpeedSwitch]:
        """``with model.readable():`` every layer's own forward and backward meanwhile
        (:attr:`fast` off), then the switch as it was."""
        before = self.fast
        self.fast = False
        try:
            yield self
        finally:
            self.fast = before

    def close(self) -> None:
        """Stop the engine's helper threads and worker processes now (the end of the
        program does too); the next pass starts what it needs again."""
        if self._engine is not None:
            self._engine.close()

    def __enter__(self) -> SpeedSwitch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def engine_headline(self, batch_size: int) -> str:
        """One line (``fit`` prints it first): how a batch of this size runs, and whether
        the engine starts worker processes for it."""
        if self.fast:
            return self.engine.headline(self, batch_size)
        why = "model.fast is False" if engine_class() else "this copy has no numpy_unet/fast"
        return f"speed engine: off ({why}); every layer's own forward and backward"

    def describe_engine(self, batch_size: int = 1, print_fn: Callable[[str], None] = print) -> None:
        """Print how a batch of ``batch_size`` images of the built input shape runs: how the
        engine uses the cores, and which code computes each layer."""
        print_fn(self.engine_headline(batch_size))
        if not self.fast:
            return
        shape = (batch_size, *self.config["input_shape"])
        rows = [("layer", "computed by")] + self.engine.plan(self, shape)
        for line in format_table(rows):
            print_fn(line)


def engine_class() -> type | None:
    """The speed engine's class, or None where the package has no ``fast`` part (a course
    copy leaves it out: it would compute the gradients of the exercises)."""
    try:
        from ..fast import Engine
    except ModuleNotFoundError as err:
        if err.name == f"{__package__.rsplit('.', 1)[0]}.fast":
            return None
        raise
    return Engine


def check_workers(value: object) -> int | None:
    """``workers`` must be None or an int >= 0."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0
    ):
        raise ValueError(f"UNet: workers must be None or an int >= 0, got {value!r}")
    return None if value is None else int(value)
