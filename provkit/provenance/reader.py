"""Reading a committed provkit dataset through its manifest, and verifying it.

:class:`Dataset` streams record batches in manifest order (bounded memory);
:func:`verify` lists every problem (checksums, sizes, row counts, schema,
provenance hash, unlisted leftovers of an interrupted commit), one line each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from provkit.core.atomic import sha256_file
from provkit.errors import DatasetError
from provkit.provenance.manifest import FORMAT, KINDS, MANIFEST, PROVENANCE, read_json
from provkit.provenance.schema import check_schema


class Dataset:
    """A committed provkit dataset, read through its manifest."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path) -> "Dataset":
        path = Path(path)
        if not path.exists():
            raise DatasetError(f"{path}: no such dataset directory")
        if not path.is_dir():
            raise DatasetError(f"{path}: not a provkit dataset (a file, expected a directory with {MANIFEST})")
        try:
            manifest = read_json(path / MANIFEST)
        except FileNotFoundError:
            raise DatasetError(
                f"{path}: not a provkit dataset ({MANIFEST} is missing; create one with `prov ingest`)"
            ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise DatasetError(f"{path / MANIFEST}: not a provkit manifest (format field is not {FORMAT!r})")
        return cls(path, manifest)

    # --- files -----------------------------------------------------------
    def file_entries(self, kind: str = "data") -> list[dict[str, Any]]:
        return [f for f in self.manifest["files"] if f["kind"] == kind]

    def files(self, kind: str = "data") -> list[Path]:
        return [self.path / f["path"] for f in self.file_entries(kind)]

    def num_rows(self, kind: str = "data") -> int:
        return sum(int(f["rows"]) for f in self.file_entries(kind))

    @property
    def parents(self) -> list[Path]:
        return [(self.path / p["path"]).resolve() for p in self.manifest.get("parents", [])]

    @property
    def activities(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("activities", []))

    def provenance(self) -> dict[str, Any]:
        try:
            return read_json(self.path / PROVENANCE)
        except FileNotFoundError:
            return {}

    def schema(self, kind: str = "data") -> pa.Schema | None:
        files = self.files(kind)
        return pq.read_schema(files[0]) if files else None

    # --- rows ------------------------------------------------------------
    def iter_batches(
        self, kind: str = "data", columns: Sequence[str] | None = None, batch_size: int = 8192
    ) -> Iterator[pa.RecordBatch]:
        """Stream record batches of ``kind`` in manifest order (bounded memory)."""
        for path in self.files(kind):
            pf = pq.ParquetFile(path)
            yield from pf.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None)

    def read(self, kind: str = "data", columns: Sequence[str] | None = None) -> pa.Table:
        files = self.files(kind)
        if not files:
            schema = self.schema("data") if kind == "data" else None
            return (schema or pa.schema([])).empty_table()
        tables = [pq.read_table(p, columns=list(columns) if columns else None) for p in files]
        return pa.concat_tables(tables, promote_options="default")

    def to_hf(self, kind: str = "data", streaming: bool = False) -> Any:
        """The ``kind`` records as a ``datasets.Dataset`` (memory-mapped Arrow) or, with ``streaming``, an
        ``IterableDataset``; ``prov ingest`` / :func:`provkit.provenance.ingest` takes either back, provenance kept."""
        import datasets  # lazy: importing datasets costs seconds and only this method needs it

        files = [str(p) for p in self.files(kind)]
        if not files:
            return datasets.Dataset.from_dict({})
        return datasets.load_dataset("parquet", data_files=files, split="train", streaming=streaming)

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, rows={self.num_rows()})"


def verify(path: str | Path) -> list[str]:
    """Every problem with a dataset, one line each (empty when all checks hold).

    Checks: manifest readable; each listed file present, its sha256 and size
    as recorded, its Parquet footer readable with the recorded row count; data
    and rejects parts carry the record schema; provenance.json matches its
    hash; no unlisted parts (leftovers of an interrupted commit).
    """
    path = Path(path)
    try:
        ds = Dataset.open(path)
    except DatasetError as exc:
        return [str(exc)]
    problems: list[str] = []
    listed = set()
    for entry in ds.manifest.get("files", []):
        file = path / entry["path"]
        listed.add(entry["path"])
        if not file.exists():
            problems.append(f"{file}: missing (listed in {MANIFEST})")
            continue
        if file.stat().st_size != int(entry["bytes"]):
            problems.append(f"{file}: size {file.stat().st_size} bytes, manifest says {entry['bytes']}")
        if sha256_file(file) != entry["sha256"]:
            problems.append(f"{file}: sha256 mismatch (file is corrupted or was modified)")
            continue
        if entry["kind"] == "side":
            continue
        try:
            meta = pq.read_metadata(file)
        except (pa.ArrowInvalid, OSError) as exc:
            problems.append(f"{file}: unreadable Parquet ({exc})")
            continue
        if meta.num_rows != int(entry["rows"]):
            problems.append(f"{file}: {meta.num_rows} rows, manifest says {entry['rows']}")
        if entry["kind"] in ("data", "rejects"):
            for p in check_schema(meta.schema.to_arrow_schema()):
                problems.append(f"{file}: {p}")
    prov = path / PROVENANCE
    want = ds.manifest.get("provenance_sha256")
    if want:
        if not prov.exists():
            problems.append(f"{prov}: missing")
        elif sha256_file(prov) != want:
            problems.append(f"{prov}: sha256 mismatch (file is corrupted or was modified)")
    for kind in KINDS:
        d = path / kind
        if d.is_dir():
            for p in sorted(d.iterdir()):
                # hidden ``.tmp-*`` files are a writer's uncommitted temporaries: invisible to readers
                # (pyarrow, DuckDB, Polars skip dot files) and removed by the next writer
                if p.suffix == ".parquet" and not p.name.startswith(".") and f"{kind}/{p.name}" not in listed:
                    problems.append(f"{p}: not listed in {MANIFEST} (left over from an interrupted write)")
    return problems
