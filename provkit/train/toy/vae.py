"""The VAE toy: a small VAE on scikit-learn's 8x8 digits, retrained generation after generation on its own samples.

* Data: ``sklearn.datasets.load_digits`` (1,797 images, 17 grey levels scaled
  to [0, 1]; shipped with scikit-learn, no download). ``samples = 0`` uses all
  of them; a smaller N takes a seeded random subset.
* Model: MLP encoder and decoder (64 -> hidden -> hidden -> latent, and back),
  a Gaussian pixel likelihood with fixed ``pixel_sigma`` (0.1 on [0, 1]), the
  usual KL to N(0, I). A fresh model per generation, trained for a fixed
  number of Adam steps whatever the size of its training set, so every
  condition gets the same compute (accumulate sees each point fewer times).
* Samples: z ~ N(0, I), image = the decoder's mean (the picture the VAE draws;
  adding the pixel noise would only add salt-and-pepper). Each generation
  draws as many samples as there are originals; they are both what is
  measured and the next generation's raw material.
* Judge: an MLP classifier (one hidden layer of 64 ReLU units) trained once on
  a stratified 80% of all 1,797 digits; its held-out accuracy is reported.
* Per generation: pixel variance of the samples relative to the originals
  (sum over pixels of the per-pixel variance); the share of each digit class
  among the samples as the judge labels them, its entropy (bits; log2 10 =
  3.32 is uniform) and the smallest share; and the Frechet distance between
  originals and samples in the judge's hidden-layer feature space (the FID
  recipe with this small MLP standing in for Inception). Row 0 describes the
  originals themselves (variance ratio 1, Frechet distance 0); the Frechet
  distance between two random halves of the originals is reported as a floor.

Generation 1 is the same under every condition (it trains on the originals
with the same seed), so it is trained once per seed and shared; later
generations use common random numbers across conditions. Deterministic for a
seed and a thread count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from provkit.core.lazy import lazy_import
from provkit.core.progress import Advance, quiet_advance
from provkit.train.toy.config import ToyConfig, VaeSettings
from provkit.train.toy.loop import recursive_fits

stats = lazy_import("scipy.stats")
torch = lazy_import("torch")

CLASSES = 10
GRID = 100  # samples kept per generation (first seed) for the picture
METRICS = ("var_ratio", "class_entropy", "min_class_share", "frechet")


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def load_originals(samples: int, seed: int) -> np.ndarray:
    """``(N, 64)`` float32 digits in [0, 1]: all of them (``samples`` = 0 or >= 1,797) or a seeded subset."""
    from sklearn.datasets import load_digits  # lazy: scikit-learn costs ~1.5 s to import

    x = (load_digits().data / 16.0).astype(np.float32)
    if 0 < samples < len(x):
        x = x[np.sort(np.random.default_rng(_seed(seed, 7)).choice(len(x), samples, replace=False))]
    return x


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``|m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))`` for feature rows ``a``, ``b``.

    ``tr (C_a C_b)^(1/2)`` is computed as the sum of square roots of the
    eigenvalues of the PSD matrix ``C_a^(1/2) C_b C_a^(1/2)``: stable for the
    singular covariances of collapsed samples.
    """
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, q = np.linalg.eigh(ca)
    root_a = (q * np.sqrt(np.clip(w, 0, None))) @ q.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cb @ root_a), 0, None)).sum()
    return float(max(0.0, ((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * cross))


class DigitJudge:
    """The classifier that labels samples, trained once on a stratified 80% of the real digits."""

    def __init__(self, hidden: int = 64) -> None:
        from sklearn.datasets import load_digits  # lazy: scikit-learn costs ~1.5 s to import
        from sklearn.model_selection import train_test_split
        from sklearn.neural_network import MLPClassifier

        data = load_digits()
        x, y = (data.data / 16.0).astype(np.float32), data.target
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
        self.model = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=2000, random_state=0).fit(xtr, ytr)
        self.accuracy = float(self.model.score(xte, yte))

    def features(self, x: np.ndarray) -> np.ndarray:
        """The hidden layer's ReLU activations."""
        return np.maximum(x @ self.model.coefs_[0] + self.model.intercepts_[0], 0.0)

    def shares(self, x: np.ndarray) -> np.ndarray:
        return np.bincount(self.model.predict(x), minlength=CLASSES)[:CLASSES] / len(x)

    def measure(self, samples: np.ndarray, originals: np.ndarray, original_features: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """The per-generation metrics of ``samples`` against the originals, and the class shares."""
        p = self.shares(samples)
        nz = p[p > 0]
        return {
            "var_ratio": float(samples.var(axis=0).sum() / originals.var(axis=0).sum()),
            "class_entropy": float(-(nz * np.log2(nz)).sum()),
            "min_class_share": float(p.min()),
            "frechet": frechet_distance(original_features, self.features(samples)),
        }, p


class DigitVAE:
    """Gaussian VAE: ``encoder`` maps x to (mu, log var) of q(z|x), ``decoder`` maps z to pixel means.

    Two ``nn.Sequential`` held by a plain class rather than an ``nn.Module`` subclass, so that
    importing this module does not import torch (:mod:`provkit.core.lazy`); ``parameters``
    lists the encoder's then the decoder's, the order an ``nn.Module`` registering them would give.
    """

    def __init__(self, s: VaeSettings, pixels: int = 64) -> None:
        nn = torch.nn
        self.latent, self.pixel_sigma = s.latent, s.pixel_sigma
        self.encoder = nn.Sequential(nn.Linear(pixels, s.hidden), nn.ReLU(), nn.Linear(s.hidden, s.hidden), nn.ReLU(),
                                     nn.Linear(s.hidden, 2 * s.latent))
        self.decoder = nn.Sequential(nn.Linear(s.latent, s.hidden), nn.ReLU(), nn.Linear(s.hidden, s.hidden), nn.ReLU(),
                                     nn.Linear(s.hidden, pixels), nn.Sigmoid())

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Negative ELBO per image (up to a constant): Gaussian reconstruction + KL(q(z|x) || N(0, I))."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        rec = ((self.decoder(z) - x) ** 2).sum(-1) / (2 * self.pixel_sigma**2)
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
        return (rec + kl).mean()

    def parameters(self) -> list[torch.nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def eval(self) -> DigitVAE:
        self.encoder.eval()
        self.decoder.eval()
        return self


def train_vae(data: np.ndarray, s: VaeSettings, seed: int) -> DigitVAE:
    """A fresh VAE trained on ``data`` (N, 64) for ``s.steps`` Adam steps on minibatches drawn with replacement."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitVAE(s, data.shape[1])
        opt = torch.optim.Adam(model.parameters(), lr=s.lr, foreach=True)
        x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        for _ in range(s.steps):
            loss = model.loss(x[torch.randint(0, len(x), (s.batch_size,))])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def sample_vae(model: DigitVAE, n: int, seed: int) -> np.ndarray:
    """``n`` images: the decoder's mean at z ~ N(0, I)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return model.decoder(torch.randn(n, model.latent, generator=g)).numpy()


@dataclass
class VaeResult:
    """One condition over seeds: metrics ``(G+1, seeds)``, class shares ``(G+1, seeds, 10)``, and sample grids."""

    config: ToyConfig
    metrics: dict[str, np.ndarray]
    shares: np.ndarray
    grids: np.ndarray  # (G+1, GRID, 64): row 0 originals, row n samples of generation n (first seed)
    reference: dict[str, float] = field(default_factory=dict)

    @property
    def condition(self) -> str:
        return self.config.condition

    def summary(self) -> list[dict[str, Any]]:
        """Per generation: the mean over seeds of each metric, ``<metric>_ci`` (95% t half-width; nan for one seed), shares."""
        rows = []
        seeds = self.shares.shape[1]
        t = stats.t.ppf(0.975, seeds - 1) if seeds > 1 else float("nan")
        for n in range(self.shares.shape[0]):
            row: dict[str, Any] = {"generation": n, "seeds": seeds}
            for key in METRICS:
                vals = self.metrics[key][n]
                row[key] = float(vals.mean())
                row[f"{key}_ci"] = float(t * vals.std(ddof=1) / np.sqrt(seeds)) if seeds > 1 else float("nan")
            row["class_shares"] = [round(float(p), 4) for p in self.shares[n].mean(axis=0)]
            rows.append(row)
        return rows


Fit = tuple[Any, np.ndarray, int]  # (model or None, its samples (1, N, 64), generation)


class _SeedChains:
    """Everything one seed's chains share: the originals, their features, and generation 1 (trained once)."""

    def __init__(self, cfg: ToyConfig, seed: int, judge: DigitJudge, progress: Advance) -> None:
        self.cfg, self.seed, self.judge, self.progress = cfg, seed, judge, progress
        self.originals = load_originals(cfg.samples, seed)
        self.features = judge.features(self.originals)
        half = np.random.default_rng(_seed(seed, 5)).permutation(len(self.originals))
        self.floor = frechet_distance(self.features[half[::2]], self.features[half[1::2]])
        self._first: Fit | None = None

    def fit(self, data: np.ndarray, previous: Fit) -> Fit:
        """Train generation ``previous[2] + 1`` on ``data`` (1, N, 64) and draw its N samples."""
        n = previous[2] + 1
        if n == 1 and self._first is not None:
            return self._first
        model = train_vae(data[0], self.cfg.vae, _seed(self.seed, n, 1))
        out = (model, sample_vae(model, len(self.originals), _seed(self.seed, n, 2))[None], n)
        if n == 1:
            self._first = out
        self.progress(1)
        return out

    def run(self, condition: str) -> tuple[list[dict[str, float]], np.ndarray, np.ndarray]:
        """One chain: per generation 0..G the metrics, the class shares (G+1, 10) and the first GRID images."""
        rng = np.random.default_rng(_seed(self.seed, 3))  # the same stream under every condition
        x0 = self.originals[None]
        rows: list[dict[str, float]] = []
        shares, grids = [], []

        def fresh(k: int) -> np.ndarray:
            return x0[:, rng.choice(x0.shape[1], size=k, replace=False)]

        def record(n: int, current: Fit) -> None:
            values, p = self.judge.measure(current[1][0], self.originals, self.features)
            rows.append(values)
            shares.append(p)
            grids.append(current[1][0, :GRID])

        start = (None, x0, 0)
        record(0, start)
        recursive_fits(self.cfg.with_condition(condition), x0, start, self.fit, lambda current, m: current[1][:, :m],
                       fresh, rng, record)
        return rows, np.stack(shares), np.stack(grids)


def run_vae(cfg: ToyConfig, conditions: Sequence[str], progress: Advance = quiet_advance,
            judge: DigitJudge | None = None) -> list[VaeResult]:
    """Every condition over seeds ``cfg.seed .. cfg.seed + repeats - 1``; ``progress(1)`` after each VAE trained.

    Trains ``repeats * (1 + len(conditions) * (generations - 1))`` VAEs.
    """
    judge = judge or DigitJudge(cfg.vae.classifier_hidden)
    G, S = cfg.generations, cfg.repeats
    metrics = {c: {k: np.zeros((G + 1, S)) for k in METRICS} for c in conditions}
    shares = {c: np.zeros((G + 1, S, CLASSES)) for c in conditions}
    grids: dict[str, np.ndarray] = {}
    floors = []
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.vae.threads)
    try:
        for si in range(S):
            chains = _SeedChains(cfg, cfg.seed + si, judge, progress)
            floors.append(chains.floor)
            for cond in conditions:
                rows, p, g = chains.run(cond)
                for n, row in enumerate(rows):
                    for key in METRICS:
                        metrics[cond][key][n, si] = row[key]
                shares[cond][:, si] = p
                if si == 0:
                    grids[cond] = g
    finally:
        torch.set_num_threads(threads)
    reference = {"classifier_accuracy": judge.accuracy, "frechet_real_halves": float(np.mean(floors)),
                 "entropy_uniform": float(np.log2(CLASSES))}
    return [VaeResult(cfg.with_condition(c), metrics[c], shares[c], grids[c], reference) for c in conditions]
