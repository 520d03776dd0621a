"""Hugging Face datasets (``hf:NAME[:CONFIG][:SPLIT]``) through ``datasets.load_dataset``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from provkit.errors import InputError
from provkit.provenance.readers.base import (
    POS,
    RawChunk,
    ReadOptions,
    Source,
    one_line,
    select_fields,
)

PREFIX = "hf:"
SUFFIXES: tuple[str, ...] = ()
UNIT = "row"

def parse_hf_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``hf:NAME[:CONFIG][:SPLIT]`` -> (name, config, split); NAME may contain '/'."""
    parts = uri[len("hf:"):].split(":")
    if not parts[0]:
        raise InputError(f"{uri}: expected hf:NAME, hf:NAME:CONFIG or hf:NAME:CONFIG:SPLIT (e.g. hf:wikitext:wikitext-2-raw-v1:train)")
    parts += [None] * (3 - len(parts))
    return parts[0], parts[1] or None, parts[2] or None


def read(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    """A Hugging Face dataset through ``datasets.load_dataset`` (Arrow-backed, memory-mapped)."""
    import datasets  # lazy: importing datasets costs seconds and only hf: sources need it

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
        table = select_fields(table, opts.fields.wanted())
        table = table.append_column(POS, pa.array(np.arange(row, row + table.num_rows), pa.int64()))
        row += table.num_rows
        yield RawChunk(source.uri, "row", table, [], source.id_prefix, 0)
