"""A property's per-term searches on several forked processes: the same verdicts, every counterexample replayed."""

import os
import time

import numpy as np

from advgap.verify import native, parallel
from advgap.verify.result import Verdict
from advgap.verify.spec import Property, Term, linf_box
from support.brute_force import brute_force_feasible, random_net


def test_map_until_runs_tasks_in_other_processes_and_stops_at_the_first_stop_result():
    results = parallel.map_until(6, lambda i: (i, os.getpid()), time.monotonic() + 10, 2, lambda r: False)
    assert sorted(results) == list(range(6)) and all(results[i][0] == i for i in results)
    assert os.getpid() not in {pid for _, pid in results.values()}
    stopped = parallel.map_until(50, lambda i: (time.sleep(0.05), i)[1], time.monotonic() + 10, 2, lambda r: r == 3)
    assert 3 in stopped and len(stopped) < 50
    assert parallel.map_until(4, lambda i: i, time.monotonic() - 1, 2, lambda r: False) == {}


def test_map_until_with_one_worker_runs_in_order_in_this_process():
    assert parallel.map_until(3, lambda i: (i, os.getpid()), time.monotonic() + 10, 1, lambda r: False) == {
        i: (i, os.getpid()) for i in range(3)}


def test_terms_decided_on_two_processes_agree_with_enumeration(monkeypatch):
    calls = []
    original = parallel.map_until

    def spy(count, work, deadline, workers, stop):
        calls.append((count, workers))
        return original(count, work, deadline, workers, stop)

    monkeypatch.setattr(native, "map_until", spy)
    # every term goes to the search (none refuted by the root bounds alone), so robust verdicts take the path too
    monkeypatch.setattr(native, "term_margins", lambda net, prop, bounds: np.zeros(len(prop.terms)))
    decided = {Verdict.ROBUST: 0, Verdict.COUNTEREXAMPLE: 0}
    for seed in range(8):
        net = random_net(seed, 12, (5, 4), n_outputs=4)  # 12 inputs: not the input-splitting path
        x = np.random.default_rng(seed).uniform(0.3, 0.7, 12)
        label = int(net.predict(x))
        for radius in (0.02, 0.05, 0.1):
            lo, hi = linf_box(x, radius)
            terms = tuple(Term((np.eye(4)[label] - np.eye(4)[t])[None], np.zeros(1), f"target {t}")
                          for t in range(4) if t != label)
            prop = Property(lo, hi, terms)
            before = len(calls)
            result = native.check_property(net, prop, timeout=10, attack=False, workers=2)
            expected = any(brute_force_feasible(net, lo, hi, t.A, t.b) for t in terms)
            assert result.verdict is (Verdict.COUNTEREXAMPLE if expected else Verdict.ROBUST), (seed, radius)
            if result.verdict is Verdict.COUNTEREXAMPLE:
                assert prop.violated_by(result.counterexample, net.forward(result.counterexample)) is not None
            if any(count > 1 for count, _ in calls[before:]):
                decided[result.verdict] += 1
    assert all(workers == 2 for _, workers in calls)
    assert decided[Verdict.ROBUST] >= 1 and decided[Verdict.COUNTEREXAMPLE] >= 1, decided
