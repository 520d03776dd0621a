"""Parquet files (``.parquet``): the wanted columns, streamed batch by batch."""

from __future__ import annotations

import os
from collections.abc import Iterator

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
from provkit.provenance.schema import COLUMNS

SUFFIXES = (".parquet",)
UNIT = "row"

PROV = "_prov."
"""Prefix of the provenance columns a provkit dataset's Parquet part carries into the chunk (kept as they are)."""
PASSTHROUGH = ("id", "origin", "origin_evidence", "origin_confidence", "generator", "parent_ids", "source_uri",
               "dataset", "license", "created_at")


def is_provkit(schema: pa.Schema) -> bool:
    """A Parquet file written by provkit (its metadata says so, or it has every record column)."""
    meta = schema.metadata or {}
    return b"provkit.schema_version" in meta or all(c in schema.names for c in COLUMNS)


def read(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    """The wanted columns (plus, from a provkit dataset's part, its provenance columns), batch by batch.

    String values that are not valid UTF-8 make their rows bad records (the
    rest of the batch is kept); a file unreadable from some row on ends in one
    bad record naming that row.
    """
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
    wanted = opts.fields.wanted()
    provkit = is_provkit(pf.schema_arrow) and "text" in names and opts.fields.text == "text"
    columns = list(dict.fromkeys([c for c in wanted.values() if c in names] +
                                 ([c for c in PASSTHROUGH if c in names] if provkit else [])))
    try:
        for batch in pf.iter_batches(batch_size=opts.batch_rows, columns=columns):
            batch_pos = np.arange(row, row + batch.num_rows)
            row += batch.num_rows
            source_table = pa.Table.from_batches([batch])
            table = select_fields(source_table, wanted)
            if provkit:
                for c in PASSTHROUGH:
                    if c in source_table.column_names:
                        table = table.append_column(PROV + c, source_table.column(c))
            table = table.append_column(POS, pa.array(batch_pos, pa.int64()))
            table, bad = _drop_invalid_utf8(source, table)
            yield RawChunk(source.uri, "row", table, bad, source.id_prefix, size * batch.num_rows // total)
    except (pa.ArrowInvalid, OSError) as exc:
        bad = BadRecord(source.uri, row, "row", f"Parquet file unreadable from this row on, truncated or corrupt "
                                                f"({one_line(exc)})")
        yield RawChunk(source.uri, "row", empty(), [bad], source.id_prefix)


def _drop_invalid_utf8(source: Source, table: pa.Table) -> tuple[pa.Table, list[BadRecord]]:
    """Rows whose string values are not valid UTF-8, as bad records (Parquet readers do not check)."""
    try:
        table.validate(full=True)
        return table, []
    except pa.ArrowInvalid:
        pass
    bad_rows = np.zeros(table.num_rows, dtype=bool)
    reasons: dict[int, str] = {}
    for name in table.column_names:
        col = table.column(name)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            continue
        binary = col.cast(pa.large_binary() if pa.types.is_large_string(col.type) else pa.binary())
        for i, value in enumerate(binary.to_pylist()):
            if value is None:
                continue
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as exc:
                if not bad_rows[i]:
                    reasons[i] = f"invalid UTF-8 at byte {exc.start} of column {name.removeprefix(PROV)!r}"
                bad_rows[i] = True
    pos = table.column(POS).to_pylist()
    bad = [BadRecord(source.uri, pos[i], "row", reasons[i]) for i in np.flatnonzero(bad_rows)]
    keep = table.filter(pa.array(~bad_rows))
    try:
        keep.validate(full=True)
    except pa.ArrowInvalid as exc:  # another kind of invalid data: the whole batch is bad
        return keep.slice(0, 0), bad + [BadRecord(source.uri, p, "row", f"invalid data ({one_line(exc)})")
                                        for p in keep.column(POS).to_pylist()]
    return keep, bad
