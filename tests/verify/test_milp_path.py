"""Multi-row property terms (conjunctions over the logits) are decided by the MILP path, checked by enumeration."""

import numpy as np

from advgap.verify import native
from advgap.verify.milp import NetworkMilp
from advgap.verify.result import Verdict
from advgap.verify.spec import Property, Term, linf_box
from support.brute_force import brute_force_feasible, random_net


def _argmax_is(target: int, n_outputs: int) -> Term:
    """The conjunction y_j - y_target <= 0 for every j != target: "target is (one of) the largest logits"."""
    rows = [np.eye(n_outputs)[j] - np.eye(n_outputs)[target] for j in range(n_outputs) if j != target]
    return Term(np.array(rows), np.zeros(len(rows)), f"argmax {target}")


def test_conjunctions_go_through_the_milp_and_agree_with_enumeration(monkeypatch):
    calls = []
    original = NetworkMilp.min_violation

    def spy(self, *args, **kwargs):
        outcome = original(self, *args, **kwargs)
        calls.append(outcome)
        return outcome

    monkeypatch.setattr(NetworkMilp, "min_violation", spy)
    verdicts = {}
    for seed in range(6):
        net = random_net(seed, 20, (4, 4), n_outputs=3)  # 20 inputs: not the input-splitting path
        x = np.random.default_rng(seed).uniform(0.3, 0.7, 20)
        label = int(net.predict(x))
        for radius in (0.02, 0.1):
            lo, hi = linf_box(x, radius)
            term = _argmax_is((label + 1) % 3, 3)
            before = len(calls)
            result = native.check_property(net, Property(lo, hi, (term,)), timeout=30)
            expected = brute_force_feasible(net, lo, hi, term.A, term.b)
            assert result.verdict is (Verdict.COUNTEREXAMPLE if expected else Verdict.ROBUST), (seed, radius)
            if result.verdict is Verdict.COUNTEREXAMPLE:
                point = result.counterexample
                assert np.all(term.A @ net.forward(point) <= 0) and np.all(point >= lo) and np.all(point <= hi)
            if len(calls) > before:
                verdicts.setdefault(result.verdict, 0)
                verdicts[result.verdict] += 1
    assert verdicts.get(Verdict.ROBUST, 0) >= 2, f"the MILP path proved too few properties: {verdicts}"

