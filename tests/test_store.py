"""Atomicity under kill -9 (new dataset and append) and verify catching corruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from provkit.cli import app
from provkit.provenance import Dataset, IngestConfig, ingest, verify

runner = CliRunner()


def _big_jsonl(path: Path, mb: int) -> Path:
    """~``mb`` MB of JSON lines (enough for the 32 MiB row-group buffer to spill to a part file)."""
    line = '{"text": "%s"}\n'
    words = ("collapse tails human model generation provenance record " * 16).strip()
    with open(path, "w") as f:
        n = 0
        while f.tell() < mb << 20:
            f.writelines(line % f"{n + i} {words}" for i in range(10000))
            n += 10000
    return path


def _ingest_and_kill(src: Path, out: Path, tmp_glob_root: Path, pattern: str) -> None:
    """Start `prov ingest` in a subprocess and kill -9 it once a temporary part file is being written."""
    proc = subprocess.Popen([sys.executable, "-m", "provkit.cli", "ingest", str(src), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if list(tmp_glob_root.glob(pattern)):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "ingest finished before it could be killed: use a bigger input"
        assert list(tmp_glob_root.glob(pattern)), "no temporary part appeared"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    return _big_jsonl(tmp_path_factory.mktemp("big") / "big.jsonl", 80)


def test_kill_during_new_ingest_leaves_no_dataset(tmp_path, big_input):
    out = tmp_path / "ds"
    _ingest_and_kill(big_input, out, tmp_path, ".ds.tmp-*/data/.tmp-*.parquet")
    assert not out.exists()
    # the next ingest is not disturbed by the leftovers
    small = write_jsonl(tmp_path / "s.jsonl", [{"text": "after the crash"}])
    ingest([str(small)], out)
    assert Dataset.open(out).num_rows() == 1 and verify(out) == []


def test_kill_during_append_leaves_dataset_as_before(tmp_path, big_input):
    out = tmp_path / "ds"
    small = write_jsonl(tmp_path / "s.jsonl", [{"text": "before the crash"}, {"text": "second"}])
    ingest([str(small)], out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    _ingest_and_kill(big_input, out, tmp_path, ".ds.tmp-*/data/.tmp-*.parquet")  # staged beside the dataset
    assert verify(out) == []
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
             if p.is_file() and p.name != ".lock" and not p.name.startswith(".tmp-")}
    assert after == before
    import pyarrow.dataset as pads
    assert pads.dataset(str(out / "data"), format="parquet").count_rows() == 2  # plain readers see the old data
    # the next writer removes the leftovers and appends normally
    more = write_jsonl(tmp_path / "m.jsonl", [{"text": "later"}])
    ingest([str(more)], out)
    assert Dataset.open(out).num_rows() == 3 and verify(out) == []
    assert not list(out.glob("data/.tmp-*"))


def test_append_swaps_whole_directory_and_shares_unchanged_parts(tmp_path):
    """An append publishes a new directory in one exchange; the old parts are hard-linked, not copied."""
    out = tmp_path / "ds"
    ingest([str(write_jsonl(tmp_path / "a.jsonl", [{"text": "first record"}]))], out)
    old_part = Dataset.open(out).files("data")[0]
    inode = old_part.stat().st_ino
    ingest([str(write_jsonl(tmp_path / "b.jsonl", [{"text": "second record"}]))], out)
    ds = Dataset.open(out)
    assert ds.num_rows() == 2 and verify(out) == []
    assert ds.files("data")[0].stat().st_ino == inode
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]  # staging (and the lock) removed


def test_verify_catches_a_flipped_byte_and_a_missing_file(tmp_path, jsonl_file):
    out = tmp_path / "ds"
    ingest([str(jsonl_file)], out, IngestConfig(id_field="id"))
    res = runner.invoke(app, ["verify", str(out)])
    assert res.exit_code == 0 and "ok" in res.stdout
    part = Dataset.open(out).files("data")[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    res = runner.invoke(app, ["verify", str(out)])
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [f"{part}: sha256 mismatch (file is corrupted or was modified)"]
    part.unlink()
    (out / "provenance.json").write_text("{}")
    problems = verify(out)
    assert len(problems) == 2 and "missing" in problems[0] and "provenance.json: sha256 mismatch" in problems[1]


def test_verify_reports_an_unlisted_part(tmp_path, jsonl_file):
    out = tmp_path / "ds"
    ingest([str(jsonl_file)], out)
    stray = out / "data" / "part-99999-stray.parquet"
    stray.write_bytes(Dataset.open(out).files("data")[0].read_bytes())
    assert verify(out) == [f"{stray}: not listed in manifest.json (left over from an interrupted write)"]


def test_publish_dir_replaces_an_existing_directory_whole(tmp_path):
    from provkit.provenance import publish_dir

    target = tmp_path / "model"
    for version in ("v1", "v2"):
        staged = tmp_path / f".stage-{version}"
        staged.mkdir()
        (staged / "weights").write_text(version)
        publish_dir(staged, target)
        assert (target / "weights").read_text() == version
        assert not staged.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no previous version left behind
