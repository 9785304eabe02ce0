"""Optional cross-check against PyTorch: same outputs and same gradients for the same weights.

Skipped unless PyTorch is installed (``pip install torch==2.13.0``); it is never a dependency
of the package or of the test suite. The PyTorch twin lives in benchmarks/torch_unet.py.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

from numpy_unet import UNet
from numpy_unet.losses import BinaryCrossentropy, CategoricalCrossentropy
from numpy_unet.teach.checks import random_biases

torch = pytest.importorskip("torch")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
from torch_unet import TorchUNet, to_numpy, to_torch  # noqa: E402

MODELS = {
    "seed": lambda: UNet((32, 32, 1), filters=4, depth=3, seed=0, dtype="float64"),
    "paper": lambda: UNet.paper(
        input_shape=(60, 60, 1), filters=4, depth=2, seed=0, dtype="float64"
    ),
    "valid-upsample-3-classes": lambda: UNet(
        (48, 48, 1), filters=4, depth=2, padding="valid", num_classes=3, seed=1, dtype="float64"
    ),
}


@pytest.mark.parametrize("which", list(MODELS))
def test_same_outputs_and_gradients_as_pytorch(which, rng):
    model = MODELS[which]()
    random_biases(model, rng)
    twin = TorchUNet(model, torch.float64)
    x = rng.random((2, *model.config["input_shape"]))
    y = model.forward(x)
    xt = to_torch(x, torch.float64).requires_grad_(True)
    yt = twin.forward(xt)
    np.testing.assert_allclose(y, to_numpy(yt), rtol=1e-10, atol=1e-12)

    if y.shape[-1] == 1:
        target = (rng.random(y.shape) < 0.5).astype(np.float64)
        loss = BinaryCrossentropy()
        loss_t = torch.nn.functional.binary_cross_entropy(yt, to_torch(target, torch.float64))
    else:
        labels = rng.integers(0, y.shape[-1], y.shape[:-1])
        loss = CategoricalCrossentropy()
        loss_t = torch.nn.functional.nll_loss(torch.log(yt), torch.tensor(labels))
        target = labels
    value = loss.forward(y, target)
    assert value == pytest.approx(loss_t.item(), rel=1e-10)
    dx = model.backward(loss.backward())
    loss_t.backward()
    np.testing.assert_allclose(dx, to_numpy(xt.grad), rtol=1e-8, atol=1e-14)
    for layer in model.layers:
        if layer.name in twin.weights:
            k = layer.grads["kernel"].transpose(3, 2, 0, 1)
            np.testing.assert_allclose(
                k, twin.weights[layer.name]["kernel"].grad.numpy(), rtol=1e-8, atol=1e-14
            )
            np.testing.assert_allclose(
                layer.grads["bias"],
                twin.weights[layer.name]["bias"].grad.numpy(),
                rtol=1e-8,
                atol=1e-14,
            )
