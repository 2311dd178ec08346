"""Vanilla and adversarial training of the study's MNIST nets (MLPs of any depth, ConvSmall), resumable and
bit-reproducible.

Vanilla: cross-entropy, Adam (lr 1e-4), batches of 64. Adversarial: starts from a vanilla net; every batch is
attacked with targeted iterated FGSM (random target != label, uniform random start in the δ-box, `attack_steps`
steps of size α = step_factor·δ/attack_steps = 2.5·δ/40 by default, each step clipped to the δ-box and [0, 1]), and
the loss is CE(clean) + CE(adv) + logit_weight · pairing(logits(clean), logits(adv)). The study gives no α; 2.5·δ/steps
is the usual PGD choice (the walk can cross the box 2.5 times).

Logit pairing ("L2 loss" in adversarial logit pairing) is either `squared`: the mean over batch and logits of the
squared difference (ALP's mean squared error), or `norm`: the batch mean of the difference's L2 norm. With `norm`
and δ = 0.3 from the first batch the 784-50-10 net collapses to a constant predictor with dead ReLUs (the norm's
gradient has unit length however small the difference, and a constant output zeroes the term); it trains only
with a δ warm-up. With `squared` it trains from the first batch, as the study did.

Reproducibility: the model is initialised after `torch.manual_seed(seed)`; the data order of epoch e is the
permutation drawn by `numpy.random.default_rng([seed, e])` (so it depends on the batch counter only); the attack
draws its targets and starts from one `torch.Generator` seeded with `seed`. A checkpoint holds the model, the
optimizer, the generator state, the batch counter and the time spent, so a resumed run ends with the same weights,
bit for bit, as an uninterrupted one.

Two attack paths: `attack_autograd` (reference, any model, e.g. ConvSmall) and `attack_closed_form` (MLPs of any
depth: the input gradient of the targeted CE written out by hand with the same kernels autograd uses, several
times faster, the same result bit for bit).
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from advgap.errors import ConfigError
from advgap.files import atomic_write
from advgap.models.profile import Profile
from advgap.models.torch_import import from_torch
from advgap.models.torchnet import describe, make_model, to_torch
from advgap.verify.network import ReluNet

log = logging.getLogger(__name__)

KINDS = ("vanilla", "adversarial")


PROFILES = {
    "paper": Profile("paper", 60_000, ((0.3, 250_000), (0.1, 250_000))),
    "short": Profile("short", 60_000, ((0.3, 50_000), (0.1, 50_000))),
    "quick": Profile("quick", 3_000, ((0.3, 3_000), (0.1, 3_000))),
    "tiny": Profile("tiny", 40, ((0.3, 20), (0.1, 20)), hidden=(16,), attack_steps=10),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown training profile {name!r} (choose from {', '.join(PROFILES)})") from None


@dataclass(frozen=True)
class TrainResult:
    """The trained net (or the net so far when stopped early), its metadata, whether training is complete, and the
    torch model itself (a conv net keeps its layers there)."""

    net: ReluNet
    meta: dict[str, Any]
    finished: bool
    model: nn.Module


class BatchSource:
    """Batches of (images as float32 in [0, 1], flattened; labels as int64) in a seeded order per epoch."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
        self.x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
        self.y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = len(inputs) // batch_size
        self._epoch = -1
        self._perm = torch.empty(0, dtype=torch.int64)

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, pos = divmod(index, self.per_epoch)
        if epoch != self._epoch:
            self._perm = torch.from_numpy(np.random.default_rng([self.seed, epoch]).permutation(len(self.y)))
            self._epoch = epoch
        idx = self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]
        return self.x[idx], self.y[idx]


def attack_start(
    x: torch.Tensor, y: torch.Tensor, delta: float, n_classes: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random targets != labels, the box [lo, hi] = [x-δ, x+δ] ∩ [0, 1] and a uniform random start in it."""
    target = (y + torch.randint(1, n_classes, y.shape, generator=gen)) % n_classes
    lo = (x - delta).clamp_(min=0.0)
    hi = (x + delta).clamp_(max=1.0)
    noise = torch.rand(x.shape, generator=gen, dtype=x.dtype)
    start = (x + (noise * 2.0 - 1.0) * delta).clamp_(lo, hi)
    return target, lo, hi, start


def attack_autograd(
    model: nn.Sequential, start: torch.Tensor, target: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
    alpha: float, steps: int,
) -> torch.Tensor:
    """Targeted iterated FGSM with autograd: x ← clip(x - α·sign(∇x CE(f(x), target)), lo, hi), `steps` times."""
    x_adv = start.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), target)
        (grad,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = torch.clamp(x_adv - alpha * grad.sign(), lo, hi)
    return x_adv.detach()


def attack_closed_form(
    model: nn.Sequential, start: torch.Tensor, target: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
    alpha: float, steps: int,
) -> torch.Tensor:
    """`attack_autograd` for an MLP (Linear, ReLU, …, Linear) of any depth, with the input gradient written out
    and buffers reused.

    For targeted CE, dL/dz ∝ softmax(z) − onehot(t), and backwards through each layer dL/dh = dL/dz @ W masked by
    [h > 0]; only the sign is used, so the 1/batch factor is dropped (a power of two: the signs are unchanged, bit
    for bit). Softmax is computed as exp(log_softmax(z)) and the ReLU mask applied with `threshold_backward`, as
    autograd does.
    """
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        weights = [lin.weight.detach() for lin in linears]
        biases = [lin.bias.detach() for lin in linears]
        transposed = [w.t() for w in weights]
        n = start.shape[0]
        x_adv = start.clone()
        outs = [torch.empty(n, w.shape[0], dtype=start.dtype) for w in weights]  # hidden activations, then logits
        grads = [torch.empty(n, w.shape[1], dtype=start.dtype) for w in weights]  # gradient wrt each layer's input
        onehot = F.one_hot(target, weights[-1].shape[0]).to(start.dtype)
        threshold_backward = torch.ops.aten.threshold_backward
        last = len(weights) - 1
        for _ in range(steps):
            h = x_adv
            for k in range(last + 1):
                torch.addmm(biases[k], h, transposed[k], out=outs[k])
                if k < last:
                    outs[k].relu_()
                h = outs[k]
            g = torch.log_softmax(outs[last], 1).exp_().sub_(onehot)
            for k in range(last, -1, -1):
                torch.mm(g, weights[k], out=grads[k])
                g = threshold_backward(grads[k], outs[k - 1], 0) if k > 0 else grads[0]
            x_adv.sub_(g.sign_(), alpha=alpha)
            x_adv.clamp_(lo, hi)
    return x_adv


def logit_pairing_loss(clean: torch.Tensor, adv: torch.Tensor, kind: str) -> torch.Tensor:
    """`squared`: mean of (clean - adv)² over batch and logits; `norm`: batch mean of ||clean - adv||_2."""
    if kind == "squared":
        return (clean - adv).square().mean()
    if kind == "norm":
        return torch.linalg.vector_norm(clean - adv, dim=1).mean()
    raise ConfigError(f"unknown logit pairing {kind!r} (choose from squared, norm)")


def is_mlp(model: nn.Sequential) -> bool:
    """Whether `model` is Linear, ReLU, …, Linear (what `attack_closed_form` computes)."""
    kinds = [type(m) for m in model]
    return len(kinds) % 2 == 1 and all(kind is (nn.Linear if k % 2 == 0 else nn.ReLU) for k, kind in enumerate(kinds))


class Trainer:
    """One training run (vanilla or adversarial) of one profile and seed; `run` trains to a batch count."""

    def __init__(
        self, kind: str, profile: Profile, seed: int, train_data: tuple[np.ndarray, np.ndarray], *,
        init: ReluNet | nn.Module | None = None, checkpoint_dir: str | Path | None = None, fast: bool = True,
    ):
        """`train_data`: inputs (N, 784) float32 in [0, 1] and labels (N,), e.g. `mnist_arrays("train")`.

        `init`: the net adversarial training starts from, a ReluNet (copied into an MLP) or a torch model of the
        profile's architecture (copied, e.g. the vanilla trainer's `model`)."""
        if kind not in KINDS:
            raise ConfigError(f"unknown training kind {kind!r} (choose from {', '.join(KINDS)})")
        if kind == "adversarial" and init is None:
            raise ConfigError("adversarial training starts from a trained net: give an initial net")
        self.kind, self.profile, self.seed = kind, profile, seed
        torch.manual_seed(seed)
        if init is None:
            self.model = make_model(profile.arch, profile.hidden)
        elif isinstance(init, nn.Module):
            self.model = copy.deepcopy(init).train()
        else:
            if profile.arch != "mlp":
                raise ConfigError(f"a {profile.arch} net starts from a torch model of its own architecture, "
                                  "not from a dense network file")
            if init.n_inputs != 784 or init.n_outputs != 10:
                raise ConfigError(f"initial net is {init.n_inputs}-...-{init.n_outputs}, training needs 784-...-10")
            self.model = to_torch(init).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=profile.lr)
        self.attack_gen = torch.Generator().manual_seed(seed)
        self.batch = 0
        self.elapsed_s = 0.0
        self.attack = attack_closed_form if fast and is_mlp(self.model) else attack_autograd
        self.data = BatchSource(*train_data, profile.batch_size, seed)
        self.total = profile.total_batches(kind)
        self.checkpoint_path = (
            Path(checkpoint_dir) / f"{kind}-{profile.name}-seed{seed}.pt" if checkpoint_dir is not None else None
        )
        if self.checkpoint_path is not None and self.checkpoint_path.is_file():
            self._restore(self.checkpoint_path)

    @property
    def fast(self) -> bool:
        """Whether the attack is the closed-form one (`fast` was asked for and the net is an MLP)."""
        return self.attack is attack_closed_form

    def _state(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "profile": asdict(self.profile), "seed": self.seed, "batch": self.batch,
            "elapsed_s": self.elapsed_s, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "attack_gen": self.attack_gen.get_state(),
        }

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically (temporary file, then rename)."""
        assert self.checkpoint_path is not None
        with atomic_write(self.checkpoint_path) as fh:
            torch.save(self._state(), fh)

    def _restore(self, path: Path) -> None:
        try:
            state = torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError) as exc:
            raise ConfigError(f"{path}: unreadable checkpoint ({exc})") from exc
        if (state["kind"], state["profile"], state["seed"]) != (self.kind, asdict(self.profile), self.seed):
            raise ConfigError(f"{path}: checkpoint belongs to another run (kind, profile or seed differ)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.attack_gen.set_state(state["attack_gen"])
        self.batch, self.elapsed_s = state["batch"], state["elapsed_s"]
        log.info("resumed %s from %s at batch %d", self.kind, path, self.batch)

    def step(self) -> float:
        """Train on the next batch; return its loss."""
        x, y = self.data.batch(self.batch)
        if self.kind == "vanilla":
            loss = F.cross_entropy(self.model(x), y)
        else:
            delta = self.profile.delta_at(self.batch)
            target, lo, hi, start = attack_start(x, y, delta, 10, self.attack_gen)
            alpha = self.profile.alpha_at(delta)
            x_adv = self.attack(self.model, start, target, lo, hi, alpha, self.profile.attack_steps)
            logits = self.model(torch.cat([x, x_adv]))
            clean, adv = logits[: len(x)], logits[len(x) :]
            loss = (
                F.cross_entropy(clean, y) + F.cross_entropy(adv, y)
                + self.profile.logit_weight * logit_pairing_loss(clean, adv, self.profile.logit_pairing)
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.batch += 1
        return loss.item()

    def run(self, stop_at: int | None = None, progress: bool = True) -> TrainResult:
        """Train until batch `stop_at` (default: the end of the profile), checkpointing as configured."""
        stop = self.total if stop_at is None else min(stop_at, self.total)
        bar = tqdm(
            total=self.total, initial=self.batch, desc=f"{self.kind} ({self.profile.name})", unit="batch",
            file=sys.stderr, disable=not progress, mininterval=1.0 if sys.stderr.isatty() else 60.0,
        )
        last_save = start = time.monotonic()
        base_elapsed = self.elapsed_s
        with bar:
            while self.batch < stop:
                loss = self.step()
                bar.update(1)
                if self.batch % 100 == 0:
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                now = time.monotonic()
                self.elapsed_s = base_elapsed + now - start
                if self.checkpoint_path is not None and now - last_save >= self.profile.checkpoint_every_s:
                    self.save_checkpoint()
                    last_save = now
        if self.checkpoint_path is not None:
            self.save_checkpoint()
        return TrainResult(from_torch(self.model, (784,)), self.meta(), self.batch >= self.total, self.model)

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "architecture": describe(self.model), "kind": self.kind, "profile": asdict(self.profile), "seed": self.seed,
            "batches": self.batch, "train_time_s": round(self.elapsed_s, 1), "torch_version": torch.__version__,
        }
        if self.kind == "adversarial":
            meta["attack"] = {
                "method": "targeted iterated FGSM, random target and start",
                "steps": self.profile.attack_steps,
                "alpha": f"{self.profile.step_factor} * delta / {self.profile.attack_steps}",
                "closed_form_gradient": self.fast,
            }
        return meta
