"""The Ray Data engine: the same steps as the local engine, scored in parallel on a Ray cluster.

Execution (the contract is :mod:`provkit.filters.step`; the reference is
:class:`provkit.engines.local.LocalEngine`, which this class extends):

1. **score** — distributed.  The input's Parquet parts are cut into *score
   tasks* of whole local-engine batches (rows ``[k·B, (k+j)·B)`` of one file,
   ``B`` = ``batch_size``), so every step's ``score`` sees exactly the batches
   the local engine gives it (batch-dependent scorers stay identical).  A Ray
   Data ``map_batches`` runs the tasks on the cluster's workers; Ray retries a
   failed task.  Scored batches stream back to the driver in input order
   (``preserve_order``) into the same spill file the local engine uses.
2. **plan + decide** — the dedup steps (``exact_dedup``, ``minhash_dedup``)
   are planned *on the cluster* by :mod:`provkit.engines.ray.dedup` over the
   scored dataset, which stays materialized in the object store: their
   signatures never reach the driver (the stream to the driver drops the
   internal decide columns of those steps).  The driver receives
   ``(row, survivor, cluster)`` for the rows in clusters of two or more and
   turns it into the step's row plan (reason, ``dup_of``, cluster id for every
   alive row: small per-row columns, as in the local engine).  Every other
   step plans and decides on the driver with the local engine's code, over the
   decide columns, so kept ids, reasons and annotations are identical.
3. **write** — the driver streams the spill into the :class:`DatasetWriter`,
   which writes parts under a temporary directory and commits the manifest
   last; an exception anywhere discards everything (no half dataset).

Near-duplicate clustering at cluster scale is in
:mod:`provkit.engines.ray.components` (band buckets by groupby, candidate
pairs, large-star/small-star connected components as Ray Data operators) and
:mod:`provkit.engines.ray.dedup` (the dedup plans built on them);
``EngineResult.clustering`` reports candidate pairs and rounds per step.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provkit.core.progress import Advance
from provkit.engines.local import (
    LocalEngine,
    _with_order,
    decide_column_names,
    score_batch,
    spill_scored,
)
from provkit.engines.ray.components import ClusteringStats
from provkit.engines.ray.dedup import CLUSTER, SURVIVOR, exact_duplicate_decisions, near_duplicate_decisions
from provkit.errors import ConfigError
from provkit.filters.engine import EngineResult, StepStats
from provkit.filters.step import INTERNAL_PREFIX, ORDER, ClusterDedup, row_plan
from provkit.provenance import Dataset, DatasetWriter

SECONDS_PREFIX = "__score_seconds_"


@dataclass
class RayOptions:
    """How to reach Ray: ``address`` of a running cluster (``ray start --head``), or a local instance."""

    address: str | None = None
    num_cpus: int | None = None
    object_store_bytes: int | None = None


def start_ray(options: RayOptions = RayOptions()) -> None:
    """Connect to ``options.address`` or start a local Ray instance (once per process)."""
    try:
        import ray  # lazy: Ray is the optional extra provkit[ray]
        import ray.data  # lazy: Ray is the optional extra provkit[ray]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(f"--engine ray needs Ray Data ({exc}); install it with `pip install provkit[ray]`") from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING, "configure_logging": True}
        if options.address:
            kwargs["address"] = options.address
        else:
            kwargs["num_cpus"] = options.num_cpus
            kwargs["object_store_memory"] = options.object_store_bytes
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = options.address or "a local instance"
            raise ConfigError(f"--ray-address {where}: cannot start or join Ray ({exc})") from None
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # Ray Data's progress bars stay; its INFO plan lines go


@dataclass(frozen=True)
class ScoreTask:
    """Rows ``[start, stop)`` of one Parquet file, and their order key offset in the whole input."""

    path: str
    start: int
    stop: int
    offset: int


def score_tasks(dataset: Dataset, batch_size: int, batches_per_task: int) -> list[ScoreTask]:
    """Cut the input's data files into tasks of ``batches_per_task`` whole batches (local-engine boundaries)."""
    tasks, offset = [], 0
    span = batch_size * batches_per_task
    for path, entry in zip(dataset.checked_files("data"), dataset.file_entries("data")):
        rows = int(entry["rows"])
        for start in range(0, rows, span):
            tasks.append(ScoreTask(str(path), start, min(rows, start + span), offset + start))
        offset += rows
    return tasks


def read_rows(path: str, start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` of a Parquet file, reading only the row groups that hold them."""
    pf = pq.ParquetFile(path)
    bounds = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
    first = int(np.searchsorted(bounds, start, side="right") - 1)
    last = int(np.searchsorted(bounds, stop, side="left"))
    table = pf.read_row_groups(list(range(first, last)))
    return table.slice(start - int(bounds[first]), stop - start)


def score_task_batches(task: ScoreTask, steps: Sequence[Any], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Score one task's rows in local-engine batches; per-step seconds ride along in internal columns."""
    table = read_rows(task.path, task.start, task.stop)
    for start in range(0, table.num_rows, batch_size):
        batch = table.slice(start, batch_size).combine_chunks().to_batches()[0]
        seconds = [0.0] * len(steps)
        scored = score_batch(_with_order(batch, task.offset + start), steps, seconds)
        timing = {f"{SECONDS_PREFIX}{k}": np.r_[s, np.zeros(scored.num_rows - 1)] for k, s in enumerate(seconds)}
        arrays = scored.columns + [pa.array(v) for v in timing.values()]
        yield pa.RecordBatch.from_arrays(arrays, names=scored.schema.names + list(timing))


def _score_udf(tasks: pa.Table, steps: Sequence[Any], batch_size: int) -> Iterator[pa.Table]:
    for row in tasks.to_pylist():
        for batch in score_task_batches(ScoreTask(**row), steps, batch_size):
            yield pa.Table.from_batches([batch])


def split_timing(batch: pa.RecordBatch, seconds: list[float]) -> pa.RecordBatch:
    """Add the internal timing columns into ``seconds`` and return the batch without them."""
    names = batch.schema.names
    for k in range(len(seconds)):
        name = f"{SECONDS_PREFIX}{k}"
        seconds[k] += float(np.sum(batch.column(names.index(name)).to_numpy(zero_copy_only=False)))
    keep = [n for n in names if not n.startswith(SECONDS_PREFIX)]
    return batch.select(keep)


class RayEngine(LocalEngine):
    """Scores on Ray Data workers, then plans, decides and writes like :class:`LocalEngine`."""

    name = "ray"

    def __init__(self, batch_size: int = 4096, spill_dir: str | Path | None = None, *, address: str | None = None,
                 num_workers: int | None = None, num_cpus: int | None = None,
                 object_store_bytes: int | None = None, tasks_per_worker: int = 4):
        super().__init__(batch_size=batch_size, spill_dir=spill_dir)
        self.options = RayOptions(address=address, num_cpus=num_cpus, object_store_bytes=object_store_bytes)
        self.num_workers = num_workers
        self.tasks_per_worker = tasks_per_worker
        self._scored: Any = None  # the materialized scored Ray Dataset, while a run with dedup steps plans
        self._total = 0
        self.clustering: dict[str, ClusteringStats] = {}

    def _workers(self) -> int:
        import ray  # lazy: Ray is the optional extra provkit[ray]

        return self.num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run(self, dataset: Dataset, steps: Sequence[Any], writer: DatasetWriter,
            progress: Advance | None = None) -> EngineResult:
        self._scored, self._total, self.clustering = None, 0, {}
        try:
            result = super().run(dataset, steps, writer, progress)
        finally:
            self._scored = None  # releases the scored blocks from the object store
        result.clustering = {name: stats.__dict__ for name, stats in self.clustering.items()}
        return result

    def _score_pass(self, dataset: Dataset, steps: Sequence[Any], spill: Path, stats: list[StepStats],
                    progress: Advance) -> tuple[pa.Table | None, int]:
        import ray.data  # lazy: Ray is the optional extra provkit[ray]

        start_ray(self.options)
        workers = self._workers()
        total_batches = max(1, math.ceil(dataset.num_rows() / self.batch_size))
        per_task = max(1, math.ceil(total_batches / (workers * self.tasks_per_worker)))
        tasks = score_tasks(dataset, self.batch_size, per_task)
        cluster_only = cluster_only_columns(steps)
        keep_cols = [c for c in decide_column_names(steps) if c not in cluster_only]
        seconds = [0.0] * len(steps)
        result: tuple[pa.Table | None, int] = (None, 0)
        if tasks:
            items = ray.data.from_items([t.__dict__ for t in tasks], override_num_blocks=len(tasks))
            scored_ds = items.map_batches(
                _score_udf, batch_size=1, batch_format="pyarrow", compute=ray.data.TaskPoolStrategy(size=workers),
                fn_kwargs={"steps": list(steps), "batch_size": self.batch_size},
            )
            if any(_cluster_dedup(step) is not None for step in steps):
                scored_ds = scored_ds.materialize()  # the dedup plans read it again on the cluster
                self._scored, self._total = scored_ds, dataset.num_rows()
            to_driver = scored_ds.drop_columns(cluster_only) if cluster_only else scored_ds

            def from_cluster() -> Iterator[pa.RecordBatch]:
                for table in to_driver.iter_batches(batch_size=None, batch_format="pyarrow"):
                    for raw in table.to_batches():
                        if raw.num_rows:
                            yield split_timing(raw, seconds)

            result = spill_scored(from_cluster(), keep_cols, spill, progress)
        for st, s in zip(stats, seconds):
            st.seconds += s
        return result

    def _planner(self, step: Any) -> Any:
        """The dedup steps' plans on the cluster (:mod:`provkit.engines.ray.dedup`); None for the others."""
        capability = _cluster_dedup(step)
        if capability is None or self._scored is None:
            return None

        def plan(alive: pa.Table) -> pa.Table:
            rows = alive.column(ORDER).to_numpy()
            parts = self._workers()
            if capability.signature_column is not None:
                stats = self.clustering.setdefault(step.name, ClusteringStats())
                found = near_duplicate_decisions(self._scored, capability.signature_column, rows, self._total,
                                                 capability.near_dup, parts, stats)
            else:
                found = exact_duplicate_decisions(self._scored, rows, self._total, parts)
            return cluster_row_plan(alive, found, capability.reason, capability.cluster_column)

        return plan


def _cluster_dedup(step: Any) -> ClusterDedup | None:
    """The step's cluster-dedup capability (:class:`provkit.filters.step.ClusterDedup`), if it declares one."""
    return getattr(step, "cluster_dedup", None)


def cluster_only_columns(steps: Sequence[Any]) -> list[str]:
    """Internal decide columns needed only by steps planned on the cluster (e.g. ``_minhash``): not sent to the driver."""
    wanted_elsewhere = {c for step in steps if _cluster_dedup(step) is None for c in step.decide_columns}
    return sorted({c for step in steps if _cluster_dedup(step) is not None for c in step.decide_columns
                   if c.startswith(INTERNAL_PREFIX) and c != ORDER and c not in wanted_elsewhere})


def cluster_row_plan(alive: pa.Table, found: pa.Table, reason: str, cluster_column: str) -> pa.Table:
    """The step's :func:`row_plan` over every alive row from the clustered rows' ``(row, survivor, cluster)``.

    Rows not in ``found`` are singletons: their own survivor and cluster.  The
    annotations equal the local plan's: ``dup_of`` = the survivor's id (null
    for survivors), ``cluster_column`` = the smallest row of the cluster.
    """
    orders = alive.column(ORDER).to_numpy()
    survivor, cluster = orders.copy(), orders.copy()
    if found.num_rows:
        at = np.searchsorted(orders, found.column(ORDER).to_numpy())
        survivor[at] = found.column(SURVIVOR).to_numpy()
        cluster[at] = found.column(CLUSTER).to_numpy()
    dup = survivor != orders
    ids = alive.column("id").combine_chunks().cast(pa.string())
    dup_of = ids.take(pa.array(np.searchsorted(orders, survivor), mask=~dup))
    reasons = pa.array(np.where(dup, reason, None), pa.string())
    return row_plan(orders, reasons, dup_of=dup_of, **{cluster_column: cluster})
