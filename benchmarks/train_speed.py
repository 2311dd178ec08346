"""Adversarial training speed: autograd (reference) vs closed-form attack, side by side in one run.

    .venv/bin/python benchmarks/train_speed.py [--batches 200] [--threads 1]

Both trainers start from the same net and seed on the paper profile (δ=0.3, 40 attack steps, batch 64). They run
in alternating blocks so that a machine shared with other work slows both alike; the table shows the median
ms/batch over the blocks. Before timing, it checks that both paths produce the same weights on the same batches.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from advgap.data.mnist import mnist_arrays
from advgap.models.torchnet import from_torch, make_mlp
from advgap.models.train import PROFILES, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200, help="timed batches per path (default 200)")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks (default 10)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    init = from_torch(make_mlp())
    data = mnist_arrays("train")
    paper = PROFILES["paper"]
    trainers = {name: Trainer("adversarial", paper, 0, data, init=init, fast=fast)
                for name, fast in (("autograd (reference)", False), ("closed form", True))}
    for trainer in trainers.values():
        for _ in range(3):
            trainer.step()
    same = all(torch.equal(a, b) for a, b in zip(*(t.model.parameters() for t in trainers.values()), strict=True))
    per_block = max(1, args.batches // args.blocks)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.blocks):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            for _ in range(per_block):
                trainer.step()
            times[name].append((time.perf_counter() - start) / per_block * 1e3)
    ref = statistics.median(times["autograd (reference)"])
    print(f"adversarial training, paper profile (784-50-10, batch 64, 40 attack steps), {args.threads} thread(s), "
          f"{args.blocks} x {per_block} batches per path; identical weights after 3 batches: {same}")
    print(f"| {'attack gradient':22s} | {'ms/batch (median)':>17s} | {'min':>6s} | {'max':>6s} | {'speed-up':>8s} |")
    print(f"|{'-' * 24}|{'-' * 19}:|{'-' * 7}:|{'-' * 7}:|{'-' * 9}:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name:22s} | {med:17.2f} | {min(ts):6.2f} | {max(ts):6.2f} | {ref / med:7.2f}x |")


if __name__ == "__main__":
    main()
