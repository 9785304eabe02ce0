"""The original paper's training recipe (Ronneberger, Fischer, Brox 2015, section 3).

The seed trains its 'same' UNet with Adam, binary cross-entropy and batches of resized
images. The paper trained its 'valid' UNet (:meth:`UNet.paper`) differently:

- the output is a **softmax over 2 classes** (membrane, cell), and the loss is the
  **cross-entropy weighted per pixel** by the weight map ``w(x)`` (``data.weight_map``),
  which balances the classes and makes the thin membranes between touching cells count;
- **SGD with momentum 0.99**, "so that a large number of the previously seen training
  samples determine the update in the current optimization step";
- **one large tile per batch** rather than several small images: the network sees an input
  tile with its context (mirrored at the image border) and is scored on the output tile;
- **elastic deformation** of the training images (``data.ElasticDeformation``), here with
  flips and quarter turns, which cost nothing and suit EM images.

Each ingredient is an ordinary option of ``compile`` and ``fit``, so the recipe is just::

    model = UNet.paper(input_shape=(tile, tile, 1), filters=16)
    history = model.fit(images, masks, epochs=..., **paper_recipe(model, masks, seed=0))

and :func:`paper_recipe` shows, in a dozen lines, which options those are.
"""

from __future__ import annotations

import numpy as np

from ..data import Augmenter, Compose, ElasticDeformation, weight_map
from ..optimizers import SGD


def weight_maps(masks: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """The paper's weight map of every mask: (N, H, W, 1) in {0, 1} -> (N, H, W)."""
    masks = np.asarray(masks)
    if masks.ndim != 4 or masks.shape[-1] != 1:
        raise ValueError(f"weight_maps: expected masks of shape (N, H, W, 1), got {masks.shape}")
    return np.stack([weight_map(m[..., 0], w0=w0, sigma=sigma) for m in masks])


def paper_recipe(
    model: object,
    masks: np.ndarray,
    learning_rate: float = 0.003,
    momentum: float = 0.99,
    w0: float = 10.0,
    sigma: float = 5.0,
    elastic_sigma: float = 10.0,
    tile: int | None = None,
    seed: int = 0,
    metrics: tuple[str, ...] = ("accuracy", "dice"),
) -> dict:
    """Compile ``model`` as the paper trained and return the matching ``fit`` options.

    Parameters
    ----------
    model : UNet
        Usually ``UNet.paper(...)``; it must have a 2-class softmax output.
    masks : numpy.ndarray
        The training masks (N, H, W, 1) in {0, 1} (1 = cell), at the images' full size.
    learning_rate, momentum : float
        SGD's; momentum 0.99 as in the paper. The paper gives no learning rate; 0.003 trained
        steadily on ISBI here (16 filters, 316-pixel tiles), while 0.01 oscillated and then
        collapsed to predicting membrane everywhere.
    w0, sigma : float
        The weight map's separation weight and width in pixels (the paper: 10 and 5).
    elastic_sigma : float
        Stddev in pixels of the displacements on the 3x3 grid (the paper: 10).
    tile : int, optional
        The network's input tile; by default the model's ``input_shape``.
    seed : int
        Seed of the augmentation (and of the tile positions and batch order, via fit).

    Returns
    -------
    dict
        ``batch_size=1``, ``tile``, ``sample_weight`` (the weight maps), ``augment`` and
        ``seed``: pass them to ``model.fit(images, masks, **options)``.
    """
    if model.config["num_classes"] != 2:
        raise ValueError(
            f"paper_recipe: the paper's loss is a softmax over 2 classes; this UNet has "
            f"num_classes={model.config['num_classes']} (use UNet.paper() or num_classes=2)"
        )
    model.compile(
        optimizer=SGD(learning_rate, momentum=momentum),
        loss="categorical_crossentropy",  # with sample_weight: the paper's weighted loss
        metrics=list(metrics),
    )
    augment = Compose(
        Augmenter(flips=True, rotations=True, shift=0, shear=0, zoom=0),
        ElasticDeformation(sigma=elastic_sigma, grid=3),
        seed=seed,
    )
    return {
        "batch_size": 1,  # one large tile per step
        "tile": tile or model.config["input_shape"][0],
        "sample_weight": weight_maps(masks, w0, sigma),  # (N, H, W)
        "augment": augment,
        "seed": seed,
    }
