"""The Ray executor on a real two-node Ray cluster on this machine, loopback only.

One cluster for the module (`ray.cluster_utils.Cluster`: a head and one added node, 1 CPU and 200 MB of object
store each). The drivers under test are child processes, `advgap run --executor ray --ray-address 127.0.0.1:PORT`,
like a user's; this process is connected too, to check the cluster and to run the executor directly.
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

# Before Ray is imported: on Linux Ray swaps 127.0.0.1 for the machine's network address unless this is 0. No
# usage report, and a token of the tests' own for the cluster and the drivers (no file in the home folder).
os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
                  RAY_AUTH_TOKEN=uuid.uuid4().hex)

import pytest
import ray
from ray.cluster_utils import Cluster

import advgap
from advgap.cli import main
from advgap.experiment.config import RunConfig
from advgap.experiment.executors import open_executor
from advgap.experiment.ray_executor import RayExecutor
from advgap.experiment.runner import ExactTask, _init_worker, _run_task, run_experiment
from advgap.experiment.store import FILENAME, ResultStore, RowStatus
from support.signals import default_sigint
from support.tasks import shared_state

NODE = {"num_cpus": 1, "object_store_memory": 200 * 2**20}
TOL = 1e-3


@pytest.fixture(scope="module")
def cluster():
    """The address of a head + one node Ray cluster on 127.0.0.1; this process is connected to it."""
    test_cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        test_cluster.add_node(**NODE)
        test_cluster.wait_for_nodes()
        ray.init(address=test_cluster.address, logging_level="WARNING")
        nodes = [n for n in ray.nodes() if n["Alive"]]
        assert len(nodes) == 2
        for node in ray.nodes():
            assert node["NodeManagerAddress"] == "127.0.0.1", node
        assert test_cluster.address.startswith("127.0.0.1:")
        # The workers run this checkout's advgap, not another installed copy.
        assert ray.get(ray.remote(lambda: advgap.__file__).remote()) == advgap.__file__
        yield test_cluster.address
    finally:
        ray.shutdown()
        test_cluster.shutdown()


def settings(net, out, **changes):
    return {"models": (str(net),), "images": (0, 4), "targets": (3, 5), "workers": 1, "out": str(out),
            "timeout": 20.0, **changes}


def stored(folder):
    with ResultStore.read(folder) as store:
        return {r.key: r for r in store.results()}


def assert_same_results(a, b):
    """Same keys and statuses; attacks (seeded per chunk) identical; exact intervals agree within the tolerance."""
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].status == b[key].status, key
        if key[3] == "exact":
            assert a[key].status is RowStatus.EXACT, key
            assert abs(a[key].lower - b[key].lower) <= TOL and abs(a[key].upper - b[key].upper) <= TOL, key
        else:
            assert a[key].delta == b[key].delta, key


DRIVER = """
import sys
from advgap.experiment.config import RunConfig
from advgap.experiment.executors import open_executor
from advgap.experiment.runner import run_experiment
with open_executor("ray", 1, {address!r}) as executor:
    summary = run_experiment(RunConfig(**{settings!r}), progress=False, executor=executor)
print(summary.executor, "failed", summary.failed, "complete" if summary.complete else "incomplete")
"""


def driver(address, config):
    """A child process that runs `config` on the cluster, as `advgap run --executor ray` does."""
    code = DRIVER.format(address=address, settings=config)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def count(folder, method):
    try:
        with sqlite3.connect(Path(folder) / FILENAME, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM results WHERE method = ?", (method,)).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def wait_for(condition, child, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def test_advgap_run_on_the_cluster_stores_what_the_local_executor_stores(cluster, tiny_net_file, tmp_path):
    cli = [sys.executable, "-m", "advgap", "run", "--models", str(tiny_net_file), "--images", "4", "--targets", "3,5",
           "--timeout", "20", "--no-progress", "--out", str(tmp_path / "ray"), "--executor", "ray",
           "--ray-address", cluster]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    local = run_experiment(RunConfig(**settings(tiny_net_file, tmp_path / "local")), progress=False)
    assert local.complete and local.executor == "local: 1 worker on 1 node"
    assert "tiny: 4/4 images correctly classified, 32/32 results stored (32 new)" in proc.stdout
    line = next(line for line in proc.stdout.splitlines() if line.startswith("complete in"))
    assert " on ray: " in line and " workers on 2 nodes; " in line  # tasks ran on both nodes
    assert_same_results(stored(tmp_path / "ray"), stored(tmp_path / "local"))
    with ResultStore.read(tmp_path / "ray") as store:
        assert [s["workers"] for s in store.sessions()] == [2]  # the cluster's CPUs


def _task_workers():
    """pid → title of the Ray worker processes of this test's cluster that are running a batch now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
            if title.startswith("ray::_run_batch") and _descends_from(int(entry.name), os.getpid()):
                found[int(entry.name)] = title
        except (OSError, ValueError):
            continue
    return found


def _descends_from(pid, ancestor):
    while pid > 1:
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if pid == ancestor:
            return True
    return False


def test_a_worker_killed_mid_task_is_rerun_nothing_is_lost_and_time_limits_hold(cluster, tmp_path):
    # The adversarial net with a 0.4 s limit: image 0 with target 6 takes 0.75 s on the idle 2-core
    # machine, long enough to kill one running and sure to reach the limit. The driver is a thread of this
    # process, on its connection to the cluster.
    config = RunConfig(**settings("adversarial", tmp_path, images=(0, 4), targets=(4, 6), attacks=("fgsm",),
                                  timeout=0.4))
    summaries = []
    run = threading.Thread(target=lambda: summaries.append(
        run_experiment(config, progress=False, executor=RayExecutor(cluster, 1))))
    run.start()
    killed = None
    deadline = time.monotonic() + 300  # the driver first runs AutoAttack on the images, in its own process
    while killed is None and run.is_alive() and time.monotonic() < deadline:
        running = _task_workers() if count(tmp_path, "exact") >= 1 else {}
        if running:
            killed = min(running)
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.005)
    run.join(timeout=300)
    assert killed is not None, "no worker was caught running a task"
    (summary,) = summaries
    assert summary.complete and summary.failed == 0 and summary.models[0].added == 4 * 2 * 2
    rows = stored(tmp_path)
    assert len(rows) == 4 * 2 * 2 and all(r.model == "adversarial" for r in rows.values())
    exact = [r for r in rows.values() if r.method == "exact"]
    assert {r.status for r in exact} <= {RowStatus.EXACT, RowStatus.TIMEOUT, RowStatus.BOUNDS}
    assert any(r.status is RowStatus.TIMEOUT for r in exact)  # the limit was reached on the workers ...
    assert max(r.seconds for r in exact) <= 0.4 + 0.5  # ... and kept there


def test_interrupted_and_killed_drivers_resume_with_nothing_lost_or_duplicated(cluster, tiny_net_file, tmp_path):
    config = settings(tiny_net_file, tmp_path / "ray", images=(0, 8), targets=(1, 3, 5, 7), attacks=("fgsm",))
    n_rows = 2 * sum(1 for label in (7, 2, 1, 0, 4, 1, 4, 9) for t in (1, 3, 5, 7) if t != label)  # fgsm, exact
    # Ctrl-C: the CLI driver cancels its tasks, ends its session and exits 130.
    cli = [sys.executable, "-m", "advgap", "run", "--models", str(tiny_net_file), "--images", "8", "--targets",
           "1,3,5,7", "--attacks", "fgsm", "--timeout", "20", "--no-progress", "--out", config["out"],
           "--executor", "ray", "--ray-address", cluster]
    child = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    wait_for(lambda: count(config["out"], "exact") >= 2, child)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == "advgap: interrupted" and "Traceback" not in err
    interrupted = stored(config["out"])
    assert sum(1 for k in interrupted if k[3] == "exact") >= 2 and len(interrupted) < n_rows
    with ResultStore.read(config["out"]) as store:
        assert store.sessions()[0]["finished"] is not None
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ray.available_resources().get("CPU", 0) == 2  # its tasks were stopped, none is left running
    # kill -9: nothing but the rows stored so far survives.
    child = driver(cluster, config)
    try:
        wait_for(lambda: count(config["out"], "exact") >= len([k for k in interrupted if k[3] == "exact"]) + 2, child)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    partial = stored(config["out"])
    assert len(interrupted) < len(partial) < n_rows, "the driver was not killed mid-way"
    # Resume here, on the same cluster: every row once, those stored before kept as they were.
    with open_executor("ray", 1, cluster) as executor:
        resumed = run_experiment(RunConfig(**config), progress=False, executor=executor)
    assert resumed.complete and resumed.models[0].added == n_rows - len(partial)
    rows = stored(config["out"])
    labels = (7, 2, 1, 0, 4, 1, 4, 9)
    assert rows.keys() == {("tiny", i, t, m) for i in range(8) for t in (1, 3, 5, 7) if t != labels[i]
                           for m in ("fgsm", "exact")}
    for key, row in partial.items():
        assert rows[key].created == row.created and rows[key].delta == row.delta
    assert ray.is_initialized()  # the executor reused this process's connection and left it open


def test_a_raising_task_on_the_cluster_comes_back_with_its_task(cluster, tiny_net_file):
    tasks = [ExactTask("tiny", 0, 3), ExactTask("tiny", 99_999, 3), ExactTask("tiny", 1, 5)]
    executor = RayExecutor(cluster, 1)
    outcomes = {o.task.image: o for o in executor.imap(_run_task, tasks, _init_worker, shared_state(tiny_net_file))}
    assert outcomes[99_999].value is None and outcomes[99_999].error.startswith("IndexError")
    assert [r.key for r in outcomes[0].value] == [("tiny", 0, 3, "exact")]
    assert [r.key for r in outcomes[1].value] == [("tiny", 1, 5, "exact")]
    assert all(o.pid != os.getpid() for o in outcomes.values()) and executor.workers == 2


def test_mindist_on_the_cluster_prints_the_local_rows(cluster, tiny_net_file, capsys):
    args = ["mindist", "--model", str(tiny_net_file), "--images", "0:4", "--json", "--no-progress"]
    assert main([*args, "--executor", "ray", "--ray-address", cluster]) == 0  # on this process's connection
    remote_out, remote_err = capsys.readouterr()
    assert main(args) == 0
    local = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    remote = [json.loads(line) for line in remote_out.splitlines()]
    assert [r["index"] for r in remote] == [0, 1, 2, 3]  # in image order, whatever order they finished in
    for a, b in zip(remote, local, strict=True):
        assert {k: a[k] for k in ("index", "label", "predicted", "target", "status")} == \
               {k: b[k] for k in ("index", "label", "predicted", "target", "status")}
        assert a["status"] == "exact" and abs(a["lower"] - b["lower"]) <= TOL and abs(a["upper"] - b["upper"]) <= TOL
    assert re.fullmatch(r"advgap: ray: \d+ workers on 2 nodes", remote_err.strip().splitlines()[-1])
