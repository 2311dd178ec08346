"""MNIST: IDX parsing, checksums, where the files come from, download."""

from advgap.data.mnist import load_mnist

__all__ = ["load_mnist"]
