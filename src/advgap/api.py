"""advgap's public Python API, re-exported by `import advgap` (see the README's "Python API").

One loader (`load_network`), one network type (`Network`), and five questions: the certified closest adversary
(`min_distance`), robustness at a radius (`check_robust`), a VNN-LIB property (`verify_vnnlib`; `advgap.verify` is
the engine package), the closest adversary a first-order attack finds (`closest_attack`) and the robust accuracy of
a set of images per radius, by attack and proven (`robust_accuracy`). δ is an L∞ radius in
the units of the inputs ([0, 1] pixels: 1/255 is one grey level); "adversarial for target t" means
logit_t ≥ logit_label (`advgap.adversarial`) everywhere. Images may be given flat or in the network's input shape, e.g.
(1, 28, 28), or as a batch (B, 1, 28, 28).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advgap.errors import SpecError
from advgap.formats.network import Network
from advgap.models.loader import load_network
from advgap.verify import api as _verify
from advgap.verify.network import ReluNet
from advgap.verify.result import CheckResult, DistanceResult

if TYPE_CHECKING:
    from torch import nn

    from advgap.attacks.base import AttackResult
    from advgap.experiment.robust import RobustAccuracy
    from advgap.experiment.vnncomp import Outcome

__all__ = ["Network", "check_robust", "closest_attack", "load_network", "min_distance", "mnist", "robust_accuracy",
           "verify_vnnlib"]


def mnist(split: str = "test", data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images as float32 (N, 1, 28, 28) in [0, 1] and labels as int64 (N,) ("train" or "test" split).

    data_dir: a folder with the four official .gz files; by default the copy bundled with advgap.
    """
    from advgap.data.mnist import mnist_arrays

    images, labels = mnist_arrays(split, data_dir)
    return images.reshape(-1, 1, 28, 28), labels


def _relu_net(net: Network | ReluNet) -> ReluNet:
    if isinstance(net, Network):
        return net.net
    if isinstance(net, ReluNet):
        return net
    raise SpecError(f"expected a Network from advgap.load_network (or a ReluNet), got {type(net).__name__}")


def min_distance(net: Network | ReluNet, x: Any, label: int, target: int | None = None, *, timeout: float = 60.0,
                 tol: float = 1e-3, engine: str = "native", workers: int = 1) -> DistanceResult:
    """The certified minimal L∞ distance from image x to an adversarial point (for `target`, or for any class).

    Returns a DistanceResult: `lower` proven, `upper` reached by the replayed `witness`; status EXACT when
    upper − lower <= tol, else the certified interval reached within `timeout` seconds.
    """
    return _verify.min_linf_distance(_relu_net(net), np.asarray(x, dtype=np.float64).reshape(-1), int(label), target,
                                     timeout, tol, engine, workers)


def check_robust(net: Network | ReluNet, x: Any, label: int, delta: float, target: int | None = None, *,
                 timeout: float = 60.0, engine: str = "native") -> CheckResult:
    """Is every point within L∞ distance `delta` of x (in [0, 1]) non-adversarial? ROBUST is a proof."""
    return _verify.check_robust(_relu_net(net), np.asarray(x, dtype=np.float64).reshape(-1), int(label), delta,
                                target, timeout, engine)


def verify_vnnlib(net: Network, vnnlib: str | Path, *, timeout: float = 60.0) -> Outcome:
    """Answer a VNN-LIB property on `net` in VNN-COMP's words (holds / violated / timeout / unknown).

    A `violated` answer carries the counterexample, replayed through the original model (onnxruntime for ONNX
    files, the module for torch). `timeout` counts from the call: reading the property is part of it.
    """
    from advgap.experiment.vnncomp import answer

    if not isinstance(net, Network):
        raise SpecError(f"verify needs a Network from advgap.load_network, got {type(net).__name__}")
    return answer(net, vnnlib, time.monotonic() + timeout)


def closest_attack(model: Network | nn.Module, x: Any, labels: Any, targets: Any | None = None, *,
                   attack: str = "pgd", tol: float = 1e-3, steps: int | None = None, seed: int = 0) -> AttackResult:
    """Per sample, the smallest δ at which `attack` ("fgsm", "pgd" or "fmn") finds an adversarial point.

    model: a Network (run as a float64 torch copy) or a torch module taking x's shape. x: a batch, flat (B, n) or
    image-shaped (B, C, H, W), numpy or torch; labels and targets: (B,) classes (targets None: untargeted).
    steps: PGD steps per attempt or FMN iterations (their defaults when None). The result's x_adv has x's shape;
    delta is inf where the attack found nothing up to δ = 1.
    """
    import torch

    from advgap.attacks.base import AttackResult
    from advgap.attacks.registry import AttackSettings, get_attack
    from advgap.models.torchnet import parameter_dtype, to_torch

    method = get_attack(attack)
    if isinstance(model, Network):
        module, dtype = to_torch(model.net, torch.float64), torch.float64
    else:
        module, dtype = model, parameter_dtype(model)
    batch = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(dtype)
    if batch.ndim < 2:
        raise SpecError(f"closest_attack takes a batch of inputs, got shape {tuple(batch.shape)}")
    shape = tuple(batch.shape[1:])
    flat = batch.reshape(batch.shape[0], -1)
    if len(shape) > 1 and not isinstance(model, Network):
        module = torch.nn.Sequential(torch.nn.Unflatten(1, shape), module)
    ys = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    ts = None if targets is None else torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    defaults = AttackSettings()
    settings = AttackSettings(tol=tol, seed=seed, pgd_steps=steps or defaults.pgd_steps,
                              fmn_steps=steps or defaults.fmn_steps)
    result = method.run(module, flat, ys, ts, settings)
    return AttackResult(result.x_adv.reshape(batch.shape), result.success, result.predicted, result.delta)


def robust_accuracy(net: Network | ReluNet, x: Any, labels: Any, deltas: Sequence[float], *, exact: bool = False,
                    timeout: float = 60.0, workers: int = 1, seed: int = 0) -> RobustAccuracy:
    """Per radius in `deltas`, which of the images x (a batch, flat or image-shaped, in [0, 1]) are robust according
    to FGSM, PGD, FMN and AutoAttack (ART's APGD-CE, APGD-T, Square), and, with `exact`, proven robust.

    Returns a RobustAccuracy: per image and radius verdicts, `robust(attack)`, `proven()` and `not_refuted()` counts
    (proven <= true <= not refuted; a misclassified image is not robust), `as_dict()` with the fractions of all
    images. `timeout`: engine seconds per image over all radii; `workers`: processes.
    """
    from advgap.experiment.robust import Settings
    from advgap.experiment.robust import robust_accuracy as run

    settings = Settings(tuple(sorted(deltas)), exact=exact, timeout=timeout, seed=seed)
    return run(_relu_net(net), np.asarray(x, dtype=np.float64), np.asarray(labels, dtype=np.int64), settings,
               workers=workers)
