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
* **disk runs** - looked up by streaming ``run-K.hash`` in slices of
  ``slice_ids`` hashes (``np.fromfile``, one reusable-size slice in memory at a
  time, no mapping that would stay resident) and ``searchsorted``-ing the
  batch's sorted hashes into each slice; only the positions whose hash matches
  are then compared byte for byte, through a short-lived ``np.memmap`` of
  ``run-K.offsets`` / ``run-K.ids`` that touches only those pages.

Exactness: a hash match is never taken as equality - the id bytes are compared,
so two different ids with the same 64-bit hash are two ids (the bytes are
what is checked; the hash only finds the candidates).  A batch's repeats of an
earlier id of the same batch are found the same way (sort by hash, compare the
bytes inside each group of equal hashes; the earliest occurrence is the
original).

Memory: at most ``budget`` ids in memory runs, i.e. ``budget · (8 + 8 +
mean id bytes)`` bytes (hash, offset, bytes; about 21 MiB for 2²⁰ ids of 6
bytes; transiently twice that while a spill merges), plus one slice of
``8 · slice_ids`` bytes (8 MiB) while a lookup streams a disk run - the same at
ten million ids as at one hundred million.  Disk: ``16 + id bytes`` per id.
Time: a lookup of ``q`` ids costs ``O(q log q)`` plus one sequential read of
every spilled hash (``8 · n`` bytes, from the page cache in practice) - per
batch, so a whole run of ``n`` ids in batches of ``b`` reads ``8 · n² / (2b)``
bytes: about 7 GB at n = 10⁷ and b = 1.2·10⁵ (a few seconds of memory
bandwidth), 0.7 TB at 10⁸.  Run count does not change that figure, so disk
runs are not merged.

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

DEFAULT_BUDGET = 1 << 20
"""Ids held in memory before the runs spill to disk."""
SLICE_IDS = 1 << 20
"""Hashes of a disk run read at a time during a lookup (8 MiB)."""


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
        s = offsets[take[k]]
        out[out_off[k]: out_off[k + 1]] = data[s: s + out_off[k + 1] - out_off[k]]
    return out_off, out


# ------------------------------------------------------------------ the index
class IdIndex:
    """The ids seen so far: ``duplicates`` marks and remembers, ``contains`` asks, ``add`` remembers.

    Exact (bytes compared on a hash match), memory bounded by ``budget`` ids
    (see the module docstring for the bytes and the costs).
    """

    def __init__(self, max_runs: int = 8, *, budget: int = DEFAULT_BUDGET, spill_dir: str | Path | None = None,
                 slice_ids: int = SLICE_IDS, hasher: Hasher = string_hashes):
        if budget < 1 or max_runs < 1 or slice_ids < 1:
            raise ValueError("budget, max_runs and slice_ids must be >= 1")
        self.max_runs = max_runs
        self.budget = budget
        self.slice_ids = slice_ids
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
            order = np.argsort(q.hashes, kind="stable")  # one sort serves the three steps
            _repeats(q.hashes, order, q.offsets, q.data, dup)
            self._mark_seen(q, dup, order)
            self._add(q, order[~dup[order]], presorted=True)
        return dup

    def contains(self, ids: Sequence[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Which ids were seen (no side effect)."""
        q = _Ids.of(ids, self.hasher)
        found = np.zeros(len(q), dtype=bool)
        if len(q):
            self._mark_seen(q, found, np.argsort(q.hashes, kind="stable"))
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
            pos = np.searchsorted(run.hashes, sorted_h)
            hit = pos < len(run.hashes)
            hit[hit] = run.hashes[pos[hit]] == sorted_h[hit]
            if hit.any():
                _confirm(run.hashes, run.offsets, run.data, q.hashes, q.offsets, q.data, order[hit], pos[hit], found)
        for disk in self.disk:
            cand_q, cand_pos = self._disk_candidates(disk, sorted_h, order)
            if len(cand_q):
                self._confirm_on_disk(disk, q, cand_q, cand_pos, found)

    def _disk_candidates(self, disk: _DiskRun, sorted_h: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, position) pairs whose hashes match, streaming the run's hashes slice by slice."""
        cand_q, cand_pos = [], []
        path = disk.path("hash")
        for start in range(0, disk.n, self.slice_ids):
            piece = np.fromfile(path, dtype=np.uint64, count=min(self.slice_ids, disk.n - start), offset=start * 8)
            lo = np.searchsorted(sorted_h, piece[0], "left")
            hi = np.searchsorted(sorted_h, piece[-1], "right")
            if lo >= hi:
                continue
            pos = np.searchsorted(piece, sorted_h[lo:hi])
            hit = pos < len(piece)
            hit[hit] = piece[pos[hit]] == sorted_h[lo:hi][hit]
            cand_q.append(order[lo:hi][hit])
            cand_pos.append(pos[hit] + start)
        if not cand_q:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(cand_q), np.concatenate(cand_pos)

    @staticmethod
    def _confirm_on_disk(disk: _DiskRun, q: _Ids, cand_q: np.ndarray, cand_pos: np.ndarray, found: np.ndarray) -> None:
        run_h = np.memmap(disk.path("hash"), dtype=np.uint64, mode="r", shape=(disk.n,))
        run_off = np.memmap(disk.path("offsets"), dtype=np.int64, mode="r", shape=(disk.n + 1,))
        size = disk.path("ids").stat().st_size
        run_data = np.memmap(disk.path("ids"), dtype=np.uint8, mode="r", shape=(size,)) if size else \
            np.zeros(0, np.uint8)
        _confirm(np.asarray(run_h), np.asarray(run_off), np.asarray(run_data), q.hashes, q.offsets, q.data,
                 cand_q, cand_pos, found)
        del run_h, run_off, run_data  # unmapped: the touched pages leave this process

    # --- adding, merging, spilling ------------------------------------------------
    def _add(self, q: _Ids, take: np.ndarray, presorted: bool = False) -> None:
        """Remember the ids ``take`` of ``q`` (``presorted``: ``take`` is already in hash order)."""
        if not len(take):
            return
        if not presorted:
            take = take[np.argsort(q.hashes[take], kind="stable")]
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
