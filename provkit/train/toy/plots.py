"""PNG figures of the toy loops: every condition of a kind side by side (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from provkit.train.plots import _plt
from provkit.train.toy.loop import ToyResult
from provkit.train.toy.vae import VaeResult

BAND = (0.1, 0.9)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_toy(results: ToyResult | Sequence[ToyResult], path: Path) -> Path:
    """One panel per quantity, one colour per condition; dashed lines are the closed forms (Gaussian)."""
    plt = _plt()
    results = [results] if isinstance(results, ToyResult) else list(results)
    c = results[0].config
    gaussian = c.kind == "gaussian"
    panels = (["sigma", "mean_sq_drift", "variance"] if gaussian else ["sigma", "min_weight", "tail_mass"])
    titles = {"sigma": "fitted sigma (mean; band 10-90% of runs)", "mean_sq_drift": "E (mu_n - mu)^2 (log scale)",
              "variance": "E sigma_n^2 (fitted, unbiased)", "min_weight": "smaller mixture weight (mean)",
              "tail_mass": "tail mass P(|x - mean0| > 3 std0) (mean)"}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8))
    for i, res in enumerate(results):
        colour = f"C{i}"
        rows = res.summary()
        g = np.array([r["generation"] for r in rows])
        for ax, key in zip(axes, panels):
            if key == "sigma":
                q = np.quantile(res.sigma, BAND, axis=1)
                ax.plot(g, [r["sigma_mean"] for r in rows], color=colour, label=res.condition)
                ax.fill_between(g, q[0], q[1], color=colour, alpha=0.12)
                if "sigma_closed_form" in rows[0]:
                    ax.plot(g, [r["sigma_closed_form"] for r in rows], "--", color="k", lw=1, label="sigma c_M^n")
            elif key == "mean_sq_drift":
                ax.plot(g[1:], [r["mean_sq_drift"] for r in rows[1:]], color=colour, label=res.condition)
                ax.plot(g[1:], [r["mean_sq_drift_closed_form"] for r in rows[1:]], "--", color=colour, lw=1)
                ax.set_yscale("log")
            elif key == "variance":
                ax.plot(g, [r["variance_mean"] for r in rows], color=colour, label=res.condition)
                ax.plot(g, [r["variance_closed_form"] for r in rows], "--", color=colour, lw=1)
            else:
                ax.plot(g, [r[key] for r in rows], color=colour, label=res.condition)
    for ax, key in zip(axes, panels):
        ax.set_title(titles[key], fontsize=9)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if gaussian:
        axes[1].plot([], [], "--", color="grey", lw=1, label="closed form")
        axes[1].legend(fontsize=7)
    fig.suptitle(f"{c.kind}: M={c.samples}, {c.repeats} runs per condition", fontsize=10)
    return _save(fig, path)


def plot_vae_metrics(results: Sequence[VaeResult], path: Path) -> Path:
    """Variance ratio, class entropy, Frechet distance and smallest class share per generation; band = 95% CI over seeds."""
    plt = _plt()
    titles = {"var_ratio": "pixel variance / originals'", "class_entropy": "class entropy (bits; 3.32 = uniform)",
              "frechet": "Frechet distance (judge features)", "min_class_share": "smallest class share"}
    fig, axes = plt.subplots(1, len(titles), figsize=(4.2 * len(titles), 3.6))
    for i, res in enumerate(results):
        rows = res.summary()
        g = np.array([r["generation"] for r in rows])
        for ax, key in zip(axes, titles):
            mean = np.array([r[key] for r in rows])
            ci = np.array([r[f"{key}_ci"] for r in rows])
            ax.plot(g, mean, marker=".", color=f"C{i}", label=res.condition)
            if np.isfinite(ci).any():
                ax.fill_between(g, mean - ci, mean + ci, color=f"C{i}", alpha=0.15)
    for ax, title in zip(axes, titles.values()):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    seeds = results[0].shares.shape[1]
    fig.suptitle(f"vae on digits: {seeds} seed{'s' * (seeds > 1)}" + (", band = 95% CI" if seeds > 1 else ""), fontsize=10)
    return _save(fig, path)


def plot_vae_classes(results: Sequence[VaeResult], path: Path) -> Path:
    """Per condition: the share of each digit class among the samples (stacked, mean over seeds)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.4), sharey=True, squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, res in zip(axes[0], results):
        p = res.shares.mean(axis=1)  # (G+1, 10)
        g = np.arange(p.shape[0])
        ax.stackplot(g, p.T, colors=[cmap(k) for k in range(p.shape[1])], labels=[str(k) for k in range(p.shape[1])])
        ax.set_title(res.condition, fontsize=9)
        ax.set_xlabel("generation")
        ax.set_xlim(0, g[-1])
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("class share (judge's labels)")
    axes[0][-1].legend(fontsize=6, ncol=2, loc="upper right", title="digit", title_fontsize=6)
    return _save(fig, path)


def mosaic(images: np.ndarray, columns: int, scale: int = 1) -> np.ndarray:
    """``(k, 64)`` images in [0, 1] -> one 2-D array, ``columns`` wide, 1-pixel gaps, upscaled by ``scale``."""
    k = len(images)
    rows = -(-k // columns)
    out = np.zeros((rows * 9 - 1, columns * 9 - 1))
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        out[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = img.reshape(8, 8)
    return np.kron(out, np.ones((scale, scale))) if scale > 1 else out


def save_grid(images: np.ndarray, path: Path, columns: int = 10) -> Path:
    """A PNG of ``images`` as a grid (dark ink on white, like the digits)."""
    _plt().imsave(path, mosaic(np.clip(images, 0, 1), columns, scale=4), cmap="gray_r", vmin=0, vmax=1)
    return path


def plot_vae_grids(results: Sequence[VaeResult], path: Path, tiles: int = 25) -> Path:
    """Rows = conditions, columns = generations (at most 11, evenly spread): the first ``tiles`` samples of each."""
    plt = _plt()
    last = results[0].grids.shape[0] - 1
    gens = sorted(set(np.linspace(0, last, min(last + 1, 11)).round().astype(int)))
    side = int(np.sqrt(tiles))
    fig, axes = plt.subplots(len(results), len(gens), figsize=(1.25 * len(gens), 1.35 * len(results) + 0.3), squeeze=False)
    for row, res in zip(axes, results):
        for ax, n in zip(row, gens):
            ax.imshow(mosaic(np.clip(res.grids[n][:side * side], 0, 1), side), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(res.condition, fontsize=7)
    for ax, n in zip(axes[0], gens):
        ax.set_title("originals" if n == 0 else f"gen {n}", fontsize=7)
    return _save(fig, path)
