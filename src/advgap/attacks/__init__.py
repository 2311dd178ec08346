"""First-order attacks on a torch classifier over inputs in [0, 1]^n, batched, L∞ radius δ in pixel units.

Fixed δ: `fgsm`, `pgd` (gradient.py). Smallest δ: `bisect_min_delta` (bisection over fgsm/pgd), `fmn`
(minnorm.py). All return an `AttackResult` (base.py, which also states the shared contract); registry.py names the
closest-adversary attacks. The attack functions are imported on first use, so importing the package (or the
registry) does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AttackResult": "advgap.attacks.base",
    "fgsm": "advgap.attacks.gradient",
    "pgd": "advgap.attacks.gradient",
    "bisect_min_delta": "advgap.attacks.minnorm",
    "fmn": "advgap.attacks.minnorm",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'advgap.attacks' has no attribute {name!r}")
