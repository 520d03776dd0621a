"""Readers: turn text, JSONL, CSV, Parquet, Hugging Face and builtin sources into raw chunks.

A reader streams :class:`RawChunk` objects: an Arrow table of the fields as
read (``text`` and, when asked for, ``id`` / ``origin`` / ``parent``), one
``_pos`` column with each record's 1-based line or row in its file, and the
records that could not even be parsed (:class:`BadRecord`, with the reason).
Checking the fields (types, empty text, origins) is the ingest's job; a reader
only guarantees that every record it saw is either a table row or a bad record,
so ``read = rows + bad`` holds per chunk.

JSONL is read in blocks of complete lines with ``pyarrow.json`` (multi-threaded);
a block that pyarrow refuses (a malformed line, invalid UTF-8, a field whose
type changes) is re-read line by line with :mod:`json` to find each bad line.
Memory is bounded by the block size (``block_bytes``) plus one record of at
most ``max_record_bytes``.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from provkit.errors import InputError
from provkit.provenance.builtin import BUILTIN_SOURCES, iter_builtin

POS = "_pos"
SOURCE = "_source"
SPLITS = ("file", "line", "paragraph")
RAW_KEEP = 4096  # bytes of a bad record kept in the quarantine
_SUFFIXES = (".txt", ".jsonl", ".jsonl.gz", ".json", ".ndjson", ".csv", ".parquet")


@dataclass(frozen=True)
class FieldMap:
    """Which source fields feed the record: the output name -> the source field name."""

    text: str = "text"
    id: str | None = None
    origin: str | None = None
    parent: str | None = None

    def wanted(self) -> dict[str, str]:
        pairs = {"text": self.text, "id": self.id, "origin": self.origin, "parent": self.parent}
        return {k: v for k, v in pairs.items() if v}


@dataclass(frozen=True)
class ReadOptions:
    """How sources are read."""

    fields: FieldMap = field(default_factory=FieldMap)
    split: str = "file"  # .txt: a record per file, per line, or per blank-line paragraph
    max_record_bytes: int = 10 << 20
    block_bytes: int = 16 << 20
    batch_rows: int = 8192


@dataclass(frozen=True)
class BadRecord:
    """A record that failed: where it is, why, and (the start of) its raw bytes."""

    source: str
    pos: int | None
    unit: str
    reason: str
    raw: str = ""
    raw_bytes: int = 0

    def where(self) -> str:
        return f"{self.source}" if self.pos is None else f"{self.source}:{self.pos} ({self.unit} {self.pos})"


@dataclass
class RawChunk:
    """A slice of one source: parsed rows (``table``, with ``_pos``) and unparseable records (``bad``)."""

    source: str
    unit: str  # what ``_pos`` counts: "line", "row" or "record"
    table: pa.Table
    bad: list[BadRecord] = field(default_factory=list)
    id_prefix: str = ""  # derived ids are f"{id_prefix}:{pos}"
    nbytes: int = 0  # input bytes this chunk covers (progress)

    @property
    def records(self) -> int:
        return self.table.num_rows + len(self.bad)


@dataclass(frozen=True)
class Source:
    """One concrete input: a file (with the name derived ids start with) or a uri."""

    uri: str
    kind: str  # txt | jsonl | csv | parquet | hf | builtin
    id_prefix: str

    def size(self) -> int | None:
        if self.kind in ("hf", "builtin"):
            return None
        try:
            return os.path.getsize(self.uri)
        except OSError:
            return None


def _raw_text(raw: bytes) -> tuple[str, int]:
    return raw[:RAW_KEEP].decode("utf-8", errors="backslashreplace"), len(raw)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (pyarrow and datasets messages span several)."""
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


# ------------------------------------------------------------------ resolving sources
def _kind_of(path: str) -> str | None:
    low = path.lower()
    if low.endswith(".txt"):
        return "txt"
    if low.endswith((".jsonl", ".jsonl.gz", ".json", ".ndjson", ".ndjson.gz", ".json.gz")):
        return "jsonl"
    if low.endswith((".csv", ".csv.gz")):
        return "csv"
    if low.endswith(".parquet"):
        return "parquet"
    return None


def resolve_sources(specs: list[str]) -> list[Source]:
    """Expand ``builtin:``/``hf:`` uris, directories (recursively, known suffixes) and globs, in sorted order.

    Derived ids start with the file's path relative to the directory or glob
    root it was found under (its name when given directly), so they stay the
    same wherever the corpus is moved.
    """
    out: list[Source] = []
    for spec in specs:
        if spec.startswith("builtin:"):
            name = spec.split(":", 1)[1]
            if name not in BUILTIN_SOURCES:
                raise InputError(f"{spec}: unknown builtin corpus; available: {', '.join(BUILTIN_SOURCES)}")
            out.append(Source(spec, "builtin", spec))
        elif spec.startswith("hf:"):
            out.append(Source(spec, "hf", spec))
        elif any(ch in spec for ch in "*?["):
            root = os.path.dirname(spec.split("*")[0].split("?")[0].split("[")[0]) or "."
            matches = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(f"{spec}: the pattern matches no file")
            out.extend(_file_source(m, os.path.relpath(m, root)) for m in matches)
        elif os.path.isdir(spec):
            files = sorted(
                str(p) for p in Path(spec).rglob("*")
                if p.is_file() and not p.name.startswith(".") and _kind_of(p.name)
            )
            if not files:
                raise InputError(f"{spec}: the directory holds no {', '.join(_SUFFIXES)} file")
            out.extend(_file_source(f, os.path.relpath(f, spec)) for f in files)
        else:
            out.append(_file_source(spec, os.path.basename(spec)))
    return out


def _file_source(path: str, prefix: str) -> Source:
    kind = _kind_of(path)
    if kind is None:
        raise InputError(f"{path}: unknown file type; use .txt, .jsonl(.gz), .csv, .parquet, hf:NAME or builtin:NAME")
    return Source(path, kind, prefix.replace(os.sep, "/"))


# ------------------------------------------------------------------ reading
def read_source(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    """Stream the chunks of one source; a file that cannot be read at all yields one bad record."""
    readers: dict[str, Callable[[Source, ReadOptions], Iterator[RawChunk]]] = {
        "txt": _read_txt, "jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet,
        "hf": _read_hf, "builtin": _read_builtin,
    }
    if source.kind not in ("hf", "builtin"):
        problem = _unreadable(source.uri)
        if problem:
            yield RawChunk(source.uri, "file", _empty(), [BadRecord(source.uri, None, "file", problem)], source.id_prefix)
            return
    last = 0
    try:
        for chunk in readers[source.kind](source, opts):
            if chunk.table.num_rows:
                last = int(chunk.table.column(POS)[-1].as_py())
            yield chunk
    except (OSError, EOFError, zlib.error, pa.ArrowInvalid) as exc:  # a corrupt .gz, an I/O error mid-file
        after = f" after {last} good {'lines' if source.kind in ('txt', 'jsonl', 'csv') else 'rows'}" if last else ""
        bad = BadRecord(source.uri, None, "file", f"cannot read the rest of the file{after} ({one_line(exc)})")
        yield RawChunk(source.uri, "file", _empty(), [bad], source.id_prefix)


def _unreadable(path: str) -> str | None:
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "is a directory"
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or one_line(exc)})"
    return None


def _empty() -> pa.Table:
    return pa.table({"text": pa.array([], pa.large_string()), POS: pa.array([], pa.int64())})


def _open_binary(path: str) -> Any:
    """A binary stream, gunzipped when the name ends in .gz."""
    return pa.input_stream(path, compression="detect" if path.lower().endswith(".gz") else None)


def _iter_line_blocks(path: str, opts: ReadOptions) -> Iterator[tuple[int, bytes, list[tuple[int, int]]]]:
    """Yield ``(first_line_number, block, too_large)`` with ``block`` ending at a line end.

    A line longer than ``max_record_bytes`` is never held in memory: it is
    skipped and reported in ``too_large`` as ``(line_number, length)``.
    """
    limit = opts.max_record_bytes
    line_no = 1
    carry = b""
    with _open_binary(path) as f:
        while True:
            data = f.read(opts.block_bytes)
            if not data:
                break
            buf = carry + data
            cut = buf.rfind(b"\n")
            if cut < 0:
                if len(buf) > limit:  # one huge line: skip to its end
                    skipped, tail = _skip_line(f, len(buf), opts.block_bytes)
                    yield line_no, b"", [(line_no, skipped)]
                    line_no += 1
                    carry = tail
                    continue
                carry = buf
                continue
            block, carry = buf[: cut + 1], buf[cut + 1:]
            too_large = []
            if len(block) > limit:
                block, too_large = _drop_long_lines(block, line_no, limit)
            yield line_no, block, too_large
            line_no += block.count(b"\n") + len(too_large)
        if carry:
            if len(carry) > limit:
                yield line_no, b"", [(line_no, len(carry))]
            else:
                yield line_no, carry + b"\n", []


def _skip_line(f: Any, seen: int, block: int) -> tuple[int, bytes]:
    """Read on to the end of the current line; return its length and what follows it."""
    while True:
        data = f.read(block)
        if not data:
            return seen, b""
        cut = data.find(b"\n")
        if cut >= 0:
            return seen + cut, data[cut + 1:]
        seen += len(data)


def _drop_long_lines(block: bytes, first_line: int, limit: int) -> tuple[bytes, list[tuple[int, int]]]:
    """Blank out lines over ``limit`` bytes (keeping the line count) and report them."""
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    long_idx = np.flatnonzero(lengths > limit)
    if not len(long_idx):
        return block, []
    pieces, prev = [], 0
    for i in long_idx:
        pieces.append(block[prev: starts[i]])
        prev = ends[i]  # keep the newline
    pieces.append(block[prev:])
    return b"".join(pieces), [(first_line + int(i), int(lengths[i])) for i in long_idx]


def _line_numbers(block: bytes, first_line: int) -> np.ndarray:
    """1-based line numbers of the non-blank lines of ``block`` (pyarrow skips blank lines)."""
    arr = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    # a line holding only "\r" is blank too
    cr_only = (lengths == 1) & (arr[np.minimum(starts, len(arr) - 1)] == 13)
    keep = (lengths > 0) & ~cr_only
    return first_line + np.flatnonzero(keep)


def _too_large(source: Source, items: list[tuple[int, int]], opts: ReadOptions, unit: str = "line") -> list[BadRecord]:
    return [
        BadRecord(source.uri, ln, unit, f"record too large ({n} bytes > --max-record-bytes {opts.max_record_bytes})",
                  "", n)
        for ln, n in items
    ]


def _read_jsonl(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    wanted = opts.fields.wanted()
    schema = pa.schema([(name, pa.large_string() if key == "text" else pa.string())
                        for key, name in wanted.items() if key in ("text", "origin")])
    for first, block, too_large in _iter_line_blocks(source.uri, opts):
        bad = _too_large(source, too_large, opts)
        table = None
        if block.strip():
            table = _parse_json_block(block, schema, wanted)
            lines = _line_numbers(block, first)
            if table is not None and table.num_rows != len(lines):
                table = None  # a line of spaces or two objects on one line: let the slow path sort it out
            if table is None:
                table, more = _parse_json_lines(source, block, first, wanted)
                bad += more
            else:
                table = table.append_column(POS, pa.array(lines, pa.int64()))
        yield RawChunk(source.uri, "line", table if table is not None else _empty(), bad, source.id_prefix,
                       len(block) + sum(n for _, n in too_large))


def _parse_json_block(block: bytes, schema: pa.Schema, wanted: dict[str, str]) -> pa.Table | None:
    """Parse a block of JSON lines with pyarrow; ``None`` when it refuses (the slow path finds out why).

    Strings (text, origin) are read with an explicit type so a number there
    fails fast; id and parent are inferred so integer ids and lists work.
    """
    parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    # sub-blocks of 2 MiB are parsed on all cores; a line longer than that needs the block in one piece
    for block_size in dict.fromkeys((min(len(block) + 1, 2 << 20), len(block) + 1)):
        try:
            read = pajson.ReadOptions(block_size=block_size)
            table = _select_fields(pajson.read_json(io.BytesIO(block), read_options=read, parse_options=parse),
                                   wanted)
            table.validate(full=True)  # pyarrow's JSON reader lets invalid UTF-8 into string columns
            return table
        except (pa.ArrowInvalid, UnicodeDecodeError, pa.ArrowNotImplementedError) as exc:
            if "straddl" not in str(exc):
                return None
    return None


def _select_fields(table: pa.Table, wanted: dict[str, str]) -> pa.Table:
    """Keep the wanted source fields, renamed to text/id/origin/parent (a missing field is all null)."""
    cols, names = [], []
    for key, name in wanted.items():
        if name in table.column_names:
            cols.append(table.column(name))
        else:
            cols.append(pa.nulls(table.num_rows, pa.large_string() if key == "text" else pa.string()))
        names.append(key)
    return pa.Table.from_arrays(cols, names=names)


def _parse_json_lines(source: Source, block: bytes, first: int, wanted: dict[str, str]) -> tuple[pa.Table, list[BadRecord]]:
    """The slow, exact path: one line at a time, each bad line named with its reason."""
    rows: dict[str, list[Any]] = {key: [] for key in wanted}
    pos: list[int] = []
    bad: list[BadRecord] = []
    for i, raw in enumerate(block.split(b"\n")[:-1]):
        line = first + i
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append(BadRecord(source.uri, line, "line", f"invalid UTF-8 at byte {exc.start}", *_raw_text(raw)))
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            bad.append(BadRecord(source.uri, line, "line", f"malformed JSON ({exc.msg} at column {exc.colno})",
                                 *_raw_text(raw)))
            continue
        if not isinstance(obj, dict):
            bad.append(BadRecord(source.uri, line, "line", f"a JSON {type(obj).__name__}, expected an object",
                                 *_raw_text(raw)))
            continue
        problem = _value_types(obj, wanted)
        if problem:
            bad.append(BadRecord(source.uri, line, "line", problem, *_raw_text(raw)))
            continue
        for key, name in wanted.items():
            rows[key].append(_plain_value(key, obj.get(name)))
        pos.append(line)
    types = {"text": pa.large_string(), "id": pa.string(), "origin": pa.string(), "parent": pa.list_(pa.string())}
    arrays = [pa.array(rows[k], types[k]) for k in wanted] + [pa.array(pos, pa.int64())]
    return pa.Table.from_arrays(arrays, names=list(wanted) + [POS]), bad


def _value_types(obj: dict[str, Any], wanted: dict[str, str]) -> str | None:
    """The reason a parsed record's field has a type provkit cannot use, else ``None``."""
    for key, name in wanted.items():
        value = obj.get(name)
        if value is None:
            continue
        if key in ("text", "origin") and not isinstance(value, str):
            return type_reason(name, _json_type(value))
        if key == "id" and not isinstance(value, (str, int)) or isinstance(value, bool) and key == "id":
            return type_reason(name, _json_type(value), "a string or integer")
        if key == "parent" and not (isinstance(value, str) or
                                    isinstance(value, list) and all(isinstance(v, (str, int)) for v in value)):
            return type_reason(name, _json_type(value), "a string or a list of strings")
    return None


def _plain_value(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key == "id":
        return str(value)
    if key == "parent":
        return [value] if isinstance(value, str) else [str(v) for v in value]
    return value


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", list: "list", dict: "object", str: "string"}
    return names.get(type(value), type(value).__name__)


def type_reason(name: str, got: str, expected: str = "a string") -> str:
    """The one wording of a wrong-type problem, shared by the fast and the slow path."""
    return f"field {name!r} is a {got}, expected {expected}"


def _read_txt(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    if opts.split == "file":
        yield _read_txt_file(source, opts)
        return
    texts: list[str] = []
    pos: list[int] = []
    bad: list[BadRecord] = []
    nbytes = 0
    for first, block, too_large in _iter_line_blocks(source.uri, opts):
        bad += _too_large(source, too_large, opts)
        nbytes += len(block)
        records = _lines(block, first) if opts.split == "line" else _paragraphs(block, first)
        for line, raw in records:
            if len(raw) > opts.max_record_bytes:
                bad += _too_large(source, [(line, len(raw))], opts)
                continue
            try:
                texts.append(raw.decode("utf-8"))
                pos.append(line)
            except UnicodeDecodeError as exc:
                bad.append(BadRecord(source.uri, line, "line", f"invalid UTF-8 at byte {exc.start}", *_raw_text(raw)))
        if len(texts) >= opts.batch_rows or bad:
            yield _text_chunk(source, texts, pos, bad, nbytes)
            texts, pos, bad, nbytes = [], [], [], 0
    if texts or bad:
        yield _text_chunk(source, texts, pos, bad, nbytes)


def _lines(block: bytes, first: int) -> Iterator[tuple[int, bytes]]:
    for i, raw in enumerate(block.split(b"\n")[:-1]):
        raw = raw.rstrip(b"\r")
        if raw.strip():
            yield first + i, raw


def _paragraphs(block: bytes, first: int) -> Iterator[tuple[int, bytes]]:
    """Blank-line separated paragraphs, each at the line it starts on.

    Blocks end at a line end, not a paragraph end, so a paragraph cut by a
    block boundary would be split in two; blocks are large (``block_bytes``)
    and the cut falls on a line boundary, which is documented.
    """
    start, lines = None, []
    for i, raw in enumerate(block.split(b"\n")[:-1]):
        if raw.strip():
            if start is None:
                start = first + i
            lines.append(raw.rstrip(b"\r"))
        elif lines:
            yield start, b"\n".join(lines)
            start, lines = None, []
    if lines:
        yield start, b"\n".join(lines)


def _read_txt_file(source: Source, opts: ReadOptions) -> RawChunk:
    size = os.path.getsize(source.uri)
    if size > opts.max_record_bytes:
        return _text_chunk(source, [], [], _too_large(source, [(1, size)], opts, "file"), size, unit="file")
    raw = Path(source.uri).read_bytes()
    try:
        return _text_chunk(source, [raw.decode("utf-8")], [1], [], size, unit="file")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = BadRecord(source.uri, line, "line", f"invalid UTF-8 at byte {exc.start}", *_raw_text(raw))
        return _text_chunk(source, [], [], [bad], size, unit="file")


def _text_chunk(source: Source, texts: list[str], pos: list[int], bad: list[BadRecord], nbytes: int,
                unit: str = "line") -> RawChunk:
    table = pa.table({"text": pa.array(texts, pa.large_string()), POS: pa.array(pos, pa.int64())})
    return RawChunk(source.uri, unit, table, bad, source.id_prefix, nbytes)


def _read_csv(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
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
                bad.append(BadRecord(source.uri, start, "line", problem, *_raw_text(raw)))
            else:
                for key, name in wanted.items():
                    value = row[index[name]] if name in index else None
                    if value == "" and key != "text":  # an empty CSV cell is a missing id / origin / parent
                        value = None
                    rows[key].append(_plain_value(key, value))
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
    types = {"text": pa.large_string(), "id": pa.string(), "origin": pa.string(), "parent": pa.list_(pa.string())}
    arrays = [pa.array(rows[k], types[k]) for k in wanted] + [pa.array(pos, pa.int64())]
    table = pa.Table.from_arrays(arrays, names=list(wanted) + [POS])
    nbytes = 0
    return RawChunk(source.uri, "line", table, bad, source.id_prefix, nbytes)


def _read_parquet(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    try:
        pf = pq.ParquetFile(source.uri)
    except (pa.ArrowInvalid, OSError) as exc:
        bad = BadRecord(source.uri, None, "file", f"not a readable Parquet file, truncated or corrupt ({one_line(exc)})")
        yield RawChunk(source.uri, "row", _empty(), [bad], source.id_prefix)
        return
    row = 1
    total = max(pf.metadata.num_rows, 1)
    size = os.path.getsize(source.uri)
    names = set(pf.schema_arrow.names)
    columns = [c for c in opts.fields.wanted().values() if c in names]
    try:
        for batch in pf.iter_batches(batch_size=opts.batch_rows, columns=columns):
            table = _select_fields(pa.Table.from_batches([batch]), opts.fields.wanted())
            table = table.append_column(POS, pa.array(np.arange(row, row + batch.num_rows), pa.int64()))
            row += batch.num_rows
            yield RawChunk(source.uri, "row", table, [], source.id_prefix, size * batch.num_rows // total)
    except (pa.ArrowInvalid, OSError) as exc:
        bad = BadRecord(source.uri, row, "row", f"Parquet file unreadable from this row on, truncated or corrupt "
                                                f"({one_line(exc)})")
        yield RawChunk(source.uri, "row", _empty(), [bad], source.id_prefix)


def parse_hf_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``hf:NAME[:CONFIG][:SPLIT]`` -> (name, config, split); NAME may contain '/'."""
    parts = uri[len("hf:"):].split(":")
    if not parts[0]:
        raise InputError(f"{uri}: expected hf:NAME, hf:NAME:CONFIG or hf:NAME:CONFIG:SPLIT (e.g. hf:wikitext:wikitext-2-raw-v1:train)")
    parts += [None] * (3 - len(parts))
    return parts[0], parts[1] or None, parts[2] or None


def _read_hf(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    """A Hugging Face dataset through ``datasets.load_dataset`` (Arrow-backed, memory-mapped)."""
    import datasets

    name, config, split = parse_hf_uri(source.uri)
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # datasets raises many types (ConnectionError, FileNotFoundError, ValueError...)
        offline = " (HF_DATASETS_OFFLINE is set)" if os.environ.get("HF_DATASETS_OFFLINE") in ("1", "true") else ""
        raise InputError(f"{source.uri}: cannot load the Hugging Face dataset{offline}: {one_line(exc)}; "
                         "check the name, config and split, and the network or cache") from None
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else sorted(ds)[0]
        ds = ds[split]
    missing = [f for f in opts.fields.wanted().values() if f not in ds.column_names and f == opts.fields.text]
    if missing:
        raise InputError(f"{source.uri}: no column {missing[0]!r} (columns: {', '.join(ds.column_names)}); "
                         "choose one with --text-field")
    row = 1
    for table in ds.with_format("arrow").iter(batch_size=opts.batch_rows):
        table = _select_fields(table, opts.fields.wanted())
        table = table.append_column(POS, pa.array(np.arange(row, row + table.num_rows), pa.int64()))
        row += table.num_rows
        yield RawChunk(source.uri, "row", table, [], source.id_prefix, 0)


def _read_builtin(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    name = source.uri.split(":", 1)[1]
    texts: list[str] = []
    ids: list[str] = []
    uris: list[str] = []
    row = 1

    def chunk() -> RawChunk:
        n = len(texts)
        table = pa.table({"text": pa.array(texts, pa.large_string()), "id": pa.array(ids, pa.string()),
                          SOURCE: pa.array(uris, pa.string()), POS: pa.array(np.arange(row - n, row), pa.int64())})
        return RawChunk(source.uri, "record", table, [], source.id_prefix, sum(len(t) for t in texts))

    for doc in iter_builtin(name):
        texts.append(doc.text)
        ids.append(doc.id)
        uris.append(doc.source_uri)
        row += 1
        if len(texts) >= opts.batch_rows:
            yield chunk()
            texts, ids, uris = [], [], []
    if texts:
        yield chunk()
