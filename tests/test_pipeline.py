"""The pipeline runner on real data: planted duplicates, conservation, rejects, config errors, empty input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from filter_fixtures import bigram_model_texts, human_texts, write_dataset
from provkit.errors import ConfigError, ProvkitError
from provkit.filters import (
    FilterFlags,
    load_pipeline,
    parse_pipeline,
    pipeline_from_flags,
)
from provkit.engines import run_filter
from provkit.provenance import COLUMNS, Activity, Dataset, DatasetWriter, verify

ROOT = Path(__file__).resolve().parents[1]


def _near_copy(text: str) -> str:
    """Change the last word of a text of >= 50 words: one 5-gram shingle differs, Jaccard >= 0.95."""
    words = text.split()
    words[-1] = "CHANGED"
    return " ".join(words)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """200 human docs + exact copies (as model records) + near copies + bigram model text (gen 1)."""
    root = tmp_path_factory.mktemp("planted")
    base = [t for t in human_texts(2000) if len(t.split()) >= 50][:200]
    model = [base[i] for i in range(0, 20)] + [_near_copy(base[i]) for i in range(20, 40)] + bigram_model_texts(40, seed=5)
    write_dataset(root / "in", base, [model])
    return root / "in"


def _ids(path, kind="data"):
    return Dataset.open(path).read(kind, columns=["id"]).column("id").to_pylist()


def test_dedup_pipeline_drops_planted_duplicates_keeps_human(planted, tmp_path):
    cfg = parse_pipeline({"steps": [{"kind": "exact_dedup"}, {"kind": "minhash_dedup", "threshold": 0.8}]}, "t")
    r = run_filter(planted, tmp_path / "out", cfg)
    assert r.report["dropped"]["exact_duplicate"] == 20
    assert r.report["dropped"]["near_duplicate"] >= 20
    rejects = Dataset.open(tmp_path / "out").read("rejects").to_pylist()
    by_id = {row["id"]: row for row in rejects}
    for i in range(20):
        assert by_id[f"g1-{i}"]["drop_reason"] == "exact_duplicate"
        assert by_id[f"g1-{i}"]["drop_step"] == "exact_dedup"
        assert by_id[f"g1-{i}"]["dup_of"] == f"h{i}"  # the human original survives
    for i in range(20, 40):
        assert by_id[f"g1-{i}"]["drop_reason"] == "near_duplicate"
        assert by_id[f"g1-{i}"]["dup_of"] == f"h{i}"
    assert all(f"h{i}" in set(_ids(tmp_path / "out")) for i in range(40))


def test_conservation_and_every_row_has_one_fate(planted, tmp_path):
    cfg = load_pipeline(ROOT / "pipelines" / "default.toml")
    r = run_filter(planted, tmp_path / "out", cfg)
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["input"] == rep["kept"] + sum(rep["dropped"].values()) == 280
    for st in rep["steps"]:
        assert st["in"] == st["kept"] + sum(st["dropped"].values())
    kept, rejected = _ids(tmp_path / "out"), _ids(tmp_path / "out", "rejects")
    assert sorted(kept + rejected) == sorted(_ids(planted))
    assert len(kept) == rep["kept"] == r.report["kept"]
    assert verify(tmp_path / "out") == []
    assert "report.md" in {f["path"] for f in Dataset.open(tmp_path / "out").manifest["files"]}


def test_output_keeps_schema_columns_and_records_the_pipeline(planted, tmp_path):
    cfg = parse_pipeline({"steps": [{"kind": "tail", "alpha": 0.5}]}, "t")
    run_filter(planted, tmp_path / "out", cfg)
    out = Dataset.open(tmp_path / "out")
    src = Dataset.open(planted).read().sort_by("id")
    got = out.read().sort_by("id")
    for col in COLUMNS:
        assert got.column(col).equals(src.column(col)), col
    assert got.column_names[len(COLUMNS):] == ["tail_score", "tail_weight", "sample_weight"]
    activity = out.manifest["activities"][-1]
    assert activity["kind"] == "filter"
    assert activity["params"]["pipeline_sha256"] == cfg.sha256()
    assert out.parents == [planted.resolve()]


def test_results_do_not_depend_on_batch_size(planted, tmp_path):
    cfg = load_pipeline(ROOT / "pipelines" / "default.toml")
    a = run_filter(planted, tmp_path / "a", cfg, engine_options={"batch_size": 17})
    b = run_filter(planted, tmp_path / "b", cfg, engine_options={"batch_size": 4096})
    ta, tb = Dataset.open(a.out).read(), Dataset.open(b.out).read()
    assert ta.equals(tb)  # same rows, order, annotations and weights
    assert Dataset.open(a.out).read("rejects").equals(Dataset.open(b.out).read("rejects"))
    assert a.report["dropped"] == b.report["dropped"]


def test_empty_input_gives_empty_output_and_report(tmp_path):
    with DatasetWriter(tmp_path / "empty", Activity("ingest")):
        pass
    cfg = load_pipeline(ROOT / "pipelines" / "default.toml")
    r = run_filter(tmp_path / "empty", tmp_path / "out", cfg)
    assert r.report["input"] == r.report["kept"] == 0 and r.report["dropped"] == {}
    assert Dataset.open(tmp_path / "out").num_rows() == 0
    assert verify(tmp_path / "out") == []


def test_not_a_dataset_is_a_clear_error(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.parquet").write_bytes(b"")
    with pytest.raises(ProvkitError, match="manifest.json is missing"):
        run_filter(tmp_path / "plain", tmp_path / "out", parse_pipeline({"steps": []}, "t"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("doc, message", [
    ({"steps": [{"kind": "tail"}, {"kind": "mix"}, {"kind": "minhash_dedup", "threshold": "high"}]},
     't.toml: steps[2].threshold: expected a number, got "high"'),
    ({"steps": [{"kind": "blur"}]}, 't.toml: steps[0].kind: unknown step "blur"'),
    ({"steps": [{"kind": "tail", "alpah": 1}]}, "t.toml: steps[0].alpah: unknown key for step 'tail'"),
    ({"steps": [{"kind": "tail", "target": 2.5}]}, "t.toml: steps[0].target: expected an integer, got 2.5"),
    ({"steps": [{"kind": "tail", "cap": 0.5}]}, "t.toml: steps[0].cap: must be >= 1"),
    ({"stepz": []}, "t.toml: stepz: unknown key"),
])
def test_config_errors_name_the_key(doc, message):
    with pytest.raises(ConfigError) as info:
        parse_pipeline(doc, "t.toml")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_bad_toml_names_the_file(tmp_path):
    (tmp_path / "p.toml").write_text("[[steps]\nkind=")
    with pytest.raises(ConfigError, match=r"p\.toml: not valid TOML"):
        load_pipeline(tmp_path / "p.toml")


def test_flags_build_the_same_pipeline_as_toml(tmp_path):
    flags = FilterFlags(dedup=("exact", "minhash"), minhash_threshold=0.7, tail_alpha=0.5, mix="keep-human=0.1",
                        mix_alpha=0.4, seed=3)
    from_flags = pipeline_from_flags(flags)
    (tmp_path / "p.toml").write_text(from_flags.to_toml())
    from_file = load_pipeline(tmp_path / "p.toml")
    assert from_file.to_json() == from_flags.to_json() and from_file.sha256() == from_flags.sha256()
    assert [s.kind for s in from_flags.steps] == ["exact_dedup", "minhash_dedup", "tail", "mix"]
    with pytest.raises(ConfigError, match="--minhash-threshold"):
        pipeline_from_flags(FilterFlags(minhash_threshold=0.5))


def test_input_is_never_modified(planted, tmp_path):
    before = {p.name: p.stat().st_mtime_ns for p in planted.rglob("*")}
    run_filter(planted, tmp_path / "o", parse_pipeline({"steps": [{"kind": "mix", "policy": "replace"}]}, "t"))
    assert {p.name: p.stat().st_mtime_ns for p in planted.rglob("*")} == before
    with pytest.raises(ConfigError, match="never modified"):
        run_filter(planted, planted, parse_pipeline({"steps": []}, "t"))


def test_rejects_schema_is_consistent_across_steps(planted, tmp_path):
    cfg = parse_pipeline({"steps": [{"kind": "exact_dedup"}, {"kind": "mix", "policy": "replace"}]}, "t")
    run_filter(planted, tmp_path / "o", cfg)
    rejects = Dataset.open(tmp_path / "o").read("rejects")
    steps = set(rejects.column("drop_step").to_pylist())
    assert steps == {"exact_dedup", "mix"}
    assert rejects.schema.field("dup_of").type == pa.string()
