"""First-order attacks on a torch classifier over inputs in [0, 1]^n, batched, L∞ radius δ in pixel units.

Fixed δ: `fgsm`, `pgd` (gradient.py). Smallest δ: `bisect_min_delta` (bisection over fgsm/pgd), `fmn`
(minnorm.py). All return an `AttackResult` (base.py, which also states the shared contract).
"""

from advgap.attacks.base import AttackResult
from advgap.attacks.gradient import fgsm, pgd
from advgap.attacks.minnorm import bisect_min_delta, fmn

__all__ = ["AttackResult", "bisect_min_delta", "fgsm", "fmn", "pgd"]
