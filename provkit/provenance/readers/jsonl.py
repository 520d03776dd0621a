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
    MAX_JSON_DEPTH,
    POS,
    BadRecord,
    Lines,
    RawChunk,
    ReadOptions,
    Source,
    blank_lines,
    empty,
    iter_line_blocks,
    line_numbers,
    plain_value,
    raw_text,
    rows_table,
    scan_lines,
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
    for first, block, too_large, lines in iter_line_blocks(source.uri, opts):
        bad = too_large_records(source, too_large, opts)
        block, lines, deep = _blank_deep_lines(source, block, first, lines)
        bad += deep
        table = None
        if not lines.blank.all() and not block.isspace():
            table = _parse_json_block(block, schema, wanted)
            numbers = line_numbers(lines, first)
            if table is not None and table.num_rows != len(numbers):
                table = None  # a line of spaces or two objects on one line: let the slow path sort it out
            if table is None:
                table, more = _parse_json_lines(source, block, first, wanted)
                bad += more
            else:
                table = table.append_column(POS, pa.array(numbers, pa.int64()))
        yield RawChunk(source.uri, "line", table if table is not None else empty(), bad, source.id_prefix,
                       len(block) + sum(n for _, n in too_large))


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def json_depth(line: bytes) -> int:
    """The nesting depth of one JSON line (brackets inside strings do not count)."""
    arr = np.frombuffer(_JSON_STRING.sub(b'""', line), dtype=np.uint8)
    step = ((arr == 123) | (arr == 91)).astype(np.int64) - ((arr == 125) | (arr == 93)).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def _blank_deep_lines(source: Source, block: bytes, first: int, lines: Lines) -> tuple[bytes, Lines, list[BadRecord]]:
    """Lines nested deeper than :data:`MAX_JSON_DEPTH`, blanked out of ``block`` and reported as bad.

    Cheap: a line's depth is at most its number of opening brackets (and its
    length): ``lines.depth_bound``, from the block's one NumPy scan; only
    lines whose bound exceeds the limit are measured exactly.
    """
    deep, bad = [], []
    for i in np.flatnonzero(lines.depth_bound > MAX_JSON_DEPTH):
        line = block[lines.starts[i]: lines.ends[i]]
        depth = json_depth(line)
        if depth > MAX_JSON_DEPTH:
            deep.append(i)
            bad.append(BadRecord(source.uri, first + int(i), "line",
                                 f"JSON nested deeper than {MAX_JSON_DEPTH} levels ({depth})", *raw_text(line)))
    if not deep:
        return block, lines, []
    block = blank_lines(block, lines, deep)  # their line ends stay: line numbers do not move
    return block, scan_lines(block), bad


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
