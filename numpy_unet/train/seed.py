"""The seed's training recipe: its ``main.py``, as options of ``compile`` and ``fit``.

The seed (zhixuhao/unet's ``main.py``) trains its UNet like this::

    data_gen_args = dict(rotation_range=0.2, width_shift_range=0.05, height_shift_range=0.05,
                         shear_range=0.05, zoom_range=0.05, horizontal_flip=True,
                         fill_mode='nearest')
    myGene = trainGenerator(2, 'data/membrane/train', 'image', 'label', data_gen_args)
    model = unet()                     # compiled with Adam(1e-4), binary cross-entropy
    model_checkpoint = ModelCheckpoint('unet_membrane.hdf5', monitor='loss', save_best_only=True)
    model.fit_generator(myGene, steps_per_epoch=300, epochs=1, callbacks=[model_checkpoint])

Here the same run is::

    model = UNet((256, 256, 1))                      # 64 filters, as unet()
    images, masks = load_folder("data/membrane/train", size=256)
    history = model.fit(images, masks, checkpoint_dir="run", **seed_recipe(model, seed=1))

With no validation data, ``fit`` keeps the weights of the lowest *training* loss
(``best_weights.npz``), as the seed's checkpoint monitors ``loss``. The seed's own README
suggests longer training (2000 steps x 5 epochs); pass ``steps_per_epoch`` and ``epochs``.

The batches themselves, exactly: :class:`SeedStream` is ``trainGenerator`` for one class,
two of Keras's iterators (:mod:`numpy_unet.data.keras_iterator`) over the images and the
masks with the same seed, so that each mask gets its image's transform, then ``adjustData``
(divide by 255, threshold the mask at 0.5). :func:`load_seed_folder` loads a folder as
``flow_from_directory`` does (Keras's file order, Pillow's nearest resize, values 0..255)::

    images, masks = load_seed_folder("data/membrane/train", size=256)
    model.fit(images / 255, masks / 255 > 0.5, checkpoint_dir="run",
              **seed_recipe(model, seed=1, stream=(images, masks)))

``numpy-unet train --recipe seed`` trains from that stream.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data import ImageDataGenerator
from ..data.keras_iterator import keras_image_files, load_like_keras
from ..data.loading import MAX_TOTAL_PIXELS, _check_total_pixels
from ..optimizers import Adam

# the seed's data_gen_args, word for word (rotation and shear in degrees, shifts and zoom as
# fractions: a 256 x 256 image moves by up to 12.8 pixels and is scaled by 0.95 to 1.05)
SEED_DATA_GEN_ARGS = dict(
    rotation_range=0.2,
    width_shift_range=0.05,
    height_shift_range=0.05,
    shear_range=0.05,
    zoom_range=0.05,
    horizontal_flip=True,
    fill_mode="nearest",
)


def seed_recipe(
    model: object,
    learning_rate: float = 1e-4,
    seed: int = 1,
    augment: bool = True,
    steps_per_epoch: int = 300,
    stream: tuple[np.ndarray, np.ndarray] | None = None,
    batch_size: int = 2,
) -> dict:
    """Compile ``model`` as the seed does and return the rest of its recipe as ``fit``
    options: batches of 2, 300 steps, 1 epoch, Keras's augmentation with the seed's
    arguments (``data.ImageDataGenerator``).

    Parameters
    ----------
    model : UNet
        A one-class (sigmoid) UNet, or one of ``K`` classes (softmax, categorical
        cross-entropy: the seed's ``flag_multi_class``).
    learning_rate : float
        Adam's learning rate (the seed: 1e-4).
    seed : int
        Seed of the batches and the augmentation (the seed's ``trainGenerator``: 1).
    augment : bool
        Augment as the seed does; False trains on the images as they are.
    steps_per_epoch : int
        The seed: 300.
    stream : (images, masks), optional
        The training images and masks as Keras loads them (values 0..255, see
        :func:`load_seed_folder`): train from the seed's own batches (:class:`SeedStream`)
        instead of ``fit``'s order with ``ImageDataGenerator`` as ``augment``.
    batch_size : int
        The seed: 2.
    """
    classes = model.get_config()["num_classes"]
    model.compile(
        optimizer=Adam(learning_rate),
        loss="binary_crossentropy" if classes == 1 else "categorical_crossentropy",
        metrics=["accuracy"],
    )
    options = dict(batch_size=batch_size, epochs=1, steps_per_epoch=steps_per_epoch, seed=seed)
    if stream is not None:
        args = SEED_DATA_GEN_ARGS if augment else {}
        return options | dict(batches=SeedStream(*stream, batch_size, seed, args))
    augment = ImageDataGenerator(**SEED_DATA_GEN_ARGS, seed=seed) if augment else None
    return options | dict(augment=augment)


def adjust_data(images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The seed's ``adjustData`` for one class: images / 255, masks / 255 set to 1 above 0.5
    and to 0 elsewhere (float32, as Keras's batches)."""
    return images / np.float32(255), (masks / np.float32(255) > 0.5).astype(np.float32)


class SeedStream:
    """The seed's ``trainGenerator`` for one class, as a function of the batch number.

    Two of Keras's iterators, ``ImageDataGenerator(**data_gen_args).flow(images, seed=seed)``
    and the same over ``masks``: both draw the same order and the same transforms, batch by
    batch, so each mask is moved as its image. ``stream(k)`` is the ``k``-th batch (from 0),
    after ``adjustData``; it depends on ``k`` alone, so a resumed run continues the stream.

    Parameters
    ----------
    images, masks : numpy.ndarray
        ``(N, H, W, 1)`` with values 0..255, as Keras loads them (:func:`load_seed_folder`).
    batch_size : int
        The seed: 2.
    seed : int
        The seed: 1.
    data_gen_args : dict
        The seed's ``data_gen_args`` (:data:`SEED_DATA_GEN_ARGS`); ``{}`` for none.
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        batch_size: int = 2,
        seed: int = 1,
        data_gen_args: dict | None = None,
    ) -> None:
        if np.shape(images) != np.shape(masks):
            raise ValueError(
                f"SeedStream: images {np.shape(images)} and masks {np.shape(masks)} differ"
            )
        args = SEED_DATA_GEN_ARGS if data_gen_args is None else dict(data_gen_args)
        generator = ImageDataGenerator(**args)
        self.images = generator.flow(images, batch_size=batch_size, shuffle=True, seed=seed)
        self.masks = generator.flow(masks, batch_size=batch_size, shuffle=True, seed=seed)
        self.settings = {
            "stream": "the seed's trainGenerator",
            "batch_size": batch_size,
            "seed": seed,
            "data_gen_args": args,
        }  # a checkpoint compares these

    def __call__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``k``: ``(B, H, W, 1)`` images in [0, 1] and 0/1 masks, float32."""
        return adjust_data(self.images.batch(k), self.masks.batch(k))


def load_seed_folder(
    folder: str | os.PathLike,
    size: int | tuple[int, int] = 256,
    image_folder: str = "image",
    mask_folder: str = "label",
    max_total_pixels: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The images and masks of ``folder`` as the seed's ``trainGenerator`` loads them:
    ``flow_from_directory(folder, classes=[image_folder], color_mode="grayscale",
    target_size=size)``, and the same for ``mask_folder``. Keras's file order (plain string
    order), Pillow's nearest-neighbour resize, values 0..255 (float32, ``(N, h, w, 1)``).
    The files' headers may declare ``max_total_pixels`` in all (default 2**30), checked
    before any is decoded."""
    folder = Path(folder)
    size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    where = "load_seed_folder"
    found = []
    for sub in (image_folder, mask_folder):
        if not (folder / sub).is_dir():
            raise FileNotFoundError(f"{where}: {folder} has no {sub}/ folder (the seed's layout)")
        found.append(keras_image_files(folder / sub))
    images, masks = found
    names = ([Path(p).name for p in images], [Path(p).name for p in masks])
    if not images or names[0] != names[1]:
        raise FileNotFoundError(
            f"{where}: {folder}/{image_folder} and {folder}/{mask_folder} must hold images of "
            f"the same names, at least one ({len(images)} and {len(masks)} found)"
        )
    budget = MAX_TOTAL_PIXELS if max_total_pixels is None else max_total_pixels
    _check_total_pixels(folder, [Path(p) for paths in found for p in paths], budget)
    load = [[load_like_keras(p, "grayscale", size, where) for p in paths] for paths in found]
    return np.stack(load[0]), np.stack(load[1])  # (N, h, w, 1) each
