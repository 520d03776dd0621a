"""The local streaming engine: runs a pipeline of steps (score -> plan -> decide) in one process.

Execution (see :mod:`provkit.filters.step` for the contract):

1. **score pass** — stream the input's record batches in manifest order, tag
   each row with its order key (``_row`` = position in the input), run every
   step's ``score`` and spill the scored batch to a temporary Parquet file
   next to the output; keep only the *decide columns* (what the steps name in
   ``decide_columns``; ``_row`` is implied by the position) in memory.
2. **decide** — for each step in order, take the rows still alive, ``plan``
   (global steps) and ``decide`` in batches: a decision table per step
   (``_row``, ``drop_reason``, annotations).  A row dropped by a step is not
   seen by the later ones, so each row gets exactly one fate.
3. **write pass** — stream the spill back, attach every step's annotations,
   ``sample_weight`` (the weighting steps' weights combined and renormalised
   to mean 1 over the kept rows by :func:`provkit.filters.step.sample_weights`;
   null on rejects), and send the row to ``data`` (kept) or ``rejects`` (with
   ``drop_reason`` and ``drop_step``).

Near-duplicate clustering (a step declaring a :class:`provkit.filters.step.ClusterDedup`
with a ``signature_column``, e.g. ``minhash_dedup``): the score pass appends
that column to a raw signature file in the spill directory instead of keeping
it in memory (or in the scored spill), and the step is planned from that
file (read a chunk at a time) by
:func:`provkit.filters.dedup.near_duplicate_labels_within_budget` — in memory when
it fits the step's ``memory_mb``, else spilled to partition files in the same
directory (a union-find forest, 8 bytes per row, plus a bounded working set) —
then :func:`provkit.filters.dedup.group_survivors` elects the survivors of the
components of two or more rows only (1 byte per row + ~40 per grouped row) and
:func:`provkit.filters.step.group_row_plan` lists just those rows.  When no
other step reads ``id``, none is kept: the survivors' ids are read back from
the spill (:func:`read_ids`).  Before the score pass (:meth:`LocalEngine.preflight`)
the budget is checked against the input's row count, and the whole-process
estimate (:func:`provkit.filters.dedup.process_bytes_estimate`) against the
engine's memory limit (``memory_limit_mb``, ``prov filter --memory-limit-mb``;
default the smaller of ``MemAvailable`` and the memory cgroup's headroom,
:func:`provkit.core.memory.available_memory`; no check where neither is readable), so a
run that cannot fit stops at once with one line.

Memory per input row (bytes; ``n`` rows):

* kept through the run: the decide columns that some step names (e.g.
  ``origin``, dictionary-encoded: 4; an ``id`` of ``L`` bytes: ``L + 4``),
  merged into one chunk per :data:`KEEP_CHUNK_ROWS` rows, and 2 of fate;
* while a step is planned: its alive rows' ``_row`` (8; for the first step
  every row is alive, so the decide columns are not copied) and the plan's
  own memory (documented per step: ``random_drop`` 8 + 1; ``minhash_dedup``
  the forest 8 + 1, within ``memory_mb``);
* stored decisions: only rows with something to say (a reason or an
  annotation; a cluster id equal to the row's own order is not stored and the
  write pass puts it back, :func:`cluster_values`), ~12-30 per listed row,
  unless the step weights (then every alive row);
* 8 of final ``sample_weight`` when a step weights.

Not per row: one batch of records (the input and the spill are read with
Parquet ``pre_buffer`` off, one row group at a time; the spill is written in
:data:`SPILL_ROW_GROUP_ROWS`-row groups without statistics, since a writer
keeps each row group's metadata until it closes: ~36 KB per group, 9 bytes
per row at 4,096-row groups) and the output writer's row-group buffers
(64 MiB per kind: the rejects buffer fills towards it as more rows are
dropped, which a 1M -> 3M comparison sees as growth).  Between phases the
allocators' unused memory is handed back (:func:`release_unused_memory`):
Arrow's mimalloc pool otherwise keeps the score pass's freed pages for reuse
under the next phase's peak, and glibc's heap is trimmed (:func:`provkit.core.memory.release_unused_memory`).  Measured figures: the README ("memory and scale") and
``benchmarks/dedup.py --step random_drop|origin``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from provkit.core.memory import MIB, available_memory, release_unused_memory
from provkit.core.progress import Advance, quiet_advance
from provkit.errors import ConfigError
from provkit.filters.dedup import (
    SignatureSource,
    check_budget,
    check_process_memory,
    group_survivors,
    near_duplicate_labels_within_budget,
)
from provkit.filters.engine import EngineResult, StepStats
from provkit.filters.minhash import signatures_from_arrow
from provkit.filters.step import (
    DROP_REASON,
    DROP_STEP,
    INTERNAL_PREFIX,
    ORDER,
    SAMPLE_WEIGHT,
    ClusterDedup,
    RowPlanStep,
    Step,
    lookup_row_plan,
    group_row_plan,
    sample_weights,
)
from provkit.provenance import Dataset, DatasetWriter

KEPT = -1
SCORED = "scored.parquet"
"""The scored spill's file name in the spill directory."""
SPILL_ROW_GROUP_ROWS = 16384
"""Rows per row group of the scored spill (read back one row group at a time)."""
KEEP_CHUNK_ROWS = 65536
"""Rows per merged chunk of the decide columns kept in memory."""


def _weight_summary(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max()),
            "sum": float(values.sum())}


def _with_order(batch: pa.RecordBatch, start: int) -> pa.RecordBatch:
    order = pa.array(np.arange(start, start + batch.num_rows, dtype=np.int64))
    names = [n for n in batch.schema.names if n != ORDER]
    return pa.RecordBatch.from_arrays([batch.column(n) for n in names] + [order], names=names + [ORDER])


def decide_column_names(steps: Sequence[Step]) -> list[str]:
    """``_row`` and every step's decide columns, once each, in first-use order (``id`` only when a step names it)."""
    names = [ORDER]
    for step in steps:
        names += [c for c in step.decide_columns if c not in names]
    return names


def spilled_signature_columns(steps: Sequence[Step]) -> list[str]:
    """Internal signature columns read only by near-duplicate cluster steps: kept in a file, not in memory."""
    wanted_elsewhere = {c for step in steps if _near_dup(step) is None for c in step.decide_columns}
    columns = {cap.signature_column for step in steps if (cap := _near_dup(step)) is not None}
    return sorted(c for c in columns if c.startswith(INTERNAL_PREFIX) and c not in wanted_elsewhere)


def ids_from_spill(steps: Sequence[Step], signature_columns: Sequence[str]) -> bool:
    """True when the only steps that read ``id`` are near-dup steps planned from the signature file.

    Their plans need the ids of the survivors of duplicates only, which :func:`read_ids` takes
    from the scored spill, so the engine keeps no ``id`` column in memory.
    """
    readers = [step for step in steps if "id" in step.decide_columns]
    return bool(readers) and all((cap := _near_dup(step)) is not None and cap.signature_column in signature_columns
                                 for step in readers)


def read_ids(spill: Path, rows: np.ndarray, batch_size: int) -> pa.Array:
    """The ``id`` of input rows ``rows`` (ascending) from the scored spill (row ``i`` holds ``_row == i``)."""
    parts = [pa.array([], pa.string())]
    if len(rows):
        for batch in pq.ParquetFile(spill, pre_buffer=False).iter_batches(batch_size=batch_size, columns=[ORDER, "id"]):
            first = int(batch.column(ORDER)[0].as_py())
            lo, hi = np.searchsorted(rows, [first, first + batch.num_rows])
            if hi > lo:
                parts.append(batch.column("id").cast(pa.string()).take(pa.array(rows[lo:hi] - first)))
    return pa.concat_arrays(parts)


def _near_dup(step: Step) -> ClusterDedup | None:
    """The step's near-duplicate :class:`ClusterDedup` capability (with a signature column), if any."""
    cap = getattr(step, "cluster_dedup", None)
    return cap if cap is not None and cap.signature_column is not None and cap.near_dup is not None else None


class SignatureSpill:
    """Raw row-major signature files, one per column, appended batch by batch in row order."""

    def __init__(self, directory: Path, columns: Sequence[str]):
        self.paths = {c: directory / f"signatures{c}.bin" for c in columns}
        self.shapes: dict[str, tuple[np.dtype, int]] = {}

    def take(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Append ``batch``'s signature columns to their files; ``batch`` without them."""
        if not self.paths:
            return batch
        for column, path in self.paths.items():
            if column not in batch.schema.names:
                raise RuntimeError(f"decide column {column!r} was not produced by any step's score")
            sigs = signatures_from_arrow(batch.column(column))
            self.shapes.setdefault(column, (sigs.dtype, sigs.shape[1]))
            with open(path, "ab") as f:
                np.ascontiguousarray(sigs).tofile(f)
        names = [n for n in batch.schema.names if n not in self.paths]
        return pa.RecordBatch.from_arrays([batch.column(n) for n in names], names=names)

    def source(self, column: str, rows: np.ndarray, num_perm: int) -> SignatureSource:
        """The signatures of ``column`` at input rows ``rows`` (read from the file a chunk at a time)."""
        if column not in self.shapes:  # no row was scored
            return SignatureSource(np.zeros((0, num_perm), dtype=np.uint32), rows)
        dtype, width = self.shapes[column]
        return SignatureSource(rows=rows, path=self.paths[column], dtype=dtype, width=width)


def score_batch(batch: pa.RecordBatch, steps: Sequence[Step], seconds: list[float]) -> pa.RecordBatch:
    """Run every step's ``score`` on ``batch`` in order, timing each."""
    for i, step in enumerate(steps):
        t0 = time.perf_counter()
        batch = step.score(batch)
        seconds[i] += time.perf_counter() - t0
    return batch


def decide_step(step: Step, alive: pa.Table, batch_size: int,
                planner: Callable[[pa.Table], Any] | None = None) -> pa.Table:
    """Plan (global steps) and decide ``step`` over the alive rows; a decision table keyed by ``_row``.

    ``planner`` replaces ``step.plan`` (an engine's distributed plan of the same step).
    """
    plan = (planner or step.plan)(alive) if step.is_global else None
    if (shortcut := _plan_as_decisions(step, plan, alive)) is not None:
        return shortcut
    parts = []
    for batch in alive.to_batches(max_chunksize=batch_size):
        if batch.num_rows == 0:
            continue
        dec = step.decide(batch, plan)
        if dec.num_rows != batch.num_rows or DROP_REASON not in dec.schema.names:
            raise RuntimeError(f"step {step.name!r}: decide must return {DROP_REASON} for every row")
        part = pa.RecordBatch.from_arrays([batch.column(ORDER)] + dec.columns, names=[ORDER] + dec.schema.names)
        parts.append(part if step.weight_column else _listed_only(part))
    if not parts:  # an earlier step dropped every row: an empty plan that still has the step's weight column
        empty = {ORDER: pa.array([], pa.int64()), DROP_REASON: pa.array([], pa.string())}
        if step.weight_column:
            empty[step.weight_column] = pa.array([], pa.float64())
        return pa.table(empty)
    return pa.Table.from_batches(parts).combine_chunks()


def _plan_as_decisions(step: Step, plan: Any, alive: pa.Table) -> pa.Table | None:
    """A :class:`RowPlanStep`'s row plan as its decision table when it may stand for one, else None.

    ``decide`` of such a step is :func:`lookup_row_plan` on the plan, so the decision table
    it would build batch by batch is the plan itself: no lookup, no second copy.  That holds
    when the plan lists exactly the alive rows, or — for a step that does not weight (whose
    stored decisions leave out the rows with nothing to say anyway) — a subset of them in
    ascending order (``random_drop`` lists only the rows it drops).
    """
    if type(step).decide is not RowPlanStep.decide or not isinstance(plan, pa.Table) or alive.num_rows == 0:
        return None
    if ORDER not in plan.column_names or DROP_REASON not in plan.column_names:
        return None
    keys, rows = plan.column(ORDER).to_numpy(), alive.column(ORDER).to_numpy()
    if len(keys) == len(rows):
        if not np.array_equal(keys, rows):
            return None
    elif step.weight_column or not _alive_subset(keys, rows):
        return None
    names = [ORDER] + [n for n in plan.column_names if n != ORDER]
    return plan.select(names).combine_chunks()


def _alive_subset(keys: np.ndarray, rows: np.ndarray) -> bool:
    """True when ``keys`` are strictly ascending and each is one of the (ascending) alive ``rows``."""
    if len(keys) == 0:
        return True
    if len(keys) > len(rows) or np.any(keys[1:] <= keys[:-1]):
        return False
    at = np.searchsorted(rows, keys)
    return bool(at[-1] < len(rows) and np.array_equal(rows[at], keys))


def _listed_mask(table: pa.Table | pa.RecordBatch) -> np.ndarray:
    """Rows of a decision table whose reason or some annotation is not null."""
    listed = np.zeros(table.num_rows, dtype=bool)
    for name in table.schema.names:
        if name != ORDER:
            listed |= pc.is_valid(table.column(name)).to_numpy(zero_copy_only=False)
    return listed


def _listed_only(part: pa.RecordBatch) -> pa.RecordBatch:
    """The rows of one batch of decisions that say something (see :func:`stored_decisions`)."""
    listed = _listed_mask(part)
    return part if listed.all() else part.filter(pa.array(listed))


def alive_table(small: pa.Table, fate: np.ndarray) -> pa.Table:
    """The decide columns of the rows still alive, with their ``_row`` (the decide columns hold no ``_row``)."""
    keep = fate == KEPT
    orders = np.flatnonzero(keep).astype(np.int64)
    if ORDER in small.column_names:  # row i of the decide columns is input row i: ``_row`` is made here
        small = small.drop_columns([ORDER])
    rows = small if orders.size == small.num_rows else small.filter(pa.array(keep))
    return rows.add_column(0, ORDER, pa.array(orders))


def stored_decisions(step: Step, table: pa.Table) -> pa.Table:
    """The part of a decision table the write pass needs, compactly.

    Rows whose reason and annotations are all null are left out (the write pass
    reads an unlisted row as kept with null annotations), unless the step
    weights (:func:`sample_weights` needs every kept row); ``drop_reason`` is
    dictionary-encoded (decoded again in the write pass).
    """
    table = _own_cluster_as_null(step, table)
    if not step.weight_column and table.num_rows:
        listed = _listed_mask(table)
        if not listed.all():
            table = table.filter(pa.array(listed))
    if pa.types.is_string(table.schema.field(DROP_REASON).type):
        reasons = table.column(DROP_REASON).combine_chunks().dictionary_encode()
        table = table.set_column(table.schema.get_field_index(DROP_REASON), DROP_REASON, reasons)
    return table.combine_chunks()


def _own_cluster_as_null(step: Step, table: pa.Table) -> pa.Table:
    """A cluster-dedup step's cluster column with null where it is the row's own order (see :func:`cluster_values`)."""
    cap = getattr(step, "cluster_dedup", None)
    if cap is None or cap.cluster_column not in table.column_names or not table.num_rows:
        return table
    column = table.column(cap.cluster_column)
    own = pc.equal(column, table.column(ORDER))
    at = table.schema.get_field_index(cap.cluster_column)
    return table.set_column(at, cap.cluster_column, pc.if_else(own, pa.scalar(None, column.type), column))


def cluster_values(values: pa.Array, order: np.ndarray, alive: np.ndarray) -> pa.Array:
    """A cluster column as written: a row alive at the step that has no stored value is its own cluster.

    Stored decisions leave out the cluster id of a row that is its own cluster's smallest row
    (every singleton: most rows), so the write pass puts the row's order back there.
    """
    own = pa.array(np.where(alive, order, 0), mask=~alive, type=pa.int64())
    return pc.coalesce(values.cast(pa.int64()), own)


def cluster_column(step: Step) -> str | None:
    """The cluster column of a step that declares :class:`ClusterDedup`, else None."""
    cap = getattr(step, "cluster_dedup", None)
    return cap.cluster_column if cap is not None else None


def _decoded(values: pa.Array) -> pa.Array:
    """``values`` as its plain type when dictionary-encoded (see :func:`stored_decisions`)."""
    return values.cast(values.type.value_type) if pa.types.is_dictionary(values.type) else values


def spill_scored(scored: Iterable[pa.RecordBatch], keep_cols: Sequence[str], spill: Path,
                 progress: Advance) -> tuple[pa.Table | None, int]:
    """Write scored batches to the ``spill`` file; keep only the decide columns in memory.

    ``_row`` is not kept (row ``i`` of the result is input row ``i``; :func:`alive_table` makes it).
    Returns (the decide columns of every row, or None when there were no rows; the row count).

    Both grow by what a row needs, not by batch: the spill is written in row groups of
    :data:`SPILL_ROW_GROUP_ROWS` without statistics (a row group's metadata stays in the
    writer until it closes: ~36 KB per group measured with statistics, 9 bytes per row at
    4,096-row groups), and the kept columns are merged into one chunk per
    :data:`KEEP_CHUNK_ROWS` rows (a chunk per batch cost ~20 KB of buffers and objects).
    """
    small: list[pa.RecordBatch] = []
    pending: list[pa.RecordBatch] = []  # decide columns not merged yet
    group: list[pa.RecordBatch] = []  # scored batches not written yet
    writer: pq.ParquetWriter | None = None
    n = 0
    try:
        for batch in scored:
            if batch.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(spill, batch.schema, compression="lz4", write_statistics=False)
            missing = [c for c in keep_cols if c not in batch.schema.names]
            if missing:
                raise RuntimeError(f"decide column {missing[0]!r} was not produced by any step's score")
            group.append(batch)
            if sum(b.num_rows for b in group) >= SPILL_ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(group))
                group = []
            pending.append(batch.select([c for c in keep_cols if c != ORDER]))
            if sum(b.num_rows for b in pending) >= KEEP_CHUNK_ROWS:
                small.extend(_merged(pending))
                pending = []
            n += batch.num_rows
            progress(batch.num_rows, "score")
        if group and writer is not None:
            writer.write_table(pa.Table.from_batches(group))
        small.extend(_merged(pending))
    finally:
        if writer is not None:
            writer.close()
    return (pa.Table.from_batches(small) if small else None), n


def _merged(batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """``batches`` as one batch with contiguous buffers (dictionaries unified), or [] for none."""
    if not batches:
        return []
    if batches[0].num_columns == 0:  # no decide column: the batches carry only their row counts
        return batches
    return pa.Table.from_batches(batches).combine_chunks().to_batches()


class LocalEngine:
    """Runs steps over a dataset and writes kept rows and rejects into a :class:`DatasetWriter`."""

    name = "local"

    def __init__(self, batch_size: int = 4096, spill_dir: str | Path | None = None,
                 memory_limit_mb: float | None = None):
        if memory_limit_mb is not None and not (math.isfinite(memory_limit_mb) and memory_limit_mb > 0):
            raise ConfigError(f"--memory-limit-mb: must be a positive number of MiB, got {memory_limit_mb}")
        self.batch_size = batch_size
        self.spill_dir = spill_dir
        self.memory_limit_mb = memory_limit_mb
        self._signatures: SignatureSpill | None = None
        self._ids_from_spill = False
        self._spill: Path | None = None

    def run(self, dataset: Dataset, steps: Sequence[Step], writer: DatasetWriter,
            progress: Advance | None = None) -> EngineResult:
        progress = progress or quiet_advance
        stats = [StepStats(step.name) for step in steps]
        spill_root = Path(self.spill_dir) if self.spill_dir else writer.target.parent
        spill_root.mkdir(parents=True, exist_ok=True)
        spill = Path(tempfile.mkdtemp(prefix=".provkit-spill-", dir=spill_root))
        self._spill = spill
        try:
            small, n = self._score_pass(dataset, steps, spill / SCORED, stats, progress)
            release_unused_memory()
            fate, tables = self._decide_all(small, n, steps, stats)
            weights = sample_weights(steps, tables, small, fate == KEPT)
            del small  # the write pass needs only fate, the stored decisions and the weights
            release_unused_memory()
            return self._write_pass(spill / SCORED, n, steps, fate, tables, weights, stats, writer,
                                    progress)
        finally:
            self._signatures = None
            shutil.rmtree(spill, ignore_errors=True)

    def memory_limit(self) -> tuple[int | None, str]:
        """The whole-process memory limit in bytes and where it comes from (None: unknown, no check)."""
        if self.memory_limit_mb is not None:
            return int(self.memory_limit_mb * MIB), "--memory-limit-mb"
        return available_memory()

    def preflight(self, n: int, steps: Sequence[Step]) -> None:
        """Before any work: refuse a near-dup step whose budget cannot hold ``n`` rows, or whose whole-process
        estimate (:func:`provkit.filters.dedup.process_bytes_estimate`) exceeds :meth:`memory_limit`."""
        near_dups = [cap.near_dup for step in steps if (cap := _near_dup(step)) is not None]
        if not near_dups:
            return
        limit, source = self.memory_limit()
        for config in near_dups:
            check_budget(n, config)
            check_process_memory(n, config, limit, source)

    # --- 1. score ----------------------------------------------------------
    def _score_pass(self, dataset: Dataset, steps: Sequence[Step], spill: Path, stats: list[StepStats],
                    progress: Advance) -> tuple[pa.Table | None, int]:
        self.preflight(dataset.num_rows(), steps)
        seconds = [0.0] * len(steps)
        signature_columns = spilled_signature_columns(steps)
        self._signatures = signatures = SignatureSpill(spill.parent, signature_columns)

        def scored() -> Iterator[pa.RecordBatch]:
            offset = 0
            for batch in dataset.iter_batches("data", batch_size=self.batch_size):
                if batch.num_rows:
                    yield signatures.take(score_batch(_with_order(batch, offset), steps, seconds))
                    offset += batch.num_rows

        self._ids_from_spill = ids_from_spill(steps, signature_columns)
        keep_cols = [c for c in decide_column_names(steps)
                     if c not in signature_columns and not (c == "id" and self._ids_from_spill)]
        result = spill_scored(scored(), keep_cols, spill, progress)
        for st, s in zip(stats, seconds):
            st.seconds += s
        return result

    # --- 2. plan + decide --------------------------------------------------
    def _decide_all(self, small: pa.Table | None, n: int, steps: Sequence[Step],
                    stats: list[StepStats]) -> tuple[np.ndarray, list[pa.Table | None]]:
        fate = np.full(n, KEPT, dtype=np.int16)
        tables: list[pa.Table | None] = [None] * len(steps)
        if small is None:
            return fate, tables
        for k, step in enumerate(steps):
            t0 = time.perf_counter()
            alive = alive_table(small, fate)
            rows_in = alive.num_rows
            table = decide_step(step, alive, self.batch_size, self._planner(step))
            del alive
            reasons = table.column(DROP_REASON)
            dropped = pc.is_valid(reasons).to_numpy(zero_copy_only=False)
            fate[table.column(ORDER).to_numpy()[dropped]] = k
            st = stats[k]
            st.rows_in, st.kept = rows_in, int(rows_in - dropped.sum())
            counts = pc.value_counts(reasons.filter(pa.array(dropped))).to_pylist() if dropped.any() else []
            st.dropped = {c["values"]: int(c["counts"]) for c in sorted(counts, key=lambda c: c["values"])}
            if step.weight_column and step.weight_column in table.column_names:  # absent: no row was alive
                w = pc.fill_null(table.column(step.weight_column), 1.0).to_numpy()[~dropped]
                st.weight = _weight_summary(np.asarray(w, dtype=np.float64))
            tables[k] = stored_decisions(step, table)
            del table, reasons, dropped
            release_unused_memory()
            st.seconds += time.perf_counter() - t0
        return fate, tables

    def _planner(self, step: Step) -> Callable[[pa.Table], Any] | None:
        """The engine's own plan of ``step`` (None: ``step.plan`` on the driver).

        Near-duplicate cluster steps whose signatures went to a file are planned from that file.
        """
        cap = _near_dup(step)
        signatures = self._signatures
        if cap is None or signatures is None or cap.signature_column not in signatures.paths:
            return None

        def plan(alive: pa.Table) -> pa.Table:
            orders = alive.column(ORDER).to_numpy()
            source = signatures.source(cap.signature_column, orders, cap.near_dup.num_perm)
            labels = near_duplicate_labels_within_budget(source, cap.near_dup, workdir=self._spill)
            groups = group_survivors(labels, alive.column("origin"), orders)
            del labels
            if "id" in alive.column_names:
                return group_row_plan(orders, groups, alive.column("id"), cap.reason, cap.cluster_column)
            named = np.unique(groups.survivor[groups.survivor != groups.rows])  # the survivors of duplicates
            ids = read_ids(self._spill / SCORED, orders[named], self.batch_size)
            return group_row_plan(orders, groups, ids, cap.reason, cap.cluster_column, id_rows=named)

        return plan

    # --- 3. write ----------------------------------------------------------
    def _write_pass(self, spill: Path, n: int, steps: Sequence[Step], fate: np.ndarray,
                    tables: list[pa.Table | None], weights: np.ndarray | None, stats: list[StepStats],
                    writer: DatasetWriter, progress: Advance) -> EngineResult:
        if n:
            for batch in pq.ParquetFile(spill, pre_buffer=False).iter_batches(batch_size=self.batch_size):
                self._write_batch(batch, steps, fate, tables, weights, writer)
                progress(batch.num_rows, "write")
        dropped: dict[str, int] = {}
        for st in stats:
            for reason, count in st.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + count
        kept = int((fate == KEPT).sum())
        summary = _weight_summary(weights[fate == KEPT]) if weights is not None else None
        return EngineResult(input=n, kept=kept, dropped=dropped, steps=stats, sample_weight=summary)

    def _write_batch(self, batch: pa.RecordBatch, steps: Sequence[Step], fate: np.ndarray,
                     tables: list[pa.Table | None], weights: np.ndarray | None, writer: DatasetWriter) -> None:
        order = batch.column(ORDER).to_numpy()
        row_fate = fate[order]
        columns = {c: batch.column(c) for c in batch.schema.names if not c.startswith(INTERNAL_PREFIX)}
        reason = pa.nulls(batch.num_rows, pa.string())
        step_name = np.array([None] * batch.num_rows, dtype=object)
        for k, (step, table) in enumerate(zip(steps, tables)):
            assert table is not None
            looked = lookup_row_plan(batch, table)
            for col in looked.schema.names:
                if col == DROP_REASON:
                    mine = pa.array(row_fate == k)
                    reason = pc.if_else(mine, _decoded(looked.column(col)), reason)
                elif not col.startswith(INTERNAL_PREFIX):  # same name from two steps (dup_of): first non-null
                    values = looked.column(col)
                    if cluster_column(step) == col:
                        values = cluster_values(values, order, (row_fate == KEPT) | (row_fate >= k))
                    columns[col] = pc.coalesce(columns[col], values) if col in columns else values
            step_name[row_fate == k] = step.name
        if weights is not None:
            columns[SAMPLE_WEIGHT] = pa.array(weights[order], from_pandas=True)  # NaN (dropped) -> null
        out = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
        keep = row_fate == KEPT
        if keep.any():
            writer.write(out.filter(pa.array(keep)), kind="data")
        if (~keep).any():
            rejects = pa.RecordBatch.from_arrays(
                out.columns + [reason, pa.array(step_name.tolist(), pa.string())],
                names=out.schema.names + [DROP_REASON, DROP_STEP])
            writer.write(rejects.filter(pa.array(~keep)), kind="rejects")
