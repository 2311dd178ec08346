"""The contract every attack honours, owned here so no attack re-implements it.

- Inputs `x`: float tensor (B, n) with pixels in [0, 1]; `labels`: (B,) true classes; `targets`: (B,) classes to
  reach (targeted attack) or None (untargeted: any class but the label). A target equal to its label is an error.
- The model is a torch `nn.Module` mapping (B, n) to logits (B, classes); attacks run it in eval mode and restore
  its previous mode afterwards.
- δ is an L∞ radius in pixel units of [0, 1] (δ = k/255 is k grey levels): a float for the whole batch or a
  tensor (B,) per sample. The adversarial point always lies in the δ-box around x intersected with [0, 1]^n.
- Success is re-checked on the returned point, never taken from the attack's bookkeeping, under advgap's one
  definition (`advgap.adversarial`): targeted means logit_target ≥ logit_label, untargeted that this holds for
  some class other than the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advgap.adversarial import is_adversarial
from advgap.errors import SpecError
from advgap.models.torchnet import eval_mode

Delta = float | torch.Tensor


@dataclass(frozen=True)
class AttackResult:
    """What an attack returns, all tensors with batch size B.

    x_adv: (B, n) attacked inputs, inside the δ-box around x and [0, 1].
    success: (B,) bool, re-checked on x_adv (see module docstring).
    predicted: (B,) int64, the model's class on x_adv.
    delta: (B,) L∞ radius (pixel units) of the box x_adv lies in: the δ given, for fixed-δ attacks; for
        minimum-norm searches the smallest δ found, inf where no adversarial example was found.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    predicted: torch.Tensor
    delta: torch.Tensor


def prepare_batch(
    x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check x is (B, n) floats in [0, 1] and labels/targets (B,) integers with targets != labels; return them int64.

    Raises SpecError naming the defect.
    """
    if x.ndim != 2 or not x.is_floating_point():
        raise SpecError(f"attack inputs must be a float tensor (batch, features), got {tuple(x.shape)} {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise SpecError(f"attack inputs must lie in [0, 1], got range [{x.min().item():g}, {x.max().item():g}]")
    checked = []
    for name, tensor in (("labels", labels), ("targets", targets)):
        if tensor is None:
            checked.append(None)
            continue
        if tuple(tensor.shape) != (x.shape[0],) or tensor.is_floating_point() or tensor.dtype == torch.bool:
            raise SpecError(
                f"{name} must be integers of shape ({x.shape[0]},), got {tuple(tensor.shape)} {tensor.dtype}"
            )
        checked.append(tensor.to(device=x.device, dtype=torch.int64))
    labels, targets = checked
    if targets is not None and bool((targets == labels).any()):
        raise SpecError("a target class equals its label: targeted attacks need target != label")
    return labels, targets


def per_sample(value: Delta, x: torch.Tensor, name: str = "delta") -> torch.Tensor:
    """`value` (float or (B,) tensor) as a (B,) tensor of x's dtype and device; SpecError if negative or NaN."""
    out = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if out.ndim == 0:
        out = out.expand(x.shape[0])
    if tuple(out.shape) != (x.shape[0],):
        raise SpecError(f"{name} must be a number or have shape ({x.shape[0]},), got {tuple(out.shape)}")
    if bool(torch.isnan(out).any()) or bool((out < 0).any()):
        raise SpecError(f"{name} must be >= 0, got {out.min().item():g}")
    return out.clone()


def project(x_adv: torch.Tensor, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Clip x_adv to the box [x - δ, x + δ] (δ per sample, shape (B,)) and to [0, 1]."""
    radius = delta.unsqueeze(1)
    return torch.clamp(torch.minimum(torch.maximum(x_adv, x - radius), x + radius), 0.0, 1.0)


def is_success(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """(B,) bool: the logits are adversarial for their target, or for any class but the label (`advgap.adversarial`)."""
    return is_adversarial(logits, labels, targets)


def finalize(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    delta: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
) -> AttackResult:
    """Clip x_adv to the δ-box and [0, 1], re-run the model on it and package the re-checked result."""
    x_adv = project(x_adv.detach(), x, delta)
    with eval_mode(model), torch.no_grad():
        logits = model(x_adv)
    return AttackResult(x_adv, is_success(logits, labels, targets), logits.argmax(dim=1), delta)
