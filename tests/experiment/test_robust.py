"""Verified robust accuracy against brute force: every image settled, the exact count is the true one."""

import multiprocessing

import numpy as np
import pytest

from advgap.errors import SpecError
from advgap.experiment import robust
from advgap.experiment.robust import ATTACKS, Settings, Status, robust_accuracy
from advgap.verify import native
from support.brute_force import brute_force_min_distance, random_net

# AutoAttack kept small (one APGD-T target, 200 Square queries): seconds instead of minutes on these nets.
FAST = {"targets": 1, "square_queries": 200}


@pytest.fixture(scope="module")
def small_case():
    """A random 25-3-2-4 net (25 inputs: 5×5 images, as Square needs), 8 inputs with brute-force minimal
    distances, image 0 given a wrong label, and radii between consecutive distances (never on one)."""
    net = random_net(0, 25, (3, 2), 4)
    x = np.random.default_rng(0).random((8, 25))
    labels = net.predict(x)
    distance = np.array([
        brute_force_min_distance(net, x[i], int(labels[i]), [t for t in range(4) if t != labels[i]])
        for i in range(len(x))
    ])
    labels[0] = (labels[0] + 1) % 4
    d = np.sort(distance[1:])
    radii = tuple(float(r) for r in ((d[:-1] + d[1:]) / 2)[[0, 3, 5]])
    truth = (np.arange(len(x)) != 0)[:, None] & (distance[:, None] > np.array(radii)[None, :])
    return net, x, labels, radii, truth


@pytest.fixture(scope="module")
def exact_run(small_case):
    """The exact run, with the engine's own PGD attack (`native.pgd_falsify`) made to fail if it is called."""
    net, x, labels, radii, _ = small_case

    def no_attack(*args, **kwargs):
        raise AssertionError("the engine re-attacked an image the four attacks had already failed on")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native, "pgd_falsify", no_attack)
        return robust_accuracy(net, x, labels, Settings(radii, exact=True, timeout=30.0, **FAST), chunk=4)


def test_exact_robust_accuracy_is_brute_force_and_below_every_attack(small_case, exact_run):
    *_, truth = small_case
    result = exact_run
    assert result.checks > 0  # the engine decided some radii itself, without its own attack (`exact_run`)
    assert not (result.status == Status.OPEN).any()
    np.testing.assert_array_equal(result.status == Status.PROVEN, truth)
    np.testing.assert_array_equal(result.proven(), truth.sum(axis=0))
    np.testing.assert_array_equal(result.not_refuted(), truth.sum(axis=0))
    assert 0 < truth.sum() < truth.size  # robust and non-robust cases both occur
    assert not result.correct[0] and result.correct[1:].all()
    for attack in ATTACKS:
        robust_by_attack = result.correct[:, None] & ~result.refuted[attack]
        assert not (truth & ~robust_by_attack).any(), attack  # an attack never refutes a robust image
        assert (result.robust(attack) >= result.proven()).all()
        assert (np.diff(result.refuted[attack].astype(int), axis=1) >= 0).all()  # refuted at δ: at larger δ too
    assert result.refuted["autoattack"].any() and result.refuted["fmn"].any()


def test_without_exact_the_upper_end_is_what_no_attack_refuted(small_case):
    net, x, labels, radii, truth = small_case
    result = robust_accuracy(net, x, labels, Settings(radii, **FAST), chunk=8)
    assert result.checks == 0 and not (result.status == Status.PROVEN).any()
    refuted_by_any = np.any([result.refuted[a] for a in ATTACKS], axis=0) | ~result.correct[:, None]
    np.testing.assert_array_equal(result.status == Status.NOT_ROBUST, refuted_by_any)
    assert (result.not_refuted() >= truth.sum(axis=0)).all()
    record = result.as_dict()
    assert record["n"] == 8 and record["correct"] == 7 and record["exact"] is False
    assert [row["delta"] for row in record["radii"]] == list(radii)
    assert "proven" not in record["radii"][0]["images"]
    assert "no FAB-T" in record["autoattack"]


def test_a_pool_of_workers_gives_the_same_verdicts(small_case, exact_run, monkeypatch):
    net, x, labels, *_ = small_case
    contexts = []
    real = multiprocessing.get_context
    monkeypatch.setattr(robust.multiprocessing, "get_context", lambda method: contexts.append(method) or real(method))
    pooled = robust_accuracy(net, x, labels, exact_run.settings, workers=2, chunk=4)
    assert contexts == ["spawn"]
    alone = exact_run
    np.testing.assert_array_equal(pooled.status, alone.status)
    for attack in ATTACKS:
        np.testing.assert_array_equal(pooled.refuted[attack], alone.refuted[attack])


def test_engine_budget_spent_leaves_radii_open(small_case, monkeypatch):
    """An engine that gives up settles nothing: the images it was asked about stay OPEN, proven stays 0."""
    from advgap.verify.result import CheckResult, Verdict

    net, x, labels, radii, truth = small_case
    asked = []

    def give_up(net, x, label, delta, timeout, attack):
        assert attack is False  # the four attacks already ran: the engine is not to repeat its own
        asked.append(delta)
        return CheckResult(Verdict.TIMEOUT, timeout, "native")

    monkeypatch.setattr(robust, "check_robust", give_up)
    result = robust_accuracy(net, x, labels, Settings(radii, exact=True, **FAST), chunk=8)
    assert asked and result.checks == len(asked)
    assert (result.proven() == 0).all()
    assert (result.status[truth] == Status.OPEN).all()


@pytest.mark.parametrize(
    ("deltas", "message"),
    [((), "(0, 1]"), ((0.0,), "(0, 1]"), ((1.5,), "(0, 1]"), ((float("nan"),), "(0, 1]"),
     ((0.2, 0.1), "increasing"), ((0.1, 0.1), "distinct")],
)
def test_bad_radii(deltas, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace("]", r"\]")):
        Settings(deltas)


def test_bad_inputs(small_case):
    net, x, labels, radii, _ = small_case
    with pytest.raises(SpecError, match="expects 25"):
        robust_accuracy(net, x[:, :24], labels, Settings(radii))
    with pytest.raises(SpecError, match=r"\[0, 1\]"):
        robust_accuracy(net, x + 1, labels, Settings(radii))
    with pytest.raises(SpecError, match="timeout"):
        Settings(radii, timeout=0)
