"""Parquet files (``.parquet``): the wanted columns, streamed batch by batch."""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provkit.provenance.readers.base import (
    POS,
    BadRecord,
    RawChunk,
    ReadOptions,
    Source,
    empty,
    one_line,
    select_fields,
)

SUFFIXES = (".parquet",)
UNIT = "row"

def read(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    try:
        pf = pq.ParquetFile(source.uri)
    except (pa.ArrowInvalid, OSError) as exc:
        bad = BadRecord(source.uri, None, "file", f"not a readable Parquet file, truncated or corrupt ({one_line(exc)})")
        yield RawChunk(source.uri, "row", empty(), [bad], source.id_prefix)
        return
    row = 1
    total = max(pf.metadata.num_rows, 1)
    size = os.path.getsize(source.uri)
    names = set(pf.schema_arrow.names)
    columns = [c for c in opts.fields.wanted().values() if c in names]
    try:
        for batch in pf.iter_batches(batch_size=opts.batch_rows, columns=columns):
            table = select_fields(pa.Table.from_batches([batch]), opts.fields.wanted())
            table = table.append_column(POS, pa.array(np.arange(row, row + batch.num_rows), pa.int64()))
            row += batch.num_rows
            yield RawChunk(source.uri, "row", table, [], source.id_prefix, size * batch.num_rows // total)
    except (pa.ArrowInvalid, OSError) as exc:
        bad = BadRecord(source.uri, row, "row", f"Parquet file unreadable from this row on, truncated or corrupt "
                                                f"({one_line(exc)})")
        yield RawChunk(source.uri, "row", empty(), [bad], source.id_prefix)
