"""Hostile and clumsy input: compression, skipped files, symlink loops, FIFOs, broken CSV, CR line ends,
deep JSON, surrogates, invalid UTF-8 in Parquet, provenance kept on re-ingest, dangling parents."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl

from provkit.errors import InputError
from provkit.provenance import (
    Activity,
    Dataset,
    DatasetWriter,
    Generator,
    IngestConfig,
    ingest,
    make_batch,
    verify,
)
from provkit.provenance.readers import scan_sources

SKIP = IngestConfig(on_error="skip")


def texts(ds: Path) -> list[str]:
    return Dataset.open(ds).read(columns=["text"]).column("text").to_pylist()


def quarantine(ds: Path) -> list[dict]:
    return Dataset.open(ds).read("quarantine").to_pylist()


# ------------------------------------------------------------------ compression
@pytest.mark.parametrize("suffix,opener", [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open),
                                           (".zst", None)])
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "txt"])
def test_every_compression_the_suffix_names_is_read(tmp_path, suffix, opener, fmt):
    body = {"csv": "text,n\nfirst row,1\nsecond row,2\n", "jsonl": '{"text": "first row"}\n{"text": "second row"}\n',
            "txt": "first row\nsecond row\n"}[fmt].encode()
    path = tmp_path / f"in.{fmt}{suffix}"
    if opener is None:
        with pa.output_stream(str(path), compression="zstd") as f:
            f.write(body)
    else:
        with opener(path, "wb") as f:
            f.write(body)
    ingest([str(path)], tmp_path / "ds", IngestConfig(split="line"))
    assert texts(tmp_path / "ds") == ["first row", "second row"]


@pytest.mark.parametrize("name", ["x.parquet.gz", "x.zip", "x.tar", "x.lz4", "x.gz", "notes.md"])
def test_unsupported_files_given_by_name_are_refused_with_the_reason(tmp_path, name):
    (tmp_path / name).write_bytes(b"whatever")
    with pytest.raises(InputError, match="not supported|compress|unknown file type"):
        ingest([str(tmp_path / name)], tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_a_directory_scan_counts_and_names_every_skipped_file(tmp_path):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    (d / "a.jsonl").write_text('{"text": "kept"}\n')
    with gzip.open(d / "sub" / "b.txt.gz", "wt") as f:
        f.write("also kept")
    (d / ".hidden.jsonl").write_text('{"text": "hidden"}\n')
    (d / "notes.md").write_text("# readme")
    (d / "x.parquet.gz").write_bytes(b"\x1f\x8b")
    (d / "archive.zip").write_bytes(b"PK")
    os.mkfifo(d / "pipe.jsonl")
    (d / "dangling.jsonl").symlink_to(d / "nowhere.jsonl")
    (d / "sub" / "loop").symlink_to(d)  # a symlink loop
    out = tmp_path / "ds"
    summary = ingest([str(d)], out)
    assert sorted(texts(out)) == ["also kept", "kept"]
    skipped = {Path(s["path"]).name: s["reason"] for s in summary.skipped_files}
    assert set(skipped) == {".hidden.jsonl", "notes.md", "x.parquet.gz", "archive.zip", "pipe.jsonl",
                            "dangling.jsonl", "loop"}
    assert summary.skipped == 7
    assert "FIFO" in skipped["pipe.jsonl"] and "hidden" in skipped[".hidden.jsonl"]
    assert "symlink loop" in skipped["loop"] and "broken symlink" in skipped["dangling.jsonl"]
    stored = json.loads((out / "ingest-summary.json").read_text())
    assert stored["skipped"] == 7 and len(stored["skipped_files"]) == 7


def test_an_unreadable_subdirectory_is_named(tmp_path, monkeypatch):
    d = tmp_path / "corpus"
    (d / "locked").mkdir(parents=True)
    (d / "a.jsonl").write_text('{"text": "kept"}\n')
    real = os.scandir

    def scandir(path):  # running as root, chmod cannot lock a directory: simulate EACCES
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    res = scan_sources([str(d)])
    assert [Path(s.path).name for s in res.skipped] == ["locked"] and "Permission denied" in res.skipped[0].reason


def test_a_recursive_glob_through_a_symlink_loop_ends(tmp_path):
    d = tmp_path / "corpus"
    (d / "a" / "b").mkdir(parents=True)
    (d / "a" / "b" / "x.jsonl").write_text('{"text": "deep"}\n')
    (d / "a" / "b" / "up").symlink_to(d / "a")
    (d / "top.jsonl").write_text('{"text": "top"}\n')
    res = scan_sources([f"{d}/**/*.jsonl"])
    assert sorted(s.id_prefix for s in res.sources) == ["a/b/x.jsonl", "top.jsonl"]


def test_a_fifo_given_by_name_never_blocks(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="FIFO"):
        ingest([str(fifo)], tmp_path / "ds")
    summary = ingest([str(fifo)], tmp_path / "ds", SKIP)
    assert summary.quarantined == 1 and "FIFO" in quarantine(tmp_path / "ds")[0]["reason"]


# ------------------------------------------------------------------ line structure
def test_an_unterminated_csv_quote_costs_one_line_not_the_rows_after_it(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('text,n\nfine,1\n"broken,2\nthird,3\nfourth,4\n')
    with pytest.raises(InputError, match="line 3: unterminated quote"):
        ingest([str(src)], tmp_path / "ds")
    summary = ingest([str(src)], tmp_path / "ds", SKIP)
    assert texts(tmp_path / "ds") == ["fine", "third", "fourth"]
    q = quarantine(tmp_path / "ds")
    assert [(r["line"], r["category"]) for r in q] == [(3, "malformed")] and summary.read == 4


def test_text_after_a_closing_csv_quote_is_reported(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('text,n\n"a" b,1\nnext,2\n')
    ingest([str(src)], tmp_path / "ds", SKIP)
    assert texts(tmp_path / "ds") == ["next"] and quarantine(tmp_path / "ds")[0]["line"] == 2


def test_a_multiline_quoted_csv_field_is_one_record(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('text,n\n"two\nlines",1\nnext,2\n')
    ingest([str(src)], tmp_path / "ds")
    assert texts(tmp_path / "ds") == ["two\nlines", "next"]
    ids = Dataset.open(tmp_path / "ds").read(columns=["id"]).column("id").to_pylist()
    assert ids == ["in.csv:2", "in.csv:4"]


@pytest.mark.parametrize("fmt,body", [
    ("jsonl", b'{"text": "one"}\r{"text": "two"}\r{"text": "three"}\r'),
    ("txt", b"one\rtwo\rthree"),
    ("csv", b"text\rone\rtwo\rthree\r"),
])
def test_cr_only_line_ends_split_lines(tmp_path, fmt, body):
    src = tmp_path / f"in.{fmt}"
    src.write_bytes(body)
    ingest([str(src)], tmp_path / "ds", IngestConfig(split="line"))
    assert texts(tmp_path / "ds") == ["one", "two", "three"]


def test_crlf_stays_one_line_end_across_block_boundaries(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(b'{"text": "record %d"}\r\n' % i for i in range(5000)))
    ingest([str(src)], tmp_path / "ds", IngestConfig(block_bytes=1 << 16))
    assert len(texts(tmp_path / "ds")) == 5000


# ------------------------------------------------------------------ hostile JSON and strings
@pytest.mark.parametrize("depth", [300, 3000, 30000])
def test_deep_json_nesting_is_a_bad_record_not_a_crash(tmp_path, depth):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "before"}\n' + '{"text": "x", "meta": ' + "[" * depth + "]" * depth + "}\n"
                   + '{"text": "after", "code": "' + "{" * 5000 + '"}\n')
    summary = ingest([str(src)], tmp_path / "ds", SKIP)
    assert texts(tmp_path / "ds") == ["before", "after"]
    assert summary.quarantined == 1 and quarantine(tmp_path / "ds")[0]["line"] == 2


def test_lone_surrogate_escape_is_a_bad_record(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "ok"}\n{"text": "half \\ud800 pair"}\n{"text": "fine \\ud83d\\ude00"}\n')
    summary = ingest([str(src)], tmp_path / "ds", SKIP)
    assert texts(tmp_path / "ds") == ["ok", "fine \U0001F600"]
    assert summary.quarantined == 1 and "surrogate" in quarantine(tmp_path / "ds")[0]["reason"]


def test_invalid_utf8_inside_a_parquet_string_column_is_quarantined(tmp_path):
    src = tmp_path / "in.parquet"
    values = [b"good one", b"bad \xff\xfe bytes", b"good two"]
    binary = pa.array(values, pa.binary())
    pq.write_table(pa.table({"text": binary.view(pa.string())}), src)
    with pytest.raises(InputError, match="row 2: invalid UTF-8"):
        ingest([str(src)], tmp_path / "ds")
    summary = ingest([str(src)], tmp_path / "ds", SKIP)
    assert texts(tmp_path / "ds") == ["good one", "good two"] and summary.quarantined == 1


# ------------------------------------------------------------------ outputs and inputs
def test_an_output_inside_an_input_directory_is_refused(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "a.jsonl").write_text('{"text": "x"}\n')
    for out in (d / "ds", d):
        with pytest.raises(InputError, match="inside the input directory"):
            ingest([str(d)], out)
    with pytest.raises(InputError, match="inside the input directory"):
        ingest([f"{d}/*.jsonl"], d / "ds")
    assert sorted(p.name for p in d.iterdir()) == ["a.jsonl"]


def test_an_input_inside_the_output_is_refused(tmp_path):
    ds = tmp_path / "ds"
    ingest([str(write_jsonl(tmp_path / "a.jsonl", [{"text": "x"}]))], ds)
    part = Dataset.open(ds).files()[0]
    with pytest.raises(InputError, match="inside --out"):
        ingest([str(part)], ds)


# ------------------------------------------------------------------ provenance kept, never invented
def test_reingesting_a_provkit_part_keeps_its_provenance(tmp_path):
    src = tmp_path / "src"
    batch = make_batch(["human words", "model words", "no idea"], ids=["h", "m", "u"],
                       origin=["human", "model", "unknown"], evidence=["declared", "detector", None],
                       confidence=[1.0, 0.875, None],
                       generators=[None, Generator("opt-125m", 3, seed=7), None], parent_ids=[[], ["h"], []])
    with DatasetWriter(src, Activity("generate")) as w:
        w.write(batch)
    out = tmp_path / "again"
    ingest([str(Dataset.open(src).files()[0])], out)
    got = {r["id"]: r for r in Dataset.open(out).read().to_pylist()}
    assert set(got) == {"h", "m", "u"}
    assert [got[k]["origin"] for k in "hmu"] == ["human", "model", "unknown"]
    assert [got[k]["origin_evidence"] for k in "hmu"] == ["declared", "detector", None]
    assert got["m"]["origin_confidence"] == pytest.approx(0.875) and got["u"]["origin_confidence"] is None
    assert got["m"]["generator"]["model"] == "opt-125m" and got["m"]["generator"]["generation"] == 3
    assert got["m"]["parent_ids"] == ["h"] and got["h"]["generator"] is None
    assert verify(out) == []


def test_a_null_origin_field_is_unknown_never_human(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "a", "who": None}, {"text": "b"}, {"text": "c", "who": "model"}])
    ingest([str(src)], tmp_path / "ds", IngestConfig(origin_field="who"))
    rows = Dataset.open(tmp_path / "ds").read().to_pylist()
    assert [r["origin"] for r in rows] == ["unknown", "unknown", "model"]
    assert rows[0]["origin_evidence"] is None and rows[0]["origin_confidence"] is None


def test_dangling_parent_ids_follow_on_error(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "text": "root"}, {"id": "b", "text": "child", "p": "a"},
        {"id": "c", "text": "orphan", "p": ["a", "ghost"]},
    ])
    cfg = {"id_field": "id", "parent_field": "p"}
    with pytest.raises(InputError, match="line 3: dangling parent id 'ghost'"):
        ingest([str(src)], tmp_path / "ds", IngestConfig(**cfg))
    assert not (tmp_path / "ds").exists()
    summary = ingest([str(src)], tmp_path / "ds", IngestConfig(**cfg, on_error="skip"))
    assert texts(tmp_path / "ds") == ["root", "child"]
    assert summary.dangling_parents == 1 and summary.by_reason == {"dangling parent id": 1}
    # parents in a --parent-dataset are found
    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "d", "text": "grandchild", "p": "b"}])
    ingest([str(more)], tmp_path / "ds2", IngestConfig(**cfg, parent_datasets=(str(tmp_path / "ds"),)))
    assert texts(tmp_path / "ds2") == ["grandchild"]
