"""Statistics over seeds: intervals per generation, the collapse endpoint C, paired contrasts, "collapse slowed".

Everything here is a pure function of per-seed numbers (``metrics.parquet`` rows);
the definitions are the ones ``docs/experiment.md`` documents column by column.

* **Interval of a mean** over ``n`` seeds: ``mean ± t_{0.975, n-1} · sd / sqrt(n)``
  (Student t, ``sd`` with ``ddof = 1``); NaN bounds for fewer than two seeds.
* **Endpoint** per seed and condition:
  ``C = (1/N) Σ_{n=1..N} (log ppl_n − log ppl_0)`` with ``ppl`` the human test
  perplexity and ``N`` the last generation.  C > 0: the test set got less likely.
* **Paired contrast** of condition X against a reference R (``replace``,
  ``accumulate``) over the seeds both have: ``d_s = C_s(X) − C_s(R)``; mean, the
  t interval of the mean, the paired t-test (``scipy.stats.ttest_rel``, two-sided)
  and the exact sign-flip (permutation) test: under H0 each ``d_s`` is as likely
  ``−d_s``; ``p = #{signs ε : |Σ ε_s d_s| ≥ |Σ d_s|} / 2^n`` over all ``2^n`` sign
  vectors (exact up to 2^20 vectors, i.e. 20 seeds; beyond, 2^20 seeded random
  vectors).  Holm's step-down correction across every listed contrast, separately
  for the t and the sign-flip p-values.  A contrast whose interval excludes 0 is
  reported as a difference only when its Holm-corrected t-test p is below 0.05;
  otherwise the words say it does not survive the correction.  (With n seeds the
  exact sign-flip p cannot go below 2/2^n: 0.0625 at 5 seeds, 0.002 at 10.)
* **Collapse slowed** = ``1 − mean_s C_s(X) / mean_s C_s(replace)``: 1 = no collapse
  left, 0 = as bad as replace, < 0 = worse.  Interval: percentile bootstrap over
  seeds (resampling seed indices, the same for X and replace: the pairing is kept),
  ``B = 10,000`` resamples from a fixed RNG seed; resamples whose mean replace C is
  not positive are undefined and left out (their share is reported).

Words: an interval that spans 0 is reported as "not distinguishable at this seed count".
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from provkit.core.lazy import lazy_import

sps = lazy_import("scipy.stats")  # ~0.8 s to import; only the experiment's statistics need it

LEVEL = 0.95
ALPHA = 1 - LEVEL
BOOTSTRAP = 10_000
EXACT_SIGN_FLIP_MAX = 20
REFERENCES = ("replace", "accumulate")


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def spans_zero(self) -> bool:
        return not (self.low > 0 or self.high < 0)

    def text(self, digits: int = 3) -> str:
        if math.isnan(self.low):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _clean(values: Iterable[Any]) -> np.ndarray:
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    return arr[np.isfinite(arr)]


def mean_interval(values: Iterable[Any], level: float = LEVEL) -> Interval:
    """Mean and Student-t interval over the finite values (NaN bounds when fewer than 2)."""
    x = _clean(values)
    n = int(x.size)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), n)
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def endpoint(ppl_by_generation: Mapping[int, float]) -> float:
    """``C = mean_{n>=1} (log ppl_n - log ppl_0)`` of one seed and condition (NaN without gen 0 or gen >= 1)."""
    if 0 not in ppl_by_generation:
        return float("nan")
    later = [g for g in ppl_by_generation if g >= 1]
    if not later:
        return float("nan")
    base = math.log(ppl_by_generation[0])
    return float(np.mean([math.log(ppl_by_generation[g]) - base for g in sorted(later)]))


def endpoints(rows: Sequence[Mapping[str, Any]], column: str = "test_ppl") -> dict[str, dict[int, float]]:
    """condition -> seed -> C, from metrics rows (generation 0 repeated under every condition).

    Only seeds that reached the run's last generation count: a partial run never mixes
    short and long chains in one mean.
    """
    last = max((int(r["generation"]) for r in rows), default=0)
    out: dict[str, dict[int, float]] = {}
    by: dict[tuple[str, int], dict[int, float]] = {}
    for r in rows:
        by.setdefault((r["condition"], int(r["seed"])), {})[int(r["generation"])] = float(r[column])
    for (cond, seed), curve in by.items():
        out.setdefault(cond, {})
        if last >= 1 and max(curve) == last and len(curve) == last + 1:
            out[cond][seed] = endpoint(curve)
    return out


def sign_flip_p(d: Sequence[float], seed: int = 0) -> float:
    """Two-sided exact sign-flip p-value of the mean of paired differences ``d``."""
    x = _clean(d)
    n = x.size
    if n == 0:
        return float("nan")
    observed = abs(x.sum())
    tol = 1e-12 * max(1.0, float(np.abs(x).sum()))
    if n <= EXACT_SIGN_FLIP_MAX:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(2**EXACT_SIGN_FLIP_MAX, n))
    sums = np.abs(signs @ x)
    return float(np.mean(sums >= observed - tol))


def paired_t_p(d: Sequence[float]) -> tuple[float, float]:
    """(t statistic, two-sided p) of the paired differences ``d`` (NaN for fewer than 2 or zero spread)."""
    x = _clean(d)
    if x.size < 2 or float(x.std(ddof=1)) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        return float("nan"), float("nan")
    res = sps.ttest_1samp(x, 0.0)
    return float(res.statistic), float(res.pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count)."""
    p = np.asarray(pvalues, dtype=float)
    idx = [i for i in np.argsort(np.where(np.isnan(p), np.inf, p), kind="stable") if not np.isnan(p[i])]
    m = len(idx)
    out = np.full(p.shape, np.nan)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def collapse_slowed(c_x: Sequence[float], c_replace: Sequence[float], resamples: int = BOOTSTRAP,
                    seed: int = 0, level: float = LEVEL) -> dict[str, float]:
    """``1 - mean C(X) / mean C(replace)`` over paired seeds, with a percentile bootstrap interval."""
    x = np.asarray(c_x, dtype=float)
    r = np.asarray(c_replace, dtype=float)
    ok = np.isfinite(x) & np.isfinite(r)
    x, r = x[ok], r[ok]
    n = int(x.size)
    nan = float("nan")
    if n == 0 or r.mean() <= 0:
        return {"slowed": nan, "slowed_low": nan, "slowed_high": nan, "n": n, "undefined_share": nan}
    est = 1.0 - x.mean() / r.mean()
    if n < 2:
        return {"slowed": float(est), "slowed_low": nan, "slowed_high": nan, "n": n, "undefined_share": 0.0}
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    rm = r[idx].mean(axis=1)
    xm = x[idx].mean(axis=1)
    good = rm > 0
    vals = 1.0 - xm[good] / rm[good]
    lo, hi = np.quantile(vals, [(1 - level) / 2, 0.5 + level / 2]) if vals.size else (nan, nan)
    return {"slowed": float(est), "slowed_low": float(lo), "slowed_high": float(hi), "n": n,
            "undefined_share": float(1.0 - good.mean())}


# ---------------------------------------------------------------- tables


def generation_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Long table: one row per (condition, generation, metric) with mean, interval and seed count."""
    conds = list(dict.fromkeys(r["condition"] for r in rows))
    out = []
    for cond in conds:
        group = [r for r in rows if r["condition"] == cond]
        for gen in sorted({int(r["generation"]) for r in group}):
            at = [r for r in group if int(r["generation"]) == gen]
            for metric in metrics:
                iv = mean_interval(r.get(metric) for r in at)
                if iv.n == 0:
                    continue
                out.append({"condition": cond, "generation": gen, "metric": metric, "n_seeds": iv.n,
                            "mean": iv.mean, "ci_low": iv.low, "ci_high": iv.high})
    return out


def verdict(low: float, high: float, what: str, positive: str, negative: str) -> str:
    if math.isnan(low) or math.isnan(high):
        return f"{what}: no interval (fewer than 2 seeds)"
    if low > 0:
        return f"{what}: {positive}"
    if high < 0:
        return f"{what}: {negative}"
    return f"{what}: not distinguishable at this seed count (interval spans 0)"


def contrast_table(c: Mapping[str, Mapping[int, float]], references: Sequence[str] = REFERENCES) -> list[dict[str, Any]]:
    """Paired differences of C to each reference, with t and sign-flip tests, Holm-corrected across all rows."""
    out: list[dict[str, Any]] = []
    for ref in references:
        if ref not in c:
            continue
        for cond in c:
            if cond == ref:
                continue
            seeds = sorted(set(c[cond]) & set(c[ref]))
            d = [c[cond][s] - c[ref][s] for s in seeds]
            iv = mean_interval(d)
            t, p_t = paired_t_p(d)
            out.append({
                "condition": cond, "reference": ref, "n_seeds": iv.n, "diff_mean": iv.mean, "diff_ci_low": iv.low,
                "diff_ci_high": iv.high, "t": t, "p_t": p_t, "p_signflip": sign_flip_p(d),
                "verdict": verdict(iv.low, iv.high, f"C({cond}) − C({ref})",
                                   f"{cond} collapses more than {ref}", f"{cond} collapses less than {ref}"),
            })
    for key in ("p_t", "p_signflip"):
        for row, adj in zip(out, holm([r[key] for r in out])):
            row[f"{key}_holm"] = adj
    for row in out:  # an interval that excludes 0 is not a finding unless it survives the multiplicity correction
        if not (row["diff_ci_low"] <= 0 <= row["diff_ci_high"]) and not row["p_t_holm"] < ALPHA:
            row["verdict"] += f" by its own interval, but not after Holm correction (p = {row['p_t_holm']:.3g})"
    return out


def headline_table(c: Mapping[str, Mapping[int, float]]) -> list[dict[str, Any]]:
    """Per condition: C with its interval, and collapse slowed (vs replace) with its bootstrap interval."""
    out = []
    rep = c.get("replace", {})
    for cond, per_seed in c.items():
        iv = mean_interval(per_seed.values())
        row: dict[str, Any] = {"condition": cond, "n_seeds": iv.n, "C_mean": iv.mean, "C_ci_low": iv.low,
                               "C_ci_high": iv.high}
        if cond == "replace" or not rep:
            row.update(slowed=float("nan"), slowed_low=float("nan"), slowed_high=float("nan"))
            row["verdict"] = verdict(iv.low, iv.high, f"C({cond})", "the test set got less likely (collapse)",
                                     "the test set got more likely")
        else:
            seeds = sorted(set(per_seed) & set(rep))
            s = collapse_slowed([per_seed[k] for k in seeds], [rep[k] for k in seeds])
            row.update(slowed=s["slowed"], slowed_low=s["slowed_low"], slowed_high=s["slowed_high"])
            if math.isnan(s["slowed"]):
                row["verdict"] = "collapse slowed: undefined (replace's mean C is not positive)"
            else:
                row["verdict"] = verdict(s["slowed_low"], s["slowed_high"], "collapse slowed vs replace",
                                         "slows collapse", "speeds collapse up")
        out.append(row)
    return out


def run_statistics(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Every statistics table of a run: ``by_generation``, ``endpoints``, ``headline``, ``contrasts``."""
    c = endpoints(rows)
    return {
        "by_generation": generation_table(rows, metrics),
        "endpoints": [{"condition": cond, "seed": s, "C": v} for cond, d in c.items() for s, v in sorted(d.items())],
        "headline": headline_table(c),
        "contrasts": contrast_table(c),
    }
