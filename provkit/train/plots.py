"""PNG figures of an experiment run and of the toy loops (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

DIVERSITY = ("vocab_diversity", "distinct_1", "distinct_2", "distinct_3", "self_bleu", "tail_recall", "embedding_diversity", "detector_score")
TAILS = ("data_below_human_p1", "data_above_human_p99")
LABELS = {
    "test_ppl": "perplexity on human test blocks",
    "vocab_diversity": "vocabulary diversity (unique / total words)",
    "distinct_1": "distinct-1", "distinct_2": "distinct-2", "distinct_3": "distinct-3",
    "self_bleu": "self-BLEU (higher = less diverse)",
    "tail_recall": "tail-token recall",
    "embedding_diversity": "embedding diversity (mean cosine distance)",
    "detector_score": "detector P(model)",
    "data_below_human_p1": "share of data below the human 1st percentile",
    "data_above_human_p99": "share of data above the human 99th percentile",
}


def _plt():
    import matplotlib  # lazy: pyplot costs ~1 s to import and must be set to Agg before it loads

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _bands(by_generation: list[dict[str, Any]], metric: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """condition -> (generations, mean, 95 % low, 95 % high) from the statistics table."""
    out: dict[str, Any] = {}
    rows = [r for r in by_generation if r["metric"] == metric]
    for cond in dict.fromkeys(r["condition"] for r in rows):
        g = sorted((r for r in rows if r["condition"] == cond), key=lambda r: r["generation"])
        out[cond] = tuple(np.asarray([r[k] for r in g], dtype=float) for k in ("generation", "mean", "ci_low", "ci_high"))
    return out


def _has_values(by_generation: list[dict[str, Any]], metric: str) -> bool:
    return any(r["metric"] == metric and np.isfinite(r["mean"]) for r in by_generation)


def plot_metric(by_generation: list[dict[str, Any]], metric: str, path: Path, log: bool = False) -> Path:
    """One metric vs generation: the mean over seeds per condition, band = its 95 % interval."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for cond, (g, mean, lo, hi) in _bands(by_generation, metric).items():
        line, = ax.plot(g, mean, marker="o", label=cond)
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.fill_between(g[ok], lo[ok], hi[ok], alpha=0.18, color=line.get_color())
    n = max((r["n_seeds"] for r in by_generation if r["metric"] == metric), default=0)
    ax.set_xlabel("generation")
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.set_title(f"{LABELS.get(metric, metric)}: mean over {n} seeds, band = 95 % interval")
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_endpoints(endpoints: list[dict[str, Any]], headline: list[dict[str, Any]], path: Path) -> Path:
    """The endpoint C of every seed per condition (dots), its mean and 95 % interval (bar)."""
    plt = _plt()
    conds = [r["condition"] for r in headline]
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.6 * max(1, len(conds))))
    for i, cond in enumerate(conds):
        vals = [r["C"] for r in endpoints if r["condition"] == cond]
        ax.scatter(vals, [i] * len(vals), s=18, alpha=0.6, color="grey", zorder=2)
        h = headline[i]
        if np.isfinite(h["C_ci_low"]):
            ax.plot([h["C_ci_low"], h["C_ci_high"]], [i, i], color="C0", lw=3, zorder=3)
        ax.plot([h["C_mean"]], [i], "o", color="C0", ms=8, zorder=4)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(conds)), conds)
    ax.invert_yaxis()
    ax.set_xlabel("C = mean over generations 1..N of (log ppl_n − log ppl_0)   (> 0: collapse)")
    ax.set_title("Collapse endpoint per seed (dots), mean and 95 % interval")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_perplexity_histograms(seq: pa.Table, path: Path, human: dict[str, float] | None = None) -> Path:
    """Per condition: histograms of per-sequence perplexity of each generation's data under the generation-0 model
    (all seeds pooled); dashed lines = the human data's 1st and 99th percentiles."""
    plt = _plt()
    rows = seq.to_pylist()
    conds = list(dict.fromkeys(r["condition"] for r in rows))
    gens = sorted({r["generation"] for r in rows})
    all_p = np.asarray([r["ppl"] for r in rows], dtype=float)
    all_p = all_p[np.isfinite(all_p) & (all_p > 0)]
    bins = np.logspace(np.log10(all_p.min()), np.log10(all_p.max()), 50) if all_p.size else 10
    cols = 2 if len(conds) > 1 else 1
    nrows = -(-len(conds) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(7 * cols, 3.8 * nrows), squeeze=False, sharex=True)
    cmap = plt.get_cmap("viridis")
    for ax, cond in zip(axes.flat, conds):
        for g in gens:
            p = np.asarray([r["ppl"] for r in rows if r["condition"] == cond and r["generation"] == g], dtype=float)
            p = p[np.isfinite(p)]
            if p.size:
                ax.hist(p, bins=bins, histtype="step", density=True, lw=1.5, color=cmap(g / max(1, max(gens))),
                        label="human (gen 0)" if g == 0 else f"gen {g}")
        for key in ("p1", "p99"):
            if human and np.isfinite(human.get(key, np.nan)):
                ax.axvline(human[key], color="k", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(cond)
        ax.set_ylabel("density")
        ax.grid(alpha=0.2)
    for ax in axes.flat[len(conds):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("perplexity under the generation-0 model")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_run(stats: dict[str, list[dict[str, Any]]], seq: pa.Table | None, directory: Path,
             human: dict[str, float] | None = None) -> list[Path]:
    """All figures of a run into ``directory`` (one legible figure per metric); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    by = stats["by_generation"]
    paths = [plot_metric(by, "test_ppl", directory / "test_perplexity.png")]
    if stats["headline"]:
        paths.append(plot_endpoints(stats["endpoints"], stats["headline"], directory / "endpoints.png"))
    if seq is not None and seq.num_rows:
        paths.append(plot_perplexity_histograms(seq, directory / "perplexity_histograms.png", human))
    for metric in (*TAILS, *DIVERSITY):
        if _has_values(by, metric):
            paths.append(plot_metric(by, metric, directory / f"{metric}.png"))
    return paths
