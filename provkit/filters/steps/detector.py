"""``detector``: a saved human-vs-model detector's scores, then drop at a calibrated threshold or weight ``(1-p)^beta``.

Scores (``score``, a pure map): ``detector_score`` = the calibrated P(model) and
``detector_raw`` = the raw score ``s(x)`` that the detector's stored
thresholds compare against (:func:`provkit.filters.detector.score_batch`).

Which records are dropped (:class:`DropRule`, fixed when the step is built):

* ``fpr = α`` (the default for ``policy = "drop"``: 0.01) — drop ``s(x) > t_α``,
  where ``t_α`` is the threshold the detector stored for target FPR ``α``,
  measured on held-out human text (split-conformal: fresh human text of the
  calibration's kind is dropped at most ``α`` of the time on average).  ``α``
  must be one of the detector's calibrated targets (``prov detector calibrate
  DET DS --fpr-targets ...`` adds others);
* ``max_model_prob = P`` — the explicit override: drop ``detector_score > P``;
* ``policy = "weight"`` with neither set drops nothing.

The rule (threshold, target and measured FPR, calibration size, detector
fingerprint) is written into the filter report (``report.json``: the step's
``decision`` entry), so a reader of the output knows what the drop meant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.errors import ConfigError, ProvkitError
from provkit.filters.detector import RAW_COLUMN, SCORE_COLUMN, detector_fingerprint
from provkit.filters.detector import load_detector as load
from provkit.filters.detector import score_batch
from provkit.filters.step import ORDER, BaseStep, RowPlanStep, decisions, reasons_where, row_plan
from provkit.filters.tail import capped_weights

DETECTOR_POLICIES = ("drop", "weight")
DEFAULT_FPR = 0.01
DETECTOR_REASON = "detector_model_prob"


@dataclass
class DetectorStepConfig:
    """``detector`` step: a saved detector (``prov detector train``) and what to do with its scores.

    ``policy = "drop"``: drop records above the detector's calibrated threshold at ``fpr``
    (0.01 when unset), or above ``max_model_prob`` on the P(model) scale when that is given.
    ``policy = "weight"``: importance weights ``(1 - p)^beta`` (capped at ``cap`` times the mean,
    mean 1); with ``fpr`` or ``max_model_prob`` set, records above it are dropped first.
    """

    path: str = ""
    policy: str = "drop"
    fpr: float | None = None
    max_model_prob: float | None = None
    beta: float = 1.0
    cap: float = 10.0  # largest importance weight (capped repeats), times the mean

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("path: the detector directory is required (train one with `prov detector train`)")
        if self.policy not in DETECTOR_POLICIES:
            raise ConfigError(f"policy: expected drop or weight, got {self.policy!r}")
        if self.fpr is not None and not 0.0 < self.fpr < 1.0:
            raise ConfigError(f"fpr: must be in (0, 1), got {self.fpr}")
        if self.max_model_prob is not None and not 0.0 <= self.max_model_prob <= 1.0:
            raise ConfigError(f"max_model_prob: must be in [0, 1], got {self.max_model_prob}")
        if self.fpr is not None and self.max_model_prob is not None:
            raise ConfigError("fpr: set fpr (a calibrated threshold) or max_model_prob (an explicit one), not both")
        if self.beta < 0:
            raise ConfigError(f"beta: must be >= 0, got {self.beta}")
        if self.cap < 1:
            raise ConfigError(f"cap: must be >= 1 (weights have mean 1), got {self.cap}")

    def target_fpr(self) -> float | None:
        """The calibrated FPR the step drops at (None: an explicit ``max_model_prob``, or no drop)."""
        if self.max_model_prob is not None:
            return None
        if self.fpr is None and self.policy == "drop":
            return DEFAULT_FPR
        return self.fpr


@dataclass(frozen=True)
class DropRule:
    """Drop the records whose ``column`` is above ``threshold``; the rest describes where it came from."""

    column: str  # detector_raw (calibrated threshold) or detector_score (max_model_prob)
    threshold: float
    detector_id: str
    target_fpr: float | None = None  # None: the explicit max_model_prob
    measured_fpr: float | None = None  # on the calibration's held-out human text
    n_human: int | None = None
    expected_fpr_bound: float | None = None
    resolvable: bool | None = None  # False: too few calibration human texts to promise target_fpr
    calibration_source: str | None = None

    def drops(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        v = pc.fill_null(values, -np.inf).to_numpy().astype(np.float64)
        return v > self.threshold

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def drop_rule(config: DetectorStepConfig, detector: Any) -> DropRule | None:
    """The step's :class:`DropRule` for ``detector`` (None: drop nothing).

    A target FPR the detector was not calibrated for is a :class:`ConfigError` naming the ones it was.
    """
    ident = detector.fingerprint or detector_fingerprint(detector)
    if config.max_model_prob is not None:
        return DropRule(SCORE_COLUMN, config.max_model_prob, ident)
    fpr = config.target_fpr()
    if fpr is None:
        return None
    calibration = detector.calibration
    if calibration is None:
        raise ConfigError(f"fpr: the detector at {config.path} has no calibration (saved by an older provkit); run "
                          f"`prov detector calibrate DET DS`, or set max_model_prob for an explicit threshold")
    try:
        t = calibration.at(fpr)
    except ProvkitError:
        have = ", ".join(f"{v:g}" for v in calibration.targets)
        raise ConfigError(f"fpr: {fpr:g} was not calibrated for the detector at {config.path} (calibrated: {have}); "
                          f"choose one of those, or add it with `prov detector calibrate DET DS --fpr-targets ...`") from None
    return DropRule(RAW_COLUMN, t.threshold, ident, t.target_fpr, t.measured_fpr, t.n_human, t.expected_fpr_bound,
                    t.resolvable, calibration.source)


def load_detector(path: str | Path) -> Any:
    """The detector saved at ``path`` (the detector package's loader: no pickle, checksummed).

    Its errors become a :class:`ConfigError` on the step's ``path`` key.
    """
    try:
        return load(path)
    except ProvkitError as exc:
        raise ConfigError(f"path: {exc}") from None


def importance_weights(p: np.ndarray, beta: float, cap: float) -> np.ndarray:
    """``w_i = min(s * (1 - p_i)^beta, cap)`` with ``s`` making ``mean(w) = 1`` (see :func:`capped_weights`)."""
    return capped_weights(np.power(1.0 - np.clip(p, 0.0, 1.0), beta), cap)


class _DetectorScore:
    """The scoring both detector steps share: ``detector_score`` = calibrated P(model), ``detector_raw``.

    ``score`` is the detector package's :func:`provkit.filters.detector.score_batch`.
    The step pickles as its path and drop rule, not its model (a Ray worker reloads it).
    """

    name = "detector"
    decide_columns = (SCORE_COLUMN, RAW_COLUMN)
    config: DetectorStepConfig
    _detector: Any
    _rule: DropRule | None | bool  # False: not resolved yet

    @property
    def detector(self) -> Any:
        if self._detector is None:
            self._detector = load_detector(self.config.path)
        return self._detector

    @property
    def rule(self) -> DropRule | None:
        if self._rule is False:
            self._rule = drop_rule(self.config, self.detector)
        return self._rule  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        """What the filter report records about the step's decision."""
        rule = self.rule
        return {"path": str(Path(self.config.path).resolve()), "policy": self.config.policy,
                "drop": rule.to_json() if rule else None}

    def __getstate__(self) -> dict[str, Any]:  # ship the path, not the model, to other processes
        return {**self.__dict__, "_detector": None}

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return score_batch(self.detector, batch)

    def _drop(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        rule = self.rule
        if rule is None:
            return np.zeros(batch.num_rows, dtype=bool)
        return rule.drops(batch.column(rule.column))


class DetectorStep(_DetectorScore, BaseStep):
    """``policy = "drop"``: a map-only step dropping records above the rule's threshold, reason ``detector_model_prob``."""

    def __init__(self, config: DetectorStepConfig, detector: Any = None):
        super().__init__(config)
        self._detector = detector
        self._rule = False

    def decide(self, batch: pa.RecordBatch, plan: Any) -> pa.RecordBatch:
        return decisions(batch.num_rows, reasons_where(self._drop(batch), DETECTOR_REASON))


class DetectorWeightStep(_DetectorScore, RowPlanStep):
    """``policy = "weight"``: importance weights ``detector_weight = min(s * (1 - p_i)^beta, cap)``.

    A global step: its plan drops the records above the rule's threshold (when
    ``fpr`` or ``max_model_prob`` is set) and weights the rows it keeps (``s``
    makes their mean 1; capped repeats).  Plan memory: 24 bytes per alive row.
    """

    weight_column = "detector_weight"

    def __init__(self, config: DetectorStepConfig, detector: Any = None):
        super().__init__(config)
        self._detector = detector
        self._rule = False

    def plan(self, table: pa.Table) -> Any:
        drop = self._drop(table)
        p = pc.fill_null(table.column(SCORE_COLUMN), 0.0).to_numpy().astype(np.float64)
        weights = np.ones(len(p))
        weights[~drop] = importance_weights(p[~drop], self.config.beta, self.config.cap)
        return row_plan(table.column(ORDER).to_numpy(), reasons_where(drop, DETECTOR_REASON),
                        detector_weight=pa.array(weights))


Config = DetectorStepConfig


def build(config: DetectorStepConfig, dataset: Any) -> BaseStep:
    """The drop or the weight step, by ``policy`` (one ``kind = "detector"`` in the pipeline); the drop rule
    is resolved here, so a target FPR the detector lacks fails before any record is read."""
    step = DetectorWeightStep if config.policy == "weight" else DetectorStep
    built = step(config, load_detector(config.path))
    built.rule  # noqa: B018 - resolve (and check) the drop rule now
    return built
