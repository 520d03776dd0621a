"""Hashed word and character n-gram features (scikit-learn ``HashingVectorizer``).

A text becomes ``[w ; c]``: ``w`` the L2-normalised counts of its word
n-grams (words and punctuation marks as tokens) hashed into ``2**n_features_log2``
buckets, ``c`` the same for character n-grams inside word boundaries
(``analyzer="char_wb"``).  The hashing is stateless — no vocabulary to fit or
save — so the saved detector is its settings plus the linear weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from provkit.filters.detector.params import DetectorError, Progress, dataclass_from_params, params_of

WORD_PATTERN = r"(?u)\w+|[^\w\s]"
CHUNK = 512


@dataclass(frozen=True)
class NgramFeaturizer:
    """Settings of the hashed n-gram features (all JSON-serialisable)."""

    kind: ClassVar[str] = "ngram"
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    n_features_log2: int = 18
    lowercase: bool = False

    def _vectorizers(self) -> list[HashingVectorizer]:
        common: dict[str, Any] = {
            "n_features": 2**self.n_features_log2,
            "alternate_sign": False,
            "norm": "l2",
            "lowercase": self.lowercase,
            "dtype": float,
        }
        return [
            HashingVectorizer(analyzer="word", ngram_range=self.word_ngrams, token_pattern=WORD_PATTERN, **common),
            HashingVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams, **common),
        ]

    @property
    def n_features(self) -> int:
        return 2 * 2**self.n_features_log2

    def transform(self, texts: Sequence[str], progress: Progress | None = None) -> sp.csr_matrix:
        """Sparse ``(len(texts), n_features)`` matrix of hashed word + char n-gram frequencies."""
        vectorizers = self._vectorizers()
        blocks = []
        for start in range(0, len(texts), CHUNK):
            chunk = list(texts[start : start + CHUNK])
            blocks.append(sp.hstack([v.transform(chunk) for v in vectorizers], format="csr"))
            if progress:
                progress(len(chunk))
        if not blocks:
            return sp.csr_matrix((0, self.n_features))
        return sp.vstack(blocks, format="csr")

    def to_params(self) -> dict[str, Any]:
        return params_of(self)

    @classmethod
    def from_params(cls, params: Any, where: str = "featurizer") -> "NgramFeaturizer":
        feat = dataclass_from_params(cls, params, where)
        if not 10 <= feat.n_features_log2 <= 24:
            raise DetectorError(f"{where}.n_features_log2: must be between 10 and 24, got {feat.n_features_log2}")
        for name in ("word_ngrams", "char_ngrams"):
            lo, hi = getattr(feat, name)
            if not 1 <= lo <= hi <= 8:
                raise DetectorError(f"{where}.{name}: need 1 <= low <= high <= 8, got [{lo}, {hi}]")
        return feat

