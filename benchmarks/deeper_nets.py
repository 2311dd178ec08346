"""The exact engine on deeper and convolutional MNIST nets, the working tree's engine beside a baseline commit's.

    .venv/bin/python benchmarks/deeper_nets.py [--nets mlp-100x2 mlp-256x2 mlp-100x4 conv-small mlp-100x2-adv]
        [--n 20] [--timeout 60] [--tol 1e-3] [--baseline e0396c7 | --baseline none] [--worktree DIR]
        [--parallel-baseline] [--workers N] [--no-new] [--epochs 2] [--cache runs/deeper]

Nets are named ARCH or ARCH-adv[δ] (ARCH: mlp-50, mlp-100x2, mlp-256x2, mlp-100x4, conv-small, conv-maxpool):
`-adv` trains on untargeted PGD examples of radius δ (10 steps; plain `-adv` means δ = 0.1), so `mlp-100x2-adv` is
the adversarially trained mlp-100x2. Each net is trained here with plain torch on one thread (Adam 1e-3, batch 128,
cross-entropy), written as ONNX with `onnx.helper`, imported through advgap's ONNX reader (checked against
onnxruntime; conv-maxpool's max pool becomes ReLU layers there) and cached in --cache, with its float64 weights as an
.npz that both engines load through `ReluNet.from_layers`.

For the first N correctly classified test images of each net, the certified minimal L∞ distance (all targets,
tolerance --tol, --timeout seconds each) is computed by `benchmarks/_distance_driver.py` in one subprocess per
engine: "new" with PYTHONPATH=src (the working tree), "baseline" with PYTHONPATH=<worktree>/src, the worktree made
by `git worktree add DIR REV` when DIR (default runs/baseline-REV) does not exist. By default the engines run one
after the other, each with the whole machine (so a new engine with `--workers 2` may use both cores);
--parallel-baseline runs them at the same time, pinned to one core each, BLAS on one thread. Raw results are kept
as JSON lines in --cache/results/.

Printed: a markdown table per net and engine (exact count; median, p90 and max wall seconds per image; mean
certified interval width upper − lower and mean certified lower δ, in pixel levels ×255; mean unstable hidden ReLUs
at the search radius; disagreements, images whose two certified intervals are disjoint by more than --tol), then
the per-image intervals.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from _worktree import baseline_worktree
from advgap.attacks.gradient import pgd
from advgap.data.mnist import mnist_arrays
from advgap.formats.onnx_import import load_onnx
from advgap.models.torchnet import make_mlp
from advgap.verify.network import ReluNet, dense

REPO = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).resolve().with_name("_distance_driver.py")
DEFAULT_NETS = ("mlp-100x2", "mlp-256x2", "mlp-100x4", "conv-small", "mlp-100x2-adv")
DEFAULT_ADV_DELTA = 0.1
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def conv_small() -> nn.Sequential:
    """ERAN's ConvSmall shape: conv 16×4×4/2, conv 32×4×4/2, dense 100, dense 10."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=2), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(800, 100), nn.ReLU(), nn.Linear(100, 10),
    )


def conv_maxpool() -> nn.Sequential:
    """A max-pooling conv net: conv 8×4×4/2, ReLU, max pool 2×2/2, dense 10 (3,080 ReLUs once the pool is encoded)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 4, stride=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(288, 10),
    )


ARCHITECTURES = {
    "mlp-50": lambda: make_mlp(784, (50,), 10),
    "mlp-100x2": lambda: make_mlp(784, (100, 100), 10),
    "mlp-256x2": lambda: make_mlp(784, (256, 256), 10),
    "mlp-100x4": lambda: make_mlp(784, (100, 100, 100, 100), 10),
    "conv-small": conv_small,
    "conv-maxpool": conv_maxpool,
}


@dataclass(frozen=True)
class NetSpec:
    """A net name as given on the command line: an architecture and its PGD training radius (0: vanilla)."""

    name: str
    arch: str
    adv_delta: float


def parse_net(name: str) -> NetSpec:
    """ARCH or ARCH-adv or ARCH-adv<δ>, e.g. conv-small, mlp-100x2-adv, mlp-100x2-adv0.2."""
    arch, sep, delta = name.partition("-adv")
    if arch not in ARCHITECTURES:
        raise argparse.ArgumentTypeError(f"unknown net {name!r}: ARCH[-adv[δ]], ARCH one of {', '.join(ARCHITECTURES)}")
    try:
        adv_delta = (float(delta) if delta else DEFAULT_ADV_DELTA) if sep else 0.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad training radius in {name!r}") from None
    if not 0.0 <= adv_delta < 1.0:
        raise argparse.ArgumentTypeError(f"training radius in {name!r} must lie in [0, 1)")
    return NetSpec(name, arch, adv_delta)


def is_conv(model: nn.Sequential) -> bool:
    return isinstance(model[0], nn.Conv2d)


def train(model: nn.Sequential, epochs: int, adv_delta: float, seed: int = 0) -> None:
    x, y = mnist_arrays("train")
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    shape = (-1, 1, 28, 28) if is_conv(model) else (-1, 784)
    flat_model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), *model) if is_conv(model) else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(128):
            xb, yb = x[idx], y[idx]
            if adv_delta > 0:
                xb = pgd(flat_model, xb, yb, adv_delta, steps=10, generator=gen).x_adv
            loss = F.cross_entropy(model(xb.reshape(shape)), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def to_onnx(model: nn.Sequential) -> onnx.ModelProto:
    """Conv2d, Linear, ReLU, MaxPool2d and Flatten layers as ONNX nodes (opset 13)."""
    nodes, inits = [], []
    current = "input"
    for k, layer in enumerate(model):
        out = "logits" if k == len(model) - 1 else f"t{k}"
        if isinstance(layer, nn.Conv2d):
            inits += [numpy_helper.from_array(layer.weight.detach().numpy(), f"W{k}"),
                      numpy_helper.from_array(layer.bias.detach().numpy(), f"b{k}")]
            nodes.append(helper.make_node("Conv", [current, f"W{k}", f"b{k}"], [out], strides=list(layer.stride),
                                          pads=[*layer.padding, *layer.padding]))
        elif isinstance(layer, nn.Linear):
            inits += [numpy_helper.from_array(layer.weight.detach().numpy(), f"W{k}"),
                      numpy_helper.from_array(layer.bias.detach().numpy(), f"b{k}")]
            nodes.append(helper.make_node("Gemm", [current, f"W{k}", f"b{k}"], [out], transB=1))
        elif isinstance(layer, nn.ReLU):
            nodes.append(helper.make_node("Relu", [current], [out]))
        elif isinstance(layer, nn.Flatten):
            nodes.append(helper.make_node("Flatten", [current], [out]))
        elif isinstance(layer, nn.MaxPool2d):
            size, stride, pad = (list(v) if isinstance(v, tuple) else [v, v]
                                 for v in (layer.kernel_size, layer.stride, layer.padding))
            nodes.append(helper.make_node("MaxPool", [current], [out], kernel_shape=size, strides=stride,
                                          pads=pad + pad))
        else:
            raise TypeError(f"no ONNX mapping for {layer}")
        current = out
    in_shape = [1, 1, 28, 28] if is_conv(model) else [1, 784]
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def trained_onnx(spec: NetSpec, epochs: int, cache: Path) -> Path:
    """The cached ONNX file of `spec`, trained first when missing."""
    path = cache / f"{spec.arch}-adv{spec.adv_delta:g}-ep{epochs}.onnx"
    if not path.is_file():
        torch.manual_seed(0)
        model = ARCHITECTURES[spec.arch]()
        start = time.monotonic()
        train(model, epochs, spec.adv_delta)
        print(f"trained {spec.name} in {time.monotonic() - start:.0f} s", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(to_onnx(model), str(path))
    return path


def save_weights(net: ReluNet, path: Path) -> Path:
    """W0, b0, W1, b1, … in float64, dense (what every engine's `from_layers` reads): the exact net both engines
    verify."""
    arrays = {f"{kind}{k}": a for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True))
              for kind, a in (("W", dense(w)), ("b", b))}
    np.savez(path, **arrays)
    return path


@dataclass(frozen=True)
class Engine:
    """One advgap source tree to run the driver with; `key` names its result files and detail columns."""

    key: str
    label: str
    src: Path
    workers: int | None = None


@dataclass
class Run:
    """One engine's results on one net, by image index; `error` says why images are missing."""

    engine: Engine
    rows: dict[int, dict] = field(default_factory=dict)
    error: str = ""


def sidecar(stem: Path, suffix: str) -> Path:
    return stem.with_name(f"{stem.name}.{suffix}")  # not with_suffix: net names like mlp-100x2-adv0.2 have dots


def start_driver(engine: Engine, net: Path, images: Path, out: Path, args: argparse.Namespace,
                 core: int | None) -> subprocess.Popen:
    """The driver in a subprocess with PYTHONPATH=engine.src; pinned to `core` (and BLAS to one thread) if given."""
    env = {**os.environ, "PYTHONPATH": str(engine.src)}
    if core is not None:
        env.update(ONE_THREAD)
    command = [sys.executable, str(DRIVER), str(net), str(images), str(out),
               "--timeout", str(args.timeout), "--tol", str(args.tol)]
    if engine.workers is not None:
        command += ["--workers", str(engine.workers)]
    pin = None if core is None else (lambda: os.sched_setaffinity(0, {core}))
    out.unlink(missing_ok=True)  # a driver that dies before writing must not leave an older run's results
    with open(out.with_suffix(".log"), "w") as log:  # the child keeps its own copy of the file descriptor
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin)


def finish(engine: Engine, proc: subprocess.Popen, out: Path, limit: float) -> Run:
    """Wait for the driver (killing it past `limit` seconds) and read its JSON lines, complete or not."""
    run = Run(engine)
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        run.error = f"killed after {limit:.0f} s"
    lines = out.read_text().splitlines() if out.is_file() else []
    for line in lines[1:]:
        row = json.loads(line)
        run.rows[row["index"]] = row
    if proc.returncode and not run.error:
        tail = out.with_suffix(".log").read_text().strip().splitlines()[-1:]
        run.error = f"exit {proc.returncode}: {tail[0] if tail else '?'}"
    imported = Path(json.loads(lines[0])["advgap"]) if lines else None
    if imported is not None and engine.src not in imported.parents:
        run.error = f"imported {imported}, not advgap from {engine.src}"
    return run


def run_engines(engines: Sequence[Engine], stem: Path, n_images: int, args: argparse.Namespace) -> list[Run]:
    """All engines on one net: one after the other, or (--parallel-baseline) at once on cores 0 and 1."""
    net, images = sidecar(stem, "npz"), sidecar(stem, "images.npz")
    outs = [sidecar(stem, f"{engine.key}.jsonl") for engine in engines]
    limit = n_images * (2 * args.timeout + 30) + 60  # generous: the engines keep to their time limit themselves
    jobs = list(zip(engines, outs, strict=True))
    if args.parallel_baseline:
        procs = [start_driver(engine, net, images, out, args, core) for core, (engine, out) in enumerate(jobs)]
        return [finish(engine, proc, out, limit) for (engine, out), proc in zip(jobs, procs, strict=True)]
    return [finish(engine, start_driver(engine, net, images, out, args, None), out, limit) for engine, out in jobs]


@dataclass(frozen=True)
class NetRuns:
    spec: NetSpec
    hidden: int
    accuracy: float
    indices: list[int]
    runs: list[Run]


def bench_net(spec: NetSpec, engines: Sequence[Engine], args: argparse.Namespace) -> NetRuns:
    cache = Path(args.cache)
    net = load_onnx(trained_onnx(spec, args.epochs, cache)).net
    images, labels = mnist_arrays("test")
    correct = net.predict(images) == labels
    indices = [int(i) for i in np.flatnonzero(correct)[: args.n]]
    stem = cache / "results" / spec.name
    stem.parent.mkdir(parents=True, exist_ok=True)
    save_weights(net, sidecar(stem, "npz"))
    np.savez(sidecar(stem, "images.npz"), index=np.array(indices), x=images[indices], label=labels[indices])
    print(f"{spec.name}: {sum(net.hidden_sizes)} hidden ReLUs, test accuracy {100 * np.mean(correct):.2f}%",
          flush=True)
    runs = run_engines(engines, stem, len(indices), args)
    for run in runs:
        exact = sum(row["status"] == "exact" for row in run.rows.values())
        print(f"  {run.engine.label}: {exact}/{len(indices)} exact" + (f" ({run.error})" if run.error else ""),
              flush=True)
    return NetRuns(spec, sum(net.hidden_sizes), float(np.mean(correct)), indices, runs)


def upper(row: dict) -> float:
    return float("inf") if row["upper"] is None else row["upper"]


def disjoint(a: dict, b: dict, tol: float) -> bool:
    """The certified intervals exclude each other (cross_check's rule): one engine is wrong."""
    return a["lower"] > upper(b) + tol or b["lower"] > upper(a) + tol


def disagreements(net_runs: NetRuns, tol: float) -> int | None:
    if len(net_runs.runs) < 2:
        return None
    first, second = (run.rows for run in net_runs.runs[:2])
    return sum(disjoint(first[i], second[i], tol) for i in first.keys() & second.keys())


def unstable(row: dict) -> tuple[int, str]:
    """The engine's own count after tightening when it reports one, else CROWN's at the final upper radius."""
    return (row["unstable"], "engine") if row["unstable"] is not None else (row["crown_unstable"], "CROWN")


def summary_row(net_runs: NetRuns, run: Run, disagree: int | None) -> str:
    rows = [run.rows[i] for i in net_runs.indices if i in run.rows]
    head = (f"| {net_runs.spec.name} | {net_runs.hidden} | {net_runs.spec.adv_delta:g} | "
            f"{100 * net_runs.accuracy:.2f}% | {run.engine.label} |")
    if not rows:
        return head + " – | – | – | – | – | – | – | – |"
    seconds = sorted(row["wall"] for row in rows)
    p90 = seconds[min(len(seconds) - 1, int(0.9 * len(seconds)))]
    exact = sum(row["status"] == "exact" for row in rows)
    width = 255 * statistics.mean(upper(row) - row["lower"] for row in rows)
    lower = 255 * statistics.mean(row["lower"] for row in rows)
    counts = [unstable(row) for row in rows]
    sources = {source for _, source in counts}
    mean_unstable = f"{statistics.mean(c for c, _ in counts):.1f}" + ("" if sources == {"engine"} else " (CROWN)")
    return (head + f" {exact}/{len(net_runs.indices)} | {statistics.median(seconds):.2f} | {p90:.2f} | "
            f"{seconds[-1]:.2f} | {width:.3f} | {lower:.2f} | {mean_unstable} | "
            f"{'–' if disagree is None else disagree} |")


def print_summary(results: Sequence[NetRuns], tol: float) -> None:
    print("| net | hidden ReLUs | train δ | test acc | engine | exact | median s | p90 s | max s | "
          "mean width (px) | mean lower δ (px) | mean unstable ReLUs | disagreements |")
    print("|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for net_runs in results:
        disagree = disagreements(net_runs, tol)
        for run in net_runs.runs:
            print(summary_row(net_runs, run, disagree))


def unstable_cell(row: dict) -> str:
    count, source = unstable(row)
    return str(count) if source == "engine" else f"{count} (CROWN)"


def detail_cells(row: dict | None) -> str:
    if row is None:
        return "– | – | – | –"
    return (f"[{255 * row['lower']:.3f}, {255 * upper(row):.3f}] | {row['status']} | {row['wall']:.2f} | "
            f"{unstable_cell(row)}")


def print_details(results: Sequence[NetRuns], tol: float) -> None:
    keys = [run.engine.key for run in results[0].runs] if results else []
    columns = "".join(f" {key} [lower, upper] px | status | s | unstable |" for key in keys)
    print(f"| net | image |{columns} disjoint |")
    print("|---|--:|" + "--:|---|--:|--:|" * len(keys) + "---|")
    for net_runs in results:
        for i in net_runs.indices:
            rows = [run.rows.get(i) for run in net_runs.runs]
            both = len(rows) == 2 and None not in rows
            flag = ("**yes**" if disjoint(rows[0], rows[1], tol) else "no") if both else "–"
            print(f"| {net_runs.spec.name} | {i} | {' | '.join(detail_cells(row) for row in rows)} | {flag} |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", type=parse_net, default=[parse_net(n) for n in DEFAULT_NETS],
                        help=f"ARCH[-adv[δ]] (default: {' '.join(DEFAULT_NETS)})")
    parser.add_argument("--n", type=int, default=20, help="correctly classified test images per net (default 20)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per image (default 60)")
    parser.add_argument("--tol", type=float, default=1e-3, help="certified interval width for EXACT (default 1e-3)")
    parser.add_argument("--baseline", default="e0396c7", help="git revision of the baseline engine, or 'none'")
    parser.add_argument("--worktree", help="its git worktree (default runs/baseline-REV, added when missing)")
    parser.add_argument("--parallel-baseline", action="store_true",
                        help="run both engines at once, one core each (default: one after the other)")
    parser.add_argument("--workers", type=int, help="passed to the new engine's min_linf_distance when given")
    parser.add_argument("--no-new", action="store_true", help="skip the working tree's engine (e.g. mid-edit)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cache", default="runs/deeper", help="directory of the trained nets and raw results")
    args = parser.parse_args()
    if args.parallel_baseline and (args.baseline == "none" or args.no_new):
        parser.error("--parallel-baseline needs both engines")
    if args.parallel_baseline and (args.workers or 1) > 1:
        parser.error("--parallel-baseline gives each engine one core: --workers must be 1")
    if args.parallel_baseline and len(os.sched_getaffinity(0)) < 2:
        parser.error("--parallel-baseline needs two cores")
    if args.baseline == "none" and args.no_new:
        parser.error("nothing to run: --baseline none and --no-new")
    return args


def engines_from(args: argparse.Namespace) -> list[Engine]:
    engines = [] if args.no_new else [Engine("new", "new (working tree)", REPO / "src", args.workers)]
    if args.baseline != "none":
        worktree = baseline_worktree(args.baseline, Path(args.worktree or f"runs/baseline-{args.baseline}"))
        engines.append(Engine("baseline", f"baseline {args.baseline}", worktree.resolve() / "src"))
    return engines


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)  # training shares the machine
    engines = engines_from(args)
    mode = ("at the same time, pinned to one core each (BLAS on one thread)" if args.parallel_baseline
            else "one after the other, each with the whole machine")
    print(f"exact minimal L∞ distance, all targets, first {args.n} correctly classified test images per net, "
          f"{args.timeout:g} s each, tol {args.tol:g}; engines {mode}:")
    for engine in engines:
        workers = "" if engine.workers is None else f", workers={engine.workers}"
        print(f"  {engine.label}: PYTHONPATH={engine.src}{workers}")
    print(flush=True)
    results = [bench_net(spec, engines, args) for spec in args.nets]
    print(f"\nwall seconds per image; width and lower δ in pixel levels (×255); unstable ReLUs at the search radius: "
          f"the engine's count after tightening, or CROWN's at its final upper δ when marked; disagreements: "
          f"certified intervals disjoint by more than {args.tol:g}\n")
    print_summary(results, args.tol)
    print()
    print_details(results, args.tol)


if __name__ == "__main__":
    main()
