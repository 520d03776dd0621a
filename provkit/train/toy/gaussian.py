r"""The Gaussian toy (Shumailov et al. 2024, 'Theoretical intuition') under every mixing condition, with closed forms.

Setting. The truth is N(mu, sigma^2). Fit 0 is the truth itself; fit n >= 1 is
``mu_n = mean``, ``sigma_n^2 = sum (x - mu_n)^2 / (N - 1)`` of its training set
(N its size). Fit 1 trains on M originals (fresh draws from the truth); every
later training set is built by the condition from M i.i.d. samples of fit n-1
(:mod:`provkit.train.toy.config`). Write ``d_n = E (mu_n - mu)^2`` and
``v_n = E sigma_n^2`` (expectations over everything; ``d_0 = 0``, ``v_0 = sigma^2``).

Two facts carry every derivation. (a) Given the past, a sample mean of k draws
from N(a, A) is ``a + eps`` with ``E eps = 0``, ``E eps^2 = A/k``, so errors from
different generations are uncorrelated (martingale differences). (b) For a set
made of groups g of sizes k_g, the total sum of squares is the within-group
ones plus ``sum_g k_g (xbar_g - xbar)^2``; for two independent groups of sizes
k, m (k + m = M) from N(a, A) and N(b, B)::

    E SS = (k - 1 + m/M) A + (m - 1 + k/M) B + (k m / M) (a - b)^2.

**replace** (groups: M draws from fit n-1)::

    d_n = d_{n-1} + v_{n-1}/M,  v_n = v_{n-1} = sigma^2   =>   d_n = n sigma^2 / M  (unbounded)
    sigma_n^2 = sigma_{n-1}^2 chi2_{M-1}/(M-1)  =>  E sigma_n = sigma c_M^n,
    c_M = sqrt(2/(M-1)) Gamma(M/2)/Gamma((M-1)/2) < 1   (sigma_n -> 0 almost surely).

**keep-human=F** (k = round(F M) >= 1 fresh originals + m = M - k draws from fit n-1)::

    mu_n - mu = (k/M)(xbar_fresh - mu) + (m/M)(mu_{n-1} - mu + eps),  so
    d_n = k sigma^2/M^2 + (m/M)^2 d_{n-1} + m v_{n-1}/M^2
    v_n = [(k - 1 + m/M) sigma^2 + (m - 1 + k/M) v_{n-1} + (k m/M) d_{n-1}] / (M - 1)

(fact (b) with a = mu, A = sigma^2, b = mu_{n-1}, B = sigma_{n-1}^2). A linear
recursion of (d, v); ``k - 1 + m/M = k (M-1)/M``, and its fixed point is exact::

    d_inf = sigma^2 / (M - m^2/(M-1)),   v_inf = sigma^2 + m d_inf / (M - 1),

finite whenever k >= 1 (m <= M-1). For large M, ``d_inf ~ sigma^2 / (M F (2 - F))``
(``= sigma^2/M / (1 - (1-F)^2)``: each generation forgets a share (1-F)^2 of the
old error and adds sigma^2/M of new one); F = 0.1 gives 5.26 sigma^2/M. The
approximation is poor for small k: M = 20, F = 0.1 gives 0.339 sigma^2 exact vs
0.263. The fitted variance no longer drifts to zero (``v_inf >= sigma^2``, and
every training set holds k fresh originals). Assumptions: k is a fixed count,
the fresh originals are independent of everything before, and the model's
samples are i.i.d. given fit n-1 (so the first m of them are a uniform subset).

**accumulate** (fit n trains on the pool X_1..X_n, X_j = M draws from fit j-1).
With ``xbar_j = mu_{j-1} + eps_j`` the pool mean obeys ``mu_n = mu_{n-1} + eps_n/n``, so::

    mu_n - mu = sum_{j<=n} eps_j / j,      d_n = (1/M) sum_{j=1}^n w_j / j^2,   w_j = v_{j-1},

and from fact (b) over n groups (the between-groups coefficient of eps_l is
(l-1)/l), ``E SS_n = sum_{l<=n} w_l (M - 1/l)``, which gives::

    w_1 = w_2 = sigma^2,   w_{n+1} = w_n (1 - 1/(n (n M - 1)))  (n >= 2),   v_n = w_{n+1}.

So ``d_n <= sigma^2/M sum 1/j^2 < pi^2 sigma^2 / (6 M)`` for every n -- the
bounded error of Gerstgrasser et al. (2024) for this sampling scheme -- and
``v_n`` falls only to ``sigma^2 prod_{n>=2} (1 - 1/(n(nM-1))) ~ sigma^2 (1 - 0.64/M)``.

**accumulate-fixed** (the same pool, but fit n trains on M of its nM points drawn
uniformly without replacement). Write ``mu_n - mu = P_n + u_n`` (P_n: pool mean
error; u_n: the subsample's deviation from the pool mean, ``E u_n^2 = U_n``).
Then ``P_n = P_{n-1} + eta_n/n`` with ``eta_n = u_{n-1} + eps_n`` (u_0 = 0), all
uncorrelated, and a without-replacement subsample has ``E s^2 = S^2_pool``
(divisor N - 1) and mean variance ``S^2_pool/M (1 - 1/n)``. So, with
``w_j = v_{j-1}``, ``e_j = E eta_j^2 = U_{j-1} + w_j/M``::

    d_n = sum_{j<=n} e_j / j^2 + U_n
    w_{n+1} = [(M - 1) sum_{j<=n} w_j + M sum_{j<=n} e_j (j-1)/j] / (n M - 1),   U_n = w_{n+1} (1 - 1/n) / M,

bounded too (``d_n <~ sigma^2/M (1 + 2 pi^2/6)``), a little above accumulate's.

:func:`closed_forms` evaluates these recursions exactly; the tests compare them
with the measured curves over many repetitions, within 4 standard errors.
"""

from __future__ import annotations

import math

import numpy as np

from provkit.train.config import Condition
from provkit.train.toy.config import ToyConfig, kept_originals, parse_toy_condition
from provkit.train.toy.loop import ToyResult, recursive_fits


def sigma_ratio(samples: int) -> float:
    """``c_M = E sqrt(chi2_{M-1} / (M-1))``."""
    m = samples
    return math.sqrt(2.0 / (m - 1)) * math.exp(math.lgamma(m / 2) - math.lgamma((m - 1) / 2))


def expected_sigma(sigma: float, samples: int, n: int) -> float:
    """``E sigma_n = sigma * c_M^n`` (replace)."""
    return sigma * sigma_ratio(samples) ** n


def closed_forms(sigma: float, samples: int, generations: int, condition: str | Condition = "replace") -> tuple[np.ndarray, np.ndarray]:
    """``(d, v)``: ``d[n] = E (mu_n - mu)^2`` and ``v[n] = E sigma_n^2`` for n = 0..generations (module docstring)."""
    cond = condition if isinstance(condition, Condition) else parse_toy_condition(condition)
    M, s2, G = samples, sigma**2, generations
    d, v = np.zeros(G + 1), np.full(G + 1, s2)
    if cond.mix == "replace":
        d = np.arange(G + 1) * s2 / M
    elif cond.mix == "keep-human":
        k = kept_originals(cond, M)
        m = M - k
        for n in range(1, G + 1):
            d[n] = k * s2 / M**2 + (m / M) ** 2 * d[n - 1] + m * v[n - 1] / M**2
            v[n] = ((k - 1 + m / M) * s2 + (m - 1 + k / M) * v[n - 1] + k * m / M * d[n - 1]) / (M - 1)
    elif cond.mix == "accumulate":
        w = np.full(G + 2, s2)  # w[j] = v[j-1], j = 1..G+1
        for j in range(2, G + 1):
            w[j + 1] = w[j] * (1 - 1 / (j * (j * M - 1)))
        j = np.arange(1, G + 1)
        d[1:] = np.cumsum(w[1:G + 1] / j**2) / M
        v[1:] = w[2:G + 2]
    elif cond.mix == "accumulate-fixed":
        w, U, e = np.full(G + 2, s2), np.zeros(G + 1), np.zeros(G + 1)
        sum_w = sum_e = 0.0
        for j in range(1, G + 1):
            e[j] = U[j - 1] + w[j] / M
            sum_w += w[j]
            sum_e += e[j] * (j - 1) / j
            w[j + 1] = ((M - 1) * sum_w + M * sum_e) / (j * M - 1)
            U[j] = w[j + 1] * (1 - 1 / j) / M
            d[j] = np.sum(e[1:j + 1] / np.arange(1, j + 1) ** 2) + U[j]
        v[1:] = w[2:G + 2]
    else:
        raise ValueError(f"no closed form for condition {cond.name!r}")
    return d, v


def expected_mean_sq_drift(sigma: float, samples: int, n: int, condition: str | Condition = "replace") -> float:
    """``E (mu_n - mu)^2``: ``n sigma^2 / M`` under replace; bounded under the others (module docstring)."""
    if isinstance(condition, str) and condition == "replace":
        return n * sigma**2 / samples
    return float(closed_forms(sigma, samples, n, condition)[0][n])


def expected_variance(sigma: float, samples: int, n: int, condition: str | Condition = "replace") -> float:
    """``E sigma_n^2`` of the fitted (unbiased) variance under a condition."""
    return float(closed_forms(sigma, samples, n, condition)[1][n])


def keep_human_limit(sigma: float, samples: int, fraction: float) -> tuple[float, float]:
    """keep-human's fixed point ``(d_inf, v_inf) = (sigma^2 / (M - m^2/(M-1)), sigma^2 + m d_inf/(M-1))``."""
    M = samples
    m = M - kept_originals(Condition(f"keep-human={fraction}", "keep-human", fraction), M)
    d_inf = sigma**2 / (M - m**2 / (M - 1))
    return d_inf, sigma**2 + m * d_inf / (M - 1)


class _PoolMoments:
    """accumulate's fit without rereading the pool: running sums of the columns appended since the last call.

    The pool is append-only, so generation n adds only its M new columns. Sums are
    of ``x - shift`` (``shift`` = the true mean) so that the variance does not
    cancel catastrophically.
    """

    def __init__(self, shift: float) -> None:
        self.shift, self.n, self.s1, self.s2 = shift, 0, 0.0, 0.0

    def __call__(self, x: np.ndarray, _previous: object) -> tuple[np.ndarray, np.ndarray]:
        new = x[:, self.n:] - self.shift
        self.s1, self.s2, self.n = self.s1 + new.sum(axis=1), self.s2 + (new * new).sum(axis=1), x.shape[1]
        mean = self.s1 / self.n
        return mean + self.shift, np.sqrt(np.clip(self.s2 - self.n * mean * mean, 0, None) / (self.n - 1))


def _moments(x: np.ndarray, _previous: object) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=1), x.std(axis=1, ddof=1)


def run_gaussian(cfg: ToyConfig) -> ToyResult:
    """Fit-sample-refit with M samples per generation, ``repeats`` chains at once, under ``cfg.condition``."""
    rng = np.random.default_rng(cfg.seed)
    R, M = cfg.repeats, cfg.samples

    def draw(params: tuple[np.ndarray, np.ndarray], size: int) -> np.ndarray:
        mu, sigma = params
        return mu[:, None] + sigma[:, None] * rng.standard_normal((R, size))

    truth = (np.full(R, cfg.mu), np.full(R, cfg.sigma))
    fit = _PoolMoments(cfg.mu) if cfg.parsed_condition.mix == "accumulate" else _moments
    fits = recursive_fits(cfg, draw(truth, M), truth, fit, draw, lambda k: draw(truth, k), rng)
    d, v = closed_forms(cfg.sigma, M, cfg.generations, cfg.condition)
    forms = {"mean_sq_drift_closed_form": d, "variance_closed_form": v}
    if cfg.parsed_condition.mix == "replace":
        forms["sigma_closed_form"] = np.array([expected_sigma(cfg.sigma, M, n) for n in range(cfg.generations + 1)])
    return ToyResult(cfg, np.stack([f[0] for f in fits]), np.stack([f[1] for f in fits]), closed_forms=forms)
