"""Verified robust accuracy: per image and L∞ radius δ, is the net robust according to each attack, and proven so?

An image is *robust at δ* when it is correctly classified (its label is the strict argmax, `advgap.adversarial`)
and no point of its δ-box ∩ [0, 1]^n is adversarial. Robust accuracy is a fraction of all images given, so a
misclassified image counts as not robust.

- Attacks (`ATTACKS`): FGSM, PGD and AutoAttack run at each radius, smallest first; FMN, a minimum-norm search,
  runs once. An attack *refutes* δ when it found an adversarial point within δ at some radius <= δ (a point found
  at δ = 0.1 lies in the 0.2-box, so the attack's robust accuracy cannot grow with δ); an image an attack refuted
  is not attacked again at larger radii. FMN refutes δ when the norm it found is <= δ.
- Every point an attack found is replayed through the ReLU net in float64 against the robustness property
  (`Property.replay`); an image no replayed point refutes at δ is *not refuted* there (the upper end).
- Exact (`exact=True`): the radii left open go to the engine, `verify.api.check_robust`, by bisection over them:
  ROBUST at δ proves every smaller radius, a COUNTEREXAMPLE (replayed by the engine) refutes every larger one,
  TIMEOUT/UNKNOWN settles nothing. `timeout` is the engine's budget per image over all its radii; what it leaves
  open is reported as such: proven <= true robust accuracy <= not refuted. The engine's own PGD attacks are
  skipped (`attack=False`): the four attacks above already failed on every box it is asked about.

Work is split into chunks of images, run in this process or in a pool of spawned processes; each chunk's random
starts are seeded by (seed, first image of the chunk), so results do not depend on the number of workers.
"""

from __future__ import annotations

import itertools
import multiprocessing
import signal
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from advgap.adversarial import is_adversarial
from advgap.attacks.autoattack import DEFAULT_SQUARE_QUERIES, DEFAULT_TARGETS, autoattack, description
from advgap.attacks.base import AttackResult
from advgap.attacks.gradient import fgsm, pgd
from advgap.attacks.minnorm import fmn
from advgap.errors import SpecError
from advgap.models.torchnet import to_torch
from advgap.verify.api import check_robust
from advgap.verify.network import ReluNet
from advgap.verify.result import Verdict
from advgap.verify.spec import robustness_spec

ATTACKS = ("fgsm", "pgd", "fmn", "autoattack")
LABELS = {"fgsm": "FGSM", "pgd": "PGD", "fmn": "FMN", "autoattack": "AutoAttack"}
DEFAULT_TIMEOUT = 60.0
DEFAULT_CHUNK = 250


class Status(IntEnum):
    """The combined verdict for one image and radius."""

    NOT_ROBUST = 0  # misclassified, or an adversarial point within δ replayed in float64 (attack or engine)
    OPEN = 1  # neither proven nor refuted
    PROVEN = 2  # the exact engine proved it robust, at δ or at a larger radius


@dataclass(frozen=True)
class Settings:
    """What one robust-accuracy run computes; `deltas` strictly increasing, in (0, 1]."""

    deltas: tuple[float, ...]
    exact: bool = False
    timeout: float = DEFAULT_TIMEOUT  # engine seconds per image, all its radii together
    seed: int = 0
    targets: int = DEFAULT_TARGETS  # AutoAttack's APGD-T target classes
    square_queries: int = DEFAULT_SQUARE_QUERIES  # AutoAttack's Square iterations

    def __post_init__(self) -> None:
        deltas = self.deltas
        if not deltas or any(not 0 < d <= 1 for d in deltas):  # NaN fails the comparison too
            raise SpecError(f"radii must lie in (0, 1] (pixel units: 1/255 is one grey level), got {list(deltas)}")
        if any(b <= a for a, b in itertools.pairwise(deltas)):
            raise SpecError(f"radii must be distinct and increasing, got {list(deltas)}")
        if not self.timeout > 0:
            raise SpecError(f"timeout must be positive, got {self.timeout}")
        if self.targets < 0 or self.square_queries < 0:
            raise SpecError(f"targets and square_queries must be >= 0, got {self.targets}, {self.square_queries}")


@dataclass(frozen=True)
class Chunk:
    """The verdicts of images [start, start + len(correct)), R = len(deltas)."""

    start: int
    correct: np.ndarray  # (m,) bool
    refuted: np.ndarray  # (attacks, m, R) bool
    status: np.ndarray  # (m, R) Status
    checks: int  # engine calls
    cpu_seconds: np.ndarray  # (attacks + 1,): CPU time of each attack, then of the engine


@dataclass(frozen=True)
class RobustAccuracy:
    """Per image and radius verdicts of n images; the accuracies are fractions of all n."""

    settings: Settings
    correct: np.ndarray  # (n,) bool
    refuted: dict[str, np.ndarray]  # attack -> (n, R) bool: found an adversarial point within δ
    status: np.ndarray  # (n, R) Status
    autoattack: str  # what AutoAttack ran
    seconds: float
    checks: int  # engine calls
    cpu_seconds: dict[str, float]  # CPU time per attack and "exact" (the engine), summed over workers

    @property
    def n(self) -> int:
        return len(self.correct)

    def robust(self, attack: str) -> np.ndarray:
        """(R,) images robust according to `attack`: correctly classified and not refuted by it."""
        return (self.correct[:, None] & ~self.refuted[attack]).sum(axis=0)

    def proven(self) -> np.ndarray:
        """(R,) images the engine proved robust (0 unless exact)."""
        return (self.status == Status.PROVEN).sum(axis=0)

    def not_refuted(self) -> np.ndarray:
        """(R,) images no attack (and, if exact, no engine counterexample) refuted: the upper end."""
        return (self.status != Status.NOT_ROBUST).sum(axis=0)

    def as_dict(self) -> dict[str, Any]:
        n, s = self.n, self.settings
        radii = []
        for r, delta in enumerate(s.deltas):
            counts = {a: int(self.robust(a)[r]) for a in ATTACKS}
            counts["not_refuted"] = int(self.not_refuted()[r])
            if s.exact:
                counts["proven"] = int(self.proven()[r])
                counts["unsettled"] = counts["not_refuted"] - counts["proven"]
            accuracy = {k: v / n for k, v in counts.items() if k != "unsettled"}
            radii.append({"delta": delta, "accuracy": accuracy, "images": counts})
        return {
            "n": n, "correct": int(self.correct.sum()),
            "denominator": "all n images; a misclassified image counts as not robust",
            "exact": s.exact, "timeout": s.timeout if s.exact else None, "seed": s.seed,
            "autoattack": self.autoattack, "seconds": round(self.seconds, 2),
            "engine_checks": self.checks, "cpu_seconds": {k: round(v, 2) for k, v in self.cpu_seconds.items()},
            "radii": radii,
        }


def _refutations(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, s: Settings,
                 seed: int) -> tuple[np.ndarray, list[dict[int, tuple[int, np.ndarray]]], np.ndarray]:
    """Run every attack on correctly classified inputs: (attacks, m, R) refuted; per attack, the first point found
    per image as {image: (radius index, point)}; CPU seconds per attack."""
    m, radii = x.shape[0], len(s.deltas)
    refuted = np.zeros((len(ATTACKS), m, radii), dtype=bool)
    points: list[dict[int, tuple[int, np.ndarray]]] = [{} for _ in ATTACKS]
    seconds = np.zeros(len(ATTACKS))
    generator = torch.Generator().manual_seed(seed)

    def record(a: int, r: int, idx: torch.Tensor, result: AttackResult) -> None:
        for pos in torch.nonzero(result.success).squeeze(1).tolist():
            points[a].setdefault(int(idx[pos]), (r, result.x_adv[pos].numpy()))
        refuted[a, idx[result.success].numpy(), r:] = True

    everyone = torch.arange(m)
    clock = time.process_time()
    best = fmn(model, x, labels)
    seconds[ATTACKS.index("fmn")] = time.process_time() - clock
    for r, delta in enumerate(s.deltas):
        within = best.success & (best.delta <= delta)
        record(ATTACKS.index("fmn"), r, everyone, AttackResult(best.x_adv, within, best.predicted, best.delta))
        for a, name in enumerate(ATTACKS):
            idx = torch.from_numpy(np.flatnonzero(~refuted[a, :, r]))
            if name == "fmn" or idx.numel() == 0:
                continue
            xs, ys = x[idx], labels[idx]
            clock = time.process_time()
            if name == "fgsm":
                result = fgsm(model, xs, ys, delta)
            elif name == "pgd":
                result = pgd(model, xs, ys, delta, generator=generator)
            else:
                result = autoattack(model, xs, ys, delta, targets=s.targets, square_queries=s.square_queries,
                                    seed=(seed + r) % 2**32)
            seconds[a] += time.process_time() - clock
            record(a, r, idx, result)
    return refuted, points, seconds


def _replayed(net: ReluNet, x: np.ndarray, label: int, s: Settings,
              found: list[tuple[int, np.ndarray]]) -> int | None:
    """The smallest radius index at which one of the attacks' points replays as adversarial in float64."""
    for r, point in sorted(found, key=lambda item: item[0]):
        if robustness_spec(x, label, s.deltas[r], net.n_outputs).replay(net.forward, point) is not None:
            return r
    return None


def _settle(net: ReluNet, x: np.ndarray, label: int, s: Settings, status: np.ndarray) -> int:
    """Decide the OPEN radii of one image with the engine (module docstring), in place; returns engine calls."""
    deadline = time.monotonic() + s.timeout
    open_ = [r for r in range(len(s.deltas)) if status[r] == Status.OPEN]
    checks = 0
    while open_ and (left := deadline - time.monotonic()) > 0:
        k = open_[len(open_) // 2]
        verdict = check_robust(net, x, label, s.deltas[k], timeout=left, attack=False).verdict
        checks += 1
        if verdict is Verdict.ROBUST:
            status[: k + 1][status[: k + 1] == Status.OPEN] = Status.PROVEN
            open_ = [r for r in open_ if r > k]
        elif verdict is Verdict.COUNTEREXAMPLE:
            status[k:][status[k:] == Status.OPEN] = Status.NOT_ROBUST
            open_ = [r for r in open_ if r < k]
        else:
            open_.remove(k)
    return checks


def _run_chunk(net: ReluNet, model: torch.nn.Module, start: int, x: np.ndarray, labels: np.ndarray,
               s: Settings) -> Chunk:
    m, radii = len(x), len(s.deltas)
    correct = ~is_adversarial(net.forward(x), labels)
    refuted = np.zeros((len(ATTACKS), m, radii), dtype=bool)
    status = np.where(correct[:, None], Status.OPEN, Status.NOT_ROBUST).astype(np.int8).repeat(radii, axis=1)
    rows = np.flatnonzero(correct)
    checks, seconds = 0, np.zeros(len(ATTACKS) + 1)
    if rows.size:
        seed = int(np.random.SeedSequence([s.seed, start]).generate_state(1)[0])
        xs, ys = torch.from_numpy(x[rows]), torch.from_numpy(labels[rows])
        sub, points, seconds[:-1] = _refutations(model, xs, ys, s, seed)
        refuted[:, rows] = sub
        for k, row in enumerate(rows):
            found = [p[k] for p in points if k in p]
            if (r := _replayed(net, x[row], int(labels[row]), s, found)) is not None:
                status[row, r:] = Status.NOT_ROBUST
        if s.exact:
            clock = time.process_time()
            for row in rows:
                checks += _settle(net, x[row], int(labels[row]), s, status[row])
            seconds[-1] = time.process_time() - clock
    return Chunk(start, correct, refuted, status, checks, seconds)


# What the process that runs chunks holds: the parent with one worker, else each pool process.
_STATE: dict[str, Any] = {}


def _init_worker(net: ReluNet, settings: Settings) -> None:
    torch.set_num_threads(1)  # small batches: one thread per process, never oversubscribing the cores
    _STATE.update(net=net, model=to_torch(net, torch.float64), settings=settings)


def _init_pool_worker(net: ReluNet, settings: Settings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which ends the pool
    _init_worker(net, settings)


def _task(task: tuple[int, np.ndarray, np.ndarray]) -> Chunk:
    return _run_chunk(_STATE["net"], _STATE["model"], *task, _STATE["settings"])


def robust_accuracy(net: ReluNet, x: np.ndarray, labels: np.ndarray, settings: Settings, *, workers: int = 1,
                    chunk: int = DEFAULT_CHUNK, progress: bool = False) -> RobustAccuracy:
    """Robust accuracy of `net` on inputs x (N, n) in [0, 1] with labels (N,) at each radius of `settings`.

    workers: processes (1: this process); chunk: images per task; progress: a bar on stderr if it is a terminal.
    """
    started = time.perf_counter()
    x = np.asarray(x, dtype=np.float64).reshape(len(labels), -1)
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        raise SpecError("no images to evaluate")
    if x.shape[1] != net.n_inputs:
        raise SpecError(f"inputs have {x.shape[1]} values, the network expects {net.n_inputs}")
    if not np.isfinite(x).all() or x.min(initial=0) < 0 or x.max(initial=0) > 1:
        raise SpecError("inputs must be finite and lie in [0, 1]")
    if not (isinstance(workers, int) and workers >= 1) or chunk < 1:
        raise SpecError(f"workers and chunk must be positive integers, got {workers!r}, {chunk!r}")
    tasks = [(k, x[k:k + chunk], labels[k:k + chunk]) for k in range(0, len(labels), chunk)]
    chunks: list[Chunk] = []
    with tqdm(total=len(labels), unit="img", disable=None if progress else True, dynamic_ncols=True) as bar:
        if workers == 1 or len(tasks) <= 1:
            threads = torch.get_num_threads()
            _init_worker(net, settings)
            try:
                for task in tasks:
                    chunks.append(_task(task))
                    bar.update(len(task[2]))
            finally:
                torch.set_num_threads(threads)
                _STATE.clear()
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(min(workers, len(tasks)), _init_pool_worker, (net, settings)) as pool:
                for done in pool.imap_unordered(_task, tasks, chunksize=1):
                    chunks.append(done)
                    bar.update(len(done.correct))
                pool.close()  # let the workers exit on their own: a terminated worker leaks its semaphores
                pool.join()
    chunks.sort(key=lambda c: c.start)
    refuted = np.concatenate([c.refuted for c in chunks], axis=1)
    return RobustAccuracy(
        settings=settings,
        correct=np.concatenate([c.correct for c in chunks]),
        refuted={name: refuted[a] for a, name in enumerate(ATTACKS)},
        status=np.concatenate([c.status for c in chunks]),
        autoattack=description(settings.targets, settings.square_queries),
        seconds=time.perf_counter() - started,
        checks=sum(c.checks for c in chunks),
        cpu_seconds=dict(zip((*ATTACKS, "exact"), map(float, sum(c.cpu_seconds for c in chunks)), strict=True)),
    )
