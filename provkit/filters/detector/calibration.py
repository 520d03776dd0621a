"""What a detector score means on human text: thresholds at target false-positive rates.

A detector's raw score ``s(x)`` (the linear score of the trained kinds, the
zero-shot criterion of the ``zeroshot`` kind) is turned into decisions and
probabilities by a :class:`Calibration` measured on *held-out* records, stored
with the detector and rewritten by ``prov detector calibrate`` on a user's own
human text (weights unchanged).

**Threshold at a target FPR** (split-conformal).  With ``n`` held-out human
scores sorted in decreasing order ``h_(1) >= ... >= h_(n)`` and target ``alpha``,
let ``k = floor(alpha * (n + 1)) - 1`` and ``t = h_(k+1)``; the decision is
"model" when ``s > t``.  At most ``k`` calibration texts are flagged, and for a
new human text exchangeable with the calibration set

    P(s > t) <= (k + 1) / (n + 1) <= alpha            (``expected_fpr_bound``)

so the FPR on fresh human text of the same kind is ``alpha`` up to sampling
error (its spread over calibration draws is about ``sqrt(alpha (1 - alpha) / n)``).
When ``n + 1 < 1 / alpha`` no threshold can promise ``alpha`` (``k < 0``): the
threshold is then the largest human score, ``resolvable`` is false, and the
bound is ``1 / (n + 1)``.  ``measured_fpr`` is the share of calibration human
texts above ``t`` (at most ``k / n``); ``tpr`` the share of calibration model
texts above it (when there are any).

**Probability** (:class:`ProbabilityMap`), a monotone map of ``s``:

* ``platt``     ``P = 1 / (1 + exp(-(a s + b)))``, logistic regression of the labels on ``s``;
* ``isotonic``  ``P = interp(s; x, y)``, scikit-learn ``IsotonicRegression`` (clipped),
  stored as its breakpoints ``x, y``;
* ``human-quantile``  with human text only (no model text to fit a probability on):
  ``P = interp(s; h_(i), i / (n + 1))``, the share of human calibration texts
  scoring below ``s``; ``P >= 1 - alpha`` then flags about ``alpha`` of human text.
  It is a rank against human text, not a probability of model origin.

Lengths are counted in whitespace tokens (``len(text.split())``, as ``prov stats``),
bucketed as ``< 32, 32-64, 64-128, 128-256, >= 256``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from provkit.filters.detector.params import DetectorError

FPR_TARGETS = (0.001, 0.01, 0.05)
PROBABILITY_METHODS = ("platt", "isotonic", "human-quantile")
LENGTH_EDGES = (32, 64, 128, 256)
LENGTH_BUCKETS = ("<32", "32-64", "64-128", "128-256", ">=256")
MAX_MAP_POINTS = 2001
MIN_FOR_PROBABILITY = 4  # records of each class needed to fit platt / isotonic


def token_length(text: str) -> int:
    """Whitespace tokens of ``text`` (what ``prov stats`` counts)."""
    return len(text.split())


def length_bucket(n_tokens: int) -> str:
    """The bucket label of a length in tokens: ``<32``, ``32-64``, ``64-128``, ``128-256``, ``>=256``."""
    return LENGTH_BUCKETS[int(np.searchsorted(LENGTH_EDGES, n_tokens, side="right"))]


def fpr_label(fpr: float) -> str:
    """``0.01`` -> ``"1%"``, ``0.001`` -> ``"0.1%"``."""
    return f"{fpr * 100:g}%"


@dataclass(frozen=True)
class Threshold:
    """The decision threshold for one target FPR and what it achieved on the calibration set."""

    target_fpr: float
    threshold: float  # decide "model" when the raw score is > threshold
    measured_fpr: float  # share of calibration human texts above the threshold
    human_flagged: int
    n_human: int
    expected_fpr_bound: float  # (k + 1) / (n + 1): the conformal bound on new human text
    resolvable: bool  # False: too few human texts to promise target_fpr
    tpr: float | None = None  # share of calibration model texts above the threshold

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def conformal_threshold(human_scores: np.ndarray, alpha: float) -> tuple[float, int, bool]:
    """``(t, k, resolvable)``: the split-conformal threshold of the module docstring."""
    h = np.sort(np.asarray(human_scores, dtype=np.float64))[::-1]
    n = len(h)
    if n == 0:
        raise DetectorError("calibration needs human (origin=human) records; found none")
    k = math.floor(alpha * (n + 1) + 1e-9) - 1
    if k < 0:
        return float(h[0]), 0, False
    return float(h[k]), k, True


def threshold_for(human_scores: np.ndarray, model_scores: np.ndarray | None, alpha: float) -> Threshold:
    """The :class:`Threshold` at target ``alpha`` from calibration scores."""
    h = np.asarray(human_scores, dtype=np.float64)
    t, k, ok = conformal_threshold(h, alpha)
    flagged = int((h > t).sum())
    tpr = None
    if model_scores is not None and len(model_scores):
        tpr = float((np.asarray(model_scores, dtype=np.float64) > t).mean())
    return Threshold(alpha, t, flagged / len(h), flagged, len(h), (k + 1) / (len(h) + 1), ok, tpr)


@dataclass(frozen=True)
class ProbabilityMap:
    """A monotone map from raw score to the ``detector_score`` written beside each record."""

    method: str
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def apply(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-np.clip(self.a * s + self.b, -500, 500)))
        return np.interp(s, self.x, self.y)

    @classmethod
    def fit(cls, method: str, scores: np.ndarray, labels: np.ndarray) -> "ProbabilityMap":
        """Fit ``method`` on raw ``scores`` and labels (0 human, 1 model)."""
        from sklearn.isotonic import IsotonicRegression  # lazy: scikit-learn costs ~1.5 s to import
        from sklearn.linear_model import LogisticRegression

        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels, dtype=np.int64)
        if method == "human-quantile":
            return cls.human_quantile(s[y == 0])
        counts = np.bincount(y, minlength=2)
        if counts.min() < MIN_FOR_PROBABILITY:
            raise DetectorError(f"a {method} probability needs at least {MIN_FOR_PROBABILITY} human and "
                                f"{MIN_FOR_PROBABILITY} model records; found {counts[0]} and {counts[1]}")
        if method == "platt":
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(s.reshape(-1, 1), y)
            return cls("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
        if method == "isotonic":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
            return cls._points("isotonic", iso.X_thresholds_, iso.y_thresholds_)
        raise DetectorError(f"unknown probability method {method!r}; choose one of {', '.join(PROBABILITY_METHODS)}")

    @classmethod
    def human_quantile(cls, human_scores: np.ndarray) -> "ProbabilityMap":
        h = np.sort(np.asarray(human_scores, dtype=np.float64))
        if len(h) == 0:
            raise DetectorError("calibration needs human (origin=human) records; found none")
        return cls._points("human-quantile", h, np.arange(1, len(h) + 1) / (len(h) + 1))

    @classmethod
    def _points(cls, method: str, x: np.ndarray, y: np.ndarray) -> "ProbabilityMap":
        if len(x) > MAX_MAP_POINTS:  # keep the document small: evenly spaced breakpoints, ends included
            keep = np.unique(np.linspace(0, len(x) - 1, MAX_MAP_POINTS).round().astype(np.int64))
            x, y = x[keep], y[keep]
        return cls(method, x=tuple(float(v) for v in x), y=tuple(float(v) for v in y))

    def to_json(self) -> dict[str, Any]:
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        return {"method": self.method, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_json(cls, doc: Any, where: str) -> "ProbabilityMap":
        if not isinstance(doc, dict) or doc.get("method") not in PROBABILITY_METHODS:
            raise DetectorError(f"{where}.method: expected one of {', '.join(PROBABILITY_METHODS)}")
        if doc["method"] == "platt":
            _keys(doc, {"method", "a", "b"}, where)
            return cls("platt", a=_finite(doc, "a", where), b=_finite(doc, "b", where))
        _keys(doc, {"method", "x", "y"}, where)
        x, y = _floats(doc.get("x"), f"{where}.x"), _floats(doc.get("y"), f"{where}.y")
        if not x or len(x) != len(y) or any(b < a for a, b in zip(x, x[1:])) or any(b < a for a, b in zip(y, y[1:])):
            raise DetectorError(f"{where}: x and y must be non-empty, of equal length and non-decreasing")
        return cls(doc["method"], x=tuple(x), y=tuple(y))


@dataclass(frozen=True)
class WindowCalibration:
    """Thresholds for sliding windows of ``words`` tokens (stride ``stride``), measured on human windows."""

    words: int
    stride: int
    n_windows: int
    thresholds: tuple[Threshold, ...]

    def to_json(self) -> dict[str, Any]:
        return {"words": self.words, "stride": self.stride, "n_windows": self.n_windows,
                "thresholds": [t.to_json() for t in self.thresholds]}


@dataclass(frozen=True)
class Calibration:
    """Thresholds at target FPRs, the probability map, and the set they were measured on."""

    thresholds: tuple[Threshold, ...]
    probability: ProbabilityMap
    n_human: int
    n_model: int
    domain: dict[str, int]  # records per dataset name in the calibration set
    lengths: dict[str, Any]  # per class: records per length bucket and token-length quantiles
    source: str  # where the calibration set came from
    windows: WindowCalibration | None = None
    recalibrated_from: str | None = None  # fingerprint of the detector this one was recalibrated from
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def targets(self) -> tuple[float, ...]:
        return tuple(t.target_fpr for t in self.thresholds)

    def at(self, fpr: float, windows: bool = False) -> Threshold:
        """The threshold for target ``fpr`` (one of the calibrated targets)."""
        table = self.windows.thresholds if windows and self.windows else self.thresholds
        for t in table:
            if math.isclose(t.target_fpr, fpr, rel_tol=1e-9, abs_tol=1e-12):
                return t
        raise DetectorError(f"--fpr {fpr:g}: not a calibrated target (this detector has "
                            f"{', '.join(f'{v:g}' for v in self.targets)}); recalibrate with "
                            f"`prov detector calibrate DET DS --fpr-targets ...`")

    def to_json(self) -> dict[str, Any]:
        return {
            "thresholds": [t.to_json() for t in self.thresholds],
            "probability": self.probability.to_json(),
            "n_human": self.n_human, "n_model": self.n_model, "domain": self.domain, "lengths": self.lengths,
            "source": self.source, "windows": self.windows.to_json() if self.windows else None,
            "recalibrated_from": self.recalibrated_from, "info": self.info,
        }

    @classmethod
    def from_json(cls, doc: Any, where: str) -> "Calibration":
        if not isinstance(doc, dict):
            raise DetectorError(f"{where}: expected a JSON object")
        _keys(doc, {"thresholds", "probability", "n_human", "n_model", "domain", "lengths", "source", "windows",
                    "recalibrated_from", "info"}, where)
        windows = doc.get("windows")
        if windows is not None:
            if not isinstance(windows, dict):
                raise DetectorError(f"{where}.windows: expected a JSON object or null")
            _keys(windows, {"words", "stride", "n_windows", "thresholds"}, f"{where}.windows")
            words, stride, n_win = (_int(windows, k, f"{where}.windows") for k in ("words", "stride", "n_windows"))
            if words < 1 or stride < 1:
                raise DetectorError(f"{where}.windows: words and stride must be >= 1")
            windows = WindowCalibration(words, stride, n_win,
                                        _thresholds(windows.get("thresholds"), f"{where}.windows.thresholds"))
        for key, kind in (("domain", dict), ("lengths", dict), ("info", dict), ("source", str)):
            if not isinstance(doc.get(key), kind):
                raise DetectorError(f"{where}.{key}: expected {kind.__name__}")
        recal = doc.get("recalibrated_from")
        if recal is not None and not isinstance(recal, str):
            raise DetectorError(f"{where}.recalibrated_from: expected a string or null")
        return cls(_thresholds(doc.get("thresholds"), f"{where}.thresholds"),
                   ProbabilityMap.from_json(doc.get("probability"), f"{where}.probability"),
                   _int(doc, "n_human", where), _int(doc, "n_model", where), doc["domain"], doc["lengths"],
                   doc["source"], windows, recal, doc["info"])


# ------------------------------------------------------------------ building a calibration


def check_targets(targets: Sequence[float]) -> tuple[float, ...]:
    out = tuple(sorted({float(t) for t in targets}))
    if not out or not all(0.0 < t < 1.0 for t in out):
        raise DetectorError(f"--fpr-targets {','.join(f'{t:g}' for t in targets)}: each must be strictly "
                            f"between 0 and 1")
    return out


def length_summary(lengths: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Per class (human / model): records per length bucket and the 5/50/95 % token-length quantiles."""
    out: dict[str, Any] = {}
    for name, cls in (("human", 0), ("model", 1)):
        part = np.asarray(lengths)[np.asarray(labels) == cls]
        counts = Counter(length_bucket(int(n)) for n in part)
        out[name] = {
            "buckets": {b: int(counts.get(b, 0)) for b in LENGTH_BUCKETS},
            "tokens_p5_p50_p95": [float(v) for v in np.percentile(part, [5, 50, 95])] if len(part) else None,
        }
    return out


def thresholds_from(scores: np.ndarray, labels: np.ndarray, targets: Sequence[float]) -> tuple[Threshold, ...]:
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    model = s[y == 1] if (y == 1).any() else None
    return tuple(threshold_for(s[y == 0], model, a) for a in check_targets(targets))


def build_calibration(
    scores: np.ndarray,
    labels: np.ndarray,
    texts: Sequence[str],
    *,
    targets: Sequence[float] = FPR_TARGETS,
    probability: ProbabilityMap | str,
    datasets: Sequence[str | None] | None = None,
    source: str,
    windows: WindowCalibration | None = None,
    recalibrated_from: str | None = None,
    info: dict[str, Any] | None = None,
) -> Calibration:
    """A :class:`Calibration` from raw ``scores`` of held-out records (labels 0 human / 1 model).

    ``probability``: a fitted map to keep, or the name of a method to fit on these scores.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if not (y == 0).any():
        raise DetectorError("calibration needs human (origin=human) records; found none")
    prob = probability if isinstance(probability, ProbabilityMap) else ProbabilityMap.fit(probability, s, y)
    names = Counter("(unnamed)" if d is None else str(d) for d in (datasets or [None] * len(s)))
    lengths = np.asarray([token_length(t) for t in texts], dtype=np.int64)
    return Calibration(thresholds_from(s, y, targets), prob, int((y == 0).sum()), int((y == 1).sum()),
                       dict(sorted(names.items())), length_summary(lengths, y), source, windows, recalibrated_from,
                       dict(info or {}))


# ------------------------------------------------------------------ strict JSON helpers


def _keys(doc: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(doc) - known)
    if unknown:
        raise DetectorError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")


def _finite(doc: dict[str, Any], key: str, where: str) -> float:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise DetectorError(f"{where}.{key}: expected a finite number, got {v!r:.40}")
    return float(v)


def _int(doc: dict[str, Any], key: str, where: str) -> int:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise DetectorError(f"{where}.{key}: expected a non-negative integer, got {v!r:.40}")
    return v


def _floats(values: Any, where: str) -> list[float]:
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise DetectorError(f"{where}: expected a list of finite numbers")
    return [float(v) for v in values]


def _thresholds(values: Any, where: str) -> tuple[Threshold, ...]:
    if not isinstance(values, list) or not values:
        raise DetectorError(f"{where}: expected a non-empty list")
    out = []
    for i, doc in enumerate(values):
        w = f"{where}[{i}]"
        if not isinstance(doc, dict):
            raise DetectorError(f"{w}: expected a JSON object")
        _keys(doc, set(Threshold.__dataclass_fields__), w)
        if not isinstance(doc.get("resolvable"), bool):
            raise DetectorError(f"{w}.resolvable: expected true or false")
        tpr = doc.get("tpr")
        out.append(Threshold(_finite(doc, "target_fpr", w), _finite(doc, "threshold", w),
                             _finite(doc, "measured_fpr", w), _int(doc, "human_flagged", w), _int(doc, "n_human", w),
                             _finite(doc, "expected_fpr_bound", w), doc["resolvable"],
                             None if tpr is None else _finite(doc, "tpr", w)))
    return tuple(out)
