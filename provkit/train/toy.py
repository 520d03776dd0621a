"""The theory's toy loops (Shumailov et al. 2024, section 'Theoretical intuition').

Gaussian: start from N(mu, sigma^2); each generation draws M samples from the
current fit and refits ``mu_n = mean``, ``sigma_n^2 = sum (x - mu_n)^2 / (M - 1)``.
Because the unbiased variance is a martingale (E sigma_n^2 = sigma^2),

    E (mu_n - mu)^2 = n sigma^2 / M                            (drift of the mean)
    sigma_n^2 = sigma_{n-1}^2 * chi2_{M-1} / (M - 1)  =>  E sigma_n = sigma c_M^n,
    c_M = sqrt(2 / (M - 1)) Gamma(M/2) / Gamma((M - 1)/2) < 1  (sigma-hat -> 0 a.s.)

GMM: the same loop with a two-component 1-D Gaussian mixture refitted by EM
(warm-started from the previous fit); the mixture loses its tails and
components as generations pass -- no closed form, measured.

Every repetition runs in parallel as one NumPy array (shape ``repeats x M``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from provkit.errors import ConfigError

TOY_KINDS = ("gaussian", "gmm")


@dataclass(frozen=True)
class ToyConfig:
    kind: str = "gaussian"
    samples: int = 100  # M
    generations: int = 200
    repeats: int = 2000
    seed: int = 0
    mu: float = 0.0
    sigma: float = 1.0
    gmm_means: tuple[float, float] = (-2.0, 2.0)
    gmm_sigmas: tuple[float, float] = (1.0, 1.0)
    gmm_weights: tuple[float, float] = (0.5, 0.5)
    em_iterations: int = 8

    def __post_init__(self) -> None:
        if self.kind not in TOY_KINDS:
            raise ConfigError(f"toy kind: unknown {self.kind!r}; expected gaussian or gmm")
        if self.samples < 2 or self.generations < 1 or self.repeats < 1:
            raise ConfigError("--samples must be >= 2, --generations and --repeats >= 1")


@dataclass
class ToyResult:
    """Per generation (rows 0..n) x repetition (columns) estimates."""

    config: ToyConfig
    mu: np.ndarray  # fitted mean (gaussian) / mixture mean (gmm)
    sigma: np.ndarray  # fitted std (gaussian) / mixture std (gmm)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self) -> list[dict[str, float]]:
        """One row per generation: means over repetitions and the closed forms."""
        c = self.config
        rows = []
        for n in range(self.mu.shape[0]):
            row = {
                "generation": n,
                "sigma_mean": float(self.sigma[n].mean()),
                "mean_sq_drift": float(((self.mu[n] - self.mu[0]) ** 2).mean()),
            }
            if c.kind == "gaussian":
                row["sigma_closed_form"] = expected_sigma(c.sigma, c.samples, n)
                row["mean_sq_drift_closed_form"] = expected_mean_sq_drift(c.sigma, c.samples, n)
            for key, arr in self.extra.items():
                row[key] = float(arr[n].mean())
            rows.append(row)
        return rows


def sigma_ratio(samples: int) -> float:
    """``c_M = E sqrt(chi2_{M-1} / (M-1))``."""
    m = samples
    return math.sqrt(2.0 / (m - 1)) * math.exp(math.lgamma(m / 2) - math.lgamma((m - 1) / 2))


def expected_sigma(sigma: float, samples: int, n: int) -> float:
    """``E sigma_n = sigma * c_M^n``."""
    return sigma * sigma_ratio(samples) ** n


def expected_mean_sq_drift(sigma: float, samples: int, n: int) -> float:
    """``E (mu_n - mu)^2 = n sigma^2 / M``."""
    return n * sigma**2 / samples


def run_gaussian(cfg: ToyConfig) -> ToyResult:
    """Fit-sample-refit with M samples per generation, ``repeats`` chains at once."""
    rng = np.random.default_rng(cfg.seed)
    mu = np.full(cfg.repeats, cfg.mu)
    sigma = np.full(cfg.repeats, cfg.sigma)
    mus, sigmas = [mu.copy()], [sigma.copy()]
    for _ in range(cfg.generations):
        x = mu[:, None] + sigma[:, None] * rng.standard_normal((cfg.repeats, cfg.samples))
        mu = x.mean(axis=1)
        sigma = x.std(axis=1, ddof=1)
        mus.append(mu)
        sigmas.append(sigma)
    return ToyResult(cfg, np.stack(mus), np.stack(sigmas))


def _normal_pdf(x: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def fit_gmm2(x: np.ndarray, w: np.ndarray, m: np.ndarray, s: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched EM for 2-component 1-D mixtures: ``x`` (R, M); params (R, 2) as the warm start."""
    floor = 1e-6
    for _ in range(iterations):
        dens = w[:, None, :] * _normal_pdf(x[:, :, None], m[:, None, :], s[:, None, :])  # (R, M, 2)
        resp = dens / dens.sum(axis=2, keepdims=True).clip(min=1e-300)
        nk = resp.sum(axis=1).clip(min=1e-12)  # (R, 2)
        w = nk / x.shape[1]
        m = (resp * x[:, :, None]).sum(axis=1) / nk
        s = np.sqrt((resp * (x[:, :, None] - m[:, None, :]) ** 2).sum(axis=1) / nk).clip(min=floor)
    return w, m, s


def run_gmm(cfg: ToyConfig) -> ToyResult:
    """The Gaussian-mixture loop; tracks mixture mean/std, the smaller weight and the tail mass P(|x - mu0| > 3 sigma0)."""
    rng = np.random.default_rng(cfg.seed)
    R = cfg.repeats
    w = np.tile(np.asarray(cfg.gmm_weights, float), (R, 1))
    m = np.tile(np.asarray(cfg.gmm_means, float), (R, 1))
    s = np.tile(np.asarray(cfg.gmm_sigmas, float), (R, 1))

    def moments(w, m, s):
        mean = (w * m).sum(axis=1)
        var = (w * (s**2 + m**2)).sum(axis=1) - mean**2
        return mean, np.sqrt(np.clip(var, 0, None))

    mean0, std0 = moments(w, m, s)

    def tail(w, m, s):
        from scipy.special import ndtr

        lo, hi = mean0[:, None] - 3 * std0[:, None], mean0[:, None] + 3 * std0[:, None]
        return (w * (ndtr((lo - m) / s) + ndtr((m - hi) / s))).sum(axis=1)

    mus, sigmas, wmins, tails = [mean0], [std0], [w.min(axis=1)], [tail(w, m, s)]
    for _ in range(cfg.generations):
        comp = (rng.random((R, cfg.samples)) < w[:, 1:2]).astype(int)
        x = np.take_along_axis(m, comp, 1) + np.take_along_axis(s, comp, 1) * rng.standard_normal((R, cfg.samples))
        w, m, s = fit_gmm2(x, w, m, s, cfg.em_iterations)
        mean, std = moments(w, m, s)
        mus.append(mean)
        sigmas.append(std)
        wmins.append(w.min(axis=1))
        tails.append(tail(w, m, s))
    return ToyResult(cfg, np.stack(mus), np.stack(sigmas), {"min_weight": np.stack(wmins), "tail_mass": np.stack(tails)})


def run_toy(cfg: ToyConfig) -> ToyResult:
    if cfg.kind == "gaussian":
        return run_gaussian(cfg)
    if cfg.kind == "gmm":
        return run_gmm(cfg)
    raise ConfigError(f"toy kind: unknown {cfg.kind!r}; expected gaussian or gmm")
