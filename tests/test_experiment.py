"""The collapse experiment on a cut-down tiny config: outputs, lineage, determinism, resume after kill -9, bad configs."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from provkit.errors import ConfigError
from provkit.provenance import Activity, Dataset, DatasetWriter, iter_builtin, make_batch, verify
from provkit.train import load_experiment_config, run_experiment, write_report

TIMING = {"train_seconds", "generate_seconds"}


def _config_text(corpus: Path) -> str:
    return f"""
corpus = "{corpus}"
train_blocks = 24
test_blocks = 24
pretrain_blocks = 32
vocab_size = 400
generations = 2
conditions = ["replace", "keep-human=0.25", "accumulate", "curated"]
generate_batch_size = 16
self_bleu_samples = 8
threads = 1
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


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    docs = list(itertools.islice(iter_builtin("python-docs"), 120))
    corpus = root / "corpus"
    with DatasetWriter(corpus, Activity("ingest")) as w:
        w.write(make_batch([d.text for d in docs], ids=[d.id for d in docs]))
    cfg_path = root / "exp.toml"
    cfg_path.write_text(_config_text(corpus))
    run = root / "run-a"
    run_experiment(load_experiment_config(cfg_path), run)
    return root, cfg_path, run


def _metrics(run: Path) -> list[dict]:
    rows = pq.read_table(run / "metrics.parquet").to_pylist()
    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    return sorted(({k: clean(v) for k, v in r.items() if k not in TIMING} for r in rows),
                  key=lambda r: (r["seed"], r["condition"], r["generation"]))


def test_run_writes_datasets_metrics_and_report(setup):
    root, _, run = setup
    rows = _metrics(run)
    assert len(rows) == 4 * 3  # 4 conditions x generations 0..2
    assert {r["condition"] for r in rows} == {"replace", "keep-human=0.25", "accumulate", "curated"}
    assert all(r["test_ppl"] > 1 for r in rows)
    keep = [r for r in rows if r["condition"] == "keep-human=0.25" and r["generation"] == 1][0]
    assert keep["human_share"] == pytest.approx(0.25)
    acc = [r for r in rows if r["condition"] == "accumulate" and r["generation"] == 2][0]
    assert acc["train_rows"] == 3 * 24
    for ds in (run / "seed0/gen00/generated", run / "seed0/replace/gen01/generated", run / "seed0/curated/gen02/curated"):
        assert verify(ds) == []
    curated = Dataset.open(run / "seed0/curated/gen02/curated").read()
    for column in ("exact_cluster", "near_dup_cluster", "quality_words", "tail_weight", "sample_weight"):
        assert column in curated.column_names  # exact_dedup, minhash_dedup, quality and tail all ran
    md, html = write_report(run)
    assert "test perplexity" in md.read_text() and "data:image/png;base64," in html.read_text()


def test_generated_records_lead_back_to_human_blocks(setup):
    _, _, run = setup
    g2 = Dataset.open(run / "seed0/replace/gen01/generated")
    rec = g2.read().to_pylist()[0]
    assert rec["origin"] == "model" and rec["generator"]["generation"] == 1
    assert rec["generator"]["prompt_id"] == rec["parent_ids"][0]
    # follow parent_ids through the manifest's parent datasets
    ds, rid, hops = g2, rec["id"], 0
    while True:
        row = [r for r in ds.read().to_pylist() if r["id"] == rid][0]
        if row["origin"] == "human":
            break
        parent_ds = Dataset.open(ds.parents[0])
        ds, rid, hops = parent_ds, row["parent_ids"][0], hops + 1
    assert hops == 2 and rid.startswith("human-")


def test_prov_lineage_cli_walks_a_generated_record_back_to_its_human_block(setup):
    """`prov lineage RUN/.../generated ID` (the provenance command) follows parent_ids + manifest parents."""
    from typer.testing import CliRunner

    from provkit.cli import app

    _, _, run = setup
    gen2 = run / "seed0/replace/gen01/generated"  # G_2: written by the replace model of generation 1
    rid = Dataset.open(gen2).read(columns=["id"]).column("id")[5].as_py()
    res = CliRunner().invoke(app, ["lineage", str(gen2), rid, "--json"])
    assert res.exit_code == 0, res.output
    nodes = [n for n in json.loads(res.output) if n["found"]]
    assert [n["depth"] for n in nodes] == [0, 1, 2]
    assert [n["origin"] for n in nodes] == ["model", "model", "human"]
    assert [n["generator"]["generation"] for n in nodes[:2]] == [1, 0]
    assert Path(nodes[1]["dataset_path"]).resolve() == (run / "seed0/gen00/generated").resolve()
    assert Path(nodes[2]["dataset_path"]).resolve() == (run / "setup/human").resolve()
    human = Dataset.open(run / "setup/human").read().to_pylist()
    assert nodes[2]["id"] in {r["id"] for r in human}
    # the human block is the prompt of the gen-0 record, which is the prompt of ours
    assert nodes[0]["parent_ids"] == [nodes[1]["id"]] and nodes[1]["parent_ids"] == [nodes[2]["id"]]


def test_same_seed_same_metrics(setup):
    root, cfg_path, run = setup
    again = root / "run-b"
    run_experiment(load_experiment_config(cfg_path), again)
    assert _metrics(again) == _metrics(run)


def test_kill_9_then_rerun_resumes_to_identical_metrics(setup):
    root, cfg_path, run = setup
    out = root / "run-killed"
    cmd = [sys.executable, "-m", "provkit.cli", "experiment", "run", "--config", str(cfg_path), "--out", str(out), "--no-report"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    marker = out / "seed0/replace/gen01/metrics.json"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "seed0/curated/gen02/metrics.json").exists()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout
    assert _metrics(out) == _metrics(run)


@pytest.mark.parametrize("body,needle", [
    ('conditions = ["replace", "shrink"]', "unknown condition"),
    ('conditions = ["keep-human=-0.2"]', "(0, 1]"),
    ("generations = 0", "generations"),
    ("epochs = -1", "epochs"),
    ('colour = "red"', "unknown key"),
])
def test_bad_config_is_one_line_before_any_work(tmp_path, body, needle):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body + "\n")
    with pytest.raises(ConfigError) as info:
        load_experiment_config(cfg)
    assert needle in str(info.value) and "\n" not in str(info.value)
    from typer.testing import CliRunner

    from provkit.cli import app

    res = CliRunner().invoke(app, ["experiment", "run", "--config", str(cfg), "--out", str(tmp_path / "r")])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and needle in lines[0], res.output
    assert not (tmp_path / "r").exists()


def test_resume_with_a_different_config_is_refused(setup, tmp_path):
    _, cfg_path, run = setup
    other = tmp_path / "other.toml"
    other.write_text(cfg_path.read_text().replace("generations = 2", "generations = 3"))
    with pytest.raises(ConfigError, match="different config"):
        run_experiment(load_experiment_config(other), run)
