import math
import sqlite3

import numpy as np
import pytest

from advgap.errors import ConfigError
from advgap.experiment.store import FILENAME, ImageRow, ResultRow, ResultStore, RowStatus, pack, unpack

IDENTITY = {"engine": "native", "tol": 0.001, "models": {"net": "abc"}}


def row(image, target, method="fgsm", delta=0.1, **kw):
    status = kw.pop("status", RowStatus.FOUND)
    return ResultRow("net", image, target, method, delta, status, 0.5, "test", "0", **kw)


def test_perturbation_round_trips_as_float32():
    p = np.linspace(-0.3, 0.3, 784)
    out = unpack(pack(p))
    assert out.dtype == np.float32 and out.shape == (784,)
    np.testing.assert_array_equal(out, p.astype(np.float32))
    assert pack(None) is None and unpack(None) is None


def test_rows_are_stored_once_and_read_back(tmp_path):
    p = np.full(784, 0.25)
    with ResultStore.open(tmp_path, IDENTITY) as store:
        assert store.add([row(1, 2, perturbation=p), row(1, 3)]) == 2
        assert store.add([row(1, 2, delta=0.9), row(4, 5)]) == 1  # (1, 2) already stored: kept as it was
        rows = store.results("net", "fgsm")
    assert [(r.image, r.target, r.delta) for r in rows] == [(1, 2, 0.1), (1, 3, 0.1), (4, 5, 0.1)]
    np.testing.assert_array_equal(rows[0].perturbation, p.astype(np.float32))
    assert rows[1].perturbation is None
    with sqlite3.connect(tmp_path / FILENAME) as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 3


def test_exact_rows_keep_bounds_and_an_infinite_upper_end(tmp_path):
    with ResultStore.open(tmp_path, IDENTITY) as store:
        store.add([
            row(0, 1, "exact", 0.05, status=RowStatus.EXACT, lower=0.0495, upper=0.05),
            row(0, 2, "exact", None, status=RowStatus.EXACT, lower=1.0, upper=math.inf),
            row(0, 3, "pgd", None, status=RowStatus.NOT_FOUND),
        ])
        exact = store.results("net", "exact")
        pgd = store.results("net", "pgd")
    assert (exact[0].lower, exact[0].upper, exact[0].status) == (0.0495, 0.05, RowStatus.EXACT)
    assert exact[1].upper == math.inf and exact[1].delta is None
    assert pgd[0].upper is None and pgd[0].status is RowStatus.NOT_FOUND


def test_statuses_and_image_filter(tmp_path):
    with ResultStore.open(tmp_path, IDENTITY) as store:
        store.add([row(1, 2), row(3, 4, "exact", status=RowStatus.EXACT, lower=0.1, upper=0.1)])
        store.put_images([ImageRow("net", 1, 7, 7), ImageRow("net", 2, 7, 1)])
        store.put_images([ImageRow("net", 1, 7, 3)])  # already stored: ignored
        assert store.statuses("net") == {(1, 2, "fgsm"): RowStatus.FOUND, (3, 4, "exact"): RowStatus.EXACT}
        assert store.statuses("other") == {}
        assert [r.image for r in store.results(images=[3])] == [3]
        assert [r.correct for r in store.images("net")] == [True, False]


def test_reopening_with_the_same_identity_resumes(tmp_path):
    with ResultStore.open(tmp_path, IDENTITY) as store:
        store.add([row(1, 2)])
    with ResultStore.open(tmp_path, dict(IDENTITY)) as store:
        assert store.statuses("net").keys() == {(1, 2, "fgsm")}


def test_a_different_identity_is_refused_naming_what_differs(tmp_path):
    ResultStore.open(tmp_path, IDENTITY).close()
    with pytest.raises(ConfigError, match=r"different run configuration \(tol: stored 0.001, now 0.01\)"):
        ResultStore.open(tmp_path, {**IDENTITY, "tol": 0.01})


def test_reading_a_folder_without_store_or_with_a_broken_one_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match="no results store"):
        ResultStore.read(tmp_path)
    (tmp_path / FILENAME).write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ConfigError, match="not a usable results store"):
        ResultStore.read(tmp_path)


def test_sessions_record_rows_added(tmp_path):
    with ResultStore.open(tmp_path, IDENTITY) as store:
        session = store.begin_session("0:3", 2)
        store.add([row(1, 2), row(1, 3)], session)
        store.add([row(1, 2)], session)
        store.end_session(session)
        (info,) = store.sessions()
    assert info["rows_added"] == 2 and info["workers"] == 2 and info["finished"] >= info["started"]


def test_a_run_may_add_or_leave_out_models_but_not_change_one(tmp_path):
    with ResultStore.open(tmp_path, IDENTITY) as store:
        store.add([row(1, 2)])
    more = {**IDENTITY, "models": {"net": "abc", "deeper": "def"}}
    with ResultStore.open(tmp_path, more) as store:
        assert store.identity()["models"] == {"net": "abc", "deeper": "def"}
        assert len(store.results("net")) == 1
    with ResultStore.open(tmp_path, {**IDENTITY, "models": {"deeper": "def"}}) as store:  # a subset
        assert store.identity()["models"] == {"net": "abc", "deeper": "def"}
    with pytest.raises(ConfigError, match="models"):
        ResultStore.open(tmp_path, {**IDENTITY, "models": {"net": "changed"}})
    with pytest.raises(ConfigError, match="tol"):
        ResultStore.open(tmp_path, {**more, "tol": 0.01})
