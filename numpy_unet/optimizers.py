"""Optimizers: Adam (the seed's) and SGD with momentum (the paper's), as Keras defines them.

An optimizer reads ``model.params`` and ``model.grads`` (dicts keyed alike, e.g.
``"conv1_1/kernel"``) and updates the parameters in place. It is called explicitly after
``backward``; no update ever hides inside a layer's backward pass.
"""

from __future__ import annotations

import numpy as np


class CosineDecay:
    """A learning rate that falls along a half cosine, as Keras's
    ``keras.optimizers.schedules.CosineDecay`` (without its warm-up).

    At step ``t`` (0, 1, ...; the optimizer's ``iterations`` before the update)::

        cosine = 0.5 * (1 + cos(pi * t / decay_steps))        (1 ... 0)
        lr(t) = initial_learning_rate * ((1 - alpha) * cosine + alpha)

    with ``t`` capped at ``decay_steps``: from the initial rate down to ``alpha`` times it,
    where it stays. Pass it to an optimizer in place of a number: ``Adam(CosineDecay(...))``.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0) -> None:
        if not float(initial_learning_rate) > 0:
            raise ValueError(
                f"CosineDecay: initial_learning_rate must be positive, got "
                f"{initial_learning_rate!r}"
            )
        if not isinstance(decay_steps, (int, np.integer)) or decay_steps < 1:
            raise ValueError(
                f"CosineDecay: decay_steps must be a positive int, got {decay_steps!r}"
            )
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"CosineDecay: alpha must be in [0, 1], got {alpha!r}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps, self.alpha = int(decay_steps), float(alpha)

    def __call__(self, step: int) -> float:
        done = min(step, self.decay_steps) / self.decay_steps  # 0 ... 1
        cosine = 0.5 * (1 + np.cos(np.pi * done))  # 1 ... 0
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict:
        return {"name": "CosineDecay"} | vars(self)


class Optimizer:
    """Shared bookkeeping: the learning rate, the step count and the per-parameter state.

    ``learning_rate`` is a number, or a schedule such as :class:`CosineDecay`, which gives
    the rate of each step; ``self.learning_rate`` is then the rate of the latest step.
    """

    def __init__(self, learning_rate: float | CosineDecay) -> None:
        self.schedule = learning_rate if isinstance(learning_rate, CosineDecay) else None
        if self.schedule is not None:
            learning_rate = self.schedule(0)
        if not float(learning_rate) > 0:
            raise ValueError(
                f"{type(self).__name__}: learning_rate must be positive, got {learning_rate!r}"
            )
        self.learning_rate = float(learning_rate)
        self.iterations = 0  # updates applied so far (Keras's optimizer.iterations)
        self.slots: dict[str, dict[str, np.ndarray]] = {}  # e.g. {"m": {name: array}}

    def _slot(self, kind: str, name: str, like: np.ndarray) -> np.ndarray:
        """The state array ``kind`` of parameter ``name`` (zeros the first time)."""
        per_param = self.slots.setdefault(kind, {})
        if name not in per_param:
            per_param[name] = np.zeros_like(like)
        if per_param[name].shape != like.shape:
            raise ValueError(
                f"{type(self).__name__}: its state for '{name}' has shape "
                f"{per_param[name].shape}, but the parameter has shape {like.shape}; an "
                "optimizer keeps per-parameter state, so give each model its own optimizer"
            )
        return per_param[name]

    def step(self, model: object) -> None:
        """Apply one update to every parameter of ``model`` from its current gradients."""
        params, grads = model.params, model.grads
        missing = [n for n in params if n not in grads]
        if missing:
            raise RuntimeError(
                f"{type(self).__name__}.step: no gradient for {missing[0]}; call "
                "model.backward() before the optimizer step"
            )
        if self.schedule is not None:  # the rate of this step, as Keras: schedule(iterations)
            self.learning_rate = self.schedule(self.iterations)
        self.iterations += 1
        for name, p in params.items():
            self._update(name, p, grads[name].astype(p.dtype, copy=False))

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    # -- saving and restoring (checkpoints) ------------------------------------------------
    def get_config(self) -> dict:
        """The optimizer's kind and settings, e.g. ``{"name": "Adam", "learning_rate": ...}``:
        a checkpoint keeps them, so that a resumed run continues with the same ones."""
        settings = {k: v for k, v in vars(self).items() if isinstance(v, (int, float, bool))}
        settings.pop("iterations", None)
        if self.schedule is not None:
            settings["learning_rate"] = self.schedule.get_config()
        return {"name": type(self).__name__} | settings

    def get_state(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays (for ``np.savez``): iterations, then every slot."""
        state = {"iterations": np.array(self.iterations)}
        for kind, per_param in self.slots.items():
            for name, a in per_param.items():
                state[f"{kind}:{name}"] = a
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_state` returned (arrays are copied)."""
        self.iterations = int(state["iterations"])
        self.slots = {}
        for key, a in state.items():
            if key != "iterations":
                kind, name = key.split(":", 1)
                self.slots.setdefault(kind, {})[name] = np.array(a)


class Adam(Optimizer):
    """Adam with Keras's defaults: beta_1 0.9, beta_2 0.999, epsilon 1e-7.

    For a parameter p with gradient g, at step t = 1, 2, ...::

        m = beta_1 m + (1 - beta_1) g                 (running mean of g)
        v = beta_2 v + (1 - beta_2) g^2               (running mean of g^2)
        alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)   (bias correction)
        p = p - alpha * m / (sqrt(v) + epsilon)

    Keras adds epsilon to sqrt(v) *before* the bias correction, which it folds into alpha;
    the formula above does the same. This is the "epsilon hat" form given in the Adam paper
    just before its section 2.1, and it equals the textbook update
    ``m_hat / (sqrt(v_hat) + eps)`` with ``eps = epsilon / sqrt(1 - beta_2^t)``. Keras 2,
    tf.keras 2.x and Keras 3 (on every backend) all compute it this way. PyTorch's
    ``torch.optim.Adam`` adds its epsilon *after* the correction, ``sqrt(v_hat) + eps``, so
    the same number weighs more in Keras in the first steps: about 32 times more at t = 1
    (``1 / sqrt(1 - 0.999)``), fading to equal as t grows.
    """

    def __init__(
        self,
        learning_rate: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        m, v = self._slot("m", name, p), self._slot("v", name, p)
        t = self.iterations
        m *= self.beta_1
        m += (1 - self.beta_1) * g
        v *= self.beta_2
        v += (1 - self.beta_2) * g * g
        alpha = self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        p -= (alpha * m / (np.sqrt(v) + self.epsilon)).astype(p.dtype, copy=False)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as Keras's SGD.

    With velocity u (zero at the start)::

        u = momentum * u - lr * g
        p = p + u                                  (plain momentum)
        p = p + momentum * u - lr * g              (nesterov=True)

    momentum = 0 gives plain gradient descent, ``p = p - lr g``. The paper trains with
    momentum 0.99.
    """

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False
    ) -> None:
        super().__init__(learning_rate)
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        lr = p.dtype.type(self.learning_rate)
        if self.momentum == 0.0:
            p -= lr * g
            return
        u = self._slot("velocity", name, p)
        u *= self.momentum
        u -= lr * g
        if self.nesterov:
            p += self.momentum * u - lr * g
        else:
            p += u


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def get_optimizer(spec: str | Optimizer, learning_rate: float | None = None) -> Optimizer:
    """An optimizer from its Keras name ('adam', 'sgd') or the optimizer itself."""
    if isinstance(spec, Optimizer):
        return spec
    if spec not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {spec!r}")
    return OPTIMIZERS[spec]() if learning_rate is None else OPTIMIZERS[spec](learning_rate)
