"""JSON Lines (``.jsonl``, ``.json``, ``.ndjson``, optionally gzipped): one object per line.

Read in blocks of complete lines with ``pyarrow.json`` (multi-threaded); a
block that pyarrow refuses (a malformed line, invalid UTF-8, a field whose
type changes) is re-read line by line with :mod:`json` to find each bad line.
Memory is bounded by the block size (``block_bytes``) plus one record of at
most ``max_record_bytes``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from provkit.provenance.readers.base import (
    POS,
    BadRecord,
    RawChunk,
    ReadOptions,
    Source,
    empty,
    iter_line_blocks,
    line_numbers,
    plain_value,
    raw_text,
    rows_table,
    select_fields,
    too_large_records,
    type_reason,
)

SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSIBLE = True  # each with .gz, .bz2, .zst or .xz
UNIT = "line"

def read(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    wanted = opts.fields.wanted()
    schema = pa.schema([(name, pa.large_string() if key == "text" else pa.string())
                        for key, name in wanted.items() if key in ("text", "origin")])
    for first, block, too_large in iter_line_blocks(source.uri, opts):
        bad = too_large_records(source, too_large, opts)
        block, deep = _blank_deep_lines(source, block, first)
        bad += deep
        table = None
        if block.strip():
            table = _parse_json_block(block, schema, wanted)
            lines = line_numbers(block, first)
            if table is not None and table.num_rows != len(lines):
                table = None  # a line of spaces or two objects on one line: let the slow path sort it out
            if table is None:
                table, more = _parse_json_lines(source, block, first, wanted)
                bad += more
            else:
                table = table.append_column(POS, pa.array(lines, pa.int64()))
        yield RawChunk(source.uri, "line", table if table is not None else empty(), bad, source.id_prefix,
                       len(block) + sum(n for _, n in too_large))


MAX_JSON_DEPTH = 256
"""Deeper JSON is a bad record: Arrow's JSON reader crashes on ~20k levels, Python's recurses."""
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def json_depth(line: bytes) -> int:
    """The nesting depth of one JSON line (brackets inside strings do not count)."""
    arr = np.frombuffer(_JSON_STRING.sub(b'""', line), dtype=np.uint8)
    step = ((arr == 123) | (arr == 91)).astype(np.int64) - ((arr == 125) | (arr == 93)).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


_NOT_BRACKET_OR_NEWLINE = bytes(c for c in range(256) if c not in b"{[\n")


def _may_nest_deeper(block: bytes) -> bool:
    """Whether some line of ``block`` has more than :data:`MAX_JSON_DEPTH` opening brackets.

    The block is first reduced to its ``{``, ``[`` and newline bytes (one C
    ``bytes.translate`` pass), so the per-line count runs over a few bytes a
    line instead of every byte.
    """
    arr = np.frombuffer(block.translate(None, _NOT_BRACKET_OR_NEWLINE), dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    bounds = np.concatenate(([-1], ends, [len(arr)]))
    return bool((np.diff(bounds) - 1 > MAX_JSON_DEPTH).any())


def _blank_deep_lines(source: Source, block: bytes, first: int) -> tuple[bytes, list[BadRecord]]:
    """Lines nested deeper than :data:`MAX_JSON_DEPTH`, blanked out of ``block`` and reported as bad.

    Cheap: a line's depth is at most its number of opening brackets, so a block
    with fewer than the limit cannot hold such a line (one ``bytes.count``
    each); otherwise the brackets are counted per line from their positions
    (``searchsorted`` of the line ends among the bracket offsets: O(brackets),
    no per-byte running sum) and only lines with that many opening brackets
    are measured exactly.
    """
    if block.count(b"{") + block.count(b"[") <= MAX_JSON_DEPTH:
        return block, []
    if not _may_nest_deeper(block):
        return block, []
    arr = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    brackets = np.flatnonzero((arr == 123) | (arr == 91))
    per_line = np.searchsorted(brackets, ends) - np.searchsorted(brackets, starts)
    candidates = np.flatnonzero(per_line > MAX_JSON_DEPTH)
    pieces, bad, prev = [], [], 0
    for i in candidates:
        line = block[starts[i]: ends[i]]
        depth = json_depth(line)
        if depth <= MAX_JSON_DEPTH:
            continue
        bad.append(BadRecord(source.uri, first + int(i), "line",
                             f"JSON nested deeper than {MAX_JSON_DEPTH} levels ({depth})", *raw_text(line)))
        pieces.append(block[prev: starts[i]])
        prev = int(ends[i])  # keep the newline: line numbers stay
    if not bad:
        return block, []
    pieces.append(block[prev:])
    return b"".join(pieces), bad


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
            table = select_fields(pajson.read_json(io.BytesIO(block), read_options=read, parse_options=parse),
                                   wanted)
            table.validate(full=True)  # pyarrow's JSON reader lets invalid UTF-8 into string columns
            return table
        except (pa.ArrowInvalid, UnicodeDecodeError, pa.ArrowNotImplementedError) as exc:
            if "straddl" not in str(exc):
                return None
    return None


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
            bad.append(BadRecord(source.uri, line, "line", f"invalid UTF-8 at byte {exc.start}", *raw_text(raw)))
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            bad.append(BadRecord(source.uri, line, "line", f"malformed JSON ({exc.msg} at column {exc.colno})",
                                 *raw_text(raw)))
            continue
        except RecursionError:
            bad.append(BadRecord(source.uri, line, "line", "JSON nested too deeply to parse", *raw_text(raw)))
            continue
        if not isinstance(obj, dict):
            bad.append(BadRecord(source.uri, line, "line", f"a JSON {type(obj).__name__}, expected an object",
                                 *raw_text(raw)))
            continue
        problem = _value_types(obj, wanted) or _surrogates(obj, wanted)
        if problem:
            bad.append(BadRecord(source.uri, line, "line", problem, *raw_text(raw)))
            continue
        for key, name in wanted.items():
            rows[key].append(plain_value(key, obj.get(name)))
        pos.append(line)
    return rows_table(wanted, rows, pos), bad


def _value_types(obj: dict[str, Any], wanted: dict[str, str]) -> str | None:
    """The reason a parsed record's field has a type provkit cannot use, else ``None``."""
    for key, name in wanted.items():
        value = obj.get(name)
        if value is None:
            continue
        if key in ("text", "origin", "license") and not isinstance(value, str):
            return type_reason(name, _json_type(value))
        if key == "id" and not isinstance(value, (str, int)) or isinstance(value, bool) and key == "id":
            return type_reason(name, _json_type(value), "a string or integer")
        if key == "parent" and not (isinstance(value, str) or
                                    isinstance(value, list) and all(isinstance(v, (str, int)) for v in value)):
            return type_reason(name, _json_type(value), "a string or a list of strings")
    return None


def _surrogates(obj: dict[str, Any], wanted: dict[str, str]) -> str | None:
    """A JSON escape like ``\\ud800`` decodes to a lone surrogate, which no UTF-8 string can hold."""
    for name in wanted.values():
        value = obj.get(name)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str):
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError as exc:
                    return f"lone surrogate {v[exc.start]!r} (a \\u escape of half a pair) in field {name!r}"
    return None


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", list: "list", dict: "object", str: "string"}
    return names.get(type(value), type(value).__name__)
