"""Plain text (``.txt``): one record per file, per line, or per blank-line paragraph (``split``)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from provkit.provenance.readers.base import (
    POS,
    BadRecord,
    RawChunk,
    ReadOptions,
    Source,
    iter_line_blocks,
    open_binary,
    raw_text,
    too_large_records,
)

SUFFIXES = (".txt",)
COMPRESSIBLE = True  # .txt.gz, .txt.bz2, .txt.zst, .txt.xz
UNIT = "line"

def read(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    if opts.split == "file":
        yield _read_txt_file(source, opts)
        return
    texts: list[str] = []
    pos: list[int] = []
    bad: list[BadRecord] = []
    nbytes = 0
    for first, block, too_large, _ in iter_line_blocks(source.uri, opts):
        bad += too_large_records(source, too_large, opts)
        nbytes += len(block)
        records = _lines(block, first) if opts.split == "line" else _paragraphs(block, first)
        for line, raw in records:
            if len(raw) > opts.max_record_bytes:
                bad += too_large_records(source, [(line, len(raw))], opts)
                continue
            try:
                texts.append(raw.decode("utf-8"))
                pos.append(line)
            except UnicodeDecodeError as exc:
                bad.append(BadRecord(source.uri, line, "line", f"invalid UTF-8 at byte {exc.start}", *raw_text(raw)))
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
    """The whole (decompressed) file as one record; a file over ``max_record_bytes`` is reported, never held."""
    with open_binary(source.uri) as f:
        raw = f.read(opts.max_record_bytes + 1)
        size = len(raw)
        if size > opts.max_record_bytes:
            while block := f.read(1 << 22):
                size += len(block)
            return _text_chunk(source, [], [], too_large_records(source, [(1, size)], opts, "file"), size, unit="file")
    try:
        return _text_chunk(source, [raw.decode("utf-8")], [1], [], size, unit="file")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = BadRecord(source.uri, line, "line", f"invalid UTF-8 at byte {exc.start}", *raw_text(raw))
        return _text_chunk(source, [], [], [bad], size, unit="file")


def _text_chunk(source: Source, texts: list[str], pos: list[int], bad: list[BadRecord], nbytes: int,
                unit: str = "line") -> RawChunk:
    table = pa.table({"text": pa.array(texts, pa.large_string()), POS: pa.array(pos, pa.int64())})
    return RawChunk(source.uri, unit, table, bad, source.id_prefix, nbytes)
