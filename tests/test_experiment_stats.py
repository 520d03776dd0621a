"""The experiment's statistics against values computed by hand on a fixture of known per-seed numbers.

Fixture: generations 0..2, four seeds; each curve is ppl_0 = 100, ppl_n = 100·exp(x_n),
so C = (x_1 + x_2) / 2 exactly:

    C(replace)    = 0.4, 0.6, 0.5, 0.7   mean 0.55
    C(accumulate) = 0.1, 0.2, 0.3, 0.2   mean 0.20
    C(keep)       = 0.5, 0.5, 0.6, 0.6   mean 0.55
"""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from provkit.train.stats import (
    collapse_slowed,
    contrast_table,
    endpoints,
    headline_table,
    holm,
    mean_interval,
    run_statistics,
    sign_flip_p,
)

C = {"replace": [0.4, 0.6, 0.5, 0.7], "accumulate": [0.1, 0.2, 0.3, 0.2], "keep": [0.5, 0.5, 0.6, 0.6]}


def _rows():
    rows = []
    for cond, cs in C.items():
        for seed, c in enumerate(cs):
            x1 = c - 0.1  # (x1 + x2) / 2 = c
            x2 = c + 0.1
            for gen, x in enumerate((0.0, x1, x2)):
                rows.append({"seed": seed, "condition": cond, "generation": gen, "test_ppl": 100 * math.exp(x),
                             "distinct_2": 0.5 + 0.1 * seed})
    return rows


def test_endpoint_is_mean_log_ratio_per_seed():
    c = endpoints(_rows())
    for cond, cs in C.items():
        assert [c[cond][s] for s in range(4)] == pytest.approx(cs)


def test_mean_interval_by_hand():
    # replace: deviations (-.15, .05, -.05, .15): sd = sqrt(.05/3) = 0.1290994; t(.975, 3) = 3.1824463
    iv = mean_interval(C["replace"])
    half = 3.1824463 * 0.1290994 / 2
    assert (iv.mean, iv.low, iv.high, iv.n) == pytest.approx((0.55, 0.55 - half, 0.55 + half, 4), abs=1e-6)
    assert iv.low == pytest.approx(0.344574, abs=1e-6) and not iv.spans_zero
    assert math.isnan(mean_interval([1.0]).low) and mean_interval([]).n == 0


def test_sign_flip_exact_by_hand():
    assert sign_flip_p([-0.3, -0.4, -0.2, -0.5]) == pytest.approx(2 / 16)  # only all-+ and all-- reach |sum|
    assert sign_flip_p([0.1, -0.1, 0.1, -0.1]) == 1.0
    # d = (1, 2, 3): |sum| = 6 is reached by (+++) and (---) only; 2/8
    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(0.25)
    # d = (1, 1, 1): |sum| = 3 only for (+,+,+) and (-,-,-) -> 2/8
    assert sign_flip_p([1.0, 1.0, 1.0]) == pytest.approx(0.25)


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.125, 1.0, 0.125, 0.125]) == pytest.approx([0.5, 1.0, 0.5, 0.5])
    out = holm([float("nan"), 0.02, 0.04])
    assert math.isnan(out[0]) and out[1:] == pytest.approx([0.04, 0.04])


def test_contrasts_by_hand():
    c = endpoints(_rows())
    rows = {(r["condition"], r["reference"]): r for r in contrast_table(c)}
    assert set(rows) == {("accumulate", "replace"), ("keep", "replace"), ("replace", "accumulate"), ("keep", "accumulate")}
    a = rows[("accumulate", "replace")]  # d = (-.3, -.4, -.2, -.5): mean -.35, sd sqrt(.05/3)
    se = 0.1290994 / 2
    assert a["diff_mean"] == pytest.approx(-0.35)
    assert a["diff_ci_low"] == pytest.approx(-0.35 - 3.1824463 * se, abs=1e-6)
    assert a["diff_ci_high"] == pytest.approx(-0.144574, abs=1e-6)
    assert a["t"] == pytest.approx(-0.35 / se, rel=1e-6)  # -5.42218
    assert a["p_t"] == pytest.approx(2 * sps.t.sf(0.35 / se, 3), rel=1e-6)
    assert a["p_signflip"] == pytest.approx(0.125)
    assert "collapses less than replace" in a["verdict"]
    k = rows[("keep", "replace")]  # d = (.1, -.1, .1, -.1): mean 0
    assert k["diff_mean"] == pytest.approx(0.0, abs=1e-12) and k["p_signflip"] == 1.0
    assert "not distinguishable" in k["verdict"]
    # Holm over the four sign-flip p-values (.125, 1, .125, .125) -> (.5, 1, .5, .5)
    assert a["p_signflip_holm"] == pytest.approx(0.5) and k["p_signflip_holm"] == pytest.approx(1.0)
    assert rows[("keep", "accumulate")]["p_signflip_holm"] == pytest.approx(0.5)
    # Holm over the t p-values: keep-accumulate d = (.4,.3,.3,.4): t = .35/(sd/2), sd = sqrt(.01/3)
    p_ka = 2 * sps.t.sf(0.35 / (math.sqrt(0.01 / 3) / 2), 3)
    p_a = 2 * sps.t.sf(0.35 / se, 3)
    assert rows[("keep", "accumulate")]["p_t_holm"] == pytest.approx(4 * p_ka, rel=1e-6)
    assert a["p_t_holm"] == pytest.approx(3 * p_a, rel=1e-6)  # (3 and 2 times p_a: the running max)
    assert a["p_t_holm"] < 0.05
    assert k["p_t_holm"] == pytest.approx(1.0)
    assert "not after Holm" not in a["verdict"]


def test_an_interval_off_zero_that_fails_holm_says_so():
    c = {"replace": {0: 0.50, 1: 0.52, 2: 0.49}, "x": {0: 0.425, 1: 0.395, 2: 0.39}, "accumulate": {0: 0.1, 1: 0.2, 2: 0.3}}
    rows = {(r["condition"], r["reference"]): r for r in contrast_table(c)}
    r = rows[("x", "replace")]  # d = (-.075, -.125, -.10): mean -.1, sd .025, t = -6.93 (2 df), p = .0202
    assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx((-0.1 - 4.302653 * 0.025 / 3 ** 0.5,
                                                                   -0.1 + 4.302653 * 0.025 / 3 ** 0.5), abs=1e-6)
    assert r["p_t"] == pytest.approx(0.0202, abs=2e-4) and r["p_t_holm"] == pytest.approx(4 * r["p_t"], rel=1e-6)
    assert "not after Holm correction" in r["verdict"]


def test_collapse_slowed_point_and_bootstrap():
    s = collapse_slowed(C["accumulate"], C["replace"])
    assert s["slowed"] == pytest.approx(1 - 0.20 / 0.55)  # 0.636364
    assert s["slowed_low"] <= s["slowed"] <= s["slowed_high"]
    assert s == collapse_slowed(C["accumulate"], C["replace"])  # seeded: the same interval every time
    k = collapse_slowed(C["keep"], C["replace"])
    assert k["slowed"] == pytest.approx(0.0, abs=1e-12) and k["slowed_low"] < 0 < k["slowed_high"]
    # every resample of identical pairs gives exactly 1 - 1 = 0
    z = collapse_slowed([0.3, 0.5, 0.4], [0.3, 0.5, 0.4])
    assert (z["slowed"], z["slowed_low"], z["slowed_high"]) == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)
    assert math.isnan(collapse_slowed([0.1, 0.2], [-0.1, -0.2])["slowed"])  # replace did not collapse: undefined


def test_headline_and_generation_table():
    st = run_statistics(_rows(), ["test_ppl", "distinct_2"])
    head = {r["condition"]: r for r in st["headline"]}
    assert head["replace"]["C_mean"] == pytest.approx(0.55) and head["replace"]["C_ci_low"] > 0
    assert "collapse" in head["replace"]["verdict"]
    assert head["accumulate"]["slowed"] == pytest.approx(0.636364, abs=1e-6)
    assert "slows collapse" in head["accumulate"]["verdict"]
    assert "not distinguishable" in head["keep"]["verdict"]
    by = {(r["condition"], r["generation"], r["metric"]): r for r in st["by_generation"]}
    d = by[("keep", 1, "distinct_2")]  # .5, .6, .7, .8: mean .65, sd sqrt(.05/3)
    assert (d["mean"], d["n_seeds"]) == pytest.approx((0.65, 4))
    assert d["ci_high"] - d["mean"] == pytest.approx(3.1824463 * 0.1290994 / 2, abs=1e-6)
    assert len(st["endpoints"]) == 12
    assert headline_table({}) == []
