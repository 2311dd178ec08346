"""Training: closed-form attack == autograd attack, resume is bit-identical, profiles and errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from advgap.attacks.evaluate import accuracies
from advgap.data.mnist import mnist_arrays
from advgap.errors import ConfigError
from advgap.models.torch_import import from_torch
from advgap.models.torchnet import make_mlp, to_torch
from advgap.models.train import (
    PROFILES,
    BatchSource,
    Trainer,
    attack_autograd,
    attack_closed_form,
    attack_start,
    get_profile,
    logit_pairing_loss,
)

TINY = PROFILES["tiny"]


@pytest.fixture(scope="module")
def data(shared_dir):
    """The first 3,000 training images: enough for the tiny profile, quick to load."""
    inputs, labels = mnist_arrays("train", shared_dir / "mnist")
    return inputs[:3000], labels[:3000]


def accuracy(net, inputs, labels, fgsm_delta=0.0):
    """Clean or FGSM accuracy through the product's evaluator."""
    clean, attacked = accuracies(to_torch(net), torch.from_numpy(inputs), torch.from_numpy(labels), fgsm_delta)
    return attacked if fgsm_delta > 0 else clean


def weights(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


@pytest.mark.parametrize("hidden", [(50,), (30, 20), (16, 16, 16, 16)])
def test_closed_form_attack_equals_autograd_and_stays_in_box(hidden):
    torch.manual_seed(3)
    model = make_mlp(784, hidden, 10)
    x = torch.rand(64, 784)
    y = torch.randint(0, 10, (64,))
    gen = torch.Generator().manual_seed(5)
    target, lo, hi, start = attack_start(x, y, 0.3, 10, gen)
    assert (target != y).all()
    ref = attack_autograd(model, start, target, lo, hi, 2.5 * 0.3 / 40, 40)
    fast = attack_closed_form(model, start, target, lo, hi, 2.5 * 0.3 / 40, 40)
    assert torch.equal(ref, fast)
    assert (ref >= lo).all() and (ref <= hi).all() and (lo >= 0).all() and (hi <= 1).all()
    assert (ref - x).abs().max() <= 0.3 + 1e-6
    assert not torch.equal(ref, start)


def test_closed_form_is_chosen_for_mlps_only():
    from advgap.models.torchnet import make_conv_small
    from advgap.models.train import is_mlp

    assert is_mlp(make_mlp(784, (8,) * 5, 10)) and is_mlp(make_mlp(784, (8,), 10))
    assert not is_mlp(make_conv_small()) and not is_mlp(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()))


def test_attack_raises_target_logit():
    torch.manual_seed(4)
    model = make_mlp(784, (50,), 10)
    x = torch.rand(32, 784)
    y = torch.randint(0, 10, (32,))
    target, lo, hi, start = attack_start(x, y, 0.3, 10, torch.Generator().manual_seed(0))
    adv = attack_closed_form(model, start, target, lo, hi, 2.5 * 0.3 / 40, 40)
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy
        assert ce(model(adv), target) < ce(model(start), target)


def test_fast_and_reference_adversarial_training_agree(data):
    init = from_torch(make_mlp(784, TINY.hidden, 10))
    runs = []
    for fast in (True, False):
        trainer = Trainer("adversarial", TINY, 1, data, init=init, fast=fast)
        assert trainer.fast is fast
        trainer.run(stop_at=6, progress=False)
        runs.append(weights(trainer))
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["vanilla", "adversarial"])
def test_resume_is_bit_identical(kind, data, tmp_path):
    init = from_torch(make_mlp(784, TINY.hidden, 10)) if kind == "adversarial" else None
    straight = Trainer(kind, TINY, 2, data, init=init)
    done = straight.run(progress=False)
    assert done.finished and done.meta["batches"] == TINY.total_batches(kind)

    first = Trainer(kind, TINY, 2, data, init=init, checkpoint_dir=tmp_path)
    half = first.run(stop_at=TINY.total_batches(kind) // 2, progress=False)
    assert not half.finished
    del first
    resumed = Trainer(kind, TINY, 2, data, init=init, checkpoint_dir=tmp_path)
    assert resumed.batch == TINY.total_batches(kind) // 2
    final = resumed.run(progress=False)
    assert final.finished
    for a, b in zip(weights(straight), weights(resumed), strict=True):
        assert torch.equal(a, b)
    for wa, wb in zip(done.net.weights, final.net.weights, strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_checkpoint_of_another_run_is_refused(data, tmp_path):
    Trainer("vanilla", TINY, 0, data, checkpoint_dir=tmp_path).run(stop_at=2, progress=False)
    (tmp_path / "vanilla-tiny-seed0.pt").rename(tmp_path / "vanilla-tiny-seed1.pt")
    with pytest.raises(ConfigError, match="another run"):
        Trainer("vanilla", TINY, 1, data, checkpoint_dir=tmp_path)


def test_vanilla_training_learns(data):
    trainer = Trainer("vanilla", TINY, 0, data)
    inputs = trainer.data.x[:500].numpy()
    labels = trainer.data.y[:500].numpy()
    before = accuracy(from_torch(trainer.model), inputs, labels)
    after = accuracy(trainer.run(progress=False).net, inputs, labels)
    assert after > before + 0.1
    assert accuracy(from_torch(trainer.model), inputs, labels, fgsm_delta=0.3) < after


def test_data_order_depends_on_seed_and_epoch_only():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    a, b = BatchSource(x, y, 3, seed=7), BatchSource(x, y, 3, seed=7)
    assert a.per_epoch == 3
    first_epoch = torch.cat([a.batch(i)[1] for i in range(3)])
    assert len(set(first_epoch.tolist())) == 9
    assert torch.equal(a.batch(4)[1], b.batch(4)[1])
    assert not torch.equal(BatchSource(x, y, 3, seed=8).batch(0)[1], a.batch(0)[1])


def test_profiles_and_errors(data):
    paper = get_profile("paper")
    assert paper.total_batches("vanilla") == 60_000 and paper.total_batches("adversarial") == 500_000
    assert paper.delta_at(0) == 0.3 and paper.delta_at(249_999) == 0.3 and paper.delta_at(250_000) == 0.1
    with pytest.raises(ConfigError):
        paper.delta_at(500_000)
    assert paper.alpha_at(0.3) == pytest.approx(2.5 * 0.3 / 40)
    assert dataclasses.replace(paper, step_factor=1.0).alpha_at(0.1) == pytest.approx(0.1 / 40)
    warm = dataclasses.replace(paper, warmup_batches=10_000)
    assert warm.delta_at(0) == pytest.approx(0.3 / 10_000) and warm.delta_at(4_999) == pytest.approx(0.15)
    assert warm.delta_at(9_999) == 0.3 and warm.delta_at(249_999) == 0.3 and warm.delta_at(250_000) == 0.1
    with pytest.raises(ConfigError, match="unknown training profile"):
        get_profile("huge")
    with pytest.raises(ConfigError, match="initial net"):
        Trainer("adversarial", TINY, 0, data)
    with pytest.raises(ConfigError, match="unknown training kind"):
        Trainer("robust", TINY, 0, data)


def test_logit_pairing_losses():
    clean = torch.tensor([[0.0, 3.0], [1.0, 1.0]])
    adv = torch.tensor([[4.0, 0.0], [1.0, 1.0]])
    assert logit_pairing_loss(clean, adv, "squared").item() == pytest.approx((16 + 9) / 4)
    assert logit_pairing_loss(clean, adv, "norm").item() == pytest.approx(5 / 2)
    with pytest.raises(ConfigError, match="unknown logit pairing"):
        logit_pairing_loss(clean, adv, "cosine")
