"""Ctrl-C and SIGTERM while worker processes start: held back, so that no worker dies with a traceback.

A spawned worker spends its first seconds importing torch. A Ctrl-C (SIGINT to the whole process group) or a
SIGTERM arriving then would end it with a traceback, or end the parent while it still writes the worker's start-up
data. So the parent starts its workers inside `held_signals()`: the signals are blocked in the starting thread, and
the workers inherit that mask through the spawn until `release_in_worker()` — SIGINT is then ignored (the parent
ends the pool) and a pending SIGTERM ends the worker quietly; a signal meant for the parent is raised again in it
once the workers are up. multiprocessing's resource tracker protects its own start the same way.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from multiprocessing import resource_tracker

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back in this process until the block ends, then act on those that came."""
    resource_tracker.ensure_running()  # starting it later would unblock the signals (see its ensure_running)
    came: list[int] = []
    handlers = {s: signal.signal(s, lambda signum, frame: came.append(signum)) for s in STOP_SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a signal pending here goes to the recorder
        for s, handler in handlers.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(came):
            signal.raise_signal(s)


def release_in_worker() -> None:
    """In a worker started inside `held_signals()`: ignore Ctrl-C, then unblock (a pending SIGTERM ends it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
