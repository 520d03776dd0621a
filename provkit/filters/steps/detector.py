"""``detector``: a saved human-vs-model detector's P(model), then drop above a threshold or weight ``(1-p)^beta``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.errors import ConfigError, ProvkitError
from provkit.filters.detector import load_detector as load
from provkit.filters.detector import score_batch
from provkit.filters.step import ORDER, BaseStep, RowPlanStep, decisions, reasons_where, row_plan
from provkit.filters.tail import capped_weights

DETECTOR_POLICIES = ("drop", "weight")
DEFAULT_MAX_MODEL_PROB = 0.5
DETECTOR_REASON = "detector_model_prob"


@dataclass
class DetectorStepConfig:
    """``detector`` step: a saved detector (``prov detector train``) and what to do with P(model).

    ``policy = "drop"``: drop records with ``P(model) > max_model_prob`` (0.5 when unset).
    ``policy = "weight"``: importance weights ``(1 - p)^beta`` (capped at ``cap`` times the mean,
    mean 1); with ``max_model_prob`` set, records above it are dropped first.
    """

    path: str = ""
    policy: str = "drop"
    max_model_prob: float | None = None
    beta: float = 1.0
    cap: float = 10.0  # largest importance weight (capped repeats), times the mean

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("path: the detector directory is required (train one with `prov detector train`)")
        if self.policy not in DETECTOR_POLICIES:
            raise ConfigError(f"policy: expected drop or weight, got {self.policy!r}")
        if self.max_model_prob is not None and not 0.0 <= self.max_model_prob <= 1.0:
            raise ConfigError(f"max_model_prob: must be in [0, 1], got {self.max_model_prob}")
        if self.beta < 0:
            raise ConfigError(f"beta: must be >= 0, got {self.beta}")
        if self.cap < 1:
            raise ConfigError(f"cap: must be >= 1 (weights have mean 1), got {self.cap}")

    def drop_above(self) -> float | None:
        """The P(model) above which records are dropped (None: drop nothing)."""
        if self.policy == "drop" and self.max_model_prob is None:
            return DEFAULT_MAX_MODEL_PROB
        return self.max_model_prob


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
    """The scoring both detector steps share: ``detector_score`` = calibrated P(model).

    ``score`` is the detector package's :func:`provkit.filters.detector.score_batch`
    (``load_detector(path).predict_proba(texts)``).  The step pickles as its
    path, not its model (a Ray worker reloads it).
    """

    name = "detector"
    decide_columns = ("detector_score",)
    config: DetectorStepConfig
    _detector: Any

    @property
    def detector(self) -> Any:
        if self._detector is None:
            self._detector = load_detector(self.config.path)
        return self._detector

    def __getstate__(self) -> dict[str, Any]:  # ship the path, not the model, to other processes
        return {**self.__dict__, "_detector": None}

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return score_batch(self.detector, batch)

    def _drop(self, scores: pa.Array | pa.ChunkedArray) -> np.ndarray:
        limit = self.config.drop_above()
        p = pc.fill_null(scores, 0.0).to_numpy().astype(np.float64)
        return p > limit if limit is not None else np.zeros(len(p), dtype=bool)


class DetectorStep(_DetectorScore, BaseStep):
    """``policy = "drop"``: a map-only step dropping ``P(model) > max_model_prob``, reason ``detector_model_prob``."""

    def __init__(self, config: DetectorStepConfig, detector: Any = None):
        super().__init__(config)
        self._detector = detector

    def decide(self, batch: pa.RecordBatch, plan: Any) -> pa.RecordBatch:
        return decisions(batch.num_rows, reasons_where(self._drop(batch.column("detector_score")), DETECTOR_REASON))


class DetectorWeightStep(_DetectorScore, RowPlanStep):
    """``policy = "weight"``: importance weights ``detector_weight = min(s * (1 - p_i)^beta, cap)``.

    A global step: its plan drops ``P(model) > max_model_prob`` when that is set
    and weights the rows it keeps (``s`` makes their mean 1; capped repeats).
    Plan memory: 16 bytes per alive row.
    """

    weight_column = "detector_weight"

    def __init__(self, config: DetectorStepConfig, detector: Any = None):
        super().__init__(config)
        self._detector = detector

    def plan(self, table: pa.Table) -> Any:
        drop = self._drop(table.column("detector_score"))
        p = pc.fill_null(table.column("detector_score"), 0.0).to_numpy().astype(np.float64)
        weights = np.ones(len(p))
        weights[~drop] = importance_weights(p[~drop], self.config.beta, self.config.cap)
        return row_plan(table.column(ORDER).to_numpy(), reasons_where(drop, DETECTOR_REASON),
                        detector_weight=pa.array(weights))


Config = DetectorStepConfig


def build(config: DetectorStepConfig, dataset: Any) -> BaseStep:
    """The drop or the weight step, by ``policy`` (one ``kind = "detector"`` in the pipeline)."""
    step = DetectorWeightStep if config.policy == "weight" else DetectorStep
    return step(config, load_detector(config.path))
