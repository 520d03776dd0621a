"""The toys under every mixing condition: the Gaussian closed forms hold within sampling error, and can fail."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from provkit.cli import app
from provkit.train.toy import (
    TOY_CONDITIONS,
    ToyConfig,
    closed_forms,
    expected_mean_sq_drift,
    keep_human_limit,
    parse_toy_condition,
    run_toy,
    run_toys,
)
from provkit.train.toy.gmm import fit_gmm2
from provkit.train.toy.loop import Pool, sample_without_replacement, training_set

M, G, R = 50, 30, 10000
CHECK = (1, 2, 5, 10, 20, 30)


def _z(measured: np.ndarray, expected: float) -> float:
    """(mean - expected) in standard errors of the mean over repetitions."""
    return (measured.mean() - expected) / (measured.std(ddof=1) / math.sqrt(measured.size))


@pytest.mark.parametrize("condition", ["replace", "keep-human=0.1", "keep-human=0.5", "accumulate", "accumulate-fixed"])
def test_gaussian_matches_its_closed_forms_within_4_standard_errors(condition):
    res = run_toy(ToyConfig(kind="gaussian", samples=M, generations=G, repeats=R, seed=11, condition=condition))
    d, v = closed_forms(1.0, M, G, condition)
    for n in CHECK:
        drift, var = (res.mu[n] - 0.0) ** 2, res.sigma[n] ** 2
        assert abs(_z(drift, d[n])) < 4, (condition, n, drift.mean(), d[n])
        assert abs(_z(var, v[n])) < 4, (condition, n, var.mean(), v[n])
    # the summary carries the same closed forms
    row = res.summary()[G]
    assert row["mean_sq_drift_closed_form"] == pytest.approx(d[G]) and row["variance_closed_form"] == pytest.approx(v[G])


def test_closed_forms_agree_with_the_stated_formulas():
    # replace: n sigma^2 / M; accumulate: bounded by pi^2 sigma^2 / (6 M); keep-human: the fixed point
    assert expected_mean_sq_drift(2.0, 40, 7) == pytest.approx(7 * 4 / 40)
    d_acc, _ = closed_forms(1.0, M, 2000, "accumulate")
    assert d_acc[-1] < math.pi**2 / (6 * M) and d_acc[-1] > d_acc[100] > d_acc[1] == pytest.approx(1 / M)
    d_keep, v_keep = closed_forms(1.0, 20, 2000, "keep-human=0.1")
    assert (d_keep[-1], v_keep[-1]) == pytest.approx(keep_human_limit(1.0, 20, 0.1), rel=1e-9)
    assert keep_human_limit(1.0, 20, 0.1)[0] == pytest.approx(1 / (20 - 18**2 / 19))
    # keep-human=1 is "fresh data every generation": the error stays sigma^2/M
    d_all, v_all = closed_forms(1.0, M, 50, "keep-human=1")
    assert np.allclose(d_all[1:], 1 / M) and np.allclose(v_all, 1.0)


def test_keep_human_fixed_point_is_exact_where_the_large_M_bound_is_not():
    """At M = 20, F = 0.1 (k = 2) the measured plateau matches sigma^2/(M - m^2/(M-1)) = 0.339 and rejects the
    large-M approximation sigma^2/(M F (2-F)) = 0.263: the comparison has the power to fail."""
    res = run_toy(ToyConfig(kind="gaussian", samples=20, generations=80, repeats=40000, seed=5, condition="keep-human=0.1"))
    plateau = (res.mu[80] - 0.0) ** 2
    assert abs(_z(plateau, keep_human_limit(1.0, 20, 0.1)[0])) < 4
    assert abs(_z(plateau, 1 / (20 * 0.1 * 1.9))) > 8


def test_remedies_bound_the_drift_that_replace_lets_grow():
    res = {r.condition: r for r in run_toys(ToyConfig(kind="gaussian", samples=M, generations=G, repeats=4000, seed=2))}
    drift = {c: ((r.mu[G] - 0.0) ** 2).mean() for c, r in res.items()}
    assert drift["replace"] > 20 / M  # ~ G/M = 0.8
    assert drift["keep-human=0.1"] < 7 / M and drift["accumulate"] < math.pi**2 / 6 / M * 1.1
    assert drift["accumulate"] < drift["accumulate-fixed"] < drift["keep-human=0.1"] < drift["replace"]
    assert np.median(res["replace"].sigma[G]) < np.median(res["accumulate"].sigma[G])


def test_sample_without_replacement_is_a_uniform_subset():
    rng = np.random.default_rng(0)
    idx = sample_without_replacement(rng, 20000, 12, 5)
    assert idx.min() >= 0 and idx.max() < 12
    assert all(len(set(row)) == 5 for row in idx[:500])
    counts = np.bincount(idx.ravel(), minlength=12) / 20000  # each index is in the subset with p = 5/12
    se = math.sqrt(5 / 12 * 7 / 12 / 20000)
    assert np.abs(counts - 5 / 12).max() < 4 * se


def test_training_sets_have_the_conditions_composition():
    """(R, M, features) arrays as the VAE uses them: originals are marked 1, model samples 0."""
    m, rng = 40, np.random.default_rng(1)
    originals = np.ones((2, m, 3))

    def fresh(k):
        return originals[:, :k]

    new = np.zeros((2, m, 3))
    keep = training_set(parse_toy_condition("keep-human=0.1"), new, None, fresh, rng)
    assert keep.shape == (2, m, 3) and keep[:, :, 0].sum(axis=1).tolist() == [4, 4]
    assert training_set(parse_toy_condition("replace"), new, None, fresh, rng) is new
    pool = Pool(originals, 3 * m)
    acc = training_set(parse_toy_condition("accumulate"), new, pool, fresh, rng)
    assert acc.shape == (2, 2 * m, 3) and acc[:, :, 0].sum() == 2 * m
    pool = Pool(originals, 3 * m)
    fixed = training_set(parse_toy_condition("accumulate-fixed"), new + 2, pool, fresh, rng)
    assert fixed.shape == (2, m, 3) and set(np.unique(fixed)) <= {1.0, 2.0}
    assert 0 < (fixed[:, :, 0] == 1).sum() < 2 * m  # drawn from both halves of the pool


def _em_numpy(x, w, m, s, iterations):
    """The NumPy EM the numba kernel replaced (the reference)."""
    for _ in range(iterations):
        dens = w[:, None, :] * np.exp(-0.5 * ((x[:, :, None] - m[:, None, :]) / s[:, None, :]) ** 2) / (
            s[:, None, :] * math.sqrt(2 * math.pi))
        resp = dens / dens.sum(axis=2, keepdims=True).clip(min=1e-300)
        nk = resp.sum(axis=1).clip(min=1e-12)
        w = nk / x.shape[1]
        m = (resp * x[:, :, None]).sum(axis=1) / nk
        s = np.sqrt((resp * (x[:, :, None] - m[:, None, :]) ** 2).sum(axis=1) / nk).clip(min=1e-6)
    return w, m, s


def test_gmm_em_kernel_equals_the_numpy_reference():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-2, 1, (30, 60)), rng.normal(2.5, 0.7, (30, 40))], axis=1)
    start = (np.full((30, 2), 0.5), np.tile([-1.0, 1.0], (30, 1)), np.ones((30, 2)))
    fast, ref = fit_gmm2(x, *start, 8), _em_numpy(x, *start, 8)
    for a, b in zip(fast, ref):
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12)
    assert np.array_equal(start[1], np.tile([-1.0, 1.0], (30, 1)))  # the warm start is not modified


def test_gmm_remedies_keep_both_components():
    res = {r.condition: r.summary()[-1] for r in run_toys(ToyConfig(kind="gmm", samples=50, generations=60, repeats=100, seed=0))}
    # truth: smaller weight 0.5, std sqrt(5) = 2.24; replace loses a component and half the spread
    assert res["replace"]["min_weight"] < 0.15 and res["replace"]["sigma_mean"] < 1.2
    assert res["keep-human=0.1"]["min_weight"] > 0.2 and res["keep-human=0.1"]["sigma_mean"] > 2.0
    for c in ("accumulate", "accumulate-fixed"):
        assert res[c]["min_weight"] > max(0.35, res["keep-human=0.1"]["min_weight"]) and res[c]["sigma_mean"] > 2.1


def test_toy_cli_writes_every_condition_side_by_side(tmp_path):
    runner = CliRunner()
    for kind in ("gaussian", "gmm"):
        res = runner.invoke(app, ["experiment", "toy", kind, "--out", str(tmp_path), "--generations", "20", "--repeats", "50"])
        assert res.exit_code == 0, res.output
        assert all(c in res.output for c in TOY_CONDITIONS)
    md = (tmp_path / "report.md").read_text()
    assert "## gaussian" in md and "## gmm" in md and "## vae" not in md
    table = md.split("E (mu_n - mu)^2, measured")[1].split("\n\n")[1]
    assert table.splitlines()[0] == "| generation | " + " | ".join(TOY_CONDITIONS) + " |"
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    res = runner.invoke(app, ["experiment", "toy", "gaussian", "--out", str(tmp_path), "--generations", "5",
                              "--repeats", "10", "-c", "replace", "-c", "keep-human=0.3", "--json"])
    assert res.exit_code == 0, res.output
    assert '"keep-human=0.3"' in res.output and '"accumulate"' not in res.output


@pytest.mark.parametrize("flag, words", [("curated", "no text to curate"), ("keep-human=2", "(0, 1]"), ("mix", "unknown toy condition")])
def test_bad_toy_conditions_are_one_line_errors(flag, words):
    res = CliRunner().invoke(app, ["experiment", "toy", "gaussian", "-c", flag])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
