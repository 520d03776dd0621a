"""Exports that other tools load: Croissant read by mlcroissant wherever written, PROV-JSON read by the
`prov` package with every referenced activity defined, gzip where the suffix says so (issue 17, item 4)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from provkit.engines import run_filter
from provkit.filters import FilterFlags, pipeline_from_flags
from provkit.provenance import Dataset, IngestConfig, builtin_texts, export_dataset, ingest, merge_datasets

from conftest import write_jsonl


@pytest.fixture(scope="module")
def filtered(tmp_path_factory) -> Path:
    """A human + model merge (real stdlib text), filtered: its records name the ingest activities of its ancestors."""
    tmp = tmp_path_factory.mktemp("std")
    texts = [t for t in builtin_texts() if len(t.split()) >= 20][:30]
    write_jsonl(tmp / "h.jsonl", [{"id": f"h{i}", "text": t} for i, t in enumerate(texts)])
    write_jsonl(tmp / "m.jsonl", [{"id": f"m{i}", "text": " ".join(t.split()[::-1]), "parent": f"h{i}"}
                                  for i, t in enumerate(texts[:10])] + [{"id": "mc", "text": texts[3]}])
    ingest([str(tmp / "h.jsonl")], tmp / "H", IngestConfig(id_field="id", license="PSF-2.0"))
    ingest([str(tmp / "m.jsonl")], tmp / "M", IngestConfig(origin="model", id_field="id", parent_field="parent",
                                                          generator_model="tiny-opt", generation=1))
    merge_datasets([tmp / "H", tmp / "M"], tmp / "C")
    run_filter(tmp / "C", tmp / "F", pipeline_from_flags(FilterFlags(dedup=("exact",))))
    return tmp / "F"


def test_croissant_records_load_in_mlcroissant_from_another_folder(filtered, tmp_path):
    mlc = pytest.importorskip("mlcroissant")
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    ids = set(Dataset.open(filtered).read(columns=["id"]).column(0).to_pylist())
    for out in (elsewhere / "croissant.json", filtered / "croissant.json"):
        export_dataset(filtered, "croissant", out)
        records = list(mlc.Dataset(jsonld=str(out)).records("records"))
        assert {r["records/id"].decode() for r in records} == ids and len(ids) == 40
        origins = {r["records/origin"].decode() for r in records}
        assert origins == {"human", "model"}
    doc = json.loads((elsewhere / "croissant.json").read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    text = next(f for f in doc["recordSet"][0]["field"] if f["name"] == "text")
    assert [a["name"] for a in text["annotation"]] == ["origin", "origin_evidence", "origin_confidence", "generator",
                                                      "parent_ids"]
    assert "exact_dedup" in doc["rai:dataPreprocessingProtocol"][0] and "merged" in doc["rai:dataCollection"]


def test_prov_json_defines_every_activity_it_references(filtered, tmp_path):
    prov_model = pytest.importorskip("prov.model")
    out = tmp_path / "prov.json.gz"
    export_dataset(filtered, "prov-json", out)
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip, as the suffix says
    doc = prov_model.ProvDocument.deserialize(content=gzip.open(out).read().decode(), format="json")
    defined = {r.identifier for r in doc.get_records(prov_model.ProvActivity)}
    referenced = set()
    for rel in doc.get_records(prov_model.ProvRelation):
        for name, value in rel.formal_attributes:
            if name in (prov_model.PROV_ATTR_ACTIVITY, prov_model.PROV_ATTR_INFORMANT,
                        prov_model.PROV_ATTR_INFORMED) and value is not None:
                referenced.add(value)
    assert referenced and referenced <= defined
    generated = [r for r in doc.get_records(prov_model.ProvGeneration)]
    assert len(generated) >= 40  # one per record, plus the parts


def test_jsonl_gz_export_is_gzip(filtered, tmp_path):
    out = tmp_path / "x.jsonl.gz"
    assert export_dataset(filtered, "jsonl", out) == 40
    rows = [json.loads(line) for line in gzip.open(out, "rt")]
    assert len(rows) == 40 and out.read_bytes()[:2] == b"\x1f\x8b"
    plain = tmp_path / "x.jsonl"
    export_dataset(filtered, "jsonl", plain)
    assert [json.loads(line) for line in plain.read_text().splitlines()] == rows
