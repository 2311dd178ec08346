"""The NNet text format (Reluplex / Marabou) read into, and written from, a ReluNet.

Layout after `//` header comments, comma-separated values, one record per line:
  numLayers, inputSize, outputSize, maxLayerSize
  layer sizes (numLayers + 1 values, input first)
  symmetric flag (unused)
  input minimums; input maximums
  means (one per input, then the output mean); ranges (one per input, then the output range)
  per layer: one line of weights per output neuron (its row), then one line per bias.
A reader computes y = range_out * net((x - mean) / range) + mean_out; the loader folds the input normalisation
into the first layer and the output de-normalisation into the last. The clipping of x to [min, max] that NNet
readers also apply is not part of the ReluNet: the two agree on inputs inside the file's [min, max].
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from advgap.errors import ModelFormatError
from advgap.files import atomic_write
from advgap.verify.network import ReluNet, dense


def read_nnet(path: str | Path) -> ReluNet:
    """Read an NNet file, normalisation folded in; ModelFormatError naming the file and line on any defect."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: cannot read NNet file ({exc})") from exc
    records = _records(text, path)

    def take(count: int | None, what: str) -> np.ndarray:
        try:
            lineno, values = next(records)
        except StopIteration:
            raise ModelFormatError(f"{path}: file ends before the {what}") from None
        if count is not None and len(values) != count:
            raise ModelFormatError(f"{path}, line {lineno}: {what} needs {count} values, found {len(values)}")
        return values

    header = take(4, "header line (numLayers, inputSize, outputSize, maxLayerSize)")
    n_layers = _count(header[0], path, "numLayers")
    sizes = [_count(s, path, "layer size") for s in take(n_layers + 1, "layer sizes")]
    if sizes[0] != _count(header[1], path, "inputSize") or sizes[-1] != _count(header[2], path, "outputSize"):
        raise ModelFormatError(f"{path}: layer sizes {sizes} disagree with the header {header[:3].tolist()}")
    take(None, "symmetric flag")
    take(sizes[0], "input minimums")
    take(sizes[0], "input maximums")
    means = take(sizes[0] + 1, "means")
    ranges = take(sizes[0] + 1, "ranges")
    if np.any(ranges == 0):
        raise ModelFormatError(f"{path}: a normalisation range is zero")
    layers = []
    for k in range(n_layers):
        w = np.stack([take(sizes[k], f"weights of layer {k}") for _ in range(sizes[k + 1])])
        b = np.concatenate([take(1, f"bias of layer {k}") for _ in range(sizes[k + 1])])
        layers.append((w, b))
    extra = next(records, None)
    if extra is not None:
        raise ModelFormatError(f"{path}, line {extra[0]}: unexpected data after the last layer")
    w0, b0 = layers[0]
    layers[0] = (w0 / ranges[:-1], b0 - w0 @ (means[:-1] / ranges[:-1]))
    wl, bl = layers[-1]
    layers[-1] = (wl * ranges[-1], bl * ranges[-1] + means[-1])
    try:
        return ReluNet.from_layers(layers)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path}: {exc}") from exc


def write_nnet(path: str | Path, net: ReluNet, comment: str = "written by advgap") -> None:
    """Write `net` as NNet (no normalisation: means 0, ranges 1, inputs in [0, 1]), atomically, exact floats."""
    path = Path(path)
    sizes = [net.n_inputs, *net.hidden_sizes, net.n_outputs]
    lines = [f"// {line}" for line in comment.splitlines()]
    lines += [
        _line([len(net.weights), net.n_inputs, net.n_outputs, max(sizes)]),
        _line(sizes),
        "0,",
        _line([0.0] * net.n_inputs),
        _line([1.0] * net.n_inputs),
        _line([0.0] * (net.n_inputs + 1)),
        _line([1.0] * (net.n_inputs + 1)),
    ]
    for w, b in zip(net.weights, net.biases, strict=True):
        lines += [_line(row) for row in dense(w).tolist()]
        lines += [_line([v]) for v in b.tolist()]
    with atomic_write(path) as fh:
        fh.write(("\n".join(lines) + "\n").encode("utf-8"))


def _line(values: list[float] | list[int]) -> str:
    return ",".join(repr(v) for v in values) + ","


def _records(text: str, path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """(line number, values) of every non-comment, non-blank line."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        fields = [f.strip() for f in stripped.split(",")]
        try:
            values = np.array([float(f) for f in fields if f], dtype=np.float64)
        except ValueError as exc:
            raise ModelFormatError(f"{path}, line {lineno}: {exc}") from exc
        if not np.isfinite(values).all():
            raise ModelFormatError(f"{path}, line {lineno}: NaN or inf value")
        yield lineno, values


def _count(value: float, path: Path, what: str) -> int:
    if value != int(value) or value < 1:
        raise ModelFormatError(f"{path}: {what} must be a positive integer, got {value}")
    return int(value)
