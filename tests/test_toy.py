"""The toy loops match their closed forms within sampling error."""

import numpy as np

from provkit.train import ToyConfig, expected_mean_sq_drift, expected_sigma, run_toy, write_toy


def test_gaussian_matches_closed_forms_within_sampling_error(tmp_path):
    cfg = ToyConfig(kind="gaussian", samples=20, generations=60, repeats=4000, seed=1)
    res = run_toy(cfg)
    for n in (1, 10, 30, 60):
        drift = (res.mu[n] - res.mu[0]) ** 2
        se = drift.std(ddof=1) / np.sqrt(cfg.repeats)
        assert abs(drift.mean() - expected_mean_sq_drift(1.0, 20, n)) < 4 * se
        sig = res.sigma[n]
        assert abs(sig.mean() - expected_sigma(1.0, 20, n)) < 4 * sig.std(ddof=1) / np.sqrt(cfg.repeats)
    # sigma-hat drifts to zero
    assert np.median(res.sigma[-1]) < 0.5 * np.median(res.sigma[1])
    png, js = write_toy(res, tmp_path)
    assert png.stat().st_size > 1000 and js.exists()


def test_closed_form_is_not_trivially_satisfied():
    """A loop that refits with the biased (ddof=0) variance decays faster than c_M^n: the test above can fail."""
    rng = np.random.default_rng(0)
    mu, sigma = np.zeros(4000), np.ones(4000)
    for _ in range(30):
        x = mu[:, None] + sigma[:, None] * rng.standard_normal((4000, 20))
        mu, sigma = x.mean(1), x.std(1, ddof=0)
    assert sigma.mean() < expected_sigma(1.0, 20, 30) - 4 * sigma.std() / np.sqrt(4000)


def test_gmm_loses_its_tails_and_a_component():
    res = run_toy(ToyConfig(kind="gmm", samples=50, generations=60, repeats=200, seed=0))
    rows = res.summary()
    assert rows[-1]["tail_mass"] < rows[1]["tail_mass"] or rows[-1]["sigma_mean"] < rows[0]["sigma_mean"]
    assert rows[-1]["min_weight"] < rows[0]["min_weight"]
    assert rows[-1]["sigma_mean"] < rows[0]["sigma_mean"]


def test_bad_toy_arguments_are_one_line_errors():
    from typer.testing import CliRunner

    from provkit.cli import app

    runner = CliRunner()
    for args, words in ((["toy", "poisson"], "unknown 'poisson'"), (["toy", "gaussian", "-M", "1"], "--samples")):
        res = runner.invoke(app, ["experiment", *args])
        assert res.exit_code == 2, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0]
