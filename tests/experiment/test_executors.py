"""The local executor and the runner's handling of failed tasks (the Ray executor: test_ray_executor.py)."""

import logging

import pytest

from advgap.experiment import methods
from advgap.experiment.config import RunConfig
from advgap.experiment.executors import LocalExecutor
from advgap.experiment.runner import ExactTask, _init_worker, _run_task, run_experiment
from advgap.experiment.store import ResultStore
from support.tasks import shared_state


@pytest.mark.parametrize("workers", [1, 2])
def test_a_raising_task_comes_back_with_its_task_and_the_others_go_on(tiny_net_file, workers):
    tasks = [ExactTask("tiny", 0, 3), ExactTask("tiny", 99_999, 3), ExactTask("tiny", 1, 3)]
    executor = LocalExecutor(workers)
    assert executor.describe() == "local: no task to run"
    outcomes = {o.task.image: o for o in executor.imap(_run_task, tasks, _init_worker, shared_state(tiny_net_file))}
    assert outcomes.keys() == {0, 1, 99_999}
    assert outcomes[99_999].value is None and outcomes[99_999].error.startswith("IndexError")
    for image in (0, 1):
        (row,) = outcomes[image].value
        assert outcomes[image].error is None and (row.image, row.target, row.method) == (image, 3, "exact")
    pids = {o.pid for o in outcomes.values()}
    assert executor.describe() == f"local: {len(pids)} worker{'s' if len(pids) > 1 else ''} on 1 node"
    assert (len(pids) == 1) == (workers == 1)


def test_a_failed_task_is_logged_with_its_image_and_a_rerun_fills_the_gap(tiny_net_file, tmp_path, monkeypatch,
                                                                         caplog):
    exact_row = methods.exact_row

    def failing_on_image_1(net, model, image, *args):
        if image == 1:
            raise RuntimeError("solver fell over")
        return exact_row(net, model, image, *args)

    config = RunConfig(models=(str(tiny_net_file),), images=(0, 3), targets=(3, 5), attacks=("fgsm",), workers=1,
                       out=tmp_path, timeout=20.0)
    monkeypatch.setattr(methods, "exact_row", failing_on_image_1)
    with caplog.at_level(logging.WARNING, logger="advgap.experiment.runner"):
        summary = run_experiment(config, progress=False)
    (model,) = summary.models
    assert summary.failed == 2 and not summary.complete and model.rows == model.expected - 2
    assert "task failed: tiny image 1 target 3 (exact): RuntimeError: solver fell over" in caplog.text
    assert "tiny image 1 target 5 (exact)" in caplog.text and summary.executor == "local: 1 worker on 1 node"
    with ResultStore.read(tmp_path) as store:
        missing = {key for key in model_keys(config) if key not in store.statuses("tiny")}
    assert missing == {(1, 3, "exact"), (1, 5, "exact")}
    monkeypatch.undo()
    again = run_experiment(config, progress=False)
    assert again.complete and again.failed == 0 and again.models[0].added == 2


def model_keys(config):
    labels = (7, 2, 1)  # of MNIST test images 0-2
    return {(i, t, m) for i in range(3) for t in config.targets if t != labels[i] for m in config.methods}
