"""What "adversarial" means in advgap: one definition for the attacks, the exact engine, the store and the report.

A point x′ is *adversarial for target t* (true label c ≠ t) when logit_t(x′) ≥ logit_c(x′): the target's logit
reaches the label's. This is the study's Reluplex encoding; it does not ask that t become the argmax. x′ is
*adversarial* (untargeted) when it is adversarial for some t ≠ c, i.e. when c is no longer the strict argmax.

`margin` is the one function that decides it, for torch tensors (the attacks) and numpy arrays (replays, tests);
the exact engine's property rows (`verify.spec.robustness_spec`) encode the same inequality, y_c − y_t ≤ 0.
"""

from __future__ import annotations

from typing import Any

DEFINITION = "logit_target >= logit_label"
DESCRIPTION = (
    "A point is adversarial for target t when the net's logit for t reaches the true label's (logit_t ≥ logit_label, "
    "the study's Reluplex encoding; t need not become the predicted class); untargeted, for some t ≠ label."
)


def margin(logits: Any, labels: Any, targets: Any | None = None) -> Any:
    """Per-row logit_t − logit_label (targeted) or max_{k≠label} logit_k − logit_label (untargeted).

    logits: (B, classes) torch tensor or numpy array; labels, targets: (B,) integer arrays of the same kind.
    A row is adversarial exactly when its margin is ≥ 0 (`is_adversarial`).
    """
    if hasattr(logits, "gather"):  # torch
        own = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
        if targets is not None:
            return logits.gather(1, targets.unsqueeze(1)).squeeze(1) - own
        return logits.scatter(1, labels.unsqueeze(1), float("-inf")).amax(dim=1) - own
    import numpy as np

    logits = np.asarray(logits, dtype=np.float64)
    rows = np.arange(logits.shape[0])
    own = logits[rows, labels]
    if targets is not None:
        return logits[rows, targets] - own
    others = logits.copy()
    others[rows, labels] = -np.inf
    return others.max(axis=1) - own


def is_adversarial(logits: Any, labels: Any, targets: Any | None = None) -> Any:
    """Per-row bool: adversarial for the row's target (or for any class but its label when targets is None)."""
    return margin(logits, labels, targets) >= 0
