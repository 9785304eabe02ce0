"""Make the most common UNet failure visible: predictions that come out all gray or black.

The usual causes, in the order worth checking:

- the masks were stored as 0/255 and never scaled to [0, 1] (``fit`` refuses those);
- the probability map is shown as it is instead of thresholded at 0.5 (it then looks gray);
- the seed's 2-channel ReLU conv just before the output "died": it outputs 0 everywhere,
  so the sigmoid sees only its bias and every pixel gets the same value;
- a learning rate too large (the loss jumps) or training too short (it has not left the
  all-cells solution yet, which is already 78% right on ISBI).
"""

from __future__ import annotations

import numpy as np


def diagnose_predictions(
    probs: np.ndarray, masks: np.ndarray, model: object | None = None
) -> str | None:
    """A warning when predictions are nearly constant though the masks are not, else None.

    Parameters
    ----------
    probs : (N, H, W, 1) probabilities of the cell class.
    masks : (N, H, W, 1) true masks in {0, 1}.
    model : the model, to tailor the advice (does it have the seed's 2-channel head conv?).
    """
    probs, masks = np.asarray(probs), np.asarray(masks)
    cells_true = float((masks >= 0.5).mean())
    if not 0.02 < cells_true < 0.98:
        return None  # the truth itself is (nearly) one class: nothing to compare against
    cells_pred = float((probs >= 0.5).mean())
    spread = float(np.percentile(probs, 99) - np.percentile(probs, 1))
    if spread > 0.05 and 0.005 < cells_pred < 0.995:
        return None
    what = "all cells" if cells_pred >= 0.995 else "all membrane" if cells_pred <= 0.005 else "flat"
    stuck = "everything is membrane" if what == "all membrane" else "everything is a cell"
    hint = " (with a weighted loss like the paper's, membranes outweigh cells at first)"
    hint = hint if what == "all membrane" else ""
    lines = [
        f"Warning: the predictions are nearly constant ({what}: 98% of the probabilities lie "
        f"within {spread:.3f}; {100 * cells_pred:.1f}% predicted cells vs "
        f"{100 * cells_true:.1f}% in the masks). Usual causes:",
        f"  - training has not yet left the '{stuck}' solution: train longer, or check the "
        f"learning rate{hint};",
        "  - probability maps viewed without thresholding look gray: compare probs >= 0.5;",
    ]
    head = getattr(model, "head", [])
    if float(np.ptp(probs)) < 1e-6 and len(head) > 1:
        lines.append(
            "  - every pixel has exactly the same value: the 2-channel ReLU conv "
            f"'{head[0].name}' before the output has probably died (all zeros); "
            "re-initialise with another seed or use a smaller learning rate."
        )
    return "\n".join(lines)
