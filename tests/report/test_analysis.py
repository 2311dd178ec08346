import math

import numpy as np
import pytest

from advgap.experiment.store import ResultStore
from advgap.report import analysis


def load(folder, selection=None):
    with ResultStore.read(folder) as store:
        return analysis.load(store, selection), store.identity(), store.sessions()


def test_only_complete_correct_images_enter(small_store):
    (data,), _, _ = load(small_store)
    assert data.name == "vanilla"
    assert (data.n_selected, data.n_correct) == (4, 3)
    assert data.images.tolist() == [0, 1]
    assert len(data.pairs) == 18
    np.testing.assert_allclose(data.minimal("exact"), [0.01, 0.03])
    np.testing.assert_allclose(data.minimal("fgsm"), [0.02, 0.09])


def test_selection_restricts_images(small_store):
    (data,), _, _ = load(small_store, range(1, 2))
    assert data.images.tolist() == [1] and data.n_selected == 1


def test_cosine_follows_the_perturbation_directions(small_store):
    (data,), _, _ = load(small_store)
    cos = data.cosine("fgsm")
    assert len(cos) == 15  # the 3 failed FGSM pairs have no perturbation
    np.testing.assert_allclose(np.sort(cos), [0.0] * 6 + [1.0] * 9, atol=1e-6)
    np.testing.assert_allclose(data.cosine("pgd"), 1.0, atol=1e-6)


def test_summary_numbers_match_the_closed_form(small_store, expected):
    models, identity, sessions = load(small_store)
    entry = analysis.summarize(models, identity, sessions)["models"]["vanilla"]
    for method, value in expected["mean_px"].items():
        assert entry["mean_minimal_px"][method] == pytest.approx(value), method
    for attack, value in expected["median_gap"].items():
        assert entry["median_relative_gap"][attack] == pytest.approx(value, abs=1e-9), attack
    assert entry["pairs_not_certified"] == 1
    assert entry["images_minimal_not_certified"] == 0
    assert entry["pairs_below_exact_lower"] == {"fgsm": 0, "pgd": 0, "fmn": 0}
    assert entry["unreached_images"]["fgsm"] == 0
    assert entry["study"]["mean_min_px"] == 6.0
    assert entry["seconds"]["exact"] == pytest.approx(18 * 0.25)


def test_an_image_no_attack_reaches_counts_as_delta_one():
    class Fake:
        def minimal(self, method):
            return np.array([0.02, math.inf])

    mean, unreached = analysis.mean_minimal_px(Fake(), "fgsm")
    assert mean == pytest.approx((0.02 + 1.0) / 2 * 255) and unreached == 1


def test_robust_accuracy_counts_from_the_stored_distances(small_store):
    """At δ = 0.02: image 0 is refuted (every method within 0.02, FGSM exactly at it), image 1 proven (lower bound
    0.0295) and robust for every attack, image 2 is misclassified, image 3 incomplete (neither proven nor refuted).
    At δ = 0.005 image 0 is proven too (lower bound 0.0095)."""
    (data,), _, _ = load(small_store)
    assert analysis.robust_accuracy(data, 0.02) == {
        "delta": 0.02, "images": 4, "robust": {"fgsm": 1, "pgd": 1, "fmn": 1}, "proven": 1, "not_refuted": 2,
    }
    at_005 = analysis.robust_accuracy(data, 0.005)
    assert at_005["robust"] == {"fgsm": 2, "pgd": 2, "fmn": 2} and at_005["proven"] == 2
    assert at_005["not_refuted"] == 3


def test_depth_row_bounds_the_gap_where_the_engine_left_an_interval(small_store):
    """Image 0 target 9 is the one uncertified pair, exact δ in [0.05, 0.1], FGSM at 0.2 and PGD at 0.11."""
    data = load(small_store)[0][0]
    low, high = data.relative_gap_bounds("fgsm")
    timeout = (data.pairs.image == 0) & (data.pairs.target == 9)
    assert low[timeout] == pytest.approx(1.0) and high[timeout] == pytest.approx(3.0)
    assert np.array_equal(low[~timeout], high[~timeout])
    row = analysis.depth_row(data, tol=0.001)
    # lows: 1 ×9, 2 ×6, inf ×3 → median 1.5; highs: 1 ×8, 2 ×6, 3, inf ×3 → median 2; certified only: 2
    assert row["median_relative_gap_bounds"]["fgsm"] == pytest.approx([1.5, 2.0])
    assert row["median_relative_gap_bounds"]["pgd"] == pytest.approx([0.1, 0.1])
    assert (row["pairs"], row["pairs_exact"], row["images"], row["images_exact"]) == (18, 17, 2, 2)
    assert row["mean_minimal_px_exact_bounds"] == pytest.approx([(0.0095 + 0.0295) / 2 * 255, 0.02 * 255])
    assert row["engine_seconds_per_image"] == pytest.approx(18 * 0.25 / 2)
    assert row["relu_layers"] is None  # the store's model has no metadata to read it from


def test_models_are_ordered_by_relu_layers():
    from advgap.experiment.store import ModelRow

    def model(name, meta):
        return analysis.ModelData(ModelRow(name, "x", meta), ("exact",), 0, 0, None)

    nets = [model("conv", {"relu_layers": [2704, 800, 100]}), model("own", {}), model("study", {
        "architecture": "784-50-10"}), model("deep", {"relu_layers": [100] * 4})]
    assert [m.name for m in analysis.by_depth(nets)] == ["study", "conv", "deep", "own"]
