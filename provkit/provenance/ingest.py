"""Ingest: sources -> provenance-tagged records in a provkit dataset.

For each raw chunk a reader yields, the ingest checks the fields in bulk
(Arrow compute over the whole chunk: missing / empty / wrong-typed text, too
large records, unknown origins, missing or duplicate ids), tags the good rows
with the record schema (:func:`provkit.provenance.make_batch`) and writes them;
bad records either stop the run (``on_error="fail"``: one line naming file,
line/row and the problem, nothing committed) or go to ``DS/quarantine/`` with
their reason (``on_error="skip"``).  Invariant, per run and per source:
``read = written + quarantined``.

Duplicate ids are found exactly with :class:`provkit.provenance.idindex.IdIndex`
in bounded memory: at most ``id_budget`` ids (default 2¹⁹) are held in memory,
``8 + 8 + len(id)`` bytes each (stable 64-bit hash, offset, UTF-8 bytes: about
11 MiB for 7-byte ids, transiently about three times that while a full budget
is sorted and spilled) - the same at 10 M records as at 100 M.  Beyond the
budget the ids spill to sorted runs on disk (``16 + len(id)`` bytes per
record) beside the output's staging directory, removed when the run ends,
committed or not; a hash match is confirmed by comparing the id bytes, so a
hash collision is never reported as a duplicate.  Everything else is per
chunk (``block_bytes``; at most six chunks in flight: one being read, two
read and waiting, one being checked, one checked and waiting, one being
finished; plus two row groups in the writer).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.core.atomic import dumps_json
from provkit.errors import ConfigError, InputError
from provkit.provenance.annotate import RecordAnnotator
from provkit.provenance.carry import carry_columns
from provkit.provenance.idindex import DEFAULT_BUDGET, IdIndex
from provkit.provenance.manifest import MANIFEST, Activity
from provkit.provenance.reader import Dataset
from provkit.provenance.readers import (
    POS,
    PROV,
    RAW_KEEP,
    SOURCE,
    SPLITS,
    BadRecord,
    FieldMap,
    RawChunk,
    ReadOptions,
    Source,
    read_source,
    scan_sources,
    spec_name,
    type_reason,
)
from provkit.provenance.schema import (
    ORIGINS,
    ConstantColumns,
    Evidence,
    Generator,
    Origin,
    content_hashes,
    make_batch,
    utcnow,
)
from provkit.provenance.writer import DatasetWriter, encoder_threads

ON_ERROR = ("fail", "skip")
T = TypeVar("T")

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_uri", pa.string()),
        pa.field("line", pa.int64()),  # the line, row or record number its unit names; null for a whole file
        pa.field("unit", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("category", pa.string()),
        pa.field("raw", pa.large_string()),  # the first RAW_KEEP bytes, invalid UTF-8 backslash-escaped
        pa.field("raw_bytes", pa.int64()),
        pa.field("activity_id", pa.string()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)

_CATEGORIES = (
    ("invalid UTF-8", "invalid UTF-8"), ("malformed", "malformed"), ("a JSON ", "malformed"),
    ("record too large", "record too large"), ("field ", "wrong type"), ("missing", "missing field"),
    ("empty text", "empty text"), ("unknown origin", "unknown origin"), ("duplicate id", "duplicate id"),
    ("dangling parent", "dangling parent id"), ("JSON nested", "too deeply nested"),
    ("lone surrogate", "invalid UTF-8"), ("unterminated quote", "malformed"),
)


def reason_category(reason: str) -> str:
    """The short category of a problem, used for the summary's counts."""
    for prefix, category in _CATEGORIES:
        if reason.startswith(prefix):
            return category
    return "unreadable"


@dataclass(frozen=True)
class IngestConfig:
    """Everything ``prov ingest`` takes besides sources and output."""

    origin: str = Origin.HUMAN.value
    text_field: str = "text"
    id_field: str | None = None
    origin_field: str | None = None
    parent_field: str | None = None
    generator_model: str | None = None
    generation: int | None = None
    dataset: str | None = None
    license: str | None = None
    license_field: str | None = None  # a per-record licence field (a record without one gets ``license``)
    keep_fields: tuple[str, ...] = ()  # source fields kept in the record's ``metadata`` (JSON object)
    split: str = "file"
    on_error: str = "fail"
    max_record_bytes: int = 10 << 20
    block_bytes: int = 16 << 20
    parent_datasets: tuple[str, ...] = ()  # datasets the --parent-field ids live in (for lineage)

    def check(self) -> None:
        if self.origin not in ORIGINS:
            raise ConfigError(f"--origin {self.origin!r} is not one of {', '.join(ORIGINS)}")
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"--on-error {self.on_error!r} is not one of {', '.join(ON_ERROR)}")
        if self.split not in SPLITS:
            raise ConfigError(f"--split {self.split!r} is not one of {', '.join(SPLITS)}")
        if self.generation is not None and self.generation < 0:
            raise ConfigError(f"--generation {self.generation} must be >= 0")
        if self.generation is not None and not self.generator_model:
            raise ConfigError("--generation needs --generator-model (the model that wrote generation N)")
        if self.max_record_bytes <= 0:
            raise ConfigError(f"--max-record-bytes {self.max_record_bytes} must be > 0")
        for parent in self.parent_datasets:
            Dataset.open(parent)  # a clear error now rather than a broken lineage later

    def read_options(self) -> ReadOptions:
        fields = FieldMap(self.text_field, self.id_field, self.origin_field, self.parent_field, self.license_field,
                          tuple(self.keep_fields))
        return ReadOptions(fields, self.split, self.max_record_bytes, max(self.block_bytes, 1 << 16))


@dataclass
class IngestSummary:
    """What an ingest did.  ``read == written + quarantined`` always."""

    out: str
    activity_id: str
    mode: str  # "created" or "appended"
    sources: list[str]
    read: int = 0
    written: int = 0
    quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_origin: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # files a directory scan or glob passed over (never read), each named below
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    dangling_parents: int = 0  # parent ids naming no record (quarantined, or the run stopped)
    bytes_read: int = 0
    seconds: float = 0.0
    annotations: dict[str, Any] = field(default_factory=dict)  # what each annotator did (e.g. watermark tags)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def value_counts(col: pa.Array) -> Counter[str]:
    """How often each non-null value occurs in a string column; a dictionary column is counted by its indices (no
    per-row string hashing)."""
    if not pa.types.is_dictionary(col.type):
        return Counter({c["values"]: c["counts"] for c in pc.value_counts(col.drop_null()).to_pylist()})
    counts = np.bincount(col.indices.drop_null().to_numpy(zero_copy_only=False).astype(np.int64, copy=False),
                         minlength=len(col.dictionary))
    out: Counter[str] = Counter()
    for value, count in zip(col.dictionary.to_pylist(), counts.tolist()):
        if count:
            out[value] += count
    return out


# ------------------------------------------------------------------ checks
def _is_text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


class _Problems:
    """The first problem of each row of a chunk: ``code[i]`` indexes ``reasons`` (-1 where the row is fine)."""

    def __init__(self, n: int):
        self.code = np.full(n, -1, dtype=np.int32)
        self.reasons: list[str] = []

    def flag(self, mask: Any, reason: str | Callable[[int], str]) -> None:
        """Give the rows of ``mask`` that have no problem yet this one (a callable is asked per row)."""
        rows = np.flatnonzero(np.asarray(mask, dtype=bool) & (self.code < 0))
        if not len(rows):
            return
        if not self.code.flags.writeable:  # shipped back from another process (Ray hands out read-only arrays)
            self.code = self.code.copy()
        if not callable(reason):
            self.code[rows] = len(self.reasons)
            self.reasons.append(reason)
            return
        for i in rows.tolist():
            self.code[i] = len(self.reasons)
            self.reasons.append(reason(i))

    def reason(self, i: int) -> str:
        return self.reasons[self.code[i]]

    @property
    def bad(self) -> np.ndarray:
        return self.code >= 0


def _mask(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def check_text(table: pa.Table, cfg: IngestConfig, problems: _Problems) -> None:
    text = table.column("text")
    name = cfg.text_field
    problems.flag(_mask(pc.is_null(text)), f"missing text field {name!r}")
    if not _is_text_type(text.type):
        problems.flag(np.ones(len(text), bool), type_reason(name, str(text.type)))
        return
    problems.flag(_mask(pc.greater(pc.binary_length(text), cfg.max_record_bytes)),
                  lambda i: f"record too large (text of {len(text[i].as_py().encode())} bytes > --max-record-bytes "
                            f"{cfg.max_record_bytes})")
    # only whitespace (no copy of the text, unlike trimming it first)
    problems.flag(_mask(pc.or_(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))), "empty text")


def origins_of(table: pa.Table, cfg: IngestConfig, problems: _Problems) -> pa.Array:
    """Per-row origin: the origin field where given (lower-cased; null is ``unknown``), else ``--origin``."""
    n = table.num_rows
    if "origin" not in table.column_names:
        return pa.repeat(pa.scalar(cfg.origin, pa.string()), n)
    col = table.column("origin")
    if not _is_text_type(col.type) and not pa.types.is_null(col.type):
        problems.flag(_mask(pc.is_valid(col)), type_reason(cfg.origin_field or "origin", str(col.type)))
        return pa.repeat(pa.scalar(cfg.origin, pa.string()), n)
    col = pc.utf8_lower(pc.utf8_trim_whitespace(col.cast(pa.string()))).combine_chunks()
    col = pc.fill_null(col, Origin.UNKNOWN.value)  # a missing origin is unknown, never the --origin default
    unknown = _mask(pc.invert(pc.is_in(col, value_set=pa.array(ORIGINS))))
    problems.flag(unknown, lambda i: f"unknown origin {col[i].as_py()!r} in field {cfg.origin_field!r} "
                                     f"(expected one of {', '.join(ORIGINS)})")
    return pc.if_else(pa.array(unknown), cfg.origin, col)


def ids_of(table: pa.Table, chunk: RawChunk, cfg: IngestConfig, problems: _Problems) -> pa.Array:
    """Per-row ids: given by the source (``--id-field`` / the corpus), else ``<file>:<line or row>``."""
    pos = table.column(POS).combine_chunks()
    if "id" not in table.column_names:
        if chunk.unit == "file":
            return pa.array([chunk.id_prefix] * table.num_rows, pa.string())
        return pc.binary_join_element_wise(chunk.id_prefix, pos.cast(pa.string()), ":")
    col = table.column("id").combine_chunks()
    name = cfg.id_field or "id"
    if not (_is_text_type(col.type) or pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
        problems.flag(_mask(pc.is_valid(col)), type_reason(name, str(col.type), "a string or integer"))
        return pa.array([""] * table.num_rows, pa.string())
    if pa.types.is_integer(col.type) and not col.null_count:
        return col.cast(pa.string())  # integers are never empty
    col = col.cast(pa.string())
    problems.flag(_mask(pc.or_(pc.is_null(col), pc.equal(pc.utf8_length(pc.fill_null(col, "")), 0))),
                  f"missing id field {name!r}")
    return pc.fill_null(col, "")


def parents_of(table: pa.Table, cfg: IngestConfig, problems: _Problems) -> pa.Array:
    """Per-row parent ids: a string field becomes a one-element list; null becomes []."""
    n = table.num_rows
    if "parent" not in table.column_names:
        return _empty_lists(n)
    col = table.column("parent").combine_chunks()
    if _is_text_type(col.type) or pa.types.is_null(col.type):
        col = col.cast(pa.string())
        given = _mask(pc.greater(pc.binary_length(col), 0))  # null and "" give no parent
        offsets = np.concatenate(([0], np.cumsum(given))).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), col.filter(pa.array(given)).cast(pa.string()))
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        try:
            return pc.fill_null(col.cast(pa.list_(pa.string())), pa.scalar([], pa.list_(pa.string())))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    problems.flag(_mask(pc.is_valid(col)), type_reason(cfg.parent_field or "parent", str(col.type),
                                                        "a string or a list of strings"))
    return _empty_lists(n)


def _empty_lists(n: int) -> pa.Array:
    """``n`` empty lists of strings."""
    return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string()))


def _bad_rows(table: pa.Table, chunk: RawChunk, problems: _Problems) -> list[BadRecord]:
    out: list[BadRecord] = []
    rows = np.flatnonzero(problems.bad)
    if not len(rows):
        return out
    pos = table.column(POS).to_pylist()
    for i in rows:
        row = {k: v for k, v in table.slice(int(i), 1).to_pylist()[0].items() if k not in (POS, SOURCE)}
        raw = json.dumps(row, default=str, ensure_ascii=False)
        out.append(BadRecord(chunk.source, pos[i], chunk.unit, problems.reason(int(i)),
                             raw[:RAW_KEEP], len(raw.encode("utf-8", "surrogateescape"))))
    return out


# ------------------------------------------------------------------ the run
@dataclass
class _Tagged:
    batch: pa.RecordBatch | None
    bad: list[BadRecord]


@dataclass
class _Checked:
    """A chunk after :meth:`Ingest.check`: each row's first problem, ids, records of the rows without one."""

    problems: _Problems
    ids: pa.Array
    records: pa.RecordBatch | None


class Ingest:
    """One ingest run into ``out`` (created, or appended to when it holds a dataset)."""

    def __init__(self, sources: list[str], out: str | Path, cfg: IngestConfig,
                 annotator: RecordAnnotator | None = None, *, id_budget: int = DEFAULT_BUDGET):
        cfg.check()
        self.cfg = cfg
        self.specs = [spec_name(s, i) for i, s in enumerate(sources)] if len(sources) > 1 else \
            [spec_name(s) for s in sources]
        self.resolved = scan_sources(list(sources))
        self.sources: list[Source] = self.resolved.sources
        self.out = Path(out)
        self._refuse_out_inside_inputs()
        self.id_budget = id_budget
        self.ids = IdIndex(budget=id_budget)
        self.parent_index = IdIndex(budget=id_budget)  # ids of the --parent-dataset records
        # a ``metadata`` column in every batch when any source can bring one (one schema per run)
        self.metadata = bool(cfg.keep_fields) or any(s.kind in ("provkit", "hf") for s in self.sources)
        self.activity = Activity("ingest", {"sources": self.specs, **asdict(cfg)}, used=self.specs)
        self.mode = "appended" if (self.out / MANIFEST).exists() else "created"
        self.summary = IngestSummary(str(self.out), self.activity.id, self.mode, self.specs,
                                     skipped=len(self.resolved.skipped),
                                     skipped_files=[{"path": k.path, "reason": k.reason} for k in self.resolved.skipped])
        self.reasons: Counter[str] = Counter()
        self.origins: Counter[str] = Counter()
        self.annotator = annotator  # may re-tag origins of the checked records (see provenance.annotate)
        self.constants = ConstantColumns()  # a pure cache: the same columns whichever process or thread asks

    def _refuse_out_inside_inputs(self) -> None:
        """An output inside an input directory would be read back by the next run; an input inside the output
        would be replaced by it."""
        out = self.out.resolve()
        for root in self.resolved.roots:
            r = Path(root).resolve()
            if out == r or out.is_relative_to(r):
                raise InputError(f"--out {self.out} is inside the input directory {root}; the next run would "
                                 "ingest the dataset itself - choose an --out outside it")
        for source in self.sources:
            if source.kind in ("hf", "builtin"):
                continue
            if Path(source.uri).resolve().is_relative_to(out):
                raise InputError(f"{source.uri}: the input is inside --out {self.out}; ingest a dataset's records "
                                 "into another dataset")

    def total_bytes(self) -> int | None:
        sizes = [s.size() for s in self.sources]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]

    def run(self, progress: Callable[[int, int], None] | None = None) -> IngestSummary:
        """Read every source, write the dataset, commit; ``progress(records, bytes)`` after each chunk."""
        start = time.perf_counter()
        if self.annotator is not None:
            self.activity.params[self.annotator.name] = self.annotator.params()
        parents = [*self.cfg.parent_datasets, *(s.uri for s in self.sources if s.kind == "provkit")]
        # "append" creates the dataset when there is none; which it was is known only under the writer's lock
        writer = DatasetWriter(self.out, self.activity, parents=parents, mode="append", encoders=encoder_threads())
        self.mode = self.summary.mode = "appended" if writer.existing is not None else "created"
        # spilled id runs live beside the staging directory (same prefix: a later writer sweeps what a kill left)
        self.ids = IdIndex(budget=self.id_budget, spill_dir=f"{writer.workdir}-ids")
        self.parent_index = IdIndex(budget=self.id_budget, spill_dir=f"{writer.workdir}-parent-ids")
        with writer, self.ids, self.parent_index:
            if writer.existing is not None:
                self._remember_existing_ids(writer.existing)
            for parent in self.cfg.parent_datasets:
                for batch in Dataset.open(parent).iter_batches("data", columns=["id"], batch_size=65536):
                    self.parent_index.add(batch.column(0))
            for chunk, checked in self.checked_chunks():
                tagged = self.finish(chunk, checked)
                if self.annotator is not None and tagged.batch is not None and tagged.batch.num_rows:
                    tagged = _Tagged(self.annotator.annotate(tagged.batch), tagged.bad)
                self._account(chunk, tagged)
                if tagged.batch is not None and tagged.batch.num_rows:
                    writer.write(tagged.batch)
                if tagged.bad:
                    writer.write(quarantine_table(tagged.bad, self.activity.id), kind="quarantine")
                if progress:
                    progress(chunk.records, chunk.nbytes)
            self.summary.seconds = round(time.perf_counter() - start, 3)
            if self.annotator is not None:
                self.summary.annotations[self.annotator.name] = self.annotator.summary()
            writer.add_file("ingest-summary.json", dumps_json(self._summary_json(), indent=2) + "\n")
        self.summary.seconds = round(time.perf_counter() - start, 3)
        return self.summary

    def _summary_json(self) -> dict[str, Any]:
        return self.summary.to_json()

    def _remember_existing_ids(self, existing: Dataset) -> None:
        for batch in existing.iter_batches("data", columns=["id"], batch_size=65536):
            self.ids.add(batch.column(0))

    def _account(self, chunk: RawChunk, tagged: _Tagged) -> None:
        written = tagged.batch.num_rows if tagged.batch is not None else 0
        self.summary.read += chunk.records
        self.summary.written += written
        self.summary.quarantined += len(tagged.bad)
        self.summary.bytes_read += chunk.nbytes
        self.reasons.update(reason_category(b.reason) for b in tagged.bad)
        if written:
            self.origins.update(value_counts(tagged.batch.column("origin")))
        assert chunk.records == written + len(tagged.bad), "a record was lost"
        self.summary.by_reason = dict(self.reasons.most_common())
        self.summary.by_origin = {str(k): int(v) for k, v in self.origins.most_common()}

    def checked_chunks(self) -> Iterator[tuple[RawChunk, _Checked]]:
        """Every source's chunks in order, each with its :meth:`check` (an engine may compute these elsewhere).

        Two prefetch threads: one reads and parses (NumPy and Arrow only, so it
        never waits for the JIT), one checks and hashes (no run state).  Both
        overlap with the run-state part here (:meth:`finish`: duplicate ids)
        and with the writer's Parquet encoding.  A third thread loads the
        compiled kernels (:func:`load_kernels`, ~0.4 s once per process) from
        the start, while the reader parses its first chunk, rather than in the
        first check after it; one checked chunk waits for :meth:`finish` (a
        deeper queue would only fill up while the writer stalls).
        """
        opts = self.cfg.read_options()
        loading = threading.Thread(target=load_kernels, name="provkit-kernels")
        loading.start()  # the JIT start-up overlaps with the reader's first parse instead of following it
        try:
            for source in self.sources:
                raw = prefetch(read_source(source, opts), depth=2)
                yield from prefetch(self._checks(raw, source), depth=1)
        finally:
            loading.join()  # never left running at exit (a run that stops at once waits for it, < 1 s)

    def _checks(self, raw: Iterator[RawChunk], source: Source) -> Iterator[tuple[RawChunk, _Checked]]:
        # iterating ``raw`` starts the reader thread
        for chunk in raw:
            yield chunk, self.check(chunk, source)

    def tag(self, chunk: RawChunk, source: Source) -> _Tagged:
        """Check a chunk's rows and turn the good ones into schema records; fail or collect the bad ones."""
        return self.finish(chunk, self.check(chunk, source))

    def check(self, chunk: RawChunk, source: Source) -> _Checked:
        """The per-chunk part of :meth:`tag` (no run state: any process can run it): field checks, records."""
        table = _with_passthrough_fields(chunk.table)
        problems = _Problems(table.num_rows)
        check_text(table, self.cfg, problems)
        origin = origins_of(table, self.cfg, problems)
        ids = ids_of(table, chunk, self.cfg, problems)
        parents = parents_of(table, self.cfg, problems)
        bad = problems.bad
        records = None
        if not bad.any():  # the common case: no copy
            records = self._records(table, ids, origin, parents, source)
        elif not bad.all():
            ok = pa.array(~bad)
            records = self._records(table.filter(ok), pc.filter(ids, ok), pc.filter(origin, ok),
                                    pc.filter(parents, ok), source)
        return _Checked(problems, ids, records)

    def finish(self, chunk: RawChunk, checked: _Checked) -> _Tagged:
        """The run-state part of :meth:`tag`, in source order: dangling parents, duplicate ids, then fail or
        quarantine."""
        problems, ids = checked.problems, checked.ids
        ok = ~problems.bad
        ok_idx = np.flatnonzero(ok)
        ok_ids = pc.filter(ids, pa.array(ok))
        dangling = np.zeros(chunk.table.num_rows, dtype=bool)
        missing: dict[int, str] = {}
        if checked.records is not None:
            for j, parent in self._dangling_parents(checked.records.column("parent_ids"), ok_ids).items():
                dangling[ok_idx[j]] = True
                missing[int(ok_idx[j])] = parent
        problems.flag(dangling, lambda i: f"dangling parent id {missing[i]!r}: no record with this id in this "
                                          "dataset, this run or a --parent-dataset")
        self.summary.dangling_parents += int(dangling.sum())
        dup = np.zeros(chunk.table.num_rows, dtype=bool)
        live = ~dangling[ok_idx]
        dup[ok_idx[live]] = self.ids.duplicates(pc.filter(ok_ids, pa.array(live)) if not live.all() else ok_ids)
        dup_ids = ids.to_pylist() if dup.any() else []
        problems.flag(dup, lambda i: f"duplicate id {dup_ids[i]!r} (already in this dataset or this run)")
        bad = sorted(chunk.bad + _bad_rows(chunk.table, chunk, problems), key=lambda b: (b.pos is not None, b.pos or 0))
        if bad and self.cfg.on_error == "fail":
            raise InputError(fail_message(bad[0]))
        if problems.bad.all() or checked.records is None:
            return _Tagged(None, bad)
        drop = (dup | dangling)[ok_idx]
        return _Tagged(checked.records.filter(pa.array(~drop)) if drop.any() else checked.records, bad)

    def _dangling_parents(self, parents: pa.Array, chunk_ids: pa.Array) -> dict[int, str]:
        """Row -> its first parent id that names no known record (this chunk, this run, the dataset, parents)."""
        if isinstance(parents, pa.ChunkedArray):
            parents = parents.combine_chunks()
        flat = pc.list_flatten(parents)
        if not len(flat):
            return {}
        rows = pc.list_parent_indices(parents).to_numpy()
        known = _mask(pc.is_in(flat, value_set=chunk_ids.cast(flat.type)))
        for index in (self.ids, self.parent_index):
            unknown = np.flatnonzero(~known)
            if len(unknown):
                known[unknown] = index.contains(flat.take(pa.array(unknown)))
        out: dict[int, str] = {}
        for k in np.flatnonzero(~known):
            out.setdefault(int(rows[k]), flat[int(k)].as_py())
        return out

    def _records(self, table: pa.Table, ids: pa.Array, origin: pa.Array, parents: pa.Array,
                 source: Source) -> pa.RecordBatch:
        cfg = self.cfg
        model = Origin.MODEL.value
        gen = Generator(cfg.generator_model, cfg.generation or 0) if cfg.generator_model else None
        generators: list[Generator | None] | None = None
        origins: Any
        if "origin" not in table.column_names:  # one origin for every row: scalars, broadcast by make_batch
            known = cfg.origin != Origin.UNKNOWN.value
            origins, declared, confidence = cfg.origin, Evidence.DECLARED.value if known else None, \
                1.0 if known else None
            if gen is not None and cfg.origin == model:
                generators = [gen] * table.num_rows
        else:
            unknown = pc.equal(origin, Origin.UNKNOWN.value)
            origins = origin
            declared = pc.if_else(unknown, pa.scalar(None, pa.string()), Evidence.DECLARED.value)
            confidence = pc.if_else(unknown, pa.scalar(None, pa.float32()), pa.scalar(1.0, pa.float32()))
            if gen is not None:
                generators = [gen if o == model else None for o in origin.to_pylist()]
        uri = table.column(SOURCE).combine_chunks() if SOURCE in table.column_names else source_uri(source)
        batch = make_batch(
            table.column("text").combine_chunks(), ids=ids, origin=origins, evidence=declared, confidence=confidence,
            generators=generators, parent_ids=parents, activity_id=self.activity.id, source_uri=uri,
            dataset=cfg.dataset, license=cfg.license, ingested_at=self.activity.started_at, constants=self.constants,
        )
        return carry_columns(_keep_input_provenance(batch, table), table, metadata=self.metadata)


_KEPT = ("origin_evidence", "origin_confidence", "generator", "source_uri", "dataset", "license", "created_at")


def _with_passthrough_fields(table: pa.Table) -> pa.Table:
    """A provkit dataset's part read as input: its id, origin and parent_ids feed the record as they are
    (unless ``--id-field`` / ``--origin-field`` / ``--parent-field`` name other columns)."""
    if PROV + "origin" not in table.column_names:
        return table
    for key, column in (("id", "id"), ("origin", "origin"), ("parent", "parent_ids")):
        if key not in table.column_names and PROV + column in table.column_names:
            col = table.column(PROV + column)
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            table = table.append_column(key, col)
    return table


def _keep_input_provenance(batch: pa.RecordBatch, table: pa.Table) -> pa.RecordBatch:
    """The provenance columns a provkit input carried (evidence, confidence, generator, ...), kept as they are."""
    if PROV + "origin" not in table.column_names:
        return batch
    for name in _KEPT:
        if PROV + name not in table.column_names:
            continue
        i = batch.schema.get_field_index(name)
        col = table.column(PROV + name).combine_chunks()
        batch = batch.set_column(i, batch.schema.field(i), col.cast(batch.schema.field(i).type))
    return batch


def load_kernels() -> None:
    """Load the compiled kernels of a check and of the duplicate-id index (numba's start-up, once per process),
    by running them on two records; the first real chunk then finds them ready."""
    sample = pa.array(["load", "load"], pa.large_string())
    with contextlib.suppress(Exception):  # a failure here recurs, and is reported, in the check that needs it
        content_hashes(sample)
        ids = IdIndex(budget=1 << 20)
        ids.duplicates(sample)
        ids.duplicates(sample)  # against the first call's run: the sorted-match kernels


def prefetch(chunks: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield from ``chunks`` while a background thread reads up to ``depth`` items ahead.

    Parsing (pyarrow, GIL released) then overlaps with tagging and hashing;
    memory grows by at most ``depth`` chunks.  Exceptions reach the consumer;
    if the consumer stops early, the reader thread stops too.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in chunks:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # handed to the consumer
            q.put(("error", exc))

    thread = threading.Thread(target=produce, name="provkit-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                q.get_nowait()
            thread.join(timeout=0.05)


def source_uri(source: Source) -> str:
    """A file's absolute ``file://`` uri; other sources (hf:, builtin:) as given."""
    if source.kind in ("hf", "builtin"):
        return source.uri
    return Path(os.path.abspath(source.uri)).as_uri()


def fail_message(bad: BadRecord) -> str:
    where = bad.source if bad.pos is None else f"{bad.source}, {bad.unit} {bad.pos}"
    return f"{where}: {bad.reason}; fix it or rerun with --on-error skip to quarantine bad records"


def quarantine_table(bad: list[BadRecord], activity_id: str) -> pa.Table:
    now = utcnow()
    return pa.table(
        {
            "source_uri": [b.source for b in bad],
            "line": [b.pos for b in bad],
            "unit": [b.unit for b in bad],
            "reason": [b.reason for b in bad],
            "category": [reason_category(b.reason) for b in bad],
            "raw": [b.raw for b in bad],
            "raw_bytes": [b.raw_bytes for b in bad],
            "activity_id": [activity_id] * len(bad),
            "ingested_at": [now] * len(bad),
        },
        schema=QUARANTINE_SCHEMA,
    )


def ingest(sources: list[str], out: str | Path, config: IngestConfig | None = None,
           progress: Callable[[int, int], None] | None = None) -> IngestSummary:
    """Ingest ``sources`` into the dataset at ``out`` (see :class:`Ingest`)."""
    return Ingest(sources, out, config or IngestConfig()).run(progress)
