"""`run_experiment`: attacks and exact distances for every selected test image and target, stored as they come.

Per model: the correctly classified images of the selection, each target class other than the label, the closest
δ each chosen attack finds (batched over images × targets, one task per chunk of images) and the exact minimal δ
(one task per image and target). Tasks run on an executor (`advgap.experiment.executors`: this process, a pool of
spawned processes, or a Ray cluster); only this process writes to the store, one transaction per finished task,
so a killed run resumes where it stopped. A task that fails is logged with its images and the run goes on.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from advgap.data.mnist import load_mnist
from advgap.errors import ConfigError, ModelFormatError
from advgap.experiment import methods
from advgap.experiment.config import N_CLASSES, N_INPUTS, ROBUST_RADII, RunConfig
from advgap.experiment.executors import Executor, LocalExecutor
from advgap.experiment.store import ImageRow, ResultRow, ResultStore, RobustRow, RowStatus
from advgap.models.bundled import BUNDLED
from advgap.models.loader import load_network
from advgap.verify.engines import get_engine
from advgap.verify.network import ReluNet, dense_rows

log = logging.getLogger(__name__)
HASH_ROWS = 1024  # rows of a weight hashed at a time (a sparse weight is hashed as its dense rows)


@dataclass(frozen=True)
class Model:
    """A network under study: its name in the store, weights, metadata and weight hash."""

    name: str
    net: ReluNet
    meta: dict[str, Any]
    sha256: str


@dataclass(frozen=True)
class AttackTask:
    """Attack the (image, target, method) triples of one chunk of images that are not stored yet."""

    model: str
    triples: tuple[tuple[int, int, str], ...]
    seed: int


@dataclass(frozen=True)
class ExactTask:
    """The exact minimal δ for one image and target."""

    model: str
    image: int
    target: int


Task = AttackTask | ExactTask


@dataclass(frozen=True)
class Plan:
    """What one model needs for the selection: its correctly classified images, the rows, the missing work."""

    model: str
    correct: tuple[int, ...]
    expected: frozenset[tuple[int, int, str]]  # (image, target, method) rows the selection needs
    tasks: tuple[Task, ...]


@dataclass(frozen=True)
class ModelSummary:
    name: str
    images: int  # selected
    correct: int  # correctly classified, hence attacked
    rows: int  # rows of the selection now stored
    expected: int  # rows the selection needs
    added: int  # rows computed by this run
    not_certified: int  # exact rows of the selection whose interval is wider than the tolerance


@dataclass(frozen=True)
class RunSummary:
    out: Path
    seconds: float
    models: tuple[ModelSummary, ...]
    executor: str = ""  # who ran the tasks, e.g. "ray: 4 workers on 2 nodes"
    failed: int = 0  # tasks that raised (their rows are missing)

    @property
    def complete(self) -> bool:
        return all(m.rows == m.expected for m in self.models)


def weights_hash(net: ReluNet) -> str:
    """sha256 over the shapes and float64 bytes of all weights and biases (independent of the file format)."""
    digest = hashlib.sha256()
    for array in (*net.weights, *net.biases):
        digest.update(str(array.shape).encode())
        chunks = (dense_rows(array, slice(s, s + HASH_ROWS)) for s in range(0, array.shape[0], HASH_ROWS))
        for chunk in chunks if array.ndim == 2 else (array,):
            digest.update(np.ascontiguousarray(chunk, dtype=np.float64).tobytes())
    return digest.hexdigest()


def data_hash(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


def load_models(specs: tuple[str, ...]) -> list[Model]:
    """Load each model by bundled name or network file path (stored under the file's stem); check it fits MNIST."""
    models = []
    for spec in specs:
        network = load_network(spec)
        net, meta = network.net, network.meta
        if (net.n_inputs, net.n_outputs) != (N_INPUTS, N_CLASSES):
            raise ModelFormatError(f"{spec}: net maps {net.n_inputs} inputs to {net.n_outputs} classes, "
                                   f"MNIST needs {N_INPUTS} to {N_CLASSES}")
        name = spec if spec in BUNDLED else Path(spec).stem
        models.append(Model(name, net, meta, weights_hash(net)))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"two models share a name in the store: {', '.join(names)} (rename a network file)")
    return models


def plan(config: RunConfig, model: str, correct: list[int], labels: np.ndarray,
         done: Collection[tuple[int, int, str]]) -> Plan:
    """The rows `model` needs and tasks for those not stored; attack chunks are aligned on image // chunk."""
    expected = frozenset(
        (image, target, method)
        for image in correct for target in config.targets if target != labels[image] for method in config.methods
    )
    missing = sorted(expected.difference(done))
    chunks: dict[int, list[tuple[int, int, str]]] = {}
    for triple in missing:
        if triple[2] != "exact":
            chunks.setdefault(triple[0] // config.chunk, []).append(triple)
    model_code = zlib.crc32(model.encode())
    tasks: list[Task] = [
        AttackTask(model, tuple(triples), _chunk_seed(config.seed, model_code, k))
        for k, triples in sorted(chunks.items())
    ]
    tasks += [ExactTask(model, image, target) for image, target, method in missing if method == "exact"]
    return Plan(model, tuple(correct), expected, tuple(tasks))


def _chunk_seed(seed: int, model_code: int, chunk: int) -> int:
    """The random-start seed of one attack chunk: fixed by (seed, model, chunk), whatever ran before."""
    return int(np.random.SeedSequence([seed, model_code, chunk]).generate_state(1)[0])


# What a process that runs tasks holds: this one with one local worker, else each worker process.
_STATE: dict[str, Any] = {}


def _init_worker(nets: dict[str, ReluNet], pixels: np.ndarray, labels: np.ndarray, config: RunConfig) -> None:
    torch.set_num_threads(1)  # small batches: one thread per process is fastest, and never oversubscribes cores
    torch_nets = {name: methods.torch_net(net) for name, net in nets.items()}
    _STATE.update(nets=nets, torch_nets=torch_nets, pixels=pixels, labels=labels, config=config)


def _run_task(task: Task) -> list[ResultRow]:
    config: RunConfig = _STATE["config"]
    pixels, labels = _STATE["pixels"], _STATE["labels"]
    if isinstance(task, ExactTask):
        net = _STATE["nets"][task.model]
        x, label = pixels[task.image], int(labels[task.image])
        return [methods.exact_row(net, task.model, task.image, x, label, task.target, config)]
    rows: list[ResultRow] = []
    for method in config.methods[:-1]:
        pairs = [(image, target) for image, target, m in task.triples if m == method]
        if pairs:
            images = np.array([image for image, _ in pairs])
            targets = np.array([target for _, target in pairs])
            torch_net = _STATE["torch_nets"][task.model]
            rows += methods.attack_rows(
                method, torch_net, task.model, images, pixels[images], labels[images], targets, config, task.seed
            )
    return rows


def _label(task: Task) -> str:
    """The work a task stands for, for messages."""
    if isinstance(task, ExactTask):
        return f"{task.model} image {task.image} target {task.target} (exact)"
    images = sorted({image for image, _, _ in task.triples})
    return f"{task.model} images {', '.join(map(str, images))} (attacks)"


def _autoattack(store: ResultStore, model: Model, correct: Sequence[int], pixels: np.ndarray, labels: np.ndarray,
                workers: int, progress: bool) -> None:
    """AutoAttack at each of ROBUST_RADII on the correctly classified images that have no stored outcome yet.

    It runs in this process or a local pool of `workers` (not on the run's executor): it is a fixed-radius check,
    seconds per image, beside the minutes of the exact distances."""
    from advgap.experiment.robust import Settings, robust_accuracy  # ART loads only where AutoAttack runs

    stored = {(r.image, r.delta) for r in store.robust(model.name) if r.method == "autoattack"}
    todo = [i for i in correct if any((i, d) not in stored for d in ROBUST_RADII)]
    if not todo:
        return
    log.info("%s: AutoAttack at δ = %s on %d images", model.name, ", ".join(map(str, ROBUST_RADII)), len(todo))
    result = robust_accuracy(model.net, pixels[todo], labels[todo], Settings(ROBUST_RADII), workers=workers,
                             progress=progress)
    refuted = result.refuted["autoattack"]
    store.put_robust(RobustRow(model.name, image, delta, "autoattack", bool(refuted[k, r]), result.autoattack)
                     for k, image in enumerate(todo) for r, delta in enumerate(ROBUST_RADII))


def _compute(store: ResultStore, session: int, config: RunConfig, models: list[Model], plans: list[Plan],
             pixels: np.ndarray, labels: np.ndarray, progress: bool, executor: Executor) -> tuple[Counter[str], int]:
    """Run every planned task, storing each task's rows as it finishes; returns rows added per model, failures."""
    remaining = Counter((p.model, i) for p in plans for t in p.tasks
                        for i in ([t.image] if isinstance(t, ExactTask) else [i for i, _, _ in t.triples]))
    bars = {
        p.model: tqdm(total=len(p.correct), initial=len(p.correct) - sum(1 for m, _ in remaining if m == p.model),
                      desc=f"{p.model} images", unit="img", position=k, disable=not progress, dynamic_ncols=True)
        for k, p in enumerate(plans)
    }
    added: Counter[str] = Counter()
    failed = 0
    # Cheap attacks first; then exact distances image by image, alternating models, so that an interrupted run
    # leaves every model with results for the same images.
    order = {p.model: k for k, p in enumerate(plans)}
    tasks = [task for p in plans for task in p.tasks if isinstance(task, AttackTask)]
    tasks += sorted((task for p in plans for task in p.tasks if isinstance(task, ExactTask)),
                    key=lambda t: (t.image, order[t.model], t.target))
    threads = torch.get_num_threads()  # _init_worker sets one thread where the tasks run in this process
    outcomes = executor.imap(_run_task, tasks, _init_worker, ({m.name: m.net for m in models}, pixels, labels, config))
    try:
        for outcome in outcomes:
            if outcome.error is not None:
                failed += 1
                log.warning("task failed: %s: %s", _label(outcome.task), outcome.error)
                continue
            rows = outcome.value
            added[outcome.task.model] += store.add(rows, session)
            for row in rows:
                remaining[(row.model, row.image)] -= 1
                if remaining[(row.model, row.image)] == 0:
                    bars[row.model].update(1)
    finally:
        outcomes.close()  # ends the pool, or stops the Ray tasks still out
        torch.set_num_threads(threads)
        _STATE.clear()
        for bar in bars.values():
            bar.close()
    return added, failed


def run_experiment(config: RunConfig, progress: bool = True, executor: Executor | None = None) -> RunSummary:
    """Compute and store every missing row of the selection (see the module docstring); returns a summary.

    progress: show one progress bar per model on stderr (images done / correctly classified images, ETA).
    executor: where the tasks run (default: a LocalExecutor of `config.workers` processes).
    """
    executor = executor or LocalExecutor(config.workers)
    started = time.perf_counter()
    models = load_models(config.models)
    images, labels = load_mnist("test", config.data_dir)
    pixels = images.reshape(len(images), -1).astype(np.float64) / 255.0
    identity = config.identity({m.name: m.sha256 for m in models}, data_hash(images, labels))
    selection = range(*config.images)
    with ResultStore.open(config.out, identity) as store:
        get_engine(config.engine).require()  # fail before any work, not in every task
        session = store.begin_session(f"{selection.start}:{selection.stop}", executor.workers)
        known = {row.model for row in store.models()}
        plans = []
        for model in models:
            if model.name not in known:
                store.put_model(methods.model_row(model.name, model.sha256, model.meta, model.net, pixels, labels))
            predicted = model.net.predict(pixels[selection.start:selection.stop])
            store.put_images(
                ImageRow(model.name, i, int(labels[i]), int(p)) for i, p in zip(selection, predicted, strict=True)
            )
            correct = [i for i, p in zip(selection, predicted, strict=True) if p == labels[i]]
            plans.append(plan(config, model.name, correct, labels, store.statuses(model.name).keys()))
        try:
            for model, p in zip(models, plans, strict=True):
                _autoattack(store, model, p.correct, pixels, labels, config.workers, progress)
            added, failed = _compute(store, session, config, models, plans, pixels, labels, progress, executor)
        finally:
            store.end_session(session)
        summaries = []
        for p in plans:
            stored = {key: status for key, status in store.statuses(p.model).items() if key in p.expected}
            uncertified = sum(1 for key, status in stored.items() if key[2] == "exact" and status != RowStatus.EXACT)
            summaries.append(ModelSummary(p.model, len(selection), len(p.correct), len(stored), len(p.expected),
                                          added[p.model], uncertified))
    return RunSummary(Path(config.out), time.perf_counter() - started, tuple(summaries), executor.describe(), failed)
