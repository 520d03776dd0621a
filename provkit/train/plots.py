"""PNG figures of an experiment run and of the toy loops (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

DIVERSITY = ("vocab_diversity", "distinct_1", "distinct_2", "distinct_3", "self_bleu", "tail_recall", "embedding_diversity", "detector_score")


def _plt():
    import matplotlib  # lazy: pyplot costs ~1 s to import and must be set to Agg before it loads

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _by_condition(metrics: pa.Table, column: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """condition -> (generations, mean, min, max) over seeds."""
    rows = metrics.select(["condition", "generation", column]).to_pylist()
    out: dict[str, Any] = {}
    for cond in dict.fromkeys(r["condition"] for r in rows):
        gens = sorted({r["generation"] for r in rows if r["condition"] == cond})
        vals = [[r[column] for r in rows if r["condition"] == cond and r["generation"] == g] for g in gens]
        vals = [np.asarray([v for v in vs if v is not None], dtype=float) for vs in vals]
        out[cond] = (np.asarray(gens), np.array([np.nanmean(v) if v.size else np.nan for v in vals]),
                     np.array([np.nanmin(v) if v.size else np.nan for v in vals]),
                     np.array([np.nanmax(v) if v.size else np.nan for v in vals]))
    return out


def plot_test_perplexity(metrics: pa.Table, path: Path) -> Path:
    """Human-test perplexity vs generation, one line per condition, band = min..max over seeds."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for cond, (g, mean, lo, hi) in _by_condition(metrics, "test_ppl").items():
        ax.plot(g, mean, marker="o", label=cond)
        ax.fill_between(g, lo, hi, alpha=0.2)
    ax.set_xlabel("generation")
    ax.set_ylabel("perplexity on human test blocks")
    ax.set_title("Test perplexity across generations")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_perplexity_histograms(seq: pa.Table, path: Path) -> Path:
    """Per condition: histograms of per-sequence perplexity of each generation's data under the generation-0 model."""
    plt = _plt()
    rows = seq.to_pylist()
    conds = list(dict.fromkeys(r["condition"] for r in rows))
    gens = sorted({r["generation"] for r in rows})
    all_p = np.asarray([r["ppl"] for r in rows], dtype=float)
    all_p = all_p[np.isfinite(all_p) & (all_p > 0)]
    bins = np.logspace(np.log10(all_p.min()), np.log10(all_p.max()), 40) if all_p.size else 10
    fig, axes = plt.subplots(1, len(conds), figsize=(4.2 * len(conds), 3.6), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, cond in zip(axes[0], conds):
        for g in gens:
            p = np.asarray([r["ppl"] for r in rows if r["condition"] == cond and r["generation"] == g], dtype=float)
            p = p[np.isfinite(p)]
            if p.size:
                ax.hist(p, bins=bins, histtype="step", density=True, color=cmap(g / max(1, max(gens))), label=f"gen {g}")
        ax.set_xscale("log")
        ax.set_title(cond)
        ax.set_xlabel("perplexity under generation-0 model")
    axes[0][0].set_ylabel("density")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_diversity(metrics: pa.Table, path: Path) -> Path:
    """Each diversity metric vs generation, one line per condition."""
    plt = _plt()
    cols = [c for c in DIVERSITY if c in metrics.column_names and np.isfinite(np.asarray(metrics.column(c).to_pylist(), dtype=float)).any()]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.4 * len(cols), 3.4), squeeze=False)
    for ax, col in zip(axes[0], cols):
        for cond, (g, mean, lo, hi) in _by_condition(metrics, col).items():
            ax.plot(g, mean, marker=".", label=cond)
            ax.fill_between(g, lo, hi, alpha=0.15)
        ax.set_title(col)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_run(metrics: pa.Table, seq: pa.Table | None, directory: Path) -> list[Path]:
    """All figures of a run into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [plot_test_perplexity(metrics, directory / "test_perplexity.png"), plot_diversity(metrics, directory / "diversity.png")]
    if seq is not None and seq.num_rows:
        paths.insert(1, plot_perplexity_histograms(seq, directory / "perplexity_histograms.png"))
    return paths


def plot_toy(result: Any, path: Path) -> Path:
    """sigma-hat and the mean's squared drift vs generation, against the closed forms (Gaussian)."""
    plt = _plt()
    rows = result.summary()
    g = np.array([r["generation"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    q = np.quantile(result.sigma, [0.1, 0.9], axis=1)
    axes[0].plot(g, [r["sigma_mean"] for r in rows], label="mean of fitted sigma")
    axes[0].fill_between(g, q[0], q[1], alpha=0.2, label="10-90% of repetitions")
    axes[1].plot(g, [r["mean_sq_drift"] for r in rows], label="mean of (mu_n - mu)^2")
    if "sigma_closed_form" in rows[0]:
        axes[0].plot(g, [r["sigma_closed_form"] for r in rows], "k--", label="sigma c_M^n")
        axes[1].plot(g, [r["mean_sq_drift_closed_form"] for r in rows], "k--", label="n sigma^2 / M")
    c = result.config
    axes[0].set_title(f"{c.kind}: fitted sigma (M={c.samples}, {c.repeats} runs)")
    axes[1].set_title("drift of the mean")
    for ax in axes:
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
