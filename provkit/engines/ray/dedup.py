"""Distributed plans of the dedup steps over Ray Data: nothing but small per-row decisions reach the driver.

The local engine plans ``minhash_dedup`` with
:func:`provkit.filters.dedup.near_duplicate_components` and
:func:`provkit.filters.dedup.elect_survivors` over every signature in one
process.  Here the same computation runs as Ray Data operators over the
*scored* dataset (signatures were computed by the step's ``score`` in
``map_batches``), and the driver receives only ``(row, survivor row,
cluster)`` for the rows that are in a cluster of two or more.

Node keys.  Every row is a graph node keyed ``key = rank << 40 | row`` with
``rank`` the origin rank of :func:`provkit.filters.dedup.origin_rank`
(human 0, model 1, other 2) and ``row`` the engine's order key.  Keys order
exactly like ``(rank, row)``, so the smallest key of a connected component
(what :func:`provkit.engines.ray.components.connected_components` labels it
with) *is* the survivor of B's rule; ``cluster`` is the smallest ``row``.

Near duplicates, step by step (the local function's steps 1-4):

1. ``map_batches``: rows alive for this step (a bit mask from the driver),
   minus empty signatures (singletons); ``key``, a 64-bit hash of the whole
   signature, the signature as ``fixed_size_binary``.
2. sort on the signature hash; per block, byte-identical signatures are
   joined to their smallest key (edges ``(key, first)``); only those
   representatives go on.
3. band hashes (:func:`provkit.filters.lsh.band_hashes`) as long rows
   ``(key, band, bucket)``, sort on ``(band, bucket)``; per bucket every pair
   (``verify``, as the local code) or each member with the bucket's smallest
   key (no ``verify``).
4. ``verify``: two sort-merge joins.  Edges ``(u, v)`` are unioned with the
   representatives' signature rows and sorted on ``u``: each block holds every
   edge of its ``u`` and ``u``'s signature, so the edge leaves as ``(v, u,
   sig_u)`` (repeated pairs are dropped here: the candidate-pair count).
   The same again on ``v`` brings ``sig_v`` next to ``sig_u``; a pair is kept
   when :func:`provkit.filters.minhash.estimate_jaccard` ``>= threshold``
   (the same float64 arithmetic as the local verification, so the same
   decisions).  Ray 2.60's ``Dataset.join`` would do it with the actor-based
   hash shuffle, an order of magnitude slower on small machines (see
   :mod:`provkit.engines.ray.components`).
5. connected components (large-star/small-star) of the identical-signature
   edges plus the verified pairs;
6. sort on the component: ``survivor = component & (2^40 - 1)``,
   ``cluster = min row``.

Exact duplicates: one sort on ``content_hash``; per group of two or more,
the same survivor and cluster.

Memory: the scored dataset stays in the object store while the plan runs;
the clustering shuffles ~``4*num_perm + 24`` bytes per live row (signature,
key, hash), ``24`` bytes per (row, band), ``16 + 4*num_perm`` per candidate
pair during the verification joins and ``16``-``32`` bytes per edge per
star round.  The driver holds ``24`` bytes per clustered row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.engines.ray.components import (
    BAND,
    BUCKET,
    COMPONENT,
    EDGE_SCHEMA,
    NODE,
    ROW,
    ClusteringStats,
    U,
    V,
    _grouped_map,
    _int64,
    bucket_pairs_block,
    connected_components,
    unique_pairs,
)
from provkit.filters.dedup import origin_rank
from provkit.filters.lsh import band_hashes, candidate_pairs
from provkit.filters.minhash import empty_signature_mask, estimate_jaccard, signature_dtype, signatures_from_arrow

ORDER = "_row"  # provkit.filters.step.ORDER (not imported: workers of this module need no filter code)
ROW_BITS = 40
ROW_MASK = (1 << ROW_BITS) - 1
KEY, OTHER, SIG, SIGHASH, FIRST = "key", "other", "sig", "sighash", "first"
SURVIVOR, CLUSTER = "survivor", "cluster"
DECISION_SCHEMA = pa.schema([(ORDER, pa.int64()), (SURVIVOR, pa.int64()), (CLUSTER, pa.int64())])


@dataclass(frozen=True)
class SigFormat:
    """How signatures travel: ``width`` entries of ``dtype`` as one ``fixed_size_binary`` value."""

    width: int
    dtype: str

    @property
    def nbytes(self) -> int:
        return self.width * np.dtype(self.dtype).itemsize

    def to_arrow(self, sigs: np.ndarray) -> pa.Array:
        data = np.ascontiguousarray(sigs, dtype=self.dtype)
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(self.nbytes), len(data), [None, pa.py_buffer(data)])

    def to_numpy(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """``(n, width)`` signatures of a null-free ``fixed_size_binary`` column."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        n = len(column)
        raw = np.frombuffer(column.buffers()[1], dtype=np.uint8, count=n * self.nbytes,
                            offset=column.offset * self.nbytes)
        return raw.view(self.dtype).reshape(n, self.width)


def node_keys(rows: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """``rank << 40 | row``: ordered like ``(rank, row)``."""
    return (np.asarray(ranks, dtype=np.int64) << ROW_BITS) | np.asarray(rows, dtype=np.int64)


def alive_bits(rows: np.ndarray, total: int) -> np.ndarray:
    """The set of alive order keys as a packed bit mask over ``0..total-1`` (``total/8`` bytes)."""
    mask = np.zeros(total, dtype=bool)
    mask[rows] = True
    return np.packbits(mask)


def _alive_rows(table: pa.Table, bits: np.ndarray, total: int) -> pa.Table:
    rows = _int64(table, ORDER)
    return table.filter(pa.array(np.unpackbits(bits, count=total).astype(bool)[rows]))


def _fixed_list(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.storage if isinstance(column.type, pa.ExtensionType) else column


# ------------------------------------------------------------------ block kernels (run in Ray tasks)


def signature_rows(table: pa.Table, *, bits: np.ndarray, total: int, scheme: str, column: str) -> pa.Table:
    """Step 1: ``(key, sighash, sig)`` for the alive rows with a non-empty signature."""
    table = _alive_rows(table, bits, total)
    sigs = signatures_from_arrow(_fixed_list(table.column(column)))
    fmt = SigFormat(sigs.shape[1], sigs.dtype.str)
    live = ~empty_signature_mask(sigs, scheme) if len(sigs) else np.zeros(0, bool)
    keys = node_keys(_int64(table, ORDER), origin_rank(table.column("origin")))[live]
    sigs = sigs[live]
    whole = band_hashes(sigs, 1, sigs.shape[1])[:, 0] if len(sigs) else np.zeros(0, np.uint64)
    return pa.table({KEY: keys, SIGHASH: whole, SIG: fmt.to_arrow(sigs)})


def identical_block(table: pa.Table, *, fmt: SigFormat) -> pa.Table:
    """Step 2: ``(key, first, sig)``; ``first`` = the smallest key with a byte-identical signature."""
    keys = _int64(table, KEY)
    if len(keys) == 0:
        return pa.table({KEY: keys, FIRST: keys, SIG: fmt.to_arrow(np.zeros((0, fmt.width), fmt.dtype))})
    sigs = fmt.to_numpy(table.column(SIG))
    rows = np.ascontiguousarray(sigs).view(np.dtype((np.void, fmt.nbytes))).reshape(-1)
    _, inverse = np.unique(rows, return_inverse=True)
    inverse = inverse.reshape(-1)
    first = np.full(inverse.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, inverse, keys)
    return pa.table({KEY: keys, FIRST: first[inverse], SIG: table.column(SIG)})


def identical_edges(table: pa.Table) -> pa.Table:
    """Edges ``(key, first)`` of the rows that are not their group's representative."""
    keys, first = _int64(table, KEY), _int64(table, FIRST)
    other = keys != first
    return pa.table({U: keys[other], V: first[other]}, schema=EDGE_SCHEMA)


def representatives(table: pa.Table) -> pa.Table:
    """``(key, other = -1, sig)``: the signature rows of the representatives (join input)."""
    keys, first = _int64(table, KEY), _int64(table, FIRST)
    rep = keys == first
    return pa.table({KEY: keys[rep], OTHER: np.full(int(rep.sum()), -1, np.int64),
                     SIG: table.column(SIG).filter(pa.array(rep))})


def band_rows(table: pa.Table, *, fmt: SigFormat, bands: int, rows: int) -> pa.Table:
    """Step 3: one ``(row = key, band, bucket)`` per representative and band."""
    keys = _int64(table, KEY)
    hashed = band_hashes(fmt.to_numpy(table.column(SIG)), bands, rows) if len(keys) else np.zeros((0, bands), np.uint64)
    return pa.table({ROW: np.repeat(keys, bands), BAND: np.tile(np.arange(bands, dtype=np.int32), len(keys)),
                     BUCKET: hashed.reshape(-1)})


def bucket_all_pairs_block(table: pa.Table) -> pa.Table:
    """Every pair inside each ``(band, bucket)`` of a block, as ``(larger key, smaller key)``."""
    row = _int64(table, ROW)
    band = np.asarray(table.column(BAND).to_numpy(zero_copy_only=False))
    bucket = np.asarray(table.column(BUCKET).to_numpy(zero_copy_only=False)).astype(np.uint64)
    us, vs = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for j in np.unique(band):
        sel = band == j
        pairs = candidate_pairs(bucket[sel][:, None], all_pairs=True)
        a, b = row[sel][pairs[:, 0]], row[sel][pairs[:, 1]]
        us.append(np.maximum(a, b))
        vs.append(np.minimum(a, b))
    return pa.table({U: np.concatenate(us), V: np.concatenate(vs)}, schema=EDGE_SCHEMA)


def edge_join_rows(table: pa.Table, *, fmt: SigFormat) -> pa.Table:
    """Edges ``(u, v)`` as join rows ``(key = u, other = v, sig = null)``."""
    n = table.num_rows
    return pa.table({KEY: _int64(table, U), OTHER: _int64(table, V), SIG: pa.nulls(n, pa.binary(fmt.nbytes))})


def _split_join_block(table: pa.Table, fmt: SigFormat) -> tuple[np.ndarray, np.ndarray, pa.Table, np.ndarray]:
    """``(edge keys, edge others, edge rows, sig of each edge's key)`` of a block sorted on ``key``."""
    keys, other = _int64(table, KEY), _int64(table, OTHER)
    is_sig = other < 0
    sig_keys = keys[is_sig]
    sig_of = fmt.to_numpy(table.column(SIG).filter(pa.array(is_sig)))
    order = np.argsort(sig_keys, kind="stable")
    edges = table.filter(pa.array(~is_sig))
    at = order[np.searchsorted(sig_keys[order], keys[~is_sig])] if len(order) else np.zeros(0, np.int64)
    return keys[~is_sig], other[~is_sig], edges, sig_of[at]


def attach_first_signature(table: pa.Table, *, fmt: SigFormat) -> pa.Table:
    """Join 1 (block holds all edges of its ``u`` and ``u``'s signature): ``(key = v, other = u, sig = sig_u)``.

    Repeated pairs (two shared bands) meet in the same block and leave once.
    """
    u, v, _, sig_u = _split_join_block(table, fmt)
    order = np.lexsort((v, u))
    keep = np.ones(len(u), dtype=bool)
    keep[1:] = (u[order][1:] != u[order][:-1]) | (v[order][1:] != v[order][:-1])
    pick = order[keep]
    return pa.table({KEY: v[pick], OTHER: u[pick], SIG: fmt.to_arrow(sig_u[pick])})


def verify_block(table: pa.Table, *, fmt: SigFormat, threshold: float) -> pa.Table:
    """Join 2: the pairs ``(u, v)`` whose estimated Jaccard is ``>= threshold``."""
    v, u, edges, sig_v = _split_join_block(table, fmt)
    sig_u = fmt.to_numpy(edges.column(SIG))
    m = len(v)
    both = np.concatenate([sig_u, sig_v]) if m else np.zeros((0, fmt.width), fmt.dtype)
    keep = estimate_jaccard(both, np.arange(m), np.arange(m) + m) >= threshold
    return pa.table({U: u[keep], V: v[keep]}, schema=EDGE_SCHEMA)


def elect_block(table: pa.Table) -> pa.Table:
    """Step 6 on a block holding whole components: ``(row, survivor row, cluster = min row)``."""
    node, comp = _int64(table, NODE), _int64(table, COMPONENT)
    rows = node & ROW_MASK
    if len(rows) == 0:
        return DECISION_SCHEMA.empty_table()
    _, inverse = np.unique(comp, return_inverse=True)
    cluster = np.full(inverse.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(cluster, inverse, rows)
    return pa.table({ORDER: rows, SURVIVOR: comp & ROW_MASK, CLUSTER: cluster[inverse]}, schema=DECISION_SCHEMA)


def hash_rows(table: pa.Table, *, bits: np.ndarray, total: int) -> pa.Table:
    """Exact dedup input: ``(key, content_hash)`` of the alive rows."""
    table = _alive_rows(table, bits, total)
    keys = node_keys(_int64(table, ORDER), origin_rank(table.column("origin")))
    return pa.table({KEY: keys, "content_hash": table.column("content_hash").cast(pa.string())})


def exact_groups_block(table: pa.Table) -> pa.Table:
    """Groups of equal ``content_hash`` (size >= 2) of a block: ``(row, survivor row, cluster)``."""
    keys = _int64(table, KEY)
    if len(keys) == 0:
        return DECISION_SCHEMA.empty_table()
    encoded = pc.dictionary_encode(table.column("content_hash").combine_chunks())
    group = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    size = np.bincount(group)
    best = np.full(len(size), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, group, keys)
    rows = keys & ROW_MASK
    cluster = np.full(len(size), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(cluster, group, rows)
    many = size[group] >= 2
    return pa.table({ORDER: rows[many], SURVIVOR: (best & ROW_MASK)[group][many], CLUSTER: cluster[group][many]},
                    schema=DECISION_SCHEMA)


# ------------------------------------------------------------------ Ray Data drivers


def _map(ds: Any, fn: Any, **kwargs: Any) -> Any:
    return ds.map_batches(fn, batch_format="pyarrow", batch_size=None, fn_kwargs=kwargs or None)


def _union_sorted(left: Any, right: Any, fn: Any, parts: int, **kwargs: Any) -> Any:
    """``fn`` over whole sort partitions of ``left ∪ right`` on ``key`` (a sort-merge join)."""
    return _grouped_map(left.union(right), [KEY], lambda t: fn(t, **kwargs), parts)


def near_duplicate_decisions(scored: Any, column: str, alive_rows: np.ndarray, total: int, config: Any,
                             parts: int, stats: ClusteringStats) -> pa.Table:
    """``(row, survivor, cluster)`` of every alive row in a near-duplicate cluster of two or more.

    ``config`` is a :class:`provkit.filters.dedup.NearDupConfig`; ``scored`` a
    Ray Dataset with ``_row``, ``origin`` and the signature ``column``.
    """
    bits = alive_bits(alive_rows, total)
    live = _map(scored.select_columns([ORDER, "origin", column]), signature_rows, bits=bits, total=total,
                scheme=config.scheme, column=column).materialize()
    if live.count() == 0:
        return DECISION_SCHEMA.empty_table()
    fmt = sig_format(config)
    grouped = _grouped_map(live, [SIGHASH], lambda t: identical_block(t, fmt=fmt), parts).materialize()
    same = _map(grouped, identical_edges).materialize()
    reps = _map(grouped, representatives).materialize()
    bands, rows = config.banding()
    long = _map(reps, band_rows, fmt=fmt, bands=bands, rows=rows)
    pair_fn = bucket_all_pairs_block if config.verify else bucket_pairs_block
    pairs = _grouped_map(long, [BAND, BUCKET], pair_fn, parts)
    if config.verify:
        with_u = _union_sorted(_map(pairs, edge_join_rows, fmt=fmt), reps, attach_first_signature, parts,
                               fmt=fmt).materialize()
        stats.candidate_pairs = with_u.count()
        edges = _union_sorted(with_u, reps, verify_block, parts, fmt=fmt, threshold=config.threshold)
    else:
        edges = _map(pairs, _unique_edges).materialize()
        stats.candidate_pairs = edges.count()
    graph = same.union(edges).materialize()
    if graph.count() == 0:
        return DECISION_SCHEMA.empty_table()
    components = connected_components(graph, num_partitions=parts, stats=stats)
    return _collect(_grouped_map(components, [COMPONENT], elect_block, parts))


def exact_duplicate_decisions(scored: Any, alive_rows: np.ndarray, total: int, parts: int) -> pa.Table:
    """``(row, survivor, cluster)`` of every alive row whose ``content_hash`` another alive row shares."""
    bits = alive_bits(alive_rows, total)
    keyed = _map(scored.select_columns([ORDER, "origin", "content_hash"]), hash_rows, bits=bits, total=total)
    return _collect(_grouped_map(keyed, ["content_hash"], exact_groups_block, parts))


def _unique_edges(table: pa.Table) -> pa.Table:
    u, v = unique_pairs(_int64(table, U), _int64(table, V))
    return pa.table({U: u, V: v}, schema=EDGE_SCHEMA)


def sig_format(config: Any) -> SigFormat:
    """The signature width and dtype of a :class:`provkit.filters.dedup.NearDupConfig`."""
    return SigFormat(config.num_perm, signature_dtype(config.scheme).str)


def _collect(ds: Any) -> pa.Table:
    """The small decision table on the driver (only rows in clusters of two or more)."""
    tables = [t for t in ds.iter_batches(batch_size=None, batch_format="pyarrow") if t.num_rows]
    return pa.concat_tables(tables).combine_chunks() if tables else DECISION_SCHEMA.empty_table()
