"""Hugging Face datasets: ``hf:NAME[:CONFIG][:SPLIT]`` (hub or cache), ``hf:FOLDER[::SPLIT]`` (``save_to_disk``),
or a ``datasets.Dataset`` / ``IterableDataset`` / ``DatasetDict`` object handed to the Python API.

A dataset that already has every provkit record column (``Dataset.to_hf()``)
keeps its provenance as it is (:func:`provkit.provenance.readers.provkit.records_chunk_table`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from provkit.errors import InputError
from provkit.provenance.readers.base import POS, RawChunk, ReadOptions, Source, one_line, select_fields
from provkit.provenance.readers.provkit import has_record_columns, records_chunk_table

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


def is_hf_object(obj: object) -> bool:
    """A ``datasets`` Dataset, IterableDataset or DatasetDict (duck-typed: no import of ``datasets`` needed)."""
    return type(obj).__module__.split(".")[0] == "datasets" and hasattr(obj, "column_names")


def _saved_to_disk(path: str) -> bool:
    """A folder written by ``Dataset.save_to_disk`` (state.json) or ``DatasetDict.save_to_disk`` (dataset_dict.json)."""
    return any(os.path.isfile(os.path.join(path, marker)) for marker in ("state.json", "dataset_dict.json"))


def _load(source: Source):  # -> datasets.Dataset | IterableDataset
    import datasets  # lazy: importing datasets costs seconds and only hf: sources need it

    if source.data is not None:
        return source.data
    name, config, split = parse_hf_uri(source.uri)
    try:
        if _saved_to_disk(name):
            return datasets.load_from_disk(name) if split is None else datasets.load_from_disk(name)[split]
        return datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # datasets raises many types (ConnectionError, FileNotFoundError, ValueError...)
        offline = " (HF_DATASETS_OFFLINE is set)" if os.environ.get("HF_DATASETS_OFFLINE") in ("1", "true") else ""
        raise InputError(f"{source.uri}: cannot load the Hugging Face dataset{offline}: {one_line(exc)}; "
                         "check the name, config and split, and the network or cache") from None


def _pick_split(ds):  # a DatasetDict -> its train split (else the first)
    import datasets

    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return ds["train" if "train" in ds else sorted(ds)[0]]
    return ds


def _tables(ds, batch_rows: int) -> Iterator[pa.Table]:
    if hasattr(ds, "with_format") and hasattr(ds, "data"):  # map-style Dataset: Arrow-backed, memory-mapped
        yield from ds.with_format("arrow").iter(batch_size=batch_rows)
        return
    for rows in ds.iter(batch_size=batch_rows):  # IterableDataset: dicts of columns
        yield pa.Table.from_pydict(rows)


def read(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
    """The rows of a Hugging Face dataset, streamed in Arrow batches."""
    ds = _pick_split(_load(source))
    columns = list(ds.column_names or [])  # an IterableDataset may not know its columns yet
    if columns and not has_record_columns(columns) and opts.fields.text not in columns:
        raise InputError(f"{source.uri}: no column {opts.fields.text!r} (columns: {', '.join(columns)}); "
                         "choose one with --text-field")
    row = 1
    for table in _tables(ds, opts.batch_rows):
        if has_record_columns(table.column_names):
            table = records_chunk_table(table, row)
        else:
            table = select_fields(table, opts.fields.wanted())
            table = table.append_column(POS, pa.array(np.arange(row, row + table.num_rows), pa.int64()))
        row += table.num_rows
        yield RawChunk(source.uri, "row", table, [], source.id_prefix, 0)
