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
2. **plan + decide** — on the driver, with the local engine's code, over the
   decide columns (so kept ids, reasons and annotations are identical).
3. **write** — the driver streams the spill into the :class:`DatasetWriter`,
   which writes parts under a temporary directory and commits the manifest
   last; an exception anywhere discards everything (no half dataset).

Near-duplicate clustering at cluster scale is in
:mod:`provkit.engines.ray_components` (band buckets by groupby, candidate
pairs, large-star/small-star connected components as Ray Data operators).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provkit.engines.local import LocalEngine, Progress, StepStats, _with_order, decide_column_names, score_batch
from provkit.errors import ConfigError
from provkit.provenance import Dataset

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
        import ray
        import ray.data
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
    for path, entry in zip(dataset.files("data"), dataset.file_entries("data")):
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

    def _workers(self) -> int:
        import ray

        return self.num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def _score_pass(self, dataset: Dataset, steps: Sequence[Any], spill: Path, stats: list[StepStats],
                    progress: Progress) -> tuple[pa.Table | None, int]:
        import ray.data

        start_ray(self.options)
        workers = self._workers()
        total_batches = max(1, math.ceil(dataset.num_rows() / self.batch_size))
        per_task = max(1, math.ceil(total_batches / (workers * self.tasks_per_worker)))
        tasks = score_tasks(dataset, self.batch_size, per_task)
        keep_cols = decide_column_names(steps)
        seconds = [0.0] * len(steps)
        small: list[pa.RecordBatch] = []
        writer: pq.ParquetWriter | None = None
        n = 0
        if tasks:
            items = ray.data.from_items([t.__dict__ for t in tasks], override_num_blocks=len(tasks))
            scored_ds = items.map_batches(
                _score_udf, batch_size=1, batch_format="pyarrow", concurrency=workers,
                fn_kwargs={"steps": list(steps), "batch_size": self.batch_size},
            )
            try:
                for table in scored_ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                    for raw in table.to_batches():
                        if raw.num_rows == 0:
                            continue
                        batch = split_timing(raw, seconds)
                        if writer is None:
                            writer = pq.ParquetWriter(spill, batch.schema, compression="lz4")
                        writer.write_batch(batch)
                        missing = [c for c in keep_cols if c not in batch.schema.names]
                        if missing:
                            raise RuntimeError(f"decide column {missing[0]!r} was not produced by any step's score")
                        small.append(batch.select(keep_cols))
                        n += batch.num_rows
                        progress("score", batch.num_rows)
            finally:
                if writer is not None:
                    writer.close()
        for st, s in zip(stats, seconds):
            st.seconds += s
        return (pa.Table.from_batches(small) if small else None), n
