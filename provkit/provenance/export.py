"""Export a dataset for other tools: JSONL records, W3C PROV-JSON, and Croissant (JSON-LD).

* ``jsonl``: one JSON object per record, every column (timestamps as ISO 8601).
* ``prov-json``: the dataset's ``provenance.json`` (activities, agents, parts)
  plus one entity per record, ``wasGeneratedBy`` its activity,
  ``wasDerivedFrom`` each parent id, and ``wasAttributedTo`` the generating
  model's agent for model records (W3C PROV-JSON, https://www.w3.org/submissions/prov-json/).
* ``croissant``: an MLCommons Croissant 1.0 description
  (http://mlcommons.org/croissant/1.0): the Parquet parts as ``cr:FileObject``
  (with sha256) plus a ``cr:FileSet``, and a ``cr:RecordSet`` describing the fields.

Every export is streamed batch by batch and written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from provkit.core.atomic import open_atomic
from provkit.errors import ConfigError
from provkit.provenance.manifest import KINDS, MANIFEST
from provkit.provenance.reader import Dataset

FORMATS = ("jsonl", "prov-json", "croissant")

CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
CROISSANT_CONFORMS = "http://mlcommons.org/croissant/1.0"
PARQUET_MIME = "application/x-parquet"


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
    with open_atomic(out, "w") as f:
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


def export_prov_json(ds: Dataset, out: Path) -> int:
    """The PROV-JSON document of the dataset with one entity per record; returns the number of records."""
    doc = ds.provenance() or {}
    streamed = {"entity": _record_entities, "wasGeneratedBy": _generated_by, "wasDerivedFrom": _derived_from,
                "wasAttributedTo": _attributed_to}
    agents = {**doc.get("agent", {}), **_model_agents(ds)}
    sections = ["prefix", "activity", "agent", "used", "wasAssociatedWith", *streamed]
    with open_atomic(out, "w") as f:
        f.write("{\n")
        for i, name in enumerate(sections):
            first = agents if name == "agent" else dict(doc.get(name, {}))
            if name == "prefix":
                first.setdefault("provkit", "https://provkit.dev/ns#")
            _write_section(f, name, first, streamed[name](ds) if name in streamed else iter(()), i > 0)
        f.write("\n}\n")
    return ds.num_rows("data")


# ------------------------------------------------------------------ Croissant
def _croissant_type(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _croissant_type(t.value_type)
    if pa.types.is_boolean(t):
        return "sc:Boolean"
    if pa.types.is_integer(t):
        return "sc:Integer"
    if pa.types.is_floating(t):
        return "sc:Float"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "sc:Date"
    return "sc:Text"


def _croissant_field(record_set: str, f: pa.Field, file_set: str, column: str | None = None) -> dict[str, Any]:
    column = column or f.name
    t = f.type
    repeated = pa.types.is_list(t) or pa.types.is_large_list(t)
    if repeated:
        t = t.value_type
    out: dict[str, Any] = {
        "@type": "cr:Field",
        "@id": f"{record_set}/{column.replace('.', '/')}",
        "name": column,
        "description": _FIELD_DOCS.get(column, f"column {column}"),
        "source": {"fileSet": {"@id": file_set}, "extract": {"column": column.split(".")[0]}},
    }
    if pa.types.is_struct(t):
        out["subField"] = [_croissant_sub_field(record_set, column, t.field(i), file_set) for i in range(t.num_fields)]
    else:
        out["dataType"] = _croissant_type(t)
    if repeated:
        out["repeated"] = True
    return out


def _croissant_sub_field(record_set: str, parent: str, f: pa.Field, file_set: str) -> dict[str, Any]:
    return {
        "@type": "cr:Field",
        "@id": f"{record_set}/{parent}/{f.name}",
        "name": f.name,
        "dataType": _croissant_type(f.type),
        "source": {"fileSet": {"@id": file_set}, "extract": {"column": parent}, "transform": {"jsonPath": f.name}},
    }


_FIELD_DOCS = {
    "id": "stable record id (given by the source, or derived from source + position)",
    "content_hash": "sha256 of the normalized text (NFC, unified line endings, stripped)",
    "text": "the content",
    "origin": "who wrote it: human, model, mixed or unknown",
    "origin_evidence": "why the origin tag is believed: declared, detector, watermark or lineage",
    "origin_confidence": "1.0 when declared, else the calibrated probability",
    "generator": "the generating model, revision, generation, decoding parameters, seed and prompt id",
    "parent_ids": "ids of the records this one was derived from",
    "activity_id": "the ingest / generation / filter run that wrote the record",
    "source_uri": "where the record came from",
    "dataset": "source dataset name",
    "license": "license of the source",
    "created_at": "when the content was created (if known)",
    "ingested_at": "when provkit ingested it",
}


def croissant(ds: Dataset, name: str | None = None, url: str | None = None) -> dict[str, Any]:
    """The Croissant 1.0 JSON-LD description of a dataset's data parts."""
    schema = ds.schema("data")
    file_set = "parquet-files"
    entries = ds.file_entries("data")
    distribution: list[dict[str, Any]] = [
        {"@type": "cr:FileObject", "@id": e["path"], "name": e["path"], "contentUrl": e["path"],
         "contentSize": f"{e['bytes']} B", "encodingFormat": PARQUET_MIME, "sha256": e["sha256"]}
        for e in entries
    ]
    distribution.append({"@type": "cr:FileSet", "@id": file_set, "name": file_set,
                         "description": "all data parts of the dataset", "encodingFormat": PARQUET_MIME,
                         "includes": "data/*.parquet"})
    licenses = sorted({lic for lic in _distinct(ds, "license") if lic})
    title = name or ds.path.resolve().name
    fields = [_croissant_field("records", f, file_set) for f in (schema or [])]
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CROISSANT_CONFORMS,
        "name": title,
        "description": f"provkit dataset {title}: {ds.num_rows('data')} provenance-tagged text records "
                       f"(schema {ds.manifest.get('schema_version')}).",
        "url": url or ds.path.resolve().as_uri(),
        "version": ds.manifest.get("schema_version", "1.0"),
        "datePublished": ds.manifest.get("updated_at"),
        "license": licenses[0] if len(licenses) == 1 else (licenses or "unknown"),
        "isLiveDataset": False,
        "distribution": distribution,
        "recordSet": [{"@type": "cr:RecordSet", "@id": "records", "name": "records",
                       "description": "provenance-tagged text records (one row per record)",
                       "key": {"@id": "records/id"}, "field": fields}],
    }


def _distinct(ds: Dataset, column: str) -> list[Any]:
    seen: set[Any] = set()
    for batch in ds.iter_batches("data", columns=[column]):
        seen.update(batch.column(0).unique().to_pylist())
    return sorted(seen, key=str)


def export_croissant(ds: Dataset, out: Path) -> int:
    with open_atomic(out, "w") as f:
        json.dump(croissant(ds), f, indent=2, default=_json_default)
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
