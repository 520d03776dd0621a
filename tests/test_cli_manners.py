"""CLI manners (issue 17, item 6): --version, -v/-q, -o/--json, exit codes, literal user text, hints that
run as written, and the default pipeline shipped in the package."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

import provkit
from provkit.cli import app
from provkit.filters import FilterFlags, load_pipeline, pipeline_from_flags
from provkit.provenance import IngestConfig, builtin_texts, ingest

from conftest import write_jsonl

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def ds(tmp_path) -> Path:
    texts = [t for t in builtin_texts() if len(t.split()) >= 25][:12]
    write_jsonl(tmp_path / "h.jsonl", [{"id": f"h{i}", "text": t, "origin": "human"} for i, t in enumerate(texts[:6])]
                + [{"id": f"m{i}", "text": " ".join(t.split()[::-1]), "origin": "model"} for i, t in enumerate(texts[6:])])
    ingest([str(tmp_path / "h.jsonl")], tmp_path / "DS", IngestConfig(id_field="id", origin_field="origin"))
    return tmp_path / "DS"


def test_version_and_verbosity():
    res = run("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"provkit {provkit.__version__}"
    assert run("-q", "--version").exit_code == 0 and run("-vv", "--version").exit_code == 0


def test_exit_codes_usage_2_data_1(ds, tmp_path):
    assert run("filter", ds, "--bogus").exit_code == 2  # Typer usage error
    assert run("filter", ds, "-o", tmp_path / "f", "--dedup", "nope").exit_code == 2  # a bad value (ConfigError)
    assert run("stats", tmp_path / "missing").exit_code == 1  # no such dataset
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": 3}])
    assert run("ingest", bad, "-o", tmp_path / "x").exit_code == 1  # bad input
    (ds / "data").joinpath(next(p.name for p in (ds / "data").iterdir())).write_bytes(b"garbage")
    res = run("verify", ds, "--json")
    assert res.exit_code == 1 and json.loads(res.stdout)["ok"] is False


def test_user_text_is_printed_literally(tmp_path):
    name = tmp_path / "notes :smile: [bold]x.jsonl"
    write_jsonl(name, [{"text": "hello"}])
    out = tmp_path / "out :thumbs_up: [red]"
    res = run("ingest", name, "-o", out)
    assert res.exit_code == 0, res.output
    assert str(out) in res.stdout and "😄" not in res.stdout and "👍" not in res.stdout
    res = run("ingest", tmp_path / "none :smile: [b].jsonl", "-o", tmp_path / "y")
    assert res.exit_code == 1 and ":smile: [b]" in res.stderr and "😄" not in res.stderr


def _hint(message: str) -> list[str]:
    """The command inside backticks in an error line, as argv."""
    command = re.search(r"`(prov [^`]+)`", message).group(1)
    return shlex.split(command)[1:]


def test_every_hint_runs_as_written(ds, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # lineage of an unknown id -> a prov export command
    res = run("lineage", ds, "nope")
    assert res.exit_code == 1
    assert run(*_hint(res.stderr)).exit_code == 0 and (tmp_path / "records.jsonl").exists()
    # a missing detector -> a prov detector train command (DS stands for a labelled dataset)
    res = run("filter", ds, "-o", tmp_path / "f", "--detector", tmp_path / "DET")
    assert res.exit_code != 0
    argv = [str(ds) if a == "DS" else a for a in _hint(res.stderr)]
    assert run(*argv).exit_code == 0 and (tmp_path / "DET" / "detector.json").exists()
    # bad input -> --on-error skip
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine"}, {"text": 3}])
    res = run("ingest", bad, "-o", tmp_path / "b")
    assert "rerun with --on-error skip" in res.stderr
    assert run("ingest", bad, "-o", tmp_path / "b", "--on-error", "skip").exit_code == 0
    # duplicate ids in a merge -> --on-duplicate skip
    res = run("merge", ds, ds, "-o", tmp_path / "m")
    assert res.exit_code == 1 and "--on-duplicate skip" in res.stderr
    assert run("merge", ds, ds, "-o", tmp_path / "m", "--on-duplicate", "skip").exit_code == 0
    # the --config help names `default`, which works as written
    assert run("filter", ds, "-o", tmp_path / "d", "--config", "default").exit_code == 0


def test_out_and_json_on_commands_that_write_or_report():
    for command in (["ingest"], ["filter"], ["export"], ["merge"], ["audit"], ["detector", "train"],
                    ["detector", "score"], ["experiment", "run"], ["experiment", "toy"]):
        assert "-o" in run(*command, "--help").stdout, command
    for command in (["ingest"], ["inspect"], ["stats"], ["lineage"], ["verify"], ["export"], ["merge"], ["audit"],
                    ["filter"], ["detector", "train"], ["detector", "eval"], ["detector", "score"],
                    ["experiment", "run"], ["experiment", "report"], ["experiment", "compare"], ["experiment", "toy"]):
        assert "--json" in run(*command, "--help").stdout, command


def test_default_pipeline_is_packaged_and_flags_use_its_thresholds(tmp_path):
    default = load_pipeline("default")
    assert Path(provkit.__file__).parent.joinpath("filters", "pipelines", "default.toml").is_file()
    kinds = {s.kind: s.config for s in default.steps}
    flags = pipeline_from_flags(FilterFlags(dedup=("exact", "minhash"), quality=True, tail_alpha=0.5))
    got = {s.kind: s.config for s in flags.steps}
    assert got["quality"] == kinds["quality"] and got["minhash_dedup"] == kinds["minhash_dedup"]
    assert got["tail"] == kinds["tail"]
