import math

import pytest
import torch
from torch import nn

from advgap.attacks import bisect_min_delta, fmn, pgd
from advgap.errors import SpecError


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_bisection_finds_known_minimal_delta(linear_case, attack):
    """On a linear net the sign attack moves the margin by δ‖v‖₁, so success starts exactly at δ*."""
    model, x, labels, minimal = linear_case
    tol = 1e-3
    result = bisect_min_delta(
        model, x, labels, torch.ones_like(labels), attack=attack, tol=tol, generator=torch.Generator().manual_seed(0)
    )
    assert result.success.all()
    assert (result.delta >= minimal - 1e-5).all()
    assert (result.delta <= minimal + tol + 1e-6).all()
    assert ((result.x_adv - x).abs().amax(dim=1) <= result.delta + 1e-6).all()


def test_bisection_unreachable_target_is_inf(linear_case):
    model, x, labels, _ = linear_case
    targets = torch.tensor([1, 2, 1, 2, 1, 2])
    result = bisect_min_delta(model, x, labels, targets)
    assert result.success.tolist() == [True, False] * 3
    assert torch.isinf(result.delta[1::2]).all() and torch.isfinite(result.delta[::2]).all()
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1


def test_bisection_returned_points_are_adversarial(trained_mlp):
    model, x, y = trained_mlp
    x, y = x[:40], y[:40]
    targets = (y + 3) % 10
    for attack in ("fgsm", "pgd"):
        result = bisect_min_delta(model, x, y, targets, attack=attack, steps=10, generator=torch.Generator())
        with torch.no_grad():
            logits = model(result.x_adv)
        rows = torch.arange(len(y))
        found = torch.isfinite(result.delta)
        assert found.sum() > 20
        assert torch.equal(logits[rows, targets] >= logits[rows, y], result.success)
        assert torch.equal(result.success, found)
        assert ((result.x_adv - x).abs().amax(dim=1)[found] <= result.delta[found] + 1e-6).all()


def test_bisection_rejects_bad_options(linear_case):
    model, x, labels, _ = linear_case
    with pytest.raises(SpecError, match="unknown attack 'cw'"):
        bisect_min_delta(model, x, labels, attack="cw")
    with pytest.raises(SpecError, match="tolerance"):
        bisect_min_delta(model, x, labels, tol=0.0)


def test_fmn_within_a_few_percent_of_known_minimum(linear_case):
    model, x, labels, minimal = linear_case
    targets = torch.tensor([1, 1, 1, 1, 1, 2])
    result = fmn(model, x, labels, targets)
    assert result.success.tolist() == [True] * 5 + [False]
    assert math.isinf(result.delta[5])
    found = result.delta[:5]
    assert (found >= minimal[:5] - 1e-5).all(), "no adversarial point lies closer than the analytic minimum"
    assert (found <= 1.03 * minimal[:5]).all()
    torch.testing.assert_close(result.delta[:5], (result.x_adv[:5] - x[:5]).abs().amax(dim=1))


@pytest.mark.parametrize("targeted", [False, True])
def test_fmn_on_trained_net_beats_fixed_delta_pgd(trained_mlp, targeted):
    """Every found point is adversarial and inside [0, 1]; FMN's δ is no larger than a δ at which PGD succeeds."""
    model, x, y = trained_mlp
    x, y = x[:60], y[:60]
    targets = (y + 1) % 10 if targeted else None
    result = fmn(model, x, y, targets, steps=60)
    with torch.no_grad():
        logits = model(result.x_adv)
    rows = torch.arange(len(y))
    if targeted:
        expected = logits[rows, targets] >= logits[rows, y]
    else:
        expected = logits.argmax(dim=1) != y  # no exact ties on a trained net in float32
    assert torch.equal(result.success, expected)
    assert result.success.float().mean() > 0.95
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    reference = pgd(model, x, y, 0.15, targets=targets, generator=torch.Generator().manual_seed(0)).success
    assert (result.delta[reference] <= 0.15).float().mean() > 0.95


def test_fmn_restores_training_mode(linear_case):
    model, x, labels, _ = linear_case
    model = nn.Sequential(model).train()
    fmn(model, x, labels, torch.ones_like(labels), steps=3)
    assert model.training
