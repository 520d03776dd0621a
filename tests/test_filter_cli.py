"""`prov filter` end to end through the Typer app (flags, --config, --json, one-line errors)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from filter_fixtures import bigram_model_texts, human_texts, write_dataset
from provkit.cli import app
from provkit.provenance import Dataset, verify

runner = CliRunner()


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return write_dataset(root / "in", human_texts(80), [bigram_model_texts(40, seed=1), bigram_model_texts(40, seed=2)])


def test_filter_with_flags_json_report(src, tmp_path):
    res = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), "--tail-alpha", "0.5",
                              "--mix", "keep-human=0.5", "--mix-alpha", "0.2", "--seed", "1", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["input"] == 160 and report["kept"] == 40  # keep-human: the newest generation's size, half human
    assert report["input"] == report["kept"] + sum(report["dropped"].values())
    assert report["dropped"] == {"mix_human_fraction": 60, "mix_old_generation": 40, "mix_human_share": 20}
    assert verify(tmp_path / "o") == []
    assert "sample_weight" in Dataset.open(tmp_path / "o").read().column_names


def test_filter_with_config_file_prints_summary(src, tmp_path):
    (tmp_path / "p.toml").write_text('[[steps]]\nkind = "mix"\npolicy = "replace"\n')
    res = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), "--config", str(tmp_path / "p.toml")])
    assert res.exit_code == 0, res.output
    assert "filtered 160 records: kept 40, dropped 120" in res.stdout
    assert (tmp_path / "o" / "report.md").read_text().startswith("# Filter report")


@pytest.mark.parametrize("args, message", [
    (["--config", "{dir}/bad.toml"], 'steps[0].threshold: expected a number, got "high"'),
    (["--mix", "blend"], "--mix: expected replace, accumulate or keep-human=F"),
    ([], "no steps"),
    (["--mix", "replace", "--engine", "spark"], "--engine: expected one of local, ray, got 'spark'"),
    (["--mix", "replace", "--ray-address", "10.0.0.1:6379"], "--ray-address: only valid with --engine ray"),
])
def test_filter_errors_are_one_line_exit_2(src, tmp_path, args, message):
    (tmp_path / "bad.toml").write_text('[[steps]]\nkind = "minhash_dedup"\nthreshold = "high"\n')
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    res = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), *args])
    assert res.exit_code == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_filter_on_a_plain_directory_names_what_is_missing(tmp_path):
    (tmp_path / "plain").mkdir()
    res = runner.invoke(app, ["filter", str(tmp_path / "plain"), "--out", str(tmp_path / "o"), "--mix", "replace"])
    assert res.exit_code == 1 and "manifest.json is missing" in res.stderr


def test_filter_refuses_a_minhash_run_whose_memory_estimate_exceeds_the_limit(src, tmp_path):
    """The pre-flight estimate (>= 560 MiB for any minhash_dedup run) against --memory-limit-mb: refused in one
    line with exit 2 before any output; the same run under an adequate limit succeeds."""
    res = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), "--dedup", "minhash",
                              "--memory-limit-mb", "100"])
    assert res.exit_code == 2, res.output
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "minhash_dedup: 160 records need an estimated 560 MiB" in line
    assert "the limit is 100 MiB (--memory-limit-mb)" in line and "split the input" in line
    assert not (tmp_path / "o").exists()
    res = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), "--dedup", "minhash",
                              "--memory-limit-mb", "4096", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["input"] == 160 and verify(tmp_path / "o") == []


@pytest.mark.parametrize("args, message", [
    (["--memory-limit-mb", "0"], "--memory-limit-mb: must be a positive number of MiB, got 0.0"),
    (["--memory-limit-mb", "nan"], "--memory-limit-mb: must be a positive number of MiB, got nan"),
    (["--memory-limit-mb", "900", "--engine", "ray"], "--memory-limit-mb: only valid with --engine local"),
])
def test_filter_memory_limit_errors_are_one_line_exit_2(src, tmp_path, args, message):
    res = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), "--dedup", "minhash", *args])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
