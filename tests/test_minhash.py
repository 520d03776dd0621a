"""MinHash signatures: bit-for-bit equal to datasketch.MinHash on real texts."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32, sha1_hash64

from provkit.filters.minhash import (
    SCHEMES,
    MinHashConfig,
    ShingleHash,
    empty_signature_mask,
    estimate_jaccard,
    permutations,
    resolve_hashfunc,
    shingle_hashes,
    shingles,
    signatures,
    words,
)
from provkit.provenance import builtin_texts

UNICODE = [
    "İstanbul'da ÇAĞRI — Straße ǅemal café naïve ½ ２０２４ x_y",
    "Ünïcödé wörds, “quoted” and ‘single’ — dashes… ellipsis",
]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    docs = builtin_texts("python-docs")
    return docs[:40] + docs[-20:] + UNICODE + ["", "   ...  ", "One", "Two words here"]


def datasketch_signature(text: str, n: int, num_perm: int, seed: int, hashfunc, scheme: str) -> np.ndarray:
    m = MinHash(num_perm, seed, hashfunc=hashfunc, scheme=scheme)
    m.update_batch([s.encode("utf-8") for s in shingles(text, n)])
    return m.hashvalues


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("hashfunc", ["fast", "sha1"])
@pytest.mark.parametrize("num_perm,seed,ngram", [(128, 1, 5), (64, 42, 3), (17, 7, 1)])
def test_signatures_equal_datasketch(corpus, scheme, hashfunc, num_perm, seed, ngram):
    cfg = MinHashConfig(ngram=ngram, num_perm=num_perm, seed=seed, scheme=scheme, hashfunc=hashfunc)
    sigs = signatures(corpus, cfg)
    func = resolve_hashfunc(hashfunc, scheme)
    assert sigs.shape == (len(corpus), num_perm)
    for d, text in enumerate(corpus):
        expected = datasketch_signature(text, ngram, num_perm, seed, func, scheme)
        assert sigs.dtype == expected.dtype
        np.testing.assert_array_equal(sigs[d], expected, err_msg=f"doc {d}: {text[:40]!r}")


def test_default_config_is_datasketch_default(corpus):
    """MinHashConfig() with sha1 equals a plain datasketch.MinHash() (num_perm=128, seed=1, its default hash)."""
    sigs = signatures(corpus[:10], MinHashConfig(hashfunc="sha1"))
    for d, text in enumerate(corpus[:10]):
        m = MinHash()
        m.update_batch([s.encode("utf-8") for s in shingles(text, 5)])
        np.testing.assert_array_equal(sigs[d], m.hashvalues)


def test_empty_document_is_empty_minhash():
    sigs = signatures(["", "!!! ---", "real words in a sentence here"], MinHashConfig(num_perm=32))
    np.testing.assert_array_equal(sigs[0], MinHash(32, 1).hashvalues)
    assert empty_signature_mask(sigs).tolist() == [True, True, False]


def test_fast_kernel_equals_shingle_hash_callable(corpus):
    for bits, scheme in [(32, "affine32"), (64, "affine64")]:
        hashes, offsets = shingle_hashes(corpus, 4, "fast", scheme)
        func = ShingleHash(bits)
        for d, text in enumerate(corpus):
            expected = [func(s) for s in shingles(text, 4)]
            assert hashes[offsets[d]:offsets[d + 1]].tolist() == expected
            assert func(" ".join(words(text)[:4])) == func(" ".join(words(text)[:4]).encode())


def test_ascii_and_unicode_batches_tokenize_alike():
    """The raw-ASCII fast path and the regex path give the same hashes for the same text."""
    ascii_text = "Hello, WORLD! snake_case and CamelCase; x2 = y**3"
    alone, _ = shingle_hashes([ascii_text], 2)
    mixed, offsets = shingle_hashes([UNICODE[0], ascii_text], 2)
    np.testing.assert_array_equal(alone, mixed[offsets[1]:offsets[2]])


def test_shingles_rules():
    assert words("Hello, WORLD! it's x_1") == ["hello", "world", "it", "s", "x_1"]
    assert shingles("a b c", 5) == ["a b c"]
    assert shingles("", 5) == [] and shingles("?!", 2) == []
    assert shingles("a b c d", 2) == ["a b", "b c", "c d"]


def test_permutations_equal_datasketch():
    for scheme in SCHEMES:
        a, b = permutations(50, 3, scheme)
        ref = MinHash(50, 3, scheme=scheme).permutations
        np.testing.assert_array_equal(a, ref[0])
        np.testing.assert_array_equal(b, ref[1])


def test_hashfunc_choices():
    assert resolve_hashfunc("sha1", "affine32") is sha1_hash32
    assert resolve_hashfunc("sha1", "affine64") is sha1_hash64
    assert resolve_hashfunc("fast", "legacy") == ShingleHash(32)
    with pytest.raises(ValueError):
        MinHashConfig(hashfunc="md5")
    with pytest.raises(ValueError):
        MinHashConfig(scheme="affine16")


def test_estimated_jaccard_tracks_true_jaccard(corpus):
    base = words(corpus[0] + " " + corpus[1])
    rng = np.random.default_rng(0)
    variants = []
    for frac in (0.0, 0.1, 0.3, 0.6):
        w = list(base)
        for i in rng.choice(len(w), int(frac * len(w)), replace=False):
            w[i] = f"zz{i}"
        variants.append(" ".join(w))
    sigs = signatures([" ".join(base)] + variants, MinHashConfig(ngram=2, num_perm=256))
    left = np.zeros(len(variants), dtype=np.int64)
    right = np.arange(1, len(variants) + 1)
    est = estimate_jaccard(sigs, left, right)
    ref = set(shingles(" ".join(base), 2))
    true = [len(ref & set(shingles(v, 2))) / len(ref | set(shingles(v, 2))) for v in variants]
    assert est[0] == 1.0
    np.testing.assert_allclose(est, true, atol=0.1)
