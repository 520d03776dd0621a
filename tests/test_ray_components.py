"""Distributed near-duplicate clustering: candidate pairs and large-star/small-star components vs scipy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from provkit.engines.ray import components as rc


def expected_components(u: np.ndarray, v: np.ndarray) -> dict[int, int]:
    """node -> smallest node of its component (scipy), for every node on a non-loop edge."""
    n = int(max(u.max(), v.max())) + 1
    graph = coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n))
    k, label = scipy_components(graph, directed=False)
    mins = np.full(k, n)
    np.minimum.at(mins, label, np.arange(n))
    nodes = set(u[u != v].tolist()) | set(v[u != v].tolist())
    return {x: int(mins[label[x]]) for x in nodes}


def in_process_components(u: np.ndarray, v: np.ndarray) -> tuple[dict[int, int], int]:
    """The same alternation as ``connected_components``, with each pass's kernel on one block."""
    current, rounds = pa.table({rc.U: u, rc.V: v}), 0
    while True:
        large = rc.large_star_block(rc.both_directions(current))
        rounds += 1
        if large.num_rows == 0 or int(np.sum(large.column(rc.BAD).to_numpy())) == 0:
            comp = rc._star_to_components(large)
            return dict(zip(comp.column(rc.NODE).to_pylist(), comp.column(rc.COMPONENT).to_pylist())), rounds
        current = rc.small_star_block(rc.larger_first(large))


def test_kernels_match_scipy_on_random_graphs():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n, m = int(rng.integers(2, 120)), int(rng.integers(1, 200))
        u, v = rng.integers(0, n, m), rng.integers(0, n, m)
        got, _ = in_process_components(u, v)
        assert got == expected_components(u, v)


def test_long_chain_converges_in_few_rounds():
    order = np.random.default_rng(3).permutation(2000)
    got, rounds = in_process_components(order[:-1], order[1:])
    assert set(got.values()) == {0} and len(got) == 2000
    assert rounds < 20  # O(log^2 n), not O(n) like label propagation


def test_star_test_is_local():
    # a star forest centred on minima passes; a chain 1-2-3 does not (node 2 has two neighbours)
    star = rc.large_star_block(rc.both_directions(pa.table({rc.U: np.array([5, 7, 9]), rc.V: np.array([1, 1, 1])})))
    assert int(np.sum(star.column(rc.BAD).to_numpy())) == 0
    chain = rc.large_star_block(rc.both_directions(pa.table({rc.U: np.array([1, 2]), rc.V: np.array([2, 3])})))
    assert int(np.sum(chain.column(rc.BAD).to_numpy())) == 1


def test_bucket_pairs_star_each_bucket_on_its_minimum():
    table = pa.table({rc.ROW: np.array([4, 2, 9, 7, 3]), rc.BAND: np.array([0, 0, 0, 1, 1], dtype=np.int32),
                      rc.BUCKET: np.array([11, 11, 11, 11, 11], dtype=np.uint64)})
    pairs = rc.bucket_pairs_block(table)
    assert sorted(zip(pairs.column(rc.U).to_pylist(), pairs.column(rc.V).to_pylist())) == [(4, 2), (7, 3), (9, 2)]


# ------------------------------------------------------------------ on a local Ray instance


@pytest.fixture(scope="module")
def ray_data():
    ray = pytest.importorskip("ray")
    from provkit.engines.ray import RayOptions, start_ray

    start_ray(RayOptions(num_cpus=2, object_store_bytes=200 << 20))
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray.data


@pytest.mark.ray
def test_distributed_components_equal_scipy(ray_data):
    rng = np.random.default_rng(11)
    chain = 100 + rng.permutation(60)  # A~B, B~C, A!~C ... -> one cluster
    star_u, star_v = np.full(30, 300), np.arange(301, 331)  # centre is the minimum
    star2_u, star2_v = np.full(10, 420), np.arange(400, 410)  # centre is not the minimum
    rand_u, rand_v = 1000 + rng.integers(0, 400, 300), 1000 + rng.integers(0, 400, 300)
    u = np.concatenate([chain[:-1], star_u, star2_u, rand_u, [5, 5]])
    v = np.concatenate([chain[1:], star_v, star2_v, rand_v, [6, 5]])
    stats = rc.ClusteringStats()
    ds = ray_data.from_arrow(pa.table({rc.U: u, rc.V: v})).repartition(3)
    out = rc.connected_components(ds, num_partitions=2, stats=stats).to_pandas()
    got = dict(zip(out[rc.NODE].tolist(), out[rc.COMPONENT].tolist()))
    assert len(out) == len(got)  # every node exactly once
    assert got == expected_components(u, v)
    assert {got[int(x)] for x in chain} == {100}
    assert stats.rounds >= 2


@pytest.mark.ray
def test_band_buckets_to_clusters(ray_data):
    # rows 0..5: 0~1 share band 0, 1~2 share band 1 (0 and 2 share nothing), 3~5 share band 2, 4 alone
    bands = np.array([[1, 10, 20], [1, 11, 21], [2, 11, 22], [3, 12, 23], [4, 13, 24], [5, 14, 23]], dtype=np.uint64)
    rows = np.array([10, 11, 12, 13, 14, 15], dtype=np.int64)
    table = pa.table({"_row": rows, "bands": pa.array(list(bands), type=pa.list_(pa.uint64()))})
    comp, stats = rc.cluster_band_hashes(ray_data.from_arrow(table), "_row", "bands", num_partitions=2)
    got = dict(zip(*[comp.to_pandas()[c].tolist() for c in (rc.NODE, rc.COMPONENT)]))
    assert got == {10: 10, 11: 10, 12: 10, 13: 13, 15: 13}
    assert stats.candidate_pairs == 3
