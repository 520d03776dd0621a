"""Near-duplicate dedup within a memory budget: the spilled path gives the in-memory path's results."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from filter_fixtures import human_texts, write_dataset

from provkit.engines import run_filter
from provkit.engines.local import ids_from_spill, read_ids, spilled_signature_columns
from provkit.errors import ConfigError
from provkit.filters import parse_pipeline
from provkit.filters.components import (
    component_labels,
    new_forest,
    resolve_roots,
    union_pairs,
)
from provkit.filters.dedup import (
    SPILL_BYTES_PER_RECORD,
    DedupResult,
    NearDupConfig,
    SignatureSource,
    check_budget,
    elect_survivors,
    fits_in_memory,
    group_survivors,
    near_duplicate_components,
    near_duplicate_components_spilled,
    near_duplicates,
    near_duplicates_within_budget,
    survivors_of_components,
)
from provkit.filters.lsh import band_hashes, partition_of, signature_hashes
from provkit.filters.minhash import signatures
from provkit.filters.pipeline import build_steps
from provkit.filters.step import ClusterDedup, survivor_row_plan
from provkit.provenance import Dataset


def _edit_last_words(text: str, k: int, tag: str) -> str:
    words = text.split()
    for i in range(1, min(k, len(words)) + 1):
        words[-i] = f"{tag}{i}"
    return " ".join(words)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """Builtin docs + near copies at several distances, exact copies, a chain, and texts without words."""
    docs = [t for t in human_texts(400) if len(t.split()) >= 30]
    rng = np.random.default_rng(7)
    texts = list(docs)
    for j, i in enumerate(rng.choice(len(docs), 120, replace=False)):
        texts.append(_edit_last_words(docs[i], int(rng.integers(1, 12)), f"v{j}x"))
    texts += [docs[3]] * 30 + [docs[4]] * 5  # exact copies: one identical-signature group of 31, one of 6
    base = docs[10].split()
    for step in range(1, 6):  # a chain: each link a few words further from the first
        texts.append(" ".join(base[:-3 * step] + [f"chain{step}x{i}" for i in range(3 * step)]))
    texts += ["", "   ", "?!", ""]
    order = rng.permutation(len(texts))
    return [texts[i] for i in order]


@pytest.fixture(scope="module")
def sigs(corpus) -> np.ndarray:
    return signatures(corpus, NearDupConfig().minhash())


@pytest.mark.parametrize("memory_mb", [0.3, 0.6, 4.0])
@pytest.mark.parametrize("verify", [True, False])
def test_spilled_components_equal_in_memory(sigs, memory_mb, verify):
    expected = near_duplicate_components(sigs, NearDupConfig(verify=verify))
    assert len(np.unique(expected)) < len(expected) - 60  # the corpus has many real clusters
    stats: dict = {}
    got = near_duplicate_components_spilled(sigs, NearDupConfig(verify=verify, memory_mb=memory_mb), stats=stats)
    np.testing.assert_array_equal(got, expected)
    if memory_mb < 1:
        assert stats["layout"]["band_parts"] > 1 and stats["layout"]["chunk_rows"] < len(sigs)


def test_spilled_reads_selected_rows_of_a_signature_file(sigs, tmp_path):
    path = tmp_path / "sigs.bin"
    sigs.tofile(path)
    rows = np.flatnonzero(np.arange(len(sigs)) % 3 != 1)  # an alive subset, as after an earlier step
    source = SignatureSource(rows=rows, path=path, dtype=sigs.dtype, width=sigs.shape[1])
    np.testing.assert_array_equal(source.read(np.array([0, 5, 2])), sigs[rows[[0, 5, 2]]])
    np.testing.assert_array_equal(source.read(slice(3, 700)), sigs[rows[3:700]])  # over several short maps
    expected = near_duplicate_components(sigs[rows], NearDupConfig())
    got = near_duplicate_components_spilled(source, NearDupConfig(memory_mb=0.3), workdir=tmp_path)
    np.testing.assert_array_equal(got, expected)
    mm = np.memmap(path, dtype=sigs.dtype, mode="r").reshape(-1, sigs.shape[1])  # a memmap as the array
    np.testing.assert_array_equal(near_duplicate_components_spilled(mm, NearDupConfig(memory_mb=0.3), rows=rows,
                                                                    workdir=tmp_path), expected)
    del mm
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sigs.bin"]  # partition files removed


def test_within_budget_equals_near_duplicates_on_both_paths(corpus, sigs):
    rng = np.random.default_rng(1)
    origins = pa.array(rng.choice(["human", "model", "unknown"], len(sigs)).tolist()).dictionary_encode()
    order = np.arange(len(sigs), dtype=np.int64) * 5 + 3
    expected = near_duplicates(sigs, origins, order)
    for memory_mb in (0.3, 1000.0):
        config = NearDupConfig(memory_mb=memory_mb)
        stats: dict = {}
        got = near_duplicates_within_budget(sigs, origins, order, config, stats=stats)
        assert stats["path"] == ("memory" if fits_in_memory(len(sigs), config) else "spilled")
        np.testing.assert_array_equal(got.cluster, expected.cluster)
        np.testing.assert_array_equal(got.survivor, expected.survivor)
    assert not fits_in_memory(len(sigs), NearDupConfig(memory_mb=0.3))
    assert expected.num_duplicates > 60


def test_survivors_of_components_equal_the_sort():
    rng = np.random.default_rng(5)
    for n in (1, 7, 500):
        labels = component_labels(n, rng.integers(0, n, size=(n // 2, 2)))
        origins = rng.choice(["human", "model", "unknown", "synthetic"], n).tolist()
        order = rng.integers(0, 40, n)  # ties in order: the earlier row wins in both
        a, b = elect_survivors(labels, origins, order), survivors_of_components(labels, origins, order)
        np.testing.assert_array_equal(a.cluster, b.cluster)
        np.testing.assert_array_equal(a.survivor, b.survivor)
    with pytest.raises(ValueError, match="smallest row"):
        survivors_of_components(np.array([1, 1]), ["human", "human"])


def test_union_find_labels_equal_scipy_in_any_edge_order():
    rng = np.random.default_rng(2)
    n = 300
    edges = rng.integers(0, n, size=(220, 2))
    expected = component_labels(n, edges)
    for _ in range(3):
        parent = new_forest(n)
        shuffled = edges[rng.permutation(len(edges))]
        for part in np.array_split(shuffled, 4):  # edges arriving in batches
            union_pairs(parent, part[:, ::-1] if rng.random() < 0.5 else part)
        np.testing.assert_array_equal(resolve_roots(parent), expected)


def test_band_hash_fold_and_partitions():
    rng = np.random.default_rng(4)
    sigs = rng.integers(0, 2**32, size=(50, 12), dtype=np.uint32)
    mask = (1 << 64) - 1

    def fmix(h: int) -> int:
        h ^= h >> 33
        h = (h * 0xFF51AFD7ED558CCD) & mask
        h ^= h >> 33
        h = (h * 0xC4CEB9FE1A85EC53) & mask
        return h ^ (h >> 33)

    def fold(values: list[int], j: int) -> int:
        h = fmix(j + 1)
        for v in values:
            h = fmix(((h ^ v) * 0x9E3779B97F4A7C15) & mask)
        return h

    got = band_hashes(sigs, 3, 4)
    assert [[int(x) for x in row] for row in got[:5]] == [
        [fold([int(v) for v in s[j * 4:(j + 1) * 4]], j) for j in range(3)] for s in sigs[:5]]
    assert int(signature_hashes(sigs)[0]) == fold([int(v) for v in sigs[0]], 0)
    part = partition_of(got.reshape(-1), 7)
    assert part.min() >= 0 and part.max() < 7
    np.testing.assert_array_equal(partition_of(got.reshape(-1), 7), part)  # equal keys, equal partitions


def test_budget_refused_in_one_line_and_defaults_never_refuse():
    with pytest.raises(ConfigError) as err:
        check_budget(1_000_000, NearDupConfig(memory_mb=16))
    assert "\n" not in str(err.value) and "1,000,000 records" in str(err.value) and "memory_mb" in str(err.value)
    assert check_budget(1_000_000, NearDupConfig(memory_mb=64)) == 64 << 20
    assert check_budget(100_000_000, NearDupConfig()) >= SPILL_BYTES_PER_RECORD * 100_000_000
    with pytest.raises(ValueError):
        NearDupConfig(memory_mb=0)


def test_survivor_row_plan_sorts_by_order_and_names_each_duplicates_survivor():
    orders = np.array([9, 2, 5, 7, 11], dtype=np.int64)
    result = DedupResult(cluster=np.array([2, 2, 5, 2, 11]), survivor=np.array([1, 1, 2, 1, 4]))
    ids = pa.chunked_array([pa.array(["a", "b"]), pa.array(["c", "d", "e"])])
    got = survivor_row_plan(orders, result, ids, "near_duplicate", "near_dup_cluster")
    assert got.column("_row").to_pylist() == [2, 5, 7, 9, 11]  # rows a..e by order: b, c, d, a, e
    assert got.column("drop_reason").to_pylist() == [None, None, "near_duplicate", "near_duplicate", None]
    assert got.column("dup_of").to_pylist() == [None, None, "b", "b", None]
    assert got.column("near_dup_cluster").to_pylist() == [2, 5, 2, 2, 11]
    assert got.schema.field("drop_reason").type == pa.string() and got.schema.field("dup_of").type == pa.string()
    assert ClusterDedup("near_duplicate", "near_dup_cluster").survivor_plan(orders, result, ids).equals(got)


def _outputs(path):
    ds = Dataset.open(path)
    cols = ["id", "dup_of", "near_dup_cluster"]
    kept = sorted(ds.read("data", columns=["id"]).column("id").to_pylist())
    rejects = sorted(map(tuple, (r.values() for r in ds.read("rejects", columns=cols + ["drop_reason"]).to_pylist())))
    return kept, rejects


def test_engine_spilled_and_in_memory_runs_write_the_same_dataset(corpus, tmp_path):
    human = corpus[: len(corpus) // 2]
    model = corpus[len(corpus) // 2:] + human[:15]  # exact copies for exact_dedup, so minhash sees a subset
    src = write_dataset(tmp_path / "src", human, [model])
    results = {}
    for name, memory_mb in (("memory", 1000), ("spilled", 0.3)):
        cfg = parse_pipeline({"steps": [{"kind": "exact_dedup"},
                                        {"kind": "minhash_dedup", "threshold": 0.8, "memory_mb": memory_mb}]}, "t")
        report = run_filter(src, tmp_path / name, cfg).report
        results[name] = _outputs(tmp_path / name)
        assert report["dropped"]["near_duplicate"] > 40 and report["dropped"]["exact_duplicate"] >= 15
    assert not fits_in_memory(len(corpus), NearDupConfig(memory_mb=0.3))
    assert results["memory"] == results["spilled"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".provkit")]  # spill directories removed


def test_engine_refuses_a_budget_that_cannot_fit_before_writing(tmp_path):
    src = write_dataset(tmp_path / "src", human_texts(60))
    cfg = parse_pipeline({"steps": [{"kind": "minhash_dedup", "memory_mb": 0.2}]}, "t")
    with pytest.raises(ConfigError, match="raise memory_mb"):
        run_filter(src, tmp_path / "out", cfg)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="memory_mb"):
        parse_pipeline({"steps": [{"kind": "minhash_dedup", "memory_mb": -1}]}, "t")


def test_run_groups_cut_only_at_run_boundaries():
    from provkit.filters.dedup import run_groups, shared_runs

    keys = np.array([1, 1, 2, 2, 2, 2, 2, 3, 3, 4, 4, 4], dtype=np.uint64)
    for max_rows in (1, 2, 3, 5, 7, 100):
        cuts = list(run_groups(keys, max_rows))
        assert cuts[0].start == 0 and cuts[-1].stop == len(keys)
        assert all(a.stop == b.start for a, b in itertools.pairwise(cuts))
        for c in cuts:  # never splits a run; over max_rows only when one run is longer
            assert c.start == 0 or keys[c.start] != keys[c.start - 1]
            assert c.stop - c.start <= max_rows or len(set(keys[c].tolist())) == 1
    assert shared_runs(np.array([1, 2, 2, 3, 4, 4, 4, 5], dtype=np.uint64)).tolist() == [
        False, True, True, False, True, True, True, False]


@pytest.mark.parametrize("before", [[], [{"kind": "random_drop", "count": 0}]])
def test_engine_near_dup_columns_equal_the_steps_own_plan(corpus, tmp_path, before):
    """The engine keeps no id for a minhash-only pipeline (survivor ids come from the spill) and stores
    no cluster id for rows that are their own cluster; what it writes still equals the step's own plan."""
    human = corpus[: len(corpus) // 2]
    src = write_dataset(tmp_path / "src", human, [corpus[len(corpus) // 2:]])
    spec = {"kind": "minhash_dedup", "threshold": 0.8, "memory_mb": 0.3}
    cfg = parse_pipeline({"steps": before + [spec]}, "t")
    steps = build_steps(cfg, Dataset.open(src))
    assert ids_from_spill(steps, spilled_signature_columns(steps)) == (not before)
    run_filter(src, tmp_path / "out", cfg)

    step = steps[-1]
    records = Dataset.open(src).read()
    scored = step.score(pa.RecordBatch.from_arrays([records.column("text").combine_chunks()], names=["text"]))
    table = pa.table({"_row": np.arange(records.num_rows), "id": records.column("id"),
                      "origin": records.column("origin"), "_minhash": scored.column("_minhash")})
    plan = step.plan(table)
    ids = records.column("id").to_pylist()
    expected = {ids[r]: (reason, dup, cluster) for r, reason, dup, cluster in zip(
        *(plan.column(c).to_pylist() for c in ("_row", "drop_reason", "dup_of", "near_dup_cluster")))}
    out = Dataset.open(tmp_path / "out")
    got = {row["id"]: (None, row["dup_of"], row["near_dup_cluster"])
           for row in out.read("data", columns=["id", "dup_of", "near_dup_cluster"]).to_pylist()}
    got.update({row["id"]: (row["drop_reason"], row["dup_of"], row["near_dup_cluster"]) for row in
                out.read("rejects", columns=["id", "drop_reason", "dup_of", "near_dup_cluster"]).to_pylist()})
    assert got == expected
    assert sum(r == "near_duplicate" for r, _, _ in got.values()) > 40
    assert sum(c != ids.index(i) for i, (_, _, c) in got.items()) > 40  # rows that are not their own cluster


def test_read_ids_takes_the_ids_of_the_asked_rows_from_the_scored_spill(tmp_path):
    path = tmp_path / "scored.parquet"
    batches = [pa.record_batch({"id": [f"x{i}" for i in range(s, s + 5)], "_row": np.arange(s, s + 5)})
               for s in range(0, 20, 5)]
    with pq.ParquetWriter(path, batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    assert read_ids(path, np.array([0, 4, 5, 13, 19]), 3).to_pylist() == ["x0", "x4", "x5", "x13", "x19"]
    assert read_ids(path, np.array([], dtype=np.int64), 3).to_pylist() == []


def test_group_survivors_equal_the_full_survivors_on_the_grouped_rows(sigs, corpus):
    labels = near_duplicate_components(sigs, NearDupConfig())
    origins = pa.chunked_array([pa.array(["human", "model"] * (len(corpus) // 2) + ["human"] * (len(corpus) % 2))])
    order = np.arange(len(corpus), dtype=np.int64) * 3 + 7
    full = survivors_of_components(labels, origins, order)
    groups = group_survivors(labels, origins, order)
    grouped = np.zeros(len(corpus), dtype=bool)
    grouped[groups.rows] = True
    assert np.array_equal(grouped, np.bincount(labels, minlength=len(labels))[labels] > 1)  # components of 2+ rows
    assert np.array_equal(groups.survivor, full.survivor[groups.rows])
    assert np.array_equal(groups.cluster, full.cluster[groups.rows])
    assert np.array_equal(full.survivor[~grouped], np.flatnonzero(~grouped))  # the rest: their own survivor
    assert np.array_equal(full.cluster[~grouped], order[~grouped])
    assert len(groups.rows) > 100 and (groups.survivor != groups.rows).sum() > 60
