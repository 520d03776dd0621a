"""A provkit dataset directory (``DS/`` holding ``manifest.json``) as an ingest source.

Its data records keep their provenance as they are: id, origin, evidence,
confidence, generator, parent ids, activity, source, dataset, licence,
timestamps and ``metadata`` (see :data:`CARRIED`); the ingest only re-checks
the text and the ids.  The same passthrough serves any table that already has
the record columns (a ``datasets.Dataset`` made by ``Dataset.to_hf()``), see
:func:`records_chunk_table`.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import pyarrow as pa

from provkit.provenance.manifest import MANIFEST
from provkit.provenance.reader import Dataset
from provkit.provenance.readers.base import METADATA, POS, RawChunk, ReadOptions, Source
from provkit.provenance.schema import COLUMNS

SUFFIXES: tuple[str, ...] = ()
MARKER = MANIFEST  # a directory holding this file is a provkit dataset, read whole
UNIT = "row"

CARRIED: tuple[str, ...] = ("origin_evidence", "origin_confidence", "generator", "activity_id", "source_uri",
                            "dataset", "license", "created_at", "ingested_at", METADATA)
"""Record columns a provkit source hands through to the new records unchanged."""


def is_dataset_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MARKER))


def has_record_columns(names: list[str]) -> bool:
    """True when a table already carries every provkit record column."""
    return all(c in names for c in COLUMNS)


def _plain(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def records_chunk_table(table: pa.Table, first_pos: int) -> pa.Table:
    """A chunk table (text, id, origin, parent, the carried columns, ``_pos``) from provkit records."""
    cols = {"text": table.column("text"), "id": table.column("id"), "origin": _plain(table.column("origin")),
            "parent": table.column("parent_ids")}
    for name in CARRIED:
        if name in table.column_names:
            cols[name] = _plain(table.column(name))
    cols[POS] = pa.array(np.arange(first_pos, first_pos + table.num_rows), pa.int64())
    return pa.table(cols)


def read(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    ds = Dataset.open(source.uri)
    row = 1
    for batch in ds.iter_batches("data", batch_size=opts.batch_rows):
        if not batch.num_rows:
            continue
        table = records_chunk_table(pa.Table.from_batches([batch]), row)
        row += batch.num_rows
        yield RawChunk(source.uri, "row", table, [], source.id_prefix, batch.nbytes)
