"""Sign-gradient attacks at a fixed L∞ radius δ: PGD (iterated FGSM) and FGSM, one implementation.

Each step moves every pixel by `step_size` in the direction of the sign of the gradient of the attack's loss, then
clips to the δ-box around x and to [0, 1]. FGSM is PGD with a single step of size δ from x itself (no random start).

Untargeted, the loss is the cross-entropy of the true label, whose gradient sign is taken from
L_c(z) = logsumexp_{k≠c} z_k − z_c rather than from CE(z, c) = softplus(L_c(z)): per sample the two gradients differ
by the positive factor sigmoid(L_c), so their signs agree exactly, but in float32 CE saturates (1 − p_c rounds to 0
once the logit margin exceeds ≈ 17, sigmoid(L_c) underflows below ≈ −87) and then yields a wrong or zero sign,
while L_c does not. Targeted, the loss is the margin z_t − z_c itself (`advgap.adversarial.margin`): the attack
climbs exactly the quantity whose sign decides success, so its per-target δ answers the exact engine's question.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advgap.adversarial import margin
from advgap.attacks.base import AttackResult, Delta, eval_mode, finalize, is_success, per_sample, prepare_batch, project
from advgap.attacks.registry import DEFAULT_PGD_STEPS
from advgap.errors import SpecError

STEP_SIZE_FACTOR = 2.5


def ce_sign_loss(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Per-sample logsumexp_{k≠c} z_k − z_c: cross-entropy's gradient sign without its float32 saturation."""
    own = logits.gather(1, classes.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, classes.unsqueeze(1), -math.inf).logsumexp(dim=1)
    return others - own


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    delta: Delta,
    *,
    targets: torch.Tensor | None = None,
    steps: int = DEFAULT_PGD_STEPS,
    step_size: Delta | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> AttackResult:
    """Projected gradient descent / iterated FGSM in the L∞ box of radius δ around x (see `attacks.base`).

    delta: L∞ radius in pixel units of [0, 1], a float or a (B,) tensor.
    targets: (B,) classes to reach (targeted: ascend logit_t − logit_label), or None (untargeted: ascend CE of labels).
    steps: number of sign-gradient steps (default 40).
    step_size: per-step move of each pixel, in pixel units (float or (B,)); default 2.5 * δ / steps.
    random_start: start from a point drawn uniformly in the δ-box (clipped to [0, 1]) instead of x.
    generator: torch.Generator for the random start, for reproducible runs.

    Returns the final iterate if it is adversarial, else the last adversarial iterate, else the final iterate.
    """
    labels, targets = prepare_batch(x, labels, targets)
    delta = per_sample(delta, x)
    if steps < 1:
        raise SpecError(f"steps must be >= 1, got {steps}")
    step = STEP_SIZE_FACTOR * delta / steps if step_size is None else per_sample(step_size, x, "step_size")
    x = x.detach()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x_adv = project(x + (2 * noise - 1) * delta.unsqueeze(1), x, delta)
    else:
        x_adv = x.clone()
    last_adversarial = x_adv
    ever = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    with eval_mode(model), torch.enable_grad():
        for k in range(steps + 1):
            x_adv.requires_grad_(True)
            logits = model(x_adv)
            success = is_success(logits, labels, targets)
            last_adversarial = torch.where(success.unsqueeze(1), x_adv.detach(), last_adversarial)
            ever |= success
            if k == steps:
                break
            loss = ce_sign_loss(logits, labels) if targets is None else margin(logits, labels, targets)
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            x_adv = project(x_adv.detach() + step.unsqueeze(1) * grad.sign(), x, delta)
    return finalize(model, x, torch.where(ever.unsqueeze(1), last_adversarial, x_adv), delta, labels, targets)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    delta: Delta,
    *,
    targets: torch.Tensor | None = None,
) -> AttackResult:
    """Fast gradient sign method: one full step of size δ from x (PGD with steps=1, no random start).

    delta: L∞ radius in pixel units (float or (B,)); targets: (B,) classes to reach, or None for untargeted.
    """
    return pgd(model, x, labels, delta, targets=targets, steps=1, step_size=delta, random_start=False)
