"""Where a gradient check's errors sit: a heat map of |numerical - analytic| (matplotlib is
imported here only, so ``import numpy_unet.gradcheck`` stays NumPy-only)."""

from __future__ import annotations

import numpy as np


def plot_error_map(errors: np.ndarray, title: str, image_like: bool, path: str | None = None):
    """``errors`` (a 2-D map, from ``GradcheckReport.error_map``) as a heat map titled
    ``title``; saved to ``path`` if given. Returns the figure."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(errors, cmap="magma", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="|numerical - analytic|, summed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rows and columns are whole
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if image_like:
        ax.set(xlabel="column (W)", ylabel="row (H)")
    ax.set_title(title, fontsize=9)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
