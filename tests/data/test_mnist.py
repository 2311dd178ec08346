import gzip
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from advgap.data.mnist import FILES, load_mnist, mnist_arrays, read_idx
from advgap.errors import DataError

TEST_FILES = [FILES[("test", "images")], FILES[("test", "labels")]]


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def test_split_dir(tmp_path, shared_dir) -> Path:
    """A private copy of the two official test-split .gz files."""
    for spec in TEST_FILES:
        shutil.copy(shared_dir / "mnist" / spec.gz_name, tmp_path / spec.gz_name)
    return tmp_path


@pytest.fixture
def raw_test_split_dir(tmp_path, shared_dir) -> Path:
    """The two official test-split files, uncompressed."""
    for spec in TEST_FILES:
        (tmp_path / spec.name).write_bytes(gzip.decompress((shared_dir / "mnist" / spec.gz_name).read_bytes()))
    return tmp_path


def test_read_idx_parses_gz_and_raw_alike(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(array))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), array)
    assert read_idx(tmp_path / "a.idx").shape == (2, 3, 4)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_truncated_names_file(tmp_path, compress):
    data = idx_bytes(np.zeros((5, 4), dtype=np.uint8))
    data = gzip.compress(data)[:-12] if compress else data[:-3]
    path = tmp_path / "short.idx"
    path.write_bytes(data)
    with pytest.raises(DataError, match=r"short.idx.*truncated"):
        read_idx(path)


def test_read_idx_wrong_magic_names_file(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 2) + b"\x00\x00")
    with pytest.raises(DataError, match=r"bad.idx.*magic"):
        read_idx(path)


def test_load_mnist_gz_matches_known_content(test_split_dir):
    images, labels = load_mnist("test", test_split_dir)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert set(np.unique(labels)) == set(range(10))
    assert images.max() == 255 and images.min() == 0


def test_load_mnist_raw_equals_gz(test_split_dir, raw_test_split_dir):
    gz_images, gz_labels = load_mnist("test", test_split_dir)
    raw_images, raw_labels = load_mnist("test", raw_test_split_dir)
    np.testing.assert_array_equal(gz_images, raw_images)
    np.testing.assert_array_equal(gz_labels, raw_labels)


def test_load_mnist_bundled_train_split():
    images, labels = load_mnist("train")
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)
    np.testing.assert_array_equal(labels[:5], [5, 0, 4, 1, 9])


def test_load_mnist_uses_env_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVGAP_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=re.escape(str(tmp_path))):
        load_mnist("test")


def test_missing_file_names_it(test_split_dir):
    (test_split_dir / TEST_FILES[1].gz_name).unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: file not found"):
        load_mnist("test", test_split_dir)


def test_truncated_gz_file_names_it(test_split_dir):
    path = test_split_dir / TEST_FILES[0].gz_name
    path.write_bytes(path.read_bytes()[:100000])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz.*truncated"):
        load_mnist("test", test_split_dir)


def test_wrong_checksum_gz_names_it(test_split_dir):
    path = test_split_dir / TEST_FILES[1].gz_name
    labels = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(labels[:-1] + bytes([(labels[-1] + 1) % 10])))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: md5 .* official gzip md5"):
        load_mnist("test", test_split_dir)


def test_wrong_checksum_raw_names_it(raw_test_split_dir):
    path = raw_test_split_dir / TEST_FILES[1].name
    data = bytearray(path.read_bytes())
    data[-1] = (data[-1] + 1) % 10
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: md5 .* official uncompressed md5"):
        load_mnist("test", raw_test_split_dir)


def test_wrong_magic_for_kind_names_it(raw_test_split_dir):
    """A well-formed labels file where the images should be is rejected by its magic number."""
    (raw_test_split_dir / TEST_FILES[0].name).write_bytes(idx_bytes(np.zeros(10000, dtype=np.uint8)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: IDX magic number 0x00000801, expected 0x00000803"):
        load_mnist("test", raw_test_split_dir)


def test_wrong_shape_names_it(raw_test_split_dir):
    (raw_test_split_dir / TEST_FILES[0].name).write_bytes(idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: shape \(10, 28, 28\)"):
        load_mnist("test", raw_test_split_dir)


def test_unknown_split():
    with pytest.raises(DataError, match=r"split 'valid'"):
        load_mnist("valid")


def test_mnist_arrays_are_unit_floats(test_split_dir):
    x, y = mnist_arrays("test", test_split_dir)
    images, labels = load_mnist("test", test_split_dir)
    assert x.shape == (10000, 784) and x.dtype == np.float32
    assert y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x[3].reshape(28, 28) * 255, images[3], atol=1e-4)
    np.testing.assert_array_equal(y, labels)
