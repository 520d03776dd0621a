"""Distributed near-duplicate clustering over Ray Data: band buckets -> candidate pairs -> components.

Everything here runs as Ray Data operators; the driver only ever sees counts
(candidate pairs, rounds, the convergence count), never pairs or nodes.

Grouping primitive.  ``ds.sort(keys)`` range-partitions rows so that all rows
sharing a key land in the same output block (the contract Ray's own
``groupby().map_groups()`` relies on under the sort shuffle); a
``map_batches(..., batch_size=None)`` UDF then sees whole blocks and groups
them *vectorized* with NumPy (``lexsort`` + ``reduceat``) instead of one
Python call per group.  The pull-based sort shuffle runs as plain tasks; on a
small machine it is an order of magnitude faster than the actor-based hash
shuffle (0.3 s vs 4.6 s for one 5,000-row groupby on 2 cores), so
:func:`use_sort_shuffle` selects it.

Candidate pairs (:func:`bucket_candidate_pairs`).  Rows ``(row, band, h)``
are grouped on ``(band, h)``; every member of a bucket is paired with the
bucket's smallest row key, so a bucket of size ``s`` gives ``s - 1`` edges
(a star) instead of ``s(s-1)/2``, with the same connectivity.

Connected components (:func:`connected_components`): the alternating
large-star / small-star algorithm of Kiveris et al., "Connected Components in
MapReduce and Beyond" (SoCC 2014), as used by text-dedup and NeMo Curator.
With ``Γ(u)`` the neighbours of ``u`` and ``Γ⁺(u) = Γ(u) ∪ {u}``:

* large-star(u): ``m = min Γ⁺(u)``; for every ``v ∈ Γ(u)`` with ``v > u``
  emit the edge ``(v, m)``;
* small-star(u): ``N = {v ∈ Γ(u) : v < u}``, ``m = min N ∪ {u}``; emit
  ``(v, m)`` for ``v ∈ N ∪ {u}``, ``v ≠ m``.

Both preserve connectivity and the minimum of each component, and the
alternation converges in O(log² n) rounds to a forest of stars whose centres
are the component minima.  Convergence is tested *locally* inside the
large-star pass: the graph is such a star forest iff every node ``u`` either
has only larger neighbours (a centre) or exactly one neighbour, smaller than
``u`` (a leaf).  (If leaf ``y``'s neighbour ``z < y`` were not a centre it
would need a single smaller neighbour, but ``y`` is a second one.)  Each block
reports how many of its nodes break this; the driver sums those counts.

Memory: a shuffle holds each edge as two int64 (16 bytes; the large-star
input holds both directions, 32 bytes per undirected edge) plus Arrow/Ray
overhead, spread over the cluster's object stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

U, V, BAD = "u", "v", "bad"
NODE, COMPONENT = "node", "component"
BAND, BUCKET, ROW = "band", "bucket", "row"
EDGE_SCHEMA = pa.schema([(U, pa.int64()), (V, pa.int64())])
STAR_SCHEMA = pa.schema([(U, pa.int64()), (V, pa.int64()), (BAD, pa.int64())])
COMPONENT_SCHEMA = pa.schema([(NODE, pa.int64()), (COMPONENT, pa.int64())])


@dataclass
class ClusteringStats:
    """What the distributed clustering did: candidate pairs, large-star/small-star rounds."""

    candidate_pairs: int = 0
    rounds: int = 0


# ------------------------------------------------------------------ vectorized block kernels


def _int64(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.int64)


def unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``(a, b)`` pairs, sorted by ``a`` then ``b``."""
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[keep], b[keep]


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if len(sorted_keys) else np.zeros(0, int)


def both_directions(table: pa.Table) -> pa.Table:
    """Each undirected edge ``{u, v}`` (u ≠ v) as the two rows ``(u, v)`` and ``(v, u)``."""
    u, v = _int64(table, U), _int64(table, V)
    keep = u != v
    u, v = u[keep], v[keep]
    return pa.table({U: np.concatenate([u, v]), V: np.concatenate([v, u])}, schema=EDGE_SCHEMA)


def larger_first(table: pa.Table) -> pa.Table:
    """Edges oriented ``(max, min)``; self loops and sentinel rows dropped (small-star input)."""
    u, v = _int64(table, U), _int64(table, V)
    keep = (u != v) & (u >= 0) & (v >= 0)
    u, v = u[keep], v[keep]
    return pa.table({U: np.maximum(u, v), V: np.minimum(u, v)}, schema=EDGE_SCHEMA)


def large_star_block(table: pa.Table) -> pa.Table:
    """Large-star on a block holding every neighbour of each of its ``u`` (both directions).

    Emits ``(v, min Γ⁺(u))`` for ``v > u``, ``(u, u)`` for each centre (so the
    final pass lists every node with its component), and one sentinel row
    ``(-1, -1, bad)`` with the number of nodes that are neither centre nor leaf.
    """
    u, v = unique_pairs(_int64(table, U), _int64(table, V))
    if len(u) == 0:
        return STAR_SCHEMA.empty_table()
    starts = _group_starts(u)
    degree = np.diff(np.r_[starts, len(u)])
    node = u[starts]
    nmin = np.minimum.reduceat(v, starts)
    centre = nmin > node
    leaf = (degree == 1) & (nmin < node)
    m_row = np.repeat(np.minimum(node, nmin), degree)
    up = v > u
    child = np.concatenate([v[up], node[centre], [-1]])
    parent = np.concatenate([m_row[up], node[centre], [-1]])
    bad = np.zeros(len(child), dtype=np.int64)
    bad[-1] = int(np.count_nonzero(~(centre | leaf)))
    return pa.table({U: child, V: parent, BAD: bad}, schema=STAR_SCHEMA)


def small_star_block(table: pa.Table) -> pa.Table:
    """Small-star on a block of edges ``(u, v)``, ``u > v``, holding every smaller neighbour of its ``u``.

    With ``m = min N(u)``: emits ``(v, m)`` for ``v ∈ N(u), v ≠ m`` and ``(u, m)``;
    every output edge is oriented (larger, smaller).
    """
    u, v = unique_pairs(_int64(table, U), _int64(table, V))
    if len(u) == 0:
        return EDGE_SCHEMA.empty_table()
    starts = _group_starts(u)
    degree = np.diff(np.r_[starts, len(u)])
    m = v[starts]  # sorted by (u, v): the first v of each group is its minimum
    m_row = np.repeat(m, degree)
    other = v != m_row
    child = np.concatenate([v[other], u[starts]])
    parent = np.concatenate([m_row[other], m])
    return pa.table({U: child, V: parent}, schema=EDGE_SCHEMA)


def long_band_rows(table: pa.Table, row_column: str, bands_column: str) -> pa.Table:
    """One row ``(row, band, bucket)`` per (record, band) from a list<uint64> band-hash column."""
    rows = _int64(table, row_column)
    col = table.column(bands_column)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if isinstance(col.type, pa.ExtensionType):  # Ray's tensor columns store a list underneath
        col = col.storage
    n = len(rows)
    flat = np.asarray(pc.list_flatten(col).to_numpy(zero_copy_only=False)).astype(np.uint64, copy=False)
    bands = len(flat) // n if n else 0
    if bands * n != len(flat):
        raise ValueError(f"column {bands_column!r}: every row needs the same number of band hashes")
    return pa.table(
        {
            ROW: np.repeat(rows, bands),
            BAND: np.tile(np.arange(bands, dtype=np.int32), n),
            BUCKET: flat,
        }
    )


def bucket_pairs_block(table: pa.Table) -> pa.Table:
    """For each ``(band, bucket)`` group of a block: edges ``(member, smallest member)``."""
    if table.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    row = _int64(table, ROW)
    band = np.asarray(table.column(BAND).to_numpy(zero_copy_only=False))
    bucket = np.asarray(table.column(BUCKET).to_numpy(zero_copy_only=False))
    order = np.lexsort((row, bucket, band))
    row, band, bucket = row[order], band[order], bucket[order]
    new = np.ones(len(row), dtype=bool)
    new[1:] = (band[1:] != band[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(new)
    first = np.repeat(row[starts], np.diff(np.r_[starts, len(row)]))
    pair = row != first
    return pa.table({U: row[pair], V: first[pair]}, schema=EDGE_SCHEMA)


# ------------------------------------------------------------------ Ray Data drivers


def use_sort_shuffle(ds: Any = None) -> None:
    """Select Ray Data's pull-based sort shuffle (plain tasks) for new datasets and for ``ds``."""
    import ray.data  # lazy: Ray is the optional extra provkit[ray]
    from ray.data.context import ShuffleStrategy  # lazy: Ray is the optional extra provkit[ray]

    ray.data.DataContext.get_current().shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    if ds is not None:  # a dataset keeps the context it was created under
        ds.context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED


def _partitions(ds: Any, num_partitions: int | None) -> int:
    if num_partitions:
        return int(num_partitions)
    import ray  # lazy: Ray is the optional extra provkit[ray]

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _grouped_map(ds: Any, key: list[str], fn: Any, partitions: int) -> Any:
    """``fn`` over whole sort partitions of ``ds`` on ``key`` (all rows of a key in one block)."""
    use_sort_shuffle(ds)
    return ds.repartition(partitions).sort(key).map_batches(fn, batch_size=None, batch_format="pyarrow")


def bucket_candidate_pairs(
    ds: Any, row_column: str, bands_column: str, *, num_partitions: int | None = None
) -> Any:
    """Ray Dataset of candidate edges ``(u, v)`` (``v`` = the bucket's smallest row key).

    ``ds`` has an int64 ``row_column`` and a list<uint64> ``bands_column``
    (one hash per LSH band).  Groupby on ``(band, bucket)``; pairs repeat when
    two rows share several bands (the clustering removes repeats).
    """
    parts = _partitions(ds, num_partitions)
    long = ds.map_batches(
        long_band_rows, batch_format="pyarrow", fn_kwargs={"row_column": row_column, "bands_column": bands_column}
    )
    return _grouped_map(long, [BAND, BUCKET], bucket_pairs_block, parts)


def _sum_or_zero(ds: Any, column: str) -> int:
    value = ds.sum(column)
    return int(value) if value is not None else 0


def connected_components(
    edges: Any, *, num_partitions: int | None = None, max_rounds: int = 200, stats: ClusteringStats | None = None
) -> Any:
    """Ray Dataset ``(node, component)`` for every node of the undirected graph ``edges`` (u, v).

    ``component`` is the smallest node id of the node's connected component.
    Nodes without edges are not listed (they are their own component).
    Alternates large-star and small-star passes until the local star test
    (module docstring) holds everywhere; ``stats.rounds`` counts the
    large-star passes.
    """
    parts = _partitions(edges, num_partitions)
    stats = stats if stats is not None else ClusteringStats()
    current = edges
    for _ in range(max_rounds):
        directed = current.map_batches(both_directions, batch_format="pyarrow")
        large = _grouped_map(directed, [U], large_star_block, parts).materialize()
        stats.rounds += 1
        if _sum_or_zero(large, BAD) == 0:
            return large.map_batches(_star_to_components, batch_format="pyarrow")
        oriented = large.map_batches(larger_first, batch_format="pyarrow")
        current = _grouped_map(oriented, [U], small_star_block, parts).materialize()
    raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")


def _star_to_components(table: pa.Table) -> pa.Table:
    u, v = _int64(table, U), _int64(table, V)
    keep = u >= 0
    return pa.table({NODE: u[keep], COMPONENT: v[keep]}, schema=COMPONENT_SCHEMA)


def cluster_band_hashes(
    ds: Any, row_column: str, bands_column: str, *, num_partitions: int | None = None
) -> tuple[Any, ClusteringStats]:
    """Band hashes -> candidate pairs -> components: ``(node, component)`` for rows in any bucket pair."""
    stats = ClusteringStats()
    pairs = bucket_candidate_pairs(ds, row_column, bands_column, num_partitions=num_partitions).materialize()
    stats.candidate_pairs = pairs.count()
    return connected_components(pairs, num_partitions=num_partitions, stats=stats), stats
