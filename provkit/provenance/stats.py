"""Dataset statistics and inspection (``prov stats`` / ``prov inspect``).

Counts by origin, generator model, generation, dataset and source; summaries
of text length (Unicode characters) and token count.  Tokens here are
whitespace tokens: maximal runs of non-whitespace characters (``len(t.split())``
in Python), computed with Arrow's ``count_substring_regex(r"\\S+")``.  The
summaries keep two int32 values per record (8 bytes) to give exact quantiles.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.core.hashing import string_buffers
from provkit.core.text import whitespace_token_counts
from provkit.provenance.reader import Dataset

QUANTILES = (0.5, 0.9, 0.99)
TOP_SOURCES = 20


def summarize(values: np.ndarray) -> dict[str, Any]:
    """min, mean, quantiles, max and a log2 histogram (bucket k counts values in [2^(k-1), 2^k))."""
    if not len(values):
        return {"min": None, "mean": None, "max": None, **{f"p{int(q * 100)}": None for q in QUANTILES},
                "histogram_log2": {}}
    buckets = np.ceil(np.log2(np.maximum(values, 1) + 1e-9)).astype(int)
    edges, counts = np.unique(np.where(values <= 0, 0, buckets), return_counts=True)
    return {
        "min": int(values.min()),
        "mean": round(float(values.mean()), 2),
        **{f"p{int(q * 100)}": int(np.quantile(values, q, method="lower")) for q in QUANTILES},
        "max": int(values.max()),
        "histogram_log2": {("0" if e == 0 else f"<{2 ** int(e)}"): int(c) for e, c in zip(edges, counts)},
    }


def _count(counter: Counter, column: pa.Array, missing: str) -> None:
    for item in pc.value_counts(column).to_pylist():
        key = item["values"]
        counter[missing if key is None else str(key)] += item["counts"]


def dataset_stats(path: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """The statistics of a dataset's data records, streamed batch by batch.

    With ``verify`` each part is checked against the manifest's size and sha256 before it is read.
    """
    ds = Dataset.open(path, verify=verify)
    by = {k: Counter() for k in ("origin", "evidence", "generator", "generation", "dataset", "source")}
    chars: list[np.ndarray] = []
    tokens: list[np.ndarray] = []
    cols = ["text", "origin", "origin_evidence", "generator", "dataset", "source_uri"]
    for batch in ds.iter_batches("data", columns=cols, batch_size=16384):
        text = batch.column("text")
        _count(by["origin"], batch.column("origin").dictionary_decode() if pa.types.is_dictionary(
            batch.column("origin").type) else batch.column("origin"), "unknown")
        evidence = batch.column("origin_evidence")
        _count(by["evidence"], evidence.dictionary_decode() if pa.types.is_dictionary(evidence.type) else evidence,
               "none")
        gen = batch.column("generator")
        _count(by["generator"], pc.struct_field(gen, "model"), "none (human or unknown)")
        _count(by["generation"], pc.struct_field(gen, "generation"), "none")
        _count(by["dataset"], batch.column("dataset"), "none")
        _count(by["source"], batch.column("source_uri"), "none")
        chars.append(pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.int32))
        tokens.append(whitespace_token_counts(*string_buffers(text)))
    sources = by["source"].most_common()
    return {
        "path": str(ds.path),
        "records": ds.num_rows("data"),
        "by_origin": dict(by["origin"].most_common()),
        "by_evidence": dict(by["evidence"].most_common()),
        "by_generator": dict(by["generator"].most_common()),
        "by_generation": dict(sorted(by["generation"].items())),
        "by_dataset": dict(by["dataset"].most_common()),
        "by_source": dict(sources[:TOP_SOURCES]),
        "sources": len(sources),
        "text_chars": summarize(np.concatenate(chars) if chars else np.array([], np.int32)),
        "whitespace_tokens": summarize(np.concatenate(tokens) if tokens else np.array([], np.int32)),
        "rejects": ds.num_rows("rejects"),
        "quarantine": ds.num_rows("quarantine"),
        "filter": _filter_summary(ds),
    }


def _filter_summary(ds: Dataset) -> dict[str, Any] | None:
    """A filtered dataset's per-step counts by origin and evidence (from its ``report.json``), else None."""
    path = ds.path / "report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    trace = report.get("provenance") or {}
    steps = []
    for st in report.get("steps", []):
        by = trace.get("steps", {}).get(st["step"], {})
        steps.append({"step": st["step"], "in": st["in"], "kept": st["kept"], "dropped": st["dropped"],
                      **{k: by.get(k, {}) for k in ("in_by_origin", "kept_by_origin", "dropped_by_origin",
                                                     "dropped_by_evidence")}})
    return {"input": report.get("input"), "kept": report.get("kept"), "steps": steps,
            "sample_weight": report.get("sample_weight"),
            "sample_weight_by_origin": trace.get("sample_weight_by_origin", {})}


def dataset_info(path: str | Path) -> dict[str, Any]:
    """What ``prov inspect`` shows: schema, files with sizes and rows, parents, activities."""
    ds = Dataset.open(path)
    schema = ds.schema("data")
    return {
        "path": str(ds.path),
        "schema_version": ds.manifest.get("schema_version"),
        "created_at": ds.manifest.get("created_at"),
        "updated_at": ds.manifest.get("updated_at"),
        "rows": ds.manifest.get("rows", {}),
        "schema": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema] if schema else [],
        "files": [{k: f[k] for k in ("path", "kind", "rows", "bytes", "sha256")} for f in ds.manifest["files"]],
        "bytes": sum(int(f["bytes"]) for f in ds.manifest["files"]),
        "parents": ds.manifest.get("parents", []),
        "activities": [{k: a.get(k) for k in ("id", "kind", "started_at", "ended_at", "used")}
                       for a in ds.activities],
    }
