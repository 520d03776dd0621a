"""``quality``: the Gopher repetition / quality heuristics (scores, then thresholds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from provkit.errors import ConfigError
from provkit.filters.quality import SCORE_NAMES, QualityThresholds, quality_reasons, quality_scores, threshold_names
from provkit.filters.step import BaseStep, append_columns, decisions

QUALITY_PREFIX = "quality_"


@dataclass(frozen=True)
class QualityStepConfig(QualityThresholds):
    """``quality`` step: the Gopher thresholds of :class:`provkit.filters.quality.QualityThresholds` as params."""

    def __post_init__(self) -> None:
        for name in threshold_names():
            value = getattr(self, name)
            if value < 0:
                raise ConfigError(f"{name}: must be >= 0, got {value}")
            if name.endswith("_frac") and value > 1:
                raise ConfigError(f"{name}: a fraction, must be in [0, 1], got {value}")
        for low, high in (("min_words", "max_words"), ("min_mean_word_length", "max_mean_word_length")):
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(f"{low}: must be <= {high} ({getattr(self, high)}), got {getattr(self, low)}")


class QualityStep(BaseStep):
    """Score the Gopher repetition/quality heuristics as ``quality_<score>`` columns; drop failing texts.

    ``score`` writes every :data:`provkit.filters.quality.SCORE_NAMES` score
    (``quality_words``, ``quality_dup_line_frac``, ``quality_top_2gram_frac`` ...);
    ``decide`` applies the thresholds with :func:`quality_reasons`: the drop
    reason names the first failed check (``quality:too_short``,
    ``quality:dup_line``, ``quality:top_2gram`` ...).  A map-only step: deciding
    again with other thresholds needs no rescoring.  Decide memory: 8 bytes per
    score (17 scores) per row.
    """

    name = "quality"
    decide_columns = tuple(QUALITY_PREFIX + n for n in SCORE_NAMES)

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        scores = quality_scores(batch.column("text").to_pylist())
        return append_columns(batch, {QUALITY_PREFIX + n: pa.array(scores[n]) for n in SCORE_NAMES})

    def decide(self, batch: pa.RecordBatch, plan: Any) -> pa.RecordBatch:
        scores = {n: pc.fill_null(batch.column(QUALITY_PREFIX + n), 0).to_numpy() for n in SCORE_NAMES}
        return decisions(batch.num_rows, quality_reasons(scores, self.config))




Config = QualityStepConfig


def build(config: QualityStepConfig, dataset: Any) -> QualityStep:
    return QualityStep(config)
