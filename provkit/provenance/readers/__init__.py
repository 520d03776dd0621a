"""Readers: turn text, JSONL, CSV, Parquet, Hugging Face and builtin sources into raw chunks.

One module per format (``txt``, ``jsonl``, ``csv``, ``parquet``, ``hf``,
``builtin``), each exposing ``read(source, options) -> Iterator[RawChunk]``,
its ``SUFFIXES`` (file formats) or ``PREFIX`` (uri formats) and ``UNIT`` (what
a position counts).  :data:`FORMATS` below is the one table: every suffix
list, lookup and message is derived from it.  A new format is one module here
plus one line in :data:`FORMATS`.

Checking the fields (types, empty text, origins) is the ingest's job; a reader
only guarantees ``read = rows + bad`` per chunk (see :mod:`.base`).
"""

from __future__ import annotations

import lzma
import os
import re
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pyarrow as pa

from provkit.errors import InputError
from provkit.provenance.builtin import BUILTIN_SOURCES
from provkit.provenance.readers import builtin, csv, hf, jsonl, parquet, provkit, txt
from provkit.provenance.readers.base import (
    COMPRESSIONS,
    POS,
    RAW_KEEP,
    SOURCE,
    SPLITS,
    UNSUPPORTED_COMPRESSIONS,
    BadRecord,
    FieldMap,
    RawChunk,
    ReadOptions,
    Source,
    codec_problem,
    compression_of,
    empty,
    not_regular,
    one_line,
    type_reason,
    unreadable,
)
from provkit.provenance.readers.hf import parse_hf_uri
from provkit.provenance.readers.parquet import PROV

FORMATS: dict[str, ModuleType] = {
    "txt": txt, "jsonl": jsonl, "csv": csv, "parquet": parquet, "hf": hf, "builtin": builtin, "provkit": provkit,
}
"""Source kind -> reader module (file formats by suffix, uri formats by prefix, dataset directories by MARKER)."""

BASE_SUFFIXES: dict[str, str] = {suffix: kind for kind, mod in FORMATS.items() for suffix in mod.SUFFIXES}
SUFFIXES: dict[str, str] = {
    **BASE_SUFFIXES,
    **{suffix + comp: kind for suffix, kind in BASE_SUFFIXES.items() if getattr(FORMATS[kind], "COMPRESSIBLE", False)
       for comp in COMPRESSIONS},
}
"""Every file suffix provkit reads -> its source kind (line formats also compressed)."""
PREFIXES: dict[str, str] = {mod.PREFIX: kind for kind, mod in FORMATS.items() if getattr(mod, "PREFIX", None)}

__all__ = [
    "FORMATS",
    "POS",
    "PREFIXES",
    "PROV",
    "RAW_KEEP",
    "SOURCE",
    "SPLITS",
    "SUFFIXES",
    "BadRecord",
    "FieldMap",
    "RawChunk",
    "ReadOptions",
    "Resolved",
    "Skipped",
    "Source",
    "one_line",
    "parse_hf_uri",
    "read_source",
    "resolve_sources",
    "scan_sources",
    "spec_name",
    "type_reason",
]


@dataclass(frozen=True)
class Skipped:
    """A file a directory scan or glob passed over, and why (every one is counted and named)."""

    path: str
    reason: str


@dataclass
class Resolved:
    """What the source specs name: the files and uris to read, and the files passed over."""

    sources: list[Source] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)  # directories the scans started from


def classify(path: str) -> tuple[str | None, str | None]:
    """(source kind, None) for a file provkit reads; (None, why not) otherwise, from the name alone."""
    low = path.lower()
    kind = next((kind for suffix, kind in SUFFIXES.items() if low.endswith(suffix)), None)
    if kind is not None:
        codec = compression_of(low)
        problem = codec_problem(codec) if codec else None
        return (None, problem) if problem else (kind, None)
    base, ext = os.path.splitext(low)
    if ext in COMPRESSIONS and os.path.splitext(base)[1] in BASE_SUFFIXES:
        return None, f"a compressed {os.path.splitext(base)[1]} file ({ext}) is not supported; decompress it first"
    if ext in UNSUPPORTED_COMPRESSIONS or ext in COMPRESSIONS:
        return None, (f"compressed ({ext}) with no known format inside, or a compression provkit does not read; "
                      f"use {_known_inputs()}")
    return None, f"unknown file type; use {_known_inputs()}"


def _known_inputs() -> str:
    plain = [s for s in SUFFIXES if compression_of(s) is None]
    return ", ".join([*plain, f"(text formats also {'/'.join(COMPRESSIONS)})", *(f"{p}NAME" for p in PREFIXES)])


def resolve_sources(specs: list[Any]) -> list[Source]:
    """The sources :func:`scan_sources` finds (files passed over are dropped: use that to report them)."""
    return scan_sources(specs).sources


def scan_sources(specs: list[Any]) -> Resolved:
    """Expand ``builtin:``/``hf:`` uris, provkit dataset directories, other directories (recursively) and
    globs, in sorted order; a ``datasets`` object (Python API) is one ``hf`` source.

    Directory scans and ``**`` globs follow symlinked directories once (a
    symlink loop is reported, never walked twice) and never open anything but
    regular files; every file passed over - hidden, unknown or unsupported
    suffix, not a regular file (FIFO, socket, device), broken symlink,
    unreadable directory - is counted and named in :attr:`Resolved.skipped`.
    Derived ids start with the file's path relative to the directory or glob
    root it was found under (its name when given directly), so they stay the
    same wherever the corpus is moved.
    """
    out = Resolved()
    for spec in specs:
        if hf.is_hf_object(spec):
            uri = spec_name(spec, len(out.sources) if len(specs) > 1 else None)
            out.sources.append(Source(uri, "hf", uri[len("hf:<"):-1].split(" ")[-1], data=spec))
            continue
        spec = os.fspath(spec)
        prefix = next((p for p in PREFIXES if spec.startswith(p)), None)
        if prefix == builtin.PREFIX and spec[len(prefix):] not in BUILTIN_SOURCES:
            raise InputError(f"{spec}: unknown builtin corpus; available: {', '.join(BUILTIN_SOURCES)}")
        if prefix is not None:
            out.sources.append(Source(spec, PREFIXES[prefix], spec))
        elif any(ch in spec for ch in "*?[") and not os.path.exists(spec):  # a file named "a[1].txt" is a file
            root = os.path.dirname(spec.split("*")[0].split("?")[0].split("[")[0]) or "."
            pattern = _glob_regex(os.path.relpath(spec, root))
            found = [(path, rel) for path, rel in _walk(root, out, hidden_ok=False) if pattern.fullmatch(rel)]
            matched = 0
            for path, rel in found:
                kind, why = classify(path)
                if kind is None:
                    out.skipped.append(Skipped(path, why or "unknown file type"))
                    continue
                matched += 1
                out.sources.append(Source(path, kind, rel))
            if not matched:
                raise InputError(f"{spec}: the pattern matches no readable file"
                                 + (f" ({len(found)} passed over: {found[0][0]}: {out.skipped[-1].reason})"
                                    if found else ""))
            out.roots.append(root)
        elif provkit.is_dataset_dir(spec):
            out.sources.append(Source(spec, "provkit", os.path.basename(os.path.normpath(spec))))
        elif os.path.isdir(spec):
            n = len(out.sources)
            for path, rel in _walk(spec, out, hidden_ok=True):
                kind, why = classify(path)
                if kind is None:
                    out.skipped.append(Skipped(path, why or "unknown file type"))
                else:
                    out.sources.append(Source(path, kind, rel))
            if len(out.sources) == n:
                raise InputError(f"{spec}: the directory holds no {', '.join(s for s in SUFFIXES if '.' not in s[1:])} "
                                 f"file ({len(out.skipped)} passed over)")
            out.roots.append(spec)
        else:
            out.sources.append(_file_source(spec, os.path.basename(spec)))
    return out


def _walk(root: str, out: Resolved, hidden_ok: bool) -> Iterator[tuple[str, str]]:
    """(path, path relative to ``root`` with '/') of the regular files under ``root``, sorted.

    Hidden entries are named in ``out.skipped`` (``hidden_ok``: a directory
    scan) or left out silently like the shell's glob does; non-regular files,
    broken symlinks, unreadable directories and symlink loops are named there.
    """
    try:
        seen = {(os.stat(root).st_dev, os.stat(root).st_ino)}
    except OSError as exc:
        out.skipped.append(Skipped(root, f"cannot read the directory ({exc.strerror or one_line(exc)})"))
        return
    files: list[tuple[str, str]] = []
    stack = [(root, "")]
    while stack:
        directory, rel_dir = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            out.skipped.append(Skipped(directory, f"cannot read the directory ({exc.strerror or one_line(exc)})"))
            continue
        for entry in entries:
            rel = f"{rel_dir}{entry.name}"
            path = entry.name if directory == "." else entry.path
            if entry.name.startswith("."):
                if hidden_ok:
                    out.skipped.append(Skipped(path, "hidden (its name starts with '.')"))
                continue
            try:
                st = entry.stat()  # follows symlinks
            except FileNotFoundError:
                out.skipped.append(Skipped(path, "a broken symlink"))
                continue
            except OSError as exc:  # ELOOP: a symlink to itself
                out.skipped.append(Skipped(path, f"cannot stat ({exc.strerror or one_line(exc)})"))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    out.skipped.append(Skipped(path, "a directory already scanned (a symlink loop or a "
                                                           "second link to it)"))
                    continue
                seen.add(key)
                stack.append((path, rel + "/"))
                continue
            problem = not_regular(st)
            if problem:
                out.skipped.append(Skipped(path, problem))
                continue
            files.append((path, rel))
    yield from sorted(files, key=lambda f: f[1])


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A shell glob (``*``, ``?``, ``[...]``, ``**`` for any depth) as a regex over '/'-separated paths."""
    pattern = pattern.replace(os.sep, "/")
    pattern = pattern.removeprefix("./")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def spec_name(spec: Any, index: int | None = None) -> str:
    """How a source spec is named in ids, activities and messages (a ``datasets`` object: ``hf:<Dataset NAME>``)."""
    if not hf.is_hf_object(spec):
        return os.fspath(spec)
    name = getattr(getattr(spec, "info", None), "dataset_name", None) or "hf-dataset"
    return f"hf:<{type(spec).__name__} {name if index is None else f'{name}-{index}'}>"


def _file_source(path: str, prefix: str) -> Source:
    kind, why = classify(path)
    if kind is None:
        raise InputError(f"{path}: {why}")
    return Source(path, kind, prefix.replace(os.sep, "/"))


def read_source(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    """Stream the chunks of one source; a file that cannot be read at all yields one bad record."""
    module = FORMATS[source.kind]
    if module.SUFFIXES:
        problem = unreadable(source.uri)
        if problem:
            yield RawChunk(source.uri, "file", empty(), [BadRecord(source.uri, None, "file", problem)], source.id_prefix)
            return
    last = 0
    try:
        for chunk in module.read(source, opts):
            if chunk.table.num_rows:
                last = int(chunk.table.column(POS)[-1].as_py())
            yield chunk
    except (OSError, EOFError, zlib.error, lzma.LZMAError, pa.ArrowInvalid) as exc:  # a corrupt .gz, an I/O error mid-file
        after = f" after {last} good {module.UNIT}s" if last else ""
        bad = BadRecord(source.uri, None, "file", f"cannot read the rest of the file{after} ({one_line(exc)})")
        yield RawChunk(source.uri, "file", empty(), [bad], source.id_prefix)
