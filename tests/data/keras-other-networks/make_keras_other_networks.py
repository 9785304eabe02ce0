"""Keras files of networks that are *not* the seed's UNet, though their weights have its shapes.

Each is the seed's ``model.py`` (``unet()``, with 64 filters replaced by 1 to keep the files
small) with one change that alters its numbers but no weight shape:

- ``bilinear``: every ``UpSampling2D`` with ``interpolation="bilinear"``;
- ``swapped``: the deepest skip concatenated the other way round, ``concatenate([up6, drop4])``;
- ``average``: the first pooling an ``AveragePooling2D``;
- ``elu``: the head's ``Conv2D(2, 3)`` with ``activation="elu"``;

and ``seed``, the network unchanged. The four changed ones are saved as ``NAME.keras``
(Keras 3's zip) and ``NAME.h5`` (legacy ``model.save``, as the seed's ``unet_membrane.hdf5``);
``seed`` and ``bilinear`` also as ``NAME.weights.h5`` (weights only: no config) with
``NAME.json`` (``model.to_json()``). ``tests/test_keras_files.py`` checks that
``UNet.from_keras`` refuses the four changed networks, naming the layer, and that a
``.weights.h5`` loads with a warning unless a config says otherwise.

Needs Keras (nothing in the project does). Written with Keras 3.15 on the torch backend::

    KERAS_BACKEND=torch /work/kerasenv/bin/python make_keras_other_networks.py
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
from keras.layers import (  # noqa: E402
    AveragePooling2D,
    Conv2D,
    Dropout,
    Input,
    MaxPooling2D,
    UpSampling2D,
    concatenate,
)
from keras.models import Model  # noqa: E402


def unet(f=1, input_size=(32, 32, 1), change=None):
    """The seed's unet() with ``f`` filters and at most one change."""

    def c(n, k, activation="relu"):
        return Conv2D(n, k, activation=activation, padding="same", kernel_initializer="he_normal")

    def up(x):
        interpolation = "bilinear" if change == "bilinear" else "nearest"
        return UpSampling2D(size=(2, 2), interpolation=interpolation)(x)

    inputs = Input(input_size)
    conv1 = c(f, 3)(c(f, 3)(inputs))
    pool = AveragePooling2D if change == "average" else MaxPooling2D
    pool1 = pool(pool_size=(2, 2))(conv1)
    conv2 = c(2 * f, 3)(c(2 * f, 3)(pool1))
    pool2 = MaxPooling2D(pool_size=(2, 2))(conv2)
    conv3 = c(4 * f, 3)(c(4 * f, 3)(pool2))
    pool3 = MaxPooling2D(pool_size=(2, 2))(conv3)
    conv4 = c(8 * f, 3)(c(8 * f, 3)(pool3))
    drop4 = Dropout(0.5)(conv4)
    pool4 = MaxPooling2D(pool_size=(2, 2))(drop4)
    conv5 = c(16 * f, 3)(c(16 * f, 3)(pool4))
    drop5 = Dropout(0.5)(conv5)
    up6 = c(8 * f, 2)(up(drop5))
    merge6 = concatenate([up6, drop4] if change == "swapped" else [drop4, up6], axis=3)
    conv6 = c(8 * f, 3)(c(8 * f, 3)(merge6))
    up7 = c(4 * f, 2)(up(conv6))
    conv7 = c(4 * f, 3)(c(4 * f, 3)(concatenate([conv3, up7], axis=3)))
    up8 = c(2 * f, 2)(up(conv7))
    conv8 = c(2 * f, 3)(c(2 * f, 3)(concatenate([conv2, up8], axis=3)))
    up9 = c(f, 2)(up(conv8))
    conv9 = c(f, 3)(c(f, 3)(concatenate([conv1, up9], axis=3)))
    conv9 = c(2, 3, "elu" if change == "elu" else "relu")(conv9)
    conv10 = Conv2D(1, 1, activation="sigmoid")(conv9)
    return Model(inputs=inputs, outputs=conv10)


if __name__ == "__main__":
    for name in ("seed", "bilinear", "swapped", "average", "elu"):
        keras.utils.set_random_seed(0)
        model = unet(change=None if name == "seed" else name)
        if name != "seed":
            model.save(f"{name}.keras")
            model.save(f"{name}.h5")
        if name in ("seed", "bilinear"):
            model.save_weights(f"{name}.weights.h5")
            with open(f"{name}.json", "w") as f:
                f.write(model.to_json())
