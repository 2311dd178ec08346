"""The closest-adversary attacks by name: the one list the experiment, the CLI, the API and the report read.

Each entry finds, per sample, the smallest L∞ radius at which it reaches an adversarial point (`advgap.adversarial`)
and returns an `AttackResult` whose `delta` is that radius (inf where none was found). Importing this module does
not import torch; an attack's implementation is imported when it runs. A new attack is one more `ClosestAttack`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from advgap.errors import SpecError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from advgap.attacks.base import AttackResult

DEFAULT_TOLERANCE = 1e-3
DEFAULT_PGD_STEPS = 40
DEFAULT_FMN_STEPS = 100


@dataclass(frozen=True)
class AttackSettings:
    """Parameters shared by the attacks; each attack reads the ones it uses."""

    tol: float = DEFAULT_TOLERANCE  # bisection bracket width (δ units) of the fixed-radius attacks
    pgd_steps: int = DEFAULT_PGD_STEPS  # sign-gradient steps per PGD attempt (step 2.5·δ/steps, random start)
    fmn_steps: int = DEFAULT_FMN_STEPS  # FMN iterations
    seed: int = 0  # PGD's random starts


def _fgsm(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
          settings: AttackSettings) -> AttackResult:
    from advgap.attacks.minnorm import bisect_min_delta

    return bisect_min_delta(model, x, labels, targets, attack="fgsm", tol=settings.tol)


def _pgd(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
         settings: AttackSettings) -> AttackResult:
    import torch

    from advgap.attacks.minnorm import bisect_min_delta

    generator = torch.Generator().manual_seed(settings.seed)
    return bisect_min_delta(model, x, labels, targets, attack="pgd", tol=settings.tol, steps=settings.pgd_steps,
                            generator=generator)


def _fmn(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
         settings: AttackSettings) -> AttackResult:
    from advgap.attacks.minnorm import fmn

    return fmn(model, x, labels, targets, steps=settings.fmn_steps)


@dataclass(frozen=True)
class ClosestAttack:
    name: str  # as stored and typed on the command line
    label: str  # as shown in tables and figures
    summary: str
    run: Callable[[Any, Any, Any, Any, AttackSettings], AttackResult]


REGISTRY: dict[str, ClosestAttack] = {a.name: a for a in (
    ClosestAttack("fgsm", "FGSM", "bisection on δ over one full sign-gradient step", _fgsm),
    ClosestAttack("pgd", "PGD", "bisection on δ over iterated FGSM with a random start", _pgd),
    ClosestAttack("fmn", "FMN", "fast minimum-norm attack (Pintor et al., 2021)", _fmn),
)}
ATTACK_NAMES = tuple(REGISTRY)


def get_attack(name: str) -> ClosestAttack:
    """The attack called `name`; SpecError listing the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise SpecError(f"unknown attack {name!r} (choose from {', '.join(ATTACK_NAMES)})") from None
