"""``random_drop``: drop rows uniformly at random — a control for "fewer records".

The number dropped is ``count``, or, with ``match_column`` set, the number of alive
rows whose ``match_column`` (a decide column of an earlier step, e.g.
``detector_score``) exceeds ``above``: so a pipeline ``detector (policy drop,
max_model_prob = 1) → random_drop (match_column = detector_score, above = T)``
drops exactly as many rows as a detector at threshold T would, but at random.
The dropped rows are those with the smallest ``seeded_uniform(id, seed,
"random_drop")`` (same result on any engine).  Reason ``random_drop``.

Plan memory: id + the match column per alive row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.core.hashing import seeded_uniform
from provkit.errors import ConfigError
from provkit.filters.step import ORDER, RowPlanStep, row_plan

REASON = "random_drop"


@dataclass(frozen=True)
class RandomDropConfig:
    count: int = 0
    match_column: str = ""
    above: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ConfigError(f"count: must be >= 0, got {self.count}")
        if self.count and self.match_column:
            raise ConfigError("count: give either count or match_column, not both")


class RandomDropStep(RowPlanStep):
    name = "random_drop"

    def __init__(self, config: RandomDropConfig):
        super().__init__(config)
        self.decide_columns = ("id",) + ((config.match_column,) if config.match_column else ())

    def how_many(self, table: pa.Table) -> int:
        cfg = self.config
        if not cfg.match_column:
            return cfg.count
        if cfg.match_column not in table.column_names:
            raise ConfigError(f"match_column: {cfg.match_column!r} is not written by an earlier step of the pipeline")
        x = pc.fill_null(table.column(cfg.match_column), 0.0).to_numpy().astype(np.float64)
        return int(np.count_nonzero(x > cfg.above))

    def plan(self, table: pa.Table) -> pa.Table:
        k = min(self.how_many(table), table.num_rows)
        u = seeded_uniform(table.column("id"), self.config.seed, salt="random_drop")
        drop = np.zeros(table.num_rows, dtype=bool)
        drop[np.argsort(u, kind="stable")[:k]] = True
        return row_plan(table.column(ORDER).to_numpy(), [REASON if d else None for d in drop.tolist()])


Config = RandomDropConfig


def build(config: RandomDropConfig, dataset: object) -> RandomDropStep:
    return RandomDropStep(config)
