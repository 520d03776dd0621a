"""``prov detector eval`` breakdowns: by generator decoding / model / generation and by length, plus the ROC plot.

Real text (``detector_fixtures``): human builtin documents of two lengths, and a tiny OPT's continuations
under three decodings, stored with their ``generator`` lineage (model, generation, decoding JSON).
The detector is the ``ngram`` kind trained on other texts of the same kinds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from detector_fixtures import decoding_dict, human_texts, model_texts
from typer.testing import CliRunner

from provkit.cli import app
from provkit.filters.detector import (
    DetectorConfig,
    breakdown_report,
    decoding_label,
    save_detector,
    token_length,
    train_detector,
)
from provkit.provenance import Activity, DatasetWriter, Generator, make_batch

runner = CliRunner()


@pytest.fixture(scope="module")
def det(tmp_path_factory) -> Path:
    human = human_texts(60, 56, start=1400)
    model = list(model_texts("temp0.7", 30, prompt_start=1700)) + list(model_texts("greedy+rep1.3", 30,
                                                                                    prompt_start=1700))
    trained = train_detector(human + model, [0] * 60 + [1] * 60, DetectorConfig(cv_folds=3))
    return save_detector(trained.detector, tmp_path_factory.mktemp("bd") / "DET")


@pytest.fixture(scope="module")
def eval_ds(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bd") / "eval"
    human = human_texts(50, 56) + human_texts(40, 200, start=700)
    groups = [("temp0.7", "tiny-opt", 1, 40), ("greedy+rep1.3", "tiny-opt", 1, 30), ("beam3+rep3.0", "tiny-opt-b", 2, 6)]
    with DatasetWriter(path, Activity("ingest", {"test": True})) as w:
        w.write(make_batch(human, ids=[f"h{i}" for i in range(len(human))]))
        for decoding, model, gen, n in groups:
            texts = list(model_texts(decoding, n))
            gens = [Generator(model, generation=gen, decoding=decoding_dict(decoding), seed=0)] * n
            w.write(make_batch(texts, ids=[f"{decoding}-{i}" for i in range(n)], origin="model", generators=gens))
    return path


def test_decoding_labels():
    assert decoding_label(json.dumps(decoding_dict("beam3+rep3.0"))) == "beam3 rep3"
    assert decoding_label(json.dumps(decoding_dict("temp0.7"))) == "sample T0.7"
    assert decoding_label(json.dumps(decoding_dict("greedy+rep1.3"))) == "greedy rep1.3"
    assert decoding_label(None) == "(none)" == decoding_label("{}") and decoding_label("not json") == "not json"


def test_eval_breakdown_rows_add_up_to_the_totals(det, eval_ds, tmp_path):
    png = tmp_path / "roc.png"
    r = runner.invoke(app, ["detector", "eval", str(det), str(eval_ds), "--json", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    b, o = report["breakdown"], report["breakdown"]["overall"]
    assert (o["n_human"], o["n_model"]) == (90, 76) == (report["n_human"], report["n_model"])
    # the breakdown ranks by the raw score; the probabilities rank the same up to ties where they saturate at 0 or 1
    assert o["auroc"] == pytest.approx(report["auroc"], abs=0.02)
    for a in ("1%", "5%"):
        assert o[f"flagged_human_at_{a}"] <= float(a.rstrip("%")) / 100 * 90
        for key in ("by_decoding", "by_generator_model", "by_generation"):
            assert sum(row["n_model"] for row in b[key]) == o["n_model"]
            assert sum(row[f"caught_at_{a}"] for row in b[key]) == o[f"caught_at_{a}"]
        for col in ("n_human", "n_model", f"flagged_human_at_{a}", f"caught_at_{a}"):
            assert sum(row[col] for row in b["by_length"]) == o[col], col
    by_dec = {row["decoding"]: row for row in b["by_decoding"]}
    assert set(by_dec) == {"sample T0.7", "greedy rep1.3", "beam3 rep3"}
    assert by_dec["beam3 rep3"]["note"] == "too few records" and by_dec["beam3 rep3"]["tpr_at_1%_fpr"] is None
    assert by_dec["sample T0.7"]["note"] is None and 0 <= by_dec["sample T0.7"]["tpr_at_1%_fpr"] <= 1
    assert {row["generation"] for row in b["by_generation"]} == {"1", "2"}
    assert {row["model"]: row["n_model"] for row in b["by_generator_model"]} == {"tiny-opt": 70, "tiny-opt-b": 6}
    lengths = {row["length"] for row in b["by_length"]}
    assert lengths <= {"<32", "32-64", "64-128", "128-256", ">=256"} and len(lengths) >= 2
    assert [c["target_fpr"] for c in b["calibrated"]] == [0.001, 0.01, 0.05]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and report["plot"] == str(png)


def test_eval_table_names_small_groups(det, eval_ds):
    r = runner.invoke(app, ["detector", "eval", str(det), str(eval_ds)])
    assert r.exit_code == 0, r.output
    assert "by generator decoding" in r.stdout and "by length" in r.stdout
    beam = next(line for line in r.stdout.splitlines() if line.strip().startswith("beam3 rep3"))
    assert "too few records (< 20)" in beam
    assert "calibrated thresholds on this data" in r.stdout


def test_length_rows_follow_whitespace_tokens():
    texts = ["w " * 10, "w " * 40, "w " * 40, "w " * 300]
    y = np.array([0, 0, 1, 1])
    report = breakdown_report(y, np.array([0.1, 0.2, 0.3, 0.9]), lengths=[token_length(t) for t in texts],
                              min_records=1).to_json()
    rows = {row["length"]: row for row in report["by_length"]}
    assert set(rows) == {"<32", "32-64", ">=256"}
    assert (rows["32-64"]["n_human"], rows["32-64"]["n_model"], rows["32-64"]["auroc"]) == (1, 1, 1.0)
    assert rows["<32"]["note"] == "too few records" and rows["<32"]["auroc"] is None  # one class only


def test_training_on_one_decoding_says_so(tmp_path):
    path = tmp_path / "one"
    with DatasetWriter(path, Activity("ingest", {"test": True})) as w:
        w.write(make_batch(human_texts(30, 56, start=1500), ids=[f"h{i}" for i in range(30)]))
        gens = [Generator("tiny-opt", generation=1, decoding=decoding_dict("greedy+rep1.3"))] * 30
        w.write(make_batch(list(model_texts("greedy+rep1.3", 30)), ids=[f"m{i}" for i in range(30)], origin="model",
                           generators=gens))
    r = runner.invoke(app, ["detector", "train", str(path), "--out", str(tmp_path / "D")])
    assert r.exit_code == 0, r.output
    assert "note: every model record was decoded with greedy rep1.3" in r.stderr
