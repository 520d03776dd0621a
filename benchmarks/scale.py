"""Scale-out: the same filter pipeline on the local engine vs the Ray engine (1 and 2 workers).

Prints records/s of each run and the ratio against the local engine measured in
the same run, checks the kept ids are identical, then runs the distributed
near-duplicate clustering (Ray Data band buckets -> candidate pairs ->
large-star/small-star components) on the corpus's MinHash band hashes and
prints the candidate pairs and rounds, checking the partition against the
local (scipy) components of ``provkit.filters``.

    python benchmarks/scale.py [--records 20000] [--address ray://...]

Ray start-up is excluded from the timings (it is paid once per cluster).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


def make_corpus(path: Path, records: int, seed: int = 0) -> Path:
    """Builtin human documents, cycled to ``records`` rows; every 10th row is a near-copy (one word changed)."""
    from provkit.provenance import Activity, DatasetWriter, builtin_texts, make_batch

    base = [t for t in builtin_texts("python-docs") if len(t.split()) >= 20]
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(records):
        words = base[i % len(base)].split()
        if i >= len(base) or i % 10 == 0:
            words[int(rng.integers(len(words)))] = f"w{i}"
        texts.append(" ".join(words))
    with DatasetWriter(path, Activity("ingest", {"benchmark": "scale"})) as w:
        for start in range(0, records, 4096):
            chunk = texts[start:start + 4096]
            w.write(make_batch(chunk, ids=[f"r{start + k}" for k in range(len(chunk))]))
    return path


def timed_filter(src: Path, out: Path, engine: str, options: dict) -> tuple[float, list[str]]:
    from provkit.filters import FilterFlags, pipeline_from_flags, run_filter
    from provkit.provenance import Dataset

    pipeline = pipeline_from_flags(FilterFlags(dedup=("exact", "minhash"), minhash_threshold=0.8, quality=True))
    t0 = time.perf_counter()
    run_filter(src, out, pipeline, engine=engine, engine_options=options)
    seconds = time.perf_counter() - t0
    return seconds, sorted(Dataset.open(out).read("data", columns=["id"]).column("id").to_pylist())


def distributed_clustering(src: Path, workers: int) -> None:
    """Band hashes in ``map_batches``, then the Ray Data clustering; compare with the local components."""
    import pyarrow as pa
    import ray.data

    from provkit.engines import cluster_band_hashes
    from provkit.filters import NearDupConfig, band_hashes, component_labels, signatures
    from provkit.provenance import Dataset

    config = NearDupConfig(threshold=0.8, verify=False)
    bands, rows = config.banding()
    texts = Dataset.open(src).read("data", columns=["text"]).column("text").to_pylist()

    def band_batch(batch: pa.Table) -> pa.Table:
        sigs = signatures(batch.column("text").to_pylist(), config.minhash())
        hashed = band_hashes(sigs, bands, rows)
        return pa.table({"_row": batch.column("_row"), "bands": pa.array(list(hashed), type=pa.list_(pa.uint64()))})

    table = pa.table({"_row": np.arange(len(texts), dtype=np.int64), "text": texts})
    ds = ray.data.from_arrow(table).repartition(workers * 4)
    t0 = time.perf_counter()
    hashed = ds.map_batches(band_batch, batch_format="pyarrow", concurrency=workers)
    comp, stats = cluster_band_hashes(hashed, "_row", "bands", num_partitions=workers)
    result = comp.to_pandas()
    seconds = time.perf_counter() - t0
    got = np.arange(len(texts))
    got[result["node"].to_numpy()] = result["component"].to_numpy()
    sigs = signatures(texts, config.minhash())
    h = band_hashes(sigs, bands, rows)
    pairs = [np.stack([np.flatnonzero(h[:, j] == v)[1:], np.full(c - 1, np.flatnonzero(h[:, j] == v)[0])], 1)
             for j in range(bands) for v, c in zip(*np.unique(h[:, j], return_counts=True)) if c > 1]
    local = component_labels(len(texts), np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64))
    print(f"distributed clustering ({workers} workers): {stats.candidate_pairs} candidate pairs, "
          f"{stats.rounds} large-star/small-star rounds, {len(result)} clustered rows, {seconds:.1f} s; "
          f"equal to local components: {bool(np.array_equal(got, local))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local instance)")
    args = parser.parse_args()
    from provkit.engines.ray import RayOptions, start_ray

    start_ray(RayOptions(address=args.address, num_cpus=None if args.address else 2, object_store_bytes=None if args.address else 500 << 20))
    with tempfile.TemporaryDirectory(prefix="provkit-scale-") as tmp:
        root = Path(tmp)
        src = make_corpus(root / "in", args.records)
        print(f"corpus: {args.records} records; pipeline: exact_dedup, minhash_dedup (0.8), quality")
        base, base_ids = timed_filter(src, root / "local", "local", {})
        print(f"local engine        : {args.records / base:9.0f} records/s  ({base:.1f} s)")
        for workers in (1, 2):
            sec, ids = timed_filter(src, root / f"ray{workers}", "ray", {"num_workers": workers, "batch_size": 1024})
            print(f"ray engine, {workers} worker{'s' if workers > 1 else ' '}: {args.records / sec:9.0f} records/s  "
                  f"({sec:.1f} s)  ratio vs local {base / sec:.2f}x  same kept ids: {ids == base_ids}")
        distributed_clustering(src, 2)


if __name__ == "__main__":
    main()
