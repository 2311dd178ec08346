"""`advgap train vanilla|adversarial`: train a study net, resumable from checkpoints, and write it as a network file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from advgap.attacks.evaluate import accuracies
from advgap.cli.options import check_output, check_seed
from advgap.data.mnist import mnist_arrays
from advgap.errors import ConfigError
from advgap.models.bundled import save_with_onnx
from advgap.models.loader import load_network
from advgap.models.torchnet import to_torch
from advgap.models.train import KINDS, PROFILES, Trainer, get_profile

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train the vanilla or the adversarially trained MNIST net")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--profile", default="quick", choices=tuple(PROFILES), help="training length (default: quick)")
    p.add_argument(
        "--out", type=Path, help="network file to write, .onnx beside it (default: runs/<kind>-<profile>.npz)"
    )
    p.add_argument("--checkpoint-dir", type=Path, help="checkpoint here and resume from here")
    p.add_argument("--init", default=None, help="initial net for adversarial training (default: bundled vanilla)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, help="directory holding the four MNIST files")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest for these sizes)")
    p.add_argument("--reference-attack", action="store_true", help="use the autograd attack, not the closed form")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_seed(args.seed)
    if args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    profile = get_profile(args.profile)
    out = args.out or Path("runs") / f"{args.kind}-{profile.name}.npz"
    if out.suffix != ".npz":
        raise ConfigError(f"--out {out}: a network file must end in .npz")
    for path in (out, out.with_suffix(".onnx")):
        check_output(path, "--out", make_parents=True)
    if args.checkpoint_dir is not None:
        check_output(args.checkpoint_dir, "--checkpoint-dir", directory=True, make_parents=True)
    torch.set_num_threads(args.threads)
    init = None
    if args.kind == "adversarial":
        init = load_network(args.init or "vanilla").net
    trainer = Trainer(
        args.kind, profile, args.seed, mnist_arrays("train", args.data_dir), init=init,
        checkpoint_dir=args.checkpoint_dir, fast=not args.reference_attack,
    )
    result = trainer.run()
    inputs, labels = mnist_arrays("test", args.data_dir)
    meta = dict(result.meta)
    meta["init"] = args.init or ("vanilla" if args.kind == "adversarial" else None)
    clean, attacked = accuracies(to_torch(result.net), torch.from_numpy(inputs), torch.from_numpy(labels), 0.2)
    meta["test_accuracy_clean"] = round(clean, 4)
    meta["test_accuracy_fgsm_0.2"] = round(attacked, 4)
    onnx_path = save_with_onnx(out, result.net, meta)
    print(
        f"{args.kind} ({profile.name}): {result.meta['batches']} batches in {result.meta['train_time_s']:.0f} s; "
        f"test accuracy clean {meta['test_accuracy_clean']:.4f}, FGSM δ=0.2 {meta['test_accuracy_fgsm_0.2']:.4f}; "
        f"wrote {out} and {onnx_path}"
    )
    return 0
