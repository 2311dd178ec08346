"""`advgap train vanilla|adversarial|zoo`: train the study's nets or the zoo's, resumable from checkpoints, and
write each as a network file with its recipe, test accuracies and training time in its metadata."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advgap.attacks.evaluate import accuracies
from advgap.cli.options import check_output, check_seed
from advgap.data.mnist import mnist_arrays
from advgap.errors import ConfigError
from advgap.models.bundled import save_with_onnx
from advgap.models.loader import load_network
from advgap.models.torch_import import export_onnx
from advgap.models.torchnet import eval_mode
from advgap.models.train import KINDS, PROFILES, Trainer, TrainResult, get_profile
from advgap.models.zoo import ZOO, ZooNet, zoo_net

log = logging.getLogger(__name__)
DEFAULT_PROFILE = "quick"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train the study's MNIST nets or the zoo of deeper nets")
    p.add_argument("kind", choices=(*KINDS, "zoo"),
                   help="vanilla or adversarial study net, or zoo: each zoo net vanilla, then adversarially")
    p.add_argument("--profile", choices=tuple(PROFILES),
                   help=f"training length of a study net (default: {DEFAULT_PROFILE}; zoo nets have their own)")
    p.add_argument(
        "--out", type=Path, help="network file to write, .onnx beside it (default: runs/<kind>-<profile>.npz)"
    )
    p.add_argument("--nets", help="zoo: comma-separated zoo nets (default: " + ",".join(n.name for n in ZOO) + ")")
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "zoo",
                   help="zoo: folder for <net>.npz/.onnx and <net>-adv.* (default: runs/zoo)")
    p.add_argument("--checkpoint-dir", type=Path,
                   help="checkpoint here and resume from here (zoo default: OUT_DIR/checkpoints)")
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
    if args.kind == "zoo":
        return _train_zoo(args)
    if args.nets is not None:
        raise ConfigError("--nets is for `advgap train zoo`")
    profile = get_profile(args.profile or DEFAULT_PROFILE)
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
    init_name = args.init or ("vanilla" if args.kind == "adversarial" else None)
    _save(out, trainer.run(), {"init": init_name}, mnist_arrays("test", args.data_dir))
    return 0


def _train_zoo(args: argparse.Namespace) -> int:
    """Train each chosen zoo net vanilla, then adversarially from it; a net whose files exist is skipped."""
    for option in ("profile", "out", "init"):
        if getattr(args, option) is not None:
            raise ConfigError(f"--{option} is not for `advgap train zoo` (zoo nets have their own profiles)")
    nets = [zoo_net(name.strip()) for name in args.nets.split(",")] if args.nets else list(ZOO)
    checkpoints = args.checkpoint_dir or args.out_dir / "checkpoints"
    check_output(args.out_dir, "--out-dir", directory=True, make_parents=True)
    check_output(checkpoints, "--checkpoint-dir", directory=True, make_parents=True)
    torch.set_num_threads(args.threads)
    data, test = mnist_arrays("train", args.data_dir), mnist_arrays("test", args.data_dir)
    for spec in nets:
        vanilla = Trainer("vanilla", spec.profile, args.seed, data, checkpoint_dir=checkpoints)
        vanilla_result = vanilla.run()
        vanilla_file, adversarial_file = (_zoo_file(args.out_dir, spec, name) for name in spec.names)
        if not vanilla_file.is_file():
            _save(vanilla_file, vanilla_result, {"init": None}, test)
        if not adversarial_file.is_file():
            adversarial = Trainer("adversarial", spec.profile, args.seed, data, init=vanilla.model,
                                  checkpoint_dir=checkpoints, fast=not args.reference_attack)
            _save(adversarial_file, adversarial.run(), {"init": spec.name}, test)
    return 0


def _zoo_file(out_dir: Path, spec: ZooNet, name: str) -> Path:
    """Where zoo net `name` is written: `.npz` (and `.onnx` beside it) for an MLP, `.onnx` alone for a conv net."""
    return out_dir / f"{name}{'.npz' if spec.profile.arch == 'mlp' else '.onnx'}"


def _save(out: Path, result: TrainResult, extra: dict[str, Any], test: tuple[np.ndarray, np.ndarray]) -> None:
    """Measure test accuracy (clean, FGSM δ = 0.2) on `test` (inputs, labels), then write the net with its metadata
    and report it."""
    inputs, labels = test
    meta = {**result.meta, **extra}
    with eval_mode(result.model):
        clean, attacked = accuracies(result.model, torch.from_numpy(inputs), torch.from_numpy(labels), 0.2)
    meta["test_accuracy_clean"] = round(clean, 4)
    meta["test_accuracy_fgsm_0.2"] = round(attacked, 4)
    if out.suffix == ".npz":
        written = f"{out} and {save_with_onnx(out, result.net, meta)}"
    else:
        export_onnx(result.model, out, (784,), meta)
        written = str(out)
    print(
        f"{meta['kind']} {meta['architecture']} ({meta['profile']['name']}): {meta['batches']} batches in "
        f"{meta['train_time_s']:.0f} s; test accuracy clean {clean:.4f}, FGSM δ=0.2 {attacked:.4f}; wrote {written}",
        flush=True,
    )
