"""Every kind of bad input: one clear line and no dataset under --on-error fail; quarantined under skip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from provkit.cli import app
from provkit.provenance import Dataset, verify

runner = CliRunner()
GOOD = b'{"text": "a good record"}\n'


def _bytes_file(tmp_path: Path, name: str, payload: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def _truncated_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "cut.parquet"
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(100)]}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# (name, make the input, extra flags, the words the error must contain, line/row, quarantine category)
CASES = [
    ("malformed-json", lambda t: _bytes_file(t, "m.jsonl", GOOD + b'{"text": "no end\n' + GOOD),
     [], "malformed JSON", "line 2", "malformed"),
    ("invalid-utf8", lambda t: _bytes_file(t, "u.jsonl", GOOD + GOOD + b'{"text": "caf\xe9"}\n'),
     [], "invalid UTF-8", "line 3", "invalid UTF-8"),
    ("missing-text", lambda t: _bytes_file(t, "x.jsonl", GOOD + b'{"body": "wrong field"}\n'),
     [], "missing text field 'text'", "line 2", "missing field"),
    ("empty-text", lambda t: _bytes_file(t, "e.jsonl", b'{"text": "   "}\n' + GOOD),
     [], "empty text", "line 1", "empty text"),
    ("number-text", lambda t: _bytes_file(t, "n.jsonl", GOOD + b'{"text": 42}\n'),
     [], "field 'text' is a number, expected a string", "line 2", "wrong type"),
    ("list-text", lambda t: _bytes_file(t, "l.jsonl", GOOD + b'{"text": ["a", "b"]}\n'),
     [], "field 'text' is a list, expected a string", "line 2", "wrong type"),
    ("unknown-origin", lambda t: _bytes_file(t, "o.jsonl", GOOD + b'{"text": "x", "origin": "robot"}\n'),
     ["--origin-field", "origin"], "unknown origin 'robot'", "line 2", "unknown origin"),
    ("csv-number-of-columns", lambda t: _bytes_file(t, "c.csv", b"id,text\n1,ok\n2,too,many\n"),
     [], "expected 2 columns, got 3", "line 3", "malformed"),
    ("missing-file", lambda t: t / "does-not-exist.jsonl", [], "no such file", None, "unreadable"),
    ("corrupt-gzip", lambda t: _bytes_file(t, "g.jsonl.gz", b"\x1f\x8b\x08\x00garbage, not deflate data" * 10),
     [], "cannot read the rest of the file", None, "unreadable"),
    ("truncated-parquet", _truncated_parquet, [], "not a readable Parquet file", None, "unreadable"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fail_gives_one_line_and_no_dataset(tmp_path, case):
    name, make, flags, words, where, _ = case
    src = make(tmp_path)
    out = tmp_path / "ds"
    res = runner.invoke(app, ["ingest", str(src), "--out", str(out), *flags])
    assert res.exit_code == 1, res.output  # a data error (2 is for usage)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert str(src) in lines[0] and words in lines[0]
    if where:
        assert f", {where}:" in lines[0]
    assert "Traceback" not in res.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.tmp")]  # nothing half-written


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_skip_quarantines_with_reason_and_counts(tmp_path, case):
    name, make, flags, words, where, category = case
    src = make(tmp_path)
    out = tmp_path / "ds"
    res = runner.invoke(app, ["ingest", str(src), "--out", str(out), "--on-error", "skip", "--json", *flags])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["read"] == summary["written"] + summary["quarantined"]
    assert summary["quarantined"] == 1 and summary["by_reason"] == {category: 1}
    ds = Dataset.open(out)
    q = ds.read("quarantine").to_pylist()
    assert len(q) == 1 and words in q[0]["reason"] and q[0]["source_uri"] == str(src)
    if where:
        assert f"{q[0]['unit']} {q[0]['line']}" == where
    assert ds.num_rows("data") == summary["written"]
    assert verify(out) == []


def test_bad_origin_flag_is_a_config_error(tmp_path, jsonl_file):
    res = runner.invoke(app, ["ingest", str(jsonl_file), "--out", str(tmp_path / "ds"), "--origin", "robot"])
    assert res.exit_code == 2 and "--origin 'robot' is not one of human, model, mixed, unknown" in res.stderr
    assert not (tmp_path / "ds").exists()


def test_50mb_record_is_too_large_and_never_held_whole(tmp_path):
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:
        f.write(GOOD)
        f.write(b'{"text": "' + b"x" * (50 << 20) + b'"}\n')
        f.write(GOOD)
    res = runner.invoke(app, ["ingest", str(big), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 1
    assert f"{big}, line 2: record too large" in res.stderr and "--max-record-bytes 10485760" in res.stderr
    res = runner.invoke(app, ["ingest", str(big), "--out", str(tmp_path / "ds"), "--on-error", "skip", "--json"])
    summary = json.loads(res.stdout)
    assert (summary["read"], summary["written"], summary["quarantined"]) == (3, 2, 1)
    q = Dataset.open(tmp_path / "ds").read("quarantine").to_pylist()[0]
    assert q["line"] == 2 and q["raw_bytes"] > 50 << 20 and q["category"] == "record too large"
    # a smaller limit catches a record inside a block as well
    small = write_jsonl(tmp_path / "s.jsonl", [{"text": "short"}, {"text": "y" * 5000}, {"text": "short 2"}])
    res = runner.invoke(app, ["ingest", str(small), "--out", str(tmp_path / "ds2"), "--max-record-bytes", "1000"])
    assert res.exit_code == 1 and "line 2: record too large" in res.stderr


def test_many_bad_lines_keep_their_line_numbers(tmp_path):
    """A file mixing good and bad lines: every bad line is quarantined at its own line number."""
    lines = []
    for i in range(1, 301):
        lines.append(b"{broken" if i % 50 == 0 else b"" if i % 70 == 0 else json.dumps({"text": f"r{i}"}).encode())
    src = _bytes_file(tmp_path, "mix.jsonl", b"\n".join(lines) + b"\n")
    res = runner.invoke(app, ["ingest", str(src), "--out", str(tmp_path / "ds"), "--on-error", "skip", "--json"])
    summary = json.loads(res.stdout)
    ds = Dataset.open(tmp_path / "ds")
    assert sorted(ds.read("quarantine").column("line").to_pylist()) == [50, 100, 150, 200, 250, 300]
    got = ds.read(columns=["id", "text"]).to_pylist()
    assert all(r["id"] == f"mix.jsonl:{r['text'][1:]}" for r in got)  # derived ids keep the true line numbers
    assert summary["written"] == 300 - 6 - 4  # 4 blank lines (70, 140, 210, 280) are not records


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    src = _bytes_file(tmp_path, "secret.jsonl", GOOD)
    src.chmod(0)
    res = runner.invoke(app, ["ingest", str(src), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 1 and f"{src}: cannot read the file" in res.stderr
