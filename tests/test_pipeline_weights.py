"""``sample_weight``: the weighting steps' product, renormalised to mean 1, with mix's alpha split kept exact."""

from __future__ import annotations

import numpy as np
import pytest

from filter_fixtures import bigram_model_texts, human_texts, write_dataset
from provkit.engines import run_filter
from provkit.filters import parse_pipeline
from provkit.filters.step import combine_weights
from provkit.provenance import Dataset


def test_combine_weights_without_groups_is_the_product_at_mean_one():
    rng = np.random.default_rng(0)
    a, b = rng.random(50) + 0.1, rng.random(50) * 3
    w = combine_weights([a, b])
    assert w.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(w / w[0], (a * b) / (a[0] * b[0]))


def test_combine_weights_with_groups_keeps_the_last_steps_group_totals():
    rng = np.random.default_rng(1)
    groups = np.array(["human"] * 10 + ["model"] * 25 + ["unknown"] * 5)
    # e.g. detector weights (1 - p)^beta: larger for human text
    prior = np.where(groups == "human", 2.0, 0.5) * (rng.random(40) + 0.5)
    last = np.where(groups == "human", 0.3 * 40 / 10, 0.7 * 40 / 30)  # mix weights, alpha = 0.3
    w = combine_weights([prior, last], groups)
    assert w.mean() == pytest.approx(1.0)
    assert w[groups == "human"].sum() / w.sum() == pytest.approx(0.3)
    for g in ("human", "model", "unknown"):  # the earlier weights redistribute inside a group only
        m = groups == g
        np.testing.assert_allclose(w[m] / w[m][0], prior[m] / prior[m][0])
    plain = combine_weights([prior, last])  # without groups the split would drift
    assert abs(plain[groups == "human"].sum() / plain.sum() - 0.3) > 0.01


def test_combine_weights_single_step_and_zero_weights():
    w = np.array([0.0, 2.0, 2.0])
    np.testing.assert_allclose(combine_weights([w]), [0.0, 1.5, 1.5])
    np.testing.assert_allclose(combine_weights([np.zeros(3)]), np.zeros(3))
    assert combine_weights([np.zeros(0)], np.zeros(0, dtype=str)).shape == (0,)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    return write_dataset(root / "in", human_texts(120), [bigram_model_texts(60, seed=1), bigram_model_texts(60, seed=2)])


def test_tail_then_mix_alpha_split_is_exact_and_tail_ratios_survive(mixed, tmp_path):
    alpha = 0.3
    cfg = parse_pipeline({"steps": [{"kind": "tail", "alpha": 1.0, "cap": 5.0},
                                     {"kind": "mix", "policy": "keep-human", "human_fraction": 0.5, "alpha": alpha}]}, "t")
    r = run_filter(mixed, tmp_path / "o", cfg)
    out = Dataset.open(tmp_path / "o")
    kept = out.read()
    w = kept.column("sample_weight").to_numpy()
    human = np.array([i.startswith("h") for i in kept.column("id").to_pylist()])
    assert human.sum() == 60 and (~human).sum() == 60
    assert w.mean() == pytest.approx(1.0)
    assert w[human].sum() / w.sum() == pytest.approx(alpha)  # the mixed loss alpha*L_h + (1-alpha)*L_m
    tail = kept.column("tail_weight").to_numpy()
    for g in (human, ~human):
        np.testing.assert_allclose(w[g] / w[g][0], tail[g] / tail[g][0])
    naive = tail * kept.column("mix_weight").to_numpy()
    assert abs(naive[human].sum() / naive.sum() - alpha) > 1e-3  # the plain product drifts off the split
    assert r.report["sample_weight"]["mean"] == pytest.approx(1.0)
    assert out.read("rejects").column("sample_weight").null_count == 120  # rejects are not trained on


def test_tail_then_quality_drop_renormalises_the_product(mixed, tmp_path):
    cfg = parse_pipeline({"steps": [{"kind": "tail", "alpha": 1.0}, {"kind": "quality", "min_words": 30}]}, "t")
    run_filter(mixed, tmp_path / "o", cfg)
    kept = Dataset.open(tmp_path / "o").read()
    assert 0 < kept.num_rows < 240
    w, tail = kept.column("sample_weight").to_numpy(), kept.column("tail_weight").to_numpy()
    assert w.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(w, tail / tail.mean())
