"""`advgap evaluate`: clean accuracy and accuracy under untargeted FGSM on the 10,000 MNIST test images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from advgap.attacks.evaluate import DEFAULT_FGSM_DELTA, evaluate
from advgap.cli import robust
from advgap.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="clean and FGSM accuracy of a net on the MNIST test set",
        description="Accuracy of a net on the 10,000 MNIST test images, clean and under untargeted FGSM.",
    )
    p.add_argument(
        "--model",
        default="vanilla",
        metavar="vanilla|adversarial|PATH",
        help="a bundled net or an advgap .npz network file (default: vanilla)",
    )
    p.add_argument(
        "--fgsm",
        type=float,
        default=None,
        metavar="DELTA",
        help=f"L∞ radius of the FGSM attack in pixel units of [0, 1] (default {DEFAULT_FGSM_DELTA} = 51/255)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="directory with the four MNIST IDX files, .gz or raw (default: $ADVGAP_DATA_DIR, else the bundled copy)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    robust.add_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if robust.requested(args):
        if args.fgsm is not None:
            raise ConfigError("--fgsm and --robust exclude each other (--robust evaluates FGSM at its own radii)")
        return robust.run(args)
    result = evaluate(args.model, DEFAULT_FGSM_DELTA if args.fgsm is None else args.fgsm, args.data_dir)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(f"model {result.model}: {result.n} MNIST test images")
        print(f"  clean accuracy          {100 * result.clean_accuracy:6.2f}%")
        print(f"  FGSM δ={result.fgsm_delta:<6g} accuracy {100 * result.fgsm_accuracy:6.2f}%")
    return 0
