"""Export a dataset for other tools: JSONL records, W3C PROV-JSON, and Croissant (JSON-LD).

* ``jsonl``: one JSON object per record, every column (timestamps as ISO 8601).
* ``prov-json``: the dataset's ``provenance.json`` (activities, agents, parts)
  plus one entity per record, ``wasGeneratedBy`` its activity,
  ``wasDerivedFrom`` each parent id, and ``wasAttributedTo`` the generating
  model's agent for model records (W3C PROV-JSON, https://www.w3.org/submissions/prov-json/).
* ``croissant``: an MLCommons Croissant 1.1 description (:mod:`provkit.provenance.croissant`).

Every export is streamed batch by batch and written atomically; an output
whose name ends in ``.gz`` is gzip-compressed (``x.jsonl.gz``, ``prov.json.gz``).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import pyarrow.compute as pc

from provkit.core.atomic import open_atomic
from provkit.errors import ConfigError, ProvkitError
from provkit.provenance.croissant import croissant
from provkit.provenance.manifest import KINDS, MANIFEST
from provkit.provenance.reader import Dataset

FORMATS = ("jsonl", "prov-json", "croissant")


@contextlib.contextmanager
def open_text_export(out: Path) -> Iterator[IO[str]]:
    """A text file written atomically; gzip-compressed when ``out`` ends in ``.gz`` (mtime 0: reproducible bytes)."""
    with open_atomic(out, "wb") as raw:
        if out.name.lower().endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                    io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as f:
                yield f
        else:
            f = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
            yield f
            f.flush()
            f.detach()  # open_atomic fsyncs and closes ``raw``


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def _rows(ds: Dataset, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    for batch in ds.iter_batches("data", columns=columns):
        yield from batch.to_pylist()


def export_jsonl(ds: Dataset, out: Path) -> int:
    """Every data record as one JSON line; returns the number of records."""
    n = 0
    with open_text_export(out) as f:
        for row in _rows(ds):
            f.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
            n += 1
    return n


# ------------------------------------------------------------------ PROV-JSON
def record_qname(record_id: str) -> str:
    return f"provkit:record/{quote(record_id, safe='')}"


def model_qname(model: str) -> str:
    return f"provkit:model/{quote(model, safe='')}"


_PROV_COLS = ["id", "content_hash", "origin", "origin_evidence", "origin_confidence", "generator", "parent_ids",
              "activity_id", "source_uri", "dataset", "license"]


def _record_entities(ds: Dataset) -> Iterator[tuple[str, Any]]:
    for r in _rows(ds, _PROV_COLS):
        attrs = {"prov:type": "provkit:record", "provkit:id": r["id"], "provkit:content_hash": r["content_hash"],
                 "provkit:origin": r["origin"], "provkit:origin_evidence": r["origin_evidence"],
                 "provkit:origin_confidence": r["origin_confidence"], "provkit:source_uri": r["source_uri"],
                 "provkit:dataset": r["dataset"], "provkit:license": r["license"]}
        gen = r["generator"]
        if gen:
            attrs.update({f"provkit:generator_{k}": v for k, v in gen.items() if v is not None})
        yield record_qname(r["id"]), {k: v for k, v in attrs.items() if v is not None}


def _generated_by(ds: Dataset) -> Iterator[tuple[str, Any]]:
    for r in _rows(ds, ["id", "activity_id"]):
        if r["activity_id"]:
            yield f"_:gen-record-{quote(r['id'], safe='')}", {"prov:entity": record_qname(r["id"]),
                                                              "prov:activity": f"provkit:{r['activity_id']}"}


def _derived_from(ds: Dataset) -> Iterator[tuple[str, Any]]:
    for r in _rows(ds, ["id", "parent_ids"]):
        for i, parent in enumerate(r["parent_ids"] or []):
            yield f"_:der-{quote(r['id'], safe='')}-{i}", {"prov:generatedEntity": record_qname(r["id"]),
                                                           "prov:usedEntity": record_qname(parent)}


def _attributed_to(ds: Dataset) -> Iterator[tuple[str, Any]]:
    for r in _rows(ds, ["id", "origin", "generator"]):
        if r["generator"] and r["generator"].get("model"):
            yield f"_:attr-{quote(r['id'], safe='')}", {"prov:entity": record_qname(r["id"]),
                                                        "prov:agent": model_qname(r["generator"]["model"])}


def _model_agents(ds: Dataset) -> dict[str, Any]:
    models: set[str] = set()
    for batch in ds.iter_batches("data", columns=["generator"]):
        gen = batch.column(0)
        models.update(m for m in pc.struct_field(gen, "model").unique().to_pylist() if m)
    return {model_qname(m): {"prov:type": "prov:SoftwareAgent", "provkit:kind": "generator-model", "prov:label": m}
            for m in sorted(models)}


def _write_section(f: IO[str], name: str, first: dict[str, Any], more: Iterator[tuple[str, Any]],
                   leading_comma: bool) -> None:
    """Write ``"name": {...}`` with the items of ``first`` then those streamed from ``more``."""
    f.write((",\n" if leading_comma else "") + f"  {json.dumps(name)}: {{")
    sep = "\n"
    for key, value in _chain(first, more):
        f.write(f"{sep}    {json.dumps(key)}: {json.dumps(value, default=_json_default)}")
        sep = ",\n"
    f.write("\n  }")


def _chain(first: dict[str, Any], more: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    yield from first.items()
    yield from more


def _referenced_activities(ds: Dataset) -> set[str]:
    seen: set[str] = set()
    for batch in ds.iter_batches("data", columns=["activity_id"]):
        seen.update(a for a in batch.column(0).unique().to_pylist() if a)
    return seen


def _ancestor_documents(ds: Dataset, limit: int = 64) -> Iterator[dict[str, Any]]:
    """The PROV documents of ``ds``'s parent datasets, their parents, ... (breadth first, each once)."""
    queue, seen = list(ds.parents), {ds.path.resolve()}
    while queue and len(seen) <= limit:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        try:
            parent = Dataset.open(path)
        except ProvkitError:
            continue
        yield parent.provenance() or {}
        queue.extend(parent.parents)


def _activities(ds: Dataset, doc: dict[str, Any]) -> dict[str, Any]:
    """This dataset's activities plus every activity a record names (records a filter or merge kept
    were generated by an ancestor's activity): taken from the ancestors' PROV documents, else a stub."""
    activities = dict(doc.get("activity", {}))
    missing = {f"provkit:{a}" for a in _referenced_activities(ds)} - set(activities)
    for ancestor in _ancestor_documents(ds) if missing else ():
        for qname in list(missing):
            if qname in ancestor.get("activity", {}):
                activities[qname] = ancestor["activity"][qname]
                missing.discard(qname)
        if not missing:
            break
    for qname in sorted(missing):
        activities[qname] = {"prov:type": "provkit:activity", "prov:label": qname.split(":", 1)[1],
                             "provkit:note": "named by records of this dataset; its document was not found"}
    return activities


def export_prov_json(ds: Dataset, out: Path) -> int:
    """The PROV-JSON document of the dataset with one entity per record; returns the number of records.

    Every activity a record or relation names is defined in the document
    (from the ancestors' documents when an earlier run generated the record).
    """
    doc = ds.provenance() or {}
    streamed = {"entity": _record_entities, "wasGeneratedBy": _generated_by, "wasDerivedFrom": _derived_from,
                "wasAttributedTo": _attributed_to}
    agents = {**doc.get("agent", {}), **_model_agents(ds)}
    sections = ["prefix", "activity", "agent", "used", "wasAssociatedWith", *streamed]
    fixed = {"agent": agents, "activity": _activities(ds, doc)}
    with open_text_export(out) as f:
        f.write("{\n")
        for i, name in enumerate(sections):
            first = fixed[name] if name in fixed else dict(doc.get(name, {}))
            if name == "prefix":
                first.setdefault("provkit", "https://provkit.dev/ns#")
            _write_section(f, name, first, streamed[name](ds) if name in streamed else iter(()), i > 0)
        f.write("\n}\n")
    return ds.num_rows("data")


def export_croissant(ds: Dataset, out: Path) -> int:
    """The Croissant JSON-LD, its file paths relative to where it is written (mlcroissant resolves them there)."""
    with open_text_export(out) as f:
        json.dump(croissant(ds, base=out.resolve().parent), f, indent=2, default=_json_default)
        f.write("\n")
    return ds.num_rows("data")


def export_dataset(path: str | Path, to: str, out: str | Path, *, verify: bool = True) -> int:
    """Export the dataset at ``path`` in format ``to`` (one of :data:`FORMATS`) to ``out``.

    With ``verify`` each part is checked against the manifest's size and sha256 before it is read.
    """
    exporters = {"jsonl": export_jsonl, "prov-json": export_prov_json, "croissant": export_croissant}
    if to not in exporters:
        raise ConfigError(f"--to {to!r} is not one of {', '.join(FORMATS)}")
    out = Path(out)
    if not out.parent.exists():
        raise ConfigError(f"--out {out}: directory {out.parent} does not exist")
    ds = Dataset.open(path, verify=verify)
    inside = out.resolve().parent
    if any(inside == (ds.path / kind).resolve() or inside.is_relative_to((ds.path / kind).resolve())
           for kind in KINDS) or out.resolve() == (ds.path / MANIFEST).resolve():
        raise ConfigError(f"--out {out}: inside the dataset's own files; choose a path outside {ds.path}")
    return exporters[to](ds, out)
