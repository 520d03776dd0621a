"""CSV with a header row (``.csv``, optionally gzipped), read through :mod:`csv` so every row keeps its exact line number."""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterator
from typing import Any

from provkit.provenance.readers.base import (
    BadRecord,
    RawChunk,
    ReadOptions,
    Source,
    one_line,
    open_binary,
    plain_value,
    raw_text,
    rows_table,
)

SUFFIXES = (".csv",)
COMPRESSIBLE = True  # .csv.gz, .csv.bz2, .csv.zst, .csv.xz
UNIT = "line"

class _Lines:
    """The file's physical lines for :mod:`csv`, remembering those of the current record so a bad one
    can be given back: an unterminated quote costs one line, never the rows after it."""

    def __init__(self, f: Any):
        self.f = f
        self.pending: deque[str] = deque()
        self.consumed: list[str] = []
        self.line = 0  # physical lines handed out so far

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        text = self.pending.popleft() if self.pending else next(self.f)
        self.consumed.append(text)
        self.line += 1
        return text

    def give_back(self, lines: list[str]) -> None:
        self.pending.extendleft(reversed(lines))
        self.line -= len(lines)


def read(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    """CSV with a header row, through :mod:`csv` so every row keeps its exact line number.

    Parsed strictly: a quote that never closes, or text after a closing
    quote, makes the record's first line a bad record and the lines after it
    are parsed again - rows are never merged silently.  Lone-CR line ends
    (classic Mac) split lines like ``\\n`` does.
    """
    wanted = opts.fields.wanted()
    csv.field_size_limit(opts.max_record_bytes + 1)
    rows: dict[str, list[Any]] = {key: [] for key in wanted}
    pos: list[int] = []
    bad: list[BadRecord] = []
    with io.TextIOWrapper(open_binary(source.uri), encoding="utf-8", errors="surrogateescape", newline="") as f:
        lines = _Lines(f)
        reader = csv.reader(lines, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            bad.append(BadRecord(source.uri, 1, "line", f"malformed CSV header ({one_line(exc)})"))
            yield _csv_chunk(source, wanted, rows, pos, bad)
            return
        index = {name: i for i, name in enumerate(header)}
        while True:
            start = lines.line + 1
            lines.consumed = []
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                spanned = list(lines.consumed)
                reason = (f"unterminated quote: the quoted field opened on line {start} never closes"
                          if "unexpected end of data" in str(exc) else
                          f"record too large or unterminated quote (over --max-record-bytes {opts.max_record_bytes})"
                          if "field limit" in str(exc) else f"malformed CSV ({one_line(exc)})")
                raw = (spanned[0] if spanned else "").encode("utf-8", errors="surrogateescape")
                bad.append(BadRecord(source.uri, start, "line", reason, *raw_text(raw)))
                lines.give_back(spanned[1:])  # the lines after the record's first are parsed again
                reader = csv.reader(lines, strict=True)
                continue
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
