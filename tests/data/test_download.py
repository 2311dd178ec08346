import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from advgap.data.download import cache_dir, download
from advgap.data.mnist import FILES, load_mnist
from advgap.errors import DataError

SERVER_LIFETIME_S = 60.0


class _QuietHandler(SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def serve():
    """Serve a directory on 127.0.0.1 in a thread; stops at teardown or after SERVER_LIFETIME_S, whichever first."""
    servers = []

    def start(directory: Path) -> tuple[str, list[str]]:
        handler = type("Handler", (_QuietHandler,), {"requests": []})
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        watchdog = threading.Timer(SERVER_LIFETIME_S, server.shutdown)
        watchdog.daemon = True
        thread.start()
        watchdog.start()
        servers.append((server, thread, watchdog))
        return f"http://127.0.0.1:{server.server_address[1]}/mnist/", handler.requests

    yield start
    for server, thread, watchdog in servers:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def mirror(tmp_path, shared_dir) -> Path:
    """A served root holding mnist/ with the four official files."""
    root = tmp_path / "www"
    shutil.copytree(shared_dir / "mnist", root / "mnist")
    return root


def test_download_fetches_checks_and_caches(serve, mirror, tmp_path):
    url, requests = serve(mirror)
    dest = download(tmp_path / "cache", base_url=url, timeout=10)
    assert sorted(p.name for p in dest.iterdir()) == sorted(spec.gz_name for spec in FILES.values())
    images, labels = load_mnist("test", dest)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert len(requests) == 4
    download(tmp_path / "cache", base_url=url, timeout=10)
    assert len(requests) == 4, "files already present with the right md5 must not be fetched again"


def test_download_default_dir_is_cache_env(serve, mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("ADVGAP_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    url, _ = serve(mirror)
    assert download(base_url=url, timeout=10) == tmp_path / "c" / "mnist"
    assert (tmp_path / "c" / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()


def test_cache_dir_default_is_home(monkeypatch, tmp_path):
    monkeypatch.delenv("ADVGAP_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "advgap"


def test_download_wrong_checksum_leaves_nothing(serve, mirror, tmp_path):
    bad = mirror / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(bad.read_bytes())
    data[100] ^= 0xFF
    bad.write_bytes(bytes(data))
    url, _ = serve(mirror)
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: md5 .* differs from the official"):
        download(dest, base_url=url, timeout=10)
    assert not (dest / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(dest.glob(".*part")), "temporary files must be removed"


def test_download_replaces_corrupt_cached_file(serve, mirror, tmp_path):
    dest = tmp_path / "cache"
    dest.mkdir()
    (dest / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    url, _ = serve(mirror)
    download(dest, base_url=url, timeout=10)
    load_mnist("test", dest)


def test_download_http_error_names_url(serve, mirror, tmp_path):
    (mirror / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    url, _ = serve(mirror)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: download failed \(HTTP Error 404"):
        download(tmp_path / "cache", base_url=url, timeout=10)


def test_download_connection_refused(tmp_path):
    with ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler) as server:
        port = server.server_address[1]
    with pytest.raises(DataError, match=f"127.0.0.1:{port}.*download failed"):
        download(tmp_path / "cache", base_url=f"http://127.0.0.1:{port}/", timeout=5)


def test_download_bad_url(tmp_path):
    with pytest.raises(DataError, match="download failed"):
        download(tmp_path / "cache", base_url="nosuchscheme://x", timeout=5)
