"""Scale-out: the same filter pipeline on the local engine vs the Ray engine (1 and 2 workers).

Prints records/s of each run and the ratio against the local engine measured in
the same run, checks the kept ids are identical, and prints what the Ray
engine's own dedup plans did on the cluster (``EngineResult.clustering``):
candidate pairs of the MinHash LSH buckets and rounds of large-star/small-star
connected components.

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


def _pipeline():
    from provkit.filters import FilterFlags

    return FilterFlags(dedup=("exact", "minhash"), minhash_threshold=0.8, quality=True)


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


def timed_filter(src: Path, out: Path, engine: str, options: dict) -> tuple[float, list[str], dict]:
    """Run the pipeline through the engine (as ``run_filter`` does); seconds, kept ids, clustering figures."""
    from provkit.engines import get_engine
    from provkit.filters import build_steps, pipeline_from_flags
    from provkit.provenance import Activity, Dataset, DatasetWriter

    dataset = Dataset.open(src)
    steps = build_steps(pipeline_from_flags(_pipeline()), dataset)
    runner = get_engine(engine, **options)
    t0 = time.perf_counter()
    with DatasetWriter(out, Activity("filter", {"benchmark": "scale", "engine": engine})) as writer:
        result = runner.run(dataset, steps, writer)
    seconds = time.perf_counter() - t0
    ids = sorted(Dataset.open(out).read("data", columns=["id"]).column("id").to_pylist())
    return seconds, ids, result.clustering


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
        print(f"corpus: {args.records} records; pipeline: exact_dedup, minhash_dedup (0.8, verified), quality")
        base, base_ids, _ = timed_filter(src, root / "local", "local", {})
        print(f"local engine        : {args.records / base:9.0f} records/s  ({base:.1f} s)")
        for workers in (1, 2):
            sec, ids, clustering = timed_filter(src, root / f"ray{workers}", "ray",
                                                {"num_workers": workers, "batch_size": 1024})
            mh = clustering.get("minhash_dedup", {})
            print(f"ray engine, {workers} worker{'s' if workers > 1 else ' '}: {args.records / sec:9.0f} records/s  "
                  f"({sec:.1f} s)  ratio vs local {base / sec:.2f}x  same kept ids: {ids == base_ids}  "
                  f"minhash plan on the cluster: {mh.get('candidate_pairs')} candidate pairs, "
                  f"{mh.get('rounds')} CC rounds")


if __name__ == "__main__":
    main()
