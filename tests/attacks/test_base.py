import pytest
import torch
from torch import nn

from advgap.attacks.base import eval_mode, finalize, per_sample, prepare_batch, project
from advgap.errors import SpecError


def test_project_clips_to_box_and_unit_interval():
    x = torch.tensor([[0.0, 0.5, 0.95], [0.2, 0.2, 0.2]])
    x_adv = torch.tensor([[-0.3, 0.9, 1.2], [0.25, 0.0, 0.3]])
    delta = torch.tensor([0.1, 0.05])
    expected = torch.tensor([[0.0, 0.6, 1.0], [0.25, 0.15, 0.25]])
    torch.testing.assert_close(project(x_adv, x, delta), expected)


def test_per_sample_delta():
    x = torch.zeros(3, 4)
    torch.testing.assert_close(per_sample(0.2, x), torch.full((3,), 0.2))
    torch.testing.assert_close(per_sample(torch.tensor([0.1, 0.2, 0.3]), x), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(SpecError, match="delta must be >= 0"):
        per_sample(-0.1, x)
    with pytest.raises(SpecError, match="delta must be >= 0"):
        per_sample(float("nan"), x)
    with pytest.raises(SpecError, match=r"shape \(3,\)"):
        per_sample(torch.tensor([0.1, 0.2]), x)


@pytest.mark.parametrize(
    ("x", "labels", "targets", "message"),
    [
        (torch.zeros(2, 3, 1), torch.zeros(2), None, "float tensor"),
        (torch.full((2, 3), 1.5), torch.zeros(2, dtype=torch.int64), None, r"lie in \[0, 1\]"),
        (torch.zeros(2, 3), torch.zeros(3, dtype=torch.int64), None, "labels must be integers"),
        (torch.zeros(2, 3), torch.zeros(2), None, "labels must be integers"),
        (torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64), torch.tensor([1, 0]), "target class equals its label"),
    ],
)
def test_prepare_batch_rejects_bad_input(x, labels, targets, message):
    with pytest.raises(SpecError, match=message):
        prepare_batch(x, labels, targets)


def test_prepare_batch_returns_int64():
    labels, targets = prepare_batch(torch.zeros(2, 3), torch.tensor([0, 1], dtype=torch.int32), torch.tensor([1, 2]))
    assert labels.dtype == torch.int64 and targets.dtype == torch.int64


def test_eval_mode_restores_training_flag():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    with eval_mode(model):
        assert not model.training and not model[1].training
    assert model.training and model[1].training


def test_finalize_clips_and_rechecks_success():
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model.bias.zero_()
    x = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    claimed = torch.tensor([[0.0, 1.0], [0.55, 0.45]])
    result = finalize(model, x, claimed, torch.tensor([0.1, 0.1]), torch.tensor([0, 0]), None)
    torch.testing.assert_close(result.x_adv, torch.tensor([[0.5, 0.5], [0.55, 0.45]]))
    assert result.success.tolist() == [True, False], "a tie logit_1 = logit_0 is adversarial (logit_t >= logit_label)"
    assert result.predicted.tolist() == [0, 0], "even though argmax still takes class 0"
