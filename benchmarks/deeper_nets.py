"""The exact engine on deeper and convolutional MNIST nets: the study's wish for future work.

    .venv/bin/python benchmarks/deeper_nets.py [--nets mlp-50 mlp-100x2 ...] [--n 50] [--timeout 60]
        [--adv-delta 0.1] [--cache runs/deeper]

Each net is trained here with plain torch (Adam 1e-3, batch 128, cross-entropy; with --adv-delta, on untargeted
PGD examples of that radius, 10 steps), written as ONNX with `onnx.helper`, and imported through advgap's ONNX
reader (which checks the import against onnxruntime). Trained nets are cached in --cache. Then the certified
minimal L∞ distance (all targets, tolerance 1e-3) is computed for the first N correctly classified test images;
the table shows how many finished exactly within the time limit and how long they took.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from advgap.attacks.gradient import pgd
from advgap.data.mnist import mnist_arrays
from advgap.formats.onnx_import import load_onnx
from advgap.models.torchnet import make_mlp
from advgap.verify.api import min_linf_distance
from advgap.verify.result import DistanceStatus


def conv_small() -> nn.Sequential:
    """ERAN's ConvSmall shape: conv 16×4×4/2, conv 32×4×4/2, dense 100, dense 10."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=2), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(800, 100), nn.ReLU(), nn.Linear(100, 10),
    )


ARCHITECTURES = {
    "mlp-50": lambda: make_mlp(784, (50,), 10),
    "mlp-100x2": lambda: make_mlp(784, (100, 100), 10),
    "mlp-256x2": lambda: make_mlp(784, (256, 256), 10),
    "mlp-100x4": lambda: make_mlp(784, (100, 100, 100, 100), 10),
    "conv-small": conv_small,
}


def is_conv(model: nn.Sequential) -> bool:
    return isinstance(model[0], nn.Conv2d)


def train(model: nn.Sequential, epochs: int, adv_delta: float, seed: int = 0) -> None:
    x, y = mnist_arrays("train")
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    shape = (-1, 1, 28, 28) if is_conv(model) else (-1, 784)
    flat_model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), *model) if is_conv(model) else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(128):
            xb, yb = x[idx], y[idx]
            if adv_delta > 0:
                xb = pgd(flat_model, xb, yb, adv_delta, steps=10, generator=gen).x_adv
            loss = F.cross_entropy(model(xb.reshape(shape)), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def to_onnx(model: nn.Sequential) -> onnx.ModelProto:
    """Conv2d, Linear, ReLU and Flatten layers as ONNX nodes (opset 13)."""
    nodes, inits = [], []
    current = "input"
    for k, layer in enumerate(model):
        out = "logits" if k == len(model) - 1 else f"t{k}"
        if isinstance(layer, nn.Conv2d):
            inits += [numpy_helper.from_array(layer.weight.detach().numpy(), f"W{k}"),
                      numpy_helper.from_array(layer.bias.detach().numpy(), f"b{k}")]
            nodes.append(helper.make_node("Conv", [current, f"W{k}", f"b{k}"], [out], strides=list(layer.stride),
                                          pads=[*layer.padding, *layer.padding]))
        elif isinstance(layer, nn.Linear):
            inits += [numpy_helper.from_array(layer.weight.detach().numpy(), f"W{k}"),
                      numpy_helper.from_array(layer.bias.detach().numpy(), f"b{k}")]
            nodes.append(helper.make_node("Gemm", [current, f"W{k}", f"b{k}"], [out], transB=1))
        elif isinstance(layer, nn.ReLU):
            nodes.append(helper.make_node("Relu", [current], [out]))
        elif isinstance(layer, nn.Flatten):
            nodes.append(helper.make_node("Flatten", [current], [out]))
        else:
            raise TypeError(f"no ONNX mapping for {layer}")
        current = out
    in_shape = [1, 1, 28, 28] if is_conv(model) else [1, 784]
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def trained_onnx(name: str, args: argparse.Namespace) -> Path:
    path = Path(args.cache) / f"{name}-adv{args.adv_delta:g}-ep{args.epochs}.onnx"
    if not path.is_file():
        torch.manual_seed(0)
        model = ARCHITECTURES[name]()
        start = time.monotonic()
        train(model, args.epochs, args.adv_delta)
        print(f"trained {name} in {time.monotonic() - start:.0f} s")
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(to_onnx(model), str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--n", type=int, default=50, help="correctly classified test images per net (default 50)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per image (default 60)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--adv-delta", type=float, default=0.0, help="PGD training radius (default 0: vanilla)")
    parser.add_argument("--cache", default="runs/deeper", help="directory of the trained nets")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    images, labels = mnist_arrays("test")
    rows = []
    for name in args.nets:
        net = load_onnx(trained_onnx(name, args)).net
        accuracy = float(np.mean(net.predict(images) == labels))
        chosen = np.flatnonzero(net.predict(images) == labels)[: args.n]
        results = [min_linf_distance(net, images[i], int(labels[i]), timeout=args.timeout) for i in chosen]
        seconds = sorted(r.seconds for r in results)
        exact = sum(r.status is DistanceStatus.EXACT for r in results)
        mean_px = 255 * statistics.mean(r.lower for r in results)
        rows.append((name, net, accuracy, exact, len(results), seconds, mean_px))
        print(f"{name}: {exact}/{len(results)} exact, median {statistics.median(seconds):.2f} s", flush=True)
    print(f"\nexact minimal L∞ distance, first {args.n} correctly classified test images, {args.timeout:g} s each, "
          f"tol 1e-3, training δ {args.adv_delta:g}")
    print("| net | hidden ReLUs | test acc | exact | median s | p90 s | max s | mean certified lower δ (px) |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for name, net, accuracy, exact, n, seconds, mean_px in rows:
        p90 = seconds[min(len(seconds) - 1, int(0.9 * len(seconds)))]
        print(f"| {name} | {sum(net.hidden_sizes)} | {100 * accuracy:.2f}% | {exact}/{n} | "
              f"{statistics.median(seconds):.2f} | {p90:.2f} | {seconds[-1]:.2f} | {mean_px:.2f} |")


if __name__ == "__main__":
    main()
