"""CSV with a header row (``.csv``, optionally gzipped), read through :mod:`csv` so every row keeps its exact line number."""

from __future__ import annotations

import csv
from typing import Any, Iterator

from provkit.provenance.readers.base import (
    BadRecord,
    RawChunk,
    ReadOptions,
    Source,
    one_line,
    plain_value,
    raw_text,
    rows_table,
)

SUFFIXES = (".csv", ".csv.gz")
UNIT = "line"

def read(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    """CSV with a header row, through :mod:`csv` so every row keeps its exact line number."""
    wanted = opts.fields.wanted()
    csv.field_size_limit(opts.max_record_bytes + 1)
    rows: dict[str, list[Any]] = {key: [] for key in wanted}
    pos: list[int] = []
    bad: list[BadRecord] = []
    with open(source.uri, encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        index = {name: i for i, name in enumerate(header)}
        line = reader.line_num
        while True:
            start = line + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                bad.append(BadRecord(source.uri, start, "line", f"malformed CSV ({one_line(exc)})"))
                line = reader.line_num
                continue
            line = reader.line_num
            problem = _csv_problem(row, header, opts)
            if problem:
                raw = ",".join(row).encode("utf-8", errors="surrogateescape")
                bad.append(BadRecord(source.uri, start, "line", problem, *raw_text(raw)))
            else:
                for key, name in wanted.items():
                    value = row[index[name]] if name in index else None
                    if value == "" and key != "text":  # an empty CSV cell is a missing id / origin / parent
                        value = None
                    rows[key].append(plain_value(key, value))
                pos.append(start)
            if len(pos) + len(bad) >= opts.batch_rows:
                yield _csv_chunk(source, wanted, rows, pos, bad)
                rows, pos, bad = {key: [] for key in wanted}, [], []
    if pos or bad:
        yield _csv_chunk(source, wanted, rows, pos, bad)


def _csv_problem(row: list[str], header: list[str], opts: ReadOptions) -> str | None:
    if len(row) != len(header):
        return f"malformed CSV (expected {len(header)} columns, got {len(row)})"
    size = sum(len(v) for v in row)
    if size > opts.max_record_bytes:
        return f"record too large ({size} bytes > --max-record-bytes {opts.max_record_bytes})"
    for value in row:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"invalid UTF-8 at byte {len(value[: exc.start].encode('utf-8', 'surrogateescape'))} of a field"
    return None


def _csv_chunk(source: Source, wanted: dict[str, str], rows: dict[str, list[Any]], pos: list[int],
               bad: list[BadRecord]) -> RawChunk:
    return RawChunk(source.uri, "line", rows_table(wanted, rows, pos), bad, source.id_prefix, 0)
