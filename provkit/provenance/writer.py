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

Memory is bounded by one row group buffer per open kind (``row_group_bytes``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from provkit.core.atomic import (
    exchange_paths,
    fsync_dir,
    fsync_file,
    publish_dir,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
)
from provkit.errors import DatasetError
from provkit.provenance.manifest import FORMAT, KINDS, MANIFEST, PROVENANCE, Activity, iso
from provkit.provenance.reader import Dataset
from provkit.provenance.schema import SCHEMA, SCHEMA_VERSION, conform, utcnow


class _PartWriter:
    """Writes one kind's parts, buffering batches up to a row group's worth of bytes."""

    def __init__(self, directory: Path, kind: str, activity_id: str, row_group_bytes: int, part_bytes: int):
        self.directory = directory
        self.kind = kind
        self.activity_id = activity_id
        self.row_group_bytes = row_group_bytes
        self.part_bytes = part_bytes
        self.schema: pa.Schema | None = None
        self.buffer: list[pa.RecordBatch] = []
        self.buffer_bytes = 0
        self.writer: pq.ParquetWriter | None = None
        self.current: Path | None = None
        self.current_rows = 0
        self.written: list[tuple[Path, int]] = []  # (tmp path, rows)

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

    def _flush(self) -> None:
        if not self.buffer:
            return
        table = pa.Table.from_batches(self.buffer, schema=self.schema)
        if self.writer is None:
            self.current = self.directory / f".tmp-{uuid.uuid4().hex}.parquet"
            metadata = {
                b"provkit.schema_version": SCHEMA_VERSION.encode(),
                b"provkit.activity_id": self.activity_id.encode(),
                b"provkit.kind": self.kind.encode(),
            }
            schema = self.schema.with_metadata({**(self.schema.metadata or {}), **metadata})
            self.writer = pq.ParquetWriter(self.current, schema, compression="zstd")
        self.writer.write_table(table.replace_schema_metadata(self.writer.schema.metadata), row_group_size=table.num_rows)
        self.current_rows += table.num_rows
        self.buffer, self.buffer_bytes = [], 0
        if self.current is not None and self.current.stat().st_size >= self.part_bytes:
            self._close_part()

    def _close_part(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        assert self.current is not None
        fsync_file(self.current)
        self.written.append((self.current, self.current_rows))
        self.writer, self.current, self.current_rows = None, None, 0

    def finish(self) -> list[tuple[Path, int]]:
        self._flush()
        self._close_part()
        return self.written

    def discard(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        for path in [p for p, _ in self.written] + ([self.current] if self.current else []):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class DatasetWriter:
    """Write (or append to) a dataset; nothing is visible until :meth:`commit`.

    Use as a context manager: commit on success, discard everything on error::

        with DatasetWriter(out, Activity("ingest", params)) as w:
            w.write(batch)                       # data
            w.write(bad, kind="quarantine")
            w.add_file("report.json", payload)   # checksummed side files
    """

    def __init__(
        self,
        path: str | Path,
        activity: Activity,
        *,
        parents: Sequence[str | Path] = (),
        mode: str = "create",
        row_group_bytes: int = 64 << 20,
        part_bytes: int = 1 << 30,
    ):
        if mode not in ("create", "append", "overwrite"):
            raise ValueError(f"mode must be create, append or overwrite, not {mode!r}")
        self.target = Path(path)
        self.activity = activity
        self.parents = [Path(p) for p in parents]
        self.mode = mode
        self.row_group_bytes = row_group_bytes
        self.part_bytes = part_bytes
        self.side_files: dict[str, bytes] = {}
        self._parts: dict[str, _PartWriter] = {}
        self._lock_fd: int | None = None
        self.existing: Dataset | None = None
        if self.target.exists() and mode == "create":
            if (self.target / MANIFEST).exists():
                raise DatasetError(f"{self.target}: dataset already exists (append to it, or choose another --out)")
            if self.target.is_file() or any(self.target.iterdir()):
                raise DatasetError(f"{self.target}: exists and is not an empty directory")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.workdir = self.target.parent / f".{self.target.name}.tmp-{uuid.uuid4().hex[:8]}"
        if mode == "append" and (self.target / MANIFEST).exists():
            self.existing = Dataset.open(self.target)
            self._lock()
            self._remove_orphans()
            self.workdir.mkdir()
            self._link_existing()
        else:
            self.workdir.mkdir()
        self._closed = False

    # --- locking & recovery ---------------------------------------------
    def _lock(self) -> None:
        self._lock_fd = os.open(self.target / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise DatasetError(f"{self.target}: another provkit process is writing this dataset") from None

    def _remove_orphans(self) -> None:
        """Delete parts that no manifest lists: leftovers of a killed commit."""
        assert self.existing is not None
        listed = {f["path"] for f in self.existing.manifest["files"]}
        for kind in KINDS:
            d = self.target / kind
            if d.is_dir():
                for p in d.iterdir():
                    if f"{kind}/{p.name}" not in listed and p.suffix == ".parquet":
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
            directory = self.workdir / kind
            directory.mkdir(exist_ok=True)
            part = self._parts[kind] = _PartWriter(
                directory, kind, self.activity.id, self.row_group_bytes, self.part_bytes
            )
        part.write(batch)

    def add_file(self, name: str, payload: bytes | str) -> None:
        """A side file (report, config) committed and checksummed with the dataset."""
        if "/" in name or name in (MANIFEST, PROVENANCE):
            raise ValueError(f"bad side-file name {name!r}")
        self.side_files[name] = payload.encode() if isinstance(payload, str) else payload

    def rows_written(self, kind: str = "data") -> int:
        part = self._parts.get(kind)
        if part is None:
            return 0
        return sum(r for _, r in part.written) + part.current_rows + sum(b.num_rows for b in part.buffer)

    # --- commit ----------------------------------------------------------
    def commit(self) -> Dataset:
        if self._closed:
            raise DatasetError("writer already closed")
        try:
            return self._commit()
        except BaseException:
            self.abort()
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
            for tmp, rows in part.finish():
                index = sum(1 for p in taken if p.startswith(f"{kind}/"))
                name = f"{kind}/part-{index:05d}-{self.activity.id[-8:]}.parquet"
                taken.add(name)
                renames.append((tmp, self.workdir / name))
                new_entries.append(
                    {"path": name, "kind": kind, "rows": rows, "bytes": tmp.stat().st_size, "sha256": sha256_file(tmp),
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
        for tmp, final in renames:
            os.replace(tmp, final)
        for kind in KINDS:
            if (self.workdir / kind).is_dir():
                fsync_dir(self.workdir / kind)
        provenance = self._provenance_document(new_entries)
        prov_bytes = (json.dumps(provenance, indent=2, default=str) + "\n").encode()
        write_bytes_atomic(self.workdir / PROVENANCE, prov_bytes)
        manifest = self._manifest(base_files + new_entries + side_entries, hashlib.sha256(prov_bytes).hexdigest())
        write_json_atomic(self.workdir / MANIFEST, manifest)
        self._publish([e["path"] for e in new_entries + side_entries])
        self._release()
        self._closed = True
        return Dataset.open(self.target)

    def _publish(self, new_paths: list[str]) -> None:
        """Make the staged directory the dataset, atomically where the platform allows."""
        if self.existing is None:  # create, or overwrite
            if self.target.exists() and self.mode != "overwrite":
                self.target.rmdir()  # an empty directory given as --out
            publish_dir(self.workdir, self.target)
            return
        if not exchange_paths(self.workdir, self.target):
            # append without exchange: the manifest, renamed last, is the commit point
            for rel in new_paths + [PROVENANCE, MANIFEST]:
                (self.target / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.workdir / rel, self.target / rel)
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
            return
        for part in self._parts.values():
            part.discard()
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._release()
        self._closed = True

    def _release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
