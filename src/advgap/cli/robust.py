"""`advgap evaluate --robust δ,...`: robust accuracy per radius by FGSM, PGD, FMN, AutoAttack and the exact engine.

The options are added to the `evaluate` parser; the computation (`advgap.experiment.robust`, which imports torch
and the adversarial-robustness-toolbox) is imported only when --robust is given.
"""

from __future__ import annotations

import argparse
import json

from advgap.cli.options import check_seconds, check_workers, parse_images
from advgap.errors import ConfigError, SpecError
from advgap.experiment.config import N_TEST, default_workers

DEFAULT_TIMEOUT = 60.0  # engine seconds per image
# Options that only mean something with --robust (and, for --timeout, with --exact).
ROBUST_ONLY = ("exact", "images", "timeout", "workers")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robust", metavar="δ,δ,...",
                   help="instead: robust accuracy at these L∞ radii in (0, 1] (pixel units, 1/255 = one grey level) "
                   "according to FGSM, PGD, FMN and AutoAttack")
    p.add_argument("--exact", action="store_true",
                   help="with --robust: also prove robustness with the exact engine where no attack refuted it")
    p.add_argument("--images", metavar="N|A:B",
                   help="with --robust: first N test images or indices A..B-1 (default: all)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help=f"with --exact: engine seconds per image, all radii together (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--workers", type=int, metavar="N", help="with --robust: processes (default: one per CPU core)")


def requested(args: argparse.Namespace) -> bool:
    """Whether to run the robust-accuracy evaluation; ConfigError for its options given without --robust."""
    given = [name for name in ROBUST_ONLY if getattr(args, name) not in (None, False)]
    if args.robust is None:
        if given:
            raise ConfigError(f"--{given[0]} needs --robust RADII (e.g. --robust 0.1,0.2)")
        return False
    if args.timeout is not None and not args.exact:
        raise ConfigError("--timeout needs --exact (it limits the exact engine)")
    return True


def parse_radii(text: str) -> tuple[float, ...]:
    """'0.2,0.1' → (0.1, 0.2), in increasing order; SpecError where a part is not a number in (0, 1]."""
    try:
        radii = tuple(sorted(float(part) for part in text.split(",")))
    except ValueError:
        raise SpecError(f"--robust {text!r}: expected comma-separated radii such as 0.1,0.2") from None
    if not all(0 < r <= 1 for r in radii):  # also refuses NaN; checked before torch and ART are imported
        raise SpecError(f"--robust {text!r}: radii must lie in (0, 1]")
    return radii


def run(args: argparse.Namespace) -> int:
    radii = parse_radii(args.robust)
    start, stop = (0, N_TEST) if args.images is None else parse_images(args.images)
    if not 0 <= start < stop <= N_TEST:
        raise ConfigError(f"--images {args.images}: need 0 <= A < B <= {N_TEST}")
    if args.workers is not None:
        check_workers(args.workers)
    timeout = DEFAULT_TIMEOUT if args.timeout is None else check_seconds(args.timeout)

    import numpy as np

    from advgap.data.mnist import load_mnist
    from advgap.experiment.robust import Settings, robust_accuracy
    from advgap.models.loader import load_network

    settings = Settings(radii, exact=args.exact, timeout=timeout)
    net = load_network(args.model).net
    images, labels = load_mnist("test", args.data_dir)
    pixels = images[start:stop].reshape(stop - start, -1).astype(np.float64) / 255.0
    if net.n_inputs != pixels.shape[1]:
        raise SpecError(f"{args.model}: the net takes {net.n_inputs} inputs, MNIST images have {pixels.shape[1]}")
    workers = default_workers() if args.workers is None else args.workers
    result = robust_accuracy(net, pixels, labels[start:stop].astype(np.int64), settings, workers=workers,
                             progress=not args.json)
    record = {"model": str(args.model), "images": [start, stop], **result.as_dict()}
    if args.json:
        print(json.dumps(record))
    else:
        print(format_table(record))
    return 0


def format_table(record: dict) -> str:
    """The `as_dict` record of a robust-accuracy run as a text table."""
    from advgap.experiment.robust import ATTACKS, LABELS

    n, exact = record["n"], record["exact"]
    start, stop = record["images"]
    last = "exact: proven ≤ true ≤ not refuted" if exact else "not refuted by any attack"
    lines = [
        f"model {record['model']}, MNIST test images {start}:{stop}: {record['correct']} of {n} correctly classified",
        f"robust accuracy over all {n} images (a misclassified image counts as not robust):",
        f"{'δ':>8}" + "".join(f"{LABELS[a]:>12}" for a in ATTACKS) + f"   {last}",
    ]
    for row in record["radii"]:
        acc, count = row["accuracy"], row["images"]
        cells = "".join(f"{100 * acc[a]:11.2f}%" for a in ATTACKS)
        upper = f"{100 * acc['not_refuted']:.2f}%"
        if exact:
            unsettled = f"  ({count['unsettled']} unsettled)" if count["unsettled"] else ""
            last = f"{100 * acc['proven']:.2f}% ≤ true ≤ {upper}{unsettled}"
        else:
            last = upper
        lines.append(f"{row['delta']:>8g}{cells}   {last}")
    lines.append(f"AutoAttack: {record['autoattack']}")
    engine = f"exact engine {record['timeout']:g} s per image, {record['engine_checks']} checks; " if exact else ""
    lines.append(f"{engine}{record['seconds']:.1f} s")
    return "\n".join(lines)
