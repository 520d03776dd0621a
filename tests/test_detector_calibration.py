"""Calibration stored with the detector: thresholds at target FPRs, grouped held-out, recalibration, scoring.

Real small data: human = builtin python-docs documents (2,557 of them), model = a word-bigram chain
fitted on builtin text (``filter_fixtures``); the ngram detector is trained on 120 + 120 of them.
The FPR checks use ~1,800 *other* human documents, shuffled (so calibration and test text are exchangeable).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from filter_fixtures import bigram_model_texts, human_texts, write_dataset
from typer.testing import CliRunner

from provkit.cli import app
from provkit.filters.detector import (
    DetectorConfig,
    DetectorError,
    LabelledTexts,
    calibrate_detector,
    detector_fingerprint,
    grouped_split,
    load_detector,
    save_detector,
    train_detector,
    train_detector_on_dataset,
)
from provkit.filters.detector.calibration import ProbabilityMap, conformal_threshold, threshold_for
from provkit.filters.detector.serialize import _checksum
from provkit.provenance import Activity, Dataset, DatasetWriter, content_hash, make_batch, sha256_file, verify

runner = CliRunner()
N_TRAIN = 120


@pytest.fixture(scope="module")
def detector():
    human, model = human_texts(N_TRAIN, start=600), bigram_model_texts(N_TRAIN, seed=1)
    return train_detector(human + model, [0] * N_TRAIN + [1] * N_TRAIN, DetectorConfig(seed=0, cv_folds=3)).detector


@pytest.fixture(scope="module")
def pool_scores(detector) -> np.ndarray:
    """Raw scores of every builtin document the detector never saw, in a seeded random order."""
    texts = human_texts(600) + human_texts(5000, start=600 + N_TRAIN)
    order = np.random.default_rng(7).permutation(len(texts))
    return detector.decision_function([texts[i] for i in order])


# ------------------------------------------------------------------ thresholds


def test_conformal_threshold_follows_its_definition():
    h = np.arange(1.0, 201.0)  # 200 distinct human scores 1..200
    t, k, ok = conformal_threshold(h, 0.05)  # k = floor(0.05 * 201) - 1 = 9: the 10th largest score
    assert (t, k, ok) == (191.0, 9, True)
    th = threshold_for(h, np.array([150.0, 195.0, 250.0]), 0.05)
    assert th.human_flagged == 9 and th.measured_fpr == 9 / 200 and th.expected_fpr_bound == 10 / 201
    assert th.tpr == pytest.approx(2 / 3)
    small = threshold_for(h[:50], None, 0.001)  # 51 < 1000: no threshold can promise 0.1 %
    assert not small.resolvable and small.threshold == 50.0 and small.human_flagged == 0
    assert small.expected_fpr_bound == pytest.approx(1 / 51)


@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_thresholds_hold_their_fpr_on_fresh_human_text(pool_scores, alpha):
    """Calibrate on half of the unseen human text, measure on the other half: within sampling error."""
    n = len(pool_scores) // 2
    cal, test = pool_scores[:n], pool_scores[n : 2 * n]
    t = threshold_for(cal, None, alpha)
    fpr = float((test > t.threshold).mean())
    # spread of the FPR of a conformal threshold (calibration draw) plus that of measuring it on n texts
    sd = np.sqrt(alpha * (1 - alpha) * (1 / n + 1 / n))
    assert abs(fpr - alpha) <= 3 * sd, (fpr, alpha, n)
    assert t.measured_fpr <= alpha and t.expected_fpr_bound <= alpha


def test_thresholds_are_unbiased_over_many_calibration_draws(pool_scores):
    """Averaged over 40 random calibration/test splits the FPR is the conformal (k+1)/(n+1) <= alpha."""
    rng = np.random.default_rng(0)
    n = len(pool_scores) // 2
    fprs = {0.01: [], 0.05: []}
    for _ in range(40):
        perm = rng.permutation(len(pool_scores))
        cal, test = pool_scores[perm[:n]], pool_scores[perm[n:]]
        for alpha in fprs:
            fprs[alpha].append(float((test > threshold_for(cal, None, alpha).threshold).mean()))
    for alpha, values in fprs.items():
        bound = threshold_for(pool_scores[:n], None, alpha).expected_fpr_bound
        assert abs(np.mean(values) - bound) <= 0.25 * alpha, (alpha, np.mean(values), bound)


# ------------------------------------------------------------------ training: grouped held-out, stored calibration


def test_grouped_split_keeps_every_copy_of_a_text_on_one_side():
    texts = [f"text {i % 30}" for i in range(90)] + [f"model {i % 20}" for i in range(60)]  # 3 copies of each
    y = np.array([0] * 90 + [1] * 60)
    hashes = [content_hash(t) for t in texts]
    train, test = grouped_split(hashes, y, 0.2, seed=3)
    assert sorted(np.r_[train, test].tolist()) == list(range(150))
    assert not {hashes[i] for i in train} & {hashes[i] for i in test}
    assert len({hashes[i] for i in test if y[i] == 0}) == 6 and len({hashes[i] for i in test if y[i] == 1}) == 4


def test_exact_duplicates_never_leak_into_the_held_out_calibration(tmp_path):
    human, model = human_texts(60, start=700), bigram_model_texts(60, seed=3)
    texts = human + human[:30] + model + model[:30]  # 30 duplicated texts per class
    y = [0] * 90 + [1] * 90
    trained = train_detector(texts, y, DetectorConfig(seed=1, cv_folds=3))
    cal = trained.detector.calibration
    assert cal.n_human + cal.n_model == trained.n_test
    # held out = 20 % of the 60 distinct texts per class: 12 groups, each with all of its copies
    assert cal.n_human in range(12, 25) and cal.n_model in range(12, 25)
    assert trained.n_train + trained.n_test == 180


@pytest.fixture(scope="module")
def labelled_ds(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cal") / "labelled"
    with DatasetWriter(path, Activity("ingest", {"test": True})) as w:
        w.write(make_batch(human_texts(150, start=900), ids=[f"h{i}" for i in range(150)], dataset="docs"))
        w.write(make_batch(bigram_model_texts(150, seed=5), ids=[f"m{i}" for i in range(150)], origin="model",
                           dataset="chain"))
        w.write(make_batch(human_texts(20, start=1100) + bigram_model_texts(20, seed=8),
                           ids=[f"u{i}" for i in range(40)], origin="unknown", evidence=None, confidence=None))
    return path


@pytest.fixture(scope="module")
def det_dir(tmp_path_factory, labelled_ds) -> Path:
    out = tmp_path_factory.mktemp("det") / "DET"
    r = runner.invoke(app, ["detector", "train", str(labelled_ds), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    return out


def test_train_stores_thresholds_domain_and_lengths(det_dir):
    det = load_detector(det_dir)
    cal = det.calibration
    assert det.fingerprint == sha256_file(det_dir / "detector.json")
    assert [t.target_fpr for t in cal.thresholds] == [0.001, 0.01, 0.05]
    assert (cal.n_human, cal.n_model) == (30, 30)  # 20 % of 150 per class, held out
    assert cal.domain == {"chain": 30, "docs": 30}
    assert sum(cal.lengths["human"]["buckets"].values()) == 30 and sum(cal.lengths["model"]["buckets"].values()) == 30
    assert cal.lengths["model"]["buckets"][">=256"] == 0 and cal.lengths["model"]["buckets"]["32-64"] == 30
    for t in cal.thresholds:
        assert t.n_human == 30 and t.human_flagged <= t.target_fpr * 30 and t.measured_fpr == t.human_flagged / 30
        assert t.resolvable == (31 * t.target_fpr >= 1)  # 30 human texts cannot promise 0.1 % or 1 %
    assert cal.windows is not None and cal.windows.n_windows >= 30
    assert cal.probability.method == "platt"
    p = det.predict_proba(["a few words", human_texts(1, start=950)[0]])
    np.testing.assert_allclose(p, det.head.calibrate(det.decision_function(["a few words", human_texts(1, 950)[0]])))


def test_isotonic_probability_is_a_monotone_map(labelled_ds, tmp_path):
    trained = train_detector_on_dataset(labelled_ds, DetectorConfig(probability="isotonic", cv_folds=3))
    prob = trained.detector.calibration.probability
    assert prob.method == "isotonic" and len(prob.x) >= 2
    raw = np.linspace(min(prob.x) - 1, max(prob.x) + 1, 50)
    p = trained.detector.probability(raw)
    assert np.all(np.diff(p) >= 0) and p[0] >= 0 and p[-1] <= 1
    loaded = load_detector(save_detector(trained.detector, tmp_path / "D"))
    np.testing.assert_array_equal(loaded.probability(raw), p)


# ------------------------------------------------------------------ recalibration


def test_recalibration_changes_thresholds_not_weights(det_dir, tmp_path):
    human = write_dataset(tmp_path / "mine", human_texts(400, start=1200))
    before = load_detector(det_dir)
    weights = (det_dir / "weights.safetensors").read_bytes()
    r = runner.invoke(app, ["detector", "calibrate", str(det_dir), str(human), "--out", str(tmp_path / "R"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    after = load_detector(tmp_path / "R")
    assert (tmp_path / "R" / "weights.safetensors").read_bytes() == weights
    np.testing.assert_array_equal(after.head.coef, before.head.coef)
    assert after.head.intercept == before.head.intercept
    assert after.calibration.probability == before.calibration.probability  # human text only: the map is kept
    assert after.calibration.n_human == 400 and after.calibration.n_model == 0
    assert after.calibration.recalibrated_from == before.fingerprint == out["recalibrated_from"]
    assert out["detector_id"] == after.fingerprint != before.fingerprint
    old = {t.target_fpr: t for t in before.calibration.thresholds}
    new = {t.target_fpr: t for t in after.calibration.thresholds}
    assert all(new[a].threshold != old[a].threshold for a in new)
    assert new[0.01].resolvable and new[0.01].n_human == 400 and new[0.01].human_flagged <= 4
    assert after.calibration.info["datasets"][0]["path"] == str(human.resolve())


def test_calibrate_in_place_is_atomic_and_refits_with_model_records(labelled_ds, det_dir, tmp_path):
    det = tmp_path / "DET"
    det.mkdir()
    for f in det_dir.iterdir():
        (det / f.name).write_bytes(f.read_bytes())
    r = runner.invoke(app, ["detector", "calibrate", str(det), str(labelled_ds), "--probability", "isotonic",
                            "--fpr-targets", "0.02,0.1"])
    assert r.exit_code == 0, r.output
    assert "weights unchanged" in r.stdout and "target FPR    2%" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DET"]  # no temporary directory left behind
    cal = load_detector(det).calibration
    assert cal.probability.method == "isotonic" and cal.targets == (0.02, 0.1)
    assert (cal.n_human, cal.n_model) == (150, 150)


def test_calibrating_on_model_text_only_is_one_line(det_dir, tmp_path):
    model_only = write_dataset(tmp_path / "m", [], [bigram_model_texts(10, seed=2)])
    r = runner.invoke(app, ["detector", "calibrate", str(det_dir), str(model_only)])
    assert r.exit_code == 1 and "no human (origin=human) records" in r.output
    assert len(r.output.strip().splitlines()) == 1
    with pytest.raises(DetectorError, match="fitting it needs at least 4 human and 4 model"):
        calibrate_detector(load_detector(det_dir), LabelledTexts(["a b c"] * 5, np.zeros(5, dtype=np.int64),
                                                                 [str(i) for i in range(5)], 0), probability="isotonic")


# ------------------------------------------------------------------ scoring with the calibration


def test_score_writes_decision_threshold_and_detector_id(det_dir, labelled_ds, tmp_path):
    r = runner.invoke(app, ["detector", "score", str(det_dir), str(labelled_ds), "--out", str(tmp_path / "S"),
                            "--tag", "--fpr", "0.05", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    det = load_detector(det_dir)
    t = det.threshold_at(0.05).threshold
    assert summary["fpr"] == 0.05 and summary["threshold"] == t
    fingerprint = hashlib.sha256((det_dir / "detector.json").read_bytes()).hexdigest()
    assert summary["detector_id"] == fingerprint == detector_fingerprint(det)
    assert verify(tmp_path / "S") == []
    rows = Dataset.open(tmp_path / "S").read().to_pylist()
    src = {r["id"]: r for r in Dataset.open(labelled_ds).read().to_pylist()}
    for row in rows:
        assert row["detector_id"] == fingerprint and row["detector_threshold"] == t
        assert row["detector_fpr"] == pytest.approx(0.05)
        assert row["detector_decision"] == ("model" if row["detector_raw"] > t else "human")
        if src[row["id"]]["origin"] == "unknown":
            assert row["origin"] == row["detector_decision"] and row["origin_evidence"] == "detector"
        else:  # declared origins are never rewritten
            assert (row["origin"], row["origin_evidence"]) == (src[row["id"]]["origin"], "declared")
    assert summary["decisions"]["model"] == sum(r["detector_decision"] == "model" for r in rows)


def test_an_uncalibrated_fpr_is_one_line(det_dir, labelled_ds, tmp_path):
    r = runner.invoke(app, ["detector", "score", str(det_dir), str(labelled_ds), "--out", str(tmp_path / "S"),
                            "--fpr", "0.02"])
    assert r.exit_code == 1 and "--fpr 0.02: not a calibrated target" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "S").exists()


def test_a_version_1_detector_still_loads_and_decides_at_its_probability_threshold(det_dir, labelled_ds, tmp_path):
    old = tmp_path / "OLD"
    old.mkdir()
    (old / "weights.safetensors").write_bytes((det_dir / "weights.safetensors").read_bytes())
    doc = json.loads((det_dir / "detector.json").read_text())
    del doc["calibration"]
    doc["format_version"] = 1
    doc["checksum"] = _checksum(doc)
    (old / "detector.json").write_text(json.dumps(doc))
    det = load_detector(old)
    assert det.calibration is None
    with pytest.raises(DetectorError, match="no calibration .* `prov detector calibrate"):
        det.threshold_at(0.01)
    r = runner.invoke(app, ["detector", "score", str(old), str(labelled_ds), "--out", str(tmp_path / "S"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["fpr"] is None and json.loads(r.stdout)["threshold"] == 0.5


def test_probability_map_json_is_checked(det_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "weights.safetensors").write_bytes((det_dir / "weights.safetensors").read_bytes())
    doc = json.loads((det_dir / "detector.json").read_text())
    doc["calibration"]["probability"] = {"method": "isotonic", "x": [0.0, 1.0], "y": [0.9, 0.1]}
    doc["checksum"] = _checksum(doc)
    (bad / "detector.json").write_text(json.dumps(doc))
    with pytest.raises(DetectorError, match="calibration.probability: x and y must be .* non-decreasing"):
        load_detector(bad)
    assert ProbabilityMap.human_quantile(np.array([3.0, 1.0, 2.0])).apply(np.array([0.0, 2.0, 9.0])).tolist() == \
        [0.25, 0.5, 0.75]
