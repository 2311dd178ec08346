"""RunConfig: everything `advgap run` needs to know, validated once, frozen.

Two parts with different rules. The *identity* (models and their weights, engine, tolerance, timeout, attacks and
their parameters, seed, data) fixes what a stored row means: a results folder accepts only runs of the same
identity. The *selection* (which test images), the number of workers and the folder itself may change between
runs of the same folder: a larger selection resumes and extends the stored results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advgap.adversarial import DEFINITION
from advgap.attacks.registry import ATTACK_NAMES, DEFAULT_FMN_STEPS, DEFAULT_PGD_STEPS
from advgap.errors import ConfigError
from advgap.verify.engines import ENGINE_NAMES

METHODS = (*ATTACK_NAMES, "exact")
N_TEST = 10_000
N_INPUTS = 784  # MNIST 28×28
N_CLASSES = 10
ROBUST_RADII = (0.1, 0.2)  # where the run measures robust accuracy: the study's δ = 0.2 and half of it
MAX_SEED = 2**64  # numpy's and torch's seeds are unsigned 64-bit integers


@dataclass(frozen=True)
class AttackParams:
    """Fixed parameters of the first-order attacks (part of a run's identity)."""

    pgd_steps: int = DEFAULT_PGD_STEPS  # sign-gradient steps per PGD attempt (step 2.5·δ/steps, random start)
    fmn_steps: int = DEFAULT_FMN_STEPS  # FMN iterations

    def as_dict(self) -> dict[str, Any]:
        return {"pgd_steps": self.pgd_steps, "fmn_steps": self.fmn_steps}


def default_workers() -> int:
    """One worker per CPU core this process may use."""
    if hasattr(os, "sched_getaffinity"):  # Linux: honours CPU pinning (containers, taskset)
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class RunConfig:
    """Settings of one `advgap run`; `images` is the half-open range [start, stop) of MNIST test indices."""

    models: tuple[str, ...] = ("vanilla", "adversarial")
    images: tuple[int, int] = (0, 100)
    targets: tuple[int, ...] = tuple(range(N_CLASSES))  # target classes; each image skips its own label
    engine: str = "native"
    attacks: tuple[str, ...] = ATTACK_NAMES
    workers: int = field(default_factory=default_workers)
    out: Path = Path("runs/default")
    timeout: float = 60.0
    tol: float = 1e-3
    seed: int = 0
    data_dir: Path | None = None
    attack_params: AttackParams = AttackParams()
    chunk: int = 10  # images per batched attack task (a crash loses at most one chunk of attack work)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("no model given (use --models vanilla,adversarial or a network file)")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"a model is listed twice: {','.join(self.models)}")
        start, stop = self.images
        if not 0 <= start < stop <= N_TEST:
            raise ConfigError(f"image range {start}:{stop} must satisfy 0 <= start < stop <= {N_TEST}")
        if not self.targets or any(not 0 <= t < N_CLASSES for t in self.targets):
            raise ConfigError(f"targets must be classes 0 to {N_CLASSES - 1}, got {list(self.targets)}")
        if len(set(self.targets)) != len(self.targets):
            raise ConfigError(f"a target is listed twice: {list(self.targets)}")
        if self.engine not in ENGINE_NAMES:
            raise ConfigError(f"unknown engine {self.engine!r} (use one of {', '.join(ENGINE_NAMES)})")
        unknown = [a for a in self.attacks if a not in ATTACK_NAMES]
        if unknown:
            raise ConfigError(f"unknown attack {unknown[0]!r} (use any of {', '.join(ATTACK_NAMES)})")
        if len(set(self.attacks)) != len(self.attacks):
            raise ConfigError(f"an attack is listed twice: {','.join(self.attacks)}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if not self.timeout > 0:
            raise ConfigError(f"--timeout must be positive, got {self.timeout}")
        if not 0 < self.tol < 1:
            raise ConfigError(f"tolerance must lie in (0, 1), got {self.tol}")
        if not 0 <= self.seed < MAX_SEED:
            raise ConfigError(f"--seed must be an integer in [0, 2**64), got {self.seed}")
        if self.chunk < 1:
            raise ConfigError(f"chunk must be at least 1, got {self.chunk}")

    @property
    def methods(self) -> tuple[str, ...]:
        """Stored methods in a fixed order: the chosen attacks, then the exact distance."""
        return (*(a for a in ATTACK_NAMES if a in self.attacks), "exact")

    def identity(self, model_hashes: dict[str, str], data_hash: str) -> dict[str, Any]:
        """What a stored row depends on; `model_hashes` maps each model's store name to the hash of its weights."""
        return {
            "adversarial": DEFINITION,
            "models": dict(model_hashes),
            "targets": sorted(self.targets),
            "engine": self.engine,
            "attacks": sorted(self.attacks),
            "attack_params": self.attack_params.as_dict(),
            "timeout": self.timeout,
            "tol": self.tol,
            "seed": self.seed,
            "chunk": self.chunk,
            "data": data_hash,
        }
