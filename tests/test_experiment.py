"""The collapse experiment on a cut-down tiny config: outputs, lineage, protocol options, budgets, determinism,
resume after kill -9 with 2 workers, bad configs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from provkit.errors import ConfigError
from provkit.provenance import Activity, Dataset, DatasetWriter, iter_builtin, make_batch, verify
from provkit.engines import run_filter
from provkit.filters import parse_pipeline
from provkit.train import load_experiment_config, run_experiment, write_report
from provkit.train.loop import unit_seed

TIMING = {"train_seconds", "generate_seconds"}


def _config_text(corpus: Path, extra: str = "") -> str:
    return f"""
corpus = "{corpus}"
block_size = 32
train_blocks = 24
val_blocks = 16
test_blocks = 24
pretrain_blocks = 48
pretrain_epochs = 1
vocab_size = 400
generations = 2
seeds = [0, 1]
conditions = ["replace", "keep-human=0.25", "accumulate", "accumulate-fixed", "curated"]
generate_batch_size = 24
self_bleu_samples = 8
threads = 1
{extra}
[tiny_model]
layers = 1
hidden = 32
heads = 2
ffn = 64
[decoding]
max_new_tokens = 32
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
    run_experiment(load_experiment_config(cfg_path), run, workers=1)
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
    assert len(rows) == 2 * 5 * 3  # 2 seeds x 5 conditions x generations 0..2
    assert {r["condition"] for r in rows} == {"replace", "keep-human=0.25", "accumulate", "accumulate-fixed", "curated"}
    assert all(r["test_ppl"] > 1 and r["train_steps"] > 0 and r["train_tokens"] > 0 for r in rows)
    keep = [r for r in rows if r["condition"] == "keep-human=0.25" and r["generation"] == 1][0]
    assert keep["human_share"] == pytest.approx(6 / 24) and keep["train_rows"] == 24  # fixed size, a quarter human
    acc = [r for r in rows if r["condition"] == "accumulate" and r["generation"] == 2][0]
    assert acc["train_rows"] == 3 * 24
    assert all(1 <= r["best_epoch"] <= r["train_epochs"] and r["val_ppl"] > 1 for r in rows)
    for ds in (run / "seed0/gen00/generated", run / "seed0/replace/gen01/generated", run / "seed0/curated/gen02/curated",
               run / "setup/human-val"):
        assert verify(ds) == []
    curated = Dataset.open(run / "seed0/curated/gen02/curated").read()
    for column in ("exact_cluster", "near_dup_cluster", "quality_words", "tail_weight", "sample_weight"):
        assert column in curated.column_names  # exact_dedup, minhash_dedup, quality and tail all ran
    md, html = write_report(run)
    assert "Answer" in md.read_text() and "data:image/png;base64," in html.read_text()


def test_prompts_human_every_prompt_is_a_human_block(setup):
    _, _, run = setup
    human = set(Dataset.open(run / "setup/human").read(columns=["id"]).column("id").to_pylist())
    generated = sorted(run.glob("seed*/**/generated"))
    assert len(generated) == 2 * (1 + 5)  # per seed: gen 0 + each condition's gen 1 (gen 2 is the last)
    for ds in generated:
        table = Dataset.open(ds).read()
        prompts = [g["prompt_id"] for g in table.column("generator").to_pylist()]
        assert set(prompts) == human and len(prompts) == len(human), ds
        assert [p[0] for p in table.column("parent_ids").to_pylist()] == prompts


def test_accumulate_fixed_trains_on_replaces_budget(setup):
    _, _, run = setup
    rows = {(r["seed"], r["condition"], r["generation"]): r for r in _metrics(run)}
    for seed in (0, 1):
        for n in (1, 2):
            rep, fix, acc = (rows[(seed, c, n)] for c in ("replace", "accumulate-fixed", "accumulate"))
            assert fix["train_rows"] == rep["train_rows"] == 24
            assert fix["train_steps"] == rep["train_steps"] and fix["train_epochs"] == rep["train_epochs"]
            assert abs(fix["train_tokens"] - rep["train_tokens"]) <= 0.05 * rep["train_tokens"]
            assert acc["train_steps"] > rep["train_steps"]  # accumulate: more data and more steps
    mix = Dataset.open(run / "seed0/accumulate-fixed/gen02/mix").read()
    gens = {g["generation"] if g else "human" for g in mix.column("generator").to_pylist()}
    assert len(gens) >= 2  # drawn from the whole pool, not only the newest generation


def test_common_random_numbers_across_conditions(setup):
    _, _, run = setup
    seeds = {Dataset.open(run / f"seed0/{c}/gen01/generated").read().column("generator")[0].as_py()["seed"]
             for c in ("replace", "keep-human-0.25", "accumulate", "accumulate-fixed", "curated")}
    assert len(seeds) == 1  # same (seed, generation) -> same random numbers, whatever the condition


def test_experiment_keep_human_is_prov_filter_mix_keep_human(setup, tmp_path):
    """One keep-human: the experiment's mix equals `prov filter --mix keep-human=F` with the unit's seed."""
    _, _, run = setup
    pool = [run / "setup/human", run / "seed0/gen00/generated", run / "seed0/keep-human-0.25/gen01/generated"]
    table = pa.concat_tables([Dataset.open(p).read() for p in pool], promote_options="default")
    with DatasetWriter(tmp_path / "pool", Activity("pool")) as w:
        w.write(table)
    cfg = parse_pipeline({"steps": [{"kind": "mix", "policy": "keep-human", "human_fraction": 0.25,
                                     "seed": unit_seed(0, 2)}]}, "t")
    run_filter(tmp_path / "pool", tmp_path / "kept", cfg)
    want = sorted(Dataset.open(tmp_path / "kept").read(columns=["id"]).column("id").to_pylist())
    got = sorted(Dataset.open(run / "seed0/keep-human-0.25/gen02/mix").read(columns=["id"]).column("id").to_pylist())
    assert got == want and len(got) == 24


def test_generated_records_lead_back_to_human_blocks(setup):
    _, _, run = setup
    g2 = Dataset.open(run / "seed0/replace/gen01/generated")
    rec = g2.read().to_pylist()[0]
    assert rec["origin"] == "model" and rec["generator"]["generation"] == 1
    assert rec["generator"]["prompt_id"] == rec["parent_ids"][0]
    parent = Dataset.open(g2.parents[0])  # the prompts: the human training blocks
    row = [r for r in parent.read().to_pylist() if r["id"] == rec["parent_ids"][0]][0]
    assert row["origin"] == "human" and row["id"].startswith("human-")
    # the data the writing model trained on is a parent dataset too
    assert any(Path(p).resolve() == (run / "seed0/replace/gen01/mix").resolve() for p in g2.parents)


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
    assert [n["depth"] for n in nodes[:2]] == [0, 1]
    assert [n["origin"] for n in nodes[:2]] == ["model", "human"]
    assert nodes[0]["generator"]["generation"] == 1
    assert Path(nodes[1]["dataset_path"]).resolve() == (run / "setup/human").resolve()
    assert nodes[0]["parent_ids"] == [nodes[1]["id"]]


def test_same_seed_same_metrics_with_two_workers(setup):
    root, cfg_path, run = setup
    again = root / "run-b"
    summary = run_experiment(load_experiment_config(cfg_path), again, workers=2)
    assert summary.workers == 2
    assert _metrics(again) == _metrics(run)


def test_kill_9_with_two_workers_then_rerun_resumes_to_identical_metrics(setup):
    root, cfg_path, run = setup
    out = root / "run-killed"
    cmd = [sys.executable, "-m", "provkit.cli", "experiment", "run", "--config", str(cfg_path), "--out", str(out),
           "--no-report", "--workers", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    marker = out / "seed0/replace/gen01/metrics.json"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)  # the parent only: its workers notice and exit on their own
    proc.wait()
    time.sleep(1.0)
    assert not (out / "seed1/curated/gen02/metrics.json").exists()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout
    assert _metrics(out) == _metrics(run)


@pytest.mark.parametrize("body,needle", [
    ('conditions = ["replace", "shrink"]', "unknown condition"),
    ('conditions = ["keep-human=-0.2"]', "(0, 1]"),
    ("generations = 0", "generations"),
    ("epochs = -1", "epochs"),
    ('colour = "red"', "unknown key"),
    ('prompts = "model"', "prompts"),
    ('start_from = "scratch"', "start_from"),
    ('decoding = "greedy"', "decoding"),
    ("seeds = [1, 1]", "seeds"),
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


def test_more_seeds_extend_a_run_to_what_a_fresh_run_gives(setup, tmp_path):
    """`--seeds` on an existing run adds seeds: units are keyed by (seed, generation), the setup by the first seed."""
    root, cfg_path, run = setup
    one = tmp_path / "one"
    cfg = load_experiment_config(cfg_path)
    run_experiment(dataclasses.replace(cfg, seeds=(0,), conditions=("replace",)), one, workers=1)
    run_experiment(dataclasses.replace(cfg, seeds=(0, 1), conditions=("replace",)), one, workers=1)
    mine = [r for r in _metrics(one)]
    assert mine == [r for r in _metrics(run) if r["condition"] == "replace"]


def test_resume_with_a_different_config_is_refused(setup, tmp_path):
    _, cfg_path, run = setup
    other = tmp_path / "other.toml"
    other.write_text(cfg_path.read_text().replace("generations = 2", "generations = 3"))
    with pytest.raises(ConfigError, match="different config"):
        run_experiment(load_experiment_config(other), run, workers=1)
