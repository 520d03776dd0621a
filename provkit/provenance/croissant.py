"""Croissant 1.1 (MLCommons, http://mlcommons.org/croissant/1.1) descriptions of provkit datasets.

The Parquet parts are ``cr:FileObject`` entries (with sha256) whose
``contentUrl`` is relative to the folder the JSON-LD is written to, so
mlcroissant loads the records wherever the file lies.  The record set's
fields follow the Arrow schema (structs as sub-fields, lists repeated); the
``text`` field carries the per-record provenance (origin, evidence,
confidence, generator, parents) as value-level ``cr:annotation`` fields; the
dataset carries the Responsible-AI fields provkit knows: ``rai:dataCollection``
from ingest and merge activities, ``rai:dataPreprocessingProtocol`` from filter
pipelines and ``rai:machineAnnotationTools`` from the detectors they used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from provkit.errors import ProvkitError
from provkit.provenance.reader import Dataset

CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "annotation": "cr:annotation",
    "prov": "http://www.w3.org/ns/prov#",
}

CROISSANT_CONFORMS = "http://mlcommons.org/croissant/1.1"
PARQUET_MIME = "application/x-parquet"

FIELD_DOCS = {
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
    "metadata": "the source's own fields kept at ingest (--keep-fields), one JSON object",
}

ANNOTATIONS = ("origin", "origin_evidence", "origin_confidence", "generator", "parent_ids")
"""The per-record provenance carried as value-level annotations of the ``text`` field."""


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


def _field(record_set: str, f: pa.Field, source: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A ``cr:Field`` reading column ``f`` (structs as sub-fields, lists as repeated)."""
    t = f.type
    repeated = pa.types.is_list(t) or pa.types.is_large_list(t)
    if repeated:
        t = t.value_type
    out: dict[str, Any] = {
        "@type": "cr:Field",
        "@id": f"{record_set}/{prefix}{f.name}",
        "name": f.name,
        "description": FIELD_DOCS.get(f.name, f"column {f.name}"),
        "source": {**source, "extract": {"column": f.name}},
    }
    if pa.types.is_struct(t):
        out["subField"] = [
            {"@type": "cr:Field", "@id": f"{record_set}/{prefix}{f.name}/{t.field(i).name}",
             "name": t.field(i).name, "dataType": _croissant_type(t.field(i).type),
             "source": {**source, "extract": {"column": f.name}, "transform": {"jsonPath": t.field(i).name}}}
            for i in range(t.num_fields)]
    else:
        out["dataType"] = _croissant_type(t)
    if repeated:
        out["repeated"] = True
    return out


def _record_set(rs_id: str, schema: pa.Schema, source: dict[str, Any], description: str) -> dict[str, Any]:
    fields = [_field(rs_id, f, source) for f in schema]
    for field in fields:
        if field["name"] == "text":
            field["annotation"] = [_field(rs_id, schema.field(name), source, prefix="text/annotation/")
                                   for name in ANNOTATIONS if name in schema.names]
    return {"@type": "cr:RecordSet", "@id": rs_id, "name": rs_id, "description": description,
            "key": {"@id": f"{rs_id}/id"}, "field": fields}


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), base)).as_posix()
    except ValueError:  # another drive (Windows): an absolute path
        return path.resolve().as_posix()


def _distinct(ds: Dataset, column: str) -> list[Any]:
    seen: set[Any] = set()
    for batch in ds.iter_batches("data", columns=[column]):
        seen.update(batch.column(0).unique().to_pylist())
    return sorted(seen, key=str)


def _all_activities(ds: Dataset, limit: int = 64) -> list[dict[str, Any]]:
    """The activities of ``ds`` and of its ancestors (parents first, each dataset once), oldest first."""
    out: list[dict[str, Any]] = []
    queue, seen = [ds.path.resolve()], set()
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        try:
            current = ds if path == ds.path.resolve() else Dataset.open(path)
        except ProvkitError:
            continue
        out = current.activities + out
        queue.extend(current.parents)
    return out


def _rai(ds: Dataset) -> dict[str, Any]:
    """The Responsible-AI fields provkit knows from the activities of the dataset and its ancestors."""
    collection, preprocessing, tools = [], [], []
    for a in _all_activities(ds):
        params = a.get("params") or {}
        if a.get("kind") == "ingest":
            collection.append(f"{a['id']}: ingested {', '.join(map(str, params.get('sources', [])))} "
                              f"(declared origin {params.get('origin')!r})")
        elif a.get("kind") == "merge":
            collection.append(f"{a['id']}: merged {', '.join(map(str, params.get('inputs', [])))}")
        elif a.get("kind") == "filter":
            steps = (params.get("pipeline") or {}).get("steps", [])
            preprocessing.append(f"{a['id']}: provkit filter pipeline sha256 {params.get('pipeline_sha256')}: "
                                 + "; ".join(json.dumps(s, sort_keys=True) for s in steps))
            tools += [f"provkit {s.get('kind')} detector at {s.get('path')} (calibrated P(model))"
                      for s in steps if s.get("kind") == "detector"]
        if "detector" in params:
            tools.append(f"provkit detector {params['detector']} (activity {a['id']})")
    out: dict[str, Any] = {
        "rai:dataAnnotationProtocol": (
            "Each record carries origin (human, model, mixed, unknown) with origin_evidence: declared at ingest, "
            "or set by a detector, a watermark test or lineage; origin_confidence is 1.0 when declared, else the "
            "calibrated probability; generator names the model, generation and decoding of model records."),
    }
    if collection:
        out["rai:dataCollection"] = "; ".join(collection)
    if preprocessing:
        out["rai:dataPreprocessingProtocol"] = preprocessing
    if tools:
        out["rai:machineAnnotationTools"] = sorted(set(tools))
    return out


def croissant(ds: Dataset, name: str | None = None, url: str | None = None, base: Path | None = None) -> dict[str, Any]:
    """The Croissant 1.1 JSON-LD description of a dataset's data parts.

    ``base``: the folder the JSON-LD will be written to (default: the dataset
    directory); every ``contentUrl`` is relative to it, which is how
    mlcroissant resolves local files.  Written into the dataset directory, one
    ``cr:FileSet`` (``includes: data/*.parquet``) feeds one record set;
    elsewhere each part is a ``cr:FileObject`` feeding its own record set
    (``records``, ``records-1``, ...: one for a dataset of one part), since
    mlcroissant finds a local file set by walking the JSON-LD's whole folder.
    """
    base = (base or ds.path).resolve()
    schema = ds.schema("data") or pa.schema([])
    entries = ds.file_entries("data")
    distribution: list[dict[str, Any]] = [
        {"@type": "cr:FileObject", "@id": e["path"], "name": e["path"],
         "contentUrl": _relative(ds.path / e["path"], base), "contentSize": f"{e['bytes']} B",
         "encodingFormat": PARQUET_MIME, "sha256": e["sha256"]}
        for e in entries
    ]
    data_dir = (ds.path / "data").resolve()
    if base == ds.path.resolve():  # written into the dataset: mlcroissant walks only this folder
        file_set = "parquet-files"
        distribution.append({"@type": "cr:FileSet", "@id": file_set, "name": file_set,
                             "description": "all data parts of the dataset", "encodingFormat": PARQUET_MIME,
                             "includes": f"{_relative(data_dir, base)}/*.parquet"})
        record_sets = [_record_set("records", schema, {"fileSet": {"@id": file_set}},
                                   "provenance-tagged text records (one row per record)")]
    else:
        record_sets = [_record_set("records" if i == 0 else f"records-{i}", schema, {"fileObject": {"@id": e["path"]}},
                                   f"provenance-tagged text records of part {e['path']}")
                       for i, e in enumerate(entries)]
    licenses = sorted({lic for lic in _distinct(ds, "license") if lic})
    title = name or ds.path.resolve().name
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
        "citeAs": f"provkit dataset {title}, {ds.path.resolve().as_uri()}, schema {ds.manifest.get('schema_version')}",
        **_rai(ds),
        "distribution": distribution,
        "recordSet": record_sets,
    }
