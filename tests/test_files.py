"""atomic_write: all or nothing, and the file mode a plain open() would give."""

from __future__ import annotations

import os

import pytest

from advgap.files import atomic_write


def test_written_file_gets_the_umask_mode_and_an_error_keeps_the_old_content(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    old = os.umask(0o027)
    try:
        with atomic_write(path) as fh:
            fh.write(b"first")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"first"
    assert path.stat().st_mode & 0o777 == 0o640
    with pytest.raises(RuntimeError), atomic_write(path) as fh:
        fh.write(b"second")
        raise RuntimeError("checksum failed")
    assert path.read_bytes() == b"first"
    assert [p.name for p in path.parent.iterdir()] == ["f.bin"]
