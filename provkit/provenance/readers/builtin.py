"""The corpora shipped with provkit (``builtin:NAME``), see :mod:`provkit.provenance.builtin`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from provkit.provenance.builtin import iter_builtin
from provkit.provenance.readers.base import POS, SOURCE, RawChunk, ReadOptions, Source

PREFIX = "builtin:"
SUFFIXES: tuple[str, ...] = ()
UNIT = "row"

def read(source: Source, opts: ReadOptions) -> Iterator[RawChunk]:
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
