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

Two executions of steps 1-4 give the same labels (tested):

* **in memory** (:func:`near_duplicate_components`): all signatures, band
  hashes and candidate pairs as arrays, components by ``scipy``;
* **spilled** (:func:`near_duplicate_components_spilled`), for inputs larger
  than the memory budget.  Signatures are read a chunk at a time from a
  :class:`SignatureSource` (an array, or the raw file the local engine writes
  during its score pass, through short-lived maps of 4 MiB windows) and only a
  union-find forest over the rows stays in RAM:

  a. *identical signatures*: each live row's whole-signature hash
     (:func:`provkit.filters.lsh.signature_hashes`) and row index are appended
     to ``P`` partition files by hash range; each partition is loaded, sorted
     and every run of equal hashes whose signatures compare equal is unioned
     (step 2).  Rows left as roots are the representatives;
  b. *bands*: the representatives' band hashes are appended, with the row
     index, to ``P'`` partition files by hash range (a bucket lies in one
     partition); each partition is loaded and sorted, the signatures of the
     rows of its shared buckets are gathered (in groups of whole buckets that
     fit the budget), and inside every bucket a pair is verified (estimated
     Jaccard ``>= threshold``) and unioned only when its rows are not joined
     yet — skipping a pair whose ends are already connected never changes
     the components (step 3; without ``verify`` each bucket is unioned as a
     chain);
  c. the forest's roots are the labels (step 4): unions hang the larger root
     under the smaller, so each root is the smallest row of its component.

  The partition files live in a temporary directory (the engine's spill
  directory inside the output's parent) that is always removed.

Survivors of near-duplicate components are elected in one ``O(n)`` pass
(:func:`survivors_of_components`; equal to :func:`elect_survivors`), or, by
the local engine, for the rows of components of two or more rows only
(:func:`group_survivors`: 1 byte per row + ~40 per grouped row instead of 16
per row; every other row is its own survivor and cluster).

Memory model (bytes; ``n`` alive rows, ``K`` permutations of ``s`` bytes
each — 4 for ``affine32`` —, ``b`` bands, ``E`` = 40 bytes per partition
entry in RAM, a bound: :func:`load_shared_entries` peaks at 32 — 16 loaded
copied to two 8-byte columns, then 8 of argsort and 8 for each column sorted in
turn — and at most 37 while the shared runs are copied out of a partition
whose every entry is shared):

* in memory: about :data:`IN_MEMORY_BYTES_PER_PERM` ``* K * n`` plus 16 per
  candidate pair (copies of the signatures for the live rows, the
  representatives and the identical-signature sort; ``8*b`` of band hashes;
  the bucket sorts) — 3.3 KB per record at ``K = 128`` (2.7 KB measured);
* spilled: :data:`SPILL_BYTES_PER_RECORD` = 24 per record (the ``int64``
  forest, reused as labels, then the survivor and cluster arrays) plus a
  working set that the budget bounds: a chunk of rows (``K*s + 56*b`` each)
  and one partition (``E`` per entry; ``P`` partitions of the ``<= n*b``
  band entries) with the gathered signatures of one group of its shared
  buckets (``K*s`` per row, a quarter of the budget).  A partition also
  holds every row of one bucket, so one band value shared by most rows
  (which only identical signatures make likely, and those are collapsed
  first) can exceed it.  Each chunk, partition and signature group is handled
  in its own call, so none is alive while the next loads, and glibc's heap
  is trimmed between partitions (:func:`provkit.core.memory.release_unused_memory`).
  Signatures are gathered through 4 MiB windows of the file
  (:func:`read_file_rows`).  Disk: ``16*(b + 1)``
  bytes per row of partition files (plus the engine's ``K*s`` signature file).

Measured end to end (``benchmarks/dedup.py``, ``prov filter`` with ``minhash_dedup``
only, 10 % planted variants, ``memory_mb = 512``): at 1M short records the spilled
path peaked at 1,210 MiB and ran 1.30x the speed of the former in-memory-only code
(4,251 MiB) with the same dropped rows; at 10M it peaked at 4,195 MiB, then, after the
engine's per-row state was cut (:mod:`provkit.engines.local`), at 1,406 MiB (47 B/record
over 1M-10M).  What that growth was made of (per-phase peaks, ``/proc/self/clear_refs``
resets of ``VmHWM`` around each phase, 1M vs 3M records): not live arrays (22 B/record:
forest 8, row order 8, origin 4, fate 2) but (1) glibc's heap, which Arrow's
``release_unused`` does not trim — freed per-chunk arrays stayed resident, +150 MB at
3M; (2) the previous partition and the last signature group still referenced while the
next partition loaded; (3) the signature file read through one map of the whole file:
the kernel faulted in whole 2 MiB page-cache folios around each scattered row (226 rows
of a 1.5 GB file: +380 MiB).  With the heap trimmed, one partition or group alive at a
time and 4 MiB read windows, same rows dropped (51,412 / 154,557 / 514,154), precision /
recall 0.914 / 0.911 as before:

========  ==========  ===========  ==================  ==========
records   peak RSS    was          pre-flight estimate  records/s
========  ==========  ===========  ==================  ==========
1M        531 MiB     651-673 MiB  878 MiB (0.60)       51.4k
3M        587 MiB     779-803 MiB  969 MiB (0.61)       55.9k
10M       657 MiB     1,406 MiB    1,290 MiB (0.51)     47.3k
========  ==========  ===========  ==================  ==========

15 B/record over 1M-10M (``PYTHONPATH=. nice -n 19 python benchmarks/dedup.py --sizes
1000000,3000000,10000000 --peer-sizes "" --main "" --memory-mb 512 --data DIR``; the
estimate's ratio in brackets; "was": the code before, 123cc7a, at 1M and 3M in the
same session, at 10M the earlier README figure).  Same-session speed against 123cc7a,
interleaved pairs: 1M 17.8 vs 19.1 s (median of 4), 3M 56.5 vs 55.2 s (mean of 2):
no slowdown beyond the noise.

**Whole process.**  :func:`process_bytes_estimate` bounds a ``prov filter`` run's peak
RSS for ``n`` input records with a ``minhash_dedup`` step::

    max(PROCESS_PLAN_BASE_MIB + clustering, PROCESS_WRITE_BASE_MIB) + PROCESS_BYTES_PER_RECORD * n

``clustering`` is the in-memory path's estimate when that path runs, else the whole
budget (:func:`clustering_bytes`; the layout sizes partitions to half of it, so a
spilled run uses ~40-60 % of it — most of the estimate's slack).  The plan base
(320 MiB) is the interpreter, libraries and numba kernels (compiled on a first run: +60
MiB measured) before the clustering; the write base (560 MiB) is the write pass's peak
(the output writer's two 32 MiB row-group buffers and the one being encoded, Arrow's
pool); 48 B/record covers the engine's live rows (22) and stored decisions (up to ~30
per row when every row is in a cluster) with allocator slack, against slopes of 14-33
measured.  With the default budget (1 GiB, raised to 24 B/record + 64 MiB) that is
~1.8 GiB for 10M records and ~7.6 GB for 100M.  The local engine compares it, before
the score pass, with ``--memory-limit-mb`` (``LocalEngine(memory_limit_mb=...)``) or else
the smaller of the machine's ``MemAvailable`` and the memory cgroup's headroom
(:func:`provkit.core.memory.available_memory`; in a container ``MemAvailable`` is the
host's; where neither is readable the check is skipped), and refuses a run above
it in one line (:func:`check_process_memory`).  Other steps of the same pipeline add
their own memory and are not counted.

The budget is ``NearDupConfig.memory_mb`` (``memory_mb`` of the
``minhash_dedup`` step): the in-memory path runs when its estimate fits,
else the spilled path, whose partitions are sized to the budget.  A budget
below ``24 n`` bytes plus :data:`MIN_WORK_BYTES` is refused before any work
(:func:`check_budget`, a one-line :class:`provkit.errors.ConfigError`).
Unset, the budget is :data:`DEFAULT_MEMORY_MB`, raised to what the
per-record part needs (never refused).  Not counted: the engine's own
per-row columns (row key 8, origin 4, fate 2; no id for a ``minhash_dedup``-only
pipeline: see :mod:`provkit.engines.local`).
Exact dedup needs the hashes (~``64`` bytes each as dictionary-encoded
strings) plus ``24`` bytes per record.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.core.memory import release_unused_memory
from provkit.errors import ConfigError
from provkit.filters.components import (
    component_labels,
    find_root,
    new_forest,
    resolve_roots,
    union_min,
)
from provkit.filters.lsh import (
    band_hashes,
    candidate_pairs,
    optimal_params,
    partition_of,
    signature_hashes,
)
from provkit.filters.minhash import (
    MinHashConfig,
    empty_signature_mask,
    estimate_jaccard,
)

MIB = 1 << 20
DEFAULT_MEMORY_MB = 1024
"""Budget of a near-duplicate plan when ``memory_mb`` is unset (raised to the spilled path's per-record need)."""
SPILL_BYTES_PER_RECORD = 24
"""RAM per record of the spilled path: the union-find forest / labels, then survivor + cluster (8 bytes each)."""
IN_MEMORY_BYTES_PER_PERM = 26
"""RAM per record and permutation of the in-memory path: 3.3 KB per record at 128 permutations (measured
end to end: 2.7 KB per record, the peak-RSS slope from 100k to 1M records of ``benchmarks/dedup.py``)."""
ENTRY_BYTES = 40
"""RAM per partition entry while a partition is grouped: 16 loaded + 8 argsort + 16 sorted."""
PROCESS_PLAN_BASE_MIB = 320
"""Whole-process estimate: RSS of the plan phase besides the clustering and the per-record part (interpreter,
libraries, numba kernels loaded or compiled, one batch)."""
PROCESS_WRITE_BASE_MIB = 560
"""Whole-process estimate: RSS of the write pass besides the per-record part (two kinds' 32 MiB row-group buffers,
one being encoded each, and Arrow's pool)."""
PROCESS_BYTES_PER_RECORD = 48
"""Whole-process estimate: RSS per input record outside the clustering's budget (fate 2, origin 4, the alive rows'
order 8, stored decisions, allocator slack; measured slopes 15-33 B/record, module docstring)."""
MIN_WORK_BYTES = 256 << 10
"""The smallest working set (chunk + partition) the spilled path accepts beyond its per-record part."""
MAX_CHUNK_ROWS = 65536
READ_SPAN_BYTES = 4 << 20
"""Bytes of a signature file mapped at once when gathering rows (:func:`read_file_rows`)."""
MAX_PARTITIONS = 4096
_ENTRY = np.dtype([("key", "<u8"), ("row", "<i8")])

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
    r=13`` (0.69).  ``memory_mb`` is the plan's memory budget (module docstring).
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
    memory_mb: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.memory_mb is not None and not (math.isfinite(self.memory_mb) and self.memory_mb > 0):
            raise ValueError(f"memory_mb must be a positive number, got {self.memory_mb}")
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
    """``int8`` survivor preference per row: human 0, model 1, other origins (and nulls) 2."""
    if not isinstance(origins, (pa.Array, pa.ChunkedArray)):
        origins = pa.array(list(origins), pa.string())
    if isinstance(origins, pa.ChunkedArray):
        origins = origins.combine_chunks()
    if not isinstance(origins, pa.DictionaryArray):
        origins = origins.dictionary_encode()
    values = origins.dictionary.to_pylist()
    table = np.array([ORIGIN_RANK.get(v, OTHER_RANK) for v in values] + [OTHER_RANK], dtype=np.int8)
    indices = pc.fill_null(origins.indices, len(values)).to_numpy(zero_copy_only=False)
    return table[indices]


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


# ---------------------------------------------------------------- survivors of components in O(n)

@numba.njit(cache=True, nogil=True)
def _survivor_kernel(labels, rank, order, survivor, cluster):  # pragma: no cover - compiled
    n = len(labels)
    for i in range(n):  # labels[i] <= i: a component's root (smallest row) comes first
        r = labels[i]
        if r == i:
            survivor[i] = i
            cluster[i] = order[i]
        else:
            s = survivor[r]
            if rank[i] < rank[s] or (rank[i] == rank[s] and order[i] < order[s]):
                survivor[r] = i
            if order[i] < cluster[r]:
                cluster[r] = order[i]
    for i in range(n):  # a root's entry is final when its members read it
        survivor[i] = survivor[labels[i]]
        cluster[i] = cluster[labels[i]]


def survivors_of_components(
    labels: np.ndarray, origins: Sequence[str] | pa.Array, order: Sequence[int] | np.ndarray | None = None
) -> DedupResult:
    """:func:`elect_survivors` for root labels (each row's label is the smallest row of its component), in O(n).

    16 bytes per row (survivor, cluster) besides ``labels``; same result as the sort in :func:`elect_survivors`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    order = _order_or_positions(order, n)
    rank = origin_rank(origins)
    if len(rank) != n:
        raise ValueError(f"origins has {len(rank)} values for {n} rows")
    if n and np.any(labels > np.arange(n)):
        raise ValueError("labels must name the smallest row of each component")
    survivor, cluster = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    if n:
        _survivor_kernel(labels, rank, order, survivor, cluster)
    return DedupResult(cluster, survivor)


@dataclass(frozen=True)
class GroupSurvivors:
    """:class:`DedupResult` for the rows of components with more than one row only.

    ``rows``: the ascending positions of those rows; ``survivor[j]`` the position of row
    ``rows[j]``'s survivor, ``cluster[j]`` its cluster id.  Every row not in ``rows`` is its own
    survivor and its own cluster (its order).  Near-duplicates are a small share of most
    inputs, so this is ~``24 * share`` bytes per row instead of :class:`DedupResult`'s 16 + 8.
    """

    rows: np.ndarray
    survivor: np.ndarray
    cluster: np.ndarray


@numba.njit(cache=True, nogil=True)
def _mark_grouped(labels, grouped):  # pragma: no cover - compiled
    for i in range(len(labels)):
        r = labels[i]
        if r != i:
            grouped[i] = True
            grouped[r] = True


def group_survivors(
    labels: np.ndarray, origins: Sequence[str] | pa.Array | pa.ChunkedArray, order: Sequence[int] | np.ndarray | None = None
) -> GroupSurvivors:
    """:func:`survivors_of_components` of the rows in components of two or more rows (see :class:`GroupSurvivors`).

    Extra memory: 1 byte per row (the grouped mask) plus ~40 bytes per grouped row; the survivor
    rule runs on the grouped rows alone, with each row's root as a position among them.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    order = _order_or_positions(order, n)
    grouped = np.zeros(n, dtype=bool)
    if n:
        _mark_grouped(labels, grouped)
    rows = np.flatnonzero(grouped)
    del grouped
    local = np.searchsorted(rows, labels[rows])  # the root's position among the grouped rows (<= the row's own)
    if isinstance(origins, (pa.Array, pa.ChunkedArray)):
        picked = origins.take(pa.array(rows, pa.int64()))
    else:
        picked = [origins[i] for i in rows.tolist()]
    result = survivors_of_components(local, picked, order[rows])
    return GroupSurvivors(rows, rows[result.survivor], result.cluster)


# ---------------------------------------------------------------- the memory budget

@dataclass(frozen=True)
class SpillLayout:
    """How the spilled path cuts its work: rows per chunk, partitions of the identical and band passes."""

    budget: int
    chunk_rows: int
    ident_parts: int
    band_parts: int


def in_memory_bytes(n: int, config: NearDupConfig) -> int:
    """Estimated peak RAM of the in-memory path for ``n`` rows (module docstring)."""
    return IN_MEMORY_BYTES_PER_PERM * config.num_perm * n


def budget_bytes(n: int, config: NearDupConfig) -> int:
    """The plan's budget: ``memory_mb``, or the default raised to the spilled path's per-record need."""
    if config.memory_mb is not None:
        return int(config.memory_mb * MIB)
    return max(DEFAULT_MEMORY_MB * MIB, SPILL_BYTES_PER_RECORD * n + 64 * MIB)


def check_budget(n: int, config: NearDupConfig) -> int:
    """The budget in bytes; :class:`ConfigError` (one line) when ``n`` rows cannot fit it even spilled."""
    budget = budget_bytes(n, config)
    need = SPILL_BYTES_PER_RECORD * n + MIN_WORK_BYTES
    if budget < need:
        raise ConfigError(
            f"minhash_dedup: {n:,} records need at least {need / MIB:.1f} MiB ({SPILL_BYTES_PER_RECORD} B/record "
            f"for component labels + {MIN_WORK_BYTES / MIB:.2f} MiB working set) but memory_mb is "
            f"{budget / MIB:g}; raise memory_mb")
    return budget


def spill_layout(n: int, config: NearDupConfig, itemsize: int = 4) -> SpillLayout:
    """Chunk and partition sizes that keep the spilled path within the budget (after :func:`check_budget`)."""
    budget = check_budget(n, config)
    bands, _ = config.banding()
    work = budget - SPILL_BYTES_PER_RECORD * n
    per_row = config.num_perm * itemsize + 56 * bands
    chunk_rows = int(min(MAX_CHUNK_ROWS, max(64, work // 2 // per_row)))
    partition_bytes = max(work // 2, 1)
    ident_parts = min(MAX_PARTITIONS, max(1, math.ceil(n * ENTRY_BYTES / partition_bytes)))
    band_parts = min(MAX_PARTITIONS, max(1, math.ceil(n * bands * ENTRY_BYTES / partition_bytes)))
    return SpillLayout(budget, chunk_rows, ident_parts, band_parts)


def fits_in_memory(n: int, config: NearDupConfig) -> bool:
    """True when the in-memory path's estimate fits the budget."""
    return in_memory_bytes(n, config) <= budget_bytes(n, config)


def clustering_bytes(n: int, config: NearDupConfig) -> int:
    """The clustering's share of the whole-process estimate: the in-memory path's estimate when it runs, else the budget."""
    return in_memory_bytes(n, config) if fits_in_memory(n, config) else budget_bytes(n, config)


def process_bytes_estimate(n: int, config: NearDupConfig) -> int:
    """Upper bound of a ``prov filter`` process's peak RSS for ``n`` records with this ``minhash_dedup`` step.

    ``max(PLAN_BASE + clustering, WRITE_BASE) + PROCESS_BYTES_PER_RECORD * n`` (module docstring,
    "whole process"): the plan phase (the clustering within its budget) and the write pass
    (the output writer's row-group buffers) peak at different times.
    """
    phase = max(PROCESS_PLAN_BASE_MIB * MIB + clustering_bytes(n, config), PROCESS_WRITE_BASE_MIB * MIB)
    return phase + PROCESS_BYTES_PER_RECORD * n


def check_process_memory(n: int, config: NearDupConfig, limit_bytes: int | None, limit_source: str) -> int:
    """The whole-process estimate; :class:`ConfigError` (one line) when it exceeds ``limit_bytes``.

    ``limit_bytes`` None (the machine's available memory could not be read, and no limit was
    given) skips the comparison.  ``limit_source`` says where the limit came from.
    """
    estimate = process_bytes_estimate(n, config)
    if limit_bytes is not None and estimate > limit_bytes:
        clustering = clustering_bytes(n, config) / MIB
        raise ConfigError(
            f"minhash_dedup: {n:,} records need an estimated {estimate / MIB:,.0f} MiB of memory for the whole run "
            f"(clustering {clustering:,.0f} MiB + {PROCESS_BYTES_PER_RECORD} B/record + fixed base) but "
            f"the limit is {limit_bytes / MIB:,.0f} MiB ({limit_source}); raise the limit (--memory-limit-mb), lower "
            f"the step's memory_mb, or split the input")
    return estimate


# ---------------------------------------------------------------- the spilled path

class PartitionFiles:
    """``parts`` append-only files of ``(uint64 key, int64 row)`` entries, partitioned by key range."""

    def __init__(self, directory: Path, name: str, parts: int):
        self.paths = [directory / f"{name}-{p:05d}.bin" for p in range(parts)]
        self.parts = parts

    def append(self, keys: np.ndarray, rows: np.ndarray) -> None:
        if len(keys) == 0:
            return
        part = partition_of(keys, self.parts)
        sort = np.argsort(part, kind="stable")
        entries = np.empty(len(keys), dtype=_ENTRY)
        entries["key"], entries["row"] = keys[sort], rows[sort]
        bounds = np.searchsorted(part[sort], np.arange(self.parts + 1))
        for p in np.flatnonzero(np.diff(bounds)):
            with open(self.paths[p], "ab") as f:
                entries[bounds[p]:bounds[p + 1]].tofile(f)

    def filled(self) -> list[Path]:
        """The partition files that received entries."""
        return [path for path in self.paths if path.exists()]


def load_shared_entries(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One partition file's ``(keys, rows)`` sorted by key, only the runs of keys that occur twice or more.

    The file is removed after reading.  Peak: :data:`ENTRY_BYTES` per entry (the columns are
    copied out of the loaded records, which are freed before the sort); then 16 bytes per
    entry of a shared run (a single-entry run joins nothing, so the callers never need it).
    """
    entries = np.fromfile(path, dtype=_ENTRY)
    path.unlink()
    keys, rows = np.ascontiguousarray(entries["key"]), np.ascontiguousarray(entries["row"])
    del entries
    sort = np.argsort(keys)
    keys = keys[sort]
    rows = rows[sort]
    del sort
    shared = shared_runs(keys)
    return keys[shared], rows[shared]


class SignatureSource:
    """The signatures of ``n`` input rows for the spilled path, read a few rows at a time.

    Row ``p`` is ``array[rows[p]]`` (``rows`` None: ``array[p]``) for an array in memory, or row
    ``rows[p]`` of a raw row-major file (``path``, ``dtype``, ``width``: what the local engine's
    score pass writes).  A file is read by :func:`read_file_rows` (maps of bounded
    windows, each dropped after use), so scattered rows cost one window, not the file's pages.
    """

    def __init__(self, array: np.ndarray | None = None, rows: np.ndarray | None = None, *,
                 path: str | Path | None = None, dtype: np.dtype | str | None = None, width: int | None = None):
        if (array is None) == (path is None):
            raise ValueError("give either a signature array or a file path")
        self.array, self.path = array, Path(path) if path is not None else None
        self.dtype = np.dtype(array.dtype if array is not None else dtype)
        self.width = int(array.shape[1] if array is not None else width)
        self.rows = np.asarray(rows, dtype=np.int64) if rows is not None else None
        if self.rows is None and array is None:
            raise ValueError("a signature file needs the rows to read")

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.array)

    def read(self, positions: np.ndarray | slice) -> np.ndarray:
        """The ``(m, width)`` signatures of input rows ``positions`` (a copy)."""
        at = self.rows[positions] if self.rows is not None else positions
        if self.array is not None:
            return np.asarray(self.array[at])
        if isinstance(at, slice):
            at = np.arange(*at.indices(len(self)))
        return read_file_rows(self.path, self.dtype, self.width, np.asarray(at, dtype=np.int64))


def read_file_rows(path: Path, dtype: np.dtype, width: int, at: np.ndarray) -> np.ndarray:
    """Rows ``at`` of a raw row-major ``(rows, width)`` file of ``dtype``, as a copy.

    The rows are read in ascending order through short-lived memory maps, each of a window of
    at most :data:`READ_SPAN_BYTES` of the file (the rows from the window's first one on), unmapped
    before the next.  A window bounds what the kernel maps around each faulted row: with one map
    of the whole file it mapped whole page-cache folios (up to 2 MiB) around every row, and 226
    rows scattered over a 1.5 GB file raised the peak RSS by 380 MiB (+5 MiB with 4 MiB windows).  Window
    size vs speed, 170k sorted rows of a 3M-row file: 1 MiB 180-240 ms, 4 MiB 100-120 ms, 16 MiB 82 ms;
    the whole-file map 115 ms.
    """
    out = np.empty((len(at), width), dtype)
    if len(at) == 0:
        return out
    row_bytes = dtype.itemsize * width
    span_rows = max(1, READ_SPAN_BYTES // row_bytes)
    ascending = bool(np.all(at[1:] >= at[:-1]))
    order = None if ascending else np.argsort(at, kind="stable")
    rows = at if order is None else at[order]
    i = 0
    while i < len(rows):
        first = int(rows[i])
        j = int(np.searchsorted(rows, first + span_rows, side="left"))
        window = np.memmap(path, dtype=dtype, mode="r", offset=first * row_bytes,
                           shape=(int(rows[j - 1]) - first + 1, width))
        try:
            picked = window[rows[i:j] - first]
        finally:
            del window
        if order is None:
            out[i:j] = picked
        else:
            out[order[i:j]] = picked
        i = j
    return out


@numba.njit(cache=True, nogil=True)
def _equal_rows(sigs, a, b):  # pragma: no cover - compiled
    for k in range(sigs.shape[1]):
        if sigs[a, k] != sigs[b, k]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _similar(sigs, a, b, threshold):  # pragma: no cover - compiled
    equal = 0
    for k in range(sigs.shape[1]):
        if sigs[a, k] == sigs[b, k]:
            equal += 1
    return equal / sigs.shape[1] >= threshold


@numba.njit(cache=True, nogil=True)
def _union_identical_kernel(keys, rows, slots, sigs, parent):  # pragma: no cover - compiled
    """In each run of equal signature hashes, union every row whose signature equals an earlier one's.

    ``sigs[slots[m]]`` is the signature of entry ``m`` (row ``rows[m]``).
    """
    n = len(keys)
    i = 0
    reps = np.empty(0, dtype=np.int64)
    while i < n:
        j = i + 1
        while j < n and keys[j] == keys[i]:
            j += 1
        if len(reps) < j - i:
            reps = np.empty(j - i, dtype=np.int64)
        count = 0
        for m in range(i, j):
            joined = False
            for c in range(count):
                if _equal_rows(sigs, slots[reps[c]], slots[m]):
                    union_min(parent, rows[reps[c]], rows[m])
                    joined = True
                    break
            if not joined:
                reps[count] = m
                count += 1
        i = j


@numba.njit(cache=True, nogil=True)
def _union_buckets_kernel(keys, rows, slots, sigs, parent, threshold):  # pragma: no cover - compiled
    """In each bucket (run of equal band hashes): union every verified pair whose rows are not joined yet."""
    n = len(keys)
    i = 0
    checked = 0
    while i < n:
        j = i + 1
        while j < n and keys[j] == keys[i]:
            j += 1
        for a in range(i, j - 1):
            for b in range(a + 1, j):
                if find_root(parent, rows[a]) == find_root(parent, rows[b]):
                    continue
                checked += 1
                if _similar(sigs, slots[a], slots[b], threshold):
                    union_min(parent, rows[a], rows[b])
        i = j
    return checked


@numba.njit(cache=True, nogil=True)
def _union_runs_kernel(keys, rows, parent):  # pragma: no cover - compiled
    """Unverified buckets: union each member with the next one of its run."""
    for m in range(len(keys) - 1):
        if keys[m] == keys[m + 1]:
            union_min(parent, rows[m], rows[m + 1])


def shared_runs(keys: np.ndarray) -> np.ndarray:
    """Boolean mask of the entries of sorted ``keys`` whose key occurs at least twice."""
    if len(keys) < 2:
        return np.zeros(len(keys), dtype=bool)
    same = keys[1:] == keys[:-1]
    return np.r_[same, False] | np.r_[False, same]


def run_groups(keys: np.ndarray, max_rows: int) -> Iterator[slice]:
    """Slices of sorted ``keys`` cut at run boundaries, each ``<= max_rows`` entries unless one run is longer."""
    n = len(keys)
    if n == 0:
        return
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    begin = 0
    while begin < n:
        limit = begin + max_rows
        stop = n
        if limit < n:
            stop = int(starts[int(np.searchsorted(starts, limit, side="right")) - 1])  # last run start <= limit
            if stop <= begin:  # one run longer than max_rows: take it whole
                nxt = int(np.searchsorted(starts, begin, side="right"))
                stop = int(starts[nxt]) if nxt < len(starts) else n
        yield slice(begin, stop)
        begin = stop


def _candidate_groups(keys: np.ndarray, members: np.ndarray, source: SignatureSource, max_rows: int
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The runs of sorted shared ``keys`` in groups: (keys, rows, slots, signatures of the slots)."""
    for cut in run_groups(keys, max_rows):
        rows = members[cut]
        unique, slots = np.unique(rows, return_inverse=True)
        yield keys[cut], rows, slots.reshape(-1).astype(np.int64), source.read(unique)


def _append_identity_hashes(ident: PartitionFiles, source: SignatureSource, start: int, stop: int,
                            scheme: str) -> None:
    chunk = source.read(slice(start, stop))
    live = np.flatnonzero(~empty_signature_mask(chunk, scheme))
    ident.append(signature_hashes(chunk[live]), live + start)


def _append_band_hashes(band_files: PartitionFiles, source: SignatureSource, start: int, stop: int,
                        parent: np.ndarray, config: NearDupConfig) -> None:
    bands, band_rows = config.banding()
    chunk = source.read(slice(start, stop))
    positions = np.arange(start, start + len(chunk), dtype=np.int64)
    rep = ~empty_signature_mask(chunk, config.scheme) & (parent[start:start + len(chunk)] == positions)
    hashes = band_hashes(chunk[rep], bands, band_rows)
    band_files.append(hashes.reshape(-1), np.repeat(positions[rep], bands))


def _union_identical_partition(path: Path, source: SignatureSource, max_rows: int, parent: np.ndarray) -> None:
    keys, members = load_shared_entries(path)
    for group in _candidate_groups(keys, members, source, max_rows):
        _union_identical_kernel(*group[:3], group[3], parent)
        del group  # else its signatures stay alive while the next group's are read


def _union_band_partition(path: Path, source: SignatureSource, max_rows: int, parent: np.ndarray,
                          config: NearDupConfig) -> int:
    keys, members = load_shared_entries(path)
    if not config.verify:
        _union_runs_kernel(keys, members, parent)
        return 0
    checked = 0
    for group_keys, group_rows, slots, group_sigs in _candidate_groups(keys, members, source, max_rows):
        checked += _union_buckets_kernel(group_keys, group_rows, slots, group_sigs, parent, config.threshold)
        del group_keys, group_rows, slots, group_sigs  # else alive while the next group's signatures are read
    return checked


def near_duplicate_components_spilled(
    sigs: np.ndarray | SignatureSource, config: NearDupConfig = NearDupConfig(), rows: np.ndarray | None = None,
    workdir: str | Path | None = None, stats: dict | None = None,
) -> np.ndarray:
    """Labels equal to :func:`near_duplicate_components` with bounded memory (module docstring, "spilled").

    ``sigs`` is a :class:`SignatureSource` or an array (row ``p`` is ``sigs[rows[p]]``).  Partition
    files go to a fresh directory under ``workdir`` (default: the system temporary directory),
    removed on return.  ``stats`` (optional) receives the layout and the number of verified pairs.
    """
    source = sigs if isinstance(sigs, SignatureSource) else SignatureSource(sigs, rows)
    n = len(source)
    layout = spill_layout(n, config, source.dtype.itemsize)
    parent = new_forest(n)
    if n == 0:
        return parent
    max_rows = max(2, (layout.budget - SPILL_BYTES_PER_RECORD * n) // 4 // (source.width * source.dtype.itemsize))
    tmp = Path(tempfile.mkdtemp(prefix=".provkit-neardup-", dir=workdir))
    checked = 0
    try:
        # Each chunk and partition is handled in its own function call, so none of its arrays is
        # alive while the next one loads; freed heap space is trimmed between partitions.
        ident = PartitionFiles(tmp, "ident", layout.ident_parts)
        for start in range(0, n, layout.chunk_rows):
            _append_identity_hashes(ident, source, start, start + layout.chunk_rows, config.scheme)
        for path in ident.filled():
            release_unused_memory()
            _union_identical_partition(path, source, max_rows, parent)
        band_files = PartitionFiles(tmp, "band", layout.band_parts)
        for start in range(0, n, layout.chunk_rows):
            _append_band_hashes(band_files, source, start, start + layout.chunk_rows, parent, config)
        for path in band_files.filled():
            release_unused_memory()
            checked += _union_band_partition(path, source, max_rows, parent, config)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if stats is not None:
        stats.update(layout=layout.__dict__, verified_pairs=int(checked))
    return resolve_roots(parent)


def near_duplicates_within_budget(
    sigs: np.ndarray | SignatureSource, origins: Sequence[str] | pa.Array,
    order: Sequence[int] | np.ndarray | None = None, config: NearDupConfig = NearDupConfig(),
    rows: np.ndarray | None = None, workdir: str | Path | None = None, stats: dict | None = None,
) -> DedupResult:
    """Near-duplicate dedup in memory when it fits ``config``'s budget, else spilled; the same result either way.

    ``sigs`` as for :func:`near_duplicate_components_spilled`.  Refuses (:class:`ConfigError`) a
    budget that cannot hold the spilled path's per-record part.
    """
    labels = near_duplicate_labels_within_budget(sigs, config, rows, workdir, stats)
    return survivors_of_components(labels, origins, order)


def near_duplicate_labels_within_budget(
    sigs: np.ndarray | SignatureSource, config: NearDupConfig = NearDupConfig(), rows: np.ndarray | None = None,
    workdir: str | Path | None = None, stats: dict | None = None,
) -> np.ndarray:
    """The component labels of :func:`near_duplicates_within_budget` (in memory or spilled by the budget)."""
    source = sigs if isinstance(sigs, SignatureSource) else SignatureSource(sigs, rows)
    n = len(source)
    check_budget(n, config)
    if fits_in_memory(n, config):
        local = source.read(slice(0, n))
        labels = near_duplicate_components(local, config)
        del local
        path = "memory"
    else:
        labels = near_duplicate_components_spilled(source, config, workdir=workdir, stats=stats)
        path = "spilled"
    if stats is not None:
        stats["path"] = path
    return labels
