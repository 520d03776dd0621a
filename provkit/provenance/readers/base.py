"""What every reader shares: the options, the chunk a reader yields, bad records and line blocks.

A reader streams :class:`RawChunk` objects: an Arrow table of the fields as
read (``text`` and, when asked for, ``id`` / ``origin`` / ``parent``), one
``_pos`` column with each record's 1-based line or row in its file, and the
records that could not even be parsed (:class:`BadRecord`, with the reason).
Every record a reader saw is either a table row or a bad record, so
``read = rows + bad`` holds per chunk.

Line-oriented formats read in blocks of complete lines (:func:`iter_line_blocks`);
memory is bounded by the block size (``block_bytes``) plus one record of at
most ``max_record_bytes``: a longer line is skipped and reported, never held.
"""

from __future__ import annotations

import bz2
import json
import lzma
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from provkit.core.text import one_line  # noqa: F401  (re-exported: every reader names problems with it)

POS = "_pos"
SOURCE = "_source"
SPLITS = ("file", "line", "paragraph")
RAW_KEEP = 4096  # bytes of a bad record kept in the quarantine
FIELD_TYPES = {"text": pa.large_string(), "id": pa.string(), "origin": pa.string(), "parent": pa.list_(pa.string()),
               "license": pa.string()}
METADATA = "metadata"  # the record column holding kept user fields (JSON object)
META_PREFIX = "meta."  # kept user fields travel as ``meta.<name>`` columns until the ingest packs them


@dataclass(frozen=True)
class FieldMap:
    """Which source fields feed the record: the output name -> the source field name."""

    text: str = "text"
    id: str | None = None
    origin: str | None = None
    parent: str | None = None
    license: str | None = None  # a per-record licence field (``--license-field``)
    keep: tuple[str, ...] = ()  # user fields kept in the record's ``metadata`` (``--keep-fields``)

    def wanted(self) -> dict[str, str]:
        pairs = {"text": self.text, "id": self.id, "origin": self.origin, "parent": self.parent,
                 "license": self.license, **{f"{META_PREFIX}{name}": name for name in self.keep}}
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
    kind: str  # a key of readers.FORMATS
    id_prefix: str
    data: Any = field(default=None, compare=False, repr=False)  # an in-memory dataset object (the hf reader)

    def size(self) -> int | None:
        if self.kind in ("hf", "builtin", "provkit"):  # uri and dataset sources have no byte size
            return None
        try:
            return os.path.getsize(self.uri)
        except OSError:
            return None


def raw_text(raw: bytes) -> tuple[str, int]:
    """The start of a bad record's raw bytes (kept in the quarantine) and its full length."""
    return raw[:RAW_KEEP].decode("utf-8", errors="backslashreplace"), len(raw)


def type_reason(name: str, got: str, expected: str = "a string") -> str:
    """The one wording of a wrong-type problem, shared by the fast and the slow path."""
    return f"field {name!r} is a {got}, expected {expected}"


def plain_value(key: str, value: Any) -> Any:
    """A source value as the record field ``key`` holds it (ids as strings, parents as a list)."""
    if value is None:
        return None
    if key == "id":
        return str(value)
    if key == "parent":
        return [value] if isinstance(value, str) else [str(v) for v in value]
    return value


def select_fields(table: pa.Table, wanted: dict[str, str]) -> pa.Table:
    """Keep the wanted source fields, renamed to text/id/origin/parent/license (a missing field is all null).

    Kept user fields (``meta.<name>``) are packed into one ``metadata`` column (see :func:`pack_metadata`).
    """
    cols, names = [], []
    meta: dict[str, list[Any]] = {}
    for key, name in wanted.items():
        if key.startswith(META_PREFIX):
            meta[name] = table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows
            continue
        if name in table.column_names:
            cols.append(table.column(name))
        else:
            cols.append(pa.nulls(table.num_rows, pa.large_string() if key == "text" else pa.string()))
        names.append(key)
    if meta:
        cols.append(pack_metadata(meta, table.num_rows))
        names.append(METADATA)
    return pa.Table.from_arrays(cols, names=names)


def rows_table(wanted: dict[str, str], rows: dict[str, list[Any]], pos: list[int]) -> pa.Table:
    """A chunk table from per-field value lists and their positions."""
    plain = [k for k in wanted if not k.startswith(META_PREFIX)]
    arrays = [pa.array(rows[k], FIELD_TYPES.get(k)) for k in plain]
    meta = {wanted[k]: rows[k] for k in wanted if k.startswith(META_PREFIX)}
    if meta:
        arrays.append(pack_metadata(meta, len(pos)))
        plain.append(METADATA)
    return pa.Table.from_arrays(arrays + [pa.array(pos, pa.int64())], names=plain + [POS])


def pack_metadata(fields: dict[str, list[Any]], n: int) -> pa.Array:
    """Kept user fields as one JSON object per record (absent fields left out; null when none is there).

    JSON text rather than an Arrow struct: a field's type may change from one
    block of a file to the next (a year as 2001, then as "unknown") and every
    record of a dataset shares one schema.  Query it with DuckDB's
    ``metadata->>'$.field'`` or ``json.loads``.
    """
    out: list[str | None] = []
    for i in range(n):
        obj = {name: values[i] for name, values in fields.items() if values[i] is not None}
        out.append(json.dumps(obj, ensure_ascii=False, default=str, sort_keys=True) if obj else None)
    return pa.array(out, pa.string())


def not_regular(st: os.stat_result) -> str | None:
    """Why a path with this ``stat`` is not a regular file provkit may open (a FIFO would block forever)."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
            "not a regular file")
    return f"is {kind}, not a regular file" if kind != "not a regular file" else kind


def unreadable(path: str) -> str | None:
    """Why ``path`` cannot be read (``None`` when it can); never opens anything but a regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file" if not os.path.islink(path) else "a broken symlink"
    except OSError as exc:  # ELOOP, EACCES on a parent, ENAMETOOLONG
        return f"cannot read the file ({exc.strerror or one_line(exc)})"
    problem = not_regular(st)
    if problem:
        return problem
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or one_line(exc)})"
    return None


def empty() -> pa.Table:
    return pa.table({"text": pa.array([], pa.large_string()), POS: pa.array([], pa.int64())})


COMPRESSIONS: dict[str, str] = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".xz": "xz"}
"""File-name suffix -> codec; a line format (txt, jsonl, csv) may carry any of them."""
UNSUPPORTED_COMPRESSIONS = (".zip", ".7z", ".rar", ".tar", ".tgz", ".lz4", ".br", ".lzma", ".z", ".sz", ".lzo")


def compression_of(path: str) -> str | None:
    """The codec a file name's last suffix names (``None`` for an uncompressed name)."""
    return COMPRESSIONS.get(os.path.splitext(path.lower())[1])


def codec_problem(codec: str) -> str | None:
    """Why this Python cannot decompress ``codec`` (``None`` when it can)."""
    if codec == "zstd" and not pa.Codec.is_available("zstd"):
        try:
            import zstandard  # noqa: F401  (optional)
        except ImportError:
            return "zstd-compressed, and neither pyarrow's zstd codec nor the zstandard package is available " \
                   "(pip install zstandard, or decompress it first)"
    return None


def open_binary(path: str) -> Any:
    """A binary stream of the file's content, decompressed as its suffix says (.gz, .bz2, .zst, .xz)."""
    codec = compression_of(path)
    if codec is None:
        return open(path, "rb")
    if codec == "xz":
        return lzma.open(path, "rb")
    if codec == "bz2" and not pa.Codec.is_available("bz2"):
        return bz2.open(path, "rb")
    if codec == "zstd" and not pa.Codec.is_available("zstd"):
        import zstandard  # optional; codec_problem() refused the file when it is missing

        return zstandard.open(path, "rb")
    return pa.input_stream(path, compression=codec)


_LONE_CR = re.compile(rb"\r(?=[^\n])")


def split_lone_cr(buf: bytes, final: bool) -> bytes:
    """Classic-Mac line ends (a ``\\r`` not followed by ``\\n``) as ``\\n``, so lines are never merged.

    A ``\\r`` at the very end of ``buf`` may be the first half of a ``\\r\\n`` split by a
    block boundary; it is turned into a line end only when ``final``.
    """
    if b"\r" not in buf:
        return buf
    buf = _LONE_CR.sub(b"\n", buf)
    if final and buf.endswith(b"\r"):
        buf = buf[:-1] + b"\n"
    return buf


MAX_JSON_DEPTH = 256
"""Deeper JSON is a bad record: Arrow's JSON reader crashes on ~20k levels, Python's recurses."""


@dataclass(frozen=True)
class Lines:
    """Where the lines of a block lie (a block ends with ``\\n``): line ``i`` is ``block[starts[i]:ends[i]]``
    (``ends[i]`` is its ``\\n``).  ``depth_bound[i]`` bounds its JSON nesting depth from above: its count of
    ``{`` and ``[`` bytes where the line is longer than ``deep`` bytes, else its length."""

    starts: np.ndarray
    ends: np.ndarray
    depth_bound: np.ndarray
    blank: np.ndarray  # empty, or only "\r" (pyarrow's JSON reader skips these)

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts


def scan_lines(block: bytes, deep: int = MAX_JSON_DEPTH) -> Lines:
    """The :class:`Lines` of ``block``: NumPy over the bytes (no compiled code, so a reader thread never waits for
    the JIT); brackets are counted only when some line is longer than ``deep`` bytes."""
    arr = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    starts = np.empty(len(ends), dtype=np.int64)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    depth_bound = lengths.copy()
    long_lines = np.flatnonzero(lengths > deep)
    if len(long_lines):  # "{" is 123, "[" is 91 = 123 without bit 5
        brackets = np.flatnonzero((arr | 32) == 123)
        depth_bound[long_lines] = (np.searchsorted(brackets, ends[long_lines])
                                   - np.searchsorted(brackets, starts[long_lines]))
    first = arr[np.minimum(starts, max(len(arr) - 1, 0))] if len(arr) else np.zeros(0, dtype=np.uint8)
    blank = (lengths == 0) | ((lengths == 1) & (first == 13))
    return Lines(starts, ends, depth_bound, blank)


def iter_line_blocks(path: str, opts: ReadOptions) -> Iterator[tuple[int, bytes, list[tuple[int, int]], Lines]]:
    """Yield ``(first_line_number, block, too_large, lines)`` with ``block`` ending at a line end.

    A line longer than ``max_record_bytes`` is never held in memory: it is
    skipped (left in ``block`` as an empty line, so line numbers stay) and
    reported in ``too_large`` as ``(line_number, length)``.
    """
    limit = opts.max_record_bytes
    line_no = 1
    carry = b""
    with open_binary(path) as f:
        while True:
            data = f.read(opts.block_bytes)
            if not data:
                break
            if b"\r" not in data and b"\r" not in carry and (cut := data.rfind(b"\n")) >= 0:
                # the common case: at most one copy of the block
                block = data if not carry and cut == len(data) - 1 else b"".join((carry, memoryview(data)[: cut + 1]))
                carry = data[cut + 1:]
            else:
                buf = split_lone_cr(carry + data, final=False) if carry else split_lone_cr(data, final=False)
                cut = buf.rfind(b"\n")
                if cut < 0:
                    if len(buf) > limit:  # one huge line: skip to its end
                        skipped, tail = _skip_line(f, len(buf), opts.block_bytes)
                        yield line_no, b"", [(line_no, skipped)], scan_lines(b"")
                        line_no += 1
                        carry = tail
                        continue
                    carry = buf
                    continue
                block, carry = (buf, b"") if cut == len(buf) - 1 else (buf[: cut + 1], buf[cut + 1:])
            lines = scan_lines(block)
            block, lines, too_large = _without_long_lines(block, lines, line_no, limit)
            yield line_no, block, too_large, lines
            line_no += len(lines)  # a dropped line stays as an empty line
        carry = split_lone_cr(carry, final=True)  # holds no line end but maybe a final lone CR
        if carry:
            if len(carry) > limit:
                yield line_no, b"", [(line_no, len(carry))], scan_lines(b"")
            else:
                block = carry if carry.endswith(b"\n") else carry + b"\n"
                yield line_no, block, [], scan_lines(block)


def _without_long_lines(block: bytes, lines: Lines, first_line: int,
                        limit: int) -> tuple[bytes, Lines, list[tuple[int, int]]]:
    """``block`` with its lines over ``limit`` bytes blanked, its lines, and ``(line_number, length)`` of those."""
    long_idx = np.flatnonzero(lines.lengths > limit) if len(block) > limit else np.zeros(0, dtype=np.int64)
    if not len(long_idx):
        return block, lines, []
    block = blank_lines(block, lines, long_idx)
    return block, scan_lines(block), [(first_line + int(i), int(lines.lengths[i])) for i in long_idx]


def blank_lines(block: bytes, lines: Lines, rows: Sequence[int] | np.ndarray) -> bytes:
    """``block`` with lines ``rows`` (ascending) emptied; their line ends stay, so line numbers do not move."""
    pieces, prev = [], 0
    for i in rows:
        pieces.append(block[prev: lines.starts[i]])
        prev = int(lines.ends[i])  # keep the newline
    pieces.append(block[prev:])
    return b"".join(pieces)


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


def line_numbers(lines: Lines, first_line: int) -> np.ndarray:
    """1-based line numbers of the non-blank lines (pyarrow skips blank lines)."""
    return first_line + np.flatnonzero(~lines.blank)


def too_large_records(source: Source, items: list[tuple[int, int]], opts: ReadOptions, unit: str = "line") -> list[BadRecord]:
    return [
        BadRecord(source.uri, ln, unit, f"record too large ({n} bytes > --max-record-bytes {opts.max_record_bytes})",
                  "", n)
        for ln, n in items
    ]
