"""Combining datasets: prov merge, a provkit dataset as an ingest source, --keep-fields, --license-field,
and the filter report's breakdown by origin and evidence (issue 17, items 2 and 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provkit.engines import run_filter
from provkit.errors import DatasetError
from provkit.filters import FilterFlags, pipeline_from_flags
from provkit.provenance import Dataset, IngestConfig, builtin_texts, dataset_stats, ingest, lineage, merge_datasets, verify

from conftest import write_jsonl


@pytest.fixture
def human_and_model(tmp_path: Path) -> tuple[Path, Path]:
    """Real human text (stdlib docs) and model records derived from it (tagged with a generator and parents)."""
    texts = [t for t in builtin_texts() if len(t.split()) >= 30][:40]
    human = write_jsonl(tmp_path / "human.jsonl", [{"id": f"h{i}", "text": t, "lic": "PSF-2.0" if i % 2 else None,
                                                     "section": f"s{i % 3}"} for i, t in enumerate(texts)])
    # "model" text: the second half of each paragraph, reworded; plus one exact copy of a human text
    model_rows = [{"id": f"m{i}", "text": " ".join(reversed(t.split())), "parent": f"h{i}"} for i, t in enumerate(texts[:20])]
    model_rows.append({"id": "m-copy", "text": texts[0], "parent": "h0"})
    model = write_jsonl(tmp_path / "model.jsonl", model_rows)
    H, M = tmp_path / "H", tmp_path / "M"
    ingest([str(human)], H, IngestConfig(id_field="id", license_field="lic", license="unknown-licence",
                                         keep_fields=("section",), dataset="stdlib-docs"))
    ingest([str(model)], M, IngestConfig(origin="model", id_field="id", parent_field="parent",
                                         generator_model="tiny-opt", generation=1, parent_datasets=(str(H),)))
    return H, M


def _by_id(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in Dataset.open(path).read().to_pylist()}


def test_keep_fields_and_license_field(human_and_model):
    H, _ = human_and_model
    rows = _by_id(H)
    assert rows["h1"]["license"] == "PSF-2.0" and rows["h0"]["license"] == "unknown-licence"
    assert json.loads(rows["h4"]["metadata"]) == {"section": "s1"}


def test_merge_keeps_provenance_and_checks_ids(tmp_path, human_and_model):
    H, M = human_and_model
    s = merge_datasets([H, M], tmp_path / "C")
    assert s.written == 61 and s.by_origin == {"human": 40, "model": 21} and verify(tmp_path / "C") == []
    merged, model = _by_id(tmp_path / "C"), _by_id(M)
    for key in ("origin", "origin_evidence", "generator", "parent_ids", "activity_id", "source_uri", "ingested_at"):
        assert merged["m3"][key] == model["m3"][key]
    assert json.loads(merged["h4"]["metadata"]) == {"section": "s1"} and merged["m3"]["metadata"] is None
    assert [n.id for n in lineage(tmp_path / "C", "m3")] == ["m3", "h3"]
    ds = Dataset.open(tmp_path / "C")
    assert {Path(p["absolute"]).name for p in ds.manifest["parents"]} == {"H", "M"}
    assert ds.activities[-1]["kind"] == "merge"
    with pytest.raises(DatasetError, match=r"record id 'h0' is already in .*H; .*--on-duplicate skip"):
        merge_datasets([H, tmp_path / "C"], tmp_path / "D")
    assert not (tmp_path / "D").exists()
    s = merge_datasets([H, tmp_path / "C"], tmp_path / "D", on_duplicate="skip")
    assert s.written == 61 and s.skipped_duplicates == 40


def test_provkit_dataset_is_an_ingest_source(tmp_path, human_and_model):
    H, M = human_and_model
    s = ingest([str(H), str(M)], tmp_path / "C")
    assert s.by_origin == {"human": 40, "model": 21}
    got, model, human = _by_id(tmp_path / "C"), _by_id(M), _by_id(H)
    for key in ("origin", "origin_evidence", "origin_confidence", "generator", "parent_ids", "activity_id",
                "source_uri", "license", "metadata"):
        assert got["m5"][key] == model["m5"].get(key) and got["h5"][key] == human["h5"][key]
    assert {Path(p["absolute"]).name for p in Dataset.open(tmp_path / "C").manifest["parents"]} == {"H", "M"}


def test_merge_then_filter_keeps_every_origin_tag_and_reports_by_origin(tmp_path, human_and_model):
    H, M = human_and_model
    merge_datasets([H, M], tmp_path / "C")
    result = run_filter(tmp_path / "C", tmp_path / "F", pipeline_from_flags(FilterFlags(dedup=("exact",), tail_alpha=0.5)))
    report = result.report
    kept = _by_id(tmp_path / "F")
    merged = _by_id(tmp_path / "C")
    assert {r["origin"] for r in kept.values()} == {"human", "model"}
    for rid, r in kept.items():  # every kept record keeps its tags as they were
        assert (r["origin"], r["origin_evidence"], r["generator"]) == \
            (merged[rid]["origin"], merged[rid]["origin_evidence"], merged[rid]["generator"])
    prov = report["provenance"]
    assert prov["input_by_origin"] == {"human": 40, "model": 21}
    step = prov["steps"]["exact_dedup"]
    assert step["dropped_by_origin"] == {"model": 1}  # the copy of h0 (the human record wins)
    assert step["in_by_origin"] == {"human": 40, "model": 21} and step["kept_by_origin"] == {"human": 40, "model": 20}
    assert step["dropped_by_evidence"] == {"declared": 1}
    [reason] = step["examples"]
    assert [e["id"] for e in step["examples"][reason]] == ["m-copy"]
    assert set(prov["sample_weight_by_origin"]) == {"human", "model"}
    md = (tmp_path / "F" / "report.md").read_text()
    assert "## By origin" in md and "m-copy" in md
    st = dataset_stats(tmp_path / "F")
    assert st["filter"]["steps"][0]["dropped_by_origin"] == {"model": 1}


def test_hf_objects_in_and_out(tmp_path, human_and_model):
    datasets = pytest.importorskip("datasets")
    H, M = human_and_model
    merge_datasets([H, M], tmp_path / "C")
    hf = Dataset.open(tmp_path / "C").to_hf()
    assert isinstance(hf, datasets.Dataset) and hf.num_rows == 61 and set(hf["origin"]) == {"human", "model"}
    s = ingest([hf], tmp_path / "back")  # provkit columns are there: kept as they are
    back, merged = _by_id(tmp_path / "back"), _by_id(tmp_path / "C")
    assert s.written == 61 and back["m2"]["generator"] == merged["m2"]["generator"]
    assert back["m2"]["parent_ids"] == ["h2"] and back["m2"]["activity_id"] == merged["m2"]["activity_id"]
    plain = datasets.Dataset.from_dict({"text": ["one plain text", "another plain text"], "src": ["a", "b"]})
    ingest([plain], tmp_path / "plain", IngestConfig(origin="model", keep_fields=("src",)))
    rows = list(_by_id(tmp_path / "plain").values())
    assert [r["origin"] for r in rows] == ["model", "model"] and json.loads(rows[1]["metadata"]) == {"src": "b"}
    stream = Dataset.open(tmp_path / "C").to_hf(streaming=True)
    ingest([stream], tmp_path / "streamed")
    assert Dataset.open(tmp_path / "streamed").num_rows() == 61
    plain.save_to_disk(str(tmp_path / "saved"))
    assert ingest([f"hf:{tmp_path / 'saved'}"], tmp_path / "from-disk").written == 2
