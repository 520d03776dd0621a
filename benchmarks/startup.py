"""Start-up time of the ``prov`` command against the libraries it cannot do without.

Each figure is the median wall time of ``--repeat`` (default 5) fresh
subprocesses, run interleaved (peer, help, stats, peer, ...) so that a change
in the machine's load hits all three alike:

* peer:  ``python -c "import pyarrow.parquet, typer, rich"`` (the floor: any
         ``prov`` command parses flags with typer, prints with rich and reads
         Parquet with pyarrow);
* help:  ``python -m provkit.cli --help``;
* stats: ``python -m provkit.cli stats DS`` on a 200-record dataset ingested
         once beforehand.

Prints each median, its ratio to the peer's, which of torch / transformers /
scikit-learn / ray / datasets / mlcroissant ``import provkit.cli`` loads, and
the ``python -X importtime -c "import provkit.cli"`` self time summed per
top-level package (the largest ``--top``).  The provkit measured is the one
``python`` imports: run it with ``PYTHONPATH=/path/to/tree`` to measure another
checkout (e.g. main's, for a before / after).

    nice -n 10 python benchmarks/startup.py [--repeat 5] [--top 12]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PEER = ["-c", "import pyarrow.parquet, typer, rich"]
HEAVY = ("torch", "transformers", "sklearn", "ray", "datasets", "mlcroissant")
IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)")


def wall(args: list[str], cwd: Path) -> float:
    """Seconds one ``python ARGS`` subprocess takes (it must succeed)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def make_dataset(work: Path, records: int) -> Path:
    """A ``records``-record JSONL ingested with the provkit under test; returns the dataset directory."""
    words = "the of and to in is that for it as was with be by on not model data human text corpus".split()
    rows = [{"id": f"r{i}", "text": " ".join(words[(i * 7 + j) % len(words)] for j in range(40 + i % 30))}
            for i in range(records)]
    (work / "src.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "provkit.cli", "ingest", "src.jsonl", "-o", "DS", "--id-field", "id"],
                   cwd=work, check=True, stdout=subprocess.DEVNULL)
    return work / "DS"


def import_profile(cwd: Path) -> tuple[dict[str, float], list[str], str]:
    """Self seconds of ``import provkit.cli`` per top-level package, the heavy modules it loads, provkit's path."""
    code = ("import sys, provkit.cli; print(provkit.__file__); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=cwd, check=True,
                         capture_output=True, text=True)
    per_package: dict[str, float] = defaultdict(float)
    for line in res.stderr.splitlines():
        m = IMPORTTIME.match(line)
        if m:
            per_package[m[3].split(".")[0]] += int(m[1]) / 1e6
    where, loaded = (res.stdout.splitlines() + ["", ""])[:2]
    return dict(per_package), [m for m in loaded.split(",") if m], where


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="fresh subprocesses per command (median)")
    ap.add_argument("--records", type=int, default=200, help="records in the stats dataset")
    ap.add_argument("--top", type=int, default=12, help="packages listed from the import profile")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="prov-startup-") as tmp:
        work = Path(tmp)
        ds = make_dataset(work, args.records)
        runs = {"peer": PEER, "help": ["-m", "provkit.cli", "--help"], "stats": ["-m", "provkit.cli", "stats", ds.name]}
        wall(runs["help"], work)  # warm the page cache and any compiled-kernel cache once
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeat):
            for name, cmd in runs.items():
                times[name].append(wall(cmd, work))
        per_package, loaded, where = import_profile(work)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"provkit: {where}   ({args.repeat} fresh subprocesses each, median wall seconds)")
    print(f"  peer  python -c 'import pyarrow.parquet, typer, rich'  {med['peer']:.2f} s")
    for name, label in (("help", "python -m provkit.cli --help"), ("stats", f"prov stats ({args.records} records)")):
        print(f"  {name:5} {label:47} {med[name]:.2f} s   ratio to peer {med[name] / med['peer']:.2f}x"
              f"   (runs: {', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"heavy modules loaded by `import provkit.cli`: {', '.join(loaded) or 'none'}")
    print(f"python -X importtime -c 'import provkit.cli': self time per top-level package (top {args.top}):")
    for package, seconds in sorted(per_package.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {package:24} {seconds:6.3f} s")
    print(f"  {'(all)':24} {sum(per_package.values()):6.3f} s")


if __name__ == "__main__":
    main()
