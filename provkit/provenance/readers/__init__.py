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

import glob
import os
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pyarrow as pa

from provkit.errors import InputError
from provkit.provenance.builtin import BUILTIN_SOURCES
from provkit.provenance.readers import builtin, csv, hf, jsonl, parquet, provkit, txt
from provkit.provenance.readers.base import (
    POS,
    RAW_KEEP,
    SOURCE,
    SPLITS,
    BadRecord,
    FieldMap,
    RawChunk,
    ReadOptions,
    Source,
    empty,
    one_line,
    type_reason,
    unreadable,
)
from provkit.provenance.readers.hf import parse_hf_uri

FORMATS: dict[str, ModuleType] = {
    "txt": txt, "jsonl": jsonl, "csv": csv, "parquet": parquet, "hf": hf, "builtin": builtin, "provkit": provkit,
}
"""Source kind -> reader module (file formats by suffix, uri formats by prefix, dataset directories by MARKER)."""

SUFFIXES: dict[str, str] = {suffix: kind for kind, mod in FORMATS.items() for suffix in mod.SUFFIXES}
PREFIXES: dict[str, str] = {mod.PREFIX: kind for kind, mod in FORMATS.items() if getattr(mod, "PREFIX", None)}

__all__ = [
    "FORMATS", "SUFFIXES", "PREFIXES", "POS", "RAW_KEEP", "SOURCE", "SPLITS", "BadRecord", "FieldMap", "RawChunk",
    "ReadOptions", "Source", "one_line", "parse_hf_uri", "read_source", "resolve_sources", "spec_name", "type_reason",
]


def _kind_of(path: str) -> str | None:
    low = path.lower()
    return next((kind for suffix, kind in SUFFIXES.items() if low.endswith(suffix)), None)


def _known_inputs() -> str:
    return ", ".join([*SUFFIXES, *(f"{p}NAME" for p in PREFIXES)])


def resolve_sources(specs: list[Any]) -> list[Source]:
    """Expand ``builtin:``/``hf:`` uris, provkit dataset directories, other directories (recursively, known
    suffixes) and globs, in sorted order; a ``datasets`` object (Python API) is one ``hf`` source.

    Derived ids start with the file's path relative to the directory or glob
    root it was found under (its name when given directly), so they stay the
    same wherever the corpus is moved.
    """
    out: list[Source] = []
    for spec in specs:
        if hf.is_hf_object(spec):
            uri = spec_name(spec, len(out) if len(specs) > 1 else None)
            out.append(Source(uri, "hf", uri[len("hf:<"):-1].split(" ")[-1], data=spec))
            continue
        spec = os.fspath(spec)
        prefix = next((p for p in PREFIXES if spec.startswith(p)), None)
        if prefix == builtin.PREFIX and spec[len(prefix):] not in BUILTIN_SOURCES:
            raise InputError(f"{spec}: unknown builtin corpus; available: {', '.join(BUILTIN_SOURCES)}")
        if prefix is not None:
            out.append(Source(spec, PREFIXES[prefix], spec))
        elif any(ch in spec for ch in "*?[") and not os.path.exists(spec):  # a file named "a[1].txt" is a file
            root = os.path.dirname(spec.split("*")[0].split("?")[0].split("[")[0]) or "."
            matches = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(f"{spec}: the pattern matches no file")
            out.extend(_file_source(m, os.path.relpath(m, root)) for m in matches)
        elif provkit.is_dataset_dir(spec):
            out.append(Source(spec, "provkit", os.path.basename(os.path.normpath(spec))))
        elif os.path.isdir(spec):
            files = sorted(
                str(p) for p in Path(spec).rglob("*")
                if p.is_file() and not p.name.startswith(".") and _kind_of(p.name)
            )
            if not files:
                raise InputError(f"{spec}: the directory holds no {', '.join(SUFFIXES)} file")
            out.extend(_file_source(f, os.path.relpath(f, spec)) for f in files)
        else:
            out.append(_file_source(spec, os.path.basename(spec)))
    return out


def spec_name(spec: Any, index: int | None = None) -> str:
    """How a source spec is named in ids, activities and messages (a ``datasets`` object: ``hf:<Dataset NAME>``)."""
    if not hf.is_hf_object(spec):
        return os.fspath(spec)
    name = getattr(getattr(spec, "info", None), "dataset_name", None) or "hf-dataset"
    return f"hf:<{type(spec).__name__} {name if index is None else f'{name}-{index}'}>"


def _file_source(path: str, prefix: str) -> Source:
    kind = _kind_of(path)
    if kind is None:
        raise InputError(f"{path}: unknown file type; use {_known_inputs()}")
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
    except (OSError, EOFError, zlib.error, pa.ArrowInvalid) as exc:  # a corrupt .gz, an I/O error mid-file
        after = f" after {last} good {module.UNIT}s" if last else ""
        bad = BadRecord(source.uri, None, "file", f"cannot read the rest of the file{after} ({one_line(exc)})")
        yield RawChunk(source.uri, "file", empty(), [bad], source.id_prefix)
