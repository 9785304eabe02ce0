"""Conv2DTranspose: the paper's 2x2 "up-convolution", as ``keras.layers.Conv2DTranspose``."""

from __future__ import annotations

import numpy as np

from .base import Layer
from .conv2d import create_params, set_conv_options
from .padding import pair


class Conv2DTranspose(Layer):
    """Transposed convolution: every input pixel paints a kernel-sized patch of the output.

    Shapes
    ------
    x : (N, H, W, Cin)  ->  y : (N, Ho, Wo, filters)
    kernel : (kh, kw, filters, Cin) -- Keras's layout, output channels before input ones;
    bias : (filters,). With stride s and kernel k along one axis (Keras's output sizes):
    'valid': Ho = (H - 1) * s + max(k, s);   'same': Ho = H * s, cropping max(k - s, 0)
    rows of the full output, the smaller half at the top.
    The UNet's up-convolution is k = s = 2: the patches do not overlap and Ho = 2 H.

    Forward (yf the full, uncropped output)::

        yf[n, s*h+i, s*w+j, f] += sum_c x[n,h,w,c] * K[i,j,f,c]      y = act(crop(yf) + b)

    Backward, with dz = dL/dz (the activation's backward applied to dy, z = crop(yf) + b)
    and dyf = dz placed back on the full output, zeros in the cropped rows::

        dx[n,h,w,c] = sum_{i,j,f} dyf[n, s*h+i, s*w+j, f] * K[i,j,f,c]
        dK[i,j,f,c] = sum_{n,h,w} dyf[n, s*h+i, s*w+j, f] * x[n,h,w,c]
        db[f]       = sum_{n,h,w} dz[n,h,w,f]

    Computed with one matrix product ``x (N*H*W, Cin) @ K (Cin, kh*kw*F)``, which gives
    every patch at once; each kernel offset (i, j) is then added to the output with stride
    s. Backward gathers the same strided slices and uses two more products. The loop
    version is ``loops.conv2d_transpose_forward_loops``.

    Parameters are those of :class:`Conv2D`, plus ``strides`` (default 2).

    Initialisation: the initializer reads the fans from the kernel's shape as Keras does,
    ``fan_in = kh * kw * filters`` (the second-to-last axis times the kernel size). That is
    Keras's convention, not the true fan-in of a transposed conv. Each output value sums
    ``Cin`` channels times the kernel offsets that reach it, ``kh * kw * Cin / (sh * sw)``
    terms on average, which is just ``Cin`` for the UNet's k = s = 2. So ``he_normal`` draws
    with stddev ``sqrt(2 / (kh * kw * filters))``, as Keras's ``Conv2DTranspose`` does: for
    the paper's ``up6`` (1024 -> 512 channels) ``sqrt(2 / 2048)``, where the paper's rule
    ``sqrt(2 / N)`` with N the incoming connections would give ``sqrt(2 / 1024)``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int] = 2,
        strides: int | tuple[int, int] = 2,
        padding: str = "valid",
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        dtype: str = "float32",
        seed: int | None = None,
        name: str | None = None,
        **options: bool,
    ) -> None:
        super().__init__(name, **options)  # retain_cache, check_finite: see Layer
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
        self.strides = pair(strides, "strides", self.describe())

    def build(self, input_shape: tuple) -> None:
        """Create kernel (kh, kw, filters, Cin) and bias (filters,) for (N, H, W, Cin)."""
        kh, kw = self.kernel_size
        create_params(self, (kh, kw, self.filters, int(input_shape[-1])))  # Keras's layout
        super().build(input_shape)

    def _full_and_crop(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Size of the full output (Hf, Wf) and the (top, left) offset of the kept part."""
        sizes, offsets = [], []
        for n_in, k, s in (
            (h, self.kernel_size[0], self.strides[0]),
            (w, self.kernel_size[1], self.strides[1]),
        ):
            sizes.append((n_in - 1) * s + max(k, s))
            offsets.append(max(k - s, 0) // 2 if self.padding == "same" else 0)
        return (sizes[0], sizes[1]), (offsets[0], offsets[1])

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        n, h, w, _ = input_shape
        if self.padding == "same":
            return (n, h * self.strides[0], w * self.strides[1], self.filters)
        (hf, wf), _ = self._full_and_crop(h, w)
        return (n, hf, wf, self.filters)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._check_input(x)
        if not self.built:
            self.build(x.shape)
        self._check_channels(x)
        x = x.astype(self.dtype, copy=False)
        n, h, w, cin = x.shape
        (kh, kw), (sh, sw), f = self.kernel_size, self.strides, self.filters
        # >>> exercise conv2d_transpose_forward: cut by `exercises --level forward`
        kmat = self.params["kernel"].transpose(3, 0, 1, 2).reshape(cin, kh * kw * f)
        patches = (x.reshape(-1, cin) @ kmat).reshape(n, h, w, kh, kw, f)  # every patch
        (hf, wf), (top, left) = self._full_and_crop(h, w)
        yf = np.zeros((n, hf, wf, f), self.dtype)  # (N, Hf, Wf, F)
        for i in range(kh):
            for j in range(kw):  # offset (i, j) of each patch lands at (s*h + i, s*w + j)
                yf[:, i : i + sh * (h - 1) + 1 : sh, j : j + sw * (w - 1) + 1 : sw] += patches[
                    :, :, :, i, j, :
                ]
        _, ho, wo, _ = self.compute_output_shape(x.shape)
        z = yf[:, top : top + ho, left : left + wo, :]  # (N, Ho, Wo, F)
        if self.use_bias:
            z = z + self.params["bias"]
        # <<< exercise conv2d_transpose_forward
        y = z if self.activation is None else self.activation.forward(z)
        return self._remember(y, x, kmat, (hf, wf), (top, left))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = self._check_backward(dy)
        x, kmat, (hf, wf), (top, left) = self._take_cache()
        # >>> exercise conv2d_transpose_backward: `numpy-unet exercises` cuts out this block
        n, h, w, cin = x.shape
        (kh, kw), (sh, sw), f = self.kernel_size, self.strides, self.filters
        dz = dy if self.activation is None else self.activation.backward(dy)  # (N, Ho, Wo, F)
        dz = dz.astype(self.dtype, copy=False)
        dyf = np.zeros((n, hf, wf, f), self.dtype)  # the cropped rows get no gradient
        dyf[:, top : top + dz.shape[1], left : left + dz.shape[2], :] = dz
        dpatches = np.empty((n, h, w, kh, kw, f), self.dtype)
        for i in range(kh):
            for j in range(kw):  # gather what each patch offset contributed to
                dpatches[:, :, :, i, j, :] = dyf[
                    :, i : i + sh * (h - 1) + 1 : sh, j : j + sw * (w - 1) + 1 : sw
                ]
        dpatches = dpatches.reshape(n * h * w, kh * kw * f)  # (N*H*W, kh*kw*F)
        dkmat = x.reshape(-1, cin).T @ dpatches  # (Cin, kh*kw*F)
        self.grads = {"kernel": dkmat.reshape(cin, kh, kw, f).transpose(1, 2, 3, 0).copy()}
        if self.use_bias:
            self.grads["bias"] = dz.sum(axis=(0, 1, 2))
        return (dpatches @ kmat.T).reshape(n, h, w, cin)  # (N, H, W, Cin)
        # <<< exercise conv2d_transpose_backward
