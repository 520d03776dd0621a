"""Columns a source hands to the new records as they are (provkit datasets, ``--license-field``, ``--keep-fields``).

The ingest builds every record with :func:`provkit.provenance.schema.make_batch`
(fresh id checks, ``content_hash``, the ingest's activity); :func:`carry_columns`
then puts back what the source already knew:

* from a provkit dataset or a ``Dataset.to_hf()`` table: evidence, confidence,
  generator, activity, source uri, dataset, licence, timestamps
  (:data:`provkit.provenance.readers.provkit.CARRIED`) - the provenance is
  kept, not re-declared;
* ``license`` from ``--license-field`` (a record without one keeps ``--license``);
* ``metadata``: the user fields of ``--keep-fields`` as one JSON object per record.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from provkit.provenance.readers.base import METADATA
from provkit.provenance.readers.provkit import CARRIED
from provkit.provenance.schema import SCHEMA


def carry_columns(batch: pa.RecordBatch, table: pa.Table, metadata: bool = False) -> pa.RecordBatch:
    """``batch`` (one row per row of ``table``) with the columns of :data:`CARRIED` that ``table`` has.

    ``metadata``: always add the ``metadata`` column (null where the source has
    none), so that every batch of a run has one schema.
    """
    names = [n for n in CARRIED if n in table.column_names]
    if not names and not metadata:
        return batch
    cols = {n: batch.column(n) for n in batch.schema.names}
    if metadata and METADATA not in names:
        cols[METADATA] = pa.nulls(batch.num_rows, pa.string())
    for name in names:
        value = table.column(name).combine_chunks()
        if name == METADATA:
            cols[name] = value.cast(pa.string())
            continue
        want = SCHEMA.field(name).type
        if pa.types.is_dictionary(want):
            value = value.cast(want.value_type).dictionary_encode().cast(want)
        else:
            value = value.cast(want)
        cols[name] = pc.coalesce(value, cols[name]) if name == "license" else value
    return pa.RecordBatch.from_arrays(list(cols.values()), names=list(cols))
