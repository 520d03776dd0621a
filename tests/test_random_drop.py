"""``random_drop`` and the compact plans: the same draws and the same dropped rows as the per-row Python code.

The references below are the former implementations, kept verbatim in spirit: one Python int per
blake2b digest, and a stable argsort of all the draws.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from filter_fixtures import human_texts, write_dataset
from provkit.core import hashing
from provkit.core.hashing import seeded_uniform
from provkit.engines import run_filter
from provkit.engines.local import _plan_as_decisions, decide_column_names
from provkit.filters import parse_pipeline
from provkit.filters.step import DROP_REASON, ORDER, reasons_where, row_plan
from provkit.filters.steps.origin import OriginConfig, OriginStep
from provkit.filters.steps import random_drop
from provkit.filters.steps.random_drop import RandomDropConfig, RandomDropStep, smallest_mask
from provkit.provenance import Dataset


def reference_uniform(ids: list, seed: int, salt: str) -> np.ndarray:
    """The former ``seeded_uniform``: a Python int per digest, shifted and scaled."""
    prefix = f"{salt}|{seed}|".encode()
    out = np.empty(len(ids), dtype=np.float64)
    for i, ident in enumerate(ids):
        digest = hashlib.blake2b(prefix + str(ident).encode(), digest_size=8).digest()
        out[i] = (int.from_bytes(digest, "little") >> 11) * (1.0 / (1 << 53))
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    path = tmp_path_factory.mktemp("rd") / "src"
    texts = human_texts(300, start=20)
    write_dataset(path, texts + texts[:25])  # 25 exact copies, for a pipeline where an earlier step drops rows
    return path


def test_seeded_uniform_equals_the_former_draws_on_real_ids_across_batches(real, monkeypatch):
    table = Dataset.open(real).read()
    for column in ("id", "content_hash"):
        values = table.column(column)
        expected = reference_uniform(values.to_pylist(), 7, "random_drop")
        assert np.array_equal(seeded_uniform(values, 7, salt="random_drop"), expected)
        monkeypatch.setattr(hashing, "UNIFORM_BATCH", 37)  # many batches, crossing chunk boundaries
        chunked = pa.chunked_array([values.combine_chunks().slice(0, 50), values.combine_chunks().slice(50)])
        assert np.array_equal(seeded_uniform(chunked, 7, salt="random_drop"), expected)
        monkeypatch.undo()
    with_null = pa.array(["a", None, "c"])
    assert np.array_equal(seeded_uniform(with_null, 3), reference_uniform(["a", None, "c"], 3, ""))
    assert np.array_equal(seeded_uniform(["a", "b"], 3, "x"), reference_uniform(["a", "b"], 3, "x"))
    assert seeded_uniform(pa.array([], pa.string()), 1).shape == (0,)


@pytest.mark.parametrize("buckets, chunk", [(1 << 16, 1 << 20), (4, 7), (1, 3)])
def test_smallest_mask_takes_the_rows_a_stable_argsort_takes_with_ties(monkeypatch, buckets, chunk):
    monkeypatch.setattr(random_drop, "SELECT_BUCKETS", buckets)  # few buckets, small chunks: every path
    monkeypatch.setattr(random_drop, "SELECT_CHUNK", chunk)
    rng = np.random.default_rng(0)
    arrays = (rng.integers(0, 5, 60).astype(np.float64), rng.random(50), np.zeros(9), rng.normal(size=40) * 1e3,
              seeded_uniform([f"r{i}" for i in range(45)], 2, "random_drop"))
    for u in arrays:
        for k in range(len(u) + 2):
            expected = np.zeros(len(u), dtype=bool)
            expected[np.argsort(u, kind="stable")[:k]] = True
            assert np.array_equal(smallest_mask(u, k), expected), (u, k)


@pytest.mark.parametrize("steps", [
    [{"kind": "random_drop", "count": 60, "seed": 5}],
    [{"kind": "exact_dedup"}, {"kind": "random_drop", "count": 60, "seed": 5}],
])
def test_dropped_rows_equal_the_former_argsort_of_every_draw(real, tmp_path, steps):
    r = run_filter(real, tmp_path / "out", parse_pipeline({"steps": steps}, "t"), verify=False)
    rejects = Dataset.open(tmp_path / "out").read("rejects")
    first_dropped = set(rejects.filter(pa.compute.equal(rejects.column("drop_step"), "exact_dedup"))
                        .column("id").to_pylist())
    alive = [i for i in Dataset.open(real).read().column("id").to_pylist() if i not in first_dropped]
    u = reference_uniform(alive, 5, "random_drop")
    expected = {alive[i] for i in np.argsort(u, kind="stable")[:60]}
    got = set(rejects.filter(pa.compute.equal(rejects.column("drop_reason"), "random_drop")).column("id").to_pylist())
    assert got == expected and r.report["dropped"]["random_drop"] == 60
    assert len(first_dropped) == (25 if len(steps) == 2 else 0)


def test_random_drop_plan_lists_only_the_dropped_rows_and_stands_as_the_decision_table():
    ids = [f"r{i}" for i in range(40)]
    alive = pa.table({ORDER: pa.array(np.arange(0, 80, 2), pa.int64()), "id": ids})
    plan = RandomDropStep(RandomDropConfig(count=7, seed=1)).plan(alive)
    u = reference_uniform(ids, 1, "random_drop")
    assert plan.column(ORDER).to_pylist() == sorted(2 * i for i in np.argsort(u, kind="stable")[:7])
    assert plan.column(DROP_REASON).to_pylist() == ["random_drop"] * 7
    step = RandomDropStep(RandomDropConfig(count=7, seed=1))
    assert _plan_as_decisions(step, plan, alive).equals(plan)
    stray = row_plan(np.array([1]), ["random_drop"])  # a row that is not alive: decided batch by batch instead
    assert _plan_as_decisions(step, stray, alive) is None


def test_a_weighting_steps_plan_must_list_every_alive_row():
    class Weighting(RandomDropStep):
        weight_column = "w"

    alive = pa.table({ORDER: pa.array([0, 1, 2], pa.int64()), "id": ["a", "b", "c"]})
    partial = row_plan(np.array([1]), ["x"], w=pa.array([2.0]))
    assert _plan_as_decisions(Weighting(RandomDropConfig(count=1)), partial, alive) is None
    full = row_plan(np.array([0, 1, 2]), [None, "x", None], w=pa.array([1.0, 2.0, 1.0]))
    assert _plan_as_decisions(Weighting(RandomDropConfig(count=1)), full, alive).num_rows == 3


def test_row_plan_takes_arrow_reasons_as_they_are_and_sorts_by_order():
    reasons = reasons_where(np.array([True, False, True]), "r")
    assert reasons.type == pa.string() and reasons.to_pylist() == ["r", None, "r"]
    unsorted = row_plan(np.array([5, 1, 3]), reasons, a=pa.array([50, 10, 30]))
    from_list = row_plan(np.array([5, 1, 3]), ["r", None, "r"], a=[50, 10, 30])
    assert unsorted.equals(from_list)
    assert unsorted.column(ORDER).to_pylist() == [1, 3, 5]
    assert unsorted.column(DROP_REASON).to_pylist() == [None, "r", "r"]
    assert unsorted.column("a").to_pylist() == [10, 30, 50]


def test_the_engine_keeps_the_id_column_only_for_steps_that_name_it():
    assert decide_column_names([OriginStep(OriginConfig())]) == [ORDER, "origin"]
    assert decide_column_names([OriginStep(OriginConfig()), RandomDropStep(RandomDropConfig(count=1))]) == \
        [ORDER, "origin", "id"]
