"""advgap's Square attack against ART's `SquareAttack`: the same points from the same seed, one pass per query."""

import numpy as np
import pytest
import torch
from torch import nn

from advgap.attacks.autoattack import _classifier
from advgap.attacks.square import square_linf


@pytest.mark.parametrize(("eps", "queries"), [(0.05, 300), (0.15, 300), (0.3, 60)])
def test_same_points_as_art(trained_mlp, eps, queries):
    from art.attacks.evasion import SquareAttack

    model, x, labels = trained_mlp
    images, y = x[:80].numpy().reshape(-1, 1, 28, 28), labels[:80].numpy()
    estimator = _classifier(model, (1, 28, 28), 10)
    art = SquareAttack(estimator, norm=np.inf, eps=eps, max_iter=queries, p_init=0.8, nb_restarts=1, batch_size=500,
                       verbose=False)
    np.random.seed(5)
    expected = art.generate(images, y=y)
    calls = []

    def predict(points: np.ndarray) -> np.ndarray:
        calls.append(len(points))
        return estimator.predict(points)

    np.random.seed(5)
    found = square_linf(predict, images, y, eps, queries)
    # the same points, up to one float32 rounding step (numpy releases differ in how they round ART's clip)
    np.testing.assert_allclose(found, expected, rtol=0, atol=np.finfo(np.float32).eps)
    correct = estimator.predict(images).argmax(axis=1) == y
    assert (correct & (estimator.predict(found).argmax(axis=1) != y)).any()  # the attack broke some: not a no-op
    assert len(calls) <= queries + 2 and calls[0] == len(y)  # clean, stripes, then one pass per query


def test_stops_when_every_sample_falls():
    model = nn.Linear(784, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([0.0, 1.0]))  # class 1 everywhere: label 0 has fallen before the first query
    estimator = _classifier(model, (1, 28, 28), 2)
    images = np.full((3, 1, 28, 28), 0.5, dtype=np.float32)
    found = square_linf(estimator.predict, images, np.zeros(3, dtype=np.int64), 0.1, 100)
    np.testing.assert_array_equal(found, images)
