"""Writing a provkit dataset: Parquet parts, side files, PROV-JSON and the manifest, committed atomically.

See :mod:`provkit.provenance.manifest` for the layout.

Commit protocol (a crash leaves the old dataset or the new one, never half):

* a new dataset is built in a hidden sibling directory and renamed into place;
* an append (or overwrite) builds the new version in a hidden sibling
  directory - the existing files hard-linked in, the new parts, provenance and
  manifest written beside them - and swaps it with the dataset in one
  ``renameat2(RENAME_EXCHANGE)`` (Linux): readers see the old directory or the
  new one.  Where the kernel or file system lacks the exchange, the new parts
  are renamed into the dataset and ``manifest.json`` is replaced last: the
  manifest is then the commit point, parts it does not list are leftovers of an
  interrupted commit, removed by the next writer and reported by :func:`verify`.

Memory is bounded by ``encoders + 1`` row groups per open kind (``row_group_bytes``
each): one filling, up to ``encoders`` being encoded.  A full row group is encoded
and written by a background thread (Parquet encoding and zstd release the GIL), so
the caller prepares the next batches meanwhile; its errors surface at the next
write that waits for it, or at commit.  With one encoder thread (the default)
row groups are appended to a part until it holds ``part_bytes``.  With two (what
an ingest asks for where the process may use two CPUs: :func:`encoder_threads`)
each row group is a part of its own, so two are encoded at once; parts are
numbered in input order, and reading them in order gives the records in the
order they were written.
Dictionary encoding is asked for every column except the record schema's
all-distinct ones (:data:`~provkit.provenance.schema.PLAIN_COLUMNS`:
``id``, ``content_hash``, ``text``), where it would only be tried and dropped;
``content_hash`` is written DELTA_LENGTH_BYTE_ARRAY (:data:`COLUMN_ENCODINGS`);
``text`` and ``content_hash`` carry no min/max statistics (:func:`statistics_columns`).
Each part's sha256 and size are taken from the bytes as they are written
(:class:`_ChecksumFile`), so the commit does not read the parts back.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import signal
import time
import uuid
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from provkit.core.atomic import (
    exchange_paths,
    fsync_dir,
    publish_dir,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
)
from provkit.errors import ConfigError, DatasetError
from provkit.provenance.manifest import (
    FORMAT,
    KINDS,
    MANIFEST,
    PROVENANCE,
    Activity,
    iso,
    seal,
)
from provkit.provenance.reader import Dataset, pending_provenance
from provkit.provenance.schema import PLAIN_COLUMNS, SCHEMA, SCHEMA_VERSION, conform, utcnow

CRASH_ENV = "PROVKIT_TEST_CRASH_AT"
"""Fault-injection hook for the store's tests: the commit kills its own process (SIGKILL) at this point."""


def crash_point(name: str) -> None:
    """``kill -9`` this process when :data:`CRASH_ENV` names ``name`` (tests prove old-or-new under a crash)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _os_error(target: Path, exc: OSError) -> DatasetError:
    """An OS error while writing (disk full, read-only, permission) as one line naming the dataset."""
    where = f" ({exc.filename})" if exc.filename else ""
    return DatasetError(f"{target}: cannot write the dataset: {exc.strerror or exc}{where}; nothing was committed")


COLUMN_ENCODINGS = {"content_hash": "DELTA_LENGTH_BYTE_ARRAY"}
"""Parquet encodings other than the default: a column of 64-byte hex digests stored as one run of lengths (all
64, delta-encoded to almost nothing) and one of bytes, instead of a 4-byte length before every value - measured
smaller and faster to write than PLAIN (a standard Parquet encoding every common reader decodes)."""


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The Parquet leaf paths of ``schema`` to dictionary-encode: all but those of :data:`PLAIN_COLUMNS`."""
    return [path for f in schema if f.name not in PLAIN_COLUMNS for path in _leaf_paths(f.name, f.type)]


def statistics_columns(schema: pa.Schema) -> list[str]:
    """The Parquet leaf paths to keep min/max statistics for: all but ``text`` and ``content_hash`` (the min and
    max of a corpus's texts or of random digests prune nothing, and computing them costs a pass over the bytes)."""
    return [path for f in schema if f.name not in ("text", "content_hash") for path in _leaf_paths(f.name, f.type)]


def _leaf_paths(prefix: str, type_: pa.DataType) -> list[str]:
    """Parquet's dotted column paths under an Arrow field (``a.b`` for structs, ``a.list.element`` for lists)."""
    if pa.types.is_struct(type_):
        return [p for i in range(type_.num_fields) for p in _leaf_paths(f"{prefix}.{type_.field(i).name}",
                                                                          type_.field(i).type)]
    if pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_):
        return _leaf_paths(f"{prefix}.list.element", type_.value_type)
    if pa.types.is_map(type_):
        return [*_leaf_paths(f"{prefix}.key_value.key", type_.key_type),
                *_leaf_paths(f"{prefix}.key_value.value", type_.item_type)]
    return [prefix]


SINK_BUFFER = 8 << 20
"""Bytes Arrow gathers before each write to a part's Python sink (:class:`_ChecksumFile`)."""


@dataclass(frozen=True)
class _Part:
    """A finished part file: its rows, size and sha256 (of the bytes written: no read-back at commit)."""

    path: Path
    rows: int
    bytes: int
    sha256: str


class _ChecksumFile:
    """A new file written through, keeping the sha256 and size of every byte written (the Parquet writer's sink).

    ``hashlib`` updates on blocks over 2 KiB release the GIL, so the checksum
    costs the writer thread, not the caller.  ``close`` fsyncs.
    """

    def __init__(self, path: Path):
        self._f = open(path, "xb")  # noqa: SIM115 - closed by close()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._f.write(view)
        self.sha256.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._f.flush()

    @property
    def closed(self) -> bool:
        return self._f.closed

    def close(self) -> None:
        if self._f.closed:
            return
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
        finally:
            self._f.close()


class _OpenPart:
    """One part file being written: a Parquet writer over a :class:`_ChecksumFile`, row groups appended in order."""

    def __init__(self, directory: Path, schema: pa.Schema, kind: str, activity_id: str):
        self.path = directory / f".tmp-{uuid.uuid4().hex}.parquet"
        metadata = {
            b"provkit.schema_version": SCHEMA_VERSION.encode(),
            b"provkit.activity_id": activity_id.encode(),
            b"provkit.kind": kind.encode(),
        }
        schema = schema.with_metadata({**(schema.metadata or {}), **metadata})
        self.rows = 0
        self._file = _ChecksumFile(self.path)
        # Arrow buffers: the Python sink (it needs the GIL) sees a few large writes, not one per page
        self._sink = pa.output_stream(self._file, buffer_size=SINK_BUFFER)
        self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd",
                                        use_dictionary=dictionary_columns(schema),
                                        write_statistics=statistics_columns(schema),
                                        column_encoding={c: e for c, e in COLUMN_ENCODINGS.items()
                                                         if c in schema.names} or None)

    def write_row_group(self, table: pa.Table) -> None:
        self._writer.write_table(table.replace_schema_metadata(self._writer.schema.metadata),
                                 row_group_size=table.num_rows)
        self.rows += table.num_rows

    def size(self) -> int:
        """Bytes written so far, Arrow's buffered bytes included."""
        return self._sink.tell()

    def close(self) -> _Part:
        """Finish the footer, fsync, and return the part with the size and sha256 of the bytes written (the file
        is removed if that fails)."""
        try:
            self._writer.close()
            self._sink.close()
            self._file.close()  # fsyncs
        except BaseException:
            self.discard()
            raise
        return _Part(self.path, self.rows, self._file.size, self._file.sha256.hexdigest())

    def discard(self) -> None:
        for closing in (self._writer, self._sink, self._file):
            with contextlib.suppress(Exception):
                closing.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def encoder_threads() -> int:
    """Row groups to encode at once where throughput matters (an ingest): two where the process may run on two
    CPUs or more, else one.  Each extra thread holds one more row group in memory."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return 2 if cpus >= 2 else 1


class _PartWriter:
    """Writes one kind's parts: batches are buffered up to a row group's worth of bytes (``row_group_bytes``),
    and each full row group is encoded and written by one of ``encoders`` background threads (Parquet encoding
    and zstd release the GIL), so the caller prepares the next batches meanwhile.

    * ``encoders == 1``: row groups are appended in order to the open part until it holds ``part_bytes``.
    * ``encoders > 1``: each row group is a part of its own, written whole by a free thread: consecutive row
      groups can be encoded at once only into separate files.  Parts keep the input order (part ``k`` holds the
      rows after those of part ``k - 1``; :meth:`finish` lists them in that order), so reading the parts in
      order gives the rows in the order they were written.

    At most ``encoders`` row groups are being encoded while one fills.  An error in a background thread (disk
    full, Arrow) is raised at the next :meth:`write` that has to wait for that thread, or at :meth:`finish`.
    """

    def __init__(self, directory: Path, kind: str, activity_id: str, row_group_bytes: int, part_bytes: int,
                 encoders: int):
        if encoders < 1:
            raise ValueError(f"encoders must be at least 1, got {encoders}")
        self.directory = directory
        self.kind = kind
        self.activity_id = activity_id
        self.row_group_bytes = row_group_bytes
        self.part_bytes = part_bytes
        self.encoders = encoders
        self.schema: pa.Schema | None = None
        self.buffer: list[pa.RecordBatch] = []
        self.buffer_bytes = 0
        self.written: list[_Part] = []
        self._open: _OpenPart | None = None  # encoders == 1: the part row groups are appended to
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: deque[Future[_Part | None]] = deque()  # in submission order
        self.handed_rows = 0  # rows handed to the background threads (each is written, or an error raised)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            if self.schema is None:
                self.schema = batch.schema
            return
        if self.schema is None:
            self.schema = batch.schema
        elif batch.schema != self.schema:
            try:
                batch = pa.RecordBatch.from_arrays(
                    [batch.column(n).cast(f.type) for n, f in zip(self.schema.names, self.schema)],
                    schema=self.schema,
                )
            except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DatasetError(f"batch schema differs from the first batch of {self.kind}: {exc}") from None
        self.buffer.append(batch)
        self.buffer_bytes += batch.nbytes
        if self.buffer_bytes >= self.row_group_bytes:
            self._flush()

    @property
    def rows(self) -> int:
        """Rows given to :meth:`write` so far: handed to the background threads or still buffered."""
        return self.handed_rows + sum(b.num_rows for b in self.buffer)

    def _flush(self) -> None:
        """Hand the buffered batches to a background thread as one row group (waiting for a free thread)."""
        if not self.buffer:
            return
        assert self.schema is not None
        table = pa.Table.from_batches(self.buffer, schema=self.schema)
        self.buffer, self.buffer_bytes = [], 0
        while len(self._inflight) >= self.encoders:
            self._collect_oldest()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.encoders, thread_name_prefix=f"provkit-write-{self.kind}")
        task = self._append_row_group if self.encoders == 1 else self._write_part
        self._inflight.append(self._pool.submit(task, table))
        self.handed_rows += table.num_rows

    def _collect_oldest(self) -> None:
        """Wait for the oldest row group handed out; its error (OSError, Arrow) is raised here."""
        future = self._inflight[0]
        try:
            done = future.result()
        finally:
            self._inflight.popleft()
        if done is not None:
            self.written.append(done)

    def _append_row_group(self, table: pa.Table) -> _Part | None:
        """One thread (``encoders == 1``): append to the open part; the part once it holds ``part_bytes``."""
        if self._open is None:
            assert self.schema is not None
            self._open = _OpenPart(self.directory, self.schema, self.kind, self.activity_id)
        self._open.write_row_group(table)
        if self._open.size() < self.part_bytes:
            return None
        part, self._open = self._open, None
        return part.close()

    def _write_part(self, table: pa.Table) -> _Part:
        """Any thread (``encoders > 1``): ``table`` as a part of its own (removed again if it fails)."""
        assert self.schema is not None
        part = _OpenPart(self.directory, self.schema, self.kind, self.activity_id)
        try:
            part.write_row_group(table)
            return part.close()
        except BaseException:
            part.discard()
            raise

    def finish(self) -> list[_Part]:
        """Write what is buffered, wait for every thread, close the open part; the parts in input order."""
        self._flush()
        try:
            while self._inflight:
                self._collect_oldest()
        finally:
            self._shutdown()
        if self._open is not None:
            part, self._open = self._open, None
            self.written.append(part.close())
        return self.written

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def discard(self) -> None:
        """Stop: wait for the threads, remove every part written or begun."""
        while self._inflight:
            with contextlib.suppress(Exception):
                self._collect_oldest()
        self._shutdown()
        if self._open is not None:
            self._open.discard()
            self._open = None
        for part in self.written:
            with contextlib.suppress(FileNotFoundError):
                part.path.unlink()


class DatasetWriter:
    """Write (or append to) a dataset; nothing is visible until :meth:`commit`.

    Use as a context manager: commit on success, discard everything on error::

        with DatasetWriter(out, Activity("ingest", params)) as w:
            w.write(batch)                       # data
            w.write(bad, kind="quarantine")
            w.add_file("report.json", payload)   # checksummed side files

    ``encoders`` background threads encode full row groups (default one: the least memory); with more than one,
    each row group is a part of its own (module docstring).
    """

    def __init__(
        self,
        path: str | Path,
        activity: Activity,
        *,
        parents: Sequence[str | Path] = (),
        mode: str = "create",
        row_group_bytes: int = 32 << 20,
        part_bytes: int = 1 << 30,
        encoders: int = 1,
        lock_timeout: float = 600.0,
    ):
        if mode not in ("create", "append", "overwrite"):
            raise ValueError(f"mode must be create, append or overwrite, not {mode!r}")
        self.target = Path(path)
        self.activity = activity
        self.parents = [Path(p) for p in parents]
        self.mode = mode
        self.row_group_bytes = row_group_bytes
        self.part_bytes = part_bytes
        self.encoders = encoders
        self.side_files: dict[str, bytes] = {}
        self._parts: dict[str, _PartWriter] = {}
        self._lock_fd: int | None = None
        self.existing: Dataset | None = None
        self._closed = True  # until the staging directory exists
        self._refuse_nesting()
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _os_error(self.target, exc) from None
        self.workdir = self.target.parent / f".{self.target.name}.tmp-{uuid.uuid4().hex[:8]}"
        self._lock(lock_timeout)
        try:
            # everything below runs under the lock: the manifest read here is the one the commit extends
            self._check_target()
            self._remove_stale_staging()
            if mode == "append" and (self.target / MANIFEST).exists():
                self.existing = Dataset.open(self.target, verify=False)
                self._remove_orphans()
                self.workdir.mkdir()
                self._link_existing()
            else:
                self.workdir.mkdir()
        except BaseException as exc:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._release()
            if isinstance(exc, OSError):
                raise _os_error(self.target, exc) from None
            raise
        self._closed = False

    # --- locking & recovery ---------------------------------------------
    @property
    def lock_path(self) -> Path:
        """The lock file: beside the dataset, never inside the directory a commit swaps out."""
        return self.target.parent / f".{self.target.name}.lock"

    def _lock(self, timeout: float) -> None:
        """Take the dataset's exclusive lock, waiting up to ``timeout`` seconds for another writer.

        The holder removes the lock file when it is done, so a lock taken on a
        file that is no longer at :attr:`lock_path` is stale: reopen and retry.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as exc:
                raise _os_error(self.target, exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise DatasetError(f"{self.target}: another provkit process is writing this dataset "
                                       f"(waited {timeout:.0f} s for its lock {self.lock_path})") from None
                time.sleep(0.02)
                continue
            try:
                current = os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                self._lock_fd = fd
                return
            os.close(fd)  # the previous holder removed that file: take the lock on the one there now

    def _refuse_nesting(self) -> None:
        """An output equal to, inside, or holding one of its parent datasets would overwrite its own input."""
        target = self.target.resolve()
        for parent in self.parents:
            src = parent.resolve()
            if target == src or target.is_relative_to(src) or src.is_relative_to(target):
                where = "is" if target == src else "is inside" if target.is_relative_to(src) else "holds"
                raise ConfigError(f"{self.target}: the output {where} the input dataset {parent}; "  # a usage error
                                   "choose an --out outside it")

    def _check_target(self) -> None:
        """Refuse a target this mode must not write: only a provkit dataset is ever appended to or replaced."""
        t = self.target
        if not t.exists() and not t.is_symlink():
            return
        if not t.is_dir():
            raise DatasetError(f"{t}: exists and is not a directory (provkit writes only a dataset directory)")
        has_manifest = (t / MANIFEST).exists()
        if self.mode == "create":
            if has_manifest:
                raise DatasetError(f"{t}: dataset already exists (append to it, or choose another --out)")
            if any(t.iterdir()):
                raise DatasetError(f"{t}: exists and is not an empty directory")
            return
        if not has_manifest:
            if any(t.iterdir()):
                raise DatasetError(f"{t}: exists and is not a provkit dataset (no {MANIFEST}); provkit "
                                   f"{'replaces' if self.mode == 'overwrite' else 'appends to'} only a dataset "
                                   "it wrote - choose another --out")
            return
        Dataset.open(t, verify=False)  # a well-formed, sealed manifest: a provkit dataset

    def _remove_stale_staging(self) -> None:
        """Staging directories of this dataset left by a killed writer (under the lock none is live)."""
        for stale in self.target.parent.glob(f".{glob.escape(self.target.name)}.tmp-*"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)

    def _remove_orphans(self) -> None:
        """Delete parts that no manifest lists: leftovers of a killed commit."""
        assert self.existing is not None
        listed = {f["path"] for f in self.existing.manifest["files"]}
        want = self.existing.manifest.get("provenance_sha256")
        for pending in self.target.glob(f".{PROVENANCE}.pending-*"):
            if want and pending == pending_provenance(self.target, want):
                os.replace(pending, self.target / PROVENANCE)  # finish a killed fallback commit
            else:
                pending.unlink()  # staged by a commit killed before its manifest
        for kind in KINDS:
            d = self.target / kind
            if d.is_dir():
                for p in d.iterdir():
                    if f"{kind}/{p.name}" not in listed and p.suffix == ".parquet" and p.is_file():
                        p.unlink()

    def _link_existing(self) -> None:
        """Hard-link the committed files into the staging directory (no bytes copied)."""
        assert self.existing is not None
        for entry in self.existing.manifest["files"]:
            dest = self.workdir / entry["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(self.target / entry["path"], dest)

    # --- writing ---------------------------------------------------------
    def write(self, batch: pa.RecordBatch | pa.Table, kind: str = "data") -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if kind in ("data", "rejects"):
            batch = conform(batch)
        if isinstance(batch, pa.Table):
            for b in batch.to_batches():
                self.write(b, kind)
            return
        part = self._parts.get(kind)
        if part is None:
            self._check_append_schema(batch, kind)
            directory = self.workdir / kind
            directory.mkdir(exist_ok=True)
            part = self._parts[kind] = _PartWriter(
                directory, kind, self.activity.id, self.row_group_bytes, self.part_bytes, self.encoders
            )
        try:
            part.write(batch)
        except OSError as exc:
            raise _os_error(self.target, exc) from None

    def _check_append_schema(self, batch: pa.RecordBatch, kind: str) -> None:
        """Refuse to append ``kind`` records whose columns differ from the parts already there."""
        if self.existing is None or kind == "quarantine" or not self.existing.file_entries(kind):
            return
        try:
            have = self.existing.schema(kind)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetError(f"{self.target}: cannot read the schema of its {kind} parts ({exc}); "
                               f"run `prov verify {self.target}`") from None
        assert have is not None
        want = [(f.name, f.type) for f in have]
        got = [(f.name, f.type) for f in batch.schema]
        if want != got:
            only_have = [n for n, _ in want if n not in dict(got)]
            only_got = [n for n, _ in got if n not in dict(want)]
            detail = (f"it has columns {', '.join(only_have)} the new records lack" if only_have else
                      f"the new records add columns {', '.join(only_got)}" if only_got else "column types differ")
            raise DatasetError(f"{self.target}: cannot append records with another schema to its {kind} parts "
                               f"({detail}); write them to a new dataset instead")

    def add_file(self, name: str, payload: bytes | str) -> None:
        """A side file (report, config) committed and checksummed with the dataset."""
        if "/" in name or name in (MANIFEST, PROVENANCE):
            raise ValueError(f"bad side-file name {name!r}")
        self.side_files[name] = payload.encode() if isinstance(payload, str) else payload

    def rows_written(self, kind: str = "data") -> int:
        part = self._parts.get(kind)
        if part is None:
            return 0
        return part.rows

    # --- commit ----------------------------------------------------------
    def commit(self) -> Dataset:
        if self._closed:
            raise DatasetError("writer already closed")
        try:
            return self._commit()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise _os_error(self.target, exc) from None
            raise

    def _commit(self) -> Dataset:
        self.activity.ended_at = utcnow()
        base_files = list(self.existing.manifest["files"]) if self.existing else []
        taken = {f["path"] for f in base_files}
        new_entries = []
        renames: list[tuple[Path, Path]] = []
        for kind in KINDS:
            part = self._parts.get(kind)
            if part is None:
                continue
            index = sum(1 for p in taken if p.startswith(f"{kind}/"))
            for done in part.finish():
                name = f"{kind}/part-{index:05d}-{self.activity.id[-8:]}.parquet"
                index += 1
                taken.add(name)
                renames.append((done.path, self.workdir / name))
                new_entries.append(
                    {"path": name, "kind": kind, "rows": done.rows, "bytes": done.bytes, "sha256": done.sha256,
                     "activity_id": self.activity.id}
                )
        # an empty dataset still needs a schema that plain tools can read
        if not any(e["kind"] == "data" for e in base_files + new_entries):
            part = self._parts.get("data")
            schema = part.schema if part is not None and part.schema is not None else SCHEMA
            (self.workdir / "data").mkdir(exist_ok=True)
            tmp = self.workdir / "data" / f".tmp-{uuid.uuid4().hex}.parquet"
            pq.write_table(schema.empty_table(), tmp, compression="zstd")
            name = f"data/part-00000-{self.activity.id[-8:]}.parquet"
            renames.append((tmp, self.workdir / name))
            new_entries.append({"path": name, "kind": "data", "rows": 0, "bytes": tmp.stat().st_size,
                                "sha256": sha256_file(tmp), "activity_id": self.activity.id})
        side_entries = []
        for name, payload in self.side_files.items():
            write_bytes_atomic(self.workdir / name, payload)
            side_entries.append({"path": name, "kind": "side", "rows": 0, "bytes": len(payload),
                                 "sha256": hashlib.sha256(payload).hexdigest(), "activity_id": self.activity.id})
        base_files = [f for f in base_files if not (f["kind"] == "side" and f["path"] in self.side_files)]
        crash_point("parts-written")
        for tmp, final in renames:
            os.replace(tmp, final)
        for kind in KINDS:
            if (self.workdir / kind).is_dir():
                fsync_dir(self.workdir / kind)
        provenance = self._provenance_document(new_entries)
        prov_bytes = (json.dumps(provenance, indent=2, default=str) + "\n").encode()
        write_bytes_atomic(self.workdir / PROVENANCE, prov_bytes)
        self._provenance_sha = hashlib.sha256(prov_bytes).hexdigest()
        manifest = self._manifest(base_files + new_entries + side_entries, self._provenance_sha)
        crash_point("before-manifest")
        write_json_atomic(self.workdir / MANIFEST, seal(manifest))
        crash_point("before-publish")
        self._publish([e["path"] for e in new_entries + side_entries])
        crash_point("after-publish")
        self._release()
        self._closed = True
        return Dataset.open(self.target, verify=False)

    def _publish(self, new_paths: list[str]) -> None:
        """Make the staged directory the dataset, atomically where the platform allows."""
        if self.existing is None:  # create, or overwrite
            if self.target.exists() and self.mode != "overwrite":
                self.target.rmdir()  # an empty directory given as --out
            publish_dir(self.workdir, self.target)
            return
        if not exchange_paths(self.workdir, self.target):
            # append without exchange: the manifest, renamed last, is the commit point
            # (parts first: unlisted until then; the PROV document under a pending name the new manifest
            # names by its sha256, so a crash in between leaves the old or the new pair, never a mix)
            for rel in new_paths:
                (self.target / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.workdir / rel, self.target / rel)
            pending = pending_provenance(self.target, self._provenance_sha)
            os.replace(self.workdir / PROVENANCE, pending)
            crash_point("before-manifest-rename")
            os.replace(self.workdir / MANIFEST, self.target / MANIFEST)
            crash_point("before-provenance-rename")
            os.replace(pending, self.target / PROVENANCE)
        else:
            crash_point("after-exchange")
        shutil.rmtree(self.workdir, ignore_errors=True)  # after an exchange: the previous version
        fsync_dir(self.target.parent)

    def _manifest(self, files: list[dict[str, Any]], provenance_sha: str) -> dict[str, Any]:
        old = self.existing.manifest if self.existing else {}
        parents = list(old.get("parents", []))
        known = {p["path"] for p in parents}
        for parent in self.parents:
            rel = os.path.relpath(parent.resolve(), self.target.resolve())
            if rel in known:
                continue
            entry = {"path": rel, "absolute": str(parent.resolve())}
            with contextlib.suppress(FileNotFoundError, DatasetError):
                entry["manifest_sha256"] = sha256_file(parent / MANIFEST)
            parents.append(entry)
        activities = list(old.get("activities", [])) + [self.activity.to_json()]
        now = iso(utcnow())
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "created_at": old.get("created_at", now),
            "updated_at": now,
            "rows": {k: sum(int(f["rows"]) for f in files if f["kind"] == k) for k in KINDS},
            "files": files,
            "parents": parents,
            "activities": activities,
            "provenance_sha256": provenance_sha,
        }

    def _provenance_document(self, new_entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Extend the dataset's PROV-JSON document with this activity."""
        doc: dict[str, Any]
        if self.existing is not None:
            doc = self.existing.provenance() or {}
        else:
            doc = {}
        for key in ("prefix", "entity", "activity", "agent", "used", "wasGeneratedBy", "wasAssociatedWith",
                    "wasDerivedFrom"):
            doc.setdefault(key, {})
        doc["prefix"].update({"provkit": "https://provkit.dev/ns#", "ds": "urn:provkit:dataset:"})
        a = self.activity
        act_id = f"provkit:{a.id}"
        doc["activity"][act_id] = {
            "prov:startTime": iso(a.started_at),
            "prov:endTime": iso(a.ended_at or utcnow()),
            "prov:type": f"provkit:{a.kind}",
            "provkit:params": json.dumps(a.params, sort_keys=True, default=str),
        }
        for agent in a.agents:
            agent_id = f"provkit:agent/{agent}"
            doc["agent"].setdefault(agent_id, {"prov:type": "prov:SoftwareAgent", "prov:label": agent})
            doc["wasAssociatedWith"][f"_:assoc-{a.id}-{agent}"] = {"prov:activity": act_id, "prov:agent": agent_id}
        for i, used in enumerate(a.used):
            ent = f"provkit:source/{used}"
            doc["entity"].setdefault(ent, {"prov:label": used, "prov:type": "provkit:source"})
            doc["used"][f"_:used-{a.id}-{i}"] = {"prov:activity": act_id, "prov:entity": ent}
        for e in new_entries:
            ent = f"provkit:file/{e['path']}"
            doc["entity"][ent] = {"prov:type": f"provkit:{e['kind']}-part", "provkit:rows": e["rows"],
                                  "provkit:sha256": e["sha256"]}
            doc["wasGeneratedBy"][f"_:gen-{e['path']}"] = {"prov:entity": ent, "prov:activity": act_id}
        for parent in self.parents:
            ent = f"provkit:dataset/{parent.resolve()}"
            doc["entity"].setdefault(ent, {"prov:type": "provkit:dataset"})
            doc["used"][f"_:used-{a.id}-{parent.name}"] = {"prov:activity": act_id, "prov:entity": ent}
        return doc

    # --- abort -----------------------------------------------------------
    def abort(self) -> None:
        if self._closed:
            self._release()
            return
        for part in self._parts.values():
            part.discard()
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._release()
        self._closed = True

    def _release(self) -> None:
        crash_point("before-unlock")
        if self._lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock_path)  # still held: a waiter holding the old file sees it is stale
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
