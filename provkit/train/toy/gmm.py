"""The Gaussian-mixture toy: a two-component 1-D mixture refitted by EM (warm-started from the previous fit).

The mixture loses its tails and a component as generations pass under
``replace`` -- no closed form, measured: the mixture's mean and std, the
smaller weight, and the tail mass ``P(|x - mean_0| > 3 std_0)`` of each fit.
Under ``accumulate`` EM runs over the whole pool (n*M points at generation n),
so a run's cost grows with generations^2; the EM is a numba kernel (tested
equal to a NumPy one) and the defaults (100 generations, 100 chains) keep a
run to seconds.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import ndtr

from provkit.train.toy.config import ToyConfig
from provkit.train.toy.loop import ToyResult, recursive_fits

Mixture = tuple[np.ndarray, np.ndarray, np.ndarray]  # weights, means, stds: each (R, 2)


@numba.njit(cache=True, nogil=True)
def _em2(x: np.ndarray, w: np.ndarray, m: np.ndarray, s: np.ndarray, iterations: int) -> None:
    """In place: ``iterations`` EM steps for each row of ``x`` (R, N), params (R, 2). One pass over x per step."""
    floor = 1e-6
    norm = 1.0 / math.sqrt(2.0 * math.pi)
    N = x.shape[1]
    for r in range(x.shape[0]):
        w0, w1, m0, m1, s0, s1 = w[r, 0], w[r, 1], m[r, 0], m[r, 1], s[r, 0], s[r, 1]
        for _ in range(iterations):
            n0 = n1 = a0 = a1 = b0 = b1 = 0.0
            c0, c1, h0, h1 = w0 * norm / s0, w1 * norm / s1, -0.5 / (s0 * s0), -0.5 / (s1 * s1)
            for i in range(N):
                xi = x[r, i]
                d0 = c0 * math.exp(h0 * (xi - m0) * (xi - m0))
                d1 = c1 * math.exp(h1 * (xi - m1) * (xi - m1))
                inv = 1.0 / max(d0 + d1, 1e-300)
                g0, g1 = d0 * inv, d1 * inv
                n0 += g0
                n1 += g1
                a0 += g0 * xi
                a1 += g1 * xi
                b0 += g0 * xi * xi
                b1 += g1 * xi * xi
            n0, n1 = max(n0, 1e-12), max(n1, 1e-12)
            w0, w1 = n0 / N, n1 / N
            m0, m1 = a0 / n0, a1 / n1
            s0 = max(math.sqrt(max(b0 / n0 - m0 * m0, 0.0)), floor)
            s1 = max(math.sqrt(max(b1 / n1 - m1 * m1, 0.0)), floor)
        w[r, 0], w[r, 1], m[r, 0], m[r, 1], s[r, 0], s[r, 1] = w0, w1, m0, m1, s0, s1


def fit_gmm2(x: np.ndarray, w: np.ndarray, m: np.ndarray, s: np.ndarray, iterations: int) -> Mixture:
    """Batched EM for 2-component 1-D mixtures: ``x`` (R, M); params (R, 2) as the warm start (not modified).

    E-step: responsibilities ``g_k(x) = w_k N(x; m_k, s_k) / sum_j w_j N(x; m_j, s_j)``; M-step:
    ``w_k = sum g_k / M``, ``m_k = sum g_k x / sum g_k``, ``s_k^2 = sum g_k x^2 / sum g_k - m_k^2`` (floored at 1e-6).
    A numba kernel, one pass over the data per step (accumulate runs EM over n*M points).
    """
    w, m, s = (np.array(p, dtype=np.float64, order="C") for p in (w, m, s))
    _em2(np.ascontiguousarray(x, dtype=np.float64), w, m, s, iterations)
    return w, m, s


def mixture_moments(w: np.ndarray, m: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each chain's mixture."""
    mean = (w * m).sum(axis=1)
    var = (w * (s**2 + m**2)).sum(axis=1) - mean**2
    return mean, np.sqrt(np.clip(var, 0, None))


def run_gmm(cfg: ToyConfig) -> ToyResult:
    """The Gaussian-mixture loop under ``cfg.condition``; ``repeats`` chains at once."""
    rng = np.random.default_rng(cfg.seed)
    R = cfg.repeats
    truth = tuple(np.tile(np.asarray(p, float), (R, 1)) for p in (cfg.gmm_weights, cfg.gmm_means, cfg.gmm_sigmas))
    mean0, std0 = mixture_moments(*truth)
    lo, hi = mean0[:, None] - 3 * std0[:, None], mean0[:, None] + 3 * std0[:, None]

    def draw(params: Mixture, size: int) -> np.ndarray:
        w, m, s = params
        comp = (rng.random((R, size)) < w[:, 1:2]).astype(int)
        return np.take_along_axis(m, comp, 1) + np.take_along_axis(s, comp, 1) * rng.standard_normal((R, size))

    fits = recursive_fits(cfg, draw(truth, cfg.samples), truth, lambda x, prev: fit_gmm2(x, *prev, cfg.em_iterations),
                          draw, lambda k: draw(truth, k), rng)
    moments = [mixture_moments(*f) for f in fits]
    tails = [(w * (ndtr((lo - m) / s) + ndtr((m - hi) / s))).sum(axis=1) for w, m, s in fits]
    return ToyResult(cfg, np.stack([mo[0] for mo in moments]), np.stack([mo[1] for mo in moments]),
                     {"min_weight": np.stack([f[0].min(axis=1) for f in fits]), "tail_mass": np.stack(tails)})
