"""The exact duplicate-id index: spilled runs, forced hash collisions, cleanup, and ingest with a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from provkit.core.hashing import string_hashes
from provkit.errors import InputError
from provkit.provenance import Dataset, IdIndex, Ingest, IngestConfig
from provkit.provenance.schema import content_hash, content_hashes


def fnv_fmix_reference(s: str) -> int:
    """FNV-1a 64 of the UTF-8 bytes, then MurmurHash3's fmix64 - written out in plain Python."""
    m = (1 << 64) - 1
    h = 0xCBF29CE484222325
    for byte in s.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & m
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & m
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & m
    return h ^ (h >> 33)


def by_length(arr: pa.Array) -> np.ndarray:
    """A deliberately terrible hash: every id of the same length collides."""
    return np.asarray(pc.binary_length(arr.cast(pa.string())).to_numpy(zero_copy_only=False), dtype=np.uint64) % 3


def check_against_a_set(index: IdIndex, ids: list[str], batch: int) -> None:
    seen: set[str] = set()
    for start in range(0, len(ids), batch):
        part = ids[start:start + batch]
        want = []
        for i in part:
            want.append(i in seen)
            seen.add(i)
        got = index.duplicates(pa.array(part) if start % (2 * batch) else part)
        assert got.tolist() == want, start
    assert len(index) == len(seen)
    probe = sorted(seen)[:50] + [f"absent-{k}" for k in range(50)]
    assert index.contains(probe).tolist() == [p in seen for p in probe]


def test_stable_hash_matches_a_plain_python_reference():
    ids = ["", "a", "doc-1", "é", "日本語", "x" * 300, "a\x00"]
    assert string_hashes(pa.array(ids)).tolist() == [fnv_fmix_reference(s) for s in ids]
    sliced = pa.chunked_array([pa.array(ids[:3]), pa.array(ids[3:])])
    assert string_hashes(sliced).tolist() == [fnv_fmix_reference(s) for s in ids]


@pytest.mark.parametrize("budget,map_bytes", [(40, 56), (300, 1024), (10**9, 32 << 20)])
def test_duplicates_across_spilled_and_merged_runs_match_a_python_set(budget, map_bytes):
    rng = np.random.default_rng(budget)
    ids = [f"doc-{x}" for x in rng.integers(0, 2500, size=6000)]
    with IdIndex(max_runs=3, budget=budget, map_bytes=map_bytes) as index:
        check_against_a_set(index, ids, 250)
        assert (index.spills > 0) == (budget < 6000)
        assert len(index.disk) <= 3
        if budget == 40:
            assert index.spills > 10  # spills and merges of the disk runs


def test_a_hash_collision_is_never_a_duplicate():
    rng = np.random.default_rng(1)
    ids = [f"{x}" for x in rng.integers(0, 5000, size=4000)]  # 1-4 digits: every length collides with thousands
    with IdIndex(max_runs=2, budget=200, map_bytes=128, hasher=by_length) as index:
        check_against_a_set(index, ids, 300)
        assert index.spills > 0


def test_spill_files_are_removed_after_success_and_after_an_error(tmp_path):
    spill = tmp_path / "spill"
    with IdIndex(budget=10, spill_dir=spill) as index:
        index.duplicates([f"a{i}" for i in range(100)])
        index.duplicates([f"b{i}" for i in range(100)])
        assert index.spills == 2
        assert sorted(p.name for p in spill.iterdir()) == [f"run-0000{k}.{part}" for k in (0, 1)
                                                            for part in ("hash", "ids", "offsets")]
    assert not spill.exists()
    with pytest.raises(RuntimeError), IdIndex(budget=10, spill_dir=spill) as index:
        index.duplicates([f"a{i}" for i in range(100)])
        assert spill.exists()
        raise RuntimeError("boom")
    assert not spill.exists()


def write_lines(path: Path, ids: list[str]) -> Path:
    with open(path, "w") as f:
        for i in ids:
            f.write(json.dumps({"id": i, "text": f"record {i} says something"}) + "\n")
    return path


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}.tmp"))


def test_ingest_with_a_tiny_budget_quarantines_exactly_the_repeated_ids(tmp_path):
    ids = [f"id-{k}" for k in range(5000)] + ["id-7", "id-4999", "id-2500"]  # repeats of spilled ids, at the end
    src = write_lines(tmp_path / "a.jsonl", ids)
    out = tmp_path / "ds"
    job = Ingest([str(src)], out, IngestConfig(id_field="id", on_error="skip", block_bytes=1 << 16), id_budget=300)
    s = job.run()
    assert (s.read, s.written, s.quarantined) == (5003, 5000, 3)
    assert s.by_reason == {"duplicate id": 3}
    assert job.ids.spills >= 5  # the chunks after the first were checked against runs on disk
    bad = Dataset.open(out).read("quarantine")
    assert sorted(bad.column("line").to_pylist()) == [5001, 5002, 5003]
    assert leftovers(tmp_path, "ds") == []


def test_append_sees_the_stored_ids_through_spilled_runs(tmp_path):
    out = tmp_path / "ds"
    first = write_lines(tmp_path / "a.jsonl", [f"id-{k}" for k in range(3000)])
    Ingest([str(first)], out, IngestConfig(id_field="id"), id_budget=200).run()
    second = write_lines(tmp_path / "b.jsonl", [f"new-{k}" for k in range(500)] + ["id-123"])
    with pytest.raises(InputError, match="duplicate id 'id-123'"):
        Ingest([str(second)], out, IngestConfig(id_field="id", block_bytes=1 << 16), id_budget=200).run()
    assert leftovers(tmp_path, "ds") == []
    assert len(Dataset.open(out).read()) == 3000  # nothing committed by the failed append
    job = Ingest([str(second)], out, IngestConfig(id_field="id", on_error="skip"), id_budget=200)
    s = job.run()
    assert (s.written, s.quarantined) == (500, 1) and job.ids.spills > 0
    assert leftovers(tmp_path, "ds") == []


def test_content_hashes_in_bulk_equal_the_per_text_definition():
    rng = np.random.default_rng(3)
    alphabet = ["a", "Z", " ", "\t", "\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2028",
                "\u3000", "é", "e\u0301", "\ufeff", "日"]
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 7))) for _ in range(5000)] + ["plain ascii text"]
    want = [content_hash(t) for t in texts]
    assert content_hashes(texts).to_pylist() == want
    assert content_hashes(pa.array(texts, pa.large_string()).slice(1)).to_pylist() == want[1:]
