"""``resample``: draw a fixed number of rows with probability ∝ a weight, each row at most ``max_copies`` times.

The draw is *successive sampling of virtual copies* (the scheme of Drayson et al.
2025's released code: every record is repeated ``max_copies`` times and ``size``
items are drawn without replacement with probability ∝ weight), written so that
any engine and batching give the same result: virtual copy ``j`` of record ``i``
gets the Efraimidis–Spirakis key ``log(u_ij) / w_i`` with
``u_ij = seeded_uniform(id_i, seed, "resample:j")``; the ``size`` largest keys are
drawn.  ``copies_i`` = how many of record ``i``'s copies were drawn.

Weights: ``column = ""`` gives uniform weights; otherwise ``x`` = that decide
column of an earlier step (``detector_score``, ``tail_score``) and
``w = (1 - x)^exponent`` with ``complement = true`` (importance weights
``(1 - P(model))^beta``), else ``w = x^exponent``.  A weight of 0 is drawn only
when nothing else is left.  When the alive rows cannot fill ``size`` with
``max_copies`` each, the cap is raised to ``ceil(size / alive)`` (recorded in the
``resample_cap`` annotation) so the result always has exactly ``size`` rows counted
with their copies.  Rows not drawn are dropped with reason ``resample_not_drawn``;
drawn rows carry ``resample_copies`` (also their weight: ``sample_weight`` ∝ copies).

Plan memory: the decide column + id per alive row, and ``max_copies`` keys per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.core.hashing import seeded_uniform
from provkit.errors import ConfigError
from provkit.filters.step import ORDER, RowPlanStep, reasons_where, row_plan

REASON = "resample_not_drawn"


@dataclass(frozen=True)
class ResampleConfig:
    size: int = 0
    column: str = ""
    complement: bool = False
    exponent: float = 1.0
    max_copies: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"size: the number of rows to draw must be >= 1, got {self.size}")
        if self.max_copies < 1:
            raise ConfigError(f"max_copies: must be >= 1, got {self.max_copies}")
        if self.exponent < 0:
            raise ConfigError(f"exponent: must be >= 0, got {self.exponent}")


def virtual_copy_draw(ids: pa.Array | pa.ChunkedArray | list[str], weights: np.ndarray, size: int, max_copies: int,
                      seed: int) -> tuple[np.ndarray, int]:
    """(copies per row, the cap used): ``size`` draws by successive sampling of ``max_copies`` virtual copies."""
    n = len(weights)
    if n == 0:
        return np.zeros(0, dtype=np.int64), max_copies
    cap = max(max_copies, math.ceil(size / n))
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    keys = np.empty((cap, n))
    with np.errstate(divide="ignore"):
        for j in range(cap):
            u = np.clip(seeded_uniform(ids, seed, salt=f"resample:{j}"), 1e-300, None)
            keys[j] = np.where(w > 0, np.log(u) / np.where(w > 0, w, 1.0), -np.inf)
    flat = keys.T.reshape(-1)  # row-major over (row, copy): ties (-inf) break by row order
    take = np.argsort(-flat, kind="stable")[: min(size, flat.size)]
    copies = np.bincount(take // cap, minlength=n).astype(np.int64)
    return copies, cap


class ResampleStep(RowPlanStep):
    name = "resample"

    def __init__(self, config: ResampleConfig):
        super().__init__(config)
        self.decide_columns = ("id",) + ((config.column,) if config.column else ())
        self.weight_column = "resample_copies"

    def weights(self, table: pa.Table) -> np.ndarray:
        cfg = self.config
        if not cfg.column:
            return np.ones(table.num_rows)
        if cfg.column not in table.column_names:
            raise ConfigError(f"column: {cfg.column!r} is not written by an earlier step of the pipeline")
        x = pc.fill_null(table.column(cfg.column), 0.0).to_numpy().astype(np.float64)
        return np.power(np.clip(1.0 - x, 0.0, None), cfg.exponent) if cfg.complement else np.power(np.clip(x, 0.0, None), cfg.exponent)

    def plan(self, table: pa.Table) -> pa.Table:
        cfg = self.config
        copies, cap = virtual_copy_draw(table.column("id"), self.weights(table), cfg.size, cfg.max_copies, cfg.seed)
        reasons = reasons_where(copies == 0, REASON)
        return row_plan(table.column(ORDER).to_numpy(), reasons, resample_copies=pa.array(copies, pa.int64()),
                        resample_cap=pa.array(np.full(len(copies), cap, dtype=np.int64)))


Config = ResampleConfig


def build(config: ResampleConfig, dataset: object) -> ResampleStep:
    return ResampleStep(config)
