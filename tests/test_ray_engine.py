"""The Ray engine gives the local engine's results: same kept ids, rejects, reasons, annotations, report."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from filter_fixtures import bigram_model_texts, human_texts, write_dataset
from provkit.engines import get_engine
from provkit.filters import BaseStep, FilterFlags, pipeline_from_flags, run_filter
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
