"""The check every exact minimal-distance result must pass against a reference distance."""

from __future__ import annotations

import numpy as np

from advgap.verify.network import ReluNet
from advgap.verify.result import DistanceResult, DistanceStatus


def assert_exact_interval(net: ReluNet, x: np.ndarray, label: int, result: DistanceResult, reference: float,
                          tol: float) -> None:
    """EXACT, tol-tight around `reference` (inf: no adversary at all), with a witness that replays in [0,1]^n."""
    assert result.status is DistanceStatus.EXACT
    if np.isinf(reference):
        assert result.lower >= 1.0 and result.witness is None
        return
    assert result.lower - 1e-6 <= reference <= result.upper + 1e-6
    assert result.upper - result.lower <= tol * (1 + 1e-6)
    logits = net.forward(result.witness)
    assert logits[result.target] >= logits[label]
    assert np.abs(result.witness - x).max() <= result.upper + 1e-12
    assert result.witness.min() >= 0.0 and result.witness.max() <= 1.0
