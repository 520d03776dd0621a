"""Exact and near-duplicate dedup: clusters, and which member of each cluster survives.

Both kinds end in the same decision, :func:`elect_survivors`:

* a **cluster** is a set of rows judged duplicates of each other (same
  ``content_hash``; or a connected component of the MinHash-LSH graph);
* its **survivor** is the member with the smallest ``(origin rank, order)``:
  ``human`` (0) before ``model`` (1) before any other origin (2), then the
  earliest row (the engine's ingest-order key, or the row position);
* every row gets ``cluster`` (the smallest ``order`` in its cluster),
  ``survivor`` (the survivor's row position) and, via
  :meth:`DedupResult.dup_of`, the survivor's id (null for survivors).

Near-duplicates (:func:`near_duplicate_components`), for signatures from
:func:`provkit.filters.minhash.signatures`:

1. rows without words (the empty signature) are singletons — the Jaccard
   similarity of two empty sets is undefined;
2. rows with identical signatures (estimated Jaccard 1) are joined to the
   first of them, and only those representatives go through LSH.  This does not
   change the components (identical signatures share every bucket and pass
   every verification) but keeps buckets of exact copies from costing
   ``m^2`` pairs;
3. LSH banding with ``(b, r)`` from :func:`provkit.filters.lsh.optimal_params`
   gives candidate pairs; with ``verify`` a pair is an edge only when its
   estimated Jaccard ``(1/K) #{k: sig_i[k] = sig_j[k]}`` is ``>= threshold``;
4. connected components of the edges (:func:`provkit.filters.components.component_labels`).

Memory per record: the signature (``4*num_perm`` bytes for ``affine32``), the
band hashes (``8*b``), ~``40`` bytes of sort keys and labels, plus ``16``
bytes per candidate pair.  At 128 permutations and threshold 0.8 (``b=16``)
that is about 700 bytes per record.  Exact dedup needs the hashes
(~``64`` bytes each as dictionary-encoded strings) plus ``24`` bytes per record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from provkit.filters.components import component_labels
from provkit.filters.lsh import band_hashes, candidate_pairs, optimal_params
from provkit.filters.minhash import MinHashConfig, empty_signature_mask, estimate_jaccard

ORIGIN_RANK: dict[str, int] = {"human": 0, "model": 1}
"""Survivor preference by origin (lower wins); every other origin ranks 2."""
OTHER_RANK = 2


@dataclass(frozen=True)
class NearDupConfig:
    """Near-duplicate dedup: shingling/MinHash settings, the Jaccard threshold and the LSH weights.

    ``bands``/``rows`` override the optimised banding; ``verify`` keeps only
    candidate pairs whose estimated Jaccard reaches ``threshold``.  The default
    weights favour recall (``fp 0.05 : fn 0.95``; datasketch's own default is
    0.5 : 0.5): verification removes the extra false-positive candidates, while
    a pair LSH never proposes is lost.  At threshold 0.8 and 128 permutations
    this gives ``b=16, r=8`` (P[candidate | J=0.85] = 0.99) instead of ``b=9,
    r=13`` (0.69).
    """

    threshold: float = 0.8
    ngram: int = 5
    num_perm: int = 128
    seed: int = 1
    scheme: str = "affine32"
    hashfunc: str = "fast"
    fp_weight: float = 0.05
    fn_weight: float = 0.95
    bands: int | None = None
    rows: int | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}")
        self.minhash()  # validates ngram, num_perm, scheme, hashfunc

    def minhash(self) -> MinHashConfig:
        """The signature settings."""
        return MinHashConfig(ngram=self.ngram, num_perm=self.num_perm, seed=self.seed,
                             scheme=self.scheme, hashfunc=self.hashfunc)

    def banding(self) -> tuple[int, int]:
        """``(bands, rows)``: the override, or datasketch's optimum for ``threshold``."""
        if self.bands is not None:
            return self.bands, self.rows
        return optimal_params(self.threshold, self.num_perm, self.fp_weight, self.fn_weight)


@dataclass(frozen=True)
class DedupResult:
    """Per row: ``cluster`` id (smallest ``order`` in the cluster) and ``survivor`` row position."""

    cluster: np.ndarray
    survivor: np.ndarray

    @property
    def is_survivor(self) -> np.ndarray:
        """True for the kept member of each cluster (and every singleton)."""
        return self.survivor == np.arange(len(self.survivor))

    @property
    def num_duplicates(self) -> int:
        """Rows that are not survivors."""
        return int(len(self.survivor) - np.count_nonzero(self.is_survivor))

    def dup_of(self, ids: Sequence[str] | pa.Array) -> list[str | None]:
        """The survivor's id for each duplicate row, None for survivors."""
        values = ids.to_pylist() if isinstance(ids, (pa.Array, pa.ChunkedArray)) else list(ids)
        return [None if s == i else values[s] for i, s in enumerate(self.survivor.tolist())]


def origin_rank(origins: Sequence[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``int8`` survivor preference per row: human 0, model 1, other origins 2."""
    if isinstance(origins, pa.ChunkedArray):
        origins = origins.combine_chunks()
    if isinstance(origins, pa.DictionaryArray):
        table = np.array([ORIGIN_RANK.get(v, OTHER_RANK) for v in origins.dictionary.to_pylist()] or [OTHER_RANK],
                         dtype=np.int8)
        return table[origins.indices.to_numpy(zero_copy_only=False)]
    values = origins.to_pylist() if isinstance(origins, pa.Array) else list(origins)
    return np.array([ORIGIN_RANK.get(v, OTHER_RANK) for v in values], dtype=np.int8)


def _order_or_positions(order: Sequence[int] | np.ndarray | None, n: int) -> np.ndarray:
    if order is None:
        return np.arange(n, dtype=np.int64)
    order = np.asarray(order, dtype=np.int64)
    if len(order) != n:
        raise ValueError(f"order has {len(order)} values for {n} rows")
    return order


def elect_survivors(
    groups: np.ndarray, origins: Sequence[str] | pa.Array, order: Sequence[int] | np.ndarray | None = None
) -> DedupResult:
    """Cluster id and survivor per row for any grouping: the survivor minimises ``(origin rank, order)``."""
    groups = np.asarray(groups)
    n = len(groups)
    order = _order_or_positions(order, n)
    if n == 0:
        return DedupResult(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    rank = origin_rank(origins)
    if len(rank) != n:
        raise ValueError(f"origins has {len(rank)} values for {n} rows")
    idx = np.lexsort((order, rank, groups))
    sorted_groups = groups[idx]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, n])
    survivor, cluster = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    survivor[idx] = np.repeat(idx[starts], sizes)
    cluster[idx] = np.repeat(np.minimum.reduceat(order[idx], starts), sizes)
    return DedupResult(cluster, survivor)


def hash_groups(content_hashes: Sequence[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``int64`` group per row: equal ``content_hash`` values share a group."""
    arr = content_hashes if isinstance(content_hashes, (pa.Array, pa.ChunkedArray)) else pa.array(content_hashes)
    encoded = arr.dictionary_encode()
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def exact_duplicates(
    content_hashes: Sequence[str] | pa.Array, origins: Sequence[str] | pa.Array,
    order: Sequence[int] | np.ndarray | None = None,
) -> DedupResult:
    """Exact dedup: rows with equal ``content_hash`` form a cluster; the survivor rule picks the kept one."""
    return elect_survivors(hash_groups(content_hashes), origins, order)


def identical_signature_groups(sigs: np.ndarray) -> np.ndarray:
    """``int64[n]``: for each row, the first row with a byte-identical signature."""
    if len(sigs) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.ascontiguousarray(sigs).view(np.dtype((np.void, sigs.dtype.itemsize * sigs.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)].astype(np.int64)


def verified_pairs(sigs: np.ndarray, pairs: np.ndarray, threshold: float) -> np.ndarray:
    """The pairs whose estimated Jaccard is ``>= threshold``."""
    if len(pairs) == 0:
        return pairs
    keep = estimate_jaccard(sigs, pairs[:, 0], pairs[:, 1]) >= threshold
    return pairs[keep]


def near_duplicate_components(sigs: np.ndarray, config: NearDupConfig = NearDupConfig()) -> np.ndarray:
    """``int64[n]`` component label (smallest member row) of the near-duplicate graph (module docstring)."""
    n = len(sigs)
    live = np.flatnonzero(~empty_signature_mask(sigs, config.scheme))
    same = live[identical_signature_groups(sigs[live])]           # row -> first identical row
    reps = np.unique(same)
    bands, rows = config.banding()
    rep_pairs = candidate_pairs(band_hashes(sigs[reps], bands, rows), all_pairs=config.verify)
    if config.verify:
        rep_pairs = verified_pairs(sigs[reps], rep_pairs, config.threshold)
    edges = np.concatenate([np.stack([live, same], axis=1), reps[rep_pairs]]) if len(live) else np.zeros((0, 2), np.int64)
    return component_labels(n, edges)


def near_duplicates(
    sigs: np.ndarray, origins: Sequence[str] | pa.Array, order: Sequence[int] | np.ndarray | None = None,
    config: NearDupConfig = NearDupConfig(),
) -> DedupResult:
    """Near-duplicate dedup of rows with MinHash signatures ``sigs``: components, then the survivor rule."""
    return elect_survivors(near_duplicate_components(sigs, config), origins, order)
