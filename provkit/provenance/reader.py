"""Reading a committed provkit dataset through its manifest, and verifying it.

:class:`Dataset` streams record batches in manifest order (bounded memory);
:func:`verify` lists every problem (checksums, sizes, row counts, schema,
provenance hash, unlisted leftovers of an interrupted commit), one line each.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from provkit.core.atomic import sha256_file
from provkit.errors import DatasetError
from provkit.provenance.manifest import (
    FORMAT,
    KINDS,
    MANIFEST,
    PROVENANCE,
    SEAL,
    manifest_problem,
    read_json,
    seal_problem,
)
from provkit.core.text import one_line
from provkit.provenance.schema import check_schema


class Dataset:
    """A committed provkit dataset, read through its manifest."""

    def __init__(self, path: Path, manifest: dict[str, Any], *, verify: bool = True):
        self.path = path
        self.manifest = manifest
        self.verify = verify
        self._checked: set[str] = set()

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = True) -> Dataset:
        """Open the dataset at ``path``: its manifest must be well formed and its seal must hold.

        With ``verify`` (the default) every part is checked against the size
        and sha256 the manifest records the first time it is read; a mismatch
        stops the read with a line that points to ``prov verify``.
        """
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
        except (OSError, RecursionError) as exc:
            raise DatasetError(f"{path / MANIFEST}: cannot read the manifest ({one_line(exc)})") from None
        problem = open_problem(manifest)
        if problem:
            raise DatasetError(f"{path / MANIFEST}: {problem}; run `prov verify {path}`")
        return cls(path, manifest, verify=verify)

    def _check_file(self, entry: dict[str, Any]) -> Path:
        """The part's path, after checking it stays inside the dataset and matches its size and sha256."""
        file = self.path / entry["path"]
        if not self.verify or entry["path"] in self._checked:
            return file
        problem = file_problem(self.path, entry)
        if problem:
            raise DatasetError(f"{problem}; run `prov verify {self.path}` for every problem "
                               "(or pass --no-verify to read it anyway)")
        self._checked.add(entry["path"])
        return file

    def checked_files(self, kind: str = "data") -> list[Path]:
        """:meth:`files`, each checked (with ``verify``) against the manifest before it is handed out."""
        return [self._check_file(e) for e in self.file_entries(kind)]

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

    def provenance_path(self) -> Path:
        """``provenance.json``, or the committed document a killed fallback commit left under its pending name."""
        return provenance_path(self.path, self.manifest)

    def provenance(self) -> dict[str, Any]:
        try:
            return read_json(self.provenance_path())
        except FileNotFoundError:
            return {}

    def schema(self, kind: str = "data") -> pa.Schema | None:
        files = self.files(kind)
        return pq.read_schema(files[0]) if files else None

    # --- rows ------------------------------------------------------------
    def iter_batches(
        self, kind: str = "data", columns: Sequence[str] | None = None, batch_size: int = 8192
    ) -> Iterator[pa.RecordBatch]:
        """Stream record batches of ``kind`` in manifest order, one row group in memory at a time.

        Parquet's ``pre_buffer`` (on by default) keeps every row group read so far
        of a part cached until the part is done (~60 bytes per short record, up to
        the 1 GiB part size: 207 vs 29 MiB of Arrow memory reading 3M records); it
        is off here.
        """
        for path in self.checked_files(kind):
            pf = pq.ParquetFile(path, pre_buffer=False)
            yield from pf.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None)

    def read(self, kind: str = "data", columns: Sequence[str] | None = None) -> pa.Table:
        files = self.checked_files(kind)
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


def open_problem(manifest: Any) -> str | None:
    """Why a manifest cannot be trusted at all: not a provkit manifest, a broken seal (checked first), bad entries."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return f"not a provkit manifest (format field is not {FORMAT!r})"
    if SEAL in manifest:
        problem = seal_problem(manifest)
        if problem:
            return problem
    return manifest_problem(manifest)


def pending_provenance(root: Path, sha: str) -> Path:
    """Where a commit without ``RENAME_EXCHANGE`` stages the PROV document until the manifest names it."""
    return root / f".{PROVENANCE}.pending-{sha}"


def provenance_path(root: Path, manifest: dict[str, Any]) -> Path:
    want = manifest.get("provenance_sha256")
    if isinstance(want, str) and want and pending_provenance(root, want).exists():
        return pending_provenance(root, want)
    return root / PROVENANCE


def file_problem(root: Path, entry: dict[str, Any]) -> str | None:
    """Why a listed file does not match its manifest entry: outside the dataset, missing, size, sha256."""
    file = root / entry["path"]
    try:
        inside = file.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return f"{file}: cannot resolve the path ({one_line(exc)})"
    if not inside:
        return f"{file}: resolves outside the dataset directory (a symlink?)"
    try:
        st = file.stat()
    except FileNotFoundError:
        return f"{file}: missing (listed in {MANIFEST})"
    except OSError as exc:
        return f"{file}: cannot read ({exc.strerror or one_line(exc)})"
    if not stat.S_ISREG(st.st_mode):
        return f"{file}: not a regular file"
    if st.st_size != int(entry["bytes"]):
        return f"{file}: size {st.st_size} bytes, manifest says {entry['bytes']}"
    try:
        digest = sha256_file(file)
    except OSError as exc:
        return f"{file}: cannot read ({exc.strerror or one_line(exc)})"
    if digest != entry["sha256"]:
        return f"{file}: sha256 mismatch (file is corrupted or was modified)"
    return None


def verify(path: str | Path) -> list[str]:
    """Every problem with a dataset, one line each (empty when all checks hold).

    Checks, in order: the manifest is well formed and its seal (a sha256 over
    its canonical form) holds - when it does not, nothing it says can be
    trusted and the check stops there; every listed path stays inside the
    dataset; each listed file is present with the recorded size and sha256;
    its Parquet footer is readable with the recorded row count and kind; data
    and rejects parts carry the record schema; provenance.json matches its
    hash; nothing unlisted sits in data/, rejects/ or quarantine/ (a plain
    reader of ``DS/data`` would read it).
    """
    path = Path(path)
    try:
        ds = Dataset.open(path)
    except DatasetError as exc:
        return [str(exc).split("; run `prov verify")[0]]
    problem = seal_problem(ds.manifest)
    if problem:
        return [f"{path / MANIFEST}: {problem}"]
    problems: list[str] = []
    listed = set()
    for entry in ds.manifest.get("files", []):
        file = path / entry["path"]
        listed.add(entry["path"])
        problem = file_problem(path, entry)
        if problem:
            problems.append(problem)
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
        kind = (meta.metadata or {}).get(b"provkit.kind")
        if kind is not None and kind.decode(errors="replace") != entry["kind"]:
            problems.append(f"{file}: a {kind.decode(errors='replace')} part listed as {entry['kind']}")
        if entry["kind"] in ("data", "rejects"):
            for p in check_schema(meta.schema.to_arrow_schema()):
                problems.append(f"{file}: {p}")
    prov = ds.provenance_path()
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
                if p.name.startswith(".tmp-") or f"{kind}/{p.name}" in listed:
                    continue
                if p.suffix == ".parquet" and not p.name.startswith("."):
                    problems.append(f"{p}: not listed in {MANIFEST} (left over from an interrupted write)")
                else:
                    problems.append(f"{p}: stray file, not listed in {MANIFEST} (a plain reader of {d} would "
                                    "read it; remove it)")
    return problems
