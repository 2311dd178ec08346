"""Adversarial training speed: the textbook autograd loop vs advgap's two attack paths, side by side in one run.

    .venv/bin/python benchmarks/train_speed.py [--batches 200] [--blocks 10] [--threads N] [--hidden 100,100]

Three trainers start from the same net (784-50-10, or the MLP of `--hidden` sizes) and seed on the paper profile
(δ=0.3, 40 targeted FGSM steps, batch 64):
- naive loop: the textbook attack, `loss.backward()` at every step (weight gradients computed and thrown away),
  the baseline the issue names (≈ 21 ms per batch on 2 cores);
- autograd: advgap's reference path, `torch.autograd.grad` with respect to the input only;
- closed form: advgap's fast path, the input gradient written out by hand.
They run in alternating blocks, so that a machine shared with other work slows all alike; the table shows the median
ms per whole training step (attack + loss + backward + Adam) over the blocks. Before timing, it checks that all
paths produce the same weights, bit for bit, on the same batches.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from advgap.data.mnist import mnist_arrays
from advgap.models.torch_import import from_torch
from advgap.models.torchnet import make_mlp
from advgap.models.train import PROFILES, Trainer


def attack_naive(
    model: nn.Sequential, start: torch.Tensor, target: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
    alpha: float, steps: int,
) -> torch.Tensor:
    """Targeted iterated FGSM as tutorials write it: a full backward pass per step."""
    x_adv = start.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), target)
        model.zero_grad()
        loss.backward()
        x_adv = torch.min(torch.max(x_adv - alpha * x_adv.grad.sign(), lo), hi).detach()
    return x_adv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200, help="timed batches per path (default 200)")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks (default 10)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help=f"torch threads (default: all cores, {torch.get_num_threads()})")
    parser.add_argument("--hidden", default="50", help="hidden layer sizes, comma-separated (default: 50)")
    args = parser.parse_args()
    hidden = tuple(int(size) for size in args.hidden.split(","))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    init = from_torch(make_mlp(784, hidden, 10))
    data = mnist_arrays("train")
    paper = PROFILES["paper"]
    trainers = {
        "naive loop (baseline)": Trainer("adversarial", paper, 0, data, init=init, fast=False),
        "autograd (reference)": Trainer("adversarial", paper, 0, data, init=init, fast=False),
        "closed form": Trainer("adversarial", paper, 0, data, init=init, fast=True),
    }
    trainers["naive loop (baseline)"].attack = attack_naive
    for trainer in trainers.values():
        for _ in range(3):
            trainer.step()
    params = [list(t.model.parameters()) for t in trainers.values()]
    same = all(torch.equal(a, b) for other in params[1:] for a, b in zip(params[0], other, strict=True))
    per_block = max(1, args.batches // args.blocks)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.blocks):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            for _ in range(per_block):
                trainer.step()
            times[name].append((time.perf_counter() - start) / per_block * 1e3)
    base = statistics.median(times["naive loop (baseline)"])
    sizes = "-".join(str(n) for n in (784, *hidden, 10))
    print(f"adversarial training, paper profile ({sizes}, batch 64, 40 attack steps), {args.threads} thread(s), "
          f"{args.blocks} x {per_block} batches per path; identical weights after 3 batches: {same}")
    print(f"| {'attack gradient':22s} | {'ms/batch (median)':>17s} | {'min':>6s} | {'max':>6s} | {'speed-up':>8s} |")
    print(f"|{'-' * 24}|{'-' * 18}:|{'-' * 7}:|{'-' * 7}:|{'-' * 9}:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name:22s} | {med:17.2f} | {min(ts):6.2f} | {max(ts):6.2f} | {base / med:7.2f}x |")


if __name__ == "__main__":
    main()
