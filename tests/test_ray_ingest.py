"""``prov ingest --engine ray`` writes the records of the local ingest: ids, hashes, order, quarantine."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from conftest import DOCS, write_jsonl
from provkit.cli import app
from provkit.provenance import Dataset, verify

pytestmark = pytest.mark.ray
RUN_COLUMNS = ("activity_id", "ingested_at")  # belong to each run


@pytest.fixture(scope="module")
def ray_local():
    pytest.importorskip("ray")
    from provkit.engines.ray import RayOptions, start_ray

    start_ray(RayOptions(num_cpus=2, object_store_bytes=200 << 20))


def sources(root: Path) -> list[str]:
    """Three files: one with a malformed line and an id that repeats one of the first file's, and a .txt."""
    a = write_jsonl(root / "a.jsonl", [{"id": f"a{i}", "text": t} for i, t in enumerate(DOCS)])
    b = root / "b.jsonl"
    lines = [json.dumps({"id": "b0", "text": DOCS[0] + " again"}), '{"id": "b1", "text": broken',
             json.dumps({"id": "a2", "text": "an id already used in a.jsonl"}), json.dumps({"id": "b3", "text": "   "}),
             json.dumps({"id": "b4", "text": DOCS[1]})]
    b.write_text("\n".join(lines) + "\n", encoding="utf-8")
    c = root / "c.txt"
    c.write_text("first line\nsecond line\n\nfourth line\n", encoding="utf-8")
    return [str(a), str(b), str(c)]


def without_run_columns(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in RUN_COLUMNS if c in table.column_names])


def test_ray_ingest_equals_local(tmp_path, ray_local):
    files = sources(tmp_path)
    runner = CliRunner()
    summaries = {}
    for engine in ("local", "ray"):
        args = ["ingest", *files, "--out", str(tmp_path / engine), "--id-field", "id", "--split", "line",
                "--on-error", "skip", "--engine", engine, "--json"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        summaries[engine] = json.loads(result.stdout)
        assert verify(tmp_path / engine) == []
    local, ray = Dataset.open(tmp_path / "local"), Dataset.open(tmp_path / "ray")
    assert without_run_columns(ray.read("data")).equals(without_run_columns(local.read("data")))
    assert without_run_columns(ray.read("quarantine")).equals(without_run_columns(local.read("quarantine")))
    for key in ("read", "written", "quarantined", "by_reason", "by_origin"):
        assert summaries["ray"][key] == summaries["local"][key], key
    # the comparison is not vacuous: all three files, the bad line and the repeated id are there
    reasons = summaries["ray"]["by_reason"]
    assert reasons.get("malformed") == 1 and reasons.get("duplicate id") == 1 and reasons.get("empty text") == 1
    ids = ray.read("data").column("id").to_pylist()
    assert ids[:6] == [f"a{i}" for i in range(6)] and "b4" in ids and any(i.endswith("c.txt:4") for i in ids)


def test_ray_ingest_fails_like_local_on_a_bad_line(tmp_path, ray_local):
    files = sources(tmp_path)
    result = CliRunner().invoke(app, ["ingest", *files, "--out", str(tmp_path / "out"), "--id-field", "id",
                                      "--engine", "ray"])
    assert result.exit_code == 1
    assert "b.jsonl, line 2" in result.output and "--on-error skip" in result.output
    assert not (tmp_path / "out").exists()
