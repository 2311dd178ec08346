"""MNIST: IDX parsing, checksums, where the files come from, download."""

from advgap.data.download import download
from advgap.data.mnist import load_mnist, mnist_arrays, to_unit_float

__all__ = ["download", "load_mnist", "mnist_arrays", "to_unit_float"]
