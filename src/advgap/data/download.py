"""Download the four official MNIST `.gz` files into a cache directory, md5-checked and written atomically.

The package bundles MNIST, so this is only needed to fetch a fresh copy (e.g. to check the bundled one).
The result is a directory usable as `--data-dir` / `ADVGAP_DATA_DIR`.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from advgap.data.mnist import FILES, MnistFile, md5_of
from advgap.errors import DataError
from advgap.files import atomic_write

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_CHUNK = 1 << 16
_MAX_BYTES = 16 << 20  # every official .gz file is below 10 MB; anything larger is not MNIST


def cache_dir() -> Path:
    """advgap's cache directory: $ADVGAP_CACHE_DIR, else ~/.cache/advgap."""
    env = os.environ.get("ADVGAP_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "advgap"


def download(dest_dir: str | Path | None = None, base_url: str = DEFAULT_BASE_URL, timeout: float = 60.0) -> Path:
    """Fetch the four `.gz` files from `base_url` into `dest_dir` (default `cache_dir()/mnist`) and return it.

    A file already there with the official md5 is kept. Each download streams into a temporary file beside its
    target, is md5-checked, then moved into place with `os.replace`, so a failure never leaves a partial file.
    `timeout` is in seconds per network operation. Raises DataError naming the URL or file on any failure.
    """
    dest = Path(dest_dir) if dest_dir is not None else cache_dir() / "mnist"
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{dest}: cannot create download directory ({exc})") from exc
    for spec in FILES.values():
        target = dest / spec.gz_name
        if target.is_file() and md5_of(target) == spec.md5_gz:
            log.info("%s: present, md5 ok", target)
            continue
        _fetch(f"{base_url.rstrip('/')}/{spec.gz_name}", target, spec, timeout)
    return dest


def _fetch(url: str, target: Path, spec: MnistFile, timeout: float) -> None:
    """Stream `url` into a temp file, check the md5, then atomically replace `target`."""
    log.info("downloading %s", url)
    try:
        digest = hashlib.md5()
        size = 0
        with atomic_write(target) as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                size += len(chunk)
                if size > _MAX_BYTES:
                    raise DataError(f"{url}: more than {_MAX_BYTES} bytes, not an MNIST file")
                digest.update(chunk)
                out.write(chunk)
            if digest.hexdigest() != spec.md5_gz:
                raise DataError(f"{url}: md5 {digest.hexdigest()} differs from the official {spec.md5_gz}")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DataError(f"{url}: download failed ({exc})") from exc
    log.info("%s: %d bytes, md5 ok", target, size)
