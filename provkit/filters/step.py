"""The Step protocol: how a curation operator is written so every engine can run it unchanged.

A pipeline is a list of steps.  Each step splits its work in three phases, so
that *scoring* (expensive, per record) is separate from *deciding* (cheap,
re-runnable with another threshold):

1. ``score(batch) -> batch`` — a **pure map** over one ``pyarrow.RecordBatch``
   of records: it returns the same rows, in the same order, with the step's
   annotation columns appended (``quality_*``, ``detector_score``,
   ``tail_score``, a ``_minhash`` signature ...).  No state, no I/O, no
   dependence on other batches: an engine may call it on any batch, in any
   process, in any order (local streaming loop, Ray ``map_batches``).
   Columns whose name starts with ``_`` are *internal*: engines feed them to
   ``plan``/``decide`` but never write them to the output dataset.

2. ``plan(table) -> plan`` — **global steps only** (``is_global = True``:
   dedup, tail resampling to a target size, mixing to a budget).  ``table``
   holds only the small columns the step names in ``decide_columns`` plus the
   engine's row order key :data:`ORDER`, for every row still alive when the
   step runs (rows dropped by an earlier step are not in it), sorted by
   :data:`ORDER`.  It returns a small, picklable decision object (a
   ``pa.Table``, a threshold, a dict) — never the records.  Map-only steps
   return ``None``.  A :func:`row_plan` need list only the rows it has
   something to say about (an unlisted row is kept, with null annotations),
   unless the step weights; built from Arrow columns, it holds no Python
   object per row.  The memory a plan needs is the bytes of its
   ``decide_columns`` per alive row (documented per step).

3. ``decide(batch, plan) -> decisions`` — a **pure map** again: given a batch
   holding at least ``decide_columns`` and :data:`ORDER`, return a
   ``pa.RecordBatch`` with the same number of rows and

   * :data:`DROP_REASON` (string; null = keep) — why the row is dropped;
   * any annotation columns to attach to the row (``dup_of``,
     ``tail_weight``, ``mix_weight`` ...).  If the step weights records,
     ``weight_column`` names the column holding its multiplicative weight;
     the engine writes ``sample_weight`` on the kept rows: the product of the
     weight columns of all weighting steps, **renormalised to mean 1** over
     the kept rows by :func:`combine_weights` (group-exact when the last
     weighting step names ``weight_groups``, as ``mix`` does: its
     ``alpha`` split survives the earlier steps' weights).  Rejects carry no
     ``sample_weight`` (null): they are not trained on.

Determinism: anything random is derived from the record ``id`` and the
step's ``seed`` (see :func:`seeded_uniform`), never from batch boundaries or
process state, so the local and Ray engines produce identical results.

An engine (``provkit.engines.local`` is the reference) runs, for a pipeline
``[s1, ..., sn]``: score every batch with every step (one pass), collect the
decide columns of all rows, then for ``k = 1..n`` — plan ``s_k`` on the rows
alive after ``s_1..s_{k-1}`` and decide them — and finally writes kept rows
(data) and dropped rows (rejects, with ``drop_reason`` and ``drop_step``).
Every row gets exactly one fate, so ``input == kept + sum(dropped)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any, ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ORDER = "_row"
"""Engine-assigned int64 row order key: the row's position in the input (manifest order)."""
DROP_REASON = "drop_reason"
DROP_STEP = "drop_step"
SAMPLE_WEIGHT = "sample_weight"
INTERNAL_PREFIX = "_"


@runtime_checkable
class Step(Protocol):
    """What every pipeline step provides (see the module docstring for the contract)."""

    name: str
    config: Any
    is_global: bool
    decide_columns: tuple[str, ...]
    weight_column: str | None

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...

    def plan(self, table: pa.Table) -> Any: ...

    def decide(self, batch: pa.RecordBatch, plan: Any) -> pa.RecordBatch: ...


class BaseStep:
    """Defaults for a step: no scoring, no plan, keep everything.

    Subclasses set ``name`` and ``is_global``, take their config dataclass in
    ``__init__`` and override what they need.
    """

    name: ClassVar[str] = "step"
    is_global: bool = False
    decide_columns: tuple[str, ...] = ()
    weight_column: str | None = None
    weight_groups: str | None = None  # a decide column: group totals of this step's weights are kept exact
    cluster_dedup: ClusterDedup | None = None  # dedup steps: an engine may compute this plan on a cluster

    def __init__(self, config: Any):
        self.config = config

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch

    def plan(self, table: pa.Table) -> Any:
        return None

    def decide(self, batch: pa.RecordBatch, plan: Any) -> pa.RecordBatch:
        return decisions(batch.num_rows)

    def params(self) -> dict[str, Any]:
        """The step's config as plain JSON values (recorded in the output's activity)."""
        return asdict(self.config) if is_dataclass(self.config) else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params()})"


class RowPlanStep(BaseStep):
    """A global step whose ``plan`` returns a :func:`row_plan` table; ``decide`` looks rows up in it."""

    is_global: bool = True

    def decide(self, batch: pa.RecordBatch, plan: Any) -> pa.RecordBatch:
        return lookup_row_plan(batch, plan)


@dataclass(frozen=True)
class ClusterDedup:
    """A capability a dedup step declares: "my plan is a duplicate clustering an engine may compute itself".

    An engine that can cluster (the Ray engine: band buckets -> candidate pairs
    -> connected components, on the cluster) plans such a step its own way and
    must give the same decisions as the step's ``plan``: rows that are not
    their cluster's survivor are dropped with ``reason`` and annotated with
    ``cluster_column`` and ``dup_of``.  ``signature_column`` names the MinHash
    signatures (``near_dup`` holds the LSH settings); ``None`` means exact
    duplicates on ``content_hash``.  Engines that cannot cluster ignore it.
    """

    reason: str
    cluster_column: str
    signature_column: str | None = None
    near_dup: Any = None

    def survivor_plan(self, orders: np.ndarray, result: Any, ids: pa.Array | pa.ChunkedArray) -> pa.Table:
        """The :func:`row_plan` of a clustering ``result`` (``is_survivor``, ``cluster``, ``dup_of(ids)``)."""
        return survivor_row_plan(orders, result, ids, self.reason, self.cluster_column)


def decisions(n: int, reasons: Sequence[str | None] | pa.Array | None = None, **annotations: Any) -> pa.RecordBatch:
    """Build a ``decide`` result: a :data:`DROP_REASON` column (null = keep) plus annotation columns."""
    reason = _reason_array(reasons) if reasons is not None else pa.nulls(n, pa.string())
    arrays = [reason] + [a if isinstance(a, (pa.Array, pa.ChunkedArray)) else pa.array(a) for a in annotations.values()]
    return pa.RecordBatch.from_arrays(arrays, names=[DROP_REASON, *annotations])


def reasons_where(drop: np.ndarray, reason: str) -> pa.Array:
    """A string array: ``reason`` where ``drop`` is true, null elsewhere (no Python object per row).

    4 bytes of offsets and a validity bit per row, plus the reason's bytes per dropped row.
    """
    mask = pa.array(np.asarray(drop, dtype=bool), pa.bool_())
    return pc.if_else(mask, pa.scalar(reason, pa.string()), pa.scalar(None, pa.string()))


def _reason_array(reasons: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``reasons`` as an Arrow string column (an Arrow column is used as it is, cast only when not string)."""
    if isinstance(reasons, (pa.Array, pa.ChunkedArray)):
        return reasons if pa.types.is_string(reasons.type) else reasons.cast(pa.string())
    return pa.array(list(reasons), type=pa.string())


def append_columns(batch: pa.RecordBatch, columns: dict[str, Any]) -> pa.RecordBatch:
    """``batch`` with ``columns`` appended (replacing same-named ones)."""
    names = [n for n in batch.schema.names if n not in columns]
    arrays = [batch.column(n) for n in names]
    for name, values in columns.items():
        names.append(name)
        arrays.append(values if isinstance(values, pa.Array) else pa.array(values))
    return pa.RecordBatch.from_arrays(arrays, names=names)


def row_plan(orders: np.ndarray, reasons: Sequence[str | None] | pa.Array | pa.ChunkedArray,
             **annotations: Any) -> pa.Table:
    """A per-row plan: ``ORDER`` (sorted ascending) + :data:`DROP_REASON` + annotations, for :func:`lookup_row_plan`.

    A plan may list only some of the alive rows: an unlisted row is kept with null annotations
    (a step that weights must list every alive row).  Arrow columns are used as they are (no
    Python object per row); orders already ascending, as the engines pass them, are not re-sorted
    (so nothing is copied).
    """
    orders = np.asarray(orders, dtype=np.int64)
    cols = {DROP_REASON: _reason_array(reasons)}
    for name, values in annotations.items():
        cols[name] = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    if len(orders) > 1 and np.any(orders[1:] < orders[:-1]):
        sort = np.argsort(orders, kind="stable")
        orders = orders[sort]
        cols = {name: values.take(sort) for name, values in cols.items()}
    return pa.table({ORDER: orders, **cols})


def survivor_row_plan(orders: np.ndarray, result: Any, ids: pa.Array | pa.ChunkedArray, reason: str,
                      cluster_column: str, id_rows: np.ndarray | None = None) -> pa.Table:
    """The :func:`row_plan` of a clustering, built with Arrow kernels (no Python object per row).

    ``result`` has ``survivor`` (row position of each row's survivor) and ``cluster`` (the cluster id)
    per row, like :class:`provkit.filters.dedup.DedupResult`.  Columns: ``ORDER`` ascending,
    ``drop_reason`` (``reason`` for non-survivors), ``dup_of`` (the survivor's id, null for
    survivors) and ``cluster_column``.  ``ids`` holds one id per row, or, with ``id_rows`` (ascending
    row positions), the ids of those rows only: they must include every survivor of a duplicate.
    """
    survivor = np.asarray(result.survivor, dtype=np.int64)
    dup = survivor != np.arange(len(survivor))
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    at = survivor if id_rows is None else np.searchsorted(np.asarray(id_rows, dtype=np.int64), survivor)
    dup_of = ids.cast(pa.string()).take(pa.array(np.where(dup, at, 0), mask=~dup, type=pa.int64()))
    return row_plan(orders, reasons_where(dup, reason), dup_of=dup_of,
                    **{cluster_column: pa.array(result.cluster, pa.int64())})


def group_row_plan(orders: np.ndarray, groups: Any, ids: pa.Array | pa.ChunkedArray, reason: str,
                   cluster_column: str, id_rows: np.ndarray | None = None) -> pa.Table:
    """The :func:`row_plan` of a clustering that lists only the rows of clusters of two or more rows.

    ``groups`` has ``rows`` (ascending positions), ``survivor`` (positions) and ``cluster`` per
    listed row, like :class:`provkit.filters.dedup.GroupSurvivors`; ``ids`` and ``id_rows`` as for
    :func:`survivor_row_plan`.  An unlisted row is kept, and its own cluster: an engine that reads
    this plan writes its order as its ``cluster_column`` (the local engine does).
    """
    rows = np.asarray(groups.rows, dtype=np.int64)
    survivor = np.asarray(groups.survivor, dtype=np.int64)
    dup = survivor != rows
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    at = survivor if id_rows is None else np.searchsorted(np.asarray(id_rows, dtype=np.int64), survivor)
    dup_of = ids.cast(pa.string()).take(pa.array(np.where(dup, at, 0), mask=~dup, type=pa.int64()))
    return row_plan(np.asarray(orders, dtype=np.int64)[rows], reasons_where(dup, reason), dup_of=dup_of,
                    **{cluster_column: pa.array(groups.cluster, pa.int64())})


def lookup_row_plan(batch: pa.RecordBatch, plan: pa.Table) -> pa.RecordBatch:
    """The decisions of a :func:`row_plan` for the rows of ``batch`` (matched on ``ORDER``).

    Rows the plan does not list are kept, with null annotations.
    """
    keys = plan.column(ORDER).to_numpy()
    want = batch.column(ORDER).to_numpy()
    idx = np.searchsorted(keys, want)
    found = idx < len(keys)
    found[found] = keys[idx[found]] == want[found]
    take = pa.array(np.where(found, idx, 0), mask=~found, type=pa.int64())
    names = [n for n in plan.column_names if n != ORDER]
    arrays = [plan.column(n).take(take).combine_chunks() for n in names]
    return pa.RecordBatch.from_arrays(arrays, names=names)


def config_fields(config_cls: type) -> dict[str, Any]:
    """Field name -> declared type of a config dataclass (used by the config parser)."""
    return {f.name: f.type for f in fields(config_cls)}


def combine_weights(step_weights: Sequence[np.ndarray], groups: np.ndarray | None = None) -> np.ndarray:
    """``sample_weight`` of the kept rows from the weights of the weighting steps, in pipeline order.

    With ``W_1 .. W_k`` the steps' weights on the kept rows (each normalised to
    mean 1 over the rows *its* step saw, so their product is not) and
    ``Q = W_1 * ... * W_(k-1)``:

    * no ``groups``: ``w_i = P_i / mean(P)`` with ``P = Q * W_k`` — mean 1;
    * ``groups`` (labels from the last step's ``weight_groups`` column):
      ``v_i = W_k,i * Q_i * c_g(i)`` with ``c_g = sum_g W_k / sum_g W_k * Q``,
      so every group keeps exactly the total the last step gave it (``mix``:
      ``alpha * N`` for the human rows, ``(1 - alpha) * N`` for the model rows),
      and the earlier weights only redistribute inside a group; then
      ``w = v / mean(v)`` (a common factor: group shares unchanged), mean 1.

    A group (or the whole set) whose weighted total is 0 keeps its raw weights.
    """
    if not step_weights:
        raise ValueError("combine_weights needs at least one weighting step")
    last = np.asarray(step_weights[-1], dtype=np.float64)
    prior = np.ones_like(last)
    for w in step_weights[:-1]:
        prior = prior * np.asarray(w, dtype=np.float64)
    out = last * prior
    if groups is not None and len(out):
        _, label = np.unique(np.asarray(groups), return_inverse=True)
        target = np.bincount(label, weights=last)
        current = np.bincount(label, weights=out)
        scale = np.divide(target, current, out=np.ones_like(target), where=current > 0)
        out = out * scale[label]
    total = out.sum()
    return out * (len(out) / total) if total > 0 else out


def sample_weights(steps: Sequence[Step], tables: Sequence[pa.Table | None], alive: pa.Table | None,
                   kept: np.ndarray) -> np.ndarray | None:
    """The final ``sample_weight`` of every row (indexed by :data:`ORDER`; NaN for dropped rows), or None.

    ``tables[k]`` is step ``k``'s decision table (``ORDER`` ascending), ``alive``
    the decide columns of all rows (in ``ORDER``), ``kept`` the boolean fate
    mask.  Combines the weighting steps' columns with :func:`combine_weights`.
    """
    weighting = [k for k, step in enumerate(steps) if step.weight_column]
    if not weighting or alive is None:  # no weighting step, or no rows at all
        return None
    orders = np.flatnonzero(kept)
    per_step = []
    for k in weighting:
        table = tables[k]
        assert table is not None
        if steps[k].weight_column not in table.column_names:  # the step saw no row: every row was dropped before
            per_step.append(np.ones(len(orders)))
            continue
        keys = table.column(ORDER).to_numpy()
        values = table.column(steps[k].weight_column).to_numpy(zero_copy_only=False).astype(np.float64)
        per_step.append(np.nan_to_num(values[np.searchsorted(keys, orders)], nan=1.0))
    group_column = getattr(steps[weighting[-1]], "weight_groups", None)
    groups = None
    if group_column and alive is not None:
        if group_column not in alive.column_names:
            raise RuntimeError(f"step {steps[weighting[-1]].name!r}: weight_groups {group_column!r} is not a decide column")
        groups = np.asarray(alive.column(group_column).cast(pa.string()).to_pylist(), dtype=object)[orders]
        groups = np.where(groups == None, "", groups).astype(str)  # noqa: E711 - elementwise
    out = np.full(len(kept), np.nan)
    out[orders] = combine_weights(per_step, groups)
    return out
