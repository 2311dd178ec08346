import json

import pytest

from advgap.report.html import build_report


def test_report_and_summary_hold_the_stored_numbers(small_store, expected):
    path = build_report(small_store)
    page = path.read_text()
    assert path == small_store / "report.html"
    assert page.count('src="data:image/png;base64,') == 7
    assert "<script" not in page
    assert f"{expected['mean_px']['exact']:.2f}" in page  # mean minimal δ, exact
    assert "97.00%" in page and "95.00%" in page  # study's clean accuracy beside ours
    assert "logit_t ≥ logit_label" in page, "the report states the one definition of adversarial for target t"
    summary = json.loads((small_store / "summary.json").read_text())
    entry = summary["models"]["vanilla"]
    assert entry["mean_minimal_px"]["fgsm"] == pytest.approx(expected["mean_px"]["fgsm"])
    assert entry["median_relative_gap"]["pgd"] == pytest.approx(0.1)
    assert summary["selection"] is None
    assert "<h2>Verified robust accuracy</h2>" in page and "0.00% ≤ true ≤ 25.00% (1 unsettled)" in page
    assert [r["delta"] for r in entry["robust_accuracy"]] == [0.1, 0.2]


def test_names_from_the_store_are_escaped(tmp_path):
    from advgap.report.html import _table

    table = _table(["<net>"], [[("a<b>&c", "")]])
    assert "<b>" not in table and "a&lt;b&gt;&amp;c" in table and "&lt;net&gt;" in table


def test_selection_is_recorded(small_store):
    build_report(small_store, range(0, 1))
    summary = json.loads((small_store / "summary.json").read_text())
    assert summary["selection"] == [0, 1]
    assert summary["models"]["vanilla"]["images_complete"] == 1


def test_depth_section_shows_an_open_gap_as_an_interval(small_store):
    page = build_report(small_store).read_text()
    depth = page[page.index("<h2>Deeper nets"):page.index("<h2>Figures")]
    assert "<td>1.500–2.000</td>" in depth  # FGSM: the one uncertified pair widens the median to an interval
    assert "<td>0.100</td>" in depth  # PGD: the same at both ends, one number
    summary = json.loads((small_store / "summary.json").read_text())
    assert [row["name"] for row in summary["depth"]] == ["vanilla"]
