"""The Ray engine gives the local engine's results: same kept ids, rejects, reasons, annotations, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from filter_fixtures import bigram_model_texts, human_texts, write_dataset
from provkit.engines import get_engine
from provkit.engines import run_filter
from provkit.filters import BaseStep, FilterFlags, pipeline_from_flags
from provkit.provenance import Activity, Dataset, DatasetWriter, verify

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local():
    pytest.importorskip("ray")
    from provkit.engines.ray import RayOptions, start_ray

    start_ray(RayOptions(num_cpus=2, object_store_bytes=200 << 20))
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False


def planted_corpus(path: Path) -> Path:
    human = [t for t in human_texts(400) if len(t.split()) > 30][:150]
    exact = human[:10]  # exact duplicates
    near = [" ".join(t.split()[:-1] + ["changed"]) for t in human[10:30]]  # one word differs
    chain = [" ".join(human[40].split()[: -2 * k] or ["x"]) for k in (1, 2)]  # chains of near-dups
    model = bigram_model_texts(60, seed=5) + ["the the the the the the the the the the"] * 3
    return write_dataset(path, human + exact + near + chain, [model])


def table_of(path: Path, kind: str) -> pa.Table:
    table = Dataset.open(path).read(kind)
    return table.sort_by("id") if table.num_rows else table


def test_ray_engine_equals_local(tmp_path, ray_local):
    src = planted_corpus(tmp_path / "in")
    flags = FilterFlags(dedup=("exact", "minhash"), minhash_threshold=0.8, quality=True, tail_alpha=0.5,
                        mix="keep-human=0.5", seed=3)
    local = run_filter(src, tmp_path / "local", pipeline_from_flags(flags), engine="local")
    ray = run_filter(src, tmp_path / "ray", pipeline_from_flags(flags), engine="ray",
                     engine_options={"batch_size": 64})  # many score tasks, batch edges inside files
    assert verify(tmp_path / "ray") == []
    for kind in ("data", "rejects"):
        assert table_of(tmp_path / "ray", kind).equals(table_of(tmp_path / "local", kind)), kind
    # the planted duplicates really were found, so the comparison is not vacuous
    dropped = local.report["dropped"]
    assert dropped.get("exact_duplicate", 0) >= 10 and dropped.get("near_duplicate", 0) >= 20
    strip = lambda r: json.dumps([{k: v for k, v in s.items() if k != "seconds"} for s in r["steps"]], sort_keys=True)
    assert strip(ray.report) == strip(local.report)
    assert (ray.report["input"], ray.report["kept"], ray.report["dropped"]) == (
        local.report["input"], local.report["kept"], local.report["dropped"])
    # report.json carries the cluster's figures (the local engine clusters in memory: none)
    assert ray.report["clustering"]["minhash_dedup"]["candidate_pairs"] > 0 and local.report["clustering"] == {}


class FailsOnId(BaseStep):
    """A step whose score raises on one record: a task failure inside a Ray worker."""

    name = "fails"

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if "h7" in batch.column("id").to_pylist():
            raise ValueError("unreadable record h7")
        return batch


def test_failed_ray_run_leaves_no_dataset(tmp_path, ray_local):
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import a test module
    src = write_dataset(tmp_path / "in", human_texts(20))
    engine = get_engine("ray", batch_size=4)
    with pytest.raises(Exception, match="unreadable record h7"):
        with DatasetWriter(tmp_path / "out", Activity("filter")) as writer:
            engine.run(Dataset.open(src), [FailsOnId(None)], writer)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def chain_corpus(path: Path) -> tuple[Path, dict[str, str]]:
    """Human and model rows with near-duplicate chains (A~B, B~C, A!~C), identical signatures and wordless rows.

    Returns the dataset and, per planted role, its record id.
    """
    words = " ".join(human_texts(400)).split()
    window = lambda start: " ".join(words[start:start + 200])  # noqa: E731 - overlapping windows of one text
    human = [t for t in human_texts(60, start=400) if len(t.split()) > 30][:40]
    roles = {"h_a": window(0), "h_b": window(10), "h_c": window(20),       # human chain: survivor = A (earliest)
             "same_1": "Stable ids " + window(1000), "same_2": "stable  IDS " + window(1000),  # same signature
             "empty_1": "!!! ???", "empty_2": "!!! ???"}                   # no words: never near-duplicates
    model_roles = {"m_a": window(3000), "m_c": window(3020)}               # with human h_mb between them
    roles["h_mb"] = window(3010)
    human_ids = [f"h{i}" for i in range(len(human))] + list(roles)
    src = write_dataset(path, human + list(roles.values()), [list(model_roles.values())], human_ids=human_ids)
    ids = {r: r for r in roles} | {r: f"g1-{i}" for i, r in enumerate(model_roles)}
    return src, ids


def test_chains_through_prov_filter_on_both_engines(tmp_path, ray_local):
    from typer.testing import CliRunner

    from provkit.cli import app
    from provkit.filters.dedup import NearDupConfig
    from provkit.filters.minhash import estimate_jaccard, signatures

    src, ids = chain_corpus(tmp_path / "in")
    threshold = 0.86
    texts = dict(zip(*[Dataset.open(src).read("data").column(c).to_pylist() for c in ("id", "text")]))
    sig = signatures([texts[ids[r]] for r in ("h_a", "h_b", "h_c", "same_1", "same_2")],
                     NearDupConfig(threshold=threshold).minhash())
    est = estimate_jaccard(sig, np.array([0, 1, 0, 3]), np.array([1, 2, 2, 4]))
    assert est[0] >= threshold and est[1] >= threshold and est[2] < threshold  # a chain: A~B, B~C, A!~C
    assert est[3] == 1.0 and texts[ids["same_1"]] != texts[ids["same_2"]]
    runner = CliRunner()
    for engine in ("local", "ray"):
        result = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / engine), "--dedup", "minhash",
                                     "--minhash-threshold", str(threshold), "--engine", engine, "--json"])
        assert result.exit_code == 0, result.output
    for kind in ("data", "rejects"):
        assert table_of(tmp_path / "ray", kind).equals(table_of(tmp_path / "local", kind)), kind
    rejects = table_of(tmp_path / "ray", "rejects").to_pylist()
    dup_of = {r["id"]: r["dup_of"] for r in rejects}
    assert dup_of[ids["h_b"]] == dup_of[ids["h_c"]] == ids["h_a"]              # one cluster, earliest survives
    assert dup_of[ids["m_a"]] == dup_of[ids["m_c"]] == ids["h_mb"]             # human survives over model
    assert dup_of[ids["same_2"]] == ids["same_1"]
    assert {r["drop_reason"] for r in rejects} == {"near_duplicate"}
    kept = set(table_of(tmp_path / "ray", "data").column("id").to_pylist())
    assert {ids["empty_1"], ids["empty_2"], ids["h_a"], ids["h_mb"]} <= kept
    # the ray plan ran on the cluster: its candidate pairs and rounds are reported
    engine = get_engine("ray", batch_size=16)
    from provkit.filters import build_steps

    dataset = Dataset.open(src)
    steps = build_steps(pipeline_from_flags(FilterFlags(dedup=("minhash",), minhash_threshold=threshold)), dataset)
    with DatasetWriter(tmp_path / "direct", Activity("filter")) as writer:
        run = engine.run(dataset, steps, writer)
    figures = run.clustering["minhash_dedup"]
    assert figures["candidate_pairs"] >= 5 and figures["rounds"] >= 1
    assert run.kept == len(kept)
