"""The ``detector`` step end to end with a real small n-gram detector on a human + model mix.

Detector: the detector package's ``ngram`` kind trained on 100 builtin paragraphs vs 100 texts of a
word-bigram chain fitted on builtin text.  Input: 120 *other* builtin paragraphs + 120 new chain samples.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

from filter_fixtures import bigram_model_texts, human_texts, write_dataset
from provkit.cli import app
from provkit.errors import ConfigError
from provkit.engines import run_filter
from provkit.filters import parse_pipeline
from provkit.filters.steps import DetectorStep, DetectorStepConfig
from provkit.filters.detector import DetectorConfig, load_detector, save_detector, train_detector
from provkit.filters.tail import capped_weights
from provkit.provenance import Dataset, make_batch, verify

runner = CliRunner()
N = 120


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    human, model = human_texts(100, start=600), bigram_model_texts(100, seed=1)
    trained = train_detector(human + model, [0] * 100 + [1] * 100, DetectorConfig(kind="ngram", seed=0, cv_folds=3))
    return save_detector(trained.detector, tmp_path_factory.mktemp("det") / "DET")


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("mix") / "in", human_texts(N, start=1000),
                         [bigram_model_texts(N, seed=9)])


def _filter(src, out, *args):
    res = runner.invoke(app, ["filter", str(src), "--out", str(out), *map(str, args), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["input"] == 2 * N == report["kept"] + sum(report["dropped"].values())
    assert verify(out) == []
    return report, Dataset.open(out)


def _expected_scores(det, dataset: Dataset) -> dict[str, float]:
    table = dataset.read(columns=["id", "text"])
    p = load_detector(det).predict_proba(table.column("text").to_pylist()).astype(np.float32)
    return dict(zip(table.column("id").to_pylist(), p.tolist()))


def _is_model(ids):
    return np.array([i.startswith("g") for i in ids])


def test_drop_policy_drops_above_max_model_prob_mostly_model_text(det, mix, tmp_path):
    report, out = _filter(mix, tmp_path / "o", "--detector", det, "--max-model-prob", 0.5)
    kept, rejects = out.read(), out.read("rejects")
    assert set(report["dropped"]) == {"detector_model_prob"}
    assert set(rejects.column("drop_step").to_pylist()) == {"detector"}
    expected = _expected_scores(det, Dataset.open(mix))
    for table in (kept, rejects):  # the step's score is the detector's calibrated P(model)
        got = dict(zip(table.column("id").to_pylist(), table.column("detector_score").to_pylist()))
        assert got == pytest.approx({i: expected[i] for i in got}, abs=1e-6)
    assert max(kept.column("detector_score").to_pylist()) <= 0.5 < min(rejects.column("detector_score").to_pylist())
    dropped_model = _is_model(rejects.column("id").to_pylist())
    assert dropped_model.sum() > 2 * (~dropped_model).sum()  # the detector separates the two, if imperfectly
    assert "sample_weight" not in kept.column_names


def test_default_drop_is_at_the_detectors_stored_1pct_fpr_threshold_and_the_report_says_so(det, mix, tmp_path):
    report, out = _filter(mix, tmp_path / "o", "--detector", det)
    detector = load_detector(det)
    t = detector.threshold_at(0.01)
    kept, rejects = out.read(), out.read("rejects")
    raw = dict(zip(kept.column("id").to_pylist(), kept.column("detector_raw").to_pylist()))
    texts = Dataset.open(mix).read(columns=["id", "text"])
    expected = dict(zip(texts.column("id").to_pylist(), detector.decision_function(texts.column("text").to_pylist())))
    assert raw == pytest.approx({i: expected[i] for i in raw}, abs=1e-9)  # detector_raw is the detector's raw score
    assert max(kept.column("detector_raw").to_pylist()) <= t.threshold < min(rejects.column("detector_raw").to_pylist())
    assert rejects.num_rows == sum(v > t.threshold for v in expected.values()) > 0
    decision = report["steps"][0]["decision"]["drop"]
    assert decision["column"] == "detector_raw" and decision["threshold"] == t.threshold
    assert decision["target_fpr"] == 0.01 and decision["n_human"] == t.n_human == detector.calibration.n_human
    assert decision["detector_id"] == detector.fingerprint
    assert '"target_fpr": 0.01' in (out.path / "report.md").read_text()


def test_fpr_picks_another_calibrated_threshold_and_an_uncalibrated_fpr_is_one_clear_error(det, mix, tmp_path):
    report, out = _filter(mix, tmp_path / "o", "--detector", det, "--detector-fpr", 0.05)
    t5 = load_detector(det).threshold_at(0.05).threshold
    assert report["steps"][0]["decision"]["drop"]["threshold"] == t5
    assert max(out.read().column("detector_raw").to_pylist()) <= t5 < min(out.read("rejects").column("detector_raw").to_pylist())
    res = runner.invoke(app, ["filter", str(mix), "--out", str(tmp_path / "o2"), "--detector", str(det),
                              "--detector-fpr", "0.02"])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert "steps[0].fpr: 0.02 was not calibrated" in res.stderr and "(calibrated: 0.001, 0.01, 0.05)" in res.stderr
    assert not (tmp_path / "o2").exists()
    with pytest.raises(ConfigError, match=r"steps\[0\]\.fpr: set fpr .* or max_model_prob .*, not both"):
        parse_pipeline({"steps": [{"kind": "detector", "path": "d", "fpr": 0.01, "max_model_prob": 0.5}]}, "t")


def test_weight_policy_writes_capped_mean_one_importance_weights(det, mix, tmp_path):
    (tmp_path / "p.toml").write_text(f'[[steps]]\nkind = "detector"\npath = "{det}"\npolicy = "weight"\n'
                                     f'beta = 2.0\ncap = 3.0\n')
    report, out = _filter(mix, tmp_path / "o", "--config", tmp_path / "p.toml")
    assert report["kept"] == 2 * N and report["dropped"] == {}
    kept = out.read()
    p = np.asarray(kept.column("detector_score").to_pylist(), dtype=np.float64)
    w = kept.column("detector_weight").to_numpy()
    assert w.mean() == pytest.approx(1.0) and w.max() <= 3.0 + 1e-12
    raw = (1 - p) ** 2
    free = w < 3.0 - 1e-9  # uncapped rows keep the ratios of (1 - p)^beta
    assert np.allclose(w[free] / w[free][0], raw[free] / raw[free][0])
    assert np.allclose(w, capped_weights(raw, 3.0))
    np.testing.assert_allclose(kept.column("sample_weight").to_numpy(), w)
    model = _is_model(kept.column("id").to_pylist())
    assert w[~model].mean() > 1.5 * w[model].mean()  # human text outweighs model text
    assert report["steps"][0]["weight"]["mean"] == pytest.approx(1.0)


def test_weight_policy_with_max_model_prob_drops_first_then_weights_the_rest(det, mix, tmp_path):
    report, out = _filter(mix, tmp_path / "o", "--detector", det, "--detector-beta", 1.0, "--max-model-prob", 0.9)
    kept, rejects = out.read(), out.read("rejects")
    assert report["dropped"].get("detector_model_prob", 0) == rejects.num_rows
    assert all(p > 0.9 for p in rejects.column("detector_score").to_pylist())
    w = kept.column("detector_weight").to_numpy()
    assert w.mean() == pytest.approx(1.0)
    p = np.asarray(kept.column("detector_score").to_pylist(), dtype=np.float64)
    assert np.allclose(w, capped_weights(1 - p, 10.0))


def test_step_ships_its_path_not_its_model_and_scores_the_same_after_unpickling(det):
    step = DetectorStep(DetectorStepConfig(path=str(det)))
    batch = make_batch(human_texts(5, start=1500) + bigram_model_texts(5, seed=4), ids=[f"x{i}" for i in range(10)])
    before = step.score(batch).column("detector_score")
    clone = pickle.loads(pickle.dumps(step))  # what a Ray worker receives
    assert clone._detector is None
    assert clone.score(batch).column("detector_score").equals(before)


def test_missing_or_bad_detector_is_one_line_naming_the_step_key(mix, tmp_path):
    res = runner.invoke(app, ["filter", str(mix), "--out", str(tmp_path / "o"), "--detector", str(tmp_path / "nope")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "<flags>: steps[0].path:" in res.stderr and "no such detector" in res.stderr
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match=r"t: steps\[0\]\.path: .*plain"):
        run_filter(mix, tmp_path / "o2", parse_pipeline({"steps": [{"kind": "detector", "path": str(tmp_path / "plain")}]}, "t"))
    with pytest.raises(ConfigError, match=r"steps\[0\]\.max_model_prob: must be in \[0, 1\]"):
        parse_pipeline({"steps": [{"kind": "detector", "path": "d", "max_model_prob": 1.5}]}, "t")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()
