"""A hand-built results store whose statistics are known in closed form (see `small_store`)."""

import math

import numpy as np
import pytest

from advgap.experiment.store import ImageRow, ModelRow, ResultRow, ResultStore, RowStatus

IDENTITY = {"attacks": ["fgsm", "fmn", "pgd"], "targets": list(range(10)), "tol": 0.001, "engine": "native"}
FMN_BELOW = 2e-4
U = np.ones(784)  # direction of every exact perturbation
V = np.tile([1.0, -1.0], 392)  # orthogonal to U


def exact_delta(image: int, target: int) -> float:
    return 0.01 * (target + 1) if image == 0 else 0.03 + 0.01 * target


def rows_for(model: str, image: int, label: int, methods=("fgsm", "pgd", "fmn", "exact")) -> list[ResultRow]:
    """Image 0: FGSM at 2× exact, same direction. Image 1: FGSM at 3× exact, orthogonal, fails on targets 7-9.

    PGD is always 1.1× exact; FMN lands inside the certified interval, FMN_BELOW under its upper end.
    Image 0 target 9 is a TIMEOUT with proven interval [0.05, 0.1].
    """
    out = []
    for t in (t for t in range(10) if t != label):
        d = exact_delta(image, t)
        for m in methods:
            common = {"model": model, "image": image, "target": t, "method": m, "seconds": 0.25, "engine": "test",
                      "version": "0"}
            if m == "exact":
                timeout = image == 0 and t == 9
                out.append(ResultRow(**common, delta=d, status=RowStatus.TIMEOUT if timeout else RowStatus.EXACT,
                                     lower=0.05 if timeout else d - 5e-4, upper=d, perturbation=d * U))
            elif m == "fgsm" and image == 1 and t >= 7:
                out.append(ResultRow(**common, delta=None, status=RowStatus.NOT_FOUND))
            else:
                factor, direction = {"fgsm": (2.0 if image == 0 else 3.0, U if image == 0 else V),
                                     "pgd": (1.1, U), "fmn": (1.0, U)}[m]
                found = factor * d - (FMN_BELOW if m == "fmn" else 0.0)
                out.append(ResultRow(**common, delta=found, status=RowStatus.FOUND, perturbation=found * direction))
    return out


def fill(folder, model: str = "vanilla") -> None:
    with ResultStore.open(folder, IDENTITY) as store:
        store.put_model(ModelRow(model, "abc", {}, 0.95, 0.2, 0.2, 10_000))
        store.put_images([ImageRow(model, 0, 7, 7), ImageRow(model, 1, 2, 2), ImageRow(model, 2, 1, 4),
                          ImageRow(model, 3, 5, 5)])
        store.add(rows_for(model, 0, 7) + rows_for(model, 1, 2) + rows_for(model, 3, 5, methods=("fgsm",)))


# Expected numbers (pixels = δ·255). Minimal δ: image 0 at target 0 (0.01), image 1 at target 0 (0.03).
EXPECTED_MEAN_PX = {"exact": (0.01 + 0.03) / 2 * 255, "fmn": ((0.01 + 0.03) / 2 - FMN_BELOW) * 255,
                    "pgd": 1.1 * (0.01 + 0.03) / 2 * 255, "fgsm": (0.02 + 0.09) / 2 * 255}
# Certified pairs: image 0 targets 0-6, 8 (gap 1 for FGSM), image 1 all 9 targets (gap 2 on 0,1,3-6, inf on 7-9).
# FMN, inside the certified interval, has gap 0.
EXPECTED_MEDIAN_GAP = {"fgsm": 2.0, "pgd": 0.1, "fmn": 0.0}
assert math.isclose(sorted([1.0] * 8 + [2.0] * 6 + [math.inf] * 3)[8], EXPECTED_MEDIAN_GAP["fgsm"])


@pytest.fixture
def expected():
    """The closed-form numbers of `small_store`."""
    return {"mean_px": EXPECTED_MEAN_PX, "median_gap": EXPECTED_MEDIAN_GAP}


@pytest.fixture
def small_store(tmp_path):
    """A store with one model 'vanilla': images 0, 1 complete, 2 misclassified, 3 incomplete."""
    fill(tmp_path)
    return tmp_path
