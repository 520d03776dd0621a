"""The ids seen so far, exact, in bounded memory: the duplicate-id check of ingest and merge.

Each id is kept as ``(h, bytes)``: ``h`` the stable 64-bit hash of its UTF-8
bytes (:func:`provkit.core.hashing.string_hashes`, FNV-1a + fmix64, the same in
every process) and the bytes themselves.  Ids live in *runs*, each sorted by
``h`` (ties in arrival order):

* **memory runs** - one per added batch, merged into one when there are more
  than ``max_runs``.  Once they hold more than ``budget`` ids they are merged
  and **spilled** to ``spill_dir`` as three raw files: ``run-K.hash``
  (uint64, sorted), ``run-K.offsets`` (int64, n + 1) and ``run-K.ids`` (the
  id bytes in the same order).
* **disk runs** - looked up with ``searchsorted`` of the batch's sorted hashes
  on a read-only mapping of ``run-K.hash``; the sorted queries are cut into
  one part per ``map_bytes`` (32 MiB) of the run's hashes and each part gets
  a fresh mapping, so the pages a part touched (about its share of the run)
  leave the process before the next.  Only the positions whose hash matches
  are then compared byte for byte, through short-lived mappings of
  ``run-K.offsets`` / ``run-K.ids``.  When there are more than ``max_runs``
  disk runs they are merged into one, a hash range at a time (ranges of
  ``[0, 2^64)`` holding about ``budget / 4`` ids each: hashes are close to
  uniform), so a lookup costs ``O(max_runs · log n)`` per id.

Exactness: a hash match is never taken as equality - the id bytes are compared,
so two different ids with the same 64-bit hash are two ids (the bytes are
what is checked; the hash only finds the candidates).  A batch's repeats of an
earlier id of the same batch are found the same way (sort by hash, compare the
bytes inside each group of equal hashes; the earliest occurrence is the
original).

Memory: at most ``budget`` ids in memory runs, i.e. ``budget · (8 + 8 +
mean id bytes)`` bytes (hash, offset, bytes; about 11 MiB for 2¹⁹ ids of 6-7
bytes; transiently about three times that while a spill or a disk merge sorts
one range), plus about ``map_bytes`` of mapped pages during a lookup - the
same at ten million ids as at one hundred million.  Disk: ``16 + id bytes``
per id, twice that during a merge.  Time per batch of ``q`` ids:
``O(q log q)`` for the sort plus ``O(q · log n)`` per run; but a batch of
random ids touches most pages of a large run, so a run of ``n`` ids in
batches of ``b`` faults in about ``8 · n² / (2b)`` bytes of hashes from the
page cache in all (about 3 GB at n = 10⁷, b = 1.2·10⁵); a disk merge rewrites
every spilled id once per ``max_runs`` spills.

The spill directory is created on the first spill and removed by
:meth:`IdIndex.close` (the index is a context manager); the ingest puts it
beside the output's staging directory, where a later writer's stale-staging
sweep also removes what a killed run left.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa

from provkit.core.hashing import string_buffers, string_hashes

Hasher = Callable[[pa.Array], np.ndarray]
"""Arrow string array -> one uint64 per string, a function of its bytes only."""

DEFAULT_BUDGET = 1 << 19
"""Ids held in memory before the runs spill to disk."""
MAP_BYTES = 32 << 20
"""A lookup maps a disk run's hashes afresh for every this many bytes of them (see ``_disk_candidates``)."""


@numba.njit(cache=True, nogil=True)
def _merge_matches(run, keys, hit_keys, hit_pos):  # pragma: no cover - compiled
    j, n, c = 0, len(run), 0
    for i in range(len(keys)):
        k = keys[i]
        while j < n and run[j] < k:
            j += 1
        if j < n and run[j] == k:
            hit_keys[c] = i
            hit_pos[c] = j
            c += 1
    return c


def sorted_matches(run: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(i, j)`` pairs with ``keys[i] == run[j]`` (``j`` the first such), both arrays sorted ascending.

    A merge walk (O(len(run) + len(keys)), sequential reads) when the keys are
    many; ``np.searchsorted`` (O(len(keys) log len(run))) when they are few.
    """
    if len(keys) * 16 < len(run):
        pos = np.searchsorted(run, keys)
        hit = pos < len(run)
        hit[hit] = run[pos[hit]] == keys[hit]
        return np.flatnonzero(hit), pos[hit]
    hit_keys = np.empty(len(keys), dtype=np.int64)
    hit_pos = np.empty(len(keys), dtype=np.int64)
    c = _merge_matches(run, keys, hit_keys, hit_pos)
    return hit_keys[:c], hit_pos[:c]


def hash_order(hashes: np.ndarray) -> np.ndarray:
    """``np.argsort(hashes, kind="stable")``, faster: an unstable sort (about 4x faster on uint64), then only the
    positions of repeated hashes (rare: duplicates and collisions) put back in their original order."""
    order = np.argsort(hashes)
    ranked = hashes[order]
    tie = ranked[1:] == ranked[:-1]
    if tie.any():
        in_tie = np.zeros(len(order), dtype=bool)
        in_tie[1:] |= tie
        in_tie[:-1] |= tie
        sub = order[in_tie]
        order[in_tie] = sub[np.lexsort((sub, ranked[in_tie]))]
    return order


@dataclass(frozen=True)
class _Ids:
    """A batch of ids as hashes + the Arrow string buffers (``offsets``, ``data``)."""

    hashes: np.ndarray
    offsets: np.ndarray
    data: np.ndarray

    @classmethod
    def of(cls, ids: Sequence[str] | pa.Array | pa.ChunkedArray, hasher: Hasher) -> _Ids:
        arr = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(ids), pa.string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.string())
        offsets, data = string_buffers(arr)
        return cls(np.asarray(hasher(arr), dtype=np.uint64), offsets, data)

    def __len__(self) -> int:
        return len(self.hashes)


@dataclass(frozen=True)
class _Run:
    """Ids sorted by hash, in memory."""

    hashes: np.ndarray
    offsets: np.ndarray
    data: np.ndarray


@dataclass(frozen=True)
class _DiskRun:
    """A spilled run: ``stem.hash``, ``stem.offsets``, ``stem.ids``."""

    stem: Path
    n: int

    def path(self, part: str) -> Path:
        return self.stem.with_name(f"{self.stem.name}.{part}")


# ------------------------------------------------------------------ compiled kernels
@numba.njit(cache=True, nogil=True)
def _same(off_a, data_a, i, off_b, data_b, j):  # pragma: no cover - compiled
    a0, a1, b0, b1 = off_a[i], off_a[i + 1], off_b[j], off_b[j + 1]
    if a1 - a0 != b1 - b0:
        return False
    for k in range(a1 - a0):
        if data_a[a0 + k] != data_b[b0 + k]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _repeats(hashes, order, offsets, data, out):  # pragma: no cover - compiled
    """``out[i]`` = id ``i`` equals an earlier id of the batch (``order``: stable argsort of ``hashes``)."""
    n = len(order)
    i = 0
    while i < n:
        j = i + 1
        h = hashes[order[i]]
        while j < n and hashes[order[j]] == h:
            j += 1
        for a in range(i + 1, j):
            for b in range(i, a):
                if not out[order[b]] and _same(offsets, data, order[a], offsets, data, order[b]):
                    out[order[a]] = True
                    break
        i = j


@numba.njit(cache=True, nogil=True)
def _confirm(run_h, run_off, run_data, q_h, q_off, q_data, cand_q, cand_pos, found):  # pragma: no cover
    """``found[q] = True`` where query ``q`` equals (bytes) a run id with its hash, from ``cand_pos`` on."""
    n = len(run_h)
    for c in range(len(cand_q)):
        q = cand_q[c]
        if found[q]:
            continue
        j = cand_pos[c]
        while j < n and run_h[j] == q_h[q]:
            if _same(run_off, run_data, j, q_off, q_data, q):
                found[q] = True
                break
            j += 1


@numba.njit(cache=True, nogil=True)
def _gather(offsets, data, take):  # pragma: no cover - compiled
    """The strings ``take`` of ``(offsets, data)`` as new ``(offsets, data)``."""
    out_off = np.zeros(len(take) + 1, dtype=np.int64)
    for k in range(len(take)):
        out_off[k + 1] = out_off[k] + offsets[take[k] + 1] - offsets[take[k]]
    out = np.empty(out_off[-1], dtype=np.uint8)
    for k in range(len(take)):
        s = offsets[take[k]] - out_off[k]
        for b in range(out_off[k], out_off[k + 1]):  # a byte loop: ids are short, a slice per id costs more
            out[b] = data[s + b]
    return out_off, out


# ------------------------------------------------------------------ the index
class IdIndex:
    """The ids seen so far: ``duplicates`` marks and remembers, ``contains`` asks, ``add`` remembers.

    Exact (bytes compared on a hash match), memory bounded by ``budget`` ids
    (see the module docstring for the bytes and the costs).
    """

    def __init__(self, max_runs: int = 8, *, budget: int = DEFAULT_BUDGET, spill_dir: str | Path | None = None,
                 map_bytes: int = MAP_BYTES, hasher: Hasher = string_hashes):
        if budget < 1 or max_runs < 1 or map_bytes < 8:
            raise ValueError("budget and max_runs must be >= 1, map_bytes >= 8")
        self.max_runs = max_runs
        self.budget = budget
        self.map_bytes = map_bytes
        self.hasher = hasher  # any function of the bytes; a weak one only costs time (the tests force collisions)
        self.spill_root = Path(spill_dir) if spill_dir is not None else None
        self._spill_dir: Path | None = None  # created on the first spill
        self.runs: list[_Run] = []
        self.disk: list[_DiskRun] = []
        self._in_memory = 0
        self.spills = 0  # runs ever written to disk (kept after close: what a run cost)

    # --- the public operations ------------------------------------------------
    def duplicates(self, ids: Sequence[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Which ids were seen before (or earlier in ``ids``); the others are remembered."""
        q = _Ids.of(ids, self.hasher)
        dup = np.zeros(len(q), dtype=bool)
        if len(q):
            order = hash_order(q.hashes)  # one sort serves the three steps
            _repeats(q.hashes, order, q.offsets, q.data, dup)
            self._mark_seen(q, dup, order)
            self._add(q, order[~dup[order]], presorted=True)
        return dup

    def contains(self, ids: Sequence[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Which ids were seen (no side effect)."""
        q = _Ids.of(ids, self.hasher)
        found = np.zeros(len(q), dtype=bool)
        if len(q):
            self._mark_seen(q, found, hash_order(q.hashes))
        return found

    def add(self, ids: Sequence[str] | pa.Array | pa.ChunkedArray) -> None:
        """Remember ``ids`` without checking them (ids already known to be distinct, e.g. a dataset's)."""
        q = _Ids.of(ids, self.hasher)
        self._add(q, np.arange(len(q)))

    def __len__(self) -> int:
        return self._in_memory + sum(r.n for r in self.disk)

    @property
    def spilled_runs(self) -> int:
        return len(self.disk)

    @property
    def spill_dir(self) -> Path | None:
        """The directory holding the spilled runs (``None`` before the first spill)."""
        return self._spill_dir

    def close(self) -> None:
        """Remove the spilled runs (the index is empty afterwards)."""
        self.runs, self.disk, self._in_memory = [], [], 0
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)
            self._spill_dir = None

    def __enter__(self) -> IdIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- lookups ------------------------------------------------------------------
    def _mark_seen(self, q: _Ids, found: np.ndarray, order: np.ndarray) -> None:
        """Set ``found`` where an id of ``q`` is in a run (exact); ``order`` sorts ``q`` by hash."""
        order = order[~found[order]]
        if not len(order) or not (self.runs or self.disk):
            return
        sorted_h = q.hashes[order]
        for run in self.runs:
            keys, pos = sorted_matches(run.hashes, sorted_h)
            if len(keys):
                _confirm(run.hashes, run.offsets, run.data, q.hashes, q.offsets, q.data, order[keys], pos, found)
        for disk in self.disk:
            cand_q, cand_pos = self._disk_candidates(disk, sorted_h, order)
            if len(cand_q):
                self._confirm_on_disk(disk, q, cand_q, cand_pos, found)

    def _disk_candidates(self, disk: _DiskRun, sorted_h: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, position) pairs whose hashes match: ``searchsorted`` on a mapping of the run's hashes.

        The sorted queries are cut into as many equal parts as the run has ``map_bytes`` of hashes, and each
        part gets a fresh mapping: a part touches about its share of the run's pages, released after it.
        """
        cand_q, cand_pos = [], []
        parts = max(1, min(len(sorted_h), -(-8 * disk.n // self.map_bytes)))
        cuts = np.linspace(0, len(sorted_h), parts + 1).astype(np.int64)
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            run_h = _map(disk.path("hash"), np.uint64, disk.n)
            keys, pos = sorted_matches(np.asarray(run_h), sorted_h[lo:hi])
            del run_h
            cand_q.append(order[lo:hi][keys])
            cand_pos.append(pos)
        if not cand_q:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(cand_q), np.concatenate(cand_pos)

    @staticmethod
    def _confirm_on_disk(disk: _DiskRun, q: _Ids, cand_q: np.ndarray, cand_pos: np.ndarray, found: np.ndarray) -> None:
        run_h = _map(disk.path("hash"), np.uint64, disk.n)
        run_off = _map(disk.path("offsets"), np.int64, disk.n + 1)
        run_data = _map(disk.path("ids"), np.uint8, disk.path("ids").stat().st_size)
        _confirm(np.asarray(run_h), np.asarray(run_off), np.asarray(run_data), q.hashes, q.offsets, q.data,
                 cand_q, cand_pos, found)
        del run_h, run_off, run_data  # unmapped: the touched pages leave this process

    # --- adding, merging, spilling ------------------------------------------------
    def _add(self, q: _Ids, take: np.ndarray, presorted: bool = False) -> None:
        """Remember the ids ``take`` of ``q`` (``presorted``: ``take`` is already in hash order)."""
        if not len(take):
            return
        if not presorted:
            take = take[hash_order(q.hashes[take])]
        offsets, data = _gather(q.offsets, q.data, take)
        self.runs.append(_Run(q.hashes[take], offsets, data))
        self._in_memory += len(take)
        if self._in_memory > self.budget:
            self._spill()
        elif len(self.runs) > self.max_runs:
            self.runs = [_merge(self.runs)]

    def _spill(self) -> None:
        run = _merge(self.runs)
        self.runs, self._in_memory = [], 0
        if self._spill_dir is None:
            if self.spill_root is None:
                self._spill_dir = Path(tempfile.mkdtemp(prefix="provkit-ids-"))
            else:
                self.spill_root.mkdir(parents=True, exist_ok=False)
                self._spill_dir = self.spill_root
        disk = _DiskRun(self._spill_dir / f"run-{len(self.disk):05d}", len(run.hashes))
        run.hashes.tofile(disk.path("hash"))
        run.offsets.tofile(disk.path("offsets"))
        run.data.tofile(disk.path("ids"))
        self.disk.append(disk)
        self.spills += 1
        if len(self.disk) > self.max_runs:
            self._merge_disk()

    def _merge_disk(self) -> None:
        """Merge every disk run into one, a hash range at a time (about ``budget / 4`` ids in memory at once).

        Hashes are close to uniform, so ``parts`` equal ranges of ``[0, 2^64)`` each hold about
        ``total / parts`` ids; ties keep the older run first.
        """
        assert self._spill_dir is not None
        total = sum(r.n for r in self.disk)
        parts = -(-4 * total // self.budget)  # ranges of about budget / 4 ids: the sort needs a few times that
        bounds = np.array([(k << 64) // parts for k in range(1, parts)], dtype=np.uint64)
        merged = _DiskRun(self._spill_dir / f"run-{self.spills:05d}", total)
        written = 0
        with open(merged.path("hash"), "wb") as fh, open(merged.path("offsets"), "wb") as fo, \
                open(merged.path("ids"), "wb") as fd:
            for k in range(parts):
                run = _merge([_range_of(r, bounds, k) for r in self.disk])
                run.hashes.tofile(fh)
                (run.offsets[:-1] + written).tofile(fo)
                run.data.tofile(fd)
                written += len(run.data)
            np.array([written], dtype=np.int64).tofile(fo)
        for old in self.disk:
            for part in ("hash", "offsets", "ids"):
                old.path(part).unlink()
        self.disk = [merged]
        self.spills += 1


def _map(path: Path, dtype: type, n: int) -> np.ndarray:
    """A read-only mapping of ``n`` items of ``path`` (pages come in when touched, leave when it is dropped)."""
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def _range_of(disk: _DiskRun, bounds: np.ndarray, k: int) -> _Run:
    """The ids of ``disk`` whose hashes fall in range ``k`` of ``bounds``, read into memory."""
    run_h = _map(disk.path("hash"), np.uint64, disk.n)
    lo = int(np.searchsorted(run_h, bounds[k - 1])) if k > 0 else 0
    hi = int(np.searchsorted(run_h, bounds[k])) if k < len(bounds) else disk.n
    offsets = np.array(_map(disk.path("offsets"), np.int64, disk.n + 1)[lo: hi + 1])
    data = np.fromfile(disk.path("ids"), dtype=np.uint8, count=int(offsets[-1] - offsets[0]), offset=int(offsets[0]))
    return _Run(np.array(run_h[lo:hi]), offsets - offsets[0], data)


def _merge(runs: list[_Run]) -> _Run:
    """One run holding every id of ``runs``, sorted by hash (ties: earlier runs first)."""
    if len(runs) == 1:
        return runs[0]
    hashes = np.concatenate([r.hashes for r in runs])
    shift = np.cumsum([0] + [len(r.data) for r in runs[:-1]])
    offsets = np.concatenate([r.offsets[:-1] + s for r, s in zip(runs, shift)] + [[shift[-1] + len(runs[-1].data)]])
    data = np.concatenate([r.data for r in runs])
    order = np.argsort(hashes, kind="stable")
    new_off, new_data = _gather(offsets.astype(np.int64), data, order)
    return _Run(hashes[order], new_off, new_data)
