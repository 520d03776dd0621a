"""Exact and near-duplicate dedup: LSH parameters, candidate pairs, components, survivor rule."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHashLSH

from provkit.filters.components import canonical_labels, component_labels
from provkit.filters.dedup import (
    NearDupConfig,
    elect_survivors,
    exact_duplicates,
    near_duplicate_components,
    near_duplicates,
    origin_rank,
    verified_pairs,
)
from provkit.filters.lsh import band_hashes, candidate_pairs, candidate_probability, optimal_params
from provkit.filters.minhash import (
    MinHashConfig,
    estimate_jaccard,
    shingles,
    signatures,
    signatures_from_arrow,
    signatures_to_arrow,
    words,
)
from provkit.provenance import builtin_texts, make_batch


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return builtin_texts("python-docs")


@pytest.fixture(scope="module")
def vocabulary(docs) -> list[str]:
    return words(" ".join(docs[:200]))


def jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = set(shingles(a, n)), set(shingles(b, n))
    return len(sa & sb) / len(sa | sb)


@pytest.mark.parametrize("threshold,num_perm,weights", [(0.8, 128, (0.5, 0.5)), (0.5, 64, (0.5, 0.5)),
                                                        (0.9, 128, (0.3, 0.7)), (0.7, 256, (0.5, 0.5))])
def test_optimal_params_match_datasketch(threshold, num_perm, weights):
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    assert optimal_params(threshold, num_perm, *weights) == (lsh.b, lsh.r)
    assert NearDupConfig(threshold=threshold, num_perm=num_perm, fp_weight=weights[0],
                         fn_weight=weights[1]).banding() == (lsh.b, lsh.r)


def test_s_curve_is_monotone_and_centred():
    b, r = optimal_params(0.8, 128)
    assert (b, r) == (9, 13) and NearDupConfig().banding() == (16, 8)  # equal weights vs recall-first default
    p = candidate_probability(np.array([0.3, 0.8, 0.95]), b, r)
    assert p[0] < 0.05 and 0.3 < p[1] < 0.9 and p[2] > 0.99


def test_all_pairs_and_star_pairs_within_buckets():
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 12, size=(60, 3)).astype(np.uint64)
    expected = set()
    for j in range(3):
        for bucket in set(keys[:, j].tolist()):
            members = np.flatnonzero(keys[:, j] == bucket).tolist()
            expected |= set(itertools.combinations(members, 2))
    got = {tuple(p) for p in candidate_pairs(keys, all_pairs=True).tolist()}
    assert got == expected
    star = candidate_pairs(keys, all_pairs=False)
    assert len(star) < len(got)
    np.testing.assert_array_equal(component_labels(60, star), component_labels(60, np.array(sorted(got))))


def test_band_hashes_equal_iff_bands_equal():
    sigs = np.array([[1, 2, 3, 4], [1, 2, 9, 4], [1, 2, 3, 4]], dtype=np.uint32)
    h = band_hashes(sigs, 2, 2)
    assert h.dtype == np.uint64 and h.shape == (3, 2)
    assert h[0, 0] == h[1, 0] == h[2, 0] and h[0, 1] != h[1, 1] and h[0, 1] == h[2, 1]
    assert h[0, 0] != h[0, 1]  # same values in another band land in another bucket space
    with pytest.raises(ValueError):
        band_hashes(sigs, 3, 2)


def test_components_chain_and_canonical_labels():
    labels = component_labels(6, np.array([[0, 1], [1, 2], [4, 5]]))
    assert labels.tolist() == [0, 0, 0, 3, 4, 4]
    assert canonical_labels(np.array([7, 7, 3, 9, 3])).tolist() == [0, 0, 2, 3, 2]
    assert component_labels(0, np.zeros((0, 2))).tolist() == []


def test_chain_of_near_duplicates_is_one_cluster(vocabulary):
    """A~B and B~C above the threshold, A~C below it: still one cluster."""
    a, b, c = (" ".join(vocabulary[s:s + 300]) for s in (0, 30, 60))
    other = " ".join(vocabulary[2000:2300])
    cfg = NearDupConfig(threshold=0.74, num_perm=256)
    sigs = signatures([a, b, c, other], cfg.minhash())
    est = estimate_jaccard(sigs, np.array([0, 1, 0]), np.array([1, 2, 2]))
    assert est[0] >= 0.74 and est[1] >= 0.74 and est[2] < 0.74
    assert jaccard(a, c) < 0.7 < 0.78 < jaccard(a, b)
    result = near_duplicates(sigs, ["model", "human", "model", "human"], config=cfg)
    assert result.cluster.tolist() == [0, 0, 0, 3]
    assert result.survivor.tolist() == [1, 1, 1, 3]  # the human member survives
    assert result.dup_of(["a", "b", "c", "d"]) == ["b", None, "b", None]


def test_planted_near_duplicates_found_against_exact_jaccard(docs):
    rng = np.random.default_rng(11)
    originals = [d for d in docs if len(words(d)) >= 100][:120]
    variants = []
    for d in originals[:50]:
        w = d.split()
        w[int(rng.integers(len(w)))] = "edited"
        variants.append(" ".join(w))
    texts = originals + variants
    origins = ["human"] * len(originals) + ["model"] * len(variants)
    cfg = NearDupConfig(threshold=0.8)
    result = near_duplicates(signatures(texts, cfg.minhash()), origins, config=cfg)
    n0 = len(originals)
    sets = [set(shingles(t, 5)) for t in texts]
    pairs = list(itertools.combinations(range(len(texts)), 2))
    truth = {(i, j) for i, j in pairs if len(sets[i] & sets[j]) >= 0.8 * len(sets[i] | sets[j])}
    found = {(i, j) for i, j in pairs if result.cluster[i] == result.cluster[j]}
    assert all((k, n0 + k) in truth for k in range(50))
    assert len(truth & found) / len(truth) >= 0.95
    assert len(truth & found) / len(found) >= 0.9
    joined = [k for k in range(50) if result.cluster[n0 + k] == result.cluster[k]]
    assert len(joined) >= 48  # LSH (b=16, r=8) + verification miss a J~0.9 pair with probability < 1%
    for k in joined:  # a variant clustered with its original points at a human survivor
        assert origins[result.survivor[n0 + k]] == "human"


def test_identical_signature_shortcut_keeps_components(docs):
    """Collapsing identical signatures gives the same components as all-pairs LSH over every row."""
    base = [d for d in docs if len(words(d)) > 30][:40]
    texts = base + base[:10] + [t + " extra words at the end" for t in base[:10]] + base[:3] + ["", ""]
    cfg = NearDupConfig(threshold=0.7)
    sigs = signatures(texts, cfg.minhash())
    live = np.arange(len(texts) - 2)
    b, r = cfg.banding()
    brute = verified_pairs(sigs[live], candidate_pairs(band_hashes(sigs[live], b, r)), cfg.threshold)
    expected = component_labels(len(texts), live[brute])
    got = near_duplicate_components(sigs, cfg)
    np.testing.assert_array_equal(got, expected)
    assert got[-1] == len(texts) - 1 and got[-2] == len(texts) - 2  # empty texts stay singletons
    assert got[40] == 0 and got[50] == 0


def test_unverified_mode_gives_superset_clusters(docs):
    texts = docs[:120]
    sigs = signatures(texts, MinHashConfig())
    strict = near_duplicate_components(sigs, NearDupConfig(threshold=0.5))
    loose = near_duplicate_components(sigs, NearDupConfig(threshold=0.5, verify=False))
    for c in np.unique(strict):  # every verified cluster sits inside one unverified cluster
        assert len(np.unique(loose[strict == c])) == 1


def test_survivor_rule_human_then_model_then_earliest():
    groups = np.array([5, 5, 5, 5, 9, 9, 2])
    origins = ["model", "unknown", "human", "human", "mixed", "model", "unknown"]
    res = elect_survivors(groups, origins, order=[10, 11, 13, 12, 20, 21, 30])
    assert res.survivor.tolist() == [3, 3, 3, 3, 5, 5, 6]
    assert res.cluster.tolist() == [10, 10, 10, 10, 20, 20, 30]
    assert res.is_survivor.tolist() == [False, False, False, True, False, True, True]
    assert res.num_duplicates == 4
    assert origin_rank(pa.array(origins).dictionary_encode()).tolist() == [1, 2, 0, 0, 2, 1, 2]


def test_exact_dedup_on_records():
    texts = ["Alpha text.", "Beta text.", "Alpha text.", "  Alpha text.\r\n", "Gamma."]
    batch = make_batch(texts, ids=[f"r{i}" for i in range(5)], origin=["model", "human", "model", "human", "human"])
    res = exact_duplicates(batch.column("content_hash"), batch.column("origin"))
    assert res.cluster.tolist() == [0, 1, 0, 0, 4]
    assert res.dup_of(batch.column("id")) == ["r3", None, "r3", None, None]
    assert exact_duplicates([], []).survivor.tolist() == []


def test_signature_arrow_roundtrip(docs):
    sigs = signatures(docs[:5])
    col = signatures_to_arrow(sigs)
    assert col.type == pa.list_(pa.uint32(), 128)
    np.testing.assert_array_equal(signatures_from_arrow(pa.chunked_array([col.slice(0, 2), col.slice(2)])), sigs)
