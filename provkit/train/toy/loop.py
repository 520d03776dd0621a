"""The loop every toy shares: fit, sample, build the next training set under a condition, refit.

Arrays carry the independent chains first: ``(R, M)`` for the 1-D toys (R
repetitions at once), ``(1, N, 64)`` for one VAE chain. Generation 1 fits the
originals; generation n >= 2 fits the set :func:`training_set` builds from the
M samples of fit n-1 (see :mod:`provkit.train.toy.config` for the conditions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from provkit.train.config import Condition
from provkit.train.toy.config import ToyConfig, kept_originals


def sample_without_replacement(rng: np.random.Generator, rows: int, population: int, size: int) -> np.ndarray:
    """``(rows, size)`` indices, each row a uniform random ``size``-subset of ``range(population)``.

    Floyd's algorithm, vectorised over rows: ``size`` steps of O(rows) work plus
    a ``rows x population`` boolean mask, instead of ``rows x population`` random
    keys. The subset is uniform; the order within a row is not (callers only
    use the set).
    """
    if not 0 <= size <= population:
        raise ValueError(f"cannot draw {size} of {population} without replacement")
    chosen = np.zeros((rows, population), dtype=bool)
    out = np.empty((rows, size), dtype=np.int64)
    r = np.arange(rows)
    for i, j in enumerate(range(population - size, population)):
        t = rng.integers(0, j + 1, size=rows)
        t = np.where(chosen[r, t], j, t)
        chosen[r, t] = True
        out[:, i] = t
    return out


def take_rows(data: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``data[r, idx[r]]`` for every chain r (trailing feature axes kept)."""
    return np.take_along_axis(data, idx.reshape(idx.shape + (1,) * (data.ndim - 2)), axis=1)


class Pool:
    """accumulate's pool: the originals and every generation's samples, preallocated ``(R, capacity, ...)``."""

    def __init__(self, first: np.ndarray, capacity: int) -> None:
        self._data = np.empty((first.shape[0], capacity) + first.shape[2:], dtype=first.dtype)
        self._n = 0
        self.add(first)

    def add(self, x: np.ndarray) -> None:
        self._data[:, self._n:self._n + x.shape[1]] = x
        self._n += x.shape[1]

    @property
    def data(self) -> np.ndarray:
        return self._data[:, :self._n]


def training_set(cond: Condition, new: np.ndarray, pool: Pool | None, fresh: Callable[[int], np.ndarray],
                 rng: np.random.Generator) -> np.ndarray:
    """The training set of generation n >= 2 from ``new`` = the M samples of fit n-1 (``(R, M, ...)``).

    ``fresh(k)`` returns k originals per chain; ``pool`` (accumulate conditions)
    holds everything so far and gets ``new`` added here.
    """
    m = new.shape[1]
    if cond.mix == "replace":
        return new
    if cond.mix == "keep-human":
        k = kept_originals(cond, m)
        return np.concatenate([fresh(k), new[:, :m - k]], axis=1)
    assert pool is not None, "accumulate conditions need a pool"
    pool.add(new)
    if cond.mix == "accumulate":
        return pool.data
    if cond.mix == "accumulate-fixed":
        data = pool.data
        return take_rows(data, sample_without_replacement(rng, data.shape[0], data.shape[1], m))
    raise ValueError(f"toy loop: no training set for condition {cond.name!r}")


def recursive_fits(cfg: ToyConfig, first: np.ndarray, start: Any, fit: Callable[[np.ndarray, Any], Any],
                   draw: Callable[[Any, int], np.ndarray], fresh: Callable[[int], np.ndarray],
                   rng: np.random.Generator, on_fit: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``[start, fit_1, ..., fit_G]``: fit_1 on ``first`` (the originals), fit_n on the mix built from ``draw(fit_{n-1}, M)``.

    ``fit(data, previous)`` may warm-start from ``previous``; ``on_fit(n, fit_n)``
    is called after each fit (progress, per-generation measurements).
    """
    cond = cfg.parsed_condition
    m = first.shape[1]
    pool = Pool(first, cfg.generations * m) if cond.mix.startswith("accumulate") else None
    current = fit(first, start)
    fits = [start, current]
    if on_fit:
        on_fit(1, current)
    for n in range(2, cfg.generations + 1):
        current = fit(training_set(cond, draw(current, m), pool, fresh, rng), current)
        fits.append(current)
        if on_fit:
            on_fit(n, current)
    return fits


@dataclass
class ToyResult:
    """Per generation (rows 0..G; row 0 = the true distribution) x repetition (columns) estimates of a 1-D toy."""

    config: ToyConfig
    mu: np.ndarray  # fitted mean (gaussian) / mixture mean (gmm)
    sigma: np.ndarray  # fitted std (gaussian) / mixture std (gmm)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    closed_forms: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (G+1,) expected values

    @property
    def condition(self) -> str:
        return self.config.condition

    def summary(self) -> list[dict[str, float]]:
        """One row per generation: means over repetitions (with standard errors) and the closed forms."""
        rows = []
        r = self.mu.shape[1]
        drift = (self.mu - self.mu[0]) ** 2
        var = self.sigma**2
        for n in range(self.mu.shape[0]):
            row = {
                "generation": n,
                "sigma_mean": float(self.sigma[n].mean()),
                "variance_mean": float(var[n].mean()),
                "variance_se": float(var[n].std(ddof=1) / np.sqrt(r)) if r > 1 else float("nan"),
                "mean_sq_drift": float(drift[n].mean()),
                "mean_sq_drift_se": float(drift[n].std(ddof=1) / np.sqrt(r)) if r > 1 else float("nan"),
            }
            for key, arr in self.closed_forms.items():
                row[key] = float(arr[n])
            for key, arr in self.extra.items():
                row[key] = float(arr[n].mean())
            rows.append(row)
        return rows
