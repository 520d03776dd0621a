"""Near-duplicate dedup end to end at scale: peak RSS, records/s, spilled vs in-memory, precision/recall.

Run:  python benchmarks/dedup.py [--sizes 1000000,3000000] [--memory-mb 512] [--peer-sizes 1000000]
                                 [--main /work/main] [--keep DIR] [--step random_drop]

For each size ``N`` it writes a provkit dataset of ``N`` short records (30-60
words drawn uniformly from a 20,000-word vocabulary; two unrelated records
share no 5-gram in practice) in which a share ``--dup-rate`` of the records are
planted variants of an earlier record of the same 100k-row block: the last
``k`` words replaced by fresh words (``k`` uniform in 1..8), which changes
exactly ``k`` of the ``S`` shingles, so the exact 5-gram Jaccard
``(S - k)/(S + k)`` spreads over ~0.6-0.97, across the threshold.  Truth: a
variant is a duplicate when its exact shingle-set Jaccard with its source is
``>= 0.8`` (computed per planted pair).  Many variants sit within 0.05 of
the threshold, where the MinHash estimate is noisy, so the run also prints
the recall at ``J >= 0.85`` and the share dropped at ``J < 0.75``.

Then, each in its own subprocess (peak RSS = ``ru_maxrss`` of a launcher
whose only child is the run, as ``benchmarks/ingest.py``), ``prov filter``'s
engine (``run_filter``) with the one step ``minhash_dedup`` (threshold 0.8,
128 permutations):

* ``spilled``  — this tree with ``memory_mb = --memory-mb``: the clustering
                 spills (the in-memory estimate, 3.3 KB/record, exceeds it);
* ``in-memory``— this tree with ``memory_mb`` large: the in-memory plan;
* ``main``     — the in-memory path as it is on ``--main`` (the unbounded
                 implementation this replaces), imported from that checkout.

``in-memory`` and ``main`` run only at ``--peer-sizes`` (they need ~3 KB per
record).  Next to each peak RSS of this tree it prints the pre-flight whole-process
estimate (:func:`provkit.filters.dedup.process_bytes_estimate`, what ``prov filter``
compares with the memory limit before any work) and measured / estimate: the
estimate is meant as an upper bound (``UNDER`` marks a run above it).
``--data DIR`` keeps each size's dataset and truth in ``DIR`` and reuses them
(the 10M dataset takes minutes to write); ``--cold-numba`` runs each filter with
an empty numba cache (``NUMBA_CACHE_DIR``), as a first run after installing does.  Printed per run: seconds, records/s, peak RSS, record-level
precision/recall of the dropped rows against the planted truth, and the speed
ratio spilled / in-memory and spilled / main at the same size.

``--step random_drop`` (drop half the rows at random) or ``--step origin``
(a per-batch step) instead measures the engine itself on the same records:
one run per size of this tree and of ``--main``, peak RSS and its growth per
record between the first and last size (no precision/recall).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))  # this tree's provkit (the estimate), whatever the environment installs
BLOCK = 100_000
VOCAB = 20_000

RUN = """
import json, sys, time
import provkit
from provkit.engines import run_filter
from provkit.filters import parse_pipeline
kind = sys.argv[4]
step = {"kind": "minhash_dedup", "threshold": 0.8}
if kind == "random_drop":
    step = {"kind": "random_drop", "count": int(sys.argv[5]) // 2}
elif kind == "origin":
    step = {"kind": "origin"}
elif sys.argv[3] != "unset":
    step["memory_mb"] = float(sys.argv[3])
cfg = parse_pipeline({"steps": [step]}, "bench")
t = time.perf_counter()
r = run_filter(sys.argv[1], sys.argv[2], cfg, verify=False)
print(time.perf_counter() - t, r.report["kept"], provkit.__file__)
"""

LAUNCH = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if r.returncode:
    sys.exit(r.stderr)
print(r.stdout.strip(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def shingle_set(words: list[str], n: int = 5) -> set[str]:
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def make_block(rng: np.random.Generator, start: int, size: int, dup_rate: float
               ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``size`` texts; (texts, is planted variant, exact Jaccard with the source: -1 for base rows) — variants last."""
    planted = round(size * dup_rate)
    base = size - planted
    lengths = rng.integers(30, 61, base)
    vocab_ids = rng.integers(0, VOCAB, int(lengths.sum()))
    cuts = np.r_[0, np.cumsum(lengths)]
    words = [[f"w{v}" for v in vocab_ids[cuts[i]:cuts[i + 1]]] for i in range(base)]
    texts = [" ".join(w) for w in words]
    truth = np.full(size, -1.0)
    sources = rng.integers(0, base, planted)
    edits = rng.integers(1, 9, planted)
    for m, (src, k) in enumerate(zip(sources.tolist(), edits.tolist())):
        variant = words[src][:-k] + [f"x{start + base + m}y{i}" for i in range(k)]
        a, b = shingle_set(words[src]), shingle_set(variant)
        truth[base + m] = len(a & b) / len(a | b)
        texts.append(" ".join(variant))
    variant_mask = np.r_[np.zeros(base, bool), np.ones(planted, bool)]
    return texts, variant_mask, truth


def make_dataset(path: Path, n: int, dup_rate: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write the dataset; return (planted-variant mask, exact Jaccard with the source or -1) by row."""
    from provkit.provenance import Activity, DatasetWriter, make_batch

    rng = np.random.default_rng(seed)
    variants, truth = np.zeros(n, bool), np.full(n, -1.0)
    with DatasetWriter(path, Activity("bench", {"records": n})) as w:
        for start in range(0, n, BLOCK):
            size = min(BLOCK, n - start)
            texts, v, t = make_block(rng, start, size, dup_rate)
            variants[start:start + size], truth[start:start + size] = v, t
            w.write(make_batch(texts, ids=[f"r{i}" for i in range(start, start + size)]))
    return variants, truth


def measure(src: Path, out: Path, memory_mb: str, tree: Path, step: str = "minhash_dedup",
            n: int = 0, numba_cache: Path | None = None) -> dict[str, float]:
    """Seconds, kept rows and peak RSS (MiB) of one filter run of the code in ``tree``, in a fresh subprocess."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    if numba_cache is not None:
        shutil.rmtree(numba_cache, ignore_errors=True)
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    cmd = [sys.executable, "-c", LAUNCH, sys.executable, "-c", RUN, str(src), str(out), memory_mb, step, str(n)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=tree)  # cwd: first on sys.path
    secs, kept, module, rss = r.stdout.split()
    if not Path(module).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"run meant for {tree} imported {module}")
    return {"seconds": float(secs), "kept": int(kept), "rss_mib": int(rss) / 1024}


def estimate_mib(n: int, memory_mb: str) -> float:
    """The pre-flight whole-process estimate of this tree for ``n`` records (MiB)."""
    from provkit.filters.dedup import NearDupConfig, process_bytes_estimate

    config = NearDupConfig(threshold=0.8, memory_mb=None if memory_mb == "unset" else float(memory_mb))
    return process_bytes_estimate(n, config) / 2**20


def cached_dataset(data: Path | None, work: Path, n: int, dup_rate: float) -> tuple[Path, np.ndarray, bool]:
    """(dataset path, exact Jaccard truth, reused?): from ``data`` when it holds this size, else written."""
    root = data or work
    src, truth = root / f"src-{n}-{dup_rate}", root / f"jaccard-{n}-{dup_rate}.npy"
    if data is not None and truth.exists() and (src / "manifest.json").exists():
        return src, np.load(truth), True
    shutil.rmtree(src, ignore_errors=True)
    _, jaccard = make_dataset(src, n, dup_rate)
    np.save(truth, jaccard)
    return src, jaccard, False


def dropped_rows(out: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    from provkit.provenance import Dataset

    ds = Dataset.open(out)
    rows = []
    for part in ds.file_entries("rejects"):
        ids = pq.read_table(out / part["path"], columns=["id"]).column("id").to_pylist()
        rows.extend(int(i[1:]) for i in ids)
    return np.array(rows, dtype=np.int64)


def precision_recall(out: Path, jaccard: np.ndarray, threshold: float = 0.8, margin: float = 0.05
                     ) -> dict[str, float]:
    """Record-level precision/recall of the dropped rows vs the planted truth (``jaccard >= threshold``).

    Also, away from the threshold: recall of the variants at ``J >= t + margin`` and the share
    of the variants at ``J < t - margin`` that were dropped (MinHash noise acts near ``t``).
    """
    dropped = np.zeros(len(jaccard), bool)
    dropped[dropped_rows(out)] = True
    truth = jaccard >= threshold
    tp = int((dropped & truth).sum())
    clear_dup, clear_not = jaccard >= threshold + margin, (jaccard >= 0) & (jaccard < threshold - margin)
    return {"precision": tp / max(int(dropped.sum()), 1), "recall": tp / max(int(truth.sum()), 1),
            "dropped": int(dropped.sum()), "recall_clear": float(dropped[clear_dup].mean()),
            "fp_rate_clear": float(dropped[clear_not].mean())}


def git_head(path: Path) -> str:
    r = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                       check=False)
    return r.stdout.strip() or "?"


def engine_memory(args: argparse.Namespace) -> None:
    """Peak RSS of a one-step ``--step`` pipeline per size, this tree vs ``--main``; growth in bytes/record."""
    sizes = [int(s) for s in args.sizes.split(",") if s]
    trees = [("this", HERE)] + ([(f"main@{git_head(args.main)}", args.main)] if str(args.main) else [])
    rss: dict[str, list[float]] = {name: [] for name, _ in trees}
    work = args.keep or Path(tempfile.mkdtemp(prefix="provkit-bench-engine-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for n in sizes:
            src = work / f"src-{n}"
            shutil.rmtree(src, ignore_errors=True)
            make_dataset(src, n, args.dup_rate)
            for name, tree in trees:
                out = work / f"out-{n}"
                shutil.rmtree(out, ignore_errors=True)
                m = measure(src, out, "unset", tree, args.step, n)
                rss[name].append(m["rss_mib"])
                shutil.rmtree(out, ignore_errors=True)
                print(f"{n:>11,} {args.step} {name:<14} {m['seconds']:7.1f}s  kept {m['kept']:,}  peak RSS "
                      f"{m['rss_mib']:6.0f} MiB", flush=True)
            shutil.rmtree(src, ignore_errors=True)
        if len(sizes) > 1:
            for name, values in rss.items():
                growth = (values[-1] - values[0]) * 2**20 / (sizes[-1] - sizes[0])
                print(f"{name}: peak RSS growth {growth:.0f} bytes/record ({sizes[0]:,} -> {sizes[-1]:,})")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,3000000", help="comma-separated record counts")
    ap.add_argument("--peer-sizes", default="1000000", help="sizes at which in-memory and main also run")
    ap.add_argument("--memory-mb", type=float, default=512, help="memory_mb of the spilled runs (0: unset, the default)")
    ap.add_argument("--dup-rate", type=float, default=0.1)
    ap.add_argument("--main", type=Path, default=Path("/work/main"), help="checkout of the unbounded version ('' skips)")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--data", type=Path, help="keep and reuse the datasets (and their truth) in this directory")
    ap.add_argument("--cold-numba", action="store_true", help="run each filter with an empty numba cache")
    ap.add_argument("--step", choices=["minhash_dedup", "random_drop", "origin"], default="minhash_dedup",
                    help="random_drop / origin: engine memory only (this tree vs --main, no precision/recall)")
    args = ap.parse_args()
    if args.step != "minhash_dedup":
        engine_memory(args)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    peer_sizes = {int(s) for s in args.peer_sizes.split(",") if s}
    work = args.keep or Path(tempfile.mkdtemp(prefix="provkit-bench-dedup-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict] = {}
    try:
        for n in sizes:
            t = time.perf_counter()
            src, jaccard, reused = cached_dataset(args.data, work, n, args.dup_rate)
            print(f"{n:,} records ({(jaccard >= 0.8).sum():,} planted duplicates at J >= 0.8, "
                  f"{((jaccard >= 0) & (jaccard < 0.8)).sum():,} planted below), "
                  f"{'reused from ' + str(src) if reused else f'written in {time.perf_counter() - t:.0f}s'}",
                  flush=True)
            runs = [("spilled", str(args.memory_mb) if args.memory_mb > 0 else "unset", HERE)]
            if n in peer_sizes:
                runs.append(("in-memory", "1000000", HERE))
                if str(args.main):
                    runs.append((f"main@{git_head(args.main)}", "unset", args.main))
            results[n] = {}
            for name, memory_mb, tree in runs:
                out = work / f"out-{n}-{name.split('@')[0]}"
                shutil.rmtree(out, ignore_errors=True)
                m = measure(src, out, memory_mb, tree, numba_cache=work / "numba-cache" if args.cold_numba else None)
                m.update(precision_recall(out, jaccard))
                if tree == HERE:
                    m["estimate_mib"] = estimate_mib(n, memory_mb)
                m["records_per_s"] = n / m["seconds"]
                results[n][name] = m
                shutil.rmtree(out, ignore_errors=True)
                print(f"  {name:<16} {m['seconds']:7.1f}s  {m['records_per_s']:>9,.0f} rec/s  peak RSS "
                      f"{m['rss_mib']:6.0f} MiB  dropped {m['dropped']:,}  precision {m['precision']:.4f}  "
                      f"recall {m['recall']:.4f}  (J >= 0.85 found {m['recall_clear']:.4f}, J < 0.75 dropped "
                      f"{m['fp_rate_clear']:.4f})", flush=True)
                if "estimate_mib" in m:
                    ratio = m["rss_mib"] / m["estimate_mib"]
                    print(f"  {'':<16} pre-flight estimate {m['estimate_mib']:6.0f} MiB: measured / estimate {ratio:.2f}"
                          f"{'  UNDER' if ratio > 1 else ''}", flush=True)
            spilled = results[n]["spilled"]
            for name, m in results[n].items():
                if name != "spilled":
                    print(f"  speed spilled / {name}: {m['seconds'] / spilled['seconds']:.2f}x   "
                          f"peak RSS {spilled['rss_mib']:.0f} vs {m['rss_mib']:.0f} MiB")
            if args.data is None:
                shutil.rmtree(src, ignore_errors=True)
        if len(sizes) > 1:
            lo, hi = results[sizes[0]]["spilled"], results[sizes[-1]]["spilled"]
            print(f"spilled peak RSS {lo['rss_mib']:.0f} MiB at {sizes[0]:,} -> {hi['rss_mib']:.0f} MiB at "
                  f"{sizes[-1]:,}: {(hi['rss_mib'] - lo['rss_mib']) * 2**20 / (sizes[-1] - sizes[0]):.0f} bytes/record")
        if args.json:
            print(json.dumps(results, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
