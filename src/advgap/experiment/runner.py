"""`run_experiment`: attacks and exact distances for every selected test image and target, stored as they come.

Per model: the correctly classified images of the selection, every target class other than the label, the closest
δ each chosen attack finds (batched over images × targets, one task per chunk of images) and the exact minimal δ
(one task per image and target). Tasks run in the parent (one worker) or in a pool of spawned processes; only the
parent writes to the store, one transaction per finished task, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from advgap.data.mnist import load_mnist
from advgap.errors import ConfigError, ModelFormatError
from advgap.experiment import methods
from advgap.experiment.config import N_CLASSES, N_INPUTS, RunConfig
from advgap.experiment.store import ImageRow, ResultRow, ResultStore
from advgap.models.bundled import load_model
from advgap.verify.marabou import require_maraboupy
from advgap.verify.network import ReluNet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Model:
    """A network under study: its name in the store, weights, metadata and weight hash."""

    name: str
    net: ReluNet
    meta: dict
    sha256: str


@dataclass(frozen=True)
class AttackTask:
    """Attack `methods` on every (image, target) pair of one chunk that is not stored yet."""

    model: str
    pairs: tuple[tuple[int, int, str], ...]  # (image, target, method)
    seed: int


@dataclass(frozen=True)
class ExactTask:
    """The exact minimal δ for one image and target."""

    model: str
    image: int
    target: int


@dataclass(frozen=True)
class ModelSummary:
    name: str
    images: int  # selected
    correct: int  # correctly classified, hence attacked
    rows: int  # stored rows for the selection
    expected: int  # rows the selection needs
    added: int  # rows computed by this run


@dataclass(frozen=True)
class RunSummary:
    out: Path
    report: Path | None
    seconds: float
    models: tuple[ModelSummary, ...]

    @property
    def complete(self) -> bool:
        return all(m.rows == m.expected for m in self.models)


def weights_hash(net: ReluNet) -> str:
    """sha256 over the shapes and float64 bytes of all weights and biases (independent of the file format)."""
    digest = hashlib.sha256()
    for array in (*net.weights, *net.biases):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()


def data_hash(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


def load_models(specs: tuple[str, ...]) -> list[Model]:
    """Load each model by bundled name or file path; a file's store name is its stem."""
    models = []
    for spec in specs:
        net, meta = load_model(spec)
        if (net.n_inputs, net.n_outputs) != (N_INPUTS, N_CLASSES):
            raise ModelFormatError(f"{spec}: net maps {net.n_inputs} inputs to {net.n_outputs} classes, "
                                   f"MNIST needs {N_INPUTS} to {N_CLASSES}")
        name = Path(spec).stem if spec.endswith(".npz") else spec
        models.append(Model(name, net, meta, weights_hash(net)))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"two models share a name in the store: {', '.join(names)} (rename a network file)")
    return models


# State of the process that runs tasks (the parent with one worker, else each pool process).
_STATE: dict = {}


def _init_worker(nets: dict[str, ReluNet], pixels: np.ndarray, labels: np.ndarray, config: RunConfig) -> None:
    torch.set_num_threads(1)  # small batches: one thread per process is fastest, and never oversubscribes cores
    torch_nets = {name: methods.torch_net(net) for name, net in nets.items()}
    _STATE.update(nets=nets, torch_nets=torch_nets, pixels=pixels, labels=labels, config=config)


def _run_task(task: AttackTask | ExactTask) -> tuple[AttackTask | ExactTask, list[ResultRow]]:
    net, config = _STATE["nets"][task.model], _STATE["config"]
    pixels, labels = _STATE["pixels"], _STATE["labels"]
    if isinstance(task, ExactTask):
        x = pixels[task.image]
        row = methods.exact_row(net, task.model, task.image, x, int(labels[task.image]), task.target, config)
        return task, [row]
    rows: list[ResultRow] = []
    for method in config.methods[:-1]:
        pairs = [(i, t) for i, t, m in task.pairs if m == method]
        if pairs:
            images = np.array([i for i, _ in pairs])
            targets = np.array([t for _, t in pairs])
            torch_net = _STATE["torch_nets"][task.model]
            rows += methods.attack_rows(
                method, torch_net, task.model, images, pixels[images], labels[images], targets, config, task.seed
            )
    return task, rows


def _plan(config: RunConfig, model: str, correct: list[int], labels: np.ndarray,
          done: set[tuple[int, int, str]]) -> tuple[list[AttackTask], list[ExactTask]]:
    """Tasks for the rows of `model` not stored yet; attack chunks are aligned on image index // chunk."""
    attack_methods = config.methods[:-1]
    chunks: dict[int, list[tuple[int, int, str]]] = {}
    exact: list[ExactTask] = []
    for image in correct:
        for target in config.targets:
            if target == labels[image]:
                continue
            for method in attack_methods:
                if (image, target, method) not in done:
                    chunks.setdefault(image // config.chunk, []).append((image, target, method))
            if (image, target, "exact") not in done:
                exact.append(ExactTask(model, image, target))
    model_code = zlib.crc32(model.encode())
    attack_tasks = [
        AttackTask(model, tuple(pairs), int(np.random.SeedSequence([config.seed, model_code, k]).generate_state(1)[0]))
        for k, pairs in sorted(chunks.items())
    ]
    return attack_tasks, exact


def _execute(config: RunConfig, nets: dict[str, ReluNet], pixels: np.ndarray, labels: np.ndarray,
             tasks: list[AttackTask | ExactTask]) -> Iterator[tuple[AttackTask | ExactTask, list[ResultRow]]]:
    """Run tasks in this process or in a spawned pool, yielding results as they finish."""
    if config.workers == 1 or len(tasks) <= 1:
        threads = torch.get_num_threads()
        _init_worker(nets, pixels, labels, config)
        try:
            yield from map(_run_task, tasks)
        finally:
            torch.set_num_threads(threads)
            _STATE.clear()
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(config.workers, _init_worker, (nets, pixels, labels, config)) as pool:
        yield from pool.imap_unordered(_run_task, tasks, chunksize=1)


def run_experiment(config: RunConfig, progress: bool = True, report: bool = True) -> RunSummary:
    """Compute every missing row of the selection, store it, then build the report; returns a summary."""
    started = time.perf_counter()
    if config.engine == "marabou":
        require_maraboupy()  # fail before any work, not in every task
    models = load_models(config.models)
    images, labels = load_mnist("test", config.data_dir)
    pixels = images.reshape(len(images), -1).astype(np.float64) / 255.0
    identity = config.identity({m.name: m.sha256 for m in models}, data_hash(images, labels))
    selection = range(*config.images)
    with ResultStore.open(config.out, identity) as store:
        session = store.begin_session(f"{selection.start}:{selection.stop}", config.workers)
        known = {row.model for row in store.models()}
        for model in models:
            if model.name not in known:
                store.put_model(methods.model_row(model.name, model.sha256, model.meta, model.net, pixels, labels))
        tasks: list[AttackTask | ExactTask] = []
        remaining: dict[tuple[str, int], int] = {}
        correct_by_model: dict[str, list[int]] = {}
        for model in models:
            predicted = model.net.predict(pixels[selection.start:selection.stop])
            store.put_images(
                ImageRow(model.name, i, int(labels[i]), int(p)) for i, p in zip(selection, predicted, strict=True)
            )
            correct = [i for i, p in zip(selection, predicted, strict=True) if p == labels[i]]
            correct_by_model[model.name] = correct
            attack_tasks, exact_tasks = _plan(config, model.name, correct, labels, store.done_keys(model.name))
            tasks += attack_tasks
            tasks += exact_tasks
            for task in attack_tasks:
                for image, _, _ in task.pairs:
                    remaining[(model.name, image)] = remaining.get((model.name, image), 0) + 1
            for task in exact_tasks:
                remaining[(model.name, task.image)] = remaining.get((model.name, task.image), 0) + 1
        bars = {
            m.name: tqdm(total=len(correct_by_model[m.name]), desc=f"{m.name} images", unit="img", position=k,
                         initial=len(correct_by_model[m.name]) - len({i for n, i in remaining if n == m.name}),
                         disable=not progress, dynamic_ncols=True)
            for k, m in enumerate(models)
        }
        added: dict[str, int] = {m.name: 0 for m in models}
        try:
            for task, rows in _execute(config, {m.name: m.net for m in models}, pixels, labels, tasks):
                added[task.model] += store.add(rows, session)
                for row in rows:
                    key = (row.model, row.image)
                    remaining[key] -= 1
                    if remaining[key] == 0:
                        bars[row.model].update(1)
        finally:
            for bar in bars.values():
                bar.close()
            store.end_session(session)
        summaries = []
        for model in models:
            correct = correct_by_model[model.name]
            stored = store.done_keys(model.name)
            n_expected = sum(1 for i in correct for t in config.targets if t != labels[i]) * len(config.methods)
            in_selection = sum(1 for i, _, m in stored if i in selection and m in config.methods)
            summaries.append(ModelSummary(model.name, len(selection), len(correct), in_selection, n_expected,
                                          added[model.name]))
    report_path = None
    if report:
        from advgap.report.html import build_report

        report_path = build_report(config.out, selection)
    return RunSummary(Path(config.out), report_path, time.perf_counter() - started, tuple(summaries))
