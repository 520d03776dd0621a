"""Hashed word and character n-gram features plus *novelty* against human text (the ``ngram`` kind).

A text ``x`` becomes ``[w ; c ; z]``:

* ``w``: its word n-grams (words and punctuation marks as tokens), ``c``: its
  character n-grams inside word boundaries (``analyzer="char_wb"``), each
  hashed into ``2**n_features_log2`` buckets (scikit-learn
  ``HashingVectorizer``, stateless), with sublinear term frequency
  ``1 + log(tf)`` and L2-normalised rows (``sublinear_tf``);
* ``z``: for each character n-gram order ``n`` in ``novelty_ngrams`` the
  **novelty** ``u_n(x)`` — the share of ``x``'s character n-grams (with
  multiplicity, every digit read as ``0``, hashed into ``2**novelty_features_log2`` buckets) that occur
  in *no* human training document (no other group of them, for a training text)::

      u_n(x) = sum_{g in G_n(x), g not in H_n} tf(g) / sum_{g in G_n(x)} tf(g)

  ``H_n`` = the n-grams of the human training documents.  A human training
  text is scored leave-one-group-out (its own document — every text of its
  group — removed from ``H_n``), so that its novelty has the distribution a
  fresh human text's has.  Each ``u_n`` is standardised with the mean and
  standard deviation of the training rows.

Why novelty: the n-gram weights a linear head learns are the n-grams of the
decodings it was trained on; text of another decoding (sampling writes
non-words that beam search never does) falls on unweighted buckets and
scores like the intercept.  Model text of *any* decoding holds strings that
no human wrote, so the novelty features carry across decodings
(benchmarks/detector.py: trained on deterministic decodings, tested on
sampled ones).

The fitted state — ``H_n`` as packed bit sets and the standardisation — is
saved beside the weights (:meth:`arrays`); the hashing needs no vocabulary.
Detectors saved before novelty existed load with ``sublinear_tf = False`` and
no novelty, as they were trained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np
import scipy.sparse as sp

from provkit.filters.detector.params import DetectorError, Progress, dataclass_from_params, params_of

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer

WORD_PATTERN = r"(?u)\w+|[^\w\s]"
DIGIT = re.compile(r"\d")
CHUNK = 512
LEGACY_PARAMS = {"sublinear_tf": False, "novelty_ngrams": [0, 0]}  # what a detector saved without these keys used


@dataclass
class NgramFeaturizer:
    """Settings of the hashed n-gram features (JSON) and the fitted novelty state (arrays)."""

    kind: ClassVar[str] = "ngram"
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    n_features_log2: int = 18
    lowercase: bool = False
    sublinear_tf: bool = True
    novelty_ngrams: tuple[int, int] = (3, 5)  # (0, 0): no novelty features
    novelty_features_log2: int = 20
    _seen: Any = field(default=None, init=False, repr=False, compare=False)  # (k, 2**log2 / 8) uint8 bit sets
    _scale: Any = field(default=None, init=False, repr=False, compare=False)  # (k, 2) float64: mean, std

    # ---------------------------------------------------------------- settings

    @property
    def novelty_orders(self) -> tuple[int, ...]:
        lo, hi = self.novelty_ngrams
        return tuple(range(lo, hi + 1)) if lo > 0 else ()

    @property
    def n_features(self) -> int:
        return 2 * 2**self.n_features_log2 + len(self.novelty_orders)

    @property
    def fitted(self) -> bool:
        return not self.novelty_orders or self._seen is not None

    def _vectorizers(self) -> list[HashingVectorizer]:
        from sklearn.feature_extraction.text import HashingVectorizer  # lazy: scikit-learn costs ~1.5 s to import

        common: dict[str, Any] = {
            "n_features": 2**self.n_features_log2,
            "alternate_sign": False,
            "norm": None if self.sublinear_tf else "l2",
            "lowercase": self.lowercase,
            "dtype": float,
        }
        return [
            HashingVectorizer(analyzer="word", ngram_range=self.word_ngrams, token_pattern=WORD_PATTERN, **common),
            HashingVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams, **common),
        ]

    def _novelty_counts(self, texts: list[str], n: int) -> sp.csr_matrix:
        from sklearn.feature_extraction.text import HashingVectorizer  # lazy: scikit-learn costs ~1.5 s to import

        texts = [DIGIT.sub("0", t) for t in texts]  # digits are interchangeable: 0x7f and 0x3a are alike
        return HashingVectorizer(analyzer="char", ngram_range=(n, n), n_features=2**self.novelty_features_log2,
                                 alternate_sign=False, norm=None, lowercase=False, dtype=np.float64).transform(texts)

    # ---------------------------------------------------------------- features

    def _ngram_block(self, texts: list[str]) -> sp.csr_matrix:
        from sklearn.preprocessing import normalize  # lazy: scikit-learn costs ~1.5 s to import

        blocks = []
        for v in self._vectorizers():
            x = v.transform(texts)
            if self.sublinear_tf:
                x.data = 1.0 + np.log(x.data)
                x = normalize(x)
            blocks.append(x)
        return sp.hstack(blocks, format="csr")

    def _novelty(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), k)`` raw novelty ``u_n`` against the fitted human n-gram sets."""
        out = np.zeros((len(texts), len(self.novelty_orders)))
        for j, n in enumerate(self.novelty_orders):
            counts = self._novelty_counts(texts, n)
            seen = np.unpackbits(self._seen[j], count=2**self.novelty_features_log2).astype(bool)
            out[:, j] = _unseen_share(counts, seen[counts.indices].astype(np.float64))
        return out

    def _standardised(self, u: np.ndarray) -> np.ndarray:
        return (u - self._scale[:, 0]) / self._scale[:, 1]

    def transform(self, texts: Sequence[str], progress: Progress | None = None) -> sp.csr_matrix:
        """Sparse ``(len(texts), n_features)`` matrix ``[w ; c ; z]`` (module docstring)."""
        if not self.fitted:
            raise DetectorError("ngram featurizer: the novelty features are not fitted (train the detector first)")
        blocks = []
        for start in range(0, len(texts), CHUNK):
            chunk = list(texts[start : start + CHUNK])
            parts = [self._ngram_block(chunk)]
            if self.novelty_orders:
                parts.append(sp.csr_matrix(self._standardised(self._novelty(chunk))))
            blocks.append(sp.hstack(parts, format="csr"))
            if progress:
                progress(len(chunk))
        if not blocks:
            return sp.csr_matrix((0, self.n_features))
        return sp.vstack(blocks, format="csr")

    def fit_transform(self, texts: Sequence[str], labels: np.ndarray, train_idx: np.ndarray,
                      groups: Sequence[Any], progress: Progress | None = None) -> sp.csr_matrix:
        """Fit the novelty state on the human texts among ``train_idx``; return the features of all ``texts``.

        Training human texts get their leave-one-group-out novelty (module docstring); the
        standardisation is the mean / std over the ``train_idx`` rows.
        """
        texts = list(texts)
        orders = self.novelty_orders
        if not orders:
            return self.transform(texts, progress)
        labels, train_idx = np.asarray(labels), np.asarray(train_idx, dtype=np.int64)
        human = train_idx[labels[train_idx] == 0]
        if len(human) == 0:
            raise DetectorError("ngram featurizer: the novelty features need human training texts")
        _, group_of = np.unique(np.asarray([str(groups[i]) for i in human]), return_inverse=True)
        members = sp.csr_matrix((np.ones(len(human)), (group_of.ravel(), np.arange(len(human)))))
        u = np.zeros((len(texts), len(orders)))
        seen_sets = []
        for j, n in enumerate(orders):
            counts = self._novelty_counts(texts, n)
            present = (members @ (counts[human] > 0).astype(np.float64) > 0).astype(np.float64)  # group x bucket
            df = np.asarray(present.sum(axis=0)).ravel()
            seen_sets.append(np.packbits(df > 0))
            # a human training row's own group holds each of its n-grams: seen elsewhere means df >= 2
            is_human = np.zeros(len(texts), dtype=bool)
            is_human[human] = True
            row_of_entry = np.repeat(np.arange(len(texts)), np.diff(counts.indptr))
            need = np.where(is_human[row_of_entry], 2, 1)
            u[:, j] = _unseen_share(counts, (df[counts.indices] >= need).astype(np.float64))
        mean, std = u[train_idx].mean(axis=0), u[train_idx].std(axis=0)
        self._seen = np.stack(seen_sets)
        self._scale = np.stack([mean, np.where(std > 1e-12, std, 1.0)], axis=1)
        return sp.hstack([self._ngram_block_all(texts, progress), sp.csr_matrix(self._standardised(u))], format="csr")

    def _ngram_block_all(self, texts: list[str], progress: Progress | None) -> sp.csr_matrix:
        blocks = []
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start : start + CHUNK]
            blocks.append(self._ngram_block(chunk))
            if progress:
                progress(len(chunk))
        return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, 2 * 2**self.n_features_log2))

    # ---------------------------------------------------------------- persistence

    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted state saved beside the weights (empty without novelty)."""
        if not self.novelty_orders:
            return {}
        if self._seen is None:
            raise DetectorError("ngram featurizer: the novelty features are not fitted; nothing to save")
        return {"novelty_seen": self._seen, "novelty_scale": self._scale}

    def array_shapes(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Name -> (dtype, shape) of :meth:`arrays`, for checking a saved file."""
        k = len(self.novelty_orders)
        if not k:
            return {}
        return {"novelty_seen": ("uint8", (k, 2**self.novelty_features_log2 // 8)), "novelty_scale": ("float64", (k, 2))}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if self.novelty_orders:
            scale = np.asarray(arrays["novelty_scale"], dtype=np.float64)
            if not np.isfinite(scale).all() or (scale[:, 1] <= 0).any():
                raise DetectorError("ngram featurizer: novelty_scale must be finite with positive standard deviations")
            self._seen, self._scale = np.asarray(arrays["novelty_seen"], dtype=np.uint8), scale

    def to_params(self) -> dict[str, Any]:
        return params_of(self)

    @classmethod
    def from_params(cls, params: Any, where: str = "featurizer") -> "NgramFeaturizer":
        if isinstance(params, dict):
            params = {**LEGACY_PARAMS, **params}
        feat = dataclass_from_params(cls, params, where)
        if not 10 <= feat.n_features_log2 <= 24:
            raise DetectorError(f"{where}.n_features_log2: must be between 10 and 24, got {feat.n_features_log2}")
        if not 10 <= feat.novelty_features_log2 <= 24:
            raise DetectorError(f"{where}.novelty_features_log2: must be between 10 and 24, got "
                                f"{feat.novelty_features_log2}")
        for name in ("word_ngrams", "char_ngrams"):
            lo, hi = getattr(feat, name)
            if not 1 <= lo <= hi <= 8:
                raise DetectorError(f"{where}.{name}: need 1 <= low <= high <= 8, got [{lo}, {hi}]")
        lo, hi = feat.novelty_ngrams
        if (lo, hi) != (0, 0) and not 1 <= lo <= hi <= 8:
            raise DetectorError(f"{where}.novelty_ngrams: need [0, 0] (none) or 1 <= low <= high <= 8, got [{lo}, {hi}]")
        return feat


def _unseen_share(counts: sp.csr_matrix, known: np.ndarray) -> np.ndarray:
    """Per row: the count mass on buckets where ``known`` (aligned with ``counts.data``) is 0."""
    unseen = sp.csr_matrix((counts.data * (1.0 - known), counts.indices, counts.indptr), shape=counts.shape)
    total = np.asarray(counts.sum(axis=1)).ravel()
    return np.asarray(unseen.sum(axis=1)).ravel() / np.maximum(total, 1.0)
