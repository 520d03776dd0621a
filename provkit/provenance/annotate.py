"""Origin annotators: objects that look at records during ingest and may re-tag their origin.

Ingest lives below the language-model layer, so it cannot score watermarks (or run
any model) itself.  Instead :class:`provkit.provenance.Ingest` takes an optional
:class:`RecordAnnotator` built by the caller (``prov ingest --watermark-model M
--watermark-key-file K`` builds :class:`provkit.lm.watermark.WatermarkTagger`).
The annotator sees each batch of schema records after the checks, in source order,
and returns the same rows in the same schema; it may only change the origin columns
(``origin``, ``origin_evidence``, ``origin_confidence``), which :func:`retag` does.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@runtime_checkable
class RecordAnnotator(Protocol):
    """What ingest needs from an annotator.

    ``name`` keys its entry in the ingest activity's params and summary;
    ``params()`` is JSON recorded in the activity (never a secret);
    ``annotate(batch)`` returns ``batch`` (schema records) with some origins re-tagged;
    ``summary()`` is JSON counts for the ingest summary.
    """

    name: str

    def params(self) -> dict[str, Any]: ...

    def annotate(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...

    def summary(self) -> dict[str, Any]: ...


def retag(batch: pa.RecordBatch, mask: np.ndarray, origin: str, evidence: str, confidence: np.ndarray) -> pa.RecordBatch:
    """``batch`` with ``origin``/``origin_evidence``/``origin_confidence`` set where ``mask`` holds.

    Other rows and every other column are unchanged; the column types are those of ``batch``.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return batch
    where = pa.array(mask)
    names = batch.schema.names
    columns = {name: batch.column(name) for name in names}
    for name, value in (("origin", origin), ("origin_evidence", evidence)):
        col = columns[name]
        decoded = col.dictionary_decode() if pa.types.is_dictionary(col.type) else col
        new = pc.if_else(where, pa.scalar(value, pa.string()), decoded.cast(pa.string()))
        columns[name] = new.dictionary_encode().cast(col.type) if pa.types.is_dictionary(col.type) else new.cast(col.type)
    conf = columns["origin_confidence"]
    columns["origin_confidence"] = pc.if_else(where, pa.array(np.asarray(confidence, np.float64)).cast(conf.type), conf)
    return pa.RecordBatch.from_arrays([columns[n] for n in names], schema=batch.schema)
