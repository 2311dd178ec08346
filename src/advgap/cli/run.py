"""`advgap run`: the whole experiment — attacks and exact distances per image and target, stored, then reported.

Resumable: rerunning with the same settings (or a larger image selection) on the same --out folder skips every
stored result.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

from advgap.attacks.registry import ATTACK_NAMES
from advgap.cli.executor import add_executor_arguments, executor_from_args
from advgap.cli.options import parse_images
from advgap.errors import ConfigError
from advgap.experiment.config import N_CLASSES, N_TEST, RunConfig, default_workers
from advgap.experiment.store import FILENAME
from advgap.models.zoo import ZOO_ALIAS, ZOO_NAMES, expand_names
from advgap.verify.engines import ENGINE_NAMES

DEFAULT_IMAGES = 100


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="run the experiment (attacks vs exact minimal δ) and write report.html",
        description="For each model, each correctly classified test image of the selection and each target class: "
        "the smallest δ found by FGSM and PGD (bisection) and FMN, and the exact minimal δ. Results are stored as "
        "they are computed in OUT/results.sqlite; rerunning resumes. Ends by writing OUT/report.html.",
    )
    p.add_argument("--models", default="vanilla,adversarial",
                   help="comma-separated bundled names or network files, .npz, .onnx or .nnet, each stored under its "
                   f"file name without suffix; {ZOO_ALIAS}: the study's nets and the zoo of deeper nets "
                   f"({', '.join(ZOO_NAMES)}) (default: vanilla,adversarial)")
    chosen = p.add_mutually_exclusive_group()
    chosen.add_argument("--images", default=str(DEFAULT_IMAGES), metavar="N|A:B",
                        help=f"first N test images, or indices A to B-1 (default: {DEFAULT_IMAGES})")
    chosen.add_argument("--all", action="store_true", help=f"all {N_TEST} test images")
    p.add_argument("--targets", default=None, metavar="T,T,...",
                   help="target classes (default: all 10; each image skips its own label)")
    p.add_argument("--engine", default="native", choices=ENGINE_NAMES, help="exact engine (default: native)")
    p.add_argument("--attacks", default=",".join(ATTACK_NAMES),
                   help=f"comma-separated subset of {','.join(ATTACK_NAMES)} (default: all)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes, or CPUs of a local Ray cluster (default: one per CPU core)")
    add_executor_arguments(p)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per exact distance (default: 60)")
    p.add_argument("--tol", type=float, default=1e-3, help="tolerance on δ, in [0,1] units (default: 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the attacks' random starts (default: 0)")
    p.add_argument("--out", type=Path, default=Path("runs/default"), help="output folder (default: runs/default)")
    p.add_argument("--data-dir", type=Path, help="directory holding the MNIST files (default: bundled copy)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_targets(text: str | None) -> tuple[int, ...]:
    """'3,5' → (3, 5); None → all classes. Raises ConfigError on anything else."""
    if text is None:
        return tuple(range(N_CLASSES))
    try:
        return tuple(int(part) for part in _names(text))
    except ValueError as exc:
        raise ConfigError(f"--targets {text!r}: expected comma-separated class numbers") from exc


def run(args: argparse.Namespace) -> int:
    config = RunConfig(
        models=expand_names(_names(args.models)),
        images=(0, N_TEST) if args.all else parse_images(args.images),
        targets=parse_targets(args.targets),
        engine=args.engine,
        attacks=_names(args.attacks),
        workers=default_workers() if args.workers is None else args.workers,
        out=args.out,
        timeout=args.timeout,
        tol=args.tol,
        seed=args.seed,
        data_dir=args.data_dir,
    )
    from advgap.experiment.runner import run_experiment  # torch and matplotlib only once the settings are valid
    from advgap.report.html import build_report

    with _sigterm_interrupts(), executor_from_args(args, config.workers) as executor:
        summary = run_experiment(config, progress=not args.no_progress, executor=executor)
    for model in summary.models:
        uncertified = f", {model.not_certified} exact δ not certified" if model.not_certified else ""
        print(f"{model.name}: {model.correct}/{model.images} images correctly classified, "
              f"{model.rows}/{model.expected} results stored ({model.added} new{uncertified})")
    state = "complete" if summary.complete else "INCOMPLETE"
    failed = f"; {summary.failed} task(s) failed, see the warnings above" if summary.failed else ""
    print(f"{state} in {summary.seconds:.1f} s on {summary.executor}{failed}; results {summary.out / FILENAME}")
    print(f"report: {build_report(config.out, range(*config.images))}")
    return 0 if summary.complete else 1


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the run as Ctrl-C does: the pool is ended, the open transaction rolled back, the session closed."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
