"""Numbers of the report, computed from the results store only: per-pair tables, minimal δ per image, gaps.

Units: δ is in [0, 1] pixel-intensity units throughout; `PX` (255) converts to the study's pixel units. An attack
that does not reach a target even at δ = 1 has δ = inf for that pair. An image's minimal δ is the minimum over its
targets; only *complete* images (every target has a row for every method) enter the statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advgap.attacks.registry import ATTACK_NAMES, REGISTRY
from advgap.experiment.config import N_CLASSES, ROBUST_RADII
from advgap.experiment.store import ModelRow, ResultStore, RowStatus

PX = 255.0
METHOD_LABELS = {**{name: attack.label for name, attack in REGISTRY.items()}, "exact": "exact",
                 "autoattack": "AutoAttack"}
ROBUST_METHODS = (*ATTACK_NAMES, "autoattack")  # the attacks a robust accuracy can come from
STUDY_ATTACK = "fgsm"  # the study's figures compare FGSM with the exact perturbation
# The study's reported numbers, shown beside ours: accuracies (fractions) and mean minimal δ (pixels).
STUDY = {
    "vanilla": {"clean_accuracy": 0.97, "fgsm_accuracy": 0.14, "mean_min_px": 6.0},
    "adversarial": {"clean_accuracy": 0.965, "fgsm_accuracy": 0.89, "mean_min_px": 20.0},
}


@dataclass(frozen=True)
class Pairs:
    """Every stored (image, target) pair of one model's complete images, one entry per pair, sorted by key.

    `delta[m]`: δ of method m (inf: not reached at δ = 1). `lower`/`status`: the exact row's proven lower bound
    and status. `perturbation[m]`: (n_pairs, n_inputs) float32, zeros where the method stored none.
    """

    image: np.ndarray
    target: np.ndarray
    delta: dict[str, np.ndarray]
    lower: np.ndarray
    status: np.ndarray
    perturbation: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.image)


@dataclass(frozen=True)
class ModelData:
    """What the store holds about one model for the selected images."""

    info: ModelRow
    methods: tuple[str, ...]
    n_selected: int
    n_correct: int
    pairs: Pairs
    seconds: dict[str, float] = field(default_factory=dict)  # summed compute time per method
    autoattack: dict[tuple[int, float], bool] = field(default_factory=dict)  # (image, δ) -> AutoAttack refuted it

    @property
    def name(self) -> str:
        return self.info.model

    @property
    def attacks(self) -> tuple[str, ...]:
        return tuple(m for m in self.methods if m != "exact")

    @property
    def images(self) -> np.ndarray:
        """Complete images, ascending."""
        return np.unique(self.pairs.image)

    def minimal(self, method: str) -> np.ndarray:
        """Minimal δ over targets per complete image (order of `images`)."""
        images = self.images
        index = np.searchsorted(images, self.pairs.image)
        out = np.full(len(images), np.inf)
        np.minimum.at(out, index, self.pairs.delta[method])
        return out

    def minimal_lower(self) -> np.ndarray:
        """Proven lower bound of each complete image's minimal δ (min over targets of the exact lower bounds)."""
        index = np.searchsorted(self.images, self.pairs.image)
        out = np.full(len(self.images), np.inf)
        np.minimum.at(out, index, self.pairs.lower)
        return out

    def relative_gap(self, attack: str) -> np.ndarray:
        """max(δ_attack − δ_exact, 0) / δ_exact per pair whose exact δ is certified (inf where the attack failed).

        δ_exact is the certified upper end; an attack landing inside the certified interval (within the engine's
        tolerance) has found the closest adversarial example as far as anyone can tell, so its gap is 0.
        """
        certified = self.pairs.status == RowStatus.EXACT.value
        exact = self.pairs.delta["exact"][certified]
        return np.maximum(self.pairs.delta[attack][certified] - exact, 0.0) / exact

    @property
    def relu_layers(self) -> int | None:
        """The number of hidden ReLU layers of the net as verified; for stores written before the runner kept it,
        read off an MLP's `architecture` (784-50-10: 1), else None."""
        layers = self.info.meta.get("relu_layers")
        if isinstance(layers, list):
            return len(layers)
        sizes = str(self.info.meta.get("architecture", "")).split("-")
        return len(sizes) - 2 if len(sizes) > 2 and all(size.isdigit() for size in sizes) else None

    def relative_gap_bounds(self, attack: str) -> tuple[np.ndarray, np.ndarray]:
        """Per pair, bounds on the relative gap: for a certified pair its `relative_gap` (both ends), for a pair the
        engine left as an interval [lower, upper] the range of the gap over every δ_exact in it.

        The gap max(δ_attack − δ, 0)/δ falls as δ grows, so it lies between its values at the upper and at the
        lower end (inf where lower = 0 and the attack's δ is positive)."""
        attack_delta, upper, lower = self.pairs.delta[attack], self.pairs.delta["exact"], self.pairs.lower
        certified = self.pairs.status == RowStatus.EXACT.value
        with np.errstate(divide="ignore", invalid="ignore"):
            low = np.nan_to_num(np.maximum(attack_delta - upper, 0.0) / upper, nan=0.0)
            high = np.where(attack_delta > lower, (attack_delta - lower) / lower, 0.0)
        return low, np.where(certified, low, high)

    def cosine(self, attack: str = STUDY_ATTACK) -> np.ndarray:
        """Cosine similarity of the attack's and the exact perturbation, per pair where both are non-zero."""
        a = self.pairs.perturbation[attack].astype(np.float64)
        b = self.pairs.perturbation["exact"].astype(np.float64)
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        keep = (na > 0) & (nb > 0)
        return np.einsum("ij,ij->i", a[keep], b[keep]) / (na[keep] * nb[keep])


def load(store: ResultStore, selection: range | None = None) -> list[ModelData]:
    """Per model in the store: the complete images of `selection` (all stored images if None) and their pairs."""
    identity = store.identity() or {}
    methods = tuple(m for m in (*ATTACK_NAMES, "exact") if m in (*identity.get("attacks", ()), "exact"))
    targets = identity.get("targets", range(N_CLASSES))
    out = []
    for info in store.models():
        images = [r for r in store.images(info.model) if selection is None or r.image in selection]
        correct = {r.image: r.label for r in images if r.correct}
        rows = [r for r in store.results(info.model, images=correct) if r.method in methods]
        seconds = {m: float(sum(r.seconds for r in rows if r.method == m)) for m in methods}
        by_key = {(r.image, r.target, r.method): r for r in rows}
        complete = [
            i for i in sorted(correct)
            if all((i, t, m) in by_key for t in targets if t != correct[i] for m in methods)
        ]
        keys = [(i, t) for i in complete for t in targets if t != correct[i]]
        autoattack = {(r.image, r.delta): r.refuted for r in store.robust(info.model) if r.method == "autoattack"}
        out.append(ModelData(info, methods, len(images), len(correct), _pairs(keys, by_key, methods), seconds,
                             autoattack))
    return out


def _pairs(keys: Sequence[tuple[int, int]], by_key: dict, methods: tuple[str, ...]) -> Pairs:
    n_inputs = next((r.perturbation.size for r in by_key.values() if r.perturbation is not None), 0)

    def delta(row: Any) -> float:
        return math.inf if row.delta is None else float(row.delta)

    def perturbation(row: Any) -> np.ndarray:
        return np.zeros(n_inputs, np.float32) if row.perturbation is None else row.perturbation

    def stack(arrays: list[np.ndarray]) -> np.ndarray:
        return np.stack(arrays) if arrays else np.zeros((0, n_inputs), np.float32)

    return Pairs(
        image=np.array([i for i, _ in keys], dtype=np.int64),
        target=np.array([t for _, t in keys], dtype=np.int64),
        delta={m: np.array([delta(by_key[(i, t, m)]) for i, t in keys], dtype=np.float64) for m in methods},
        lower=np.array([by_key[(i, t, "exact")].lower or 0.0 for i, t in keys], dtype=np.float64),
        status=np.array([by_key[(i, t, "exact")].status.value for i, t in keys], dtype=object),
        perturbation={m: stack([perturbation(by_key[(i, t, m)]) for i, t in keys]) for m in methods},
    )


def mean_minimal_px(data: ModelData, method: str) -> tuple[float, int]:
    """Mean minimal δ in pixels over complete images, counting an unreached image as δ = 1; and how many were."""
    values = data.minimal(method)
    if not len(values):
        return math.nan, 0
    unreached = int(np.sum(~np.isfinite(values)))
    return float(np.mean(np.where(np.isfinite(values), values, 1.0)) * PX), unreached


def robust_accuracy(data: ModelData, delta: float) -> dict[str, Any]:
    """Verified robust accuracy at radius δ from the stored distances: image counts out of the selected ones.

    A misclassified image is not robust. An attack counts a complete image robust when its closest adversary (over
    all targets) lies beyond δ; AutoAttack, a fixed-radius attack, when it found no adversarial point at δ (counted
    only once every complete image has its outcome stored). The exact engine proves an image robust when the proven
    lower bound of its minimal δ exceeds δ; an image is refuted when some method's adversarial point lies within δ.
    Images neither proven nor refuted (wide intervals, incomplete images) lie between `proven` and `not_refuted`.
    """
    refuted = np.min([data.minimal(m) for m in data.methods], axis=0) <= delta
    robust = {a: int(np.sum(data.minimal(a) > delta)) for a in data.attacks}
    autoattack = [data.autoattack.get((int(i), delta)) for i in data.images]
    if autoattack and None not in autoattack:  # every complete image checked at δ
        robust["autoattack"] = autoattack.count(False)
    return {
        "delta": delta,
        "images": data.n_selected,
        "robust": robust,
        "proven": int(np.sum(data.minimal_lower() > delta)),
        "not_refuted": data.n_correct - int(refuted.sum()),
    }


def depth_row(data: ModelData, tol: float) -> dict[str, Any]:
    """The depth section's numbers for one net, gaps and exact distances as certified intervals [low, high].

    The median gap over all pairs is bounded by the medians of the per-pair bounds (the median is monotone), so an
    interval the engine left open widens the net's interval instead of dropping the pair."""
    certified = data.pairs.status == RowStatus.EXACT.value
    images = max(len(data.images), 1)
    gaps, cosines = {}, {}
    for attack in data.attacks:
        low, high = data.relative_gap_bounds(attack)
        gaps[attack] = [_json_float(float(np.median(low))), _json_float(float(np.median(high)))] if len(low) else None
        cos = data.cosine(attack)
        cosines[attack] = _json_float(float(np.median(cos))) if len(cos) else None
    exact_low = data.minimal_lower()
    exact_high = data.minimal("exact")
    mean_exact = ([_json_float(float(np.mean(exact_low)) * PX), _json_float(mean_minimal_px(data, "exact")[0])]
                  if len(exact_low) else None)
    return {
        "relu_layers": data.relu_layers,
        "architecture": data.info.meta.get("architecture"),
        "kind": data.info.meta.get("kind"),
        "images": len(data.images),
        "pairs": len(data.pairs),
        "pairs_exact": int(certified.sum()),
        "images_exact": int(np.sum(exact_high - exact_low <= tol + 1e-9)),
        "median_relative_gap_bounds": gaps,
        "median_cosine": cosines,
        "mean_minimal_px": {a: _json_float(mean_minimal_px(data, a)[0]) for a in data.attacks},
        "mean_minimal_px_exact_bounds": mean_exact,
        "engine_seconds_per_image": data.seconds.get("exact", 0.0) / images,
        "robust_accuracy": [robust_accuracy(data, delta) for delta in ROBUST_RADII],
    }


def by_depth(models: Sequence[ModelData]) -> list[ModelData]:
    """The models ordered by their number of ReLU layers (unknown last), keeping the given order within a depth."""
    return sorted(models, key=lambda m: math.inf if m.relu_layers is None else m.relu_layers)


def summarize(models: Sequence[ModelData], identity: dict[str, Any], sessions: list[dict[str, Any]]) -> dict:
    """The report's numbers as a JSON-ready dict (the content of summary.json)."""
    tol = float(identity.get("tol", 1e-3))
    out: dict[str, Any] = {"models": {}, "identity": identity, "sessions": sessions}
    for data in models:
        minimal_exact, minimal_lower = data.minimal("exact"), data.minimal_lower()
        entry: dict[str, Any] = {
            "sha256": data.info.sha256,
            "meta": data.info.meta,
            "images_selected": data.n_selected,
            "images_correct": data.n_correct,
            "images_complete": len(data.images),
            "pairs": len(data.pairs),
            "pairs_not_certified": int(np.sum(data.pairs.status != RowStatus.EXACT.value)),
            "images_minimal_not_certified": int(np.sum(minimal_exact - minimal_lower > tol + 1e-9)),
            "clean_accuracy": data.info.clean_accuracy,
            "fgsm_accuracy": data.info.fgsm_accuracy,
            "fgsm_accuracy_delta": data.info.fgsm_delta,
            "accuracy_test_images": data.info.n_test,
            "study": STUDY.get(data.name),
            "mean_minimal_px": {},
            "unreached_images": {},
            "median_relative_gap": {},
            "pairs_below_exact_lower": {},
            "seconds": data.seconds,
            "robust_accuracy": [robust_accuracy(data, delta) for delta in ROBUST_RADII],
        }
        for method in data.methods:
            mean, unreached = mean_minimal_px(data, method)
            entry["mean_minimal_px"][method] = _json_float(mean)
            entry["unreached_images"][method] = unreached
        for attack in data.attacks:
            gaps = data.relative_gap(attack)
            entry["median_relative_gap"][attack] = _json_float(float(np.median(gaps))) if len(gaps) else None
            # Soundness check: no attack may beat a proven lower bound (beyond float noise).
            entry["pairs_below_exact_lower"][attack] = int(np.sum(data.pairs.delta[attack] < data.pairs.lower - 1e-6))
        out["models"][data.name] = entry
    out["depth"] = [{"name": data.name, **depth_row(data, tol)} for data in by_depth(models)]
    return out


def _json_float(value: float) -> float | str | None:
    """JSON has no inf or NaN: NaN (no data) becomes null, inf becomes the string 'inf'."""
    if math.isnan(value):
        return None
    return "inf" if math.isinf(value) else value
