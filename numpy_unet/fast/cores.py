"""The speed engine's cores inside this process: each layer's work in two halves, side by side.

A wide network (the seed's, 64 filters) or a batch that is not split runs its layers one
after the other, and the engine cuts each layer's products in two, one half per core: the
rows of a shifted sum (``conv.shifted_sum``), the tile rows of Winograd's products
(``winograd.products``), the rows or filters of a kernel gradient (``conv.kernel_grad``).
BLAS runs on one thread meanwhile.

Why not BLAS's own threads: they share out every product and wait on each other inside it,
while two halves meet once per layer. ``benchmarks/RESULTS.md`` has the measurements.

A :class:`Cores` belongs to one engine. Its helper threads start at the first halves and
stop at :meth:`Cores.close`; they are daemon threads, so they never hold up the end of the
program, and they are idle whenever no call of the engine is running.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from typing import Any

import numpy as np

from .rules import Blas, Rules


def _serve(tasks: queue.SimpleQueue) -> None:
    """A helper thread: run (future, function) pairs until it gets None."""
    while True:
        item = tasks.get()
        if item is None:
            return
        future, function = item
        try:
            future.set_result(function())
        except BaseException as error:  # noqa: BLE001 - raised again by the caller
            future.set_exception(error)


def wait_all(futures: list[Future]) -> None:
    """Wait until every future is done, even through Ctrl-C: a half that is still running
    writes into the caller's arrays. A KeyboardInterrupt is raised once all are done."""
    stop = None
    while True:
        try:
            wait(futures)
            break
        except KeyboardInterrupt as error:
            stop = error
    if stop is not None:
        raise stop


class Cores:
    """Helper threads and the halves of a layer, for one engine.

    Parameters
    ----------
    rules : Rules
        ``rules.cores`` is how many tasks run side by side (1: no halves at all).
    blas : Blas
        Set to one thread while a pass runs in halves, and restored after.
    """

    def __init__(self, rules: Rules, blas: Blas) -> None:
        self.rules, self.blas = rules, blas
        self._local = threading.local()  # .halves: is this thread running a pass in halves?
        self._queues: list[queue.SimpleQueue] = []

    def halving(self) -> bool:
        """Should the kernels cut this layer's work in two halves (:meth:`run`)? True in the
        thread running a pass inside :meth:`halves`, False inside a half."""
        return getattr(self._local, "halves", False)

    def one_thread(self) -> bool:
        """Does BLAS run on one thread now (in halves, or in a part of a split batch)? The
        kernels' block sizes depend on it."""
        return self.blas.threads() == 1

    @contextmanager
    def halves(self) -> Iterator[None]:
        """Meanwhile, in this thread, each layer's work in two halves, BLAS on one thread;
        then as before. Nothing changes where the rules allow one core."""
        before = self.halving()
        self._local.halves = self.rules.cores > 1
        try:
            with self.blas.one_thread():
                yield
        finally:
            self._local.halves = before

    def run(self, tasks: list[Callable[[], Any]]) -> list[Any]:
        """Call the tasks side by side, the first on this thread, and return their results.
        Inside a task :meth:`halving` is False: a half is not cut in halves again. The first
        error is raised once every task has finished."""
        while len(self._queues) < len(tasks) - 1:
            tasks_queue: queue.SimpleQueue = queue.SimpleQueue()
            name = f"numpy-unet-half-{len(self._queues) + 1}"
            threading.Thread(target=_serve, args=(tasks_queue,), name=name, daemon=True).start()
            self._queues.append(tasks_queue)
        errors = np.geterr()  # the caller's floating-point error handling, in every half

        def within(task: Callable[[], Any]) -> Callable[[], Any]:
            def call() -> Any:
                with np.errstate(**errors):
                    return task()

            return call

        futures: list[Future] = []
        for task, tasks_queue in zip(tasks[1:], self._queues):
            futures.append(Future())
            tasks_queue.put((futures[-1], within(task)))
        before = self.halving()
        self._local.halves = False
        first: Future = Future()
        try:
            first.set_result(tasks[0]())
        except BaseException as error:  # noqa: BLE001 - raised below, once all have finished
            first.set_exception(error)
        finally:
            self._local.halves = before
            wait_all(futures)
        return [f.result() for f in [first, *futures]]

    def close(self) -> None:
        """Stop the helper threads (each finishes nothing: they are idle between calls)."""
        while self._queues:
            self._queues.pop().put(None)
