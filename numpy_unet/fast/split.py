"""The speed engine's batch split: a thin network's batch cut into parts that run side by
side, the first in this process and each other one in a worker process (``workers.py``).

Why: in a thin network (8-32 filters) most of the work is small products and element-wise
passes, which neither BLAS's threads nor halves of a layer share out well. Half the batch
on each core, BLAS on one thread in each, keeps both cores busy the whole step.

How, for a model whose ``forward`` and ``backward`` the engine runs:

- forward: part i is rows ``cuts[i]`` of the batch. This process runs ``model.forward`` on
  the first part while each worker runs its replica (the model's configuration and current
  weights) on its own part; the outputs are joined;
- dropout: a Dropout layer draws one uniform per value from its generator ``rng``, in C
  order, so the whole batch's mask is one draw whose rows follow each other in the
  generator's stream. Part i's generator is a copy of the layer's, advanced
  (``bit_generator.advance``) past the rows before it; afterwards the layer's own
  generator is advanced past the whole batch, where an undivided forward leaves it. A
  generator that cannot advance keeps the batch undivided;
- backward: each part runs ``backward`` on its rows of dy; the parts' parameter gradients
  (a worker's come back through the shared file) add up in the model's layers and the
  input gradients are joined. The loss between forward and backward is the caller's, on
  the whole batch, as on the readable path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np

from ..layers import Dropout
from .rules import Blas, Rules
from .workers import Worker, WorkerStoppedError, weight_arrays

START_TRIES = 3  # workers in a row that die before answering; then no more are started


def parts(n: int, count: int) -> list[slice]:
    """The batch's n rows, cut into at most ``count`` parts as equal as can be."""
    k = min(count, n)
    cuts = [n * i // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def dropout_draws(model: object, shape: tuple, training: bool) -> list[tuple[Dropout, int]]:
    """(layer, values it draws per image) for every Dropout of the model, in order, for a
    forward of inputs of ``shape`` (0 where it draws nothing)."""
    drops = [layer for layer in model.layers if isinstance(layer, Dropout)]
    if not training or not any(d.rate > 0 for d in drops):
        return [(d, 0) for d in drops]  # no draws: no walk of the U needed
    per_image: dict[int, int] = {}

    def visit(layer: object, in_shape: tuple, out_shape: tuple, inbound: list) -> None:
        if isinstance(layer, Dropout):
            per_image[id(layer)] = int(np.prod(in_shape[1:]))

    model.walk(shape, visit)
    return [(d, per_image[id(d)] if d.rate > 0 else 0) for d in drops]


def advanced(generator: np.random.Generator, steps: int) -> dict:
    """The state of ``generator``'s bit generator after ``steps`` more draws (a copy)."""
    if steps == 0:
        return generator.bit_generator.state
    bits = type(generator.bit_generator)()
    bits.state = generator.bit_generator.state
    bits.advance(steps)
    return bits.state


class Split:
    """The batch split of one engine and the worker processes it holds.

    Parameters
    ----------
    count : int
        Worker processes to start: the batch is cut into ``count + 1`` parts.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.workers: list[Worker] = []
        self.failures = 0  # workers in a row that died before their first answer
        self.refused: set[type] = set()  # model classes a worker could not build
        self.pending: tuple[list[slice], list[Worker]] | None = None  # the last forward's

    def team(self, model: object, rules: Rules) -> list[Worker] | None:
        """The workers, started if need be, holding this model and its current weights; None
        where they cannot (then the batch runs undivided)."""
        if self.failures >= START_TRIES or type(model) in self.refused:
            return None
        for worker in [w for w in self.workers if w.process.poll() is not None]:
            worker.forget()  # died between two calls: a new one takes its place
            self.workers.remove(worker)
        try:
            while len(self.workers) < self.count:
                self.workers.append(Worker())
        except OSError:
            self.failures = START_TRIES
            return None
        try:
            for worker in self.workers:
                worker.hold(model, rules)
        except WorkerStoppedError:  # died before answering (say, a Python without this package)
            self.close()
            self.failures += 1
            return None
        except Exception:  # noqa: BLE001 - a model the workers cannot build (a script's own class)
            self.refused.add(type(model))
            return None
        self.failures = 0
        return self.workers

    def forward(
        self, model: object, x: np.ndarray, training: bool, rules: Rules, blas: Blas
    ) -> np.ndarray | None:
        """``model.forward(x, training)``, the batch in parts side by side; None where it
        cannot be split (no workers, or a dropout generator that cannot advance)."""
        draws = dropout_draws(model, x.shape, training)
        if any(count and not hasattr(d.rng.bit_generator, "advance") for d, count in draws):
            return None
        team = self.team(model, rules)
        if team is None:
            return None
        cuts = parts(len(x), len(team) + 1)
        team = team[: len(cuts) - 1]
        errors = np.geterr()  # the caller's floating-point error handling, in the workers too
        messages = []
        for rows in cuts[1:]:
            states = [advanced(d.rng, rows.start * count) for d, count in draws]
            messages.append(("forward", x[rows], training, states, errors))
        self._send(team, messages)
        outs = self._side_by_side(lambda: model.forward(x[cuts[0]], training), team, blas)
        for d, count in draws:  # where one draw of the whole batch leaves each generator
            if count:
                d.rng.bit_generator.advance((len(x) - cuts[0].stop) * count)
        self.pending = (cuts, team)
        return np.concatenate(outs)

    def backward(self, model: object, dy: np.ndarray, blas: Blas) -> np.ndarray:
        """``model.backward(dy)`` after a split forward: each part on its rows; the
        parameter gradients added up in the model's layers."""
        cuts, team = self.pending
        self.pending = None
        errors = np.geterr()
        self._send(team, [("backward", dy[rows], errors) for rows in cuts[1:]])
        dxs = self._side_by_side(lambda: model.backward(dy[cuts[0]]), team, blas)
        for worker in team:  # each worker's parameter gradients, from the shared file
            for (i, name, _), g in zip(weight_arrays(model), worker.views[1]):
                layer = model.layers[i]
                layer.grads[name] = layer.grads[name] + g
        return np.concatenate(dxs)

    def clear(self) -> None:
        """The workers forget the last forward's activations (inference keeps nothing)."""
        if self.pending is not None:
            for worker in self.pending[1]:
                with contextlib.suppress(OSError):
                    worker.connection.send(("clear",))
            self.pending = None

    def _send(self, team: list[Worker], messages: list[tuple]) -> None:
        """Each worker its request; if one has gone, every worker of the call is let go
        (those already asked would answer into a call that no longer waits)."""
        try:
            for worker, message in zip(team, messages):
                worker.request(message)
        except WorkerStoppedError:
            self.pending = None
            for worker in team:
                self._drop(worker)
            raise

    def _side_by_side(self, own: Callable[[], np.ndarray], team: list[Worker], blas: Blas) -> list:
        """Run ``own`` here (BLAS on one thread) while the workers run the requests sent to
        them; [own's result, *the workers' answers]. A worker's error, or one here, is raised
        once every part has answered; Ctrl-C here stops the workers at once."""
        failure: BaseException | None = None
        results = []
        try:
            with blas.one_thread():
                results.append(own())
        except Exception as error:  # noqa: BLE001 - raised below, once all have answered
            failure = error
        except BaseException:  # Ctrl-C, exit: do not wait for the workers, stop them
            self.pending = None
            for worker in team:
                self._drop(worker)
            raise
        for worker in team:
            try:
                results.append(worker.answer())
            except WorkerStoppedError as error:
                self._drop(worker)
                failure = failure or error
            except Exception as error:  # noqa: BLE001 - the worker's own error
                failure = failure or error
            except BaseException:
                self.pending = None
                for other in team:
                    self._drop(other)
                raise
        if failure is not None:
            self.pending = None
            raise failure
        return results

    def _drop(self, worker: Worker) -> None:
        worker.close(wait=1.0)
        if worker in self.workers:
            self.workers.remove(worker)

    def close(self) -> None:
        """Let every worker go."""
        self.pending = None
        while self.workers:
            self.workers.pop().close()

    def forget(self) -> None:
        """After a fork: drop the parent's workers without touching them."""
        self.pending = None
        while self.workers:
            self.workers.pop().forget()
