"""The speed engine's use of the cores: each core runs the whole UNet on part of the batch
(a thin network's batch) or half of each layer's work (a wide network, or one large image).

Why: in a thin network (8-32 filters) most of the work is products of (rows, 8-64) by
(8-64, 8-64) and element-wise passes over small arrays. OpenBLAS splits each product over
its threads and wins little on products that small (its two threads wait on each other),
and NumPy's element-wise passes, pooling and copies run on one core. Half the batch on
each core, with OpenBLAS told to use one thread per call, keeps both cores busy the whole
step: on the 2-core machine here a training step of the demo's UNet (8 filters, batch 4)
took 76 ms instead of 111, one of the 16-filter UNet (batch 2) 357 ms instead of 472.

How:

- where the parts run: the first in this process, each other one in a worker process
  (``workers.py``, which says why not a thread: Python's lock), holding a replica of the
  model with its current weights and ``fast`` switches. With :data:`PROCESSES` False, or
  where no worker can start, they run in threads instead, on replicas here: a second UNet
  of the same configuration whose layers share the model's parameter dicts (the same
  arrays, so it always has the current weights) and its ``fast`` switches, made once and
  kept on the model;
- OpenBLAS: its thread count is set to 1 (through ``ctypes``, in the OpenBLAS that NumPy's
  wheels ship) while the parts run, and restored after. Where NumPy's BLAS is another
  library, :data:`WORKERS` is 1 and nothing here runs;
- dropout: each part's masks are its rows of *one* draw of the model's own generator, the
  draw an undivided batch makes, so the masks, and the generator's state after the step,
  are those of the readable path (a worker asks this process for its rows);
- the loss: the parts' predictions are joined and the loss and its gradient computed on
  the whole batch, as the readable path does (any loss); each part then runs backward on
  its rows of that gradient, and the parts' parameter gradients add up.

A batch that is not split (the seed's network, or a thin network's single image of
256x256 or more) runs with each layer's products in two halves instead, one per core
(:func:`layer_halves`, below).

Nothing in ``layers/`` or ``model/`` needs this module to be correct; ``fit`` and
``predict`` call it where :func:`applies` says so. The tests check it against the readable
path: the same predictions, loss, gradients and dropout masks.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import workers

MAX_FILTERS = 32  # the widest first level (filters) that is split; wider layers keep BLAS busy

# the names NumPy's wheels give OpenBLAS's thread functions (64-bit integer build first)
NAMES = [("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "")]


def find_openblas() -> tuple[Callable[[int], Any], Callable[[], int]] | None:
    """(set_num_threads, get_num_threads) of the OpenBLAS bundled with NumPy, or None."""
    root = os.path.dirname(np.__file__)
    paths = glob.glob(os.path.join(root, "..", "numpy.libs", "*openblas*"))  # Linux wheels
    paths += glob.glob(os.path.join(root, ".dylibs", "*openblas*"))  # macOS wheels
    for path in paths:
        try:
            lib = ctypes.CDLL(path)  # NumPy has loaded it already: this only finds it
        except OSError:
            continue
        for prefix, suffix in NAMES:
            setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = (ctypes.c_int,), None
                getter.argtypes, getter.restype = (), ctypes.c_int
                return setter, getter
    return None


OPENBLAS = find_openblas()
# parts of a batch run side by side: as many as OpenBLAS has threads; 1 switches this off
WORKERS = min(OPENBLAS[1](), 8) if OPENBLAS is not None else 1
# the parts other than the first in worker processes (workers.py); False: in threads
PROCESSES = True
_pool: ThreadPoolExecutor | None = None


def applies(model: object, n: int) -> bool:
    """Does this module run ``model``'s batches of ``n`` images (:func:`forward`,
    :func:`forward_backward`)? They then use both cores where it pays: the batch split
    (:func:`splits_batch`) or each layer in halves (:func:`halves_pay`)."""
    return WORKERS > 1 and n >= 1 and getattr(model, "config", None) is not None


def splits_batch(model: object, n: int) -> bool:
    """Split a batch of ``n`` images of this (thin) model over the cores?"""
    return WORKERS > 1 and n >= 2 and model.config["filters"] <= MAX_FILTERS


HALVES_PIXELS = 256 * 256  # a thin network's batch runs in halves from this many pixels on


def halves_pay(model: object, shape: tuple[int, ...]) -> bool:
    """Run a batch of this shape (N, H, W, C) that is not split with each layer in halves
    (:func:`layer_halves`)? A wide network's always; a thin network's (one image) from
    HALVES_PIXELS on. Below that, BLAS's threads ran the small layers faster: 16 filters,
    one image of 128x128, predict 19.5 ms against 24-26 in halves (256x256: 69-75 against
    60-74; 512x512: 272-490 against 202-224)."""
    n, h, w = shape[:3]
    return model.config["filters"] > MAX_FILTERS or n * h * w >= HALVES_PIXELS


def parts(n: int) -> list[slice]:
    """The batch's rows, cut into at most WORKERS parts as equal as can be."""
    k = min(WORKERS, n)
    cuts = [n * i // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def replicas(model: object, count: int) -> list[object]:
    """``count`` models: the model itself, then its replicas, with the model's weights."""
    kept = model.__dict__.setdefault("_replicas", [])
    while len(kept) < count - 1:
        kept.append(type(model)(**model.get_config()))  # same layers, own caches
    for twin in kept:
        for mine, theirs in zip(twin.layers, model.layers):
            mine.params = theirs.params  # the same dict: the same arrays, always current
            if hasattr(theirs, "fast"):
                mine.fast = theirs.fast
    return [model, *kept[: count - 1]]


def one_core() -> bool:
    """Does BLAS run on one thread (as in the parts of a split batch)? The speed engine's
    block sizes depend on it (``conv.block_rows``, ``winograd.TILE_FLOATS``)."""
    return OPENBLAS is None or OPENBLAS[1]() == 1


@contextmanager
def one_blas_thread():
    """BLAS on one thread per call meanwhile (each part has its core); then as before."""
    before = OPENBLAS[1]() if OPENBLAS is not None else None
    if OPENBLAS is not None:
        OPENBLAS[0](1)
    try:
        yield
    finally:
        if before is not None:
            OPENBLAS[0](before)


def run(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Call the tasks side by side (the first on this thread), BLAS on one thread each.
    Inside a task :func:`halving` is False: a half is not cut in halves again."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max(1, WORKERS - 1), thread_name_prefix="numpy-unet")
    errors = np.geterr()  # the caller's floating-point error handling, in every thread

    def within(task: Callable[[], Any]) -> Any:
        with np.errstate(**errors):
            return task()

    futures = []
    halves_before = halving()
    with one_blas_thread():
        try:
            futures = [_pool.submit(within, task) for task in tasks[1:]]
            _local.halves = False
            first = tasks[0]()
            return [first, *[future.result() for future in futures]]
        finally:
            _local.halves = halves_before
            wait(futures)  # even when a part failed: no part outlives the call


# -- the other way to use the cores: each layer's work in two halves -----------------------
#
# The batch split above needs a batch and a thin network. A wide network (the seed's, 64
# filters) or a single image runs its layers one after the other instead, and each layer's
# products are cut in two, one half per core: the rows of a shifted sum (conv.shifted_sum),
# the tile rows of Winograd's products (winograd.products), the rows or filters of a kernel
# gradient (conv.backward). BLAS runs on one thread the whole pass.
#
# Why not BLAS's own threads: they share out every product, and wait on each other inside
# it. On this machine they ran the seed's 256x256 layers half as fast for a minute at a time
# (the seed's predict 684-794 ms instead of 529-654), while two halves, which meet once per
# layer, ran at the same speed throughout (453-547 ms, alternating in one process).

_local = threading.local()  # .halves: is this thread running a model in halves?


def halving() -> bool:
    """Should the speed engine cut this layer's work in two halves, side by side (:func:`run`)?
    True in the thread that runs a model inside :func:`layer_halves`, False in the halves."""
    return getattr(_local, "halves", False)


@contextmanager
def layer_halves():
    """Meanwhile, in this thread, the speed engine runs each layer in two halves, one per core,
    BLAS on one thread (see above); then as before. Only with two or more cores."""
    before = halving()
    _local.halves = WORKERS > 1
    try:
        with one_blas_thread():
            yield
    finally:
        _local.halves = before


def team(model: object, count: int) -> list[workers.Worker] | None:
    """``count`` worker processes holding this model and its current weights, or None
    (``PROCESSES`` off, or no worker could start): then the parts run in threads."""
    if not PROCESSES or count < 1 or type(model) in workers.REFUSED:
        return None
    found = workers.workers(count)
    try:
        for worker in found or []:
            worker.hold(model)
    except (OSError, EOFError, pickle.UnpicklingError):  # a worker has gone: a new one next
        workers.close_all()
        workers.died_at_once(True)
        return None
    except Exception:  # noqa: BLE001 - a model the workers cannot build (say, a class of
        workers.REFUSED.add(type(model))  # a script's own): its parts run in threads
        return None
    if found is not None:
        workers.died_at_once(False)
    return found


def side_by_side(
    own: Callable[[], Any], remote: list[workers.Part], kind: str, payloads: list
) -> list:
    """Start each remote part's ``kind`` with its payload, run ``own`` here meanwhile (BLAS on
    one thread), then wait for every remote part: [own's result, *the parts' results]. The
    first error is raised once every part has finished."""
    errors = np.geterr()  # the caller's floating-point error handling, in the workers too
    results, failure, started = [], None, []
    for part, payload in zip(remote, payloads):
        try:
            part.start(kind, *payload, errors)
        except OSError as error:  # the worker has gone: the parts started are waited for
            failure = RuntimeError("numpy-unet: a worker process of the speed engine stopped")
            failure.__cause__ = error
            part.worker.close()
            break
        started.append(part)
    with one_blas_thread():
        try:
            if failure is None:
                results.append(own())
        except BaseException as error:  # noqa: BLE001 - raised below, once all have finished
            failure = error
    for part in started:
        try:
            results.append(part.finish())
        except BaseException as error:  # noqa: BLE001
            failure = failure or error
    if failure is not None:
        raise failure
    return results


def fast_switches(model: object) -> list[bool | None]:
    """Each layer's ``fast`` switch (None where it has none), for the workers' replicas."""
    return [getattr(layer, "fast", None) for layer in model.layers]


def forward(model: object, x: np.ndarray) -> np.ndarray:
    """``model.forward(x)`` (inference), the batch cut into parts run side by side, or each
    layer in halves."""
    if not splits_batch(model, len(x)):
        with layer_halves() if halves_pay(model, x.shape) else contextlib.nullcontext():
            return model.forward(x)
    cuts = parts(len(x))
    with workers.LOCK if PROCESSES else contextlib.nullcontext():
        return _forward(model, x, cuts)


def _forward(model: object, x: np.ndarray, cuts: list[slice]) -> np.ndarray:
    processes = team(model, len(cuts) - 1)
    if processes is not None:  # the first part here, the others in the worker processes
        remote = [workers.Part(w) for w in processes]
        flags = fast_switches(model)
        payloads = [(x[c], False, flags) for c in cuts[1:]]
        return np.concatenate(
            side_by_side(lambda: model.forward(x[cuts[0]]), remote, "forward", payloads)
        )
    models = replicas(model, len(cuts))
    outs = run([lambda m=m, c=c: m.forward(x[c]) for m, c in zip(models, cuts)])
    return np.concatenate(outs)


class MaskDraw:
    """Stands in for a Dropout layer's generator while the parts run: part i's
    ``random(shape)`` is rows i of one draw of the whole batch's shape from the real
    generator, the draw the undivided batch would make."""

    def __init__(self, rng: np.random.Generator, n: int, rows: slice, shared: dict) -> None:
        self.rng, self.n, self.rows, self.shared = rng, n, rows, shared

    def random(self, shape: tuple) -> np.ndarray:
        with self.shared["lock"]:
            if "draw" not in self.shared:  # the first part to get here draws for all
                self.shared["draw"] = self.rng.random((self.n, *shape[1:]))
        return self.shared["draw"][self.rows]


def forward_backward(
    model: object, x: np.ndarray, objective: Callable[[np.ndarray], tuple[float, np.ndarray]]
) -> tuple[float, np.ndarray]:
    """Training forward and backward of the batch, its parts side by side, the loss between.

    ``objective(y_pred)`` returns the loss of the whole batch's predictions and its gradient
    dL/dy_pred (a loss's forward, then its backward). Returns the loss and the predictions,
    and leaves in the model's layers the gradients of the undivided batch, as
    ``model.forward(x, training=True)``, the objective and ``model.backward(dy)`` would.
    Where the batch is not split, those three lines run with each layer in halves.
    """
    if not splits_batch(model, len(x)):
        with layer_halves() if halves_pay(model, x.shape) else contextlib.nullcontext():
            y_pred = model.forward(x, training=True)
            value, dy = objective(y_pred)
            model.backward(dy)
        return value, y_pred
    with workers.LOCK if PROCESSES else contextlib.nullcontext():
        return _forward_backward(model, x, objective)


def _forward_backward(
    model: object, x: np.ndarray, objective: Callable[[np.ndarray], tuple[float, np.ndarray]]
) -> tuple[float, np.ndarray]:
    n, cuts = len(x), parts(len(x))
    processes = team(model, len(cuts) - 1)
    models = [model] if processes is not None else replicas(model, len(cuts))
    dropouts = [[la for la in m.layers if type(la).__name__ == "Dropout"] for m in models]
    own = [[layer.rng for layer in m_layers] for m_layers in dropouts]  # put back after
    real = own[0]  # the model's generators: they draw every part's masks
    shared = [{"lock": threading.Lock()} for _ in real]
    for m_layers, rows in zip(dropouts, cuts):
        for layer, rng, common in zip(m_layers, real, shared):
            layer.rng = MaskDraw(rng, n, rows, common)
    remote = []
    if processes is not None:  # a worker's dropout layer asks here for its rows of a mask

        def serve(rows: slice):
            def answer(request: tuple) -> np.ndarray:
                _, index, shape = request  # ("mask", dropout layer, shape)
                return MaskDraw(real[index], n, rows, shared[index]).random(shape)

            return answer

        remote = [workers.Part(w, serve(c)) for w, c in zip(processes, cuts[1:])]
    try:
        if processes is not None:
            flags = fast_switches(model)
            payloads = [(x[c], True, flags) for c in cuts[1:]]
            own_part = lambda: model.forward(x[cuts[0]], training=True)  # noqa: E731
            y_parts = side_by_side(own_part, remote, "forward", payloads)
        else:
            y_parts = run(
                [lambda m=m, c=c: m.forward(x[c], training=True) for m, c in zip(models, cuts)]
            )
        y_pred = np.concatenate(y_parts)
    finally:
        for m_layers, rngs in zip(dropouts, own):
            for layer, rng in zip(m_layers, rngs):
                layer.rng = rng
    value, dy = objective(y_pred)  # the loss of the whole batch, as the readable path
    if processes is not None:
        side_by_side(
            lambda: model.backward(dy[cuts[0]]), remote, "backward", [(dy[c],) for c in cuts[1:]]
        )
        for worker in processes:  # the parts' parameter gradients add up in the model's layers
            for (i, name, _), g in zip(workers.weight_arrays(model), worker.views[1]):
                layer = model.layers[i]
                layer.grads[name] = layer.grads[name] + g
        return value, y_pred
    run([lambda m=m, c=c: m.backward(dy[c]) for m, c in zip(models, cuts)])
    for twin in models[1:]:  # the parts' parameter gradients add up in the model's layers
        for mine, theirs in zip(model.layers, twin.layers):
            for name, g in theirs.grads.items():
                mine.grads[name] = mine.grads[name] + g
            theirs.grads = {}
    return value, y_pred
