"""Executors: where `advgap run` and `advgap mindist` run their tasks — here, in a local pool or on a Ray cluster.

An executor runs `fn(task)` for every task in worker processes that first ran `init(*shared)` once, and yields one
`Outcome` per task as it finishes. The driver that consumes the outcomes is the only writer of results. A task
that raises yields an outcome with the error, and the others go on. `local` is this process (one worker) or a pool
of spawned processes; `ray` (optional extra `advgap[ray]`) is `advgap.experiment.ray_executor`, imported only
when chosen.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import ipaddress
import multiprocessing
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from advgap.errors import ConfigError
from advgap.experiment.signals import held_signals, release_in_worker

EXECUTORS = ("local", "ray")
RAY_EXTRA = "--executor ray needs Ray, the optional extra: pip install 'advgap[ray]'"


@dataclass(frozen=True)
class Outcome:
    """What one task gave: its value, or the error it raised ("Type: message"), and the worker that ran it
    (node and pid None where no worker reported back: Ray gave up on the task)."""

    task: Any
    value: Any
    error: str | None
    node: str | None
    pid: int | None
    seconds: float


def guarded(fn: Callable[[Any], Any], node: str, task: Any) -> Outcome:
    """Run `fn(task)` in a worker, catching any exception into the outcome."""
    start = time.perf_counter()
    try:
        value, error = fn(task), None
    except Exception as exc:
        value, error = None, "".join(traceback.format_exception_only(exc)).strip().replace("\n", " ")
    return Outcome(task, value, error, node, os.getpid(), time.perf_counter() - start)


class Executor(abc.ABC):
    """Runs tasks; counts the (node, pid) workers that took part. A context manager: leaving it calls `close`."""

    kind = ""

    def __init__(self, workers: int) -> None:
        self.workers = workers  # task slots: worker processes, or the cluster's CPUs
        self.seen: set[tuple[str, int]] = set()

    @abc.abstractmethod
    def imap(self, fn: Callable[[Any], Any], tasks: Iterable[Any], init: Callable[..., None],
             shared: tuple[Any, ...]) -> Iterator[Outcome]:
        """`fn(task)` for every task in workers that ran `init(*shared)` first; outcomes in order of finishing."""

    def describe(self) -> str:
        """Who took part so far, e.g. "ray: 4 workers on 2 nodes" ("local: no task to run" when none ran)."""
        if not self.seen:
            return f"{self.kind}: no task to run"
        nodes = len({node for node, _ in self.seen})
        return f"{self.kind}: {_plural(len(self.seen), 'worker')} on {_plural(nodes, 'node')}"

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the executor holds (a cluster connection)."""

    def _count(self, outcomes: Iterable[Outcome]) -> Iterator[Outcome]:
        for outcome in outcomes:
            if outcome.node is not None:
                self.seen.add((outcome.node, outcome.pid))
            yield outcome

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class LocalExecutor(Executor):
    """This process when `workers` is 1 or there is one task, else a pool of `workers` spawned processes."""

    kind = "local"

    def imap(self, fn: Callable[[Any], Any], tasks: Iterable[Any], init: Callable[..., None],
             shared: tuple[Any, ...]) -> Iterator[Outcome]:
        tasks = list(tasks)
        run = functools.partial(guarded, fn, socket.gethostname())
        if self.workers == 1 or len(tasks) <= 1:
            init(*shared)
            yield from self._count(map(run, tasks))
            return
        context = multiprocessing.get_context("spawn")
        with contextlib.ExitStack() as stack:
            with held_signals():  # no worker may die of a Ctrl-C while it starts (see experiment.signals)
                pool = stack.enter_context(context.Pool(self.workers, _init_pool_worker, (init, *shared)))
            yield from self._count(pool.imap_unordered(run, tasks, chunksize=1))

    def close(self) -> None:
        """Nothing to release: each imap's pool ends with it."""


def _init_pool_worker(init: Callable[..., None], *shared: Any) -> None:
    release_in_worker()  # Ctrl-C reaches the parent, which ends the pool
    init(*shared)


def open_executor(kind: str, workers: int, address: str | None = None) -> Executor:
    """The executor `kind` ("local" or "ray"); for Ray, connect to `address` ("auto", HOST:PORT) or start a local
    cluster of `workers` CPUs. Raises ConfigError if Ray is missing or no cluster answers at `address`."""
    if kind == "local":
        return LocalExecutor(workers)
    if kind != "ray":
        raise ConfigError(f"unknown executor {kind!r} (use one of {', '.join(EXECUTORS)})")
    if address not in (None, "auto"):
        probe(address)
    if address is None or _loopback(address):
        # Keep a local cluster on 127.0.0.1: on Linux Ray otherwise swaps loopback for the network address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address is None:  # a cluster of our own: no usage report to Ray's servers; token auth, Ray's default, unsaid
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    try:
        from advgap.experiment.ray_executor import RayExecutor
    except ModuleNotFoundError as exc:
        if exc.name != "ray" and not str(exc.name).startswith("ray."):
            raise
        raise ConfigError(RAY_EXTRA) from exc
    return RayExecutor(address, workers)


def probe(address: str, timeout: float = 5.0) -> None:
    """Raise ConfigError unless something accepts TCP connections at HOST:PORT (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r}: expected auto or HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc})") from None


def _loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
