"""Smallest L∞ radius δ at which an attack succeeds: bisection over a fixed-δ attack, and FMN.

Both return an `AttackResult` whose `delta` is, per sample, the smallest δ found (pixel units of [0, 1]; inf where
no adversarial example was found) and whose `x_adv` lies in that δ-box, with success re-checked on x_adv.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import torch
from torch import nn

from advgap.adversarial import margin as adversarial_margin
from advgap.attacks.base import AttackResult, eval_mode, finalize, is_success, per_sample, prepare_batch
from advgap.attacks.gradient import fgsm, pgd
from advgap.attacks.registry import DEFAULT_FMN_STEPS, DEFAULT_PGD_STEPS, DEFAULT_TOLERANCE
from advgap.errors import SpecError

log = logging.getLogger(__name__)



def bisect_min_delta(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    attack: Literal["fgsm", "pgd"] = "fgsm",
    tol: float = DEFAULT_TOLERANCE,
    steps: int = DEFAULT_PGD_STEPS,
    generator: torch.Generator | None = None,
) -> AttackResult:
    """Per-sample bisection on δ ∈ [0, 1] for the smallest δ at which `attack` succeeds, all samples batched.

    targets: (B,) classes to reach, or None for untargeted. attack: "fgsm" or "pgd" (PGD uses `steps` steps of
    2.5·δ/steps with a random start drawn from `generator`). tol: bisection stops when the bracket is at most
    `tol` wide (δ units; 1e-3 ≈ a quarter grey level).

    The attack is first run at δ = 1; samples where it fails get δ = inf (and x_adv is that failed attempt).
    Otherwise the bracket [lo, hi] keeps "fails at lo, succeeds at hi" and the result is hi with the point the
    attack found at hi. Attack success need not be monotone in δ (FGSM's single step in particular can succeed
    at some δ and fail at a larger one), so the result is the smallest δ this bisection on [0, 1] finds, not
    necessarily the smallest δ at which the attack succeeds; it is within `tol` above a δ where the attack
    failed. The returned point is re-checked: where it is not adversarial (e.g. a float tie) δ is set to inf.
    """
    labels, targets = prepare_batch(x, labels, targets)
    if attack not in ("fgsm", "pgd"):
        raise SpecError(f"unknown attack {attack!r} for the bisection (use 'fgsm' or 'pgd')")
    if not 0 < tol < 1:
        raise SpecError(f"bisection tolerance must be in (0, 1), got {tol}")
    x = x.detach()

    def run(idx: torch.Tensor, delta: torch.Tensor) -> AttackResult:
        sub_targets = None if targets is None else targets[idx]
        if attack == "fgsm":
            return fgsm(model, x[idx], labels[idx], delta, targets=sub_targets)
        return pgd(model, x[idx], labels[idx], delta, targets=sub_targets, steps=steps, generator=generator)

    everyone = torch.arange(x.shape[0], device=x.device)
    lo = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    hi = torch.ones_like(lo)
    first = run(everyone, hi)
    found = first.success
    x_best = first.x_adv
    while True:
        idx = torch.nonzero(found & (hi - lo > tol)).squeeze(1)
        if idx.numel() == 0:
            break
        mid = (lo[idx] + hi[idx]) / 2
        result = run(idx, mid)
        hi[idx] = torch.where(result.success, mid, hi[idx])
        lo[idx] = torch.where(result.success, lo[idx], mid)
        x_best[idx] = torch.where(result.success.unsqueeze(1), result.x_adv, x_best[idx])
    final = finalize(model, x, x_best, hi, labels, targets)
    return _min_norm_result(final, found)


def fmn(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    steps: int = DEFAULT_FMN_STEPS,
    step_size: float = 1.0,
    final_step_size: float | None = None,
    gamma: float = 0.05,
    final_gamma: float = 0.001,
) -> AttackResult:
    """Fast Minimum-Norm attack, L∞ (Pintor et al., NeurIPS 2021), batched; returns the smallest δ found per sample.

    The attack keeps a per-sample radius ε and a perturbation inside it. Each step it ascends the logit margin of
    `advgap.adversarial.margin` (target logit minus the label's, or the largest non-label logit minus the label's)
    by a gradient step of L2 length α, then projects onto the ε-box and [0, 1]. ε shrinks by a factor (1 - γ)
    (never above the best norm found) while the point is adversarial, grows by (1 + γ) while it is not once an
    adversarial point was found, and before that jumps to the linear estimate ‖δ‖∞ + |margin| / ‖∇margin‖₁ of the
    distance to the boundary. α and γ decay from their initial to final values on a cosine schedule.

    targets: (B,) classes to reach, or None for untargeted. steps: number of gradient steps.
    step_size: initial α, an L2 length in pixel units; final_step_size: last α (default step_size / 100).
    gamma / final_gamma: initial / last relative change of ε per step (dimensionless).
    """
    labels, targets = prepare_batch(x, labels, targets)
    if steps < 1 or step_size <= 0 or not 0 < final_gamma <= gamma < 1:
        raise SpecError(
            f"FMN needs steps >= 1, step_size > 0 and 0 < final_gamma <= gamma < 1, got {steps}, {step_size}, "
            f"{final_gamma}, {gamma}"
        )
    alpha_end = step_size / 100 if final_step_size is None else final_step_size
    x = x.detach()
    batch = x.shape[0]
    pert = torch.zeros_like(x)
    eps = torch.full((batch,), math.inf, dtype=x.dtype, device=x.device)
    best_norm = torch.full_like(eps, math.inf)
    x_best = x.clone()
    found = torch.zeros(batch, dtype=torch.bool, device=x.device)
    with eval_mode(model), torch.enable_grad():
        for k in range(steps + 1):
            x_cur = (x + pert).requires_grad_(True)
            logits = model(x_cur)
            adversarial = is_success(logits, labels, targets)
            norm = pert.abs().amax(dim=1)
            better = adversarial & (norm < best_norm)
            best_norm = torch.where(better, norm, best_norm)
            x_best = torch.where(better.unsqueeze(1), x_cur.detach(), x_best)
            found |= adversarial
            if k == steps:
                break
            margin = adversarial_margin(logits, labels, targets)
            (grad,) = torch.autograd.grad(margin.sum(), x_cur)
            cosine = (1 + math.cos(math.pi * k / steps)) / 2
            alpha = alpha_end + (step_size - alpha_end) * cosine
            gam = final_gamma + (gamma - final_gamma) * cosine
            to_boundary = norm + margin.detach().abs() / grad.abs().sum(dim=1).clamp_min(1e-12)
            eps = torch.where(
                adversarial,
                torch.minimum(eps * (1 - gam), best_norm),
                torch.where(found, eps * (1 + gam), to_boundary),
            ).clamp_max(1.0)
            step = alpha * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
            pert = torch.maximum(torch.minimum(pert + step, eps.unsqueeze(1)), -eps.unsqueeze(1))
            pert = (x + pert).clamp(0.0, 1.0) - x
    final = finalize(model, x, x_best, per_sample(best_norm, x), labels, targets)
    return _min_norm_result(final, found)


def _min_norm_result(result: AttackResult, found: torch.Tensor) -> AttackResult:
    """Set δ to inf where nothing was found or where the returned point failed the re-check."""
    lost = found & ~result.success
    if bool(lost.any()):
        log.warning("%d point(s) adversarial during the search failed the re-check; their δ is set to inf", lost.sum())
    delta = torch.where(result.success, result.delta, torch.full_like(result.delta, math.inf))
    return AttackResult(result.x_adv, result.success, result.predicted, delta)
