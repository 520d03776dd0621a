"""Ingest from every source kind into the record schema, appends, ids, and plain-tool readability."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import DOCS, write_jsonl
from provkit.cli import app
from provkit.errors import InputError
from provkit.provenance.ingest import value_counts
from provkit.provenance import (
    SCHEMA,
    Dataset,
    IdIndex,
    IngestConfig,
    content_hash,
    ingest,
    verify,
)
from provkit.provenance.readers import FieldMap, resolve_sources
from provkit.provenance.readers.jsonl import _parse_json_block, _parse_json_lines

runner = CliRunner()


def rows(ds: Path) -> list[dict]:
    return Dataset.open(ds).read().to_pylist()


def test_jsonl_records_carry_the_schema_fields(tmp_path, jsonl_file):
    s = ingest([str(jsonl_file)], tmp_path / "ds", IngestConfig(id_field="id", dataset="demo", license="CC-BY-4.0"))
    assert (s.read, s.written, s.quarantined) == (6, 6, 0)
    ds = Dataset.open(tmp_path / "ds")
    assert ds.read().schema.remove_metadata() == SCHEMA
    got = rows(tmp_path / "ds")
    assert [r["id"] for r in got] == [str(i) for i in range(6)]
    assert [r["text"] for r in got] == DOCS
    assert all(r["content_hash"] == content_hash(r["text"]) for r in got)
    assert {(r["origin"], r["origin_evidence"], r["origin_confidence"]) for r in got} == {("human", "declared", 1.0)}
    assert {r["dataset"] for r in got} == {"demo"} and {r["license"] for r in got} == {"CC-BY-4.0"}
    assert {r["source_uri"] for r in got} == {jsonl_file.resolve().as_uri()}
    assert {r["activity_id"] for r in got} == {s.activity_id}
    assert ds.activities[-1]["id"] == s.activity_id
    prov = ds.provenance()
    assert f"provkit:{s.activity_id}" in prov["activity"]
    assert verify(tmp_path / "ds") == []


def test_origin_generator_and_parent_fields(tmp_path):
    src = write_jsonl(tmp_path / "gen.jsonl", [
        {"uid": "a", "body": "a human sentence here", "who": "Human"},
        {"uid": "b", "body": "a model sentence here", "who": "model", "from": "a"},
        {"uid": "c", "body": "a second model sentence", "who": "model", "from": ["a", "b"]},
        {"uid": "d", "body": "nobody knows who wrote this", "who": "unknown"},
    ])
    cfg = IngestConfig(text_field="body", id_field="uid", origin_field="who", parent_field="from",
                       generator_model="opt-125m", generation=3)
    ingest([str(src)], tmp_path / "ds", cfg)
    got = {r["id"]: r for r in rows(tmp_path / "ds")}
    assert [got[k]["origin"] for k in "abcd"] == ["human", "model", "model", "unknown"]
    assert got["a"]["generator"] is None and got["a"]["parent_ids"] == []
    assert got["b"]["generator"]["model"] == "opt-125m" and got["b"]["generator"]["generation"] == 3
    assert got["b"]["parent_ids"] == ["a"] and got["c"]["parent_ids"] == ["a", "b"]
    assert got["d"]["origin_evidence"] is None and got["d"]["origin_confidence"] is None


def test_txt_split_modes_and_stable_derived_ids(tmp_path):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("first line\nsecond line\n\nthird after a blank\n")
    (d / "sub" / "b.txt").write_text("only one\n")
    ingest([str(d)], tmp_path / "files")
    assert sorted(r["id"] for r in rows(tmp_path / "files")) == ["a.txt", "sub/b.txt"]
    ingest([str(d)], tmp_path / "lines", IngestConfig(split="line"))
    got = rows(tmp_path / "lines")
    assert [(r["id"], r["text"]) for r in got] == [
        ("a.txt:1", "first line"), ("a.txt:2", "second line"), ("a.txt:4", "third after a blank"),
        ("sub/b.txt:1", "only one")]
    ingest([str(d / "a.txt")], tmp_path / "paras", IngestConfig(split="paragraph"))
    assert [(r["id"], r["text"]) for r in rows(tmp_path / "paras")] == [
        ("a.txt:1", "first line\nsecond line"), ("a.txt:4", "third after a blank")]
    # the same corpus moved elsewhere gives the same ids
    moved = tmp_path / "elsewhere" / "corpus"
    moved.parent.mkdir()
    os.rename(d, moved)
    ingest([str(moved)], tmp_path / "lines2", IngestConfig(split="line"))
    assert [r["id"] for r in rows(tmp_path / "lines2")] == [r["id"] for r in got]


def test_csv_parquet_gzip_and_glob_sources(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "t.csv").write_text('id,text\n1,"a, quoted\nmultiline text"\n2,plain\n', encoding="utf-8")
    pq.write_table(pa.table({"text": ["p1", "p2"], "n": [1, 2]}), tmp_path / "in" / "t.parquet")
    with gzip.open(tmp_path / "in" / "z.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "zipped"}) + "\n")
    s = ingest([str(tmp_path / "in" / "*")], tmp_path / "ds")
    assert s.written == 5
    got = {r["id"]: r["text"] for r in rows(tmp_path / "ds")}
    assert got == {"t.csv:2": "a, quoted\nmultiline text", "t.csv:4": "plain", "t.parquet:1": "p1",
                   "t.parquet:2": "p2", "z.jsonl.gz:1": "zipped"}


def test_builtin_corpus(tmp_path):
    s = ingest(["builtin:python-docs"], tmp_path / "ds")
    assert s.written > 2000 and s.quarantined == 0
    got = Dataset.open(tmp_path / "ds").read(columns=["id", "source_uri"]).to_pylist()
    assert got[0]["id"].startswith("pydoc:") and got[0]["source_uri"].startswith("python-docs://")


def test_hf_source_through_load_dataset_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    local = tmp_path / "local_hf"
    local.mkdir()
    write_jsonl(local / "train.jsonl", [{"text": t} for t in DOCS[:4]])
    s = ingest([f"hf:{local}"], tmp_path / "ds")  # datasets.load_dataset on a local folder works offline
    assert s.written == 4
    got = rows(tmp_path / "ds")
    assert [r["text"] for r in got] == DOCS[:4] and got[0]["id"] == f"hf:{local}:1"
    with pytest.raises(InputError) as exc:
        ingest(["hf:nobody-has/this-dataset-xyz"], tmp_path / "ds2")
    msg = str(exc.value)
    assert "hf:nobody-has/this-dataset-xyz" in msg and "\n" not in msg and "HF_DATASETS_OFFLINE" in msg
    assert not (tmp_path / "ds2").exists()


def test_append_adds_parts_and_refuses_duplicate_ids(tmp_path, jsonl_file):
    ds = tmp_path / "ds"
    ingest([str(jsonl_file)], ds, IngestConfig(id_field="id"))
    more = write_jsonl(tmp_path / "more.jsonl", [{"id": 100, "text": "a new record"}, {"id": 3, "text": "dup"}])
    before = (ds / "manifest.json").read_bytes()
    with pytest.raises(InputError, match=r"more.jsonl, line 2: duplicate id '3'"):
        ingest([str(more)], ds, IngestConfig(id_field="id"))
    assert (ds / "manifest.json").read_bytes() == before and verify(ds) == []
    s = ingest([str(more)], ds, IngestConfig(id_field="id", on_error="skip"))
    assert (s.mode, s.read, s.written, s.quarantined, s.by_reason) == ("appended", 2, 1, 1, {"duplicate id": 1})
    d = Dataset.open(ds)
    assert d.num_rows() == 7 and len(d.files("data")) == 2 and len(d.activities) == 2
    assert verify(ds) == []
    # duplicates inside one run are caught too
    twice = write_jsonl(tmp_path / "twice.jsonl", [{"id": "x", "text": "one"}, {"id": "x", "text": "two"}])
    with pytest.raises(InputError, match="line 2: duplicate id 'x'"):
        ingest([str(twice)], tmp_path / "ds3", IngestConfig(id_field="id"))


def test_output_readable_by_pyarrow_datasets_duckdb(tmp_path, jsonl_file):
    ingest([str(jsonl_file)], tmp_path / "ds", IngestConfig(id_field="id"))
    data = str(tmp_path / "ds" / "data")
    import duckdb
    import pyarrow.dataset as pads
    from datasets import load_dataset

    assert pads.dataset(data, format="parquet").to_table().num_rows == 6
    hf = load_dataset("parquet", data_files=f"{data}/*.parquet", split="train",
                      cache_dir=str(tmp_path / "hf-cache"))
    assert hf.num_rows == 6 and hf[0]["text"] == DOCS[0]
    con = duckdb.connect()
    assert con.execute(f"select count(*), min(origin) from read_parquet('{data}/*.parquet')").fetchone() == (6, "human")


def test_fast_and_slow_json_paths_agree(tmp_path):
    """The pyarrow block parser and the line-by-line fallback give the same table on good input."""
    lines = [{"text": t, "id": i, "o": "human", "p": [str(i - 1)] if i else None} for i, t in enumerate(DOCS)]
    lines.append({"text": "unicode \u00e9\u4e2d \U0001f600 and \"quotes\"", "id": 99, "o": "model", "p": ["x", "y"]})
    block = "".join(json.dumps(r) + "\n" for r in lines).encode()
    wanted = FieldMap("text", "id", "o", "p").wanted()
    schema = pa.schema([("text", pa.large_string()), ("o", pa.string())])
    fast = _parse_json_block(block, schema, wanted)
    assert fast is not None
    src = resolve_sources([str(write_jsonl(tmp_path / "x.jsonl", []))])[0]
    slow, bad = _parse_json_lines(src, block, 1, wanted)
    assert bad == []
    assert fast.column("text").to_pylist() == slow.column("text").to_pylist()
    assert fast.column("id").cast(pa.string()).to_pylist() == slow.column("id").to_pylist()
    assert fast.column("origin").to_pylist() == slow.column("origin").to_pylist()
    assert [p if p is None else list(p) for p in fast.column("parent").to_pylist()] == slow.column("parent").to_pylist()


def test_id_index_matches_a_python_set():
    rng = np.random.default_rng(0)
    ids = [f"doc-{x}" for x in rng.integers(0, 3000, size=6000)]
    index, seen = IdIndex(max_runs=3), set()
    for start in range(0, len(ids), 500):
        batch = ids[start:start + 500]
        want = []
        for i in batch:
            want.append(i in seen)
            seen.add(i)
        assert index.duplicates(batch).tolist() == want
    assert len(index) == len(seen)


def test_cli_ingest_json_summary(tmp_path, jsonl_file):
    res = runner.invoke(app, ["ingest", str(jsonl_file), "--out", str(tmp_path / "ds"), "--origin", "model",
                              "--generator-model", "tiny-opt", "--generation", "1", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["written"] == 6 and summary["by_origin"] == {"model": 6}
    res = runner.invoke(app, ["stats", str(tmp_path / "ds"), "--json"])
    st = json.loads(res.stdout)
    assert st["records"] == 6 and st["by_origin"] == {"model": 6} and st["by_generator"] == {"tiny-opt": 6}
    assert st["by_generation"] == {"1": 6}
    assert st["whitespace_tokens"]["max"] == max(len(t.split()) for t in DOCS)
    assert st["text_chars"]["min"] == min(len(t) for t in DOCS)


def test_long_line_within_the_limit_takes_the_fast_path_intact(tmp_path):
    """A 3 MB record is longer than pyarrow's 2 MiB parse sub-block: it must still come out whole."""
    big = "word " * 600_000
    src = write_jsonl(tmp_path / "long.jsonl", [{"text": "short"}, {"text": big}, {"text": "short again"}])
    s = ingest([str(src)], tmp_path / "ds")
    assert s.written == 3
    assert [len(r["text"]) for r in rows(tmp_path / "ds")] == [5, len(big), 11]


def test_line_numbers_stay_right_after_a_too_large_line_in_an_earlier_block(tmp_path):
    """A skipped over-long line keeps its place: ids ``file:line`` of later blocks name their own line."""
    lines = [json.dumps({"text": ("y" * 5000) if n == 3 else f"record {n} " + "x" * 90}) for n in range(1, 3001)]
    src = tmp_path / "long.jsonl"
    src.write_text("\n".join(lines) + "\n")
    s = ingest([str(src)], tmp_path / "ds", IngestConfig(on_error="skip", max_record_bytes=1000, block_bytes=1 << 16))
    assert (s.written, s.quarantined) == (2999, 1)
    table = Dataset.open(tmp_path / "ds").read()
    for rid, text in zip(table.column("id").to_pylist(), table.column("text").to_pylist()):
        assert text.startswith(f"record {rid.rsplit(':', 1)[1]} ")
    q = pq.read_table(tmp_path / "ds" / "quarantine")
    assert q.column("line").to_pylist() == [3]


def test_origin_counts_by_dictionary_indices_equal_counting_the_values():
    """value_counts counts a dictionary column by its indices: the same as counting its decoded values (a repeated
    dictionary entry, unused entries and null rows included) and the same as a plain string column."""
    values = ["human", "model", "human", None, "unknown", "human", "model"]
    plain = pa.array(values, pa.string())
    dictionary = pa.DictionaryArray.from_arrays(pa.array([0, 1, 3, None, 2, 3, 1], pa.int32()),
                                                pa.array(["human", "model", "unknown", "human", "mixed"]))
    assert dictionary.to_pylist() == values
    expected = Counter(v for v in values if v is not None)
    assert value_counts(dictionary) == expected == value_counts(plain)
    assert value_counts(pa.array([], pa.dictionary(pa.int32(), pa.string()))) == Counter()
