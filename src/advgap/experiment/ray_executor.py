"""The Ray executor (optional extra `advgap[ray]`): the tasks of `advgap run` and `advgap mindist` on a Ray cluster.

The driver puts the shared state (nets, images, settings) into the object store once per `imap`; a worker process
runs `init` on it the first time one of its tasks needs it and keeps it for the next. Tasks go out in batches, at
most two per CPU of the cluster in flight, spread over the nodes; each batch is sized from the task times seen so
far to about BATCH_SECONDS of work, so that scheduling stays a small part of it. Ray reruns a batch whose worker
process died (MAX_RETRIES); leaving `imap` early (an error, Ctrl-C, a closed generator) stops every batch still
out. Only the driver sees the outcomes, so only it writes results.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import ray
from ray.exceptions import RayError

from advgap.errors import ConfigError
from advgap.experiment.executors import Executor, Outcome, guarded

BATCH_SECONDS = 1.0  # aimed-for work per Ray task
MAX_BATCH = 64  # tasks per Ray task at most
MAX_RETRIES = 3  # reruns of a batch whose worker process died
REFRESH_S = 10.0  # how often the cluster's CPUs are counted again (nodes may join or leave)

_loaded: str | None = None  # in a worker process: the object id of the shared state `init` last ran on


def _run_batch(fn: Callable[[Any], Any], init: Callable[..., None], shared: list[ray.ObjectRef],
               tasks: list[Any]) -> list[Outcome]:
    """Worker side: load the shared state if this process has not yet, then run the batch's tasks."""
    global _loaded
    ref = shared[0]  # inside a list, so that Ray passes the reference and not the (large) value
    if ref.hex() != _loaded:
        init(*ray.get(ref))
        _loaded = ref.hex()
    node = ray.get_runtime_context().get_node_id()
    return [guarded(fn, node, task) for task in tasks]


class RayExecutor(Executor):
    """Tasks on the Ray cluster at `address` ("auto" or HOST:PORT), or on a local one of `workers` CPUs."""

    kind = "ray"

    def __init__(self, address: str | None, workers: int) -> None:
        self._connected = not ray.is_initialized()  # else reuse this process's connection and leave it open
        if self._connected:
            try:
                if address is None:
                    ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                             logging_level=logging.WARNING)
                else:
                    ray.init(address=address, logging_level=logging.WARNING)
            except ConnectionError as exc:
                raise ConfigError(f"--ray-address {address}: {exc}") from None
        super().__init__(self._cpus())
        self._remote = ray.remote(_run_batch).options(num_cpus=1, max_retries=MAX_RETRIES,
                                                      scheduling_strategy="SPREAD")
        self._task_seconds: float | None = None  # running mean of one task's time

    def imap(self, fn: Callable[[Any], Any], tasks: Iterable[Any], init: Callable[..., None],
             shared: tuple[Any, ...]) -> Iterator[Outcome]:
        queue = deque(tasks)
        if not queue:
            return
        state = [ray.put(shared)]
        pending: dict[ray.ObjectRef, list[Any]] = {}
        counted = time.monotonic()
        try:
            while queue or pending:
                if time.monotonic() - counted > REFRESH_S:
                    self.workers, counted = self._cpus(), time.monotonic()
                while queue and len(pending) < 2 * self.workers:
                    batch = [queue.popleft() for _ in range(self._batch_size(len(queue)))]
                    pending[self._remote.remote(fn, init, state, batch)] = batch
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                outcomes = self._collect(ref, pending.pop(ref))
                self._learn(outcomes)
                yield from self._count(outcomes)
        finally:
            if pending:
                self._abandon(pending)

    def close(self) -> None:
        if self._connected and ray.is_initialized():
            ray.shutdown()

    def _abandon(self, pending: dict[ray.ObjectRef, list[Any]]) -> None:
        """Stop the batches still out. On a connection of its own the executor ends it, and Ray stops the job's
        tasks with it: in Ray 2.60 `ray.cancel` can race a task that is just finishing into a failed check that
        ends the driver. On a connection it was handed, it cancels them one by one."""
        if self._connected:
            ray.shutdown()
            return
        for ref in pending:
            ray.cancel(ref, force=True)

    @staticmethod
    def _cpus() -> int:
        return max(1, int(ray.cluster_resources().get("CPU", 0)))

    @staticmethod
    def _collect(ref: ray.ObjectRef, batch: list[Any]) -> list[Outcome]:
        """The batch's outcomes; if Ray gave up on it (worker died past its retries, lost node), one error each."""
        try:
            return ray.get(ref)
        except RayError as exc:
            first = str(exc).strip().splitlines()
            error = f"{type(exc).__name__}: {first[0] if first else 'no detail'}"
            return [Outcome(task, None, error, None, None, 0.0) for task in batch]

    def _learn(self, outcomes: list[Outcome]) -> None:
        seconds = [o.seconds for o in outcomes if o.node is not None]
        if seconds:
            mean = sum(seconds) / len(seconds)
            self._task_seconds = mean if self._task_seconds is None else 0.7 * self._task_seconds + 0.3 * mean

    def _batch_size(self, left: int) -> int:
        """One task until times are known; then about BATCH_SECONDS, leaving at least two batches per CPU."""
        if self._task_seconds is None:
            return 1
        size = round(BATCH_SECONDS / max(self._task_seconds, 1e-4))
        return max(1, min(size, MAX_BATCH, math.ceil(left / (2 * self.workers))))
