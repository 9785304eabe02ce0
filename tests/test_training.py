"""fit(): the loss goes down, runs repeat with a seed, a resumed run equals a straight one."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from numpy_unet import UNet
from numpy_unet.losses import BinaryCrossentropy
from numpy_unet.optimizers import Adam
from numpy_unet.train.checkpoint import BEST, CHECKPOINT
from numpy_unet.train.fit import train_step


def tiny_data(n: int = 6, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bright squares on noise; the mask marks the squares."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size, 1), np.float32)
    for m in masks:
        r, c = rng.integers(0, size - 6, 2)
        m[r : r + 6, c : c + 6] = 1
    images = (0.6 * masks + 0.2 * rng.random(masks.shape)).astype(np.float32)
    return images, masks


def small_model(seed: int = 0) -> UNet:
    model = UNet((16, 16, 1), filters=4, depth=2, seed=seed)
    model.compile(optimizer=Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy", "dice"])
    return model


def test_train_step_is_forward_loss_backward_update():
    x, y = tiny_data(2)
    model = small_model()
    before = model.get_weights()
    value, y_pred = train_step(model, model.optimizer, model.loss, x, y)
    assert y_pred.shape == y.shape and np.isfinite(value)
    assert model.optimizer.iterations == 1
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert sum(changed) > len(changed) // 2


def test_short_fit_lowers_the_loss_and_records_history():
    x, y = tiny_data(8)
    model = small_model()
    history = model.fit(
        x[:6], y[:6], batch_size=2, epochs=15, validation_data=(x[6:], y[6:]), verbose=0
    )
    h = history.history
    assert set(h) >= {"loss", "accuracy", "dice", "val_loss", "val_accuracy", "val_dice", "time"}
    assert len(h["loss"]) == 15 and history.epoch == list(range(15))
    assert h["loss"][-1] < 0.7 * h["loss"][0]
    assert h["val_loss"][-1] < h["val_loss"][0]


def test_same_seeds_same_run():
    x, y = tiny_data(6)
    runs = []
    for _ in range(2):
        model = small_model(seed=3)
        model.fit(x, y, batch_size=2, epochs=2, seed=5, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_progress_line_and_checkpoint_files(tmp_path, capsys):
    x, y = tiny_data(6)
    model = small_model()
    model.fit(x, y, batch_size=2, epochs=2, validation_split=0.34, checkpoint_dir=tmp_path)
    out = capsys.readouterr().out
    assert "Epoch 2/2 - 2/2 - " in out and "loss: " in out and "val_dice: " in out
    assert (tmp_path / CHECKPOINT).exists() and (tmp_path / BEST).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(FileExistsError, match="resume=True"):
        small_model().fit(x, y, epochs=1, checkpoint_dir=tmp_path, verbose=0)


class InterruptAt(BinaryCrossentropy):
    """A loss that presses Ctrl-C (sends SIGINT to this process) during call number k."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k, self.calls = k, 0

    def forward(self, y_pred, y_true):
        self.calls += 1
        if self.calls == self.k:
            os.kill(os.getpid(), signal.SIGINT)
        return super().forward(y_pred, y_true)


# loss calls: 1, 2 = epoch 1's steps, 3 = its validation, 4 = epoch 2's first step
@pytest.mark.parametrize(("stop_at", "steps_done"), [(1, 1), (2, 2), (4, 3)])
def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path, stop_at, steps_done):
    from numpy_unet.data import Augmenter

    x, y = tiny_data(8)
    options = dict(
        batch_size=2, epochs=3, steps_per_epoch=2, validation_data=(x[6:], y[6:]), seed=1, verbose=0
    )

    straight = small_model(seed=2)
    ref = straight.fit(x[:6], y[:6], augment=Augmenter(seed=4), **options)

    interrupted = small_model(seed=2)
    interrupted.loss = InterruptAt(stop_at)
    with pytest.raises(KeyboardInterrupt, match="resume from"):
        interrupted.fit(x[:6], y[:6], augment=Augmenter(seed=4), checkpoint_dir=tmp_path, **options)
    assert interrupted.optimizer.iterations == steps_done  # the step in progress was finished

    resumed = small_model(seed=99)  # a new process would start from different weights
    history = resumed.fit(
        x[:6], y[:6], augment=Augmenter(seed=77), checkpoint_dir=tmp_path, resume=True, **options
    )
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 6
    np.testing.assert_allclose(history.history["val_loss"], ref.history["val_loss"], rtol=1e-6)


def test_resume_refuses_other_data(tmp_path):
    x, y = tiny_data(6)
    small_model().fit(x, y, epochs=1, checkpoint_dir=tmp_path, verbose=0)
    with pytest.raises(ValueError, match="other data or settings"):
        small_model().fit(
            x[::-1].copy(),
            y[::-1].copy(),
            epochs=2,
            checkpoint_dir=tmp_path,
            resume=True,
            verbose=0,
        )


def test_fit_checks_its_inputs():
    x, y = tiny_data(4)
    model = UNet((16, 16, 1), filters=2, depth=2)
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y)
    model.compile()
    with pytest.raises(ValueError, match="0/255"):
        model.fit(x, 255 * y, verbose=0)
    with pytest.raises(ValueError, match="masks must match"):
        model.fit(x, y[:, :8, :8], verbose=0)
    with pytest.raises(ValueError, match="unknown metrics"):
        model.compile(metrics=["f1"])
