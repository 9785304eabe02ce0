"""The speed engine's worker processes: the parts of a split batch (``parallel.py``) that do
not run in this process run in another Python process, not in a thread.

Why: every NumPy call long enough to let go of Python's lock takes it back after, and two
threads of one process doing so some 800 times per forward each wait for each other. Measured
on the 2-core machine here (one core's part, BLAS on one thread): the demo's training step
of two images took 53-57 ms alone and 65-77 ms as one of two threads, but 53-57 ms as one
of two processes; its forward 18-19 ms alone or in either of two processes.

How: one worker per extra core, a Python process running :func:`main`, started at the
first split batch and kept. It builds a replica of the model from ``model.get_config()``; the
replica's parameters are views of a shared file mapped in both processes (``/dev/shm`` where
there is one), into which this process copies the model's weights before each call (a
memcpy: 2 MB for the demo's UNet). The part's input, its output and its upstream gradient
go through the worker's pipes, pickled; its parameter gradients come back through the shared
file. A dropout layer of the replica asks this process for its mask (:class:`MaskDraw` of
``parallel.py``), so the masks are the undivided batch's. An error in the worker is raised
here, as the error of a thread would be. The worker exits when this process closes its pipe.

The worker's BLAS runs on one thread (``OPENBLAS_NUM_THREADS=1``), and it keeps freed memory
as this process does (``allocator.py``). ``parallel.PROCESSES = False`` switches to the
threads of ``parallel.py``; they are used too where a worker cannot start, and for a model
class a worker cannot import (one defined in a script: :data:`REFUSED`).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import mmap
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

PROTOCOL = pickle.HIGHEST_PROTOCOL


def weight_arrays(model: object) -> list[tuple[int, str, np.ndarray]]:
    """(layer index, name, array) of every parameter, in a fixed order."""
    return [(i, k, v) for i, la in enumerate(model.layers) for k, v in la.params.items()]


class Shared:
    """A file mapped into memory, shared with a worker: the weights, then the gradients."""

    def __init__(self, size: int) -> None:
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        handle, self.path = tempfile.mkstemp(prefix="numpy-unet-", dir=folder)
        try:
            os.ftruncate(handle, max(size, 1))
            self.map = mmap.mmap(handle, max(size, 1))
        finally:
            os.close(handle)
        self.size = size

    def views(self, model: object) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Arrays over the file: each parameter's place for the weights, then the gradients."""
        arrays = weight_arrays(model)
        total = sum(a.nbytes for _, _, a in arrays)
        out: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        offset = 0
        for region in out:
            for _, _, a in arrays:
                region.append(np.ndarray(a.shape, a.dtype, buffer=self.map, offset=offset))
                offset += a.nbytes
        assert offset == 2 * total <= self.size
        return out

    def forget(self) -> None:
        """Remove the file's name (both mappings stay valid until closed)."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class Worker:
    """One worker process, seen from this one."""

    def __init__(self) -> None:
        # the folder holding this copy of the package comes first on the worker's path
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
        env = dict(os.environ, PYTHONPATH=path, OPENBLAS_NUM_THREADS="1")  # one core's part
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from numpy_unet.fast.workers import main; main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.owner = os.getpid()  # a process forked from this one must not use the pipes
        self.held: tuple | None = None  # which model the replica is (id, class, config, layout)
        self.shared: Shared | None = None
        self.views: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])

    def send(self, message: tuple) -> None:
        pickle.dump(message, self.process.stdin, PROTOCOL)
        self.process.stdin.flush()

    def receive(self) -> tuple:
        return pickle.load(self.process.stdout)

    def hold(self, model: object) -> None:
        """Make the worker's replica this model's, its weights the model's current ones."""
        from . import allocator

        arrays = weight_arrays(model)
        kind = type(model)
        config = (kind.__module__, kind.__qualname__, model.get_config())
        layout = [(i, k, a.shape, a.dtype.str) for i, k, a in arrays]
        held = (id(model), repr(config), layout)  # an id alone may be a new model's
        if held != self.held:
            self.held = None
            self.shared = Shared(2 * sum(a.nbytes for _, _, a in arrays))
            self.views = self.shared.views(model)
            try:
                self.send(("hold", config, layout, self.shared.path, allocator.applied))
                self.answer(None)
            finally:
                self.shared.forget()  # mapped in both processes by now, or not needed
            self.held = held
        for view, (_, _, a) in zip(self.views[0], arrays):
            np.copyto(view, a)

    def answer(self, serve: Callable[[tuple], Any] | None) -> Any:
        """The worker's result; ``serve(message)`` answers its requests (dropout masks)."""
        while True:
            message = self.receive()
            if message[0] == "done":
                return message[1]
            if message[0] == "error":
                raise message[1]
            assert serve is not None, f"unexpected request {message[0]!r} from the worker"
            self.send(("reply", serve(message)))

    def close(self) -> None:
        self.held = None
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self.process.poll() is None:
            self.process.kill()


_workers: list[Worker] = []
_failed = False  # set after START_TRIES workers in a row died at once: threads from then on
START_TRIES = 3
_died = 0  # workers in a row that died before answering
LOCK = threading.Lock()  # one split batch at a time talks to the workers
REFUSED: set[type] = set()  # model classes a worker could not build: their parts in threads


def workers(count: int) -> list[Worker] | None:
    """``count`` running workers, started if need be; None where they cannot start."""
    global _failed
    if _failed:
        return None
    _workers[:] = [w for w in _workers if w.owner == os.getpid() and w.process.poll() is None]
    try:
        while len(_workers) < count:
            _workers.append(Worker())
    except OSError:
        _failed = True
        return None
    return _workers[:count]


def died_at_once(died: bool) -> None:
    """Count workers that died before their first answer (say, a Python that cannot import
    this package); after START_TRIES in a row, no more are started."""
    global _died, _failed
    _died = _died + 1 if died else 0
    if _died >= START_TRIES:
        _failed = True


@atexit.register
def close_all() -> None:
    """Let every worker go (they also exit when this process ends)."""
    while _workers:
        worker = _workers.pop()
        if worker.owner == os.getpid():
            worker.close()


class Part:
    """One part of a split batch, run by a worker while this process runs its own.

    ``start(kind, payload)`` sends the work; ``finish()`` waits for its result, answering
    the worker's requests meanwhile on a thread of this process (they are rare: one per
    dropout layer), and raises the worker's error if it had one."""

    def __init__(self, worker: Worker, serve: Callable[[tuple], Any] | None = None) -> None:
        self.worker, self.serve = worker, serve
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self, kind: str, *payload: Any) -> None:
        self.worker.send((kind, *payload))
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self) -> None:
        try:
            self.result = self.worker.answer(self.serve)
        except BaseException as error:  # noqa: BLE001 - raised again in finish()
            self.error = error

    def finish(self) -> Any:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            if isinstance(error, (EOFError, OSError, pickle.UnpicklingError)):
                self.worker.held = None
                self.worker.close()
                raise RuntimeError(
                    "numpy-unet: a worker process of the speed engine stopped"
                ) from error
            raise error
        return self.result


# ----------------------------------------------------------------------- the worker's side


class RemoteDraw:
    """Stands in for a dropout layer's generator in the worker: asks the other process."""

    def __init__(self, index: int, ask: Callable[[tuple], Any]) -> None:
        self.index, self.ask = index, ask

    def random(self, shape: tuple) -> np.ndarray:
        return self.ask(("mask", self.index, tuple(shape)))


def main() -> None:
    """The worker: read requests from stdin, write answers to stdout, until stdin closes."""
    from . import allocator

    read, write = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not break the pipe's messages

    def send(message: tuple) -> None:
        pickle.dump(message, write, PROTOCOL)
        write.flush()

    def ask(request: tuple) -> Any:
        send(request)
        return pickle.load(read)[1]

    model, grads, kept = None, [], None
    while True:
        try:
            message = pickle.load(read)
        except EOFError:
            return
        try:
            kind = message[0]
            if kind == "hold":
                (module, name, config), layout, path, keep = message[1:]
                if keep is not None:
                    allocator.keep_freed_memory(keep)
                cls = getattr(importlib.import_module(module), name)
                model = cls(**config)
                with open(path, "r+b") as handle:
                    kept = mmap.mmap(handle.fileno(), 0)
                offset, grads = 0, []
                for region in ("params", "grads"):
                    for i, k, shape, dtype in layout:
                        a = np.ndarray(shape, np.dtype(dtype), buffer=kept, offset=offset)
                        offset += a.nbytes
                        if region == "params":
                            model.layers[i].params[k] = a
                        else:
                            grads.append((i, k, a))
                send(("done", None))
            elif kind == "forward":
                x, training, fast, errors = message[1:]
                for layer, on in zip(model.layers, fast):
                    if on is not None:
                        layer.fast = on
                drops = [la for la in model.layers if type(la).__name__ == "Dropout"]
                for index, layer in enumerate(drops):
                    layer.rng = RemoteDraw(index, ask)
                with np.errstate(**errors):
                    y = model.forward(x, training=training)
                if not training:
                    for layer in model.layers:
                        layer.clear_cache()
                send(("done", y))
            elif kind == "backward":
                dy, errors = message[1:]
                with np.errstate(**errors):
                    model.backward(dy)
                for i, k, a in grads:
                    np.copyto(a, model.layers[i].grads[k])
                for layer in model.layers:
                    layer.grads = {}
                send(("done", None))
            else:
                raise ValueError(f"numpy-unet worker: unknown request {kind!r}")
        except Exception as error:  # noqa: BLE001 - sent to the other process, raised there
            try:
                pickle.dumps(error)
            except Exception:  # noqa: BLE001
                error = RuntimeError(repr(error))
            send(("error", error))
