"""`build_report`: report.html (self-contained, figures embedded as base64 PNG) and summary.json, from the store.

Every number and figure comes from the results store of the output folder; the study's reported values are shown
beside ours, never in place of them.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from advgap import __version__
from advgap.adversarial import DESCRIPTION
from advgap.attacks.registry import ATTACK_NAMES
from advgap.experiment.store import ResultStore
from advgap.report import analysis
from advgap.report.analysis import METHOD_LABELS, ROBUST_METHODS
from advgap.report.figures import Figure, render_all

log = logging.getLogger(__name__)

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
td.study { color: #666; font-style: italic; }
figure { margin: 1.2em 0 2em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; font-size: 0.9em; }
td { font-variant-numeric: tabular-nums; white-space: nowrap; }
"""


def build_report(folder: str | Path, selection: range | None = None) -> Path:
    """Write figures/, summary.json and report.html into `folder` from its store; returns the report's path."""
    folder = Path(folder)
    with ResultStore.read(folder) as store:
        identity = store.identity() or {}
        sessions = store.sessions()
        models = analysis.load(store, selection)
    figures = render_all(models, folder / "figures")
    summary = analysis.summarize(models, identity, sessions)
    summary["selection"] = None if selection is None else [selection.start, selection.stop]
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    path = folder / "report.html"
    path.write_text(_page(summary, figures))
    log.info("wrote %s", path)
    return path


def _page(summary: dict[str, Any], figures: list[Figure]) -> str:
    models = summary["models"]
    selection = summary["selection"]
    chosen = "all stored images" if selection is None else f"test images {selection[0]}–{selection[1] - 1}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>advgap report</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>How far are first-order attacks from the closest adversarial example?</h1>",
        f'<p class="note">advgap {html.escape(__version__)}, generated '
        f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}, {html.escape(chosen)}. "
        "δ is an L∞ radius; pixels = δ·255. Study values in grey italics.</p>",
        f'<p class="note">{html.escape(DESCRIPTION)} Attacks and the exact engine use this one definition, '
        "so each per-target pair compares the same distance.</p>",
        "<h2>Test accuracy</h2>",
        _accuracy_table(models),
        "<h2>Mean minimal δ (pixels)</h2>",
        _minimal_table(models),
        "<h2>Median relative gap max(δ<sub>attack</sub> − δ<sub>exact</sub>, 0) / δ<sub>exact</sub></h2>",
        _gap_table(models),
        "<h2>Verified robust accuracy</h2>",
        _robust_table(models),
        "<h2>Deeper nets: the attack gap as depth grows</h2>",
        _depth_tables(summary["depth"]),
        "<h2>Figures</h2>",
        *(_figure(f) for f in figures),
        "<h2>Timings</h2>",
        _timing_table(models),
        _sessions_table(summary["sessions"]),
        "<h2>Configuration</h2>",
        _networks_table(models),
        _table(["setting", "value"], [[(key, ""), (json.dumps(value), "")] for key, value in sorted(
            summary["identity"].items())]),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _table(header: Iterable[str], rows: Iterable[Iterable[tuple[str, str]]]) -> str:
    """An HTML table; each cell is (text, css class). Texts are escaped here."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="{c}">{html.escape(t)}</td>' if c else f"<td>{html.escape(t)}</td>"
                         for t, c in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _num(value: float | str | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return "∞" if value == "inf" else f"{value:.{digits}f}"


def _accuracy_table(models: dict[str, Any]) -> str:
    rows = []
    for name, m in models.items():
        study = m["study"] or {}
        delta = m["fgsm_accuracy_delta"]
        rows.append([
            (name, ""), (_pct(m["clean_accuracy"]), ""), (_pct(study.get("clean_accuracy")), "study"),
            (_pct(m["fgsm_accuracy"]), ""), (_pct(study.get("fgsm_accuracy")), "study"),
            ("–" if delta is None else f"{delta:g}", ""), (str(m["accuracy_test_images"] or "–"), ""),
        ])
    return _table(["net", "clean", "study", "FGSM", "study", "FGSM δ", "test images"], rows)


def _minimal_table(models: dict[str, Any]) -> str:
    methods = [m for m in (*ATTACK_NAMES, "exact") if any(m in e["mean_minimal_px"] for e in models.values())]
    rows = []
    for name, m in models.items():
        study = m["study"] or {}
        cells = [(name, ""), (f"{m['images_complete']} / {m['images_correct']} / {m['images_selected']}", "")]
        for method in methods:
            text = _num(m["mean_minimal_px"].get(method))
            unreached = m["unreached_images"].get(method, 0)
            cells.append((text + (f" ({unreached} unreached)" if unreached else ""), ""))
        cells.append((_num(study.get("mean_min_px"), 0), "study"))
        cells.append((f"{m['images_minimal_not_certified']} images, {m['pairs_not_certified']} pairs", ""))
        rows.append(cells)
    header = ["net", "images complete / correct / selected", *(METHOD_LABELS[m] for m in methods), "study",
              "exact δ not certified"]
    note = ('<p class="note">Minimal δ = minimum over the targets of an image; only images with all rows stored count. '
            "An image no attack reached at δ = 1 counts as 255 px. Exact values are certified upper ends, at most "
            "the tolerance above the true distance, so an attack may land slightly below them. Not certified: the "
            "engine stopped with a proven interval wider than the tolerance; its upper end is used.</p>")
    return _table(header, rows) + note


def _gap_table(models: dict[str, Any]) -> str:
    attacks = [a for a in ATTACK_NAMES if any(a in e["median_relative_gap"] for e in models.values())]
    rows = []
    for name, m in models.items():
        cells = [(name, ""), (str(m["pairs"]), "")]
        cells += [(_num(m["median_relative_gap"].get(a), 3), "") for a in attacks]
        cells.append((", ".join(f"{METHOD_LABELS[a]} {m['pairs_below_exact_lower'][a]}" for a in attacks), ""))
        rows.append(cells)
    header = ["net", "pairs", *(METHOD_LABELS[a] for a in attacks), "attack δ below proven lower bound"]
    note = ('<p class="note">Per (image, target) pair with a certified exact δ; 0 means the attack found the '
            "closest adversarial example (within the certified interval), 1 means it needed twice the distance. "
            "The last column is a soundness check and must be 0.</p>")
    return _table(header, rows) + note


def _robust_table(models: dict[str, Any]) -> str:
    accuracies = [r for e in models.values() for r in e["robust_accuracy"]]
    attacks = [a for a in ROBUST_METHODS if any(a in r["robust"] for r in accuracies)]
    rows = []
    for name, m in models.items():
        for r in m["robust_accuracy"]:
            n = max(r["images"], 1)
            unsettled = r["not_refuted"] - r["proven"]
            exact = f"{_pct(r['proven'] / n)} ≤ true ≤ {_pct(r['not_refuted'] / n)}"
            rows.append([(name, ""), (f"{r['delta']:g}", ""),
                         *((_pct(r["robust"][a] / n) if a in r["robust"] else "–", "") for a in attacks),
                         (exact + (f" ({unsettled} unsettled)" if unsettled else ""), ""), (str(r["images"]), "")])
    header = ["net", "δ", *(METHOD_LABELS[a] for a in attacks), "exact: proven ≤ true ≤ not refuted", "images"]
    note = ('<p class="note">Fraction of the selected test images robust at δ (a misclassified image is not). An '
            "attack counts an image robust when its closest adversary over all targets lies beyond δ; exact: proven "
            "when the certified lower bound of the minimal δ exceeds δ, refuted when some method's adversarial point "
            "lies within δ, between the two where the engine left an interval or an image is incomplete. "
            "AutoAttack (ART's APGD-CE, APGD-T and Square; ART has no FAB-T) runs at these two radii only; "
            "<code>advgap evaluate --robust</code> measures any radii on any number of images.</p>")
    return _table(header, rows) + note


def _interval(bounds: list | None, digits: int = 3) -> str:
    """A certified interval as `low–high`, or one number when its ends agree to `digits` decimals."""
    if bounds is None or bounds[0] is None:
        return "–"
    low, high = (_num(b, digits) for b in bounds)
    return low if low == high else f"{low}–{high}"


def _depth_tables(rows: list[dict[str, Any]]) -> str:
    attacks = [a for a in ATTACK_NAMES if any(a in (r["median_relative_gap_bounds"] or {}) for r in rows)]
    gap_rows, robust_rows = [], []
    for r in rows:
        layers = "–" if r["relu_layers"] is None else str(r["relu_layers"])
        head = [(r["name"], ""), (layers, ""), (str(r["kind"] or "–"), "")]
        gap_rows.append([
            *head, (f"{r['images_exact']} / {r['images']}", ""), (f"{r['pairs_exact']} / {r['pairs']}", ""),
            *((_interval(r["median_relative_gap_bounds"].get(a)), "") for a in attacks),
            *((_num(r["median_cosine"].get(a)), "") for a in attacks),
        ])
        cells = [(r["name"], ""), *((_num(r["mean_minimal_px"].get(a)), "") for a in attacks),
                 (_interval(r["mean_minimal_px_exact_bounds"], 2), "")]
        for acc in r["robust_accuracy"]:
            n = max(acc["images"], 1)
            first_order = [v for a, v in acc["robust"].items() if a != "autoattack"]
            cells.append(("–" if not first_order else _pct(min(first_order) / n), ""))
            autoattack = acc["robust"].get("autoattack")
            cells.append(("–" if autoattack is None else _pct(autoattack / n), ""))
            low, high = (f"{100 * v / n:.1f}" for v in (acc["proven"], acc["not_refuted"]))
            cells.append((f"{low}%" if low == high else f"{low}–{high}%", ""))
        cells.append((f"{r['engine_seconds_per_image']:.1f}", ""))
        robust_rows.append(cells)
    labels = [METHOD_LABELS[a] for a in attacks]
    gap = _table(["net", "ReLU layers", "kind", "images exact", "pairs exact",
                  *(f"gap {a}" for a in labels), *(f"cos {a}" for a in labels)], gap_rows)
    radii = [acc["delta"] for acc in rows[0]["robust_accuracy"]] if rows else []
    robust = _table(["net", *(f"min δ {a}" for a in labels), "min δ exact",
                     *(text for d in radii for text in (f"{d:g}: attacks", f"{d:g}: AutoAttack", f"{d:g}: exact")),
                     "engine s/image"], robust_rows)
    note = ('<p class="note">Nets ordered by their number of ReLU layers. Gap: median over all (image, target) '
            "pairs of max(δ<sub>attack</sub> − δ<sub>exact</sub>, 0)/δ<sub>exact</sub>; where the engine left a pair "
            "as a certified interval, the pair's gap is only known to lie in an interval, and so is the median: "
            "low–high is what holds for every δ<sub>exact</sub> the engine did not rule out. cos: median cosine "
            "similarity of the attack's perturbation and the exact one (the witness at the certified upper end). "
            "Images exact: images whose minimal δ over targets is certified to the tolerance. Second table: mean "
            "minimal δ over targets in pixels (exact: proven–certified upper end); robust accuracy at δ = 0.1 "
            "and 0.2: attacks = the lowest of FGSM's, PGD's and FMN's, AutoAttack's, and the exact one as proven–"
            "not refuted (one number when the two agree); the engine's compute seconds per image over all "
            "targets.</p>")
    return gap + robust + note


def _timing_table(models: dict[str, Any]) -> str:
    rows = []
    for name, m in models.items():
        pairs = max(m["pairs"], 1)
        rows.append([(name, "")] + [
            (f"{seconds:.1f} s ({1000 * seconds / pairs:.1f} ms/pair)", "") for seconds in m["seconds"].values()
        ])
    methods = next(iter(models.values()))["seconds"].keys() if models else []
    return _table(["net", *(f"{METHOD_LABELS[m]} compute" for m in methods)], rows)


def _sessions_table(sessions: list[dict[str, Any]]) -> str:
    rows = []
    for s in sessions:
        started = datetime.datetime.fromtimestamp(s["started"]).astimezone()
        wall = "unfinished" if s["finished"] is None else f"{s['finished'] - s['started']:.1f} s"
        rows.append([(str(s["id"]), ""), (started.strftime("%Y-%m-%d %H:%M:%S"), ""), (s["selection"], ""),
                     (str(s["workers"]), ""), (str(s["rows_added"]), ""), (wall, "")])
    return _table(["run", "started", "images", "workers", "rows added", "wall time"], rows)


def _networks_table(models: dict[str, Any]) -> str:
    rows = []
    for name, m in models.items():
        meta = m["meta"]
        profile = meta.get("profile")
        rows.append([(name, ""), (str(meta.get("architecture", "–")), ""), (str(meta.get("kind", "–")), ""),
                     (str(profile.get("name", "–")) if isinstance(profile, dict) else str(profile or "–"), ""),
                     (str(meta.get("batches", "–")), ""), (m["sha256"][:16], "")])
    return _table(["net", "architecture", "kind", "training profile", "batches", "weights sha256"], rows)


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(figure.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{html.escape(figure.title)}.</b> {html.escape(figure.caption)}</figcaption></figure>")
