"""Independent experiment units in parallel worker processes.

A run is a graph of units (setup -> generation 0 of a seed -> generation 1..N of
each condition at that seed).  :func:`run_graph` runs every unit once its
dependencies are done, in up to ``workers`` processes of a ``spawn`` pool (no
fork of a process that holds torch threads), each worker with one torch thread.
A unit's result depends only on its inputs on disk and its own seed, never on
which worker ran it or when, so any worker count gives the same metrics; a unit
is committed by its last atomic write, so a killed run resumes from the units
done.  Workers exit on their own when the parent dies (they poll the parent id),
so a killed run leaves no orphan writing into the run directory.  A worker that
dies (killed, out of memory, a failing start-up) ends the run with
:class:`WorkerDied` instead of a hang; the units done stay done.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Hashable, Mapping, Sequence, TypeVar

from provkit.core.lazy import lazy_import
from provkit.errors import ProvkitError

torch = lazy_import("torch")

K = TypeVar("K", bound=Hashable)


class WorkerDied(ProvkitError):
    """A worker process ended without a result (killed, out of memory, or its start-up failed)."""


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.25)


def _worker_start(parent: int, threads: int, init: Callable[..., None] | None, args: tuple) -> None:
    torch.set_num_threads(max(1, threads))
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if init is not None:
        init(*args)


def run_graph(
    deps: Mapping[K, Sequence[K]],
    run_local: Callable[[K], Any],
    *,
    workers: int = 1,
    task: Callable[[K], Any] | None = None,
    init: Callable[..., None] | None = None,
    init_args: tuple = (),
    on_done: Callable[[K, Any], None] | None = None,
    priority: Callable[[K], Any] | None = None,
    threads_per_worker: int = 1,
) -> None:
    """Run every unit of the dependency graph ``deps`` (unit -> units it needs).

    ``workers <= 1`` runs ``run_local(unit)`` in this process; otherwise ``task(unit)``
    runs in a worker whose process state ``init(*init_args)`` set up once.  Both must
    be module-level functions (picklable).  ``on_done(unit, result)`` runs here, in
    this process, after each unit.  Ready units start in ``priority`` order.
    """
    key = priority or (lambda u: 0)
    waiting = {u: set(d) for u, d in deps.items()}
    for u, d in waiting.items():
        missing = d - waiting.keys()
        if missing:
            raise ValueError(f"unit {u!r} depends on unknown units {sorted(map(repr, missing))}")
    done: set[K] = set()

    def ready() -> list[K]:
        return sorted((u for u, d in waiting.items() if d <= done), key=key)

    if workers <= 1 or task is None:
        while waiting:
            batch = ready()
            if not batch:
                raise ValueError("the unit graph has a cycle")
            u = batch[0]
            del waiting[u]
            result = run_local(u)
            done.add(u)
            if on_done:
                on_done(u, result)
        return

    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_start,
                               initargs=(os.getpid(), threads_per_worker, init, init_args))
    running: dict[Future, K] = {}
    try:
        while waiting or running:
            for u in ready():
                if len(running) >= workers:
                    break
                del waiting[u]
                running[pool.submit(task, u)] = u
            if not running:
                raise ValueError("the unit graph has a cycle")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in sorted(finished, key=lambda f: key(running[f])):
                u = running.pop(f)
                try:
                    result = f.result()  # re-raises a worker's exception here
                except BrokenProcessPool as exc:
                    raise WorkerDied(f"a worker process died while running unit {u!r} (killed, out of memory, "
                                     "or it failed to start); rerun to resume from the units done") from exc
                done.add(u)
                if on_done:
                    on_done(u, result)
    except BaseException:
        _terminate(pool)
        raise
    pool.shutdown(wait=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop every worker now (a failed or interrupted run must not leave units writing)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=5)
