import json
import math
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from advgap.errors import ConfigError
from advgap.experiment.config import RunConfig
from advgap.experiment.runner import run_experiment
from advgap.experiment.store import FILENAME, ResultStore, RowStatus
from advgap.report.html import build_report

FIRST_LABELS = (7, 2, 1, 0, 4, 1, 4, 9)  # MNIST test images 0-7; the tiny net gets all of them right


def config(net, out, **changes):
    settings = {"models": (str(net),), "images": (0, 3), "targets": (3, 5), "workers": 1, "out": out,
                "timeout": 20.0}
    return RunConfig(**{**settings, **changes})


def stored(folder):
    with ResultStore.read(folder) as store:
        return {r.key: r for r in store.results()}


def test_small_run_stores_every_row_checks_out_and_builds_the_report(tiny_net_file, tmp_path):
    summary = run_experiment(config(tiny_net_file, tmp_path), progress=False)
    report = build_report(tmp_path)
    (model,) = summary.models
    assert (model.name, model.images, model.correct) == ("tiny", 3, 3)
    assert model.rows == model.expected == model.added == 3 * 2 * 4 and summary.complete
    assert model.not_certified == 0
    rows = stored(tmp_path)
    assert {(i, t) for _, i, t, _ in rows} == {(i, t) for i in range(3) for t in (3, 5)}
    for (_, image, target, _), exact in ((k, r) for k, r in rows.items() if k[3] == "exact"):
        assert exact.status is RowStatus.EXACT and exact.upper - exact.lower <= 1e-3 + 1e-12
        # the stored perturbation is witness - x: its size is the distance
        assert np.abs(exact.perturbation).max() == pytest.approx(exact.upper, abs=1e-6)
        for attack in ("fgsm", "pgd", "fmn"):
            row = rows[("tiny", image, target, attack)]
            assert row.delta is None or row.delta >= exact.lower - 1e-6, (attack, image, target)
    assert report == tmp_path / "report.html" and report.stat().st_size > 10_000
    assert (tmp_path / "summary.json").is_file()


def test_rerun_skips_stored_rows_and_a_larger_selection_extends(tiny_net_file, tmp_path):
    first = run_experiment(config(tiny_net_file, tmp_path, images=(0, 2), attacks=("fgsm",)), False)
    before = stored(tmp_path)
    grown = run_experiment(config(tiny_net_file, tmp_path, images=(0, 3), attacks=("fgsm",)), False)
    again = run_experiment(config(tiny_net_file, tmp_path, images=(0, 3), attacks=("fgsm",)), False)
    assert first.models[0].added == 2 * 2 * 2
    assert grown.models[0].added == 1 * 2 * 2 and again.models[0].added == 0
    after = stored(tmp_path)
    assert all(after[key].created == row.created for key, row in before.items())  # not recomputed
    assert len(after) == 3 * 2 * 2


def test_a_changed_configuration_is_refused(tiny_net_file, tmp_path):
    run_experiment(config(tiny_net_file, tmp_path, images=(0, 1), attacks=("fgsm",)), False)
    with pytest.raises(ConfigError, match=r"tol: stored 0\.001, now 0\.01"):
        run_experiment(config(tiny_net_file, tmp_path, images=(0, 1), attacks=("fgsm",), tol=1e-2), False)
    with pytest.raises(ConfigError, match="engine: stored \"native\", now \"marabou\""):
        run_experiment(config(tiny_net_file, tmp_path, images=(0, 1), attacks=("fgsm",), engine="marabou"), False)


CHILD = """
from advgap.experiment.config import RunConfig
from advgap.experiment.runner import run_experiment
run_experiment(RunConfig(models=({net!r},), images=(0, 8), targets=(1, 3, 5, 7), workers=1, out={out!r},
                         timeout=20.0), progress=False)
"""


def _count(folder, method):
    try:
        with sqlite3.connect(folder / FILENAME, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM results WHERE method = ?", (method,)).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_killed_run_resumes_with_nothing_lost_or_duplicated(tiny_net_file, tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    settings = {"images": (0, 8), "targets": (1, 3, 5, 7)}
    n_exact = sum(1 for label in FIRST_LABELS for t in settings["targets"] if t != label)
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(net=str(tiny_net_file), out=str(killed))])
    try:
        deadline = time.monotonic() + 120
        while _count(killed, "exact") < 3 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    partial = stored(killed)
    n_partial_exact = sum(1 for k in partial if k[3] == "exact")
    assert 3 <= n_partial_exact < n_exact, "the child was not killed mid-way"
    # Resume in this process, and compare with an uninterrupted run in two spawned workers.
    resumed = run_experiment(config(tiny_net_file, killed, **settings), progress=False)
    run_experiment(config(tiny_net_file, whole, workers=2, **settings), progress=False)
    assert resumed.models[0].added == 4 * n_exact - len(partial)
    a, b = stored(killed), stored(whole)
    assert len(a) == 4 * n_exact and a.keys() == b.keys()
    for key, row in partial.items():  # rows stored before the kill were kept, not recomputed
        assert a[key].created == row.created and a[key].delta == row.delta
    for key in a:
        if key[3] == "exact":  # both certified intervals contain the true distance
            assert max(a[key].lower, b[key].lower) <= min(a[key].upper, b[key].upper) + 1e-9, key
        else:  # attacks are deterministic per chunk and seed, whatever the process
            assert a[key].delta == b[key].delta or (a[key].delta is None and b[key].delta is None), key
    assert not any(math.isnan(r.seconds) for r in a.values())


def test_two_models_share_one_folder_and_report(tiny_net_file, tmp_path):
    twin = tmp_path / "twin.npz"
    twin.write_bytes(tiny_net_file.read_bytes())
    cfg = config(tiny_net_file, tmp_path / "out", models=(str(tiny_net_file), str(twin)), images=(0, 2),
                 targets=(3,), attacks=("fgsm",))
    summary = run_experiment(cfg, progress=False)
    assert [(m.name, m.rows, m.expected) for m in summary.models] == [("tiny", 4, 4), ("twin", 4, 4)]
    build_report(tmp_path / "out")
    summary_json = (tmp_path / "out" / "summary.json").read_text()
    assert '"tiny"' in summary_json and '"twin"' in summary_json
    same_stem = tmp_path / "elsewhere" / "tiny.npz"
    same_stem.parent.mkdir()
    same_stem.write_bytes(tiny_net_file.read_bytes())
    with pytest.raises(ConfigError, match="share a name"):
        run_experiment(config(tiny_net_file, tmp_path / "other", models=(str(tiny_net_file), str(same_stem))), False)


def test_autoattack_runs_once_per_image_and_radius_and_reaches_the_report(tiny_net_file, tmp_path, monkeypatch):
    from advgap.experiment import robust
    from advgap.experiment.config import ROBUST_RADII

    calls = []
    real = robust.robust_accuracy
    monkeypatch.setattr(robust, "robust_accuracy", lambda net, x, *a, **k: calls.append(len(x)) or real(
        net, x, *a, **k))
    run_experiment(config(tiny_net_file, tmp_path, images=(0, 2), attacks=("pgd",)), False)
    run_experiment(config(tiny_net_file, tmp_path, images=(0, 3), attacks=("pgd",)), False)
    assert calls == [2, 1]  # the second run checks only the image it adds
    with ResultStore.read(tmp_path) as store:
        rows = store.robust("tiny")
    assert sorted((r.image, r.delta) for r in rows) == [(i, d) for i in range(3) for d in ROBUST_RADII]
    assert all(r.method == "autoattack" and "APGD" in r.settings for r in rows)
    build_report(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    accuracy = summary["models"]["tiny"]["robust_accuracy"]
    refuted = {d: sum(r.refuted for r in rows if r.delta == d) for d in ROBUST_RADII}
    assert [a["robust"]["autoattack"] for a in accuracy] == [3 - refuted[d] for d in ROBUST_RADII]
    assert "AutoAttack" in (tmp_path / "report.html").read_text()
