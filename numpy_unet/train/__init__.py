"""Running a model: ``fit`` and its checkpoints, tiled prediction, the paper's recipe.

Like Keras 3, where ``Model`` builds on a ``Trainer``, the training loop sits below the model
that offers it: ``UNet.fit`` calls :func:`numpy_unet.train.fit.fit`, which works on any
object with ``forward``, ``backward``, ``params`` and ``get_weights``. So does
``tiling.predict_tiled``.

- ``fit.py``: ``compile`` and ``fit`` (data checks, the epoch loop, checkpointing);
- ``checkpoint.py``: the files that let a run resume bit for bit;
- ``tiling.py``: the paper's overlap-tile prediction, and random training tiles;
- ``diagnostics.py``: the warning for predictions that come out all gray or black;
- ``paper.py``: the original paper's training recipe as ``compile`` and ``fit`` options.
"""
