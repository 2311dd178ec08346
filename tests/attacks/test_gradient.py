import pytest
import torch
from torch import nn

from advgap.attacks import fgsm, pgd


@pytest.fixture
def relu_2_2_2(make_linear) -> nn.Sequential:
    """h = relu(A x + a), z = B h with A = [[2, -1], [1, 1]], a = [0.5, -1], B = [[1, 0], [-1, 2]]."""
    hidden = make_linear([[2.0, -1.0], [1.0, 1.0]], [0.5, -1.0])
    return nn.Sequential(hidden, nn.ReLU(), make_linear([[1.0, 0.0], [-1.0, 2.0]], [0.0, 0.0]))


@pytest.fixture
def linear_2_3(make_linear) -> nn.Linear:
    """z = W x + b with W = [[1, 0], [0, 1], [0, 0]], b = [1, 0, 0]."""
    return make_linear([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], [1.0, 0.0, 0.0])


def test_fgsm_matches_hand_gradient_linear(linear_2_3):
    """At x = (0.5, 0.5), label 0, softmax p: ∇CE(label 0) = (p0 - 1, p1) → sign (-, +); targeted, the margin
    z_t - z_0: ∇(z_1 - z_0) = (-1, 1) → (-, +); ∇(z_2 - z_0) = (-1, 0) → (-, 0), the second pixel stays."""
    model, x, label = linear_2_3, torch.tensor([[0.5, 0.5]]), torch.tensor([0])
    torch.testing.assert_close(fgsm(model, x, label, 0.1).x_adv, torch.tensor([[0.4, 0.6]]))
    torch.testing.assert_close(fgsm(model, x, label, 0.1, targets=torch.tensor([1])).x_adv, torch.tensor([[0.4, 0.6]]))
    torch.testing.assert_close(fgsm(model, x, label, 0.1, targets=torch.tensor([2])).x_adv, torch.tensor([[0.4, 0.5]]))


def test_fgsm_matches_hand_gradient_relu(relu_2_2_2):
    """x = (0.3, 0.6): h = (0.5, 0) (second unit off), z = (0.5, -0.5). ∇_x CE(label 0) = A[0]·(B^T(p - e0))[0]
    = (2, -1)·(-2 p1) → sign (-, +). x = (0.05, 0.97): first unit off, second on, ∇ = (1, 1)·2 p1 → (+, +),
    clipped to [0, 1]."""
    model, label = relu_2_2_2, torch.tensor([0, 0])
    x = torch.tensor([[0.3, 0.6], [0.05, 0.97]])
    torch.testing.assert_close(fgsm(model, x, label, 0.1).x_adv, torch.tensor([[0.2, 0.7], [0.15, 1.0]]))


def test_fgsm_is_one_pgd_step_of_size_delta(relu_2_2_2):
    model = relu_2_2_2
    x, label = torch.tensor([[0.3, 0.6]]), torch.tensor([0])
    one_step = pgd(model, x, label, 0.1, steps=1, step_size=0.1, random_start=False)
    torch.testing.assert_close(fgsm(model, x, label, 0.1).x_adv, one_step.x_adv)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
@pytest.mark.parametrize("targeted", [False, True])
def test_attacks_stay_in_box_and_unit_interval(attack, targeted):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 4))
    x = torch.rand(16, 20)
    x[:, :3] = 0.0
    x[:, 3:6] = 1.0
    labels = torch.randint(0, 4, (16,))
    targets = (labels + torch.randint(1, 4, (16,))) % 4 if targeted else None
    delta = torch.linspace(0.0, 0.6, 16)
    if attack == "fgsm":
        result = fgsm(model, x, labels, delta, targets=targets)
    else:
        result = pgd(model, x, labels, delta, targets=targets, steps=7, generator=torch.Generator().manual_seed(1))
    assert ((result.x_adv - x).abs().amax(dim=1) <= delta + 1e-6).all()
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert (result.x_adv[0] == x[0]).all(), "δ = 0 must leave the input unchanged"
    torch.testing.assert_close(result.delta, delta)
    with torch.no_grad():
        logits = model(result.x_adv)
    rows = torch.arange(16)
    own = logits[rows, labels]
    if targeted:
        expected = logits[rows, targets] >= own
    else:
        expected = torch.stack([(logits[k] >= own[k]).sum() >= 2 for k in range(16)])
    assert torch.equal(result.success, expected), "success means logit_t >= logit_label (advgap.adversarial)"


def test_targeted_attacks_reach_target_on_easy_case(linear_case):
    """Twice the known minimal δ is enough for a one-step and an iterated attack on a linear net."""
    model, x, labels, minimal = linear_case
    targets = torch.ones_like(labels)
    assert fgsm(model, x, labels, 2 * minimal, targets=targets).success.all()
    assert pgd(model, x, labels, 2 * minimal, targets=targets).success.all()
    assert not fgsm(model, x, labels, 0.9 * minimal, targets=targets).success.any()


def test_untargeted_sign_is_right_where_float32_cross_entropy_saturates(linear_case):
    """Logit margins here are 9 to 255; above ≈ 17 float32 CE has 1 - p_label == 0 and its gradient sign is wrong."""
    model, x, labels, minimal = linear_case
    with torch.no_grad():
        logits = model(x)
    assert (logits[:, 0] - logits[:, 1] > 17).sum() >= 4
    assert fgsm(model, x, labels, 1.01 * minimal).success.all()
    assert pgd(model, x, labels, 1.01 * minimal, generator=torch.Generator().manual_seed(0)).success.all()


def test_pgd_targeted_on_trained_net(trained_mlp):
    model, x, y = trained_mlp
    targets = (y + 1) % 10
    result = pgd(model, x, y, 0.3, targets=targets, generator=torch.Generator().manual_seed(0))
    assert result.success.float().mean() > 0.85
    with torch.no_grad():
        logits = model(result.x_adv)
    rows = torch.arange(len(y))
    assert torch.equal(result.success, logits[rows, targets] >= logits[rows, y])


def test_pgd_lowers_accuracy_at_least_as_much_as_fgsm(trained_mlp):
    model, x, y = trained_mlp
    with torch.no_grad():
        clean = (model(x).argmax(dim=1) == y).float().mean()
    acc_fgsm = 1 - fgsm(model, x, y, 0.1).success.float().mean()
    acc_pgd = 1 - pgd(model, x, y, 0.1, generator=torch.Generator().manual_seed(0)).success.float().mean()
    assert clean > 0.85
    assert acc_fgsm < clean
    assert acc_pgd <= acc_fgsm


def test_pgd_is_reproducible_with_generator_and_random_start_matters(trained_mlp):
    model, x, y = trained_mlp
    x, y = x[:20], y[:20]
    a = pgd(model, x, y, 0.05, steps=3, generator=torch.Generator().manual_seed(7))
    b = pgd(model, x, y, 0.05, steps=3, generator=torch.Generator().manual_seed(7))
    c = pgd(model, x, y, 0.05, steps=3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.x_adv, b.x_adv)
    assert not torch.equal(a.x_adv, c.x_adv)


def test_attack_runs_model_in_eval_mode_and_restores_it():
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2)

        def forward(self, x):
            seen.append(self.training)
            return self.linear(x)

    model = Recorder().train()
    pgd(model, torch.rand(4, 3), torch.zeros(4, dtype=torch.int64), 0.1, steps=2)
    assert seen and not any(seen)
    assert model.training


def test_attack_inside_no_grad_context(linear_case):
    model, x, labels, minimal = linear_case
    with torch.no_grad():
        result = fgsm(model, x, labels, 2 * minimal, targets=torch.ones_like(labels))
    assert result.success.all()
