"""The experiment's worker pool: parallel units give the same results, and a dying worker ends the run (no hang)."""

from __future__ import annotations

import operator
import os
import time

import pytest

from provkit.train.workers import WorkerDied, run_graph

DEPS = {1: [], 2: [1], 3: [1], 4: [2, 3]}


def test_parallel_units_run_after_their_dependencies() -> None:
    order: list[int] = []
    results: dict[int, int] = {}

    def on_done(u: int, r: int) -> None:
        order.append(u)
        results[u] = r

    run_graph(DEPS, lambda u: -u, workers=2, task=operator.neg, on_done=on_done)
    assert results == {1: -1, 2: -2, 3: -3, 4: -4}
    assert order[0] == 1 and order[-1] == 4


def test_a_worker_killed_mid_unit_ends_the_run() -> None:
    done: list[int] = []
    t = time.monotonic()
    with pytest.raises(WorkerDied, match="unit 1"):
        # os._exit as the task: the worker process dies without a result, as an OOM kill would
        run_graph(DEPS, lambda u: u, workers=2, task=os._exit, on_done=lambda u, r: done.append(u))
    assert done == [] and time.monotonic() - t < 60


@pytest.mark.parametrize("init, args", [(int, ("not a number",)), (exit, (3,))])
def test_a_worker_whose_start_up_fails_ends_the_run(init, args) -> None:
    t = time.monotonic()
    with pytest.raises(WorkerDied):
        run_graph(DEPS, lambda u: u, workers=2, task=operator.neg, init=init, init_args=args)
    assert time.monotonic() - t < 60
