"""The crawl scenario's answer: the share of the naive-to-oracle gap each arm recovers, with its uncertainty.

Definitions (per seed ``s``; ``C`` = the collapse endpoint of :mod:`provkit.train.stats`,
``mean_{n>=1}(log ppl_n - log ppl_0)`` on the human test blocks):

* **gap recovered** of arm A = ``mean_s(C_naive - C_A) / mean_s(C_naive - C_oracle)``: a ratio of
  paired mean differences over the seeds all three have.  1 = as good as the oracle, 0 = as bad
  as naive, < 0 = worse than naive.  Interval: percentile bootstrap over seeds (the same seed
  indices for the three arms; 10,000 resamples, fixed RNG seed); resamples whose denominator is
  not positive are left out and their share reported.  **Not estimable** when the t interval of
  the denominator's paired differences includes 0 (naive and oracle not distinguishable).
* **true model share**: the share of the B training blocks (copies counted) that model text wrote,
  by the hidden truth; mean over generations 1..N per seed, then the t interval over seeds.
* **removal precision / recall**: of the crawl records an arm's pipeline removed before the budget
  draw (the oracle: the records it was not handed), the share that model text wrote (precision;
  undefined when nothing was removed), and the share of the crawl's model records removed
  (recall); per seed the mean over generations 1..N, then the t interval over seeds.  Weighting
  arms remove nothing (their recall is 0: they act through the draw).
* **watermark TPR / FPR**: z >= ``watermark_z`` under the run's key on the crawl's watermarked
  model records / human records (the same crawl in every arm at a generation, so these measure
  the watermark, not the arm).
* **collapse delay**: per seed, the first generation whose test perplexity exceeds 1.1 × its
  generation 0's; "> N" when none does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow.parquet as pq

from provkit.core.atomic import write_bytes_atomic, write_json_atomic
from provkit.errors import ConfigError
from provkit.train.plots import plot_metric
from provkit.train.stats import BOOTSTRAP, LEVEL, endpoints, generation_table, mean_interval

PER_GENERATION = ("test_ppl", "model_share", "detector_tpr", "detector_fpr", "watermark_tpr", "watermark_fpr",
                  "watermark_model_recall", "removal_precision", "removal_recall", "distinct_2", "self_bleu",
                  "tail_recall", "vocab_diversity")
PER_SEED_MEANS = ("model_share", "removal_precision", "removal_recall")  # mean over generations 1..N per seed
DELAY_FACTOR = 1.1


def gap_recovered(c_naive: Sequence[float], c_arm: Sequence[float], c_oracle: Sequence[float],
                  resamples: int = BOOTSTRAP, seed: int = 0, level: float = LEVEL) -> dict[str, Any]:
    """``mean(C_naive - C_arm) / mean(C_naive - C_oracle)`` over paired seeds, with a bootstrap interval."""
    nv, a, o = (np.asarray(x, dtype=float) for x in (c_naive, c_arm, c_oracle))
    ok = np.isfinite(nv) & np.isfinite(a) & np.isfinite(o)
    num, den = (nv - a)[ok], (nv - o)[ok]
    n = int(num.size)
    nan = float("nan")
    den_iv = mean_interval(den)
    out: dict[str, Any] = {"n": n, "gap": nan, "low": nan, "high": nan, "undefined_share": nan,
                           "denominator": den_iv.mean, "denominator_low": den_iv.low, "denominator_high": den_iv.high,
                           "estimable": False}
    if n == 0 or den.mean() == 0:
        return out
    out["gap"] = float(num.mean() / den.mean())
    if n < 2 or den_iv.spans_zero:
        return out
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    d, u = den[idx].mean(axis=1), num[idx].mean(axis=1)
    good = d > 0
    vals = u[good] / d[good]
    if vals.size:
        out["low"], out["high"] = (float(v) for v in np.quantile(vals, [(1 - level) / 2, 0.5 + level / 2]))
    out["undefined_share"] = float(1.0 - good.mean())
    out["estimable"] = True
    return out


def collapse_delay(curve: Mapping[int, float], factor: float = DELAY_FACTOR) -> int | None:
    """The first generation n >= 1 with ppl_n > factor * ppl_0 (None: none within the run)."""
    if 0 not in curve:
        return None
    for n in sorted(g for g in curve if g >= 1):
        if curve[n] > factor * curve[0]:
            return n
    return None


def crawl_statistics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Headline (per arm), per-generation intervals, per-seed endpoints and delays."""
    c = endpoints(rows)
    arms = list(dict.fromkeys(r["condition"] for r in rows))
    last = max((int(r["generation"]) for r in rows), default=0)
    curves: dict[tuple[str, int], dict[int, float]] = {}
    later: dict[tuple[str, str, int], list[float]] = {}
    for r in rows:
        curves.setdefault((r["condition"], int(r["seed"])), {})[int(r["generation"])] = float(r["test_ppl"])
        if int(r["generation"]) >= 1:
            for metric in PER_SEED_MEANS:
                value = r.get(metric)
                later.setdefault((metric, r["condition"], int(r["seed"])), []).append(
                    float("nan") if value is None else float(value))
    headline, per_seed = [], []
    naive, oracle = c.get("naive", {}), c.get("oracle", {})
    for arm in arms:
        seeds = sorted(c.get(arm, {}))
        civ = mean_interval([c[arm][s] for s in seeds])
        means = {m: mean_interval([_nanmean(later[(m, arm, s)]) for s in seeds if (m, arm, s) in later])
                 for m in PER_SEED_MEANS}
        share = means["model_share"]
        delays = {s: collapse_delay(curves[(arm, s)]) for s in seeds}
        row: dict[str, Any] = {"arm": arm, "n_seeds": civ.n, "C_mean": civ.mean, "C_low": civ.low, "C_high": civ.high,
                               "model_share": share.mean, "model_share_low": share.low, "model_share_high": share.high,
                               **{f"{m}{k}": getattr(means[m], a) for m in PER_SEED_MEANS[1:]
                                  for k, a in (("", "mean"), ("_low", "low"), ("_high", "high"))},
                               "delays": [delays[s] for s in seeds],
                               "collapsed_seeds": sum(d is not None for d in delays.values())}
        common = sorted(set(naive) & set(oracle) & set(c.get(arm, {})))
        if arm not in ("naive", "oracle") and common:
            g = gap_recovered([naive[s] for s in common], [c[arm][s] for s in common], [oracle[s] for s in common])
            row.update(gap=g["gap"], gap_low=g["low"], gap_high=g["high"], gap_estimable=g["estimable"],
                       gap_undefined_share=g["undefined_share"], denominator=g["denominator"],
                       denominator_low=g["denominator_low"], denominator_high=g["denominator_high"])
        headline.append(row)
        per_seed += [{"arm": arm, "seed": s, "C": c[arm][s], "delay": delays[s]} for s in seeds]
    return {"generations": last, "headline": headline, "per_seed": per_seed,
            "by_generation": generation_table(rows, PER_GENERATION)}


def _nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN when none: e.g. precision of an arm that never removed anything)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def _iv(m: float, lo: float, hi: float, d: int = 3) -> str:
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "–"
    if lo is None or math.isnan(lo):
        return f"{m:.{d}f}"
    return f"{m:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def gap_text(row: Mapping[str, Any]) -> str:
    if row["arm"] in ("naive", "oracle"):
        return "0 (by definition)" if row["arm"] == "naive" else "1 (by definition)"
    if "gap" not in row:
        return "–"
    if not row["gap_estimable"]:
        return "not estimable (naive vs oracle interval includes 0)"
    return _iv(row["gap"], row["gap_low"], row["gap_high"], 2)


def delay_text(row: Mapping[str, Any], generations: int) -> str:
    return ", ".join(f">{generations}" if d is None else str(d) for d in row["delays"])


def markdown(stats: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    n = stats["generations"]
    lines = ["# Crawl scenario: what tags, detectors and weights recover when provenance is lost", "",
             f"B = {config.get('budget')} blocks per generation, crawl = (1 + {config.get('oversample')}) B, model share "
             f"schedule m_n = {config.get('schedule')}, kept tags t = {config.get('kept_tags')}, seeds {config.get('seeds')}, "
             f"detector {config.get('detector_kind')} at {config.get('detector_fpr')} FPR on held-out human blocks "
             "(trained once per seed at generation 1, never retrained); a share "
             f"{config.get('watermark_share')} of the model text watermarked (green-list, bias "
             f"{config.get('watermark_bias')}, gamma {config.get('watermark_greenlist_ratio')}), the watermark arms "
             f"drop z >= {config.get('watermark_z')}.", "",
             "C = mean over generations 1..N of (log ppl_n − log ppl_0) on the human test blocks (lower is better); "
             "gap recovered = (C_naive − C_arm)/(C_naive − C_oracle), a ratio of paired mean differences with a "
             "bootstrap 95 % interval over seeds; delay = first generation with ppl > 1.1 × generation 0 (per seed); "
             "removed = the crawl records the arm's steps dropped before the budget draw, scored against the hidden "
             "truth (precision: model share of them; recall: share of the model records removed).", "",
             "| arm | C [95% CI] | gap recovered [95% CI] | true model share trained on [95% CI] | "
             "removed: precision [95% CI] | removed: recall [95% CI] | collapse delay per seed |",
             "|---|---|---|---|---|---|---|"]
    for r in stats["headline"]:
        lines.append(f"| {r['arm']} | {_iv(r['C_mean'], r['C_low'], r['C_high'], 4)} | {gap_text(r)} | "
                     f"{_iv(r['model_share'], r['model_share_low'], r['model_share_high'], 2)} | "
                     f"{_iv(r.get('removal_precision'), r.get('removal_precision_low'), r.get('removal_precision_high'), 2)} | "
                     f"{_iv(r.get('removal_recall'), r.get('removal_recall_low'), r.get('removal_recall_high'), 2)} | "
                     f"{delay_text(r, n)} |")
    den = next((r for r in stats["headline"] if "denominator" in r), None)
    if den:
        lines += ["", f"Denominator C_naive − C_oracle: {_iv(den['denominator'], den['denominator_low'], den['denominator_high'], 4)}"
                      + (" — its interval includes 0, so no arm's gap is estimable at this seed count."
                         if not den["gap_estimable"] else ".")]
    lines += ["", "## Per generation (mean [95% CI] over seeds)", ""]
    for metric in ("test_ppl", "model_share", "removal_recall", "detector_tpr", "detector_fpr", "watermark_tpr",
                   "watermark_fpr"):
        lines += [f"### {metric}", "", "| arm | " + " | ".join(f"gen {g}" for g in range(n + 1)) + " |",
                  "|---|" + "---|" * (n + 1)]
        for arm in dict.fromkeys(r["arm"] for r in stats["headline"]):
            cells = []
            for g in range(n + 1):
                hit = [r for r in stats["by_generation"] if r["condition"] == arm and r["generation"] == g and r["metric"] == metric]
                cells.append(_iv(hit[0]["mean"], hit[0]["ci_low"], hit[0]["ci_high"], 1 if metric == "test_ppl" else 2)
                             if hit else "–")
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Per seed", "", "| arm | seed | C | delay |", "|---|---|---|---|"]
    lines += [f"| {r['arm']} | {r['seed']} | {r['C']:.4f} | {'>' + str(n) if r['delay'] is None else r['delay']} |"
              for r in stats["per_seed"]]
    return "\n".join(lines) + "\n"


def write_crawl_report(run: str | Path) -> tuple[Path, list[Path]]:
    """RUN/report.md, RUN/statistics.json and RUN/figures/crawl-*.png of a crawl run."""
    run = Path(run)
    if not (run / "metrics.parquet").exists():
        raise ConfigError(f"{run}: no metrics.parquet (not a crawl run, or no unit has finished yet)")
    rows = pq.read_table(run / "metrics.parquet").to_pylist()
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    stats = crawl_statistics(rows)
    write_json_atomic(run / "statistics.json", json.loads(json.dumps(stats, default=float)))
    figs = []
    (run / "figures").mkdir(exist_ok=True)
    for metric, log in (("test_ppl", True), ("model_share", False), ("detector_tpr", False), ("detector_fpr", False),
                        ("watermark_tpr", False)):
        figs.append(plot_metric(stats["by_generation"], metric, run / "figures" / f"crawl-{metric}.png", log=log))
    text = markdown(stats, config) + "\n" + "\n".join(f"![{p.stem}](figures/{p.name})" for p in figs) + "\n"
    write_bytes_atomic(run / "report.md", text.encode())
    return run / "report.md", figs
