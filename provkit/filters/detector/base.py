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
``test_fraction`` of the labelled texts before anything is fitted, grouped by
``content_hash`` (every copy of a text lands on the same side, so an exact
duplicate never leaks from training into the held-out part; the folds of the
out-of-fold calibration are grouped the same way).  On the held-out part it
reports :class:`~provkit.filters.detector.metrics.DetectorMetrics` and measures
the :class:`~provkit.filters.detector.calibration.Calibration` stored with the
detector: thresholds at target false-positive rates from the held-out human
scores, the probability map (``platt`` or ``isotonic``, fitted on the
out-of-fold scores), and window thresholds for span evidence.

The ``zeroshot`` kind has no weights to fit: its head is the identity on one
criterion, and "training" is calibration only (human records suffice).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np
import scipy.sparse as sp

from provkit.errors import ConfigError
from provkit.filters.detector.calibration import (
    FPR_TARGETS,
    Calibration,
    ProbabilityMap,
    Threshold,
    build_calibration,
    check_targets,
)
from provkit.filters.detector.embedding import EmbeddingFeaturizer
from provkit.filters.detector.lm import LMFeaturizer
from provkit.filters.detector.metrics import DetectorMetrics, detector_metrics
from provkit.filters.detector.ngram import NgramFeaturizer
from provkit.filters.detector.params import DetectorError, Progress
from provkit.filters.detector.spans import WINDOW_STRIDE, WINDOW_WORDS, window_calibration
from provkit.filters.detector.zeroshot import CRITERIA, ZeroShotFeaturizer
from provkit.provenance import content_hash

KINDS = ("ngram", "lm", "embedding", "zeroshot")
TRAINED_PROBABILITIES = ("platt", "isotonic")
MIN_PER_CLASS = 4
MAX_WINDOW_TEXTS = 2000  # human held-out texts whose windows calibrate the span thresholds
DEFAULT_C = {"ngram": 16.0}
HUMAN_QUANTILE_THRESHOLD = 0.99  # the default probability threshold of a human-quantile map (about 1 % FPR)


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

    ``kind``: ngram | lm | embedding | zeroshot.  ``model``: a local model directory for
    ``lm`` / ``embedding`` / ``zeroshot`` (None = the default model of that kind).
    ``reference_model``, ``criterion``: the zeroshot kind's second model and score.
    ``C``: inverse L2 strength of the logistic regression (None: the kind's default, :attr:`inverse_l2`).  ``cv_folds``: folds
    for the out-of-fold calibration.  ``threshold``: P(model) at or above
    which a text is called model text (the figures at a fixed probability).
    ``probability``: platt | isotonic (zeroshot on human text only: the human quantile,
    and the default ``threshold`` 0.5 becomes 0.99).  ``fpr_targets``: the false-positive rates
    the calibration finds thresholds for.  ``window_words`` / ``window_stride``:
    the sliding windows of span evidence.
    """

    kind: str = "ngram"
    model: str | None = None
    seed: int = 0
    test_fraction: float = 0.2
    C: float | None = None
    cv_folds: int = 5
    threshold: float = 0.5
    max_length: int = 256
    batch_size: int = 32
    reference_model: str | None = None
    criterion: str = "binoculars"
    probability: str = "platt"
    fpr_targets: tuple[float, ...] = FPR_TARGETS
    window_words: int = WINDOW_WORDS
    window_stride: int = WINDOW_STRIDE

    @property
    def inverse_l2(self) -> float:
        """``C``, or the kind's default: 16 for ngram (unit-norm rows over 2**19 hashed features need
        little regularisation; benchmarks/detector.py), 1 for the standardised dense kinds."""
        return self.C if self.C is not None else DEFAULT_C.get(self.kind, 1.0)

    def validate(self) -> "DetectorConfig":
        if self.kind not in KINDS:
            raise ConfigError(f"--kind {self.kind!r}: unknown detector kind; choose one of {', '.join(KINDS)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"--test-fraction {self.test_fraction}: must be strictly between 0 and 1")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"--threshold {self.threshold}: must be strictly between 0 and 1")
        if self.inverse_l2 <= 0 or self.cv_folds < 2 or self.max_length < 2 or self.batch_size < 1:
            raise ConfigError("detector config: need C > 0, cv_folds >= 2, max_length >= 2, batch_size >= 1")
        if self.probability not in TRAINED_PROBABILITIES:
            raise ConfigError(f"--probability {self.probability!r}: choose platt or isotonic")
        if self.criterion not in CRITERIA:
            raise ConfigError(f"--criterion {self.criterion!r}: choose one of {', '.join(CRITERIA)}")
        if self.reference_model is not None and self.kind != "zeroshot":
            raise ConfigError("--reference-model: only the zeroshot kind uses a second model")
        if self.window_words < 1 or self.window_stride < 1:
            raise ConfigError("detector config: need window_words >= 1 and window_stride >= 1")
        try:
            check_targets(self.fpr_targets)
        except DetectorError as exc:
            raise ConfigError(str(exc)) from None
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
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn costs ~1.5 s to import
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lr = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    return make_pipeline(StandardScaler(), lr) if dense else lr


def _fold_scaling(clf: Any, dense: bool) -> tuple[np.ndarray, float]:
    """Weights and intercept on the raw features (the standardisation folded in)."""
    if not dense:
        return clf.coef_.ravel().astype(np.float64), float(clf.intercept_[0])
    scaler, lr = clf[0], clf[-1]
    w = lr.coef_.ravel() / scaler.scale_
    return w.astype(np.float64), float(lr.intercept_[0] - np.dot(w, scaler.mean_))


def fit_head(features: np.ndarray | sp.spmatrix, y: np.ndarray, C: float, folds: int, seed: int,
             groups: np.ndarray | None = None) -> tuple[LinearHead, np.ndarray]:
    """Logistic regression on ``features``, Platt-calibrated on its out-of-fold scores; returns (head, oof scores).

    ``groups`` (content hashes): the folds keep each group on one side.
    """
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn costs ~1.5 s to import
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    dense = not sp.issparse(features)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    per_class = [len(np.unique(groups[y == c])) for c in (0, 1)]
    folds = max(2, min(folds, *per_class))
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    oof = cross_val_predict(_classifier(dense, C, seed), features, y, cv=cv, groups=groups,
                            method="decision_function")
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(oof.reshape(-1, 1), y)
    clf = _classifier(dense, C, seed).fit(features, y)
    coef, intercept = _fold_scaling(clf, dense)
    return LinearHead(coef, intercept, float(platt.coef_[0, 0]), float(platt.intercept_[0])), np.asarray(oof)


def fit_linear_head(features: np.ndarray | sp.spmatrix, y: np.ndarray, C: float, folds: int, seed: int) -> LinearHead:
    """Logistic regression on ``features`` plus Platt calibration on its out-of-fold scores."""
    return fit_head(features, y, C, folds, seed)[0]


@dataclass
class Detector:
    """A trained human-vs-model detector: ``predict_proba(texts)`` is the calibrated P(model).

    ``calibration``: thresholds at target FPRs and the probability map (None for
    detectors saved before calibrations existed: Platt on the head then).
    ``fingerprint``: sha256 of its ``detector.json`` once saved or loaded.
    """

    featurizer: Featurizer
    head: LinearHead
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None
    fingerprint: str | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        return self.featurizer.kind

    def decision_function(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """The raw score ``s(x)`` of each text (what thresholds compare against)."""
        if len(texts) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.head.decision(self.featurizer.transform(list(texts), progress))

    def probability(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores mapped to ``detector_score`` by the calibration's probability map."""
        if self.calibration is not None:
            return self.calibration.probability.apply(raw)
        return self.head.calibrate(raw)

    def predict_proba(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Calibrated P(model | text) for each text, float64 in [0, 1]."""
        return self.probability(self.decision_function(texts, progress))

    def predict(self, texts: Sequence[str], threshold: float | None = None) -> np.ndarray:
        """1 (model) where P(model) >= threshold, else 0 (human)."""
        t = self.threshold if threshold is None else threshold
        return (self.predict_proba(texts) >= t).astype(np.int64)

    def threshold_at(self, fpr: float, windows: bool = False) -> Threshold:
        """The calibrated threshold at target ``fpr`` (document or window level)."""
        if self.calibration is None:
            raise DetectorError("this detector has no calibration (saved by an older provkit); run "
                                "`prov detector calibrate DET DS` on human data first")
        return self.calibration.at(fpr, windows)

    def evaluate(self, texts: Sequence[str], labels: Sequence[int], progress: Progress | None = None,
                 threshold: float | None = None) -> DetectorMetrics:
        p = self.predict_proba(texts, progress)
        return detector_metrics(np.asarray(labels), p, self.threshold if threshold is None else threshold)


@dataclass(frozen=True)
class TrainedDetector:
    """A detector and its figures on the held-out part of its training data."""

    detector: Detector
    heldout: DetectorMetrics | None  # None when the held-out part has no model text (zeroshot on human text)
    n_train: int
    n_test: int


def make_featurizer(config: DetectorConfig) -> Featurizer:
    """The featurizer of ``config.kind``, loading its model where the kind needs one."""
    if config.kind == "ngram":
        return NgramFeaturizer()
    if config.kind == "lm":
        return LMFeaturizer.for_model(config.model, max_length=config.max_length, batch_size=config.batch_size)
    if config.kind == "zeroshot":
        return ZeroShotFeaturizer.for_models(config.model, config.reference_model, config.criterion,
                                             max_length=config.max_length, batch_size=min(config.batch_size, 16))
    return EmbeddingFeaturizer.for_model(config.model, batch_size=config.batch_size, max_seq_length=config.max_length)


def _check_labels(labels: np.ndarray, need_model: bool = True) -> None:
    counts = np.bincount(labels, minlength=2)
    if len(counts) > 2 or counts[0] < MIN_PER_CLASS or (need_model and counts[1] < MIN_PER_CLASS):
        what = f"{MIN_PER_CLASS} human (origin=human) and {MIN_PER_CLASS} model (origin=model)" if need_model \
            else f"{MIN_PER_CLASS} human (origin=human)"
        raise DetectorError(
            f"training needs at least {what} records; found {counts[0]} human and "
            f"{counts[1] if len(counts) > 1 else 0} model"
        )


def grouped_split(groups: Sequence[str], labels: np.ndarray, test_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train_idx, test_idx)`` holding out ``ceil(test_fraction * n)`` of each class's groups.

    A group (equal ``content_hash``) takes the label of its first record and lands
    wholly on one side; each side keeps at least one group of a class that has two.
    """
    y = np.asarray(labels, dtype=np.int64)
    uniq, first, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_index=True,
                                     return_inverse=True)
    group_label = y[first]
    rng = np.random.default_rng(seed)
    held = np.zeros(len(uniq), dtype=bool)
    for c in (0, 1):
        g = np.flatnonzero(group_label == c)
        if len(g) < 2:
            continue
        n = min(max(1, int(np.ceil(test_fraction * len(g) - 1e-9))), len(g) - 1)
        held[rng.permutation(g)[:n]] = True
    test = held[inverse.ravel()]
    return np.flatnonzero(~test), np.flatnonzero(test)


def _subset(values: Sequence[Any] | None, idx: np.ndarray) -> list[Any] | None:
    return None if values is None else [values[i] for i in idx]


def calibrate_scores(detector: Detector, texts: Sequence[str], labels: np.ndarray, raw: np.ndarray, *,
                     probability: ProbabilityMap | str, targets: Sequence[float], source: str,
                     datasets: Sequence[str | None] | None = None, window_words: int = WINDOW_WORDS,
                     window_stride: int = WINDOW_STRIDE, recalibrated_from: str | None = None,
                     info: dict[str, Any] | None = None) -> Calibration:
    """The calibration of ``detector`` measured on ``texts`` (labels, raw scores already computed).

    Window thresholds come from the windows of (at most ``MAX_WINDOW_TEXTS``) human texts.
    """
    human = [t for t, y in zip(texts, labels) if y == 0][:MAX_WINDOW_TEXTS]
    windows = window_calibration(human, detector.decision_function, targets, window_words, window_stride)
    return build_calibration(raw, labels, texts, targets=targets, probability=probability, datasets=datasets,
                             source=source, windows=windows, recalibrated_from=recalibrated_from, info=info)


def train_detector(
    texts: Sequence[str],
    labels: Sequence[int],
    config: DetectorConfig = DetectorConfig(),
    progress: Progress | None = None,
    groups: Sequence[str] | None = None,
    datasets: Sequence[str | None] | None = None,
) -> TrainedDetector:
    """Fit a detector on labelled texts (0 = human, 1 = model), report and calibrate on a held-out split.

    The split is stratified, seeded by ``config.seed`` and grouped by ``groups``
    (default: the content hash of each text); features are computed once for
    all texts (``progress`` counts them).  ``datasets``: each text's dataset
    name, recorded as the calibration's domain.
    """
    config.validate()
    y = np.asarray(labels, dtype=np.int64)
    if len(y) != len(texts):
        raise DetectorError(f"{len(texts)} texts but {len(y)} labels")
    zeroshot = config.kind == "zeroshot"
    _check_labels(y, need_model=not zeroshot)
    hashes = np.asarray([content_hash(t) for t in texts] if groups is None else list(groups), dtype=object)
    has_model = int(y.sum()) >= MIN_PER_CLASS
    if has_model:
        train_idx, test_idx = grouped_split(hashes, y, config.test_fraction, config.seed)
        if np.bincount(y[test_idx], minlength=2).min() == 0:
            raise DetectorError("the held-out split lacks one class; raise --test-fraction or add records")
    else:  # zeroshot on human text only: nothing is fitted, every record calibrates
        train_idx, test_idx = np.zeros(0, dtype=np.int64), np.arange(len(y))
    featurizer = make_featurizer(config)
    fit = getattr(featurizer, "fit_transform", None)  # a featurizer with state fitted on the training split
    features = (fit(list(texts), y, train_idx, hashes, progress) if fit is not None and len(train_idx)
                else featurizer.transform(list(texts), progress))
    if zeroshot:
        head = LinearHead(np.ones(1), 0.0, 1.0, 0.0)
        train_raw = head.decision(features[train_idx])
        probability = (ProbabilityMap.fit(config.probability, train_raw, y[train_idx]) if has_model
                       else "human-quantile")
    else:
        head, oof = fit_head(features[train_idx], y[train_idx], config.inverse_l2, config.cv_folds, config.seed,
                             groups=hashes[train_idx])
        probability = (ProbabilityMap("platt", a=head.platt_a, b=head.platt_b) if config.probability == "platt"
                       else ProbabilityMap.fit(config.probability, oof, y[train_idx]))
    # a human-quantile "probability" is the share of human text scoring lower: 0.5 would flag half of it
    threshold = HUMAN_QUANTILE_THRESHOLD if probability == "human-quantile" and config.threshold == 0.5 \
        else config.threshold
    detector = Detector(featurizer, head, threshold)
    raw = head.decision(features[test_idx])
    test_texts = [texts[i] for i in test_idx]
    source = ("held-out split of the training data, grouped by content_hash" if has_model
              else "all training records (zeroshot: nothing fitted)")
    detector.calibration = calibrate_scores(
        detector, test_texts, y[test_idx], raw, probability=probability, targets=config.fpr_targets, source=source,
        datasets=_subset(datasets, test_idx), window_words=config.window_words, window_stride=config.window_stride)
    p = detector.probability(raw)
    heldout = detector_metrics(y[test_idx], p, threshold) if has_model else None
    config_doc = asdict(config)
    config_doc["C"] = config.inverse_l2
    config_doc["fpr_targets"] = list(config.fpr_targets)
    detector.info = {
        "config": config_doc,
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "heldout": heldout.to_json() if heldout else None,
    }
    return TrainedDetector(detector, heldout, len(train_idx), len(test_idx))
