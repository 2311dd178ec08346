"""On nets deeper than one hidden layer, terms a quick search leaves open are searched on tightened bounds."""

import numpy as np

from advgap.verify import native
from advgap.verify.result import Verdict
from advgap.verify.spec import Property, Term, linf_box
from support.brute_force import brute_force_feasible, random_net


def test_open_terms_are_searched_again_on_tightened_bounds_and_agree_with_enumeration(monkeypatch):
    tightened = []
    original = native.tightened_bounds

    def spy(*args, **kwargs):
        tightened.append(args[3])
        return original(*args, **kwargs)

    monkeypatch.setattr(native, "tightened_bounds", spy)
    monkeypatch.setattr(native, "QUICK_SHARE", 0.0)  # the quick search ends at once: every open term goes on
    decided = {Verdict.ROBUST: 0, Verdict.COUNTEREXAMPLE: 0}
    for seed in range(12):
        net = random_net(seed, 20, (4, 3, 3), n_outputs=3)  # 20 inputs: not the input-splitting path
        x = np.random.default_rng(seed).uniform(0.3, 0.7, 20)
        label = int(net.predict(x))
        for radius in (0.01, 0.02, 0.03, 0.05):
            lo, hi = linf_box(x, radius)
            row = np.eye(3)[label] - np.eye(3)[(label + 1) % 3]  # y_label - y_target <= 0
            term = Term(row[None], np.zeros(1), "target")
            before = len(tightened)
            result = native.check_property(net, Property(lo, hi, (term,)), timeout=3, attack=False)
            expected = brute_force_feasible(net, lo, hi, term.A, term.b)
            assert result.verdict is (Verdict.COUNTEREXAMPLE if expected else Verdict.ROBUST), (seed, radius)
            if result.verdict is Verdict.COUNTEREXAMPLE:
                point = result.counterexample
                assert term.holds(net.forward(point)) and np.all(point >= lo) and np.all(point <= hi)
            if len(tightened) > before:
                decided[result.verdict] += 1
    assert all(budget > 0 for budget in tightened)
    assert decided[Verdict.ROBUST] >= 1 and decided[Verdict.COUNTEREXAMPLE] >= 2, decided
