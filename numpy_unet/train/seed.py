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
"""

from __future__ import annotations

from ..data import ImageDataGenerator
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
    """
    classes = model.get_config()["num_classes"]
    model.compile(
        optimizer=Adam(learning_rate),
        loss="binary_crossentropy" if classes == 1 else "categorical_crossentropy",
        metrics=["accuracy"],
    )
    return dict(
        batch_size=2,
        epochs=1,
        steps_per_epoch=steps_per_epoch,
        augment=ImageDataGenerator(**SEED_DATA_GEN_ARGS, seed=seed) if augment else None,
        seed=seed,
    )
