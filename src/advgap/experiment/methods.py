"""The four distances of the experiment as store rows: FGSM and PGD bisection, FMN, and the exact engine.

Attacks run on a float64 torch copy of the net, so their success check agrees with the verifier's float64 replay.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from advgap import __version__
from advgap.attacks.evaluate import DEFAULT_FGSM_DELTA, accuracies
from advgap.attacks.registry import AttackSettings, get_attack
from advgap.experiment.config import RunConfig
from advgap.experiment.store import ModelRow, ResultRow, RowStatus
from advgap.models.torchnet import to_torch
from advgap.verify.api import min_linf_distance
from advgap.verify.network import ReluNet

ATTACK_ENGINE = f"advgap.attacks (torch {torch.__version__})"


def torch_net(net: ReluNet) -> nn.Module:
    """The float64 torch copy of `net` that the attacks run on."""
    return to_torch(net, torch.float64)


def attack_rows(method: str, model_net: nn.Module, model: str, images: np.ndarray, x: np.ndarray, labels: np.ndarray,
                targets: np.ndarray, config: RunConfig, seed: int) -> list[ResultRow]:
    """One row per (images[k], targets[k]), all pairs in one batch.

    delta is the L∞ distance ‖x_adv − x‖∞ of the adversarial point the method found — for the bisections at most
    (and nearly always equal to) the smallest δ that succeeded, for FMN its best norm — or None where the method
    found no adversarial point (up to δ = 1).
    """
    start = time.perf_counter()
    xs = torch.from_numpy(np.asarray(x, dtype=np.float64))
    ys = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    ts = torch.from_numpy(np.asarray(targets, dtype=np.int64))
    params = config.attack_params
    settings = AttackSettings(tol=config.tol, pgd_steps=params.pgd_steps, fmn_steps=params.fmn_steps, seed=seed)
    result = get_attack(method).run(model_net, xs, ys, ts, settings)
    seconds = (time.perf_counter() - start) / len(images)
    perturbations = (result.x_adv - xs).numpy()
    rows = []
    for k, (image, target) in enumerate(zip(images, targets, strict=True)):
        found = math.isfinite(float(result.delta[k]))
        rows.append(ResultRow(
            model=model, image=int(image), target=int(target), method=method,
            delta=float(np.abs(perturbations[k]).max()) if found else None,
            status=RowStatus.FOUND if found else RowStatus.NOT_FOUND,
            seconds=seconds, engine=ATTACK_ENGINE, version=__version__,
            perturbation=perturbations[k] if found else None,
        ))
    return rows


def exact_row(net: ReluNet, model: str, image: int, x: np.ndarray, label: int, target: int,
              config: RunConfig) -> ResultRow:
    """The exact minimal δ towards `target` from the configured engine, as a row (delta = proven upper end)."""
    result = min_linf_distance(net, x, label, target, config.timeout, config.tol, config.engine)
    status = RowStatus(result.status.value)
    return ResultRow(
        model=model, image=image, target=target, method="exact",
        delta=result.upper if math.isfinite(result.upper) else None,
        lower=result.lower, upper=result.upper, status=status, seconds=result.seconds,
        engine=result.engine, version=__version__,
        perturbation=None if result.witness is None else np.asarray(result.witness, np.float64) - x,
    )


def model_row(name: str, sha256: str, meta: dict, net: ReluNet, pixels: np.ndarray, labels: np.ndarray) -> ModelRow:
    """The model's store record with its accuracy on all of `pixels`: clean and under untargeted FGSM at δ = 0.2;
    its metadata gains `relu_layers`, the hidden sizes of the net as verified."""
    xs = torch.from_numpy(np.asarray(pixels, dtype=np.float64))
    ys = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    clean, robust = accuracies(torch_net(net), xs, ys, DEFAULT_FGSM_DELTA)
    verified = {**meta, "relu_layers": list(net.hidden_sizes)}  # the depth the report orders nets by
    return ModelRow(name, sha256, verified, clean, robust, DEFAULT_FGSM_DELTA, len(labels))
