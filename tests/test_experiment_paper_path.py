"""The paper preset's code path, offline: an OPT-125m-shaped model with random weights saved locally
(``OPTConfig()`` defaults, ``save_pretrained``), a tokenizer built here, and a small local dataset
with wikitext-2's train / validation / test layout (``DatasetDict.save_to_disk``).

One generation through ``prov experiment run --preset paper``: ``from_pretrained`` of a directory,
the validation split, best-epoch selection, generation and the report -- what a GPU run does,
only smaller (fewer blocks, seeds and epochs; same code).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from provkit.lm import save_tokenizer, train_bpe_tokenizer
from provkit.provenance import iter_builtin

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _wikitext_like(path, docs):
    datasets = pytest.importorskip("datasets")

    def lines(chunk):
        out = []
        for d in chunk:  # wikitext-2-raw's layout: a heading line, paragraphs, empty lines between
            out += ["", f" = {d.id.split(':')[-1]} = ", ""] + [f" {p.strip()} " for p in d.text.split("\n\n") if p.strip()]
        return {"text": out}

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(lines(docs[:12])),
                               "validation": datasets.Dataset.from_dict(lines(docs[12:16])),
                               "test": datasets.Dataset.from_dict(lines(docs[16:20]))})
    dd.save_to_disk(str(path))
    return path


@pytest.mark.slow
def test_paper_preset_runs_offline_on_an_opt125m_shaped_model(tmp_path):
    from transformers import OPTConfig, OPTForCausalLM

    docs = list(itertools.islice(iter_builtin("python-docs"), 20))
    corpus = _wikitext_like(tmp_path / "wikitext-2-local", docs)
    model_dir = tmp_path / "opt-125m-random"
    tok = train_bpe_tokenizer([d.text for d in docs], vocab_size=1000)
    config = OPTConfig(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    assert (config.hidden_size, config.num_hidden_layers, config.ffn_dim) == (768, 12, 3072)  # OPT-125m's shape
    OPTForCausalLM(config).save_pretrained(str(model_dir))
    save_tokenizer(tok, model_dir)
    cfg = tmp_path / "paper-small.toml"
    cfg.write_text(f"""
preset = "paper"
model = "{model_dir}"
corpus = "{corpus}"
train_blocks = 8
val_blocks = 4
test_blocks = 4
generations = 1
seeds = [0]
conditions = ["replace", "keep-human=0.1"]
epochs = 2
epochs_with_human = 2
embedding_diversity = false
self_bleu_samples = 4
generate_batch_size = 8
threads = 1
[decoding]
max_new_tokens = 16
""")
    run = tmp_path / "run"
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf-home")}
    res = subprocess.run([sys.executable, "-m", "provkit.cli", "experiment", "run", "--config", str(cfg), "--out", str(run),
                          "--workers", "1", "--json"], capture_output=True, text=True, env=env, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert len(out["report"]) == 2 and all(os.path.getsize(p) > 0 for p in out["report"])
    saved = json.loads((run / "config.json").read_text())
    assert saved["preset"] == "paper" and saved["model"] == str(model_dir) and saved["decoding"]["num_beams"] == 5
    setup = json.loads((run / "setup/metrics.json").read_text())
    assert setup["val_blocks"] == 4 and setup["pretrain_blocks"] == 0
    val_ids = pq.read_table(next((run / "setup/human-val/data").glob("*.parquet")), columns=["id"]).column("id").to_pylist()
    assert all(i.startswith("human-val-") for i in val_ids)  # the corpus's own validation split
    rows = pq.read_table(run / "metrics.parquet").to_pylist()
    assert {(r["condition"], r["generation"]) for r in rows} == {("replace", 0), ("replace", 1), ("keep-human=0.1", 0),
                                                                  ("keep-human=0.1", 1)}
    for r in rows:
        assert r["best_epoch"] in (1, 2) and r["val_ppl"] > 1 and r["train_epochs"] == 2 and r["test_ppl"] > 1
    assert (run / "seed0/replace/gen01/model/model.safetensors").exists()
    assert "Answer" in (run / "report.md").read_text()
