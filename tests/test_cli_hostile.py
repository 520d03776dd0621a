"""The command line under hostile or clumsy use: one error line and exit 1 (data) or 2 (usage), never a traceback, never data lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from filter_fixtures import human_texts
from provkit.cli import app
from provkit.provenance import Dataset, IngestConfig, ingest, verify

runner = CliRunner()


def _one_error_line(res, *needles: str, code: int = 1) -> str:
    """One ``error:`` line; exit 1 for data/verification errors, 2 for usage/config errors (README)."""
    assert res.exit_code == code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def ds(tmp_path) -> Path:
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in human_texts(30, start=200)])
    ingest([str(src)], tmp_path / "ds")
    return tmp_path / "ds"


def test_filter_overwrite_never_replaces_a_plain_directory_or_file(ds, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "thesis.tex").write_text("years of work")
    raw = tmp_path / "in.jsonl"
    before = raw.read_bytes()
    for target in (plain, raw):
        _one_error_line(runner.invoke(app, ["filter", str(ds), "--out", str(target), "--overwrite", "--quality"]))
    assert (plain / "thesis.tex").read_text() == "years of work" and raw.read_bytes() == before
    out = tmp_path / "out"
    for _ in range(2):  # a provkit dataset is replaced
        res = runner.invoke(app, ["filter", str(ds), "--out", str(out), "--overwrite", "--quality"])
        assert res.exit_code == 0, res.output
    assert verify(out) == []


def test_filter_output_inside_the_input_is_refused(ds):
    for out in (ds / "data" / "x", ds / "sub", ds):
        _one_error_line(runner.invoke(app, ["filter", str(ds), "--out", str(out), "--quality"]), code=2)
    assert verify(ds) == [] and sorted(p.name for p in (ds / "data").iterdir()) == \
        sorted(Path(f).name for f in Dataset.open(ds).files())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_parameters_are_refused(ds, tmp_path, value):
    _one_error_line(runner.invoke(app, ["filter", str(ds), "--out", str(tmp_path / "o"), f"--tail-alpha={value}"]),
                    "finite", code=2)
    toml = tmp_path / "p.toml"
    toml.write_text(f'[[steps]]\nkind = "tail"\nalpha = {value}\n')
    _one_error_line(runner.invoke(app, ["filter", str(ds), "--out", str(tmp_path / "o"), "--config", str(toml)]),
                    "finite", code=2)
    assert not (tmp_path / "o").exists()


def test_a_deeply_nested_toml_is_one_line(ds, tmp_path):
    toml = tmp_path / "deep.toml"
    toml.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    _one_error_line(runner.invoke(app, ["filter", str(ds), "--out", str(tmp_path / "o"), "--config", str(toml)]),
                    "deep.toml", code=2)


@pytest.mark.parametrize("flags", [["--quality", "--tail-alpha", "1"],
                                   ["--quality", "--mix", "keep-human=0.5", "--mix-alpha", "0.5"],
                                   ["--quality", "--tail-alpha", "1", "--tail-target", "3"]])
def test_a_step_after_one_that_dropped_everything(tmp_path, flags):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}, {"text": "b b"}, {"text": "."}])
    ingest([str(src)], tmp_path / "ds")
    res = runner.invoke(app, ["filter", str(tmp_path / "ds"), "--out", str(tmp_path / "o"), *flags, "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["input"] == 3 and report["kept"] == 0 and sum(report["dropped"].values()) == 3
    json.loads((tmp_path / "o" / "report.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_quality_on_texts_that_collapsed_to_newlines(tmp_path):
    """Regression: the curated condition died when a batch ended with word-less texts (reduceat IndexError)."""
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in human_texts(5, start=50)] +
                      [{"text": "\n" * k + "." + "\n" * k} for k in range(1, 4)])  # no \w+ word in the last three
    ingest([str(src)], tmp_path / "ds")
    res = runner.invoke(app, ["filter", str(tmp_path / "ds"), "--out", str(tmp_path / "o"), "--quality", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["dropped"].get("quality:too_short", 0) >= 3


def test_corrupt_part_stops_stats_filter_export_with_a_pointer_to_verify(ds, tmp_path):
    part = Dataset.open(ds).files()[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    for args in (["stats", str(ds)], ["filter", str(ds), "--out", str(tmp_path / "o"), "--quality"],
                 ["export", str(ds), "--to", "jsonl", "--out", str(tmp_path / "x.jsonl")]):
        _one_error_line(runner.invoke(app, args), "sha256 mismatch", "prov verify")
    assert not (tmp_path / "o").exists()
    res = runner.invoke(app, ["verify", str(ds)])
    assert res.exit_code == 1 and "sha256 mismatch" in res.stderr


def test_no_verify_reads_without_checking(ds, tmp_path):
    m = json.loads((ds / "manifest.json").read_text())
    assert runner.invoke(app, ["stats", str(ds), "--no-verify"]).exit_code == 0
    assert runner.invoke(app, ["export", str(ds), "--to", "jsonl", "--out", str(tmp_path / "x.jsonl"),
                               "--no-verify"]).exit_code == 0
    assert json.loads((ds / "manifest.json").read_text()) == m


def test_a_tampered_manifest_is_one_line_everywhere(ds, tmp_path):
    m = json.loads((ds / "manifest.json").read_text())
    m["files"][0]["rows"] += 1
    (ds / "manifest.json").write_text(json.dumps(m))
    for args in (["stats", str(ds)], ["inspect", str(ds)], ["filter", str(ds), "--out", str(tmp_path / "o"),
                                                             "--quality"]):
        _one_error_line(runner.invoke(app, args), "manifest_sha256")
    (ds / "manifest.json").write_text("{broken")
    _one_error_line(runner.invoke(app, ["stats", str(ds)]), "not valid JSON")


def test_os_errors_are_one_line(ds, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_error_line(runner.invoke(app, ["filter", str(ds), "--out", str(blocker / "o"), "--quality"]),
                    "cannot write")
    _one_error_line(runner.invoke(app, ["ingest", str(tmp_path / "in.jsonl"), "--out", str(blocker / "o")]))


def test_ingest_names_every_skipped_file(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "a.jsonl").write_text('{"text": "kept"}\n')
    (d / "b.csv.zip").write_bytes(b"PK")
    (d / ".cache").write_text("x")
    res = runner.invoke(app, ["ingest", str(d), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert "skipped 2 files" in res.stdout and "b.csv.zip" in res.stdout and ".cache" in res.stdout


def test_appending_to_a_filter_output_is_refused(ds, tmp_path):
    out = tmp_path / "f"
    assert runner.invoke(app, ["filter", str(ds), "--out", str(out), "--tail-alpha", "1"]).exit_code == 0
    src = write_jsonl(tmp_path / "more.jsonl", [{"text": "one more human record"}])
    _one_error_line(runner.invoke(app, ["ingest", str(src), "--out", str(out)]), "another schema")
    assert verify(out) == []


def test_a_pickle_only_model_for_the_lm_tail_step_is_one_line(ds, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "opt"}))
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle
    toml = tmp_path / "p.toml"
    toml.write_text(f'[[steps]]\nkind = "tail"\nrarity = "lm"\nmodel = "{model}"\nalpha = 1.0\n')
    _one_error_line(runner.invoke(app, ["filter", str(ds), "--out", str(tmp_path / "o"), "--config", str(toml)]),
                    "safetensors", code=2)


def test_an_os_error_is_one_line_naming_the_path(ds, tmp_path):
    """An OS error the library does not wrap (here: writing under a regular file) ends in one line, exit 1."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    res = runner.invoke(app, ["export", str(ds), "--to", "jsonl", "--out", str(blocker / "x.jsonl")])
    line = _one_error_line(res, "Not a directory", str(blocker))
    assert "Traceback" not in res.output and line.startswith("error:")
