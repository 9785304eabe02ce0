"""The original paper's training recipe (Ronneberger, Fischer, Brox 2015, section 3).

The seed trains its 'same' UNet with Adam, binary cross-entropy and batches of resized
images. The paper trained its 'valid' UNet (:meth:`UNet.paper`) differently:

- the output is a **softmax over 2 classes** (membrane, cell), and the loss is the
  **cross-entropy weighted per pixel** by the weight map ``w(x)`` (``data.weight_map``),
  which balances the classes and makes the thin membranes between touching cells count;
- **SGD with momentum 0.99** (here Adam by default, see below), "so that a large number of
  the previously seen training samples determine the update in the current optimization step";
- **one large tile per batch** rather than several small images: the network sees an input
  tile with its context (mirrored at the image border) and is scored on the output tile;
- **elastic deformation** of the training images (``data.ElasticDeformation``), here with
  flips and quarter turns, which cost nothing and suit EM images.

Each ingredient is an ordinary option of ``compile`` and ``fit``, so the recipe is just::

    model = UNet.paper(input_shape=(tile, tile, 1), filters=16)
    options = paper_recipe(model, masks, decay_steps=epochs * steps, seed=0)
    history = model.fit(images, masks, epochs=epochs, steps_per_epoch=steps, **options)

and :func:`paper_recipe` shows, in a dozen lines, which options those are.

Two of the paper's choices are not the defaults, because on the ISBI membranes they cost the
most (``benchmarks/ablation_paper_isbi.py``; the table is in the README): SGD with momentum
0.99 learned several times more slowly than Adam in the same time, and the class-balancing
term ``w_c`` tilted every pixel towards "membrane". The defaults are Adam with a learning
rate that decays over the run and the separation term alone; ``optimizer="sgd",
class_balance=True`` restores the paper's.
"""

from __future__ import annotations

import numpy as np

from ..data import Augmenter, Compose, ElasticDeformation, weight_map
from ..optimizers import SGD, Adam, CosineDecay


def weight_maps(
    masks: np.ndarray, w0: float = 10.0, sigma: float = 5.0, class_balance: bool = True
) -> np.ndarray:
    """The paper's weight map of every mask: (N, H, W, 1) in {0, 1} -> (N, H, W).

    ``class_balance=False`` sets ``w_c = 1`` for both classes, leaving only the separation
    term on top of an unweighted loss.
    """
    masks = np.asarray(masks)
    if masks.ndim != 4 or masks.shape[-1] != 1:
        raise ValueError(f"weight_maps: expected masks of shape (N, H, W, 1), got {masks.shape}")
    balance = None if class_balance else (1.0, 1.0)  # None: each class gets half the weight
    return np.stack([weight_map(m[..., 0], w0, sigma, class_weights=balance) for m in masks])


def paper_recipe(
    model: object,
    masks: np.ndarray,
    optimizer: str = "adam",
    learning_rate: float | None = None,
    decay_steps: int | None = None,
    momentum: float = 0.99,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: bool = False,
    elastic_sigma: float = 10.0,
    tile: int | None = None,
    seed: int = 0,
    metrics: tuple[str, ...] = ("accuracy", "dice"),
) -> dict:
    """Compile ``model`` with the paper's loss and return the matching ``fit`` options.

    The defaults are what trained best on real membranes (``benchmarks/ablation_paper_isbi.py``,
    README): the paper's separation weights on an otherwise unweighted loss, Adam, and a
    learning rate that decays over the run. ``optimizer="sgd", class_balance=True,
    decay_steps=None`` is the paper to the letter (learning rate 0.003).

    Parameters
    ----------
    model : UNet
        Usually ``UNet.paper(...)``; it must have a 2-class softmax output.
    masks : numpy.ndarray
        The training masks (N, H, W, 1) in {0, 1} (1 = cell), at the images' full size.
    optimizer : {"adam", "sgd"}
        Adam (default learning rate 1e-3), or SGD with ``momentum`` as in the paper (default
        learning rate 0.003: the paper gives none; 0.01 oscillated and then collapsed here).
        On ISBI, SGD at 0.003 learned far more slowly than Adam in the same time.
    learning_rate : float, optional
        The (initial) learning rate; by default the optimizer's, as above.
    decay_steps : int, optional
        The number of steps the run will train (epochs x steps per epoch). If given, the
        learning rate falls along a half cosine to 1/100 of it by then
        (:class:`~numpy_unet.optimizers.CosineDecay`); if not, it stays constant.
    momentum : float
        SGD's momentum (the paper: 0.99).
    w0, sigma : float
        The weight map's separation weight and width in pixels (the paper: 10 and 5).
    class_balance : bool
        Add the paper's class-balancing term ``w_c`` (membrane pixels then weigh about 3x);
        by default ``w_c = 1``, which on ISBI kept pixel accuracy and gave a lower Rand error.
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
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"paper_recipe: optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    rate = learning_rate or (1e-3 if optimizer == "adam" else 0.003)
    if decay_steps is not None:  # the rate of every step, from `rate` down to rate / 100
        rate = CosineDecay(rate, decay_steps, alpha=0.01)
    model.compile(
        optimizer=Adam(rate) if optimizer == "adam" else SGD(rate, momentum=momentum),
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
        "sample_weight": weight_maps(masks, w0, sigma, class_balance),  # (N, H, W)
        "augment": augment,
        "seed": seed,
    }
