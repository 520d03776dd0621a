"""One detector interface over three feature kinds: features -> linear score -> Platt calibration.

A detector maps a text ``x`` to features ``f(x)`` (hashed n-grams, language
model statistics, or a sentence embedding), then to a linear score
``s(x) = w . f(x) + b`` learned by L2-regularised logistic regression
(dense features are standardised first; the scaling is folded into ``w`` and
``b``), then to a calibrated probability of model origin by Platt scaling

    P(model | x) = 1 / (1 + exp(-(a * s(x) + c)))

with ``a, c`` fitted by logistic regression of the labels on *out-of-fold*
scores (stratified k-fold cross-validation on the training part), so the
calibration never sees scores of texts the weights were fitted on.

Training (:func:`train_detector`) holds out a seeded, stratified
``test_fraction`` of the labelled texts before anything is fitted and reports
:class:`~provkit.filters.detector.metrics.DetectorMetrics` on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from provkit.errors import ConfigError
from provkit.filters.detector.metrics import DetectorMetrics, detector_metrics
from provkit.filters.detector.embedding import EmbeddingFeaturizer
from provkit.filters.detector.lm import LMFeaturizer
from provkit.filters.detector.ngram import NgramFeaturizer
from provkit.filters.detector.params import DetectorError, Progress

KINDS = ("ngram", "lm", "embedding")
MIN_PER_CLASS = 4


class Featurizer(Protocol):
    """Turns texts into a feature matrix; its settings round-trip through JSON."""

    kind: str

    @property
    def n_features(self) -> int: ...

    def transform(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray | sp.csr_matrix: ...

    def to_params(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DetectorConfig:
    """How to train a detector.

    ``kind``: ngram | lm | embedding.  ``model``: a local model directory for
    ``lm`` / ``embedding`` (None = the default model of that kind).
    ``C``: inverse L2 strength of the logistic regression.  ``cv_folds``: folds
    for the out-of-fold Platt calibration.  ``threshold``: P(model) at or above
    which a text is called model text.
    """

    kind: str = "ngram"
    model: str | None = None
    seed: int = 0
    test_fraction: float = 0.2
    C: float = 1.0
    cv_folds: int = 5
    threshold: float = 0.5
    max_length: int = 256
    batch_size: int = 32

    def validate(self) -> "DetectorConfig":
        if self.kind not in KINDS:
            raise ConfigError(f"--kind {self.kind!r}: unknown detector kind; choose one of {', '.join(KINDS)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"--test-fraction {self.test_fraction}: must be strictly between 0 and 1")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"--threshold {self.threshold}: must be strictly between 0 and 1")
        if self.C <= 0 or self.cv_folds < 2 or self.max_length < 2 or self.batch_size < 1:
            raise ConfigError("detector config: need C > 0, cv_folds >= 2, max_length >= 2, batch_size >= 1")
        return self


@dataclass(frozen=True)
class LinearHead:
    """``P(model|x) = sigmoid(platt_a * (coef . f(x) + intercept) + platt_b)``."""

    coef: np.ndarray
    intercept: float
    platt_a: float
    platt_b: float

    def decision(self, features: np.ndarray | sp.spmatrix) -> np.ndarray:
        """The linear score ``s(x) = coef . f(x) + intercept`` per row."""
        return np.asarray(features @ self.coef, dtype=np.float64).ravel() + self.intercept

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """Platt scaling of linear scores into P(model)."""
        z = self.platt_a * np.asarray(scores, dtype=np.float64) + self.platt_b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def _classifier(dense: bool, C: float, seed: int) -> Any:
    lr = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    return make_pipeline(StandardScaler(), lr) if dense else lr


def _fold_scaling(clf: Any, dense: bool) -> tuple[np.ndarray, float]:
    """Weights and intercept on the raw features (the standardisation folded in)."""
    if not dense:
        return clf.coef_.ravel().astype(np.float64), float(clf.intercept_[0])
    scaler, lr = clf[0], clf[-1]
    w = lr.coef_.ravel() / scaler.scale_
    return w.astype(np.float64), float(lr.intercept_[0] - np.dot(w, scaler.mean_))


def fit_linear_head(features: np.ndarray | sp.spmatrix, y: np.ndarray, C: float, folds: int, seed: int) -> LinearHead:
    """Logistic regression on ``features`` plus Platt calibration on its out-of-fold scores."""
    dense = not sp.issparse(features)
    folds = max(2, min(folds, int(np.bincount(y, minlength=2).min())))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    oof = cross_val_predict(_classifier(dense, C, seed), features, y, cv=cv, method="decision_function")
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(oof.reshape(-1, 1), y)
    clf = _classifier(dense, C, seed).fit(features, y)
    coef, intercept = _fold_scaling(clf, dense)
    return LinearHead(coef, intercept, float(platt.coef_[0, 0]), float(platt.intercept_[0]))


@dataclass
class Detector:
    """A trained human-vs-model detector: ``predict_proba(texts)`` is the calibrated P(model)."""

    featurizer: Featurizer
    head: LinearHead
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.featurizer.kind

    def decision_function(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        return self.head.decision(self.featurizer.transform(list(texts), progress))

    def predict_proba(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Calibrated P(model | text) for each text, float64 in [0, 1]."""
        if len(texts) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.head.calibrate(self.decision_function(texts, progress))

    def predict(self, texts: Sequence[str], threshold: float | None = None) -> np.ndarray:
        """1 (model) where P(model) >= threshold, else 0 (human)."""
        t = self.threshold if threshold is None else threshold
        return (self.predict_proba(texts) >= t).astype(np.int64)

    def evaluate(self, texts: Sequence[str], labels: Sequence[int], progress: Progress | None = None,
                 threshold: float | None = None) -> DetectorMetrics:
        p = self.predict_proba(texts, progress)
        return detector_metrics(np.asarray(labels), p, self.threshold if threshold is None else threshold)


@dataclass(frozen=True)
class TrainedDetector:
    """A detector and its figures on the held-out part of its training data."""

    detector: Detector
    heldout: DetectorMetrics
    n_train: int
    n_test: int


def make_featurizer(config: DetectorConfig) -> Featurizer:
    """The featurizer of ``config.kind``, loading its model where the kind needs one."""
    if config.kind == "ngram":
        return NgramFeaturizer()
    if config.kind == "lm":
        return LMFeaturizer.for_model(config.model, max_length=config.max_length, batch_size=config.batch_size)
    return EmbeddingFeaturizer.for_model(config.model, batch_size=config.batch_size, max_seq_length=config.max_length)


def _check_labels(labels: np.ndarray) -> None:
    counts = np.bincount(labels, minlength=2)
    if len(counts) > 2 or counts.min() < MIN_PER_CLASS:
        raise DetectorError(
            f"training needs at least {MIN_PER_CLASS} human (origin=human) and {MIN_PER_CLASS} model "
            f"(origin=model) records; found {counts[0]} human and {counts[1] if len(counts) > 1 else 0} model"
        )


def train_detector(
    texts: Sequence[str],
    labels: Sequence[int],
    config: DetectorConfig = DetectorConfig(),
    progress: Progress | None = None,
) -> TrainedDetector:
    """Fit a detector on labelled texts (0 = human, 1 = model) and report on a held-out split.

    The split is stratified and seeded by ``config.seed``; features are computed
    once for all texts (``progress`` counts them).
    """
    config.validate()
    y = np.asarray(labels, dtype=np.int64)
    if len(y) != len(texts):
        raise DetectorError(f"{len(texts)} texts but {len(y)} labels")
    _check_labels(y)
    index = np.arange(len(y))
    train_idx, test_idx = train_test_split(index, test_size=config.test_fraction, stratify=y,
                                           random_state=config.seed)
    if np.bincount(y[test_idx], minlength=2).min() == 0:
        raise DetectorError("the held-out split lacks one class; raise --test-fraction or add records")
    featurizer = make_featurizer(config)
    features = featurizer.transform(list(texts), progress)
    head = fit_linear_head(features[train_idx], y[train_idx], config.C, config.cv_folds, config.seed)
    detector = Detector(featurizer, head, config.threshold)
    p = head.calibrate(head.decision(features[test_idx]))
    heldout = detector_metrics(y[test_idx], p, config.threshold)
    detector.info = {
        "config": asdict(config),
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "heldout": heldout.to_json(),
    }
    return TrainedDetector(detector, heldout, len(train_idx), len(test_idx))
