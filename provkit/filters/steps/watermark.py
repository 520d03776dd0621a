"""``watermark``: green-list watermark z per record (:mod:`provkit.lm.watermark`), then drop or weight by z.

TOML::

    [[steps]]
    kind = "watermark"
    model = "runs/x/seed0/gen00/model"   # the generating model: its tokenizer and config (no weights read)
    key_file = "wm.key"                  # or key_env = "PROV_WM_KEY"; never the key itself
    policy = "drop"                      # drop: z >= z_threshold is dropped (reason watermark_z)
    z_threshold = 4.0                    # weight: w = (1 - Phi(z - z_threshold))^beta, capped, mean 1
    ignore_repeated_ngrams = true        # each distinct n-gram scored once (the default)

Scores are the annotation columns ``watermark_tokens``, ``watermark_green_fraction``,
``watermark_z``, ``watermark_p`` and ``watermark_status`` (``ok`` / ``too short``);
a too-short text has null scores, is never dropped and gets weight ``1 * s``.
In the weight policy ``Phi(z - z_threshold)`` is a soft "watermarked" probability:
about 3e-5 for human text (z ~ N(0, 1)) at the default threshold 4, 0.5 at the
threshold and ~1 for long watermarked text.  Decide memory: 8 bytes per alive row
(``watermark_z``); the weight plan 16.

In the provenance-lost scenario only a share of the generators watermark (see
:func:`provkit.lm.watermark_data.generate_with_share`); this step is the arm that
uses the key.  The step pickles as its config (key file path or env var name),
never the key: a worker rereads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.errors import ConfigError
from provkit.filters.step import ORDER, BaseStep, RowPlanStep, decisions, reasons_where, row_plan
from provkit.filters.steps.detector import importance_weights
from provkit.lm.watermark import (
    COLUMNS,
    DEFAULT_MIN_TOKENS,
    DEFAULT_Z,
    IGNORE_REPEATED_NGRAMS,
    SEEDING_SCHEMES,
    Z,
    WatermarkConfig,
    load_scorer,
)
from provkit.lm.watermark_data import watermark_batch

WATERMARK_POLICIES = ("drop", "weight")
WATERMARK_REASON = "watermark_z"


@dataclass(frozen=True)
class WatermarkStepConfig:
    """``watermark`` step: the generator (``model``), where its key is, the green-list parameters and the policy."""

    model: str = ""
    key_file: str | None = None
    key_env: str | None = None
    policy: str = "drop"
    z_threshold: float = DEFAULT_Z
    beta: float = 1.0
    cap: float = 10.0
    min_tokens: int = DEFAULT_MIN_TOKENS
    seeding_scheme: str = "lefthash"
    greenlist_ratio: float = 0.25
    context_width: int = 1
    ignore_repeated_ngrams: bool = IGNORE_REPEATED_NGRAMS  # score each distinct n-gram once

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("model: the generating model's directory is required (its tokenizer and config)")
        if (self.key_file is None) == (self.key_env is None):
            raise ConfigError("key_file: give exactly one of key_file (a path) or key_env (an environment variable "
                              "name); never the key itself")
        if self.policy not in WATERMARK_POLICIES:
            raise ConfigError(f"policy: expected drop or weight, got {self.policy!r}")
        if not math.isfinite(self.z_threshold):
            raise ConfigError(f"z_threshold: must be a finite number, got {self.z_threshold}")
        if self.beta < 0:
            raise ConfigError(f"beta: must be >= 0, got {self.beta}")
        if self.cap < 1:
            raise ConfigError(f"cap: must be >= 1 (weights have mean 1), got {self.cap}")
        if self.min_tokens < 1:
            raise ConfigError(f"min_tokens: must be >= 1, got {self.min_tokens}")
        if self.seeding_scheme not in SEEDING_SCHEMES:
            raise ConfigError(f"seeding_scheme: expected one of {', '.join(SEEDING_SCHEMES)}, got {self.seeding_scheme!r}")

    def watermark(self) -> WatermarkConfig:
        try:
            return WatermarkConfig(seeding_scheme=self.seeding_scheme, greenlist_ratio=self.greenlist_ratio,
                                   context_width=self.context_width, key_file=self.key_file, key_env=self.key_env)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("watermark.", "", 1)) from None


def watermarked_probability(z: np.ndarray, z_threshold: float) -> np.ndarray:
    """``Phi(z - z_threshold)`` (0 where z is NaN: too short to tell)."""
    z = np.asarray(z, dtype=np.float64)
    out = 0.5 * np.array([math.erfc(-(v - z_threshold) / math.sqrt(2.0)) for v in np.nan_to_num(z, nan=-np.inf)])
    return np.where(np.isnan(z), 0.0, out)


class _WatermarkScore:
    """Scoring both policies share: the :data:`provkit.lm.watermark.COLUMNS` from the generator's key."""

    name = "watermark"
    decide_columns = (Z,)
    config: WatermarkStepConfig
    _scorer: Any = None

    @property
    def scorer(self) -> Any:
        if self._scorer is None:
            try:
                self._scorer = load_scorer(self.config.model, self.config.watermark(), min_tokens=self.config.min_tokens,
                                           ignore_repeated_ngrams=self.config.ignore_repeated_ngrams)
            except ConfigError as exc:
                message = str(exc)
                raise ConfigError(message if message.startswith(("key_", "model", "watermark")) else f"model: {message}") from None
        return self._scorer

    def __getstate__(self) -> dict[str, Any]:  # ship the config (key path / env name), never the key
        return {**self.__dict__, "_scorer": None}

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return watermark_batch(self.scorer, batch)[0]

    def z(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        return pc.fill_null(column, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)

    def _drop(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        return np.nan_to_num(self.z(column), nan=-np.inf) >= self.config.z_threshold


class WatermarkStep(_WatermarkScore, BaseStep):
    """``policy = "drop"``: map-only; drops ``z >= z_threshold`` with reason ``watermark_z``."""

    def __init__(self, config: WatermarkStepConfig, scorer: Any = None):
        super().__init__(config)
        self._scorer = scorer

    def decide(self, batch: pa.RecordBatch, plan: Any) -> pa.RecordBatch:
        return decisions(batch.num_rows, reasons_where(self._drop(batch.column(Z)), WATERMARK_REASON))


class WatermarkWeightStep(_WatermarkScore, RowPlanStep):
    """``policy = "weight"``: ``watermark_weight = min(s * (1 - Phi(z - z_threshold))^beta, cap)``, mean 1.

    Nothing is dropped: a text at the threshold weighs about half a human one.
    Plan memory: 16 bytes per alive row.
    """

    weight_column = "watermark_weight"

    def __init__(self, config: WatermarkStepConfig, scorer: Any = None):
        super().__init__(config)
        self._scorer = scorer

    def plan(self, table: pa.Table) -> Any:
        p = watermarked_probability(self.z(table.column(Z)), self.config.z_threshold)
        weights = importance_weights(p, self.config.beta, self.config.cap)
        return row_plan(table.column(ORDER).to_numpy(), pa.nulls(table.num_rows, pa.string()),
                        watermark_weight=pa.array(weights))


Config = WatermarkStepConfig
__all__ = ["COLUMNS", "WatermarkStep", "WatermarkStepConfig", "WatermarkWeightStep", "watermarked_probability"]


def build(config: WatermarkStepConfig, dataset: Any) -> BaseStep:
    """The drop or the weight step by ``policy``; loads the generator's tokenizer and reads the key now."""
    step = (WatermarkWeightStep if config.policy == "weight" else WatermarkStep)(config)
    step.scorer  # noqa: B018 - a missing model or key is a one-line error before any scoring
    return step
