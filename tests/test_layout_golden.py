"""Behaviour pinned across the layers refactor (issue: one-way layers).

``prov ingest`` + ``prov filter`` with the default pipeline + a one-generation tiny
experiment, fingerprinted (content_hashes, kept and dropped ids) and compared with the
values recorded from a run of the code *before* the move (``tests/data/golden_layers.json``,
written by ``python tests/test_layout_golden.py --record`` on commit 4ad63a7).

The experiment keys (``gen0``, ``replace_gen1``, ``curated_gen1``) are no longer compared
(issue 11): no option set reproduces the old protocol bit for bit.  Its unit seeds mixed
the condition's name into the RNG seed (now common random numbers per (seed, generation),
so every training shuffle differs), the human blocks are now cut into test, validation and
training sets (the old split had no validation set, so the training blocks differ), and the
weights are normalised per training set instead of per batch.  ``prompts = "chained"``,
``best_epoch = false`` and ``block_size = 64`` restore the old protocol's *meaning*, and
``EXPERIMENT_EXTRA`` sets them so the run still exercises that path, but not its numbers.
The ingest and filter fingerprints are still compared exactly.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

GOLDEN = Path(__file__).parent / "data" / "golden_layers.json"
REPO = Path(__file__).resolve().parent.parent

EXPERIMENT = """
corpus = "{corpus}"
train_blocks = 24
test_blocks = 24
pretrain_blocks = 32
vocab_size = 400
generations = 1
conditions = ["replace", "curated"]
generate_batch_size = 16
self_bleu_samples = 8
threads = 1
{extra}
[tiny_model]
layers = 1
hidden = 32
heads = 2
ffn = 64
[decoding]
max_new_tokens = 24
num_beams = 2
[train]
batch_size = 8
"""

# options that keep the pre-refactor protocol when later issues change the defaults
EXPERIMENT_EXTRA = 'prompts = "chained"\nbest_epoch = false\nblock_size = 64\nseeds = [0]\npretrain_epochs = 1\nval_blocks = 24\n'
EXPERIMENT_KEYS = ("gen0", "replace_gen1", "curated_gen1")  # recorded, not compared: see the module docstring


def _digest(values) -> str:
    return hashlib.sha256("\n".join(sorted(str(v) for v in values)).encode()).hexdigest()


def _part_rows(ds: Path, kind: str, columns: list[str]) -> list[dict]:
    manifest = json.loads((ds / "manifest.json").read_text())
    rows: list[dict] = []
    for f in manifest["files"]:
        if f.get("kind", "data") == kind:
            rows += pq.read_table(ds / f["path"], columns=columns).to_pylist()
    return rows


def _fingerprint_dataset(ds: Path) -> dict:
    kept = _part_rows(ds, "data", ["id", "content_hash"])
    out = {"rows": len(kept), "content_hash": _digest(r["content_hash"] for r in kept),
           "ids": _digest(r["id"] for r in kept)}
    manifest = json.loads((ds / "manifest.json").read_text())
    if any(f.get("kind") == "rejects" for f in manifest["files"]):
        rej = _part_rows(ds, "rejects", ["id", "drop_reason"])
        out["rejects"] = len(rej)
        out["rejected"] = _digest(f"{r['id']}\t{r['drop_reason']}" for r in rej)
    return out


def fingerprint(root: Path) -> dict:
    from provkit.cli import app
    from provkit.provenance import Activity, DatasetWriter, iter_builtin, make_batch

    runner = CliRunner()
    ds, kept = root / "ds", root / "kept"
    res = runner.invoke(app, ["ingest", "builtin:python-docs", "--out", str(ds)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["filter", str(ds), "--out", str(kept), "--config", str(REPO / "pipelines/default.toml")])
    assert res.exit_code == 0, res.output
    docs = list(itertools.islice(iter_builtin("python-docs"), 120))
    corpus = root / "corpus"
    with DatasetWriter(corpus, Activity("ingest")) as w:
        w.write(make_batch([d.text for d in docs], ids=[d.id for d in docs]))
    cfg = root / "exp.toml"
    cfg.write_text(EXPERIMENT.format(corpus=corpus, extra=EXPERIMENT_EXTRA))
    run = root / "run"
    res = runner.invoke(app, ["experiment", "run", "--config", str(cfg), "--out", str(run), "--no-report"])
    assert res.exit_code == 0, res.output
    return {
        "ingest": _fingerprint_dataset(ds),
        "filter": _fingerprint_dataset(kept),
        "gen0": _fingerprint_dataset(run / "seed0/gen00/generated"),
        "replace_gen1": _fingerprint_dataset(run / "seed0/replace/gen01/mix"),
        "curated_gen1": _fingerprint_dataset(run / "seed0/curated/gen01/curated"),
    }


def test_ingest_filter_experiment_unchanged_by_the_move(tmp_path):
    expected = json.loads(GOLDEN.read_text())
    got = fingerprint(tmp_path)
    for key in ("ingest", "filter"):
        assert got[key] == expected[key], key
    for key in EXPERIMENT_KEYS:  # the old protocol's run still completes and writes every dataset
        assert got[key]["rows"] > 0, key


if __name__ == "__main__" and "--record" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(json.dumps(fingerprint(Path(tmp)), indent=2) + "\n")
    print(GOLDEN.read_text())
