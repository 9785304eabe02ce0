"""Conv2D: the 2-D convolution of Keras (a cross-correlation), stride 1, with im2col.

The same computation one index at a time is ``loops.conv2d_forward_loops`` and
``loops.conv2d_backward_loops``. Inside a UNet whose speed switch is on, the model's engine
(``numpy_unet/fast/``) computes the conv by faster algorithms where it has one: that is the
one ``if`` in forward and backward below. The tests check that all give the same numbers.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .activations import get_activation
from .base import Layer, as_float_dtype
from .initializers import get_initializer
from .padding import check_padding, conv_output_length, pad_same, pair, unpad_same


class Conv2D(Layer):
    """2-D convolution over (N, H, W, C) inputs, as ``keras.layers.Conv2D`` with stride 1.

    Shapes
    ------
    x : (N, H, W, Cin)  ->  y : (N, Ho, Wo, filters)
    kernel : (kh, kw, Cin, filters), bias : (filters,)
    'same':  Ho, Wo = H, W; zero padding of (k-1)//2 before and k-1-(k-1)//2 after, so a
             3x3 kernel pads 1 on each side and a 2x2 kernel pads 0 before and 1 after.
    'valid': Ho, Wo = H - kh + 1, W - kw + 1 (no padding).

    Forward, with xp the padded input and ``act`` the activation::

        z[n,h,w,f] = b[f] + sum_{i,j,c} xp[n, h+i, w+j, c] * K[i,j,c,f]      y = act(z)

    Backward, with dz = dL/dz (the activation's backward applied to dy)::

        dK[i,j,c,f]    = sum_{n,h,w} xp[n, h+i, w+j, c] * dz[n,h,w,f]
        db[f]          = sum_{n,h,w} dz[n,h,w,f]
        dxp[n,h+i,w+j,c] += sum_f dz[n,h,w,f] * K[i,j,c,f]   (then cut the padding off)

    Computed with im2col: every (kh, kw, Cin) window becomes one row of a matrix ``cols``
    of shape (N*Ho*Wo, kh*kw*Cin); then ``z = cols @ K.reshape(-1, filters)`` is one matrix
    product, ``dK = cols.T @ dz`` another, and ``dcols = dz @ K.T`` is folded back onto
    the input by adding each kernel offset's slice (col2im).

    Parameters
    ----------
    filters : int
        Number of output channels.
    kernel_size : int or (int, int)
    padding : {'same', 'valid'}
    activation : {None, 'linear', 'relu', 'sigmoid', 'softmax'}
    use_bias : bool
    kernel_initializer : {'he_normal', 'glorot_uniform'}
        Keras's default is 'glorot_uniform'; the seed's UNet passes 'he_normal' explicitly.
    dtype : {'float32', 'float64'}
        Dtype of the parameters and of the computation; inputs are cast to it.
    seed : int, optional
        Seed of the kernel initializer.
    name : str, optional
    **options
        ``retain_cache``, ``check_finite``: see :class:`Layer`.

    Attributes
    ----------
    engine : numpy_unet.fast.Engine or None
        Set by the UNet that holds this layer while the UNet's speed switch is on
        (``UNet.fast``): the engine that computes y (and, in backward, dxp and the
        gradients) where it has a faster algorithm than the im2col below, and hands a ReLU's
        output to the activation layer (``ReLU.keep``). None (a layer on its own, or the
        switch off): always the im2col below.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        padding: str = "valid",
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        dtype: str = "float32",
        seed: int | None = None,
        name: str | None = None,
        **options: bool,
    ) -> None:
        super().__init__(name, **options)
        self.engine = None  # the speed engine of the model that holds this layer (see above)
        set_conv_options(
            self,
            filters,
            kernel_size,
            padding,
            activation,
            use_bias,
            kernel_initializer,
            dtype,
            seed,
        )

    def build(self, input_shape: tuple) -> None:
        """Create kernel (kh, kw, Cin, filters) and bias (filters,) for (N, H, W, Cin)."""
        kh, kw = self.kernel_size
        create_params(self, (kh, kw, int(input_shape[-1]), self.filters))
        super().build(input_shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        n, h, w, _ = input_shape
        kh, kw = self.kernel_size
        ho = conv_output_length(h, kh, self.padding)
        wo = conv_output_length(w, kw, self.padding)
        return (n, ho, wo, self.filters)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._check_input(x)
        if not self.built:
            self.build(x.shape)
        self._check_channels(x)
        x = x.astype(self.dtype, copy=False)  # compute in the layer's dtype, as Keras does
        n, ho, wo, f = self.compute_output_shape(x.shape)
        if ho < 1 or wo < 1:
            raise ValueError(
                f"{self.describe()}: input {x.shape[1]}x{x.shape[2]} is smaller than the "
                f"{self.kernel_size[0]}x{self.kernel_size[1]} kernel with padding='valid'"
            )
        xp = pad_same(x, *self.kernel_size, self.padding)  # (N, Hp, Wp, Cin)
        kernel, bias = self.params["kernel"], self.params.get("bias")
        if self.engine is not None and self.engine.runs_conv(xp.shape, kernel.shape):
            # the model's speed engine: the same y as the lines below, by a faster algorithm
            # for this shape, a ReLU taken inside its products (numpy_unet/fast/engine.py)
            y = self.engine.conv(xp, kernel, bias, self.activation)  # (N, Ho, Wo, F)
        else:
            # >>> exercise conv2d_forward: cut by `exercises --level forward`
            cols = im2col(xp, *self.kernel_size)  # (N*Ho*Wo, kh*kw*Cin)
            z = (cols @ kernel.reshape(-1, f)).reshape(n, ho, wo, f)  # (N, Ho, Wo, F)
            if bias is not None:
                z += bias
            # <<< exercise conv2d_forward
            y = z if self.activation is None else self.activation.forward(z)
        # keep x, not its padded copy xp: x is the previous layer's output, kept anyway, so
        # the conv adds nothing to a step's memory; backward pads it again (one copy)
        return self._remember(y, x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = self._check_backward(dy)
        (x,) = self._take_cache()
        xp = pad_same(x, *self.kernel_size, self.padding)  # (N, Hp, Wp, Cin)
        dz = dy if self.activation is None else self.activation.backward(dy)  # (N, Ho, Wo, F)
        dz = dz.astype(self.dtype, copy=False)
        kernel = self.params["kernel"]  # (kh, kw, Cin, F)
        if self.engine is not None and self.engine.runs_conv(xp.shape, kernel.shape):
            # the model's speed engine, as in forward: dxp and {"kernel": dK, "bias": db}
            dxp, self.grads = self.engine.conv_backward(xp, kernel, dz, self.use_bias)
        else:
            # >>> exercise conv2d_backward: `numpy-unet exercises` cuts out this block
            dz = dz.reshape(-1, self.filters)  # (N*Ho*Wo, F)
            cols = im2col(xp, *self.kernel_size)  # recomputed, not cached: saves 9x memory
            self.grads = {"kernel": (cols.T @ dz).reshape(kernel.shape)}  # (kh, kw, Cin, F)
            if self.use_bias:
                self.grads["bias"] = dz.sum(axis=0)  # (F,)
            dcols = dz @ kernel.reshape(-1, self.filters).T  # (N*Ho*Wo, kh*kw*Cin)
            dxp = col2im(dcols, xp.shape, *self.kernel_size)  # (N, Hp, Wp, Cin)
            # <<< exercise conv2d_backward
        return unpad_same(dxp, x.shape, *self.kernel_size, self.padding)  # (N, H, W, Cin)

    def clear_cache(self) -> None:
        """Forget what forward kept, the activation's too."""
        super().clear_cache()
        if self.activation is not None:
            self.activation.clear_cache()


def set_conv_options(
    layer: Layer,
    filters: int,
    kernel_size: object,
    padding: str,
    activation: str | None,
    use_bias: bool,
    kernel_initializer: str,
    dtype: str,
    seed: int | None,
) -> None:
    """Check and store the arguments Conv2D and Conv2DTranspose share (Keras's names)."""
    where = layer.describe()
    if int(filters) < 1:
        raise ValueError(f"{where}: filters must be a positive int, got {filters!r}")
    layer.filters = int(filters)
    layer.kernel_size = pair(kernel_size, "kernel_size", where)
    layer.padding = check_padding(padding, where)
    layer.activation_name = activation
    layer.activation = get_activation(activation, layer.name, layer.retain_cache)
    layer.use_bias = bool(use_bias)
    layer.kernel_initializer = kernel_initializer
    layer._init = get_initializer(kernel_initializer, where)
    layer.dtype = as_float_dtype(dtype, where)
    layer.seed = seed


def create_params(layer: Layer, kernel_shape: tuple[int, ...]) -> None:
    """The kernel from the layer's initializer and seed, and a zero bias (Keras's default)."""
    rng = np.random.default_rng(layer.seed)
    layer.params = {"kernel": layer._init(kernel_shape, rng, layer.dtype)}
    if layer.use_bias:
        layer.params["bias"] = np.zeros(layer.filters, layer.dtype)


def im2col(xp: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Windows of ``xp`` (N, Hp, Wp, C) as rows: (N*Ho*Wo, kh*kw*C), ordered (i, j, c).

    ``sliding_window_view`` gives every window without copying; the reshape copies them
    into one matrix so that the convolution becomes a single BLAS product.
    """
    # >>> exercise conv2d_forward: cut by `exercises --level forward`
    n, hp, wp, c = xp.shape
    ho, wo = hp - kh + 1, wp - kw + 1
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))  # (N, Ho, Wo, C, kh, kw)
    windows = windows.transpose(0, 1, 2, 4, 5, 3)  # (N, Ho, Wo, kh, kw, C): kernel order
    return windows.reshape(n * ho * wo, kh * kw * c)
    # <<< exercise conv2d_forward


def col2im(dcols: np.ndarray, xp_shape: tuple, kh: int, kw: int) -> np.ndarray:
    """Adjoint of :func:`im2col`: add each row's window back onto an (N, Hp, Wp, C) array.

    One Python iteration per kernel offset (i, j), never per pixel: offset (i, j) of every
    window lands on the input shifted by (i, j).
    """
    # >>> exercise conv2d_backward: `numpy-unet exercises` cuts out this block
    n, hp, wp, c = xp_shape
    ho, wo = hp - kh + 1, wp - kw + 1
    dcols = dcols.reshape(n, ho, wo, kh, kw, c)
    dxp = np.zeros(xp_shape, dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, i : i + ho, j : j + wo, :] += dcols[:, :, :, i, j, :]
    return dxp
    # <<< exercise conv2d_backward
