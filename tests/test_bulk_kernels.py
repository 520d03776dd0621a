"""The bulk kernels of the ingest's hot path, each proved against the plain definition it replaces.

* ``sha256_hex`` (OpenSSL through a compiled loop, or ``hashlib``) == ``hashlib.sha256(...).hexdigest()``;
* ``in_normal_form`` only ever says "unchanged" of texts ``normalize_text`` leaves unchanged;
* ``scan_lines`` finds the lines ``bytes.split`` finds, a depth bound never below the true JSON depth;
* ``hash_order`` == ``np.argsort(kind="stable")``.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from provkit.core.hashing import openssl_sha256, sha256_hex, sha256_hex_hashlib, string_buffers
from provkit.core.text import in_normal_form, normalize_text, whitespace_token_counts
from provkit.provenance.idindex import hash_order, sorted_matches
from provkit.provenance.readers.base import MAX_JSON_DEPTH, FieldMap, ReadOptions, iter_line_blocks, scan_lines
from provkit.provenance.readers.jsonl import json_depth
from provkit.provenance.schema import SCHEMA, ConstantColumns, constant_column, content_hash, content_hashes

TEXTS = st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=300), max_size=60)


def _hex(texts: list[str], rows: np.ndarray) -> list[str]:
    arr = pa.array(texts, pa.large_string())
    offsets, data = string_buffers(arr)
    out = np.zeros((len(texts), 64), dtype=np.uint8)
    sha256_hex(offsets, data, rows, out)
    return [out[i].tobytes().decode() for i in range(len(texts))]


def _libcrypto_has_sha256() -> bool:
    try:
        lib = ctypes.CDLL("libcrypto.so.3")
    except OSError:
        return False
    return all(hasattr(lib, f) for f in ("SHA256_Init", "SHA256_Update", "SHA256_Final"))


def test_openssl_is_used_wherever_libcrypto_offers_sha256():
    """Where Linux's libcrypto (the one Python's hashlib links) has the calls, the fast path is taken; the
    hashlib fallback is tested below."""
    if sys.platform.startswith("linux") and _libcrypto_has_sha256():
        assert openssl_sha256()
    elif not sys.platform.startswith("linux"):
        assert not openssl_sha256()


@settings(max_examples=60, deadline=None)
@given(TEXTS, st.integers(0, 2**32 - 1))
def test_sha256_hex_equals_hashlib(texts, seed):
    rows = np.flatnonzero(np.random.default_rng(seed).random(len(texts)) < 0.7)
    got = _hex(texts, rows)
    for i, text in enumerate(texts):
        want = hashlib.sha256(text.encode()).hexdigest() if i in set(rows.tolist()) else "\0" * 64
        assert got[i] == want


def test_sha256_hex_fallback_equals_hashlib():
    """Where no libcrypto can be loaded the same digests come from hashlib, one call per string."""
    texts = ["", "a", "é" * 40, "x" * 5000, "line\r\nbreak"]
    offsets, data = string_buffers(pa.array(texts, pa.large_string()))
    out = np.zeros((len(texts), 64), dtype=np.uint8)
    sha256_hex_hashlib(offsets, data, np.arange(len(texts)), out)
    got = [out[i].tobytes().decode() for i in range(len(texts))]
    assert got == _hex(texts, np.arange(len(texts))) == [hashlib.sha256(t.encode()).hexdigest() for t in texts]


@settings(max_examples=100, deadline=None)
@given(TEXTS)
def test_in_normal_form_is_sound_and_content_hashes_match(texts):
    offsets, data = string_buffers(pa.array(texts, pa.large_string()))
    plain = in_normal_form(offsets, data)
    for text, p in zip(texts, plain):
        if p:
            assert normalize_text(text) == text
    assert content_hashes(texts).to_pylist() == [content_hash(t) for t in texts]


def test_in_normal_form_on_the_edges():
    texts = ["", "abc", " abc", "abc\t", "a\rb", "a\nb", "caf\u00e9", "\x1c", "a b"]
    offsets, data = string_buffers(pa.array(texts))
    assert in_normal_form(offsets, data).tolist() == [True, True, False, False, False, True, False, False, True]


LINES = st.lists(st.one_of(
    st.just(""), st.just("\r"), st.text(alphabet="ab {}[]\"\\", max_size=40),
    st.integers(200, 400).map(lambda d: '{"t": ' + "[" * d + "]" * d + "}"),
    st.integers(0, 300).map(lambda n: json.dumps({"text": "w " * n})),
), max_size=40)


@settings(max_examples=100, deadline=None)
@given(LINES)
def test_scan_lines_finds_every_line_and_bounds_its_depth(lines):
    block = "".join(line + "\n" for line in lines).encode()
    scan = scan_lines(block)
    pieces = block.split(b"\n")[:-1]
    assert len(scan) == len(pieces)
    for i, piece in enumerate(pieces):
        assert block[scan.starts[i]: scan.ends[i]] == piece
        assert scan.blank[i] == (piece in (b"", b"\r"))
        assert scan.depth_bound[i] >= json_depth(piece)
        if scan.depth_bound[i] <= MAX_JSON_DEPTH:
            assert json_depth(piece) <= MAX_JSON_DEPTH


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 20), max_size=200))
def test_hash_order_is_the_stable_argsort(values):
    hashes = np.array(values, dtype=np.uint64)
    assert hash_order(hashes).tolist() == np.argsort(hashes, kind="stable").tolist()


LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet="ab \u00e9\"\\", max_size=120), LINE_ENDS), min_size=1, max_size=120),
       st.integers(16, 4096))
def test_line_blocks_are_the_same_lines_whatever_the_block_size(tmp_path_factory, rows, block):
    """Cutting a file into blocks (carry, CR, CRLF, blank lines) never merges, splits or renumbers a line."""
    path = tmp_path_factory.mktemp("blocks") / "x.jsonl"
    lines = [json.dumps({"text": t}) if t.strip() else "" for t, _ in rows]
    data = "".join(line + end for line, (_, end) in zip(lines, rows)).encode()
    path.write_bytes(data)
    opts = ReadOptions(FieldMap("text"), "file", 10 << 20, block)
    got = []
    for first, blk, too_large, scan in iter_line_blocks(str(path), opts):
        assert not too_large and blk.endswith(b"\n")
        got += [(first + i, blk[scan.starts[i]: scan.ends[i]].rstrip(b"\r")) for i in range(len(scan))]
    want = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")[:-1]  # CRLF, CR and LF each end a line
    assert got == [(n + 1, line) for n, line in enumerate(want)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("ab \t\n\r\x0b\x0c\x1c\xa0\u3000\u2028é日")), max_size=40),
                max_size=50))
def test_whitespace_token_counts_equal_the_re2_regex(texts):
    arr = pa.array(texts, pa.large_string())
    want = pc.count_substring_regex(arr, r"\S+").to_pylist()
    assert whitespace_token_counts(*string_buffers(arr)).tolist() == want


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=300), st.lists(st.integers(0, 50), max_size=300))
def test_sorted_matches_equal_searchsorted(run, keys):
    run_a, keys_a = np.sort(np.array(run, dtype=np.uint64)), np.sort(np.array(keys, dtype=np.uint64))
    pos = np.searchsorted(run_a, keys_a)
    hit = (pos < len(run_a)) & (run_a[np.minimum(pos, max(len(run_a) - 1, 0))] == keys_a) if len(run_a) else \
        np.zeros(len(keys_a), dtype=bool)
    got_keys, got_pos = sorted_matches(run_a, keys_a)
    assert got_keys.tolist() == np.flatnonzero(hit).tolist() and got_pos.tolist() == pos[hit].tolist()


def test_load_kernels_compiles_the_kernels_of_a_check_and_of_the_id_index_in_a_fresh_process():
    """The ingest's start-up thread (``load_kernels``) leaves every kernel a check and the duplicate-id index call
    compiled (loaded), so the first real chunk does not wait for the JIT."""
    script = """
from provkit.core import hashing, text
from provkit.provenance import idindex
from provkit.provenance.ingest import load_kernels
kernels = [text._normal_form_kernel, hashing._fnv_fmix, idindex._repeats, idindex._merge_matches]
if hashing.openssl_sha256():
    kernels.append(hashing._sha256_hex_openssl)
assert not any(k.signatures for k in kernels), [k for k in kernels if k.signatures]
load_kernels()
missing = [k.py_func.__name__ for k in kernels if not k.signatures]
assert not missing, missing
print("ok", len(kernels))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")


def test_constant_columns_hand_out_slices_equal_to_building_each_column():
    """ConstantColumns: each length (growing, shrinking, growing past the built one) gets the same column as
    building it afresh, for every scalar kind the record schema uses (a dictionary type gets one entry)."""
    cache = ConstantColumns()
    values = {"activity_id": "act-1", "origin": "human", "origin_confidence": 1.0, "dataset": None,
              "ingested_at": dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc), "generator": None}
    for n in (5, 3, 0, 12, 7):
        for name, value in values.items():
            type_ = SCHEMA.field(name).type
            got = cache.column(value, type_, n)
            assert got.type == type_ and len(got) == n
            assert got.to_pylist() == constant_column(value, type_, n).to_pylist() == [value] * n
    origin = cache.column("human", SCHEMA.field("origin").type, 4)
    assert origin.dictionary.to_pylist() == ["human"]
