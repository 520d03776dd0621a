"""The VAE toy on a small budget: a few generations, 300 digits, 150 Adam steps per generation."""

import json
import math

import numpy as np
import pytest

from provkit.train.toy import (
    TOY_CONDITIONS,
    DigitJudge,
    ToyConfig,
    VaeSettings,
    run_vae,
    write_toy,
    write_toy_report,
)
from provkit.train.toy.vae import frechet_distance

CFG = ToyConfig(kind="vae", samples=300, generations=3, repeats=2, seed=0, vae=VaeSettings(steps=150))


@pytest.fixture(scope="module")
def judge():
    return DigitJudge()


@pytest.fixture(scope="module")
def results(judge):
    calls = []
    res = run_vae(CFG, TOY_CONDITIONS, lambda n, description=None: calls.append(n), judge=judge)
    assert sum(calls) == CFG.repeats * (1 + len(TOY_CONDITIONS) * (CFG.generations - 1))  # generation 1 trained once
    return {r.condition: r for r in res}


def test_judge_is_a_real_classifier(judge):
    assert judge.accuracy > 0.9


def test_metrics_are_finite_and_shares_are_distributions(results):
    for r in results.values():
        assert r.shares.shape == (CFG.generations + 1, CFG.repeats, 10)
        assert np.allclose(r.shares.sum(axis=2), 1.0)
        for key, values in r.metrics.items():
            assert values.shape == (CFG.generations + 1, CFG.repeats) and np.isfinite(values).all(), key
        assert (r.metrics["class_entropy"] <= math.log2(10) + 1e-9).all()
        assert np.allclose(r.metrics["var_ratio"][0], 1.0) and np.allclose(r.metrics["frechet"][0], 0.0, atol=1e-6)
        assert r.grids.shape == (CFG.generations + 1, 100, 64) and 0 <= r.grids.min() and r.grids.max() <= 1
        rows = r.summary()
        assert len(rows) == CFG.generations + 1 and all(np.isfinite(rows[-1][f"{k}_ci"]) for k in r.metrics)


def test_generation_one_is_shared_and_later_ones_differ(results):
    """Every condition's generation 1 trains on the originals with the same seed; the mixes differ afterwards."""
    first = results["replace"].metrics
    for r in results.values():
        for key in first:
            assert np.array_equal(r.metrics[key][1], first[key][1])
    assert not np.array_equal(results["replace"].metrics["frechet"][2], results["accumulate"].metrics["frechet"][2])


def test_replace_loses_more_variety_than_accumulate(results):
    """The property the toy exists for (it can fail): fed only its own samples, the VAE's pixel variance falls,
    and by the last generation it is below accumulate's for every seed."""
    rep, acc = results["replace"].metrics, results["accumulate"].metrics
    assert (rep["var_ratio"][-1] < rep["var_ratio"][1]).all()
    assert (rep["var_ratio"][-1] < acc["var_ratio"][-1]).all()
    assert (rep["frechet"][-1] > acc["frechet"][-1]).all()


def test_a_run_is_deterministic_for_its_seed(results, judge):
    again = run_vae(ToyConfig(kind="vae", samples=300, generations=2, repeats=1, seed=0, vae=VaeSettings(steps=150)),
                    ["replace"], judge=judge)[0]
    for key, values in again.metrics.items():
        assert np.array_equal(values, results["replace"].metrics[key][:3, :1]), key
    other = run_vae(ToyConfig(kind="vae", samples=300, generations=1, repeats=1, seed=7, vae=VaeSettings(steps=150)),
                    ["replace"], judge=judge)[0]
    assert other.metrics["frechet"][1, 0] != results["replace"].metrics["frechet"][1, 0]


def test_frechet_distance_is_zero_only_for_the_same_distribution():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4000, 5)), rng.normal(size=(4000, 5))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) < 0.05
    # shifted mean by 1 in every coordinate: + 5; a covariance scaled by 4: + 5 * (2 - 1)^2
    assert frechet_distance(a, b + 1) == pytest.approx(5.0, abs=0.15)
    assert frechet_distance(a, 2 * b) == pytest.approx(5.0, abs=0.3)
    assert frechet_distance(a, np.zeros((10, 5))) == pytest.approx(5.0, abs=0.3)  # singular covariance: no failure


def test_write_toy_and_report(results, tmp_path):
    png, js = write_toy(list(results.values()), tmp_path)
    assert png.name == "toy-vae.png" and png.stat().st_size > 5000
    doc = json.loads(js.read_text())
    assert doc["conditions"] == list(TOY_CONDITIONS) and doc["reference"]["classifier_accuracy"] > 0.9
    per_seed = np.array(doc["per_seed"]["replace"]["var_ratio"])  # seeds x generations
    assert per_seed.shape == (CFG.repeats, CFG.generations + 1)
    assert np.allclose(per_seed.mean(axis=0), [r["var_ratio"] for r in doc["summaries"]["replace"]], atol=1e-5)
    for paths in doc["grids"].values():
        assert len(paths) == CFG.generations + 1 and all((tmp_path / p).stat().st_size > 500 for p in paths)
    md, html = write_toy_report(tmp_path)
    text = md.read_text()
    assert "## vae" in text and all(f"**{c}**" in text for c in TOY_CONDITIONS)
    assert "toy-vae-grids.png" in text and html.read_text().count("data:image/png;base64,") == 3
