"""The ngram kind's novelty features on real small data (builtin python-docs paragraphs vs a word-bigram
chain's text): leave-one-group-out is exact, the state round-trips through the saved files, legacy
detectors keep their features."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from filter_fixtures import bigram_model_texts, human_texts
from safetensors.numpy import load_file, save_file

from provkit.filters.detector import DetectorConfig, DetectorError, load_detector, save_detector, train_detector
from provkit.filters.detector.ngram import NgramFeaturizer
from provkit.filters.detector.serialize import _checksum

HUMAN, MODEL = human_texts(60, start=600), bigram_model_texts(40, seed=1, words=40)


def _novelty(feat: NgramFeaturizer, x) -> np.ndarray:
    return x[:, -len(feat.novelty_orders):].toarray() * feat._scale[:, 1] + feat._scale[:, 0]  # undo the standardisation


def test_training_human_text_gets_the_novelty_of_a_featurizer_fitted_without_its_group():
    texts = HUMAN[:30] + [HUMAN[0]] + MODEL[:10]  # row 30 repeats row 0: one group, left out together
    labels = np.array([0] * 31 + [1] * 10)
    groups = [f"g{i}" for i in range(30)] + ["g0"] + [f"m{i}" for i in range(10)]
    feat = NgramFeaturizer()
    u = _novelty(feat, feat.fit_transform(texts, labels, np.arange(len(texts)), groups))
    for i in (0, 5, 30):
        others = [j for j in range(31) if groups[j] != groups[i]]
        alone = NgramFeaturizer()
        alone.fit_transform([texts[j] for j in others], np.zeros(len(others)), np.arange(len(others)),
                            [groups[j] for j in others])
        np.testing.assert_allclose(u[i], alone._novelty([texts[i]])[0], atol=1e-12)
        assert u[i].min() > 0  # every paragraph has strings no other paragraph has
    assert np.allclose(u[0], u[30])
    np.testing.assert_allclose(u[31:], feat._novelty(texts[31:]), atol=1e-12)  # model rows: against every human text


def test_novelty_state_round_trips_and_a_tampered_state_is_one_line(tmp_path):
    trained = train_detector(HUMAN + MODEL, [0] * 60 + [1] * 40, DetectorConfig(kind="ngram", seed=0, cv_folds=3))
    path = save_detector(trained.detector, tmp_path / "DET")
    det = load_detector(path)
    probe = human_texts(5, start=1400) + bigram_model_texts(5, seed=3)
    np.testing.assert_array_equal(det.decision_function(probe), trained.detector.decision_function(probe))
    assert det.fingerprint == trained.detector.fingerprint and det.featurizer.n_features == 2 * 2**18 + 3
    arrays = load_file(path / "weights.safetensors")
    arrays["featurizer.novelty_seen"] = arrays["featurizer.novelty_seen"][:, :100].copy()
    save_file(arrays, path / "weights.safetensors", metadata={"format": "provkit-detector"})
    doc = json.loads((path / "detector.json").read_text())
    # the weights' sha256 and the document checksum updated as a careful forger would: the shape check still refuses
    doc["weights"]["sha256"] = hashlib.sha256((path / "weights.safetensors").read_bytes()).hexdigest()
    doc["checksum"] = _checksum(doc)
    (path / "detector.json").write_text(json.dumps(doc))
    with pytest.raises(DetectorError, match=r"featurizer\.novelty_seen must be uint8 of shape \(3, 131072\)"):
        load_detector(path)


def test_a_featurizer_saved_without_novelty_keys_keeps_its_old_features():
    legacy = NgramFeaturizer.from_params({"word_ngrams": [1, 2], "char_ngrams": [2, 5], "n_features_log2": 18,
                                          "lowercase": False})
    assert legacy.novelty_orders == () and not legacy.sublinear_tf and legacy.n_features == 2 * 2**18
    x = legacy.transform(HUMAN[:3])
    assert np.allclose(np.sqrt(x[:, : 2**18].multiply(x[:, : 2**18]).sum(axis=1)), 1.0)  # plain L2-normalised counts
    with pytest.raises(DetectorError, match="novelty features are not fitted"):
        NgramFeaturizer().transform(HUMAN[:2])
