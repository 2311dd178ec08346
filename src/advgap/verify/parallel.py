"""Work on several cores: a minimal-distance search continued in forked workers, and independent tasks mapped
over forked workers (`map_until`, the property check's per-term searches).

`run_in_parallel`: the open nodes are dealt round robin (by lower bound) to `workers` forked copies of the search.
The workers share the best upper bound found so far through shared memory, so each prunes with every worker's
witnesses, and send back their incumbent and lower bound when they finish or the deadline passes. The merged
interval is the best witness and the minimum of the workers' lower bounds; a worker that sends nothing back counts
with the smallest lower bound of the nodes it was given, so the merge stays sound whatever happens to a worker.
"""

from __future__ import annotations

import heapq
import multiprocessing
import multiprocessing.connection
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import TypeVar

import numpy as np

from advgap.verify.delta_bab import DeltaSearch, Shrink

R = TypeVar("R")
PUBLISH_EVERY = 0.1  # seconds between a worker's looks at the shared upper bound
GRACE = 5.0  # seconds past the deadline before a silent worker is given up


def _work(search: DeltaSearch, part: list[tuple], shared: Synchronized, deadline: float, shrink: Shrink,
          conn: Connection) -> None:
    """In a forked child: search `part`, publishing improvements, then send the outcome and exit."""
    try:
        search.open = part
        heapq.heapify(search.open)
        search.nodes = 0
        search.shared_upper = lambda: shared.value
        finished = False
        while not finished and time.monotonic() < deadline:
            finished = search.run(min(deadline, time.monotonic() + PUBLISH_EVERY), shrink)
            with shared.get_lock():
                shared.value = min(shared.value, search.incumbent.upper)
        inc = search.incumbent
        conn.send((finished, search.lower(), inc.upper, inc.witness, inc.target, search.nodes))
    finally:
        conn.close()
        os._exit(0)


def run_in_parallel(search: DeltaSearch, deadline: float, shrink: Shrink, workers: int) -> tuple[bool, float, int]:
    """Continue `search` in `workers` processes until done or `deadline`; merge their witnesses into its
    incumbent. Returns (every node closed, certified lower bound, nodes explored)."""
    ctx = multiprocessing.get_context("fork")
    shared = ctx.Value("d", search.incumbent.upper)
    ordered = sorted(search.open)
    parts = [ordered[k::workers] for k in range(workers)]
    search.open = []
    children = []
    for part in parts:
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_work, args=(search, part, shared, deadline, shrink, send), daemon=True)
        proc.start()
        send.close()
        children.append((proc, receive, part))
    finished, lower, nodes = True, search.lower(), 0
    for proc, receive, part in children:
        outcome = receive.recv() if receive.poll(max(0.0, deadline - time.monotonic()) + GRACE) else None
        proc.join(timeout=GRACE)
        if proc.is_alive():
            proc.kill()
        if outcome is None:
            finished = False
            lower = min(lower, part[0][0] if part else np.inf)
            continue
        done, part_lower, upper, witness, target, part_nodes = outcome
        finished, lower, nodes = finished and done, min(lower, part_lower), nodes + part_nodes
        search.incumbent.improve(upper, witness, target)
    return finished, min(lower, search.incumbent.upper), nodes


def map_until(count: int, work: Callable[[int], R], deadline: float, workers: int,
              stop: Callable[[R], bool]) -> dict[int, R]:
    """`work(i)` for i = 0 .. count − 1 until `deadline` (time.monotonic()), the results received by then.

    With one worker the tasks run in order in this process; with more, in forked workers that each take the next
    task when done with theirs (the first tasks start first). No task starts after the deadline; the first result
    for which `stop` is true ends the map (the other workers are killed). A worker that dies or stays silent past
    the deadline + GRACE just leaves its tasks without a result.
    """
    results: dict[int, R] = {}
    if workers <= 1 or count <= 1:
        for i in range(count):
            if time.monotonic() > deadline:
                break
            results[i] = work(i)
            if stop(results[i]):
                break
        return results
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("i", 0)

    def serve(conn: Connection) -> None:
        try:
            while time.monotonic() <= deadline:
                with counter.get_lock():
                    i = counter.value
                    counter.value += 1
                if i >= count:
                    break
                conn.send((i, work(i)))
        finally:
            conn.close()
            os._exit(0)

    procs, conns = [], []
    for _ in range(min(workers, count)):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=serve, args=(send,), daemon=True)
        proc.start()
        send.close()
        procs.append(proc)
        conns.append(receive)
    try:
        while conns:
            ready = multiprocessing.connection.wait(conns, timeout=max(0.0, deadline - time.monotonic()) + GRACE)
            if not ready:
                break
            for conn in ready:
                try:
                    i, result = conn.recv()
                except EOFError:
                    conns.remove(conn)
                    continue
                results[i] = result
                if stop(result):
                    return results
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            proc.join(timeout=GRACE)
    return results
