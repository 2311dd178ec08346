"""The report's figures (matplotlib, Agg backend), one PNG each, drawn from `analysis.ModelData` only.

Per model: cosine similarity of FGSM and exact perturbations (study figs. 1, 3), perturbation heatmaps (figs. 2,
4), minimal δ per pixel bin and the fraction robust vs δ (figs. 5, 6). Across models: mean minimal δ (fig. 7),
attack δ vs exact δ, and the distribution of the relative gap of each attack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from advgap.attacks.registry import ATTACK_NAMES
from advgap.experiment.store import RowStatus
from advgap.report.analysis import (
    METHOD_LABELS,
    PX,
    STUDY,
    STUDY_ATTACK,
    ModelData,
    by_depth,
    mean_minimal_px,
)

COLORS = {**dict(zip(ATTACK_NAMES, ("tab:orange", "tab:green", "tab:purple", "tab:red", "tab:brown"), strict=False)),
          "exact": "tab:blue"}
N_EXAMPLES = 4
BIN_WIDTHS = (1, 2, 5, 10, 20, 25, 50)  # pixels; the smallest giving at most MAX_BINS bins
MAX_BINS = 20
DPI = 110


@dataclass(frozen=True)
class Figure:
    """A rendered PNG with the title and caption the report shows next to it."""

    path: Path
    title: str
    caption: str


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _grid(n: int, width: float, height: float, columns: int = 4) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure of n panels, at most `columns` per row; unused panels are hidden."""
    cols = max(1, min(n, columns))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _empty(ax: plt.Axes, text: str = "no complete image yet") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def cosine_histogram(data: ModelData, path: Path) -> Path:
    """Histogram of the cosine similarity between each attack's and the exact perturbation, per (image, target)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.linspace(-1, 1, 41)
    drawn = False
    for attack in data.attacks:
        values = data.cosine(attack)
        if not len(values):
            continue
        drawn = True
        label = f"{METHOD_LABELS[attack]} (median {np.median(values):.2f}, n={len(values)})"
        if attack == STUDY_ATTACK:
            ax.hist(values, bins=bins, color=COLORS[attack], alpha=0.75, label=label)
        else:
            ax.hist(values, bins=bins, histtype="step", linewidth=1.6, color=COLORS[attack], label=label)
    if drawn:
        lowest = min(float(np.min(data.cosine(a), initial=1.0)) for a in data.attacks)
        ax.set_xlabel("cosine similarity with the exact perturbation")
        ax.set_ylabel("(image, target) pairs")
        ax.set_xlim(min(0.0, math.floor(lowest * 10) / 10), 1)
        ax.legend(fontsize=8, loc="upper left")
    else:
        _empty(ax)
    ax.set_title(f"{data.name}: attack vs exact perturbation direction")
    return _save(fig, path)


def perturbation_heatmaps(data: ModelData, path: Path, n: int = N_EXAMPLES) -> Path:
    """FGSM and exact perturbations (28×28, diverging colours centred at 0, one shared scale) for a few images.

    For each of the first `n` complete images the target is the one with the smallest exact δ.
    """
    images = data.images[:n]
    pairs = data.pairs
    if not len(images):
        fig, ax = plt.subplots(figsize=(5, 2))
        _empty(ax)
        return _save(fig, path)
    chosen = []
    for image in images:
        rows = np.flatnonzero(pairs.image == image)
        chosen.append(rows[np.argmin(pairs.delta["exact"][rows])])
    shown = (STUDY_ATTACK, "exact") if STUDY_ATTACK in data.methods else ("exact",)
    side = round(math.sqrt(pairs.perturbation["exact"].shape[1]))
    scale = max(float(np.max(np.abs(pairs.perturbation[m][chosen]))) for m in shown) or 1.0
    fig, axes = plt.subplots(len(shown), len(images), figsize=(2.3 * len(images) + 0.8, 2.5 * len(shown)),
                             squeeze=False)
    for col, row in enumerate(chosen):
        for k, method in enumerate(shown):
            ax = axes[k, col]
            im = ax.imshow(pairs.perturbation[method][row].reshape(side, side), cmap="RdBu_r", vmin=-scale,
                           vmax=scale)
            delta = pairs.delta[method][row] * PX
            size = f"δ={delta:.1f} px" if math.isfinite(delta) else "not reached at δ=1"
            ax.set_title(f"#{pairs.image[row]}→{pairs.target[row]} {METHOD_LABELS[method]}\n{size}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label="perturbation (pixel intensity, [0,1] units)")
    fig.suptitle(f"{data.name}: perturbations towards the closest target", fontsize=11)
    return _save(fig, path)


def minimal_delta_bins(data: ModelData, path: Path) -> Path:
    """Left: images per bin of minimal δ in pixels, FGSM beside exact. Right: fraction robust vs δ, all methods."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    compared = [m for m in (STUDY_ATTACK, "exact") if m in data.methods]
    # An image a method did not reach at δ = 1 counts as 255 px, as in the means.
    values = {m: np.where(np.isfinite(v := data.minimal(m)), v, 1.0) * PX for m in data.methods}
    if not len(data.images):
        _empty(left)
        _empty(right)
        return _save(fig, path)
    top = max(1.0, max(float(np.max(v)) for v in values.values()))
    width = next(w for w in BIN_WIDTHS if top / w <= MAX_BINS)
    edges = np.arange(0, top + width, width)
    bar = width / (len(compared) + 1)
    lower = np.where(np.isfinite(v := data.minimal_lower()), v, 1.0) * PX if "exact" in data.methods else None
    uncertified = lower is not None and bool(np.any(values["exact"] - lower > 0.5))  # wider than half a pixel
    for k, method in enumerate(compared):
        counts, _ = np.histogram(values[method], bins=edges)
        label = METHOD_LABELS[method] + (" (upper ends)" if method == "exact" and uncertified else "")
        left.bar(edges[:-1] + bar * (k + 1), counts, width=bar, color=COLORS[method], label=label)
    left.set_xlabel("minimal δ over targets (pixels, δ·255)")
    left.set_ylabel("images")
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xticks(edges[:: math.ceil(len(edges) / 8)])
    left.legend(fontsize=8)
    left.set_title(f"{data.name}: images per minimal-δ bin ({width} px)")
    grid = np.linspace(0, top * 1.05, 400)
    for method in data.methods:
        robust = (values[method][None, :] > grid[:, None]).mean(axis=1)
        label = METHOD_LABELS[method] + (": not refuted" if method == "exact" and uncertified else "")
        right.plot(grid, robust, color=COLORS[method], label=label, linewidth=2.2 if method == "exact" else 1.4)
    if uncertified:
        proven = (lower[None, :] > grid[:, None]).mean(axis=1)
        right.plot(grid, proven, color=COLORS["exact"], linestyle="--", linewidth=1.6, label="exact: proven")
    right.set_xlabel("δ (pixels)")
    right.set_ylabel("fraction of images robust")
    right.set_ylim(0, 1.02)
    right.legend(fontsize=8)
    right.set_title(f"{data.name}: fraction robust vs δ (n={len(data.images)})")
    return _save(fig, path)


def mean_minimal_bars(models: Sequence[ModelData], path: Path) -> Path:
    """Mean minimal δ in pixels per net and method, with the study's values marked."""
    methods = [m for m in (*ATTACK_NAMES, "exact") if any(m in d.methods for d in models)]
    fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(models), 4))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        heights = [mean_minimal_px(d, method)[0] if method in d.methods else math.nan for d in models]
        xs = np.arange(len(models)) + (k - (len(methods) - 1) / 2) * width
        bars = ax.bar(xs, heights, width=width, color=COLORS[method], label=METHOD_LABELS[method])
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
        if method == "exact":  # the proven lower end of the mean, where the engine left intervals
            lows = [_mean_px(d.minimal_lower()) if method in d.methods else math.nan for d in models]
            gap = [x for x, h, lo in zip(xs, heights, lows, strict=True) if h - lo > 0.05]
            ax.vlines(gap, [lo for h, lo in zip(heights, lows, strict=True) if h - lo > 0.05],
                      [h for h, lo in zip(heights, lows, strict=True) if h - lo > 0.05], colors="black",
                      linewidth=2, label="exact: proven lower end" if gap else None)
    for j, data in enumerate(models):
        study = STUDY.get(data.name)
        if study:
            ax.hlines(study["mean_min_px"], j - 0.45, j + 0.45, colors="black", linestyles="--", linewidth=1.2,
                      label="study (≈6 / ≈20 px)" if j == 0 else None)
    ax.set_xticks(np.arange(len(models)), [f"{d.name}\n(n={len(d.images)})" for d in models])
    ax.set_ylabel("mean minimal δ (pixels)")
    ax.set_title("mean minimal δ over targets")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path)


def _mean_px(values: np.ndarray) -> float:
    """Mean in pixels, an unreached value (inf) counting as δ = 1, as in `mean_minimal_px`."""
    return float(np.mean(np.where(np.isfinite(values), values, 1.0)) * PX) if len(values) else math.nan


def attack_vs_exact(models: Sequence[ModelData], path: Path) -> Path:
    """Per net: attack δ against exact δ per (image, target), pixels; attacks that failed drawn at the top; a pair
    the engine left as an interval is drawn as a segment from its lower to its upper end."""
    fig, axes = _grid(len(models), 4.6, 4.2)
    for ax, data in zip(axes, models, strict=True):
        if not len(data.pairs):
            _empty(ax)
            continue
        exact = data.pairs.delta["exact"] * PX
        top = 0.0
        for attack in data.attacks:
            found = data.pairs.delta[attack] * PX
            top = max(top, float(np.max(found[np.isfinite(found)], initial=0.0)))
        top = max(top, float(np.max(exact[np.isfinite(exact)], initial=0.0)), 1.0) * 1.05
        open_ = data.pairs.status != RowStatus.EXACT.value
        for attack in data.attacks:
            ys = np.minimum(data.pairs.delta[attack] * PX, top)
            ax.scatter(exact[~open_], ys[~open_], s=6, alpha=0.5, color=COLORS[attack], label=METHOD_LABELS[attack])
            ax.hlines(ys[open_], data.pairs.lower[open_] * PX, np.minimum(exact[open_], top), color=COLORS[attack],
                      alpha=0.35, linewidth=0.8)
        ax.plot([0, top], [0, top], color="black", linewidth=1, label="attack = exact")
        ax.axhline(top, color="grey", linestyle=":", linewidth=1)
        ax.text(0.02 * top, 0.985 * top, "not reached at δ = 1", va="top", fontsize=7, color="grey")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top * 1.02)
        ax.set_xlabel("exact δ (pixels)")
        ax.set_ylabel("attack δ (pixels)")
        ax.set_title(f"{data.name} ({len(data.pairs)} pairs)")
        ax.legend(fontsize=8, markerscale=2)
    return _save(fig, path)


def relative_gap_cdf(models: Sequence[ModelData], path: Path) -> Path:
    """Per net: empirical CDF of (δ_attack − δ_exact)/δ_exact over pairs with a certified exact δ."""
    fig, axes = _grid(len(models), 4.6, 3.8)
    for ax, data in zip(axes, models, strict=True):
        drawn = False
        for attack in data.attacks:
            gaps = np.sort(data.relative_gap(attack))
            if not len(gaps):
                continue
            drawn = True
            cdf = np.arange(1, len(gaps) + 1) / len(gaps)
            finite = np.isfinite(gaps)
            ax.step([0.0, *gaps[finite]], [0.0, *cdf[finite]], where="post", color=COLORS[attack],
                    label=f"{METHOD_LABELS[attack]} (median {np.median(gaps):.2f})")
        if not drawn:
            _empty(ax, "no certified pair yet")
            continue
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlim(left=0)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("relative gap max(δ_attack − δ_exact, 0) / δ_exact")
        ax.set_ylabel("fraction of pairs")
        ax.set_title(data.name)
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def gap_vs_depth(models: Sequence[ModelData], path: Path) -> Path:
    """Median relative gap per attack against the number of ReLU layers, vanilla and adversarially trained nets
    side by side; a net the engine left intervals on shows its gap as a bar from the lower to the upper bound (an
    arrow where the upper bound lies beyond 10 or is unbounded)."""
    kinds = {"vanilla": "vanilla nets", "adversarial": "adversarially trained nets"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    top = 0.1
    for ax, (kind, title) in zip(axes, kinds.items(), strict=True):
        nets = [m for m in by_depth(models) if m.relu_layers is not None and len(m.pairs)
                and m.info.meta.get("kind") == kind]
        if not nets:
            _empty(ax, f"no {kind} net with complete images")
            continue
        attacks = [a for a in ATTACK_NAMES if any(a in m.attacks for m in nets)]
        for offset, attack in zip(np.linspace(-0.15, 0.15, len(attacks)), attacks, strict=True):
            xs, lows, highs = [], [], []
            for m in nets:
                if attack in m.attacks:
                    low, high = (float(np.median(b)) for b in m.relative_gap_bounds(attack))
                    xs.append(m.relu_layers + offset)
                    lows.append(low)
                    highs.append(high)
            xs_, lows_, highs_ = np.array(xs), np.array(lows), np.minimum(np.array(highs), 10.0)
            top = max(top, float(np.max(highs_[np.isfinite(highs_)], initial=0.0)))
            ax.vlines(xs_, lows_, highs_, color=COLORS[attack], linewidth=5, alpha=0.6)
            point = highs_ - lows_ < 1e-3
            ax.plot(xs_[point], lows_[point], "o", color=COLORS[attack])
            for ends in (lows_, highs_):  # caps keep a narrow interval visible on the log scale
                ax.plot(xs_[~point], ends[~point], "_", color=COLORS[attack], markersize=12, markeredgewidth=2)
            clipped = np.array(highs) > highs_  # upper ends beyond the axis (or unbounded): an arrow at its top
            ax.plot(xs_[clipped], highs_[clipped], "^", color=COLORS[attack], markersize=7)
            ax.plot([], [], "s", color=COLORS[attack], label=METHOD_LABELS[attack])
        depths = sorted({m.relu_layers for m in nets})
        ax.set_xticks(depths, [f"{d}\n" + "\n".join(m.name for m in nets if m.relu_layers == d) for d in depths],
                      fontsize=7)
        ax.set_xlim(min(depths) - 0.6, max(depths) + 0.6)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xlabel("ReLU layers (nets)")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(0, top * 1.6)
    axes[0].set_ylabel("median relative gap")
    handles, labels = next(((h, lab) for h, lab in (ax.get_legend_handles_labels() for ax in axes) if h), ([], []))
    if handles:
        axes[0].legend(handles, labels, fontsize=8, loc="upper left")
    return _save(fig, path)


def render_all(models: Sequence[ModelData], folder: Path) -> list[Figure]:
    """Render every figure into `folder`; return them in report order."""
    folder.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    study_numbers = {"vanilla": (1, 2, 5), "adversarial": (3, 4, 6)}
    for data in models:
        numbers = study_numbers.get(data.name)
        cos_no, heat_no, bins_no = (f" (study fig. {n})" if numbers else "" for n in numbers or (0, 0, 0))
        figures.append(Figure(
            cosine_histogram(data, folder / f"cosine_{data.name}.png"),
            f"{data.name}: cosine similarity of attack and exact perturbations{cos_no}",
            "Per (image, target) pair: cosine of the angle between the perturbation the attack found at its "
            "closest δ and the exact closest perturbation (witness − image).",
        ))
        figures.append(Figure(
            perturbation_heatmaps(data, folder / f"heatmaps_{data.name}.png"),
            f"{data.name}: FGSM and exact perturbations{heat_no}",
            "First complete images of the selection, each towards its closest target; red raises, blue lowers "
            "a pixel; one colour scale for the whole figure.",
        ))
        figures.append(Figure(
            minimal_delta_bins(data, folder / f"bins_{data.name}.png"),
            f"{data.name}: minimal δ per image{bins_no}",
            "Minimal δ over the targets of each image, in pixels (δ·255). Left: images per bin; right: fraction "
            "of images whose minimal δ exceeds δ (robust to that method at δ). Unreached images count as 255 px. "
            "Where the engine left images as intervals, 'exact' is their upper end (a replayed witness: not "
            "refuted) and the dashed line the proven lower end.",
        ))
    figures.append(Figure(
        mean_minimal_bars(models, folder / "mean_minimal_delta.png"),
        "Mean minimal δ per net (study fig. 7)",
        "Mean over complete images of the minimal δ over targets, in pixels; dashed: the study's values. The exact "
        "bar is the mean upper end; where the engine left images as intervals, a black line runs down to the mean "
        "proven lower end.",
    ))
    figures.append(Figure(
        attack_vs_exact(models, folder / "attack_vs_exact.png"),
        "Attack δ vs exact δ per (image, target)",
        "Each point is one image and target; points on the diagonal are attacks that found the closest "
        "adversarial example. Attacks that failed at δ = 1 are drawn at the top edge. A pair the engine left as a "
        "certified interval is a horizontal segment from its proven lower bound to its upper end.",
    ))
    figures.append(Figure(
        relative_gap_cdf(models, folder / "relative_gap_cdf.png"),
        "Relative gap of each attack",
        "Empirical CDF of max(δ_attack − δ_exact, 0)/δ_exact over pairs whose exact δ is certified (0: the attack "
        "landed within the certified interval); a curve that stays below 1 means the attack failed on the "
        "remaining pairs.",
    ))
    figures.append(Figure(
        gap_vs_depth(models, folder / "gap_vs_depth.png"),
        "Attack gap vs depth",
        "Median relative gap of each attack over all (image, target) pairs per net, against the net's number of "
        "ReLU layers. A dot: every pair certified; a bar: the engine left some pairs as an interval, and the "
        "median gap lies between the bar's ends (upper ends above 10, or unbounded, are cut at 10 and marked with "
        "an arrow). Nets whose file does not say how they were trained are left out.",
    ))
    return figures
