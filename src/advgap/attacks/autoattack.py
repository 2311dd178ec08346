"""AutoAttack at a fixed L∞ radius, from the adversarial-robustness-toolbox (ART), every point re-checked by advgap.

AutoAttack (Croce & Hein, ICML 2020) runs a cascade of attacks, each on the samples the earlier ones left standing.
Its standard version is APGD-CE, APGD-T (targeted DLR loss, the 9 classes with the highest logits), FAB-T and
Square (5,000 queries). ART 1.20.1 has APGD and Square but no FAB, so the cascade here is APGD-CE, APGD-T over the
`targets` highest non-label classes and Square with `square_queries` queries: ART's attack code, advgap's verdict.
Square is ART's algorithm as `attacks.square` runs it, one forward pass per query instead of ART's three.
Which samples go on to the next attack, and the final success, are decided by `attacks.base.finalize` on the
point ART returns, clipped into the δ-box; ART's own bookkeeping (argmax changed) is never read.

ART runs in float32 and draws from numpy's global generator; `seed` fixes it for the call and restores it after.
Importing ART writes its config file under ~/.art on first use (ART's behaviour).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from advgap.attacks.base import AttackResult, finalize, per_sample, prepare_batch
from advgap.attacks.square import square_linf
from advgap.errors import SpecError

COMPONENTS = ("apgd-ce", "apgd-t", "square")
DEFAULT_TARGETS = 3
DEFAULT_SQUARE_QUERIES = 5000
APGD_STEPS = 100  # AutoAttack's iterations per APGD run
BATCH = 500  # ART's DLR loss builds a (batch × batch) matrix


def description(targets: int = DEFAULT_TARGETS, square_queries: int = DEFAULT_SQUARE_QUERIES) -> str:
    """What ran, for tables and JSON: library, version and the cascade's settings."""
    import art

    return (f"ART {art.__version__}: APGD-CE, APGD-T ({targets} target classes), Square ({square_queries} queries); "
            "no FAB-T (ART has none)")


def _image_shape(n: int) -> tuple[int, int, int]:
    side = math.isqrt(n)
    if side * side != n or side < 5:
        raise SpecError(f"AutoAttack's Square attack needs square images of side >= 5, got {n} inputs")
    return 1, side, side


def _classifier(model: nn.Module, shape: tuple[int, int, int], classes: int) -> Any:
    """ART's PyTorchClassifier over a float32 copy of `model` in eval mode, without preprocessing, whose `predict`
    is one forward pass: ART's own feeds a per-sample DataLoader and walks the module tree to set its mode, which
    together cost more than the forward pass of an MNIST MLP.
    """
    from art.estimators.classification import PyTorchClassifier

    class Classifier(PyTorchClassifier):
        def predict(self, x: np.ndarray, batch_size: int = 128, training_mode: bool = False, **kwargs: Any) -> Any:
            if training_mode:
                raise SpecError("AutoAttack runs the model in eval mode only")
            with torch.no_grad():
                return self._model(torch.from_numpy(np.asarray(x, dtype=np.float32)))[-1].numpy()

    module = nn.Sequential(nn.Flatten(), copy.deepcopy(model).float()).eval()
    return Classifier(module, nn.CrossEntropyLoss(), shape, classes, clip_values=(0.0, 1.0), preprocessing=None,
                      device_type="cpu")


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    delta: float,
    *,
    targets: int = DEFAULT_TARGETS,
    square_queries: int = DEFAULT_SQUARE_QUERIES,
    seed: int = 0,
) -> AttackResult:
    """Untargeted AutoAttack (see module docstring) at L∞ radius δ (pixel units, 0 < δ <= 1) on (B, n) inputs.

    model: maps (B, n) to logits; the re-check runs on it in its own dtype. n must be a square image (MNIST: 784).
    targets: classes APGD-T attacks per sample (highest clean logits first); square_queries: Square's iterations.
    """
    from art.attacks.evasion import AutoProjectedGradientDescent

    labels, _ = prepare_batch(x, labels, None)
    if not 0 < delta <= 1 or math.isnan(delta):
        raise SpecError(f"AutoAttack needs 0 < δ <= 1, got {delta}")
    if targets < 0 or square_queries < 0:
        raise SpecError(f"targets and square_queries must be >= 0, got {targets}, {square_queries}")
    x = x.detach()
    radius = per_sample(delta, x)
    with torch.no_grad():
        logits = model(x)
    classes = logits.shape[1]
    shape = _image_shape(x.shape[1])
    estimator = _classifier(model, shape, classes)
    ranked = logits.scatter(1, labels.unsqueeze(1), -math.inf).argsort(dim=1, descending=True).numpy()
    common = {"norm": np.inf, "eps": delta, "batch_size": BATCH, "verbose": False}
    ce = AutoProjectedGradientDescent(estimator, eps_step=2 * delta, max_iter=APGD_STEPS, nb_random_init=1,
                                      loss_type="cross_entropy", **common)
    dlr = AutoProjectedGradientDescent(estimator, eps_step=2 * delta, max_iter=APGD_STEPS, nb_random_init=1,
                                       loss_type="difference_logits_ratio", targeted=True, **common)
    runs: list[tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], np.ndarray | None]] = [(ce.generate, None)]
    runs += [(dlr.generate, ranked[:, k]) for k in range(min(targets, classes - 1))]
    if square_queries:
        runs.append((functools.partial(square_linf, estimator.predict, eps=delta, max_iter=square_queries), None))
    x_adv = x.clone()
    found = torch.zeros(x.shape[0], dtype=torch.bool)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        for attack, goal in runs:
            idx = torch.nonzero(~found).squeeze(1)
            if idx.numel() == 0:
                break
            rows = idx.numpy()
            y = labels.numpy()[rows] if goal is None else goal[rows]
            images = x[idx].numpy().astype(np.float32).reshape(-1, *shape)
            point = torch.from_numpy(attack(images, y).reshape(len(rows), -1)).to(x.dtype)
            check = finalize(model, x[idx], point, radius[idx], labels[idx], None)
            x_adv[idx[check.success]] = check.x_adv[check.success]
            found[idx] = check.success
    finally:
        np.random.set_state(state)
    return finalize(model, x, x_adv, radius, labels, None)
