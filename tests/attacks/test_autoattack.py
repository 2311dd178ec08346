"""AutoAttack from ART: its points re-checked by advgap, inside the δ-box, sound on a net with known distances."""

import copy

import numpy as np
import pytest
import torch

from advgap.adversarial import is_adversarial
from advgap.attacks.autoattack import autoattack, description
from advgap.errors import SpecError


def test_finds_exactly_the_reachable_points_of_a_linear_net(linear_case):
    """δ* is known in closed form: at δ = 0.2 the four inputs with δ* < 0.2 are broken, the two others cannot be."""
    model, x, labels, dstar = linear_case
    result = autoattack(model, x, labels, 0.2, square_queries=100)
    assert result.success.tolist() == (dstar < 0.2).tolist()


def test_points_are_rechecked_and_inside_the_box(trained_mlp):
    model, x, labels = trained_mlp
    x, labels = x[:60].double(), labels[:60]
    model = copy.deepcopy(model).double()
    result = autoattack(model, x, labels, 0.08, targets=2, square_queries=200)
    assert (result.x_adv - x).abs().max() <= 0.08 + 1e-12
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    with torch.no_grad():
        replay = is_adversarial(model(result.x_adv), labels)
    assert torch.equal(result.success, replay)
    assert 0 < int(result.success.sum()) < len(labels)
    assert result.delta.eq(0.08).all()


def test_seeded_and_leaves_numpy_global_state_alone(trained_mlp):
    model, x, labels = trained_mlp
    x, labels = x[:20], labels[:20]
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = autoattack(model, x, labels, 0.1, targets=1, square_queries=50, seed=7)
    assert np.array_equal(np.random.get_state()[1], before)
    second = autoattack(model, x, labels, 0.1, targets=1, square_queries=50, seed=7)
    assert torch.equal(first.x_adv, second.x_adv)


def test_description_names_library_and_missing_fab():
    text = description(9, 5000)
    assert text.startswith("ART 1.20.1:") and "9 target classes" in text and "5000 queries" in text
    assert "no FAB-T" in text


@pytest.mark.parametrize(("delta", "message"), [(0.0, "0 < δ"), (1.5, "0 < δ"), (float("nan"), "0 < δ")])
def test_bad_radius(linear_case, delta, message):
    model, x, labels, _ = linear_case
    with pytest.raises(SpecError, match=message):
        autoattack(model, x, labels, delta)


def test_needs_square_images(make_linear):
    model = make_linear(torch.ones(3, 10), [0.0, 0.0, 0.0])
    with pytest.raises(SpecError, match="square images"):
        autoattack(model, torch.full((2, 10), 0.5), torch.tensor([0, 1]), 0.1)
