"""The ``zeroshot`` kind (Binoculars / Fast-DetectGPT with two local models) and span evidence.

Real models and text (``detector_fixtures``): two tiny OPTs trained here on builtin python-docs,
sharing one tokenizer; model text is the scorer's continuation of 8-token prompts (sampled at
temperature 0.7, or 3-beam search with repetition penalty 3.0); human text is other builtin
documents cut to the same number of tokens.  No model text is used to build the zero-shot detector.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from detector_fixtures import human_texts, model_texts, tiny_lms, zeroshot_config
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from provkit.cli import app
from provkit.filters.detector import (
    DetectorError,
    ZeroShotFeaturizer,
    load_detector,
    save_detector,
    train_detector,
    window_bounds,
)
from provkit.filters.detector.lm import LMFeaturizer
from provkit.filters.detector.zeroshot import cross_statistics
from provkit.provenance import Activity, Dataset, DatasetWriter, make_batch, verify

runner = CliRunner()
SHORT = 56  # tokens: 8-token prompt + 48 new
LONG = 240  # tokens of each part of a mixed document (~70 words)


@pytest.fixture(scope="module")
def featurizer() -> ZeroShotFeaturizer:
    lms = tiny_lms()
    return ZeroShotFeaturizer.for_models(str(lms.scorer), str(lms.reference), max_length=SHORT + 8)


def _brute_force(scorer, reference, ids: list[int]) -> np.ndarray:
    """[-B, d] by an explicit loop over positions (float64)."""
    with torch.no_grad():
        s = torch.log_softmax(scorer(input_ids=torch.tensor([ids])).logits[0].double(), -1).numpy()
        r = torch.softmax(reference(input_ids=torch.tensor([ids])).logits[0].double(), -1).numpy()
    lp, cross, var = [], [], []
    for t in range(1, len(ids)):
        lp.append(s[t - 1, ids[t]])
        cross.append((r[t - 1] * s[t - 1]).sum())
        var.append((r[t - 1] * s[t - 1] ** 2).sum() - cross[-1] ** 2)
    return np.array([-(np.mean(lp) / np.mean(cross)), (sum(lp) - sum(cross)) / np.sqrt(sum(var))])


def test_cross_statistics_equal_a_per_position_loop(featurizer):
    scorer, reference = featurizer.models()
    assert scorer is not reference
    texts = human_texts(2, SHORT) + list(model_texts("temp0.7", 2))
    got = featurizer.statistics(texts)
    for row, ids in zip(got, featurizer.scorer().encode(texts)):
        np.testing.assert_allclose(row, _brute_force(scorer, reference, ids), rtol=2e-4, atol=2e-4)


def test_one_model_gives_the_lm_kinds_fast_detectgpt(featurizer):
    lms = tiny_lms()
    single = ZeroShotFeaturizer.for_models(str(lms.scorer), criterion="fast-detectgpt", max_length=SHORT + 8)
    texts = human_texts(3, SHORT)
    lm = LMFeaturizer.for_model(str(lms.scorer), max_length=SHORT + 8).transform(texts)
    np.testing.assert_allclose(single.transform(texts)[:, 0], lm[:, 3], rtol=1e-5)
    scorer, reference = single.models()
    assert scorer is reference


@pytest.fixture(scope="module")
def human_ds(tmp_path_factory) -> Path:
    """200 human texts, no model text at all: what a user without tagged model text has."""
    path = tmp_path_factory.mktemp("zs") / "human"
    with DatasetWriter(path, Activity("ingest", {"test": True})) as w:
        w.write(make_batch(human_texts(200, SHORT), ids=[f"h{i}" for i in range(200)], dataset="docs"))
    return path


@pytest.fixture(scope="module")
def zs_dir(tmp_path_factory, human_ds) -> Path:
    lms = tiny_lms()
    out = tmp_path_factory.mktemp("zs") / "ZS"
    r = runner.invoke(app, ["detector", "train", str(human_ds), "--kind", "zeroshot", "--model", str(lms.scorer),
                            "--reference-model", str(lms.reference), "--max-length", "64", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["n_train"] == 0 and report["n_test"] == 200 and "auroc" not in report
    return out


def test_zeroshot_trained_on_human_text_only_separates_model_text(zs_dir):
    det = load_detector(zs_dir)
    cal = det.calibration
    assert det.kind == "zeroshot" and cal.probability.method == "human-quantile"
    assert (cal.n_human, cal.n_model) == (200, 0) and cal.thresholds[1].tpr is None
    human = human_texts(150, SHORT, start=900)  # fresh human text, not the calibration set
    for decoding in ("temp0.7", "beam3+rep3.0"):
        model = list(model_texts(decoding, 60))
        raw_h, raw_m = det.decision_function(human), det.decision_function(model)
        auroc = roc_auc_score([0] * len(human) + [1] * len(model), np.r_[raw_h, raw_m])
        assert auroc > 0.9, (decoding, auroc)
        t = det.threshold_at(0.05)
        fpr, tpr = (raw_h > t.threshold).mean(), (raw_m > t.threshold).mean()
        assert fpr <= 0.05 + 3 * np.sqrt(0.05 * 0.95 * (1 / 150 + 1 / 200)), fpr
        assert tpr > 0.5, (decoding, tpr)
    p = det.predict_proba(human[:5] + model[:5])  # the human quantile: in (0, 1), higher for model text
    assert ((p > 0) & (p < 1)).all() and p[5:].mean() > p[:5].mean()


def test_zeroshot_with_model_records_fits_a_probability(human_ds, tmp_path):
    texts = human_texts(60, SHORT, start=1000) + list(model_texts("temp0.7", 60))
    trained = train_detector(texts, [0] * 60 + [1] * 60, zeroshot_config(max_length=64))
    assert trained.detector.calibration.probability.method == "platt" and trained.heldout.auroc > 0.85
    assert trained.n_train + trained.n_test == 120 and trained.detector.head.coef.tolist() == [1.0]
    loaded = load_detector(save_detector(trained.detector, tmp_path / "Z"))
    np.testing.assert_allclose(loaded.predict_proba(texts[:6]), trained.detector.predict_proba(texts[:6]), atol=1e-9)


def test_a_reference_model_with_another_tokenizer_is_refused(tmp_path):
    lms = tiny_lms()
    other = Path(shutil.copytree(lms.reference, tmp_path / "ref"))
    (other / "tokenizer.json").write_text((other / "tokenizer.json").read_text() + " ")
    with pytest.raises(DetectorError, match="its tokenizer differs from the scoring model's") as exc:
        ZeroShotFeaturizer.for_models(str(lms.scorer), str(other))
    assert "\n" not in str(exc.value)
    with pytest.raises(DetectorError, match="the lm detector needs --model PATH"):
        train_detector(["some human text"] * 5, [0] * 5, zeroshot_config(model=None, reference_model=None))


# ------------------------------------------------------------------ span evidence


def test_window_bounds_cover_the_text_in_strides():
    words = [f"w{i}" for i in range(100)]
    text = "  " + " ".join(words) + "\n"
    bounds = window_bounds(text, words=48, stride=24)
    starts = [text[a:b].split()[0] for a, b in bounds]
    ends = [text[a:b].split()[-1] for a, b in bounds]
    assert starts == ["w0", "w24", "w48", "w52"] and ends == ["w47", "w71", "w95", "w99"]
    assert all(len(text[a:b].split()) == 48 for a, b in bounds)
    assert window_bounds("short text here", 48, 24) == [(0, 15)]


@pytest.fixture(scope="module")
def long_det(tmp_path_factory):
    """A zeroshot detector calibrated (documents and 32-word windows) on 150 long human texts."""
    cfg = zeroshot_config(max_length=320, window_words=32, window_stride=16)  # 320: the models' context
    trained = train_detector(human_texts(150, LONG, start=300), [0] * 150, cfg)
    return save_detector(trained.detector, tmp_path_factory.mktemp("long") / "ZL")


def test_a_part_human_part_model_document_is_mixed_with_its_model_spans(long_det, tmp_path):
    human = human_texts(10, LONG, start=1300)
    model = model_texts("temp0.7", 10, new_tokens=LONG, prompt_start=1500, with_prompt=False)
    mixed = [h + "\n\n" + m for h, m in zip(human, model)]
    plain = human_texts(10, LONG, start=1600)
    path = tmp_path / "unknown"
    with DatasetWriter(path, Activity("ingest", {"test": True})) as w:
        w.write(make_batch(mixed + plain, ids=[f"x{i}" for i in range(10)] + [f"h{i}" for i in range(10)],
                           origin="unknown", evidence=None, confidence=None))
    r = runner.invoke(app, ["detector", "score", str(long_det), str(path), "--out", str(tmp_path / "S"), "--spans",
                            "--tag", "--fpr", "0.01", "--json"])
    assert r.exit_code == 0, r.output
    assert verify(tmp_path / "S") == []
    rows = {row["id"]: row for row in Dataset.open(tmp_path / "S").read().to_pylist()}
    found, recall = 0, []
    for i, (h, text) in enumerate(zip(human, mixed)):
        row = rows[f"x{i}"]
        assert row["origin"] == row["detector_decision"]
        if row["detector_decision"] != "mixed":
            continue
        found += 1
        assert row["origin_evidence"] == "detector" and row["origin_confidence"] is None
        model_start = len(h) + 2
        covered = sum(s["end"] - s["start"] for s in row["detector_spans"])
        inside = sum(max(0, s["end"] - max(s["start"], model_start)) for s in row["detector_spans"])
        assert inside / covered >= 0.8, (model_start, row["detector_spans"])  # the spans lie in the model part
        recall.append(inside / (len(text) - model_start))
    assert found >= 8, [rows[f"x{i}"]["detector_decision"] for i in range(10)]
    summary = json.loads(r.stdout)
    assert summary["tagged_mixed"] == summary["decisions"].get("mixed", 0) >= found
    assert np.mean(recall) >= 0.5, recall  # and cover most of it (edges are within a window stride)
    human_verdicts = [rows[f"h{i}"]["detector_decision"] for i in range(10)]
    assert human_verdicts.count("human") >= 8, human_verdicts
    assert all(rows[f"h{i}"]["detector_spans"] == [] for i in range(10) if human_verdicts[i] == "human")
