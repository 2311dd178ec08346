"""Test-set accuracy of a net, clean and under untargeted FGSM (the study's headline numbers)."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advgap.attacks.gradient import fgsm
from advgap.data.mnist import mnist_arrays
from advgap.errors import SpecError
from advgap.models.loader import load_network
from advgap.models.torchnet import to_torch

log = logging.getLogger(__name__)

DEFAULT_FGSM_DELTA = 0.2
BATCH_SIZE = 1000


@dataclass(frozen=True)
class Evaluation:
    """Accuracies (fractions in [0, 1]) over n images; fgsm_delta is the L∞ radius in pixel units of [0, 1]."""

    model: str
    n: int
    clean_accuracy: float
    fgsm_delta: float
    fgsm_accuracy: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def accuracies(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, fgsm_delta: float, batch_size: int = BATCH_SIZE
) -> tuple[float, float]:
    """(clean accuracy, accuracy under untargeted FGSM of radius fgsm_delta) over the batch, computed in chunks.

    An image counts as correct under attack when the attack fails on it (see `attacks.base`), so an image
    misclassified to begin with is never correct under attack.
    """
    if not 0 <= fgsm_delta <= 1 or math.isnan(fgsm_delta):
        raise SpecError(f"FGSM δ must be in [0, 1] (pixel units), got {fgsm_delta}")
    clean = attacked = 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], labels[start : start + batch_size]
        with torch.no_grad():
            clean += int((model(xb).argmax(dim=1) == yb).sum())
        attacked += int((~fgsm(model, xb, yb, fgsm_delta).success).sum())
    return clean / len(x), attacked / len(x)


def evaluate(spec: str, fgsm_delta: float = DEFAULT_FGSM_DELTA, data_dir: str | Path | None = None) -> Evaluation:
    """Evaluate the net `spec` ('vanilla', 'adversarial' or a .npz path) on the 10,000 MNIST test images."""
    inputs, labels = mnist_arrays("test", data_dir)
    net = load_network(spec).net
    if net.n_inputs != inputs.shape[1]:
        raise SpecError(f"{spec}: the net takes {net.n_inputs} inputs, MNIST images have {inputs.shape[1]} pixels")
    model = to_torch(net)
    clean, attacked = accuracies(model, torch.from_numpy(inputs), torch.from_numpy(labels), fgsm_delta)
    log.info("%s: clean %.4f, FGSM δ=%g %.4f on %d images", spec, clean, fgsm_delta, attacked, len(labels))
    return Evaluation(str(spec), len(labels), clean, fgsm_delta, attacked)
