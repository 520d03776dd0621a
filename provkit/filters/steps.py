"""The pipeline's step kinds: registry of config dataclasses and the builders that make steps.

Dedup, quality and detector steps wrap the pure functions of their modules
(``dedup``, ``quality``, ``detector``) in the Step protocol; tail and mix are
in :mod:`provkit.filters.tail` and :mod:`provkit.filters.mix`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.errors import ConfigError, ProvkitError
from provkit.filters.mix import MixConfig, MixStep
from provkit.filters.quality import SCORE_NAMES, QualityThresholds, quality_reasons, quality_scores, threshold_names
from provkit.filters.step import (
    ORDER,
    BaseStep,
    RowPlanStep,
    Step,
    append_columns,
    decisions,
    reasons_where,
    row_plan,
)
from provkit.filters.tail import LMSurprisal, TailConfig, TailStep, UnigramModel, capped_weights
from provkit.provenance import Dataset, builtin_texts

# --------------------------------------------------------------------------- dedup

@dataclass
class ExactDedupConfig:
    """``exact_dedup`` step: equal ``content_hash`` -> one survivor (human first, then earliest)."""


class ExactDedupStep(RowPlanStep):
    """Drop exact duplicates (``exact_duplicate``); rejects name the survivor in ``dup_of``.

    Plan memory: id + content_hash + origin (~110 bytes) per alive row.
    """

    name = "exact_dedup"
    decide_columns = ("id", "content_hash", "origin")

    def plan(self, table: pa.Table) -> pa.Table:
        from provkit.filters.dedup import exact_duplicates

        orders = table.column(ORDER).to_numpy()
        result = exact_duplicates(table.column("content_hash"), table.column("origin"), orders)
        reasons = ["exact_duplicate" if not s else None for s in result.is_survivor.tolist()]
        return row_plan(orders, reasons, dup_of=pa.array(result.dup_of(table.column("id")), pa.string()),
                        exact_cluster=result.cluster)


@dataclass
class MinhashDedupConfig:
    """``minhash_dedup`` step: MinHash of word ``ngram`` shingles + LSH at Jaccard ``threshold``."""

    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"threshold: must be in (0, 1], got {self.threshold}")
        if self.num_perm < 2 or self.ngram < 1:
            raise ConfigError(f"num_perm/ngram: must be >= 2 / >= 1, got {self.num_perm}/{self.ngram}")

    def near_dup(self) -> Any:
        from provkit.filters.dedup import NearDupConfig

        return NearDupConfig(threshold=self.threshold, ngram=self.ngram, num_perm=self.num_perm, seed=self.seed)


class MinhashDedupStep(RowPlanStep):
    """Score ``_minhash`` signatures; drop near duplicates (``near_duplicate``) by connected components.

    Plan memory: the signature (4 * num_perm bytes) + id + origin per alive row,
    plus the LSH index of :mod:`provkit.filters.dedup`.
    """

    name = "minhash_dedup"
    decide_columns = ("id", "origin", "_minhash")

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        from provkit.filters.minhash import signatures, signatures_to_arrow

        sigs = signatures(batch.column("text").to_pylist(), self.config.near_dup().minhash())
        return append_columns(batch, {"_minhash": signatures_to_arrow(sigs)})

    def plan(self, table: pa.Table) -> pa.Table:
        from provkit.filters.dedup import near_duplicates
        from provkit.filters.minhash import signatures_from_arrow

        orders = table.column(ORDER).to_numpy()
        sigs = signatures_from_arrow(table.column("_minhash"))
        result = near_duplicates(sigs, table.column("origin"), orders, self.config.near_dup())
        reasons = ["near_duplicate" if not s else None for s in result.is_survivor.tolist()]
        return row_plan(orders, reasons, dup_of=pa.array(result.dup_of(table.column("id")), pa.string()),
                        near_dup_cluster=result.cluster)


# --------------------------------------------------------------------------- quality

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


# --------------------------------------------------------------------------- detector

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
    from provkit.filters.detector import load_detector as load

    try:
        return load(path)
    except ProvkitError as exc:
        raise ConfigError(f"path: {exc}") from None


def importance_weights(p: np.ndarray, beta: float, cap: float) -> np.ndarray:
    """``w_i = min(s * (1 - p_i)^beta, cap)`` with ``s`` making ``mean(w) = 1`` (see :func:`capped_weights`)."""
    return capped_weights(np.power(1.0 - np.clip(p, 0.0, 1.0), beta), cap)


class DetectorStep(BaseStep):
    """Score ``detector_score`` = calibrated P(model); drop above a threshold and/or weight ``(1-p)^beta``.

    ``score`` is the detector package's :func:`provkit.filters.detector.score_batch`
    (``load_detector(path).predict_proba(texts)``).  Drop policy: a map-only step,
    reason ``detector_model_prob``.  Weight policy: a global step whose plan
    computes ``detector_weight = min(s * (1 - p_i)^beta, cap)`` over the rows it
    keeps (``s`` makes their mean 1; capped repeats).  Plan memory: 16 bytes per alive row.
    """

    name = "detector"
    decide_columns = ("detector_score",)

    def __init__(self, config: DetectorStepConfig, detector: Any = None):
        super().__init__(config)
        self._detector = detector
        self.is_global = config.policy == "weight"
        self.weight_column = "detector_weight" if self.is_global else None

    @property
    def detector(self) -> Any:
        if self._detector is None:
            self._detector = load_detector(self.config.path)
        return self._detector

    def __getstate__(self) -> dict[str, Any]:  # ship the path, not the model, to other processes
        return {**self.__dict__, "_detector": None}

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        from provkit.filters.detector import score_batch

        return score_batch(self.detector, batch)

    def _drop(self, scores: pa.Array | pa.ChunkedArray) -> np.ndarray:
        limit = self.config.drop_above()
        p = pc.fill_null(scores, 0.0).to_numpy().astype(np.float64)
        return p > limit if limit is not None else np.zeros(len(p), dtype=bool)

    def plan(self, table: pa.Table) -> Any:
        if not self.is_global:
            return None
        drop = self._drop(table.column("detector_score"))
        p = pc.fill_null(table.column("detector_score"), 0.0).to_numpy().astype(np.float64)
        weights = np.ones(len(p))
        weights[~drop] = importance_weights(p[~drop], self.config.beta, self.config.cap)
        return row_plan(table.column(ORDER).to_numpy(), reasons_where(drop, DETECTOR_REASON),
                        detector_weight=pa.array(weights))

    def decide(self, batch: pa.RecordBatch, plan: Any) -> pa.RecordBatch:
        if self.is_global:
            return RowPlanStep.decide(self, batch, plan)  # type: ignore[arg-type]
        return decisions(batch.num_rows, reasons_where(self._drop(batch.column("detector_score")), DETECTOR_REASON))


# --------------------------------------------------------------------------- tail reference

def human_texts(dataset: Dataset) -> Iterator[str]:
    """Texts of the human records of ``dataset``, streamed."""
    for batch in dataset.iter_batches(columns=["text", "origin"]):
        human = pc.equal(batch.column("origin").cast(pa.string()), "human")
        yield from batch.column("text").filter(human).to_pylist()


def tail_reference(config: TailConfig, dataset: Dataset) -> UnigramModel:
    """The unigram reference: the input's human records (all records if it has none), a dataset, or a builtin corpus."""
    ref = config.reference
    if ref.startswith("builtin:"):
        try:
            return UnigramModel.fit(builtin_texts(ref.split(":", 1)[1]))
        except ValueError as exc:
            raise ConfigError(f"reference: {exc}") from None
    source = dataset if ref == "input" else Dataset.open(ref)
    model = UnigramModel.fit(human_texts(source))
    if model.total == 0:
        model = UnigramModel.fit(t for b in source.iter_batches(columns=["text"]) for t in b.column(0).to_pylist())
    return model


# --------------------------------------------------------------------------- registry

Builder = Callable[[Any, Dataset], Step]


def _build_tail(config: TailConfig, dataset: Dataset) -> Step:
    if config.rarity == "lm":
        try:
            return TailStep(config, LMSurprisal(config.model, config.max_tokens).load())
        except ConfigError as exc:
            raise ConfigError(str(exc) if str(exc).startswith("model:") else f"model: {exc}") from None
    return TailStep(config, tail_reference(config, dataset))


def _build_detector(config: DetectorStepConfig, dataset: Dataset) -> Step:
    return DetectorStep(config, load_detector(config.path))


STEP_CONFIGS: dict[str, type] = {
    "exact_dedup": ExactDedupConfig,
    "minhash_dedup": MinhashDedupConfig,
    "quality": QualityStepConfig,
    "detector": DetectorStepConfig,
    "tail": TailConfig,
    "mix": MixConfig,
}

BUILDERS: dict[str, Builder] = {
    "exact_dedup": lambda config, dataset: ExactDedupStep(config),
    "minhash_dedup": lambda config, dataset: MinhashDedupStep(config),
    "quality": lambda config, dataset: QualityStep(config),
    "detector": _build_detector,
    "tail": _build_tail,
    "mix": lambda config, dataset: MixStep(config),
}


def build_step(kind: str, config: Any, dataset: Dataset) -> Step:
    """Make the step of ``kind`` for ``dataset`` (loads models and references it needs)."""
    return BUILDERS[kind](config, dataset)
