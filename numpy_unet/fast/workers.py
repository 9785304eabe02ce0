"""The speed engine's worker processes: the parts of a split batch (``split.py``) after the
first run in another Python process, not in a thread of this one.

Why: a NumPy call long enough to let go of Python's lock takes it back after, and two
threads doing that some 800 times per forward wait for each other; two processes do not
(``benchmarks/RESULTS.md``).

How a worker lives:

- it is started by an engine that needs it (never at import or when a model is built), with
  ``start_new_session``: a terminal's Ctrl-C goes to this process only, which finishes its
  step (``fit`` then saves a checkpoint) and closes the worker. The worker ignores SIGINT;
- it talks to this process over a socket pair (``multiprocessing.connection`` framing,
  pickled messages) and shares with it one anonymous file (``memfd_create``, or an
  unnamed temporary file): the model's weights, then its gradients. Nothing has a name in
  ``/dev/shm`` or elsewhere, so nothing is left behind whatever kills whom;
- it exits when this process closes the socket (:meth:`Worker.close`, the engine's
  ``close()``, the end of the program) or dies: a watchdog thread checks every
  :data:`WATCH_SECONDS` that its parent is still there, so a SIGKILL of this process leaves
  no worker behind;
- it builds a replica of the model from ``model.get_config()``, whose parameters are views
  of the shared file; each call copies the current weights in first (a memcpy). A part's
  input, output, upstream gradient and input gradient travel pickled; an error in the
  worker is raised here.
"""

from __future__ import annotations

import contextlib
import importlib
import mmap
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

STOPPED = "numpy-unet: a worker process of the speed engine stopped"
WATCH_SECONDS = 0.2  # how often a worker checks that the process that started it is alive


# the folder holding this copy of the package: the worker imports the package from there
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker_path() -> str:
    """The worker's PYTHONPATH: this copy of the package first, then this process's own
    path (absolute), so that the worker imports what this process imports, the model's
    class included."""
    paths = [PACKAGE_ROOT] + [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    return os.pathsep.join(dict.fromkeys(paths))


def weight_arrays(model: object) -> list[tuple[int, str, np.ndarray]]:
    """(layer index, name, array) of every parameter, in a fixed order."""
    return [(i, k, v) for i, la in enumerate(model.layers) for k, v in la.params.items()]


def regions(buffer: mmap.mmap, layout: list[tuple]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Arrays over the shared file for a layout of (index, name, shape, dtype): each
    parameter's place for the weights, then for the gradients."""
    out: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    offset = 0
    for region in out:
        for _, _, shape, dtype in layout:
            a = np.ndarray(shape, np.dtype(dtype), buffer=buffer, offset=offset)
            region.append(a)
            offset += a.nbytes
    return out


def anonymous_file() -> int:
    """A file descriptor of an unnamed file in memory, to be shared with a worker."""
    if hasattr(os, "memfd_create"):  # Linux
        return os.memfd_create("numpy-unet-worker")
    with tempfile.TemporaryFile() as handle:  # elsewhere: unlinked at once (POSIX)
        return os.dup(handle.fileno())


def can_start() -> bool:
    """Can this platform run workers (a socket pair and descriptors passed to a child)?"""
    return os.name == "posix" and hasattr(socket, "socketpair")


class WorkerStoppedError(RuntimeError):
    """A worker process went away in the middle of a call."""


class Worker:
    """One worker process, seen from this one."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair()
        self.memory = anonymous_file()
        code = f"from numpy_unet.fast.workers import main; main({theirs.fileno()}, {self.memory})"
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code],
                pass_fds=(theirs.fileno(), self.memory),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONPATH=worker_path(), OPENBLAS_NUM_THREADS="1"),
                cwd=PACKAGE_ROOT,  # not the caller's folder, which may hold another numpy_unet
                start_new_session=True,
            )
        except BaseException:
            mine.close()
            os.close(self.memory)
            raise
        finally:
            theirs.close()
        self.connection = Connection(mine.detach())
        self.owner = os.getpid()
        self.size = 0  # bytes of the shared file
        self.buffer: mmap.mmap | None = None
        self.held: tuple | None = None  # which model the replica is
        self.views: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self.busy = False  # a request was sent and its answer not yet read

    def request(self, message: tuple) -> None:
        try:
            self.connection.send(message)
        except OSError as error:
            raise WorkerStoppedError(STOPPED) from error
        self.busy = True

    def answer(self) -> Any:
        """The answer to the last request: its result, or the worker's error raised here."""
        try:
            kind, value = self.connection.recv()
        except (EOFError, OSError) as error:
            raise WorkerStoppedError(STOPPED) from error
        self.busy = False
        if kind == "error":
            raise value
        return value

    def hold(self, model: object, rules: object) -> None:
        """Make the worker's replica this model's, with the model's current weights."""
        arrays = weight_arrays(model)
        kind = type(model)
        config = (kind.__module__, kind.__qualname__, model.get_config())
        layout = [(i, k, a.shape, a.dtype.str) for i, k, a in arrays]
        need = max(1, 2 * sum(a.nbytes for _, _, a in arrays))
        if need > self.size:  # grow the shared file; the worker maps it again
            os.ftruncate(self.memory, need)
            self.buffer, self.size, self.held = mmap.mmap(self.memory, need), need, None
        held = (id(model), repr(config), layout)  # an id alone may be a new model's
        if held != self.held:
            self.held = None
            self.views = regions(self.buffer, layout)
            self.request(("hold", config, layout, rules, allocator_setting()))
            self.answer()
            self.held = held
        for view, (_, _, a) in zip(self.views[0], arrays):
            np.copyto(view, a)

    def close(self, wait: float = 5.0) -> None:
        """Let the worker go: it exits when its socket closes. Killed if it is still
        computing (say, after Ctrl-C here), or after ``wait`` seconds."""
        if self.owner != os.getpid():  # a forked copy: the parent's worker, not ours
            self.forget()
            return
        if self.busy:
            with contextlib.suppress(OSError):
                self.process.kill()
        self.forget()
        try:
            self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def forget(self) -> None:
        """Close this process's ends (socket, shared file) without touching the worker."""
        self.held, self.views, self.buffer = None, ([], []), None
        with contextlib.suppress(OSError):
            self.connection.close()
        if self.memory >= 0:
            with contextlib.suppress(OSError):
                os.close(self.memory)
            self.memory = -1


def allocator_setting() -> bool | None:
    """Does this process keep freed memory (``allocator.py``)? The worker does likewise."""
    from . import allocator

    return allocator.applied


# ----------------------------------------------------------------------- the worker's side


def watch(parent: int) -> None:
    """Exit as soon as the process that started this one is gone (even mid-computation)."""
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(0)


def main(channel: int, memory: int) -> None:
    """The worker: answer requests on the socket ``channel`` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the process that started us
    threading.Thread(target=watch, args=(os.getppid(),), daemon=True).start()
    connection = Connection(channel)
    try:
        serve(connection, memory)
    except (EOFError, OSError):  # the other side has gone: nothing to say to anyone
        pass


def serve(connection: Connection, memory: int) -> None:
    from . import allocator

    model, grads, buffer = None, [], None
    while True:
        message = connection.recv()
        kind = message[0]
        if kind == "clear":  # forget the last part's activations; no answer
            if model is not None:
                model.clear_cache()
            continue
        try:
            if kind == "hold":
                (module, name, config), layout, rules, keep = message[1:]
                if keep is not None:
                    allocator.keep_freed_memory(keep)
                cls = getattr(importlib.import_module(module), name)
                model = cls(**config)
                engine = type(model.engine)  # the replica's engine: this part's, on one core
                model.engine = engine(workers=0, rules=rules.one_core())
                buffer = mmap.mmap(memory, os.fstat(memory).st_size)
                weights, grads = regions(buffer, layout)
                for (i, k, _, _), a in zip(layout, weights):
                    model.layers[i].params[k] = a
                grads = [(i, k, a) for (i, k, _, _), a in zip(layout, grads)]
                answer = None
            elif kind == "forward":
                x, training, states, errors = message[1:]
                for layer, state in zip(dropouts(model), states):
                    layer.rng = generator_from(state)  # this part's rows of the draw
                with np.errstate(**errors):
                    answer = model.forward(x, training=training)
            elif kind == "backward":
                dy, errors = message[1:]
                with np.errstate(**errors):
                    answer = model.backward(dy)
                for i, k, a in grads:
                    np.copyto(a, model.layers[i].grads[k])
                for layer in model.layers:
                    layer.grads = {}
            else:
                raise ValueError(f"numpy-unet worker: unknown request {kind!r}")
        except Exception as error:  # noqa: BLE001 - sent to the other process, raised there
            try:
                pickle.dumps(error)
            except Exception:  # noqa: BLE001
                error = RuntimeError(repr(error))
            connection.send(("error", error))
            continue
        connection.send(("done", answer))


def generator_from(state: dict) -> np.random.Generator:
    """A generator in this state (of any of NumPy's bit generators, named in the state)."""
    bits = getattr(np.random, state["bit_generator"])()
    bits.state = state
    return np.random.Generator(bits)


def dropouts(model: object) -> list:
    """The model's Dropout layers, in order."""
    from ..layers import Dropout

    return [layer for layer in model.layers if isinstance(layer, Dropout)]
