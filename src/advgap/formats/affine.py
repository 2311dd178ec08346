"""Affine tensors of the ONNX import: lazy linear maps from a layer's base, multiplied out one layer at a time.

Every tensor that depends on the network input is affine in the current *base* — the network input, or the
outputs of the latest ReLU layer: `Affine(op, const, depth)`. `op` is a graph of linear operators (Conv, Pad, Gemm,
Reshape, ...) whose one leaf is the base, `const` the tensor's value where the base is 0. Nothing is multiplied out
until a layer closes (a Relu, a max-pool level, the network output): `layer_matrix` then computes that layer's
matrix from its smaller side — identity rows of the base pushed forward through the operators, or identity rows of
the output pulled back through their adjoints — in chunks of bounded memory, kept sparse (CSR) when the first chunk
is (a convolution's matrix, a max-pool tree level). The import thus costs about what the layers it produces cost,
never a square matrix of a wide feature map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from advgap.verify.network import SPARSE_DENSITY, SPARSE_MIN_ENTRIES, Weight, weight_bytes

CHUNK_BYTES = 256 * 2**20  # working memory of one chunk of rows in `layer_matrix`
MAX_LAYER_BYTES = 2 * 2**30  # the layers of one network together, with any working matrix built beside them


class NodeError(Exception):
    """Raised while interpreting one ONNX node; the importer turns it into a ModelFormatError naming the node."""


class LinOp:
    """A linear operator on batches: `forward(*xs)` maps arrays (rows, *parent.shape) to (rows, *shape), and
    `adjoint(g)` maps (rows, *shape) back to one array per parent. A LinOp without parents is a base."""

    __slots__ = ("adjoint", "forward", "parents", "shape")

    def __init__(
        self,
        shape: tuple[int, ...],
        parents: tuple[LinOp, ...] = (),
        forward: Callable[..., np.ndarray] | None = None,
        adjoint: Callable[[np.ndarray], tuple[np.ndarray, ...]] | None = None,
    ) -> None:
        self.shape, self.parents, self.forward, self.adjoint = shape, parents, forward, adjoint

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Affine:
    """A tensor `op(base) + const`, affine in the base of layer `depth` (0: the network input)."""

    op: LinOp
    const: np.ndarray
    depth: int

    @property
    def shape(self) -> tuple[int, ...]:
        return self.const.shape


def base(size: int, depth: int) -> Affine:
    """The base of layer `depth` itself: a vector of `size` variables."""
    return Affine(LinOp((size,)), np.zeros(size), depth)


def lift(x: Affine, forward: Callable[[np.ndarray], np.ndarray], adjoint: Callable[[np.ndarray], np.ndarray],
         offset: np.ndarray | float = 0.0) -> Affine:
    """`forward(x) + offset` for a linear `forward` on batches (leading axis: rows) with adjoint `adjoint`."""
    const = forward(x.const[None])[0] + offset
    op = LinOp(const.shape, (x.op,), forward, lambda g: (adjoint(g),))
    return Affine(op, np.asarray(const, dtype=np.float64), x.depth)


def reshape(x: Affine, shape: tuple[int, ...]) -> Affine:
    old = x.shape
    return lift(x, lambda v: v.reshape(v.shape[0], *shape), lambda g: g.reshape(g.shape[0], *old))


def broadcast(x: Affine, shape: tuple[int, ...]) -> Affine:
    """x broadcast to `shape` (numpy's rules, aligned on the right)."""
    if x.shape == shape:
        return x
    old = x.shape
    padded = (1,) * (len(shape) - len(old)) + old
    return lift(x, lambda v: np.broadcast_to(v.reshape(v.shape[0], *padded), (v.shape[0], *shape)),
                lambda g: unbroadcast(g, old))


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a batch (rows, *broadcast shape) back to (rows, *shape): the adjoint of broadcasting."""
    lead = g.ndim - 1 - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(1, 1 + lead)))
    axes = tuple(i + 1 for i, d in enumerate(shape) if d == 1 and g.shape[i + 1] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def combine(parts: list[Affine], forward: Callable[..., np.ndarray],
            adjoint: Callable[[np.ndarray], tuple[np.ndarray, ...]], offset: np.ndarray | float = 0.0) -> Affine:
    """`forward(*parts) + offset` for affine tensors of one depth and a linear `forward` with adjoint `adjoint`."""
    if len({p.depth for p in parts}) > 1:
        raise NodeError("combines tensors computed before and after a Relu (not a feed-forward chain)")
    const = forward(*(p.const[None] for p in parts))[0] + offset
    op = LinOp(const.shape, tuple(p.op for p in parts), forward, adjoint)
    return Affine(op, np.asarray(const, dtype=np.float64), parts[0].depth)


def matrix_map(matrix: Weight, x: Affine, offset: np.ndarray) -> Affine:
    """`matrix @ x.flatten() + offset` as a vector (matrix dense or sparse)."""
    flat = reshape(x, (x.const.size,))
    return lift(flat, lambda v: v @ matrix.T, lambda g: g @ matrix, offset)


def check_bytes(need: int, used: int = 0, what: str = "its layer needs") -> int:
    """`need` bytes; NodeError if they, or they beside `used` bytes, exceed the limit."""
    if need + used > MAX_LAYER_BYTES:
        beside = f" ({_size(need + used)} with the layers before it)" if used else ""
        raise NodeError(f"{what} {_size(need)}{beside}, limit {_size(MAX_LAYER_BYTES)}: too large for the verifier")
    return need


def check_dense(rows: int, cols: int, used: int = 0) -> int:
    """Bytes of a dense float64 (rows, cols) matrix, checked by `check_bytes`."""
    return check_bytes(8 * rows * cols, used, "its dense layer needs")


def _size(n_bytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes} B"


def _graph(op: LinOp) -> tuple[list[LinOp], LinOp, dict[LinOp, int]]:
    """The operators `op` depends on, parents before children; its base; how many times each node is used."""
    order: list[LinOp] = []
    uses: dict[LinOp, int] = {}
    seen: set[LinOp] = set()
    stack: list[tuple[LinOp, bool]] = [(op, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for parent in node.parents:
            uses[parent] = uses.get(parent, 0) + 1
            stack.append((parent, False))
    bases = [node for node in order if not node.parents]
    if len(bases) != 1:
        raise NodeError(f"depends on {len(bases)} bases (not a feed-forward chain)")
    return order, bases[0], uses


def layer_matrix(op: LinOp, used: int = 0) -> Weight:
    """The matrix (op.size, base size) of `op`, from its smaller side, in chunks of about CHUNK_BYTES: CSR when
    it is large and its first chunk at most SPARSE_DENSITY dense, else dense; `used`: bytes of the layers before
    it (see `check_bytes`, checked before a dense matrix is allocated and after each sparse chunk)."""
    order, leaf, uses = _graph(op)
    n_out, n_in = op.size, leaf.size
    rows = max(1, CHUNK_BYTES // (8 * sum(node.size for node in order)))
    by_rows = n_out <= n_in
    matrix: np.ndarray | None = None
    blocks: list[sparse.csr_array] = []
    held = 0
    for start in range(0, n_out if by_rows else n_in, rows):
        if by_rows:
            seed = _identity_rows(start, min(start + rows, n_out), n_out).reshape(-1, *op.shape)
            block = _pull_back(order, leaf, op, seed)
        else:
            seed = _identity_rows(start, min(start + rows, n_in), n_in)
            block = _push_forward(order, leaf, uses, seed).reshape(len(seed), -1).T
        if matrix is None and not blocks and not _thin(block, n_out * n_in):
            check_dense(n_out, n_in, used)
            matrix = np.empty((n_out, n_in))
        if matrix is None:
            blocks.append(sparse.csr_array(block))
            held += check_bytes(weight_bytes(blocks[-1]), used + held, "its sparse layer needs more than")
        elif by_rows:
            matrix[start : start + rows] = block
        else:
            matrix[:, start : start + rows] = block
    if matrix is not None:
        return matrix
    return sparse.vstack(blocks, format="csr") if by_rows else sparse.hstack(blocks, format="csr")


def _thin(block: np.ndarray, entries: int) -> bool:
    """Whether a matrix of `entries` entries whose first chunk is `block` should be stored sparse."""
    return entries >= SPARSE_MIN_ENTRIES and np.count_nonzero(block) <= SPARSE_DENSITY * block.size


def _identity_rows(start: int, stop: int, n: int) -> np.ndarray:
    seed = np.zeros((stop - start, n))
    seed[np.arange(stop - start), np.arange(start, stop)] = 1.0
    return seed


def _push_forward(order: list[LinOp], leaf: LinOp, uses: dict[LinOp, int], seed: np.ndarray) -> np.ndarray:
    values = {leaf: seed}
    left = dict(uses)
    for node in order:
        if node is leaf:
            continue
        values[node] = node.forward(*(values[p] for p in node.parents))
        for parent in node.parents:
            left[parent] -= 1
            if not left[parent]:
                del values[parent]
    return values[order[-1]]


def _pull_back(order: list[LinOp], leaf: LinOp, op: LinOp, seed: np.ndarray) -> np.ndarray:
    grads = {op: seed}
    for node in reversed(order):
        if node is leaf:
            break
        g = grads.pop(node)
        for parent, part in zip(node.parents, node.adjoint(g), strict=True):
            grads[parent] = grads[parent] + part if parent in grads else part
    return grads[leaf].reshape(len(seed), -1)


class Layers:
    """The (weight, bias) layers closed so far (weights dense or CSR), each followed by a ReLU in the ReluNet, and
    their bytes.

    `live` names the tensors of the current base that the graph still needs after the node being read (a residual
    connection's skip tensor): a layer that closes carries each across as pass-through neurons — relu(v) where v
    is a non-negative combination of ReLU outputs, else relu(v) and relu(−v), whose difference is v — and replaces
    it in `live` by its value over the new base.
    """

    def __init__(self) -> None:
        self.pairs: list[tuple[Weight, np.ndarray]] = []
        self.bytes = 0
        self.live: dict[str, Affine] = {}

    @property
    def depth(self) -> int:
        return len(self.pairs)

    def matrix(self, x: Affine) -> tuple[Weight, np.ndarray]:
        """x flattened to (W, b) over the current base, within the memory limit."""
        if x.depth != self.depth:
            raise NodeError("uses a tensor computed before an earlier Relu (not a feed-forward chain)")
        return layer_matrix(x.op, self.bytes), x.const.reshape(-1)

    def relu(self, weight: Weight, bias: np.ndarray) -> Affine:
        """Close the layer relu(weight @ base + bias), carrying the `live` tensors across; returns its outputs."""
        carried = list({id(v): v for v in self.live.values()}.values())
        rows, biases, parts = [weight], [bias], []
        width = len(bias)
        for v in carried:
            w_v, b_v = self.matrix(v)
            signed = self.depth == 0 or has_negative(w_v) or bool((b_v < 0).any())
            rows += [w_v, -w_v] if signed else [w_v]
            biases += [b_v, -b_v] if signed else [b_v]
            parts.append((width, len(b_v), signed))
            width += len(b_v) * (2 if signed else 1)
        stacked = weight if not carried else (
            sparse.vstack(rows, format="csr") if any(map(sparse.issparse, rows)) else np.vstack(rows))
        self.bytes += check_bytes(weight_bytes(stacked), self.bytes)
        self.pairs.append((stacked, np.concatenate(biases)))
        outputs = base(width, self.depth)
        rebuilt = {id(v): reshape(_pass_through(outputs, *part), v.shape) for v, part in zip(carried, parts,
                                                                                              strict=True)}
        self.live = {name: rebuilt[id(v)] for name, v in self.live.items()}
        return outputs if not carried else _window(outputs, 0, len(bias))


def has_negative(w: Weight) -> bool:
    """Whether some entry of w is negative."""
    return bool((w.data < 0).any() if sparse.issparse(w) else (w < 0).any())


def _window(x: Affine, start: int, size: int) -> Affine:
    """Elements start .. start + size − 1 of the vector x."""
    total = x.const.size

    def adjoint(g: np.ndarray) -> np.ndarray:
        out = np.zeros((g.shape[0], total))
        out[:, start : start + size] = g
        return out

    return lift(x, lambda v: v[:, start : start + size], adjoint)


def _pass_through(outputs: Affine, start: int, size: int, signed: bool) -> Affine:
    """A carried tensor over the layer's outputs: relu(v) alone, or relu(v) − relu(−v)."""
    positive = _window(outputs, start, size)
    if not signed:
        return positive
    negative = _window(outputs, start + size, size)
    return combine([positive, negative], lambda a, b: a - b, lambda g: (g, -g))
