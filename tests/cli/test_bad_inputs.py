"""Every subcommand against the shared set of broken files: one `advgap: error:` line, exit 2, stored results kept.

`SLOTS` names, per subcommand, each place it takes a file and how to pass one there. A subcommand missing from it,
or a network format (`advgap.formats.network.SUFFIXES`) without cases, fails the coverage test.
VNN-COMP runs are the exception by design: a broken network or property is that instance's `error` answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from advgap.cli import SUBCOMMANDS, main
from advgap.experiment.store import FILENAME, ResultRow, ResultStore, RowStatus
from advgap.formats.network import SUFFIXES as NETWORK_SUFFIXES
from support import broken

# (command, slot) -> argv given the broken path, the tiny benchmark folder and a folder with a stored run.
Argv = Callable[[Path, Path, Path], list[str]]
SLOTS: dict[str, dict[str, Argv]] = {
    "train": {
        "network": lambda p, b, o: ["train", "adversarial", "--profile", "tiny", "--init", str(p), "--out", f"{o}.npz"],
        "mnist": lambda p, b, o: ["train", "vanilla", "--profile", "tiny", "--data-dir", str(p), "--out", f"{o}.npz"],
        "output file": lambda p, b, o: ["train", "vanilla", "--profile", "tiny", "--out", str(p)],
        "output folder": lambda p, b, o: ["train", "vanilla", "--profile", "tiny", "--checkpoint-dir", str(p),
                                          "--out", f"{o}.npz"],
    },
    "evaluate": {
        "network": lambda p, b, o: ["evaluate", "--model", str(p)],
        "mnist": lambda p, b, o: ["evaluate", "--data-dir", str(p)],
    },
    "mindist": {
        "network": lambda p, b, o: ["mindist", "--model", str(p), "--images", "1", "--no-progress"],
        "mnist": lambda p, b, o: ["mindist", "--data-dir", str(p), "--images", "1", "--no-progress"],
    },
    "verify": {
        "network": lambda p, b, o: ["verify", str(p), str(b / "holds.vnnlib")],
        "vnnlib": lambda p, b, o: ["verify", str(b / "tiny.onnx"), str(p)],
        "output file": lambda p, b, o: ["verify", str(b / "tiny.onnx"), str(b / "violated.vnnlib"),
                                        "--counterexample", str(p)],
    },
    "vnncomp": {
        "instances.csv": lambda p, b, o: ["vnncomp", str(b), "--instances", str(p)],
        "expected.csv": lambda p, b, o: ["vnncomp", str(b), "--expected", str(p)],
        "output file": lambda p, b, o: ["vnncomp", str(b), "--out", str(p)],
    },
    "run": {
        "network": lambda p, b, o: ["run", "--models", str(p), "--images", "1", "--no-progress", "--out", str(o)],
        "mnist": lambda p, b, o: ["run", "--data-dir", str(p), "--images", "1", "--no-progress", "--out", str(o)],
        "output folder": lambda p, b, o: ["run", "--models", "vanilla", "--images", "1", "--no-progress",
                                          "--out", str(p)],
    },
}
# Defects per slot: (id, maker of the broken path in a folder, given the shared MNIST folder).
Maker = Callable[[Path, Path], Path]
DEFECTS: dict[str, list[tuple[str, Maker]]] = {
    "network": [
        *((f"{suffix} {d}", lambda f, m, s=suffix, d=d: broken.network(f, s, d))
          for suffix in NETWORK_SUFFIXES for d in broken.NET_DEFECTS),
        (".onnx unsupported operator", lambda f, m: broken.network(f, ".onnx", "unsupported operator")),
    ],
    "mnist": [(d, lambda f, m, d=d: broken.mnist_dir(f / "mnist", m, d)) for d in broken.MNIST_DEFECTS],
    "vnnlib": [(d, lambda f, m, d=d: broken.vnnlib(f, d)) for d in broken.VNNLIB_DEFECTS],
    "instances.csv": [(d, lambda f, m, d=d: broken.csv(f, "instances.csv", d)) for d in broken.CSV_DEFECTS],
    "expected.csv": [(d, lambda f, m, d=d: broken.csv(f, "expected.csv", d)) for d in broken.CSV_DEFECTS],
    "output file": [(d, lambda f, m, d=d: broken.output(f, d)) for d in broken.OUTPUT_DEFECTS],
    "output folder": [(d, lambda f, m, d=d: broken.output(f, d, directory=True)) for d in broken.OUTPUT_DEFECTS],
}
CASES = [
    pytest.param(command, slot, make, id=f"{command}-{slot}-{defect}")
    for command, slots in SLOTS.items() for slot in slots for defect, make in DEFECTS[slot]
]


def test_every_subcommand_and_format_is_covered():
    assert set(SLOTS) == set(SUBCOMMANDS)
    assert all("network" in slots for command, slots in SLOTS.items() if command != "vnncomp")
    covered = {case.id.split("-")[2].split()[0] for case in CASES if "-network-" in case.id}
    assert covered == set(NETWORK_SUFFIXES)


@pytest.fixture
def stored_run(tmp_path: Path) -> Path:
    """A folder holding a results store with one row, as a run leaves it."""
    folder = tmp_path / "stored"
    with ResultStore.open(folder, {"models": {"vanilla": "x"}}) as store:
        store.add([ResultRow("vanilla", 0, 3, "fgsm", 0.1, RowStatus.FOUND, 0.5, "test", "0")])
    return folder


def _digest(folder: Path) -> str:
    return hashlib.sha256((folder / FILENAME).read_bytes()).hexdigest()


@pytest.mark.parametrize(("command", "slot", "make"), CASES)
def test_broken_file_is_one_error_line(command, slot, make, tiny_benchmark, stored_run, shared_dir, tmp_path,
                                       capsys):
    path = make(tmp_path, shared_dir / "mnist")
    before = _digest(stored_run)
    code = main(SLOTS[command][slot](path, tiny_benchmark, stored_run))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("advgap: error: ") and "\n" not in err and "Traceback" not in err
    assert _digest(stored_run) == before


@pytest.mark.parametrize(("slot", "make"), [
    pytest.param(slot, make, id=f"{slot}-{defect}")
    for slot in ("network", "vnnlib") for defect, make in DEFECTS[slot]
])
def test_vnncomp_answers_error_for_a_broken_instance(slot, make, tiny_benchmark, shared_dir, capsys):
    path = make(tiny_benchmark, shared_dir / "mnist")
    network, prop = (path.name, "holds.vnnlib") if slot == "network" else ("tiny.onnx", path.name)
    (tiny_benchmark / "broken.csv").write_text(f"{network},{prop},30\ntiny.onnx,holds.vnnlib,30\n")
    assert main(["vnncomp", str(tiny_benchmark), "--instances", str(tiny_benchmark / "broken.csv")]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    header, *rows = (line.split() for line in captured.out.splitlines())
    assert [row[header.index("ours")] for row in rows] == ["error", "holds"]
