"""What every layer shares: a name, its parameters and their gradients, and input checks.

A layer is an object with

- ``forward(x, training=False) -> y``: computes the output and keeps what backward needs;
- ``backward(dy) -> dx``: takes dL/dy, returns dL/dx and stores dL/dparam in ``grads``;
- ``params`` and ``grads``: dicts keyed by Keras's names (``"kernel"``, ``"bias"``).

That is the whole protocol. The base class below only adds Keras's conveniences
(``name``, ``build``, ``get_weights``, ``count_params``) and the checks that turn a bad
input into an error message naming the layer, instead of a NumPy traceback.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict

import numpy as np

_name_counters: defaultdict[str, itertools.count] = defaultdict(itertools.count)


def _default_name(cls: type) -> str:
    """Keras-style unique names: ``conv2d``, ``conv2d_1``, ``conv2d_2``, ..."""
    # split camel case as Keras does: Conv2DTranspose -> conv2_d_transpose -> conv2d_transpose
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cls.__name__).lower()
    base = base.replace("2_d", "2d")
    k = next(_name_counters[base])
    return base if k == 0 else f"{base}_{k}"


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_dtype(dtype: object, where: str) -> np.dtype:
    """Return ``dtype`` as a NumPy dtype, refusing anything but float32 and float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"{where}: dtype must be 'float32' or 'float64', got {dtype!r}") from err
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{where}: dtype must be 'float32' or 'float64', got {dt}")
    return dt


def count_nonfinite(x: np.ndarray) -> int:
    """How many NaN or infinite values ``x`` holds.

    A NaN or inf makes the sum non-finite: one fast reduction instead of a boolean array per
    call; only then count exactly (a finite sum that overflowed counts 0).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(x)):
            return 0
    return int(x.size - np.count_nonzero(np.isfinite(x)))


class Layer:
    """Base class of all layers (see the module docstring for the protocol).

    Parameters
    ----------
    name : str, optional
        Keras-style name; by default the class name in snake case with a counter.
    retain_cache : bool
        True: ``backward`` may run again (with another dy) after one ``forward``. False:
        ``backward`` frees what its ``forward`` kept, as soon as it has used it, like
        PyTorch's ``retain_graph=False``; a UNet builds its layers this way, so a training
        step's activations go as soon as they can.
    check_finite : bool
        Check every input for NaN and inf (one pass over it). A UNet builds its layers with
        False, except the first, and checks its output instead (a NaN anywhere inside
        reaches the output); a Conv2D's activation gets False (its input is the conv's
        output, computed from checked input).
    """

    def __init__(
        self, name: str | None = None, *, retain_cache: bool = True, check_finite: bool = True
    ) -> None:
        self.name = name if name is not None else _default_name(type(self))
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.built = False
        self.input_shape: tuple | None = None  # (H, W, C) the layer was built for
        self._cache: tuple | None = None  # what forward keeps for backward
        self._out_shape: tuple = ()  # shape of the last forward's output
        self.retain_cache = bool(retain_cache)
        self.check_finite = bool(check_finite)

    # -- the protocol -------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(x, training=training)

    # -- Keras conveniences -----------------------------------------------------------
    def build(self, input_shape: tuple) -> None:
        """Create the parameters for inputs of shape ``(N, H, W, C)`` (N may be None)."""
        self.input_shape = tuple(input_shape[1:])
        self.built = True

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Output shape for an input of shape ``input_shape`` (default: unchanged)."""
        return tuple(input_shape)

    def count_params(self) -> int:
        """Number of scalar parameters."""
        return int(sum(p.size for p in self.params.values()))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameters, in Keras's order (kernel, then bias)."""
        return [p.copy() for p in self.params.values()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Set the parameters from a list shaped like ``get_weights()``.

        All arrays are checked before any is written, so on error the layer is unchanged.
        """
        names = list(self.params)
        if not self.built:
            raise RuntimeError(
                f"{self.describe()}: set_weights() before the layer is built; call "
                "build(input_shape) or forward() once first"
            )
        if len(weights) != len(names):
            raise ValueError(
                f"{self.describe()}: expected {len(names)} arrays ({', '.join(names)}), "
                f"got {len(weights)}"
            )
        new = []
        for key, w in zip(names, weights):
            w = np.asarray(w)
            if w.shape != self.params[key].shape:
                raise ValueError(
                    f"{self.describe()}: '{key}' must have shape {self.params[key].shape}, "
                    f"got {w.shape}"
                )
            if not np.issubdtype(w.dtype, np.floating):
                raise ValueError(f"{self.describe()}: '{key}' must hold floats, got {w.dtype}")
            with np.errstate(over="ignore"):
                w = w.astype(self.params[key].dtype, copy=True)
            if count_nonfinite(w):
                raise ValueError(
                    f"{self.describe()}: '{key}' holds NaN, inf or values too large for "
                    f"{w.dtype}; the layer is unchanged"
                )
            new.append(w)
        for key, w in zip(names, new):
            self.params[key] = w

    def describe(self) -> str:
        """``"Conv2D 'conv2d_3'"``: how error messages name the layer."""
        return f"{type(self).__name__} '{self.name}'"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    # -- checks shared by the layers ------------------------------------------------------
    def _check_input(self, x: object, ndim: int | None = 4) -> np.ndarray:
        """Return ``x`` as an array after checking rank, dtype and finiteness."""
        x = np.asarray(x)
        if ndim is not None and x.ndim != ndim:
            hint = ""
            if ndim == 4 and x.ndim == 3:
                hint = " Add the batch axis: x[None] for one image of shape (H, W, C)."
            elif ndim == 4 and x.ndim == 2:
                hint = " For one grayscale image of shape (H, W) use x[None, :, :, None]."
            raise ValueError(
                f"{self.describe()}: expected a 4-D input (batch, height, width, channels), "
                f"got shape {x.shape}.{hint}"
            )
        if x.dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"{self.describe()}: expected a float32 or float64 input, got dtype {x.dtype}. "
                "Convert it first, e.g. x.astype('float32') / 255 for 8-bit images."
            )
        if self.check_finite:
            bad = count_nonfinite(x)
            if bad:
                raise ValueError(
                    f"{self.describe()}: input contains {bad} NaN or infinite value(s) out of "
                    f"{x.size}"
                )
        return x

    def _check_channels(self, x: np.ndarray) -> None:
        """The channel count must be the one the layer was built for."""
        if self.input_shape is not None and x.shape[-1] != self.input_shape[-1]:
            raise ValueError(
                f"{self.describe()}: was built for inputs with {self.input_shape[-1]} "
                f"channels, got {x.shape[-1]} (input shape {x.shape})"
            )

    def _remember(self, y: np.ndarray, *cache: object) -> np.ndarray:
        """Keep what backward needs and the output's shape; return ``y``."""
        self._cache = cache
        self._out_shape = y.shape
        return y

    def clear_cache(self) -> None:
        """Forget what the last ``forward`` kept for ``backward`` (inference keeps nothing)."""
        self._cache = None

    def _take_cache(self) -> tuple:
        """What forward kept for backward; forgotten here unless ``retain_cache``."""
        cache = self._cache
        if not self.retain_cache:
            self._cache = None
        return cache

    def _check_backward(self, dy: object) -> np.ndarray:
        """``dy`` must come after a forward and have the shape of that forward's output."""
        if self._cache is None:
            raise RuntimeError(
                f"{self.describe()}: backward() called before forward(), or twice after one "
                "forward() with retain_cache=False (as in a UNet): run forward() again"
            )
        dy = np.asarray(dy)
        if dy.shape != self._out_shape:
            raise ValueError(
                f"{self.describe()}: backward() expected dy of shape {self._out_shape} "
                f"(the shape of the last forward's output), got {dy.shape}"
            )
        if dy.dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"{self.describe()}: backward() expected a float32 or float64 dy, "
                f"got dtype {dy.dtype}"
            )
        return dy
