"""Ingest throughput against plain pyarrow, and peak memory at two corpus sizes.

Generates a JSONL corpus (``--mb``, default 300 MB; records of ~0.3-2 KB of
text with an integer id and a metadata object), then, each in its own
subprocess and in the same run:

* peer:    ``pyarrow.json.read_json`` + ``pyarrow.parquet.write_table`` (zstd)
* provkit: ``prov ingest`` (``provkit.provenance.ingest``) of the same file:
           parse + check every record + sha256 content hash + tag + write
           checksummed parts + manifest + PROV document.

Prints the throughput ratio provkit / peer (target >= 0.5) at the full size,
and the peak RSS of both at ``--small-mb`` and ``--mb``: provkit streams, so
its peak must not grow with the corpus; the peer reads the whole file at once.
Peak RSS of a run is read with ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``
in a launcher process whose only child is that run.

    python benchmarks/ingest.py [--mb 300] [--small-mb 100] [--keep DIR]

``--short N1,N2,...`` measures short records instead (``{"id": n, "text": 20
words}``, ~124 bytes a line: 10M records are ~1.25 GB): N1 (default 1M)
records with the peer and provkit (the throughput ratio, target >= 0.5), then
provkit alone at each larger count (the peer would hold the whole file in
memory), and the peak RSS of provkit at each count against N1 (target <= 1.2x:
the duplicate-id check spills to disk beyond its memory budget).  Each corpus
is generated into the work directory and deleted after its runs.

    nice -n 10 python benchmarks/ingest.py --short 1000000,10000000
    python benchmarks/ingest.py --short 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy.stats import bootstrap

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
         "you were her she there one all we their can has been if more when will would who so no model data human "
         "collapse generation tail distribution provenance record text corpus sample token perplexity").split()

PEER = """
import resource, sys, time, pyarrow.json as pj, pyarrow.parquet as pq
r, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
table = pj.read_json(sys.argv[1])
pq.write_table(table, sys.argv[2], compression="zstd")
e = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t, table.num_rows, e.ru_utime + e.ru_stime - r.ru_utime - r.ru_stime)
"""

PROVKIT = """
import resource, sys, time
from provkit.provenance import IngestConfig, ingest
r, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
s = ingest([sys.argv[1]], sys.argv[2], IngestConfig(id_field="id"))
e = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t, s.written, e.ru_utime + e.ru_stime - r.ru_utime - r.ru_stime)
"""

LAUNCH = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if r.returncode:
    sys.exit(r.stderr)
print(r.stdout.strip(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def make_corpus(path: Path, mb: int, seed: int = 0) -> int:
    """Write ~``mb`` MB of JSON lines; returns the record count."""
    rng = random.Random(seed)
    n = 0
    with open(path, "w") as f:
        while f.tell() < mb << 20:
            lines = []
            for _ in range(2000):
                text = " ".join(rng.choices(WORDS, k=rng.randint(50, 350)))
                lines.append(json.dumps({"id": n, "text": text, "meta": {"source": "bench", "n": n % 97}}) + "\n")
                n += 1
            f.writelines(lines)
    return n


def make_short_corpus(path: Path, records: int, seed: int = 0, words: int = 20, pool: int = 1 << 20) -> int:
    """Write ``records`` JSON lines ``{"id": n, "text": ...}`` of ``words`` random words; returns the count.

    The texts cycle through a pool of ``pool`` random texts (the words need no JSON escaping), so ten
    million lines take seconds to write; every id is distinct.
    """
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(WORDS, k=words)) for _ in range(min(pool, records))]
    with open(path, "w") as f:
        for start in range(0, records, 50000):
            f.writelines('{"id": %d, "text": "%s"}\n' % (n, texts[n % len(texts)])
                         for n in range(start, min(records, start + 50000)))
    return records


def measure(code: str, src: Path, out: Path) -> tuple[float, int, int, float]:
    """(seconds of work, rows, peak RSS in KiB, CPU seconds of the work) of ``code`` run on ``src`` in a fresh
    subprocess (imports excluded from both times)."""
    cmd = [sys.executable, "-c", LAUNCH, sys.executable, "-c", code, str(src), str(out)]
    secs, rows, cpu, rss = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return float(secs), int(rows), int(rss), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=300, help="corpus size in MB")
    ap.add_argument("--small-mb", type=int, default=100, help="the smaller corpus for the memory comparison")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    ap.add_argument("--short", help="comma-separated record counts of short (20-word) records, e.g. 1000000,10000000")
    ap.add_argument("--repeat", type=int, default=1,
                    help="with --short: run the peer and provkit this many times each, alternating, at the first "
                         "count; the ratio is reported per pair, with the median (the machine is noisy)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="provkit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.short:
        try:
            short_records([int(n) for n in args.short.split(",")], work, max(1, args.repeat))
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        return
    results = {}
    try:
        for mb in (args.small_mb, args.mb):
            src = work / f"corpus-{mb}mb.jsonl"
            t = time.perf_counter()
            records = make_corpus(src, mb)
            print(f"corpus {mb} MB: {records:,} records ({src.stat().st_size / 1e6:.0f} MB, "
                  f"generated in {time.perf_counter() - t:.1f}s)", flush=True)
            peer = measure(PEER, src, work / f"peer-{mb}.parquet")
            shutil.rmtree(work / f"prov-{mb}", ignore_errors=True)
            prov = measure(PROVKIT, src, work / f"prov-{mb}")
            assert peer[1] == prov[1] == records, (peer, prov, records)
            mbs = src.stat().st_size / 1e6
            results[mb] = (peer, prov)
            print(f"  pyarrow read_json+write_table: {peer[0]:6.2f}s  {mbs / peer[0]:6.1f} MB/s  "
                  f"peak RSS {peer[2] / 1024:6.0f} MiB  CPU {peer[3]:5.2f}s")
            print(f"  provkit ingest:                {prov[0]:6.2f}s  {mbs / prov[0]:6.1f} MB/s  "
                  f"peak RSS {prov[2] / 1024:6.0f} MiB  CPU {prov[3]:5.2f}s", flush=True)
            src.unlink()
        (peer_s, prov_s), (peer_l, prov_l) = results[args.small_mb], results[args.mb]
        ratio = peer_l[0] / prov_l[0]
        print(f"throughput ratio provkit/pyarrow at {args.mb} MB: {ratio:.2f} (target >= 0.5); CPU-time ratio "
              f"{peer_l[3] / prov_l[3]:.2f}")
        print(f"peak RSS provkit: {prov_s[2] / 1024:.0f} MiB at {args.small_mb} MB, {prov_l[2] / 1024:.0f} MiB at "
              f"{args.mb} MB (x{prov_l[2] / prov_s[2]:.2f}); pyarrow: {peer_s[2] / 1024:.0f} -> "
              f"{peer_l[2] / 1024:.0f} MiB (x{peer_l[2] / peer_s[2]:.2f})")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of ``values`` (SciPy, 10,000 resamples, fixed seed)."""
    res = bootstrap((values,), statistics.median, vectorized=False, n_resamples=10_000, method="percentile",
                    confidence_level=confidence, random_state=0)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def short_records(counts: list[int], work: Path, repeat: int = 1) -> None:
    """Throughput against the peer at ``counts[0]`` short records (``repeat`` alternating pairs); provkit's peak RSS
    at every count."""
    rss: dict[int, int] = {}
    for i, n in enumerate(counts):
        src = work / f"short-{n}.jsonl"
        t = time.perf_counter()
        make_short_corpus(src, n)
        mbs = src.stat().st_size / 1e6
        print(f"corpus: {n:,} records of 20 words ({mbs:.0f} MB, generated in {time.perf_counter() - t:.1f}s)",
              flush=True)
        out = work / f"prov-{n}"
        ratios: list[float] = []
        cpu_ratios: list[float] = []
        for _ in range(repeat if i == 0 else 1):
            if i == 0:
                peer = measure(PEER, src, work / "peer.parquet")
                (work / "peer.parquet").unlink()
                assert peer[1] == n, (peer, n)
                print(f"  pyarrow read_json+write_table: {peer[0]:7.2f}s  {n / peer[0]:9,.0f} records/s  "
                      f"peak RSS {peer[2] / 1024:6.0f} MiB  CPU {peer[3]:5.2f}s", flush=True)
            prov = measure(PROVKIT, src, out)
            assert prov[1] == n, (prov, n)
            rss[n] = max(rss.get(n, 0), prov[2])
            print(f"  provkit ingest:                {prov[0]:7.2f}s  {n / prov[0]:9,.0f} records/s  "
                  f"peak RSS {prov[2] / 1024:6.0f} MiB  CPU {prov[3]:5.2f}s", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            if i == 0:
                ratios.append(peer[0] / prov[0])
                cpu_ratios.append(peer[3] / prov[3])
        if i == 0:
            spread = f" (median of {len(ratios)}: {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
            print(f"throughput ratio provkit/pyarrow at {n:,} short records: {statistics.median(ratios):.2f}{spread} "
                  "(target >= 0.5)")
            if len(ratios) >= 5:
                lo, hi = median_interval(ratios)
                print(f"  95 % bootstrap interval of the median ratio: [{lo:.3f}, {hi:.3f}] "
                      f"({sum(r >= 0.5 for r in ratios)} of {len(ratios)} pairs >= 0.5)")
            print(f"CPU-time ratio pyarrow/provkit (less sensitive to other load on the machine): "
                  f"{statistics.median(cpu_ratios):.2f} (median; {', '.join(f'{r:.2f}' for r in cpu_ratios)})")
        src.unlink()
    base = counts[0]
    for n in counts[1:]:
        print(f"peak RSS provkit at {n:,} vs {base:,} records: {rss[n] / 1024:.0f} / {rss[base] / 1024:.0f} MiB = "
              f"x{rss[n] / rss[base]:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
