"""`--executor` / `--ray-address` mistakes on `advgap run` and `advgap mindist` (one error line, exit 2), and how
`advgap mindist` reports an image whose task failed."""

import json
import socket
import sys

import numpy as np
import pytest

from advgap.cli import main, mindist


def closed_loopback_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [["run", "--no-progress"], ["mindist", "--images", "0:1", "--no-progress"]])
def test_an_unreachable_ray_address_is_one_error_line(command, capsys, tmp_path):
    port = closed_loopback_port()
    out = ["--out", str(tmp_path / "out")] if command[0] == "run" else []
    assert main([*command, *out, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"advgap: error: --ray-address 127.0.0.1:{port}: no Ray cluster answers there (Connection refused)"
    assert not (tmp_path / "out").exists()  # refused before any work


@pytest.mark.parametrize(("argv", "message"), [
    (["--executor", "ray", "--ray-address", "head-node"], "--ray-address 'head-node': expected auto or HOST:PORT"),
    (["--ray-address", "127.0.0.1:6379"], "--ray-address needs --executor ray"),
])
def test_malformed_executor_options(argv, message, capsys, tmp_path):
    assert main(["run", "--no-progress", "--out", str(tmp_path / "out"), *argv]) == 2
    assert capsys.readouterr().err.strip() == f"advgap: error: {message}"


def test_executor_ray_without_ray_names_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    monkeypatch.delitem(sys.modules, "advgap.experiment.ray_executor", raising=False)
    assert main(["run", "--no-progress", "--out", str(tmp_path / "out"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "advgap: error: --executor ray needs Ray, the optional extra: pip install 'advgap[ray]'"


def test_mindist_reports_a_failed_image_and_prints_the_others_in_order(monkeypatch, capsys):
    solve = mindist.min_linf_distance

    def failing_on_image_1(net, x, label, *args):
        if np.array_equal(x, mindist._STATE["images"][1]):
            raise RuntimeError("solver fell over")
        return solve(net, x, label, *args)

    monkeypatch.setattr(mindist, "min_linf_distance", failing_on_image_1)
    argv = ["mindist", "--model", "vanilla", "--target", "3", "--images", "0:3", "--json", "--no-progress"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["index"] for line in out.splitlines()] == [0, 2]
    assert err.strip().splitlines() == ["advgap: image 1 failed: RuntimeError: solver fell over",
                                        "advgap: 1 image(s) failed"]
