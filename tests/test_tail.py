"""Tail weighting: unigram surprisal, capped mean-1 weights, seeded resampling (real builtin text)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from filter_fixtures import human_texts, write_dataset
from provkit.errors import ConfigError
from provkit.engines import run_filter
from provkit.filters import parse_pipeline
from provkit.filters.tail import TailConfig, capped_weights
from provkit.filters.tail import UnigramModel, weighted_sample_keys, word_tokens
from provkit.provenance import Dataset


def test_mean_surprisal_matches_the_formula_by_hand():
    ref = human_texts(50)
    model = UnigramModel.fit(ref)
    counts = Counter(t for text in ref for t in text.lower().split() if t.isalpha())
    assert model.total == sum(Counter(t for text in ref for t in word_tokens(text)).values())
    doc = "the the zzzunseenzzz"
    total, vocab = model.total, len(model.counts)
    expected = np.mean([-math.log2((model.counts.get(t, 0) + 1) / (total + vocab + 1)) for t in ["the", "the", "zzzunseenzzz"]])
    assert model.mean_surprisal([doc])[0] == pytest.approx(expected)
    assert counts["the"] > 0 and model.counts["the"] >= counts["the"]
    assert model.mean_surprisal([""])[0] == 0.0


def test_rare_text_scores_higher_than_common_text():
    model = UnigramModel.fit(human_texts(300))
    common = "the value of the object is the value of the function"
    rare = "zymurgy quokka xylophone periwinkle"
    s = model.mean_surprisal([common, rare])
    assert s[1] > s[0] + 5


def test_capped_weights_have_mean_one_respect_the_cap_and_keep_ratios():
    model = UnigramModel.fit(human_texts(300))
    raw = model.mean_surprisal(human_texts(400, start=300)) ** 2.0
    raw[:3] *= 50  # a few extreme records that must be capped
    w = capped_weights(raw, cap=3.0)
    assert w.mean() == pytest.approx(1.0)
    assert w.max() == pytest.approx(3.0)
    free = w < 3.0 - 1e-12
    ratio = w[free] / raw[free]
    assert np.allclose(ratio, ratio[0])  # uncapped weights stay proportional to rarity^alpha
    assert np.all(w[~free] <= raw[~free] * ratio[0] + 1e-9)


def test_capped_weights_without_binding_cap_is_plain_normalisation():
    raw = np.array([1.0, 2.0, 3.0, 4.0])
    assert np.allclose(capped_weights(raw, cap=10.0), raw / raw.mean())


def test_tail_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="cap"):
        TailConfig(cap=0.5)
    with pytest.raises(ConfigError, match="alpha"):
        TailConfig(alpha=-1)


def test_weighted_sampling_keys_favour_heavy_rows():
    rng = np.random.default_rng(0)
    w = np.where(np.arange(2000) < 1000, 4.0, 1.0)
    keys = weighted_sample_keys(w, rng.random(2000))
    top = np.argsort(-keys)[:500]
    # P(heavy) for the first draws is 0.8; far above the 0.5 of uniform sampling
    assert (top < 1000).mean() > 0.7


def _tail_run(tmp_path, name, target, seed, alpha=1.0):
    cfg = parse_pipeline({"steps": [{"kind": "tail", "alpha": alpha, "target": target, "seed": seed}]}, "t")
    return run_filter(tmp_path / "in", tmp_path / name, cfg)


def test_resampling_is_deterministic_for_a_seed_and_favours_the_tail(tmp_path):
    write_dataset(tmp_path / "in", human_texts(300))
    a = _tail_run(tmp_path, "a", 100, 7)
    b = _tail_run(tmp_path, "b", 100, 7)
    c = _tail_run(tmp_path, "c", 100, 8)
    ids = [Dataset.open(r.out).read(columns=["id"]).column("id").to_pylist() for r in (a, b, c)]
    assert len(ids[0]) == 100 and ids[0] == ids[1]
    assert ids[0] != ids[2]
    assert a.report["dropped"] == {"tail_resample": 200}
    kept = Dataset.open(a.out).read(columns=["tail_score"]).column(0).to_numpy()
    rejected = Dataset.open(a.out).read("rejects", columns=["tail_score"]).column(0).to_numpy()
    assert kept.mean() > rejected.mean()  # rare records are kept more often
    assert "sample_weight" not in Dataset.open(a.out).read().column_names  # resampled, not weighted


def test_weight_mode_writes_mean_one_sample_weight(tmp_path):
    write_dataset(tmp_path / "in", human_texts(200))
    r = _tail_run(tmp_path, "w", None, 0, alpha=0.5)
    table = Dataset.open(r.out).read()
    w = table.column("sample_weight").to_numpy()
    assert table.num_rows == 200 and w.mean() == pytest.approx(1.0)
    assert np.allclose(w, table.column("tail_weight").to_numpy())
    score = table.column("tail_score").to_numpy()
    order = np.argsort(score)
    assert np.all(np.diff(w[order]) >= -1e-12)  # weight is monotone in rarity
