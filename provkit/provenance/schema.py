"""The provkit record schema: one Arrow schema, defined here and nowhere else.

Aligned with W3C PROV: a record is an *entity*; the ingest / generation /
filter run that wrote it is an *activity*; the human source or generating
model is an *agent*.  Filter steps never rewrite these columns; they append
annotation columns (``dup_cluster``, ``detector_score``, ``sample_weight``...).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import numpy as np
import pyarrow as pa

from provkit.core.hashing import sha256_hex, string_buffers
from provkit.core.text import in_normal_form, normalize_text

SCHEMA_VERSION = "1.0"


class Origin(str, Enum):
    """Who wrote a record."""

    HUMAN = "human"
    MODEL = "model"
    MIXED = "mixed"
    UNKNOWN = "unknown"


class Evidence(str, Enum):
    """Why we believe the origin tag."""

    DECLARED = "declared"
    DETECTOR = "detector"
    WATERMARK = "watermark"
    LINEAGE = "lineage"


ORIGINS: tuple[str, ...] = tuple(o.value for o in Origin)
EVIDENCES: tuple[str, ...] = tuple(e.value for e in Evidence)

_DICT_STR = pa.dictionary(pa.int32(), pa.string())
_TS = pa.timestamp("us", tz="UTC")

GENERATOR_TYPE = pa.struct(
    [
        pa.field("model", pa.string()),
        pa.field("revision", pa.string()),
        pa.field("generation", pa.int32()),
        pa.field("decoding", pa.string()),  # JSON of the decoding parameters
        pa.field("seed", pa.int64()),
        pa.field("prompt_id", pa.string()),
    ]
)

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("origin", _DICT_STR, nullable=False),
        pa.field("origin_evidence", _DICT_STR),
        pa.field("origin_confidence", pa.float32()),
        pa.field("generator", GENERATOR_TYPE),
        pa.field("parent_ids", pa.list_(pa.string())),
        pa.field("activity_id", pa.string()),
        pa.field("source_uri", pa.string()),
        pa.field("dataset", pa.string()),
        pa.field("license", pa.string()),
        pa.field("created_at", _TS),
        pa.field("ingested_at", _TS),
    ]
)

COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
PLAIN_COLUMNS: tuple[str, ...] = ("id", "content_hash", "text")
"""Columns whose values are (nearly) all distinct: stored without Parquet dictionary encoding."""


def content_hash(text: str) -> str:
    """sha256 hex digest of :func:`normalize_text` (UTF-8)."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def content_hashes(texts: Sequence[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`content_hash` of every text, as an Arrow string array (the same digests, in bulk).

    A text already in normal form (:func:`provkit.core.text.in_normal_form`:
    ASCII, no ``\\r``, no outer whitespace - one compiled pass over the Arrow
    buffer) is hashed straight from the buffer
    (:func:`provkit.core.hashing.sha256_hex`, no Python object per row); only
    the others go through :func:`normalize_text`.
    """
    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), pa.large_string())
    offsets, data = string_buffers(arr)
    n = len(offsets) - 1
    plain = in_normal_form(offsets, data)
    hexed = np.empty((n, 64), dtype=np.uint8)
    sha256_hex(offsets, data, np.flatnonzero(plain), hexed)
    others = np.flatnonzero(~plain)
    if len(others):
        for i, text in zip(others.tolist(), arr.take(pa.array(others)).to_pylist()):
            hexed[i] = np.frombuffer(content_hash(text or "").encode(), dtype=np.uint8)
    hex_offsets = np.arange(0, 64 * n + 1, 64, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(hex_offsets), pa.py_buffer(hexed))


@dataclass(frozen=True)
class Generator:
    """Who generated a model record, and how (the ``generator`` struct)."""

    model: str
    generation: int = 0
    revision: str | None = None
    decoding: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    prompt_id: str | None = None

    def to_row(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "revision": self.revision,
            "generation": int(self.generation),
            "decoding": json.dumps(self.decoding, sort_keys=True),
            "seed": self.seed,
            "prompt_id": self.prompt_id,
        }


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_batch(
    texts: Sequence[str],
    *,
    ids: Sequence[str],
    origin: str | Sequence[str] = Origin.HUMAN.value,
    evidence: str | Sequence[str | None] | None = Evidence.DECLARED.value,
    confidence: float | Sequence[float | None] | None = 1.0,
    generators: Sequence[Generator | None] | None = None,
    parent_ids: Sequence[Sequence[str]] | None = None,
    activity_id: str | None = None,
    source_uri: str | Sequence[str | None] | None = None,
    dataset: str | None = None,
    license: str | None = None,
    created_at: datetime | None = None,
    ingested_at: datetime | None = None,
    constants: ConstantColumns | None = None,
) -> pa.RecordBatch:
    """Build a :data:`SCHEMA` record batch from Python values.

    Scalars are broadcast to every row (as slices of ``constants``' columns
    when given: a stream of batches builds each once); Arrow arrays are taken
    as they are (no round trip through Python).  ``content_hash`` is computed here, so no
    caller can get it wrong.
    """
    n = len(texts)

    def col(value: Any) -> Any:
        if value is None or isinstance(value, (str, float, int, datetime)):
            return _Repeat(value, n)
        if isinstance(value, (pa.Array, pa.ChunkedArray)):
            if len(value) != n:
                raise ValueError(f"column has {len(value)} values for {n} texts")
            return value
        values = list(value)
        if len(values) != n:
            raise ValueError(f"column has {len(values)} values for {n} texts")
        return values

    now = ingested_at or utcnow()
    origins = col(origin)
    distinct = origins.unique().to_pylist() if isinstance(origins, (pa.Array, pa.ChunkedArray)) else \
        [origins.value] if isinstance(origins, _Repeat) else origins
    bad = sorted({o for o in distinct if o not in ORIGINS}, key=str)
    if bad:
        raise ValueError(f"unknown origin {bad[0]!r}; expected one of {', '.join(ORIGINS)}")
    gens: Any = _Repeat(None, n) if generators is None else [g.to_row() if g is not None else None for g in generators]
    if parent_ids is None:
        parents: Any = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string()))
    elif isinstance(parent_ids, (pa.Array, pa.ChunkedArray)):
        parents = parent_ids
    else:
        parents = [list(p) for p in parent_ids]
    arrays = {
        "id": col(ids),
        "content_hash": content_hashes(texts),
        "text": col(texts),
        "origin": origins,
        "origin_evidence": col(evidence),
        "origin_confidence": col(confidence),
        "generator": gens,
        "parent_ids": parents,
        "activity_id": col(activity_id),
        "source_uri": col(source_uri),
        "dataset": col(dataset),
        "license": col(license),
        "created_at": col(created_at),
        "ingested_at": col(now),
    }
    return pa.RecordBatch.from_arrays([_as_array(arrays[f.name], f.type, constants) for f in SCHEMA], schema=SCHEMA)


@dataclass(frozen=True)
class _Repeat:
    """One value for every row of a batch (built in one Arrow call, no Python list)."""

    value: Any
    n: int

    def array(self, type_: pa.DataType) -> pa.Array:
        if self.value is None:
            return pa.nulls(self.n, type_)
        if pa.types.is_dictionary(type_):  # one dictionary entry, all indices 0: no per-row hashing
            indices = pa.array(np.zeros(self.n, dtype=type_.index_type.to_pandas_dtype()), type_.index_type)
            return pa.DictionaryArray.from_arrays(indices, pa.array([self.value], type_.value_type))
        return pa.repeat(pa.scalar(self.value, type_), self.n)


def constant_column(value: Any, type_: pa.DataType, n: int) -> pa.Array:
    """``value`` in each of ``n`` rows, as ``type_`` (null where ``value`` is None; a dictionary type gets one
    dictionary entry), built in one Arrow call."""
    return _Repeat(value, n).array(type_)


class ConstantColumns:
    """Columns with one value in every row (activity id, source uri, ...), each built once at the longest length
    asked for and handed out as zero-copy slices: a stream of batches does not rebuild them per batch."""

    def __init__(self) -> None:
        self._built: dict[tuple[Any, str], pa.Array] = {}

    def column(self, value: Any, type_: pa.DataType, n: int) -> pa.Array:
        key = (value, str(type_))
        built = self._built.get(key)
        if built is None or len(built) < n:
            built = self._built[key] = constant_column(value, type_, n)
        return built.slice(0, n)


def _as_array(values: Any, type_: pa.DataType, constants: ConstantColumns | None = None) -> pa.Array:
    if isinstance(values, _Repeat):
        return values.array(type_) if constants is None else constants.column(values.value, type_, values.n)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values if values.type == type_ else values.cast(type_)
    return pa.array(values, type=type_)


def conform(batch: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """Cast a batch to the record schema, keeping extra annotation columns after it.

    Raises ``ValueError`` naming the first missing schema column.
    """
    names = batch.schema.names
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ValueError(f"not a provkit record batch: missing column {missing[0]!r}")
    extra = [n for n in names if n not in COLUMNS]
    arrays = [batch.column(f.name).cast(f.type) for f in SCHEMA] + [batch.column(n) for n in extra]
    fields = list(SCHEMA) + [batch.schema.field(n) for n in extra]
    schema = pa.schema(fields)
    if isinstance(batch, pa.Table):
        return pa.Table.from_arrays(arrays, schema=schema)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def check_schema(schema: pa.Schema) -> list[str]:
    """Problems that make ``schema`` not a provkit record schema (empty when it is one)."""
    problems = []
    for f in SCHEMA:
        if f.name not in schema.names:
            problems.append(f"missing column {f.name!r}")
            continue
        got = schema.field(f.name).type
        if got != f.type and not (pa.types.is_dictionary(f.type) and got in (pa.string(), pa.large_string())):
            problems.append(f"column {f.name!r} has type {got}, expected {f.type}")
    return problems
