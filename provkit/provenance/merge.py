"""Merge provkit datasets into one: ``prov merge A B ... --out C``.

Every record keeps every column as it is (provenance, annotations such as
``detector_score`` or ``sample_weight``, ``metadata``); a column that only some
inputs have is null in the records of the others.  The output's activity
(kind ``merge``) *used* each input, its manifest lists them as parents (so
``prov lineage`` follows ``parent_ids`` into them), and ids are checked across
all inputs: a repeated id stops the merge (``on_duplicate="fail"``, naming the
id and both datasets) or keeps the first record (``"skip"``, counted).

Memory: one batch at a time plus the exact id check
(:class:`provkit.provenance.idindex.IdIndex`: at most 2¹⁹ ids in memory, the
rest spilled to a temporary directory that is removed when the merge ends).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.errors import ConfigError, DatasetError
from provkit.provenance.idindex import IdIndex
from provkit.provenance.manifest import Activity
from provkit.provenance.reader import Dataset
from provkit.provenance.schema import COLUMNS, SCHEMA, check_schema
from provkit.provenance.writer import DatasetWriter

ON_DUPLICATE = ("fail", "skip")


@dataclass
class MergeSummary:
    """What a merge did: ``read == written + skipped_duplicates``."""

    out: str
    activity_id: str
    inputs: list[str]
    read: int = 0
    written: int = 0
    skipped_duplicates: int = 0
    by_input: dict[str, int] = field(default_factory=dict)
    by_origin: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def merged_schema(datasets: Sequence[Dataset]) -> pa.Schema:
    """The record schema, then every extra column of any input in first-seen order (first type wins)."""
    extra: dict[str, pa.Field] = {}
    for ds in datasets:
        schema = ds.schema("data")
        if schema is None:
            continue
        problems = check_schema(schema)
        if problems:
            raise DatasetError(f"{ds.path}: not a provkit record dataset ({problems[0]})")
        for f in schema:
            if f.name not in COLUMNS and f.name not in extra:
                extra[f.name] = f
    return pa.schema(list(SCHEMA) + list(extra.values()))


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    cols = []
    for f in schema:
        if f.name in batch.schema.names:
            col = batch.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(batch.num_rows, f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _holder(datasets: Sequence[Dataset], record_id: str) -> str:
    """The first dataset holding ``record_id`` (for the duplicate-id message; read only on that error)."""
    for ds in datasets:
        for batch in ds.iter_batches("data", columns=["id"], batch_size=65536):
            if pc.any(pc.equal(batch.column(0), record_id)).as_py():
                return str(ds.path)
    return "an earlier input"


def merge_datasets(inputs: Sequence[str | Path], out: str | Path, *, on_duplicate: str = "fail",
                   overwrite: bool = False, progress: Callable[[int], None] | None = None) -> MergeSummary:
    """Write the data records of every dataset in ``inputs`` (in order) into the new dataset ``out``."""
    if len(inputs) < 1:
        raise ConfigError("merge: give at least one input dataset")
    if on_duplicate not in ON_DUPLICATE:
        raise ConfigError(f"--on-duplicate {on_duplicate!r} is not one of {', '.join(ON_DUPLICATE)}")
    out = Path(out)
    datasets = [Dataset.open(p) for p in inputs]
    for ds in datasets:
        if ds.path.resolve() == out.resolve():
            raise ConfigError(f"--out {out}: is an input dataset; inputs are never modified, choose another path")
    schema = merged_schema(datasets)
    names = [str(ds.path) for ds in datasets]
    activity = Activity("merge", {"inputs": names, "on_duplicate": on_duplicate},
                        used=[str(ds.path.resolve()) for ds in datasets])
    summary = MergeSummary(str(out), activity.id, names)
    ids = IdIndex()
    origins: Counter[str] = Counter()
    start = time.perf_counter()
    with DatasetWriter(out, activity, parents=[ds.path for ds in datasets],
                       mode="overwrite" if overwrite else "create") as writer, ids:
        for ds, name in zip(datasets, names):
            written = 0
            for batch in ds.iter_batches("data"):
                if not batch.num_rows:
                    continue
                id_list = batch.column("id").to_pylist()
                dup = ids.duplicates(id_list)
                if dup.any():
                    i = int(np.flatnonzero(dup)[0])
                    if on_duplicate == "fail":
                        where = _holder(datasets, id_list[i])
                        raise DatasetError(f"{name}: record id {id_list[i]!r} is already in {where}; ids must be "
                                           "unique across the merged datasets (rerun with --on-duplicate skip to "
                                           "keep the first record)")
                    batch = batch.filter(pa.array(~dup))
                summary.read += len(id_list)
                summary.skipped_duplicates += int(dup.sum())
                if batch.num_rows:
                    writer.write(_conform(batch, schema))
                    counts = pc.value_counts(batch.column("origin").cast(pa.string()))
                    origins.update({c["values"]: c["counts"] for c in counts.to_pylist()})
                written += batch.num_rows
                if progress:
                    progress(len(id_list))
            summary.by_input[name] = written
        summary.written = sum(summary.by_input.values())
        summary.by_origin = {str(k): int(v) for k, v in origins.most_common()}
        summary.seconds = round(time.perf_counter() - start, 3)
    return summary
