"""``random_drop``: drop rows uniformly at random — a control for "fewer records".

The number dropped is ``count``, or, with ``match_column`` set, the number of alive
rows whose ``match_column`` (a decide column of an earlier step, e.g.
``detector_score``) exceeds ``above``: so a pipeline ``detector (policy drop,
max_model_prob = 1) → random_drop (match_column = detector_score, above = T)``
drops exactly as many rows as a detector at threshold T would, but at random.
The dropped rows are those with the smallest ``seeded_uniform(id, seed,
"random_drop")`` (same result on any engine), ties broken by row order: the
set a stable ``argsort`` of the draws would give, found in ``O(n)`` from the
``k``-th smallest draw ``t`` (:func:`kth_smallest`: a histogram, then
``np.argpartition`` inside one bucket): every row below ``t``, then the first
rows equal to ``t``.  Reason ``random_drop``.

Plan memory per alive row, beyond the engine's decide columns (id, and the match
column when set) and the engine's ``int64`` row order: 8 bytes of draw
(``float64``, computed a batch of ids at a time,
:func:`provkit.core.hashing.seeded_uniform`) + 1 byte of drop mask (+ 1 while
``u < t`` is taken).  The plan lists only the dropped rows (``int64`` order + the
reason: ~13 bytes per dropped row); no Python object per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.core.hashing import seeded_uniform
from provkit.errors import ConfigError
from provkit.filters.step import ORDER, RowPlanStep, reasons_where, row_plan

REASON = "random_drop"
SELECT_BUCKETS = 1 << 16
"""Histogram buckets of :func:`kth_smallest`."""
SELECT_CHUNK = 1 << 20
"""Draws bucketed at a time by :func:`kth_smallest`."""


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
        drop = smallest_mask(seeded_uniform(table.column("id"), self.config.seed, salt=REASON), k)
        orders = table.column(ORDER).to_numpy()[drop]
        return row_plan(orders, reasons_where(np.ones(len(orders), dtype=bool), REASON))


def smallest_mask(u: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` smallest values of ``u`` (finite), ties taken in index order.

    The same rows as ``np.argsort(u, kind="stable")[:k]``, in ``O(n)``: with ``t`` the ``k``-th
    smallest value (:func:`kth_smallest`), every ``u < t`` and the first ``k - #{u < t}`` of ``u == t``.
    """
    n = len(u)
    if k <= 0:
        return np.zeros(n, dtype=bool)
    if k >= n:
        return np.ones(n, dtype=bool)
    t = kth_smallest(u, k)
    mask = u < t
    ties = np.flatnonzero(u == t)[: k - int(np.count_nonzero(mask))]
    mask[ties] = True
    return mask


def kth_smallest(u: np.ndarray, k: int) -> float:
    """The ``k``-th smallest value of ``u`` (``1 <= k <= len(u)``, finite values) without an index per row.

    A histogram of :data:`SELECT_BUCKETS` equal-width buckets over ``[min, max]`` (counted
    :data:`SELECT_CHUNK` values at a time; the bucket of ``x`` is ``floor((x - min) * B / (max - min))``,
    monotonic in ``x`` under rounding) finds the bucket holding the ``k``-th value; ``np.argpartition``
    of that bucket's values (``n / B`` of them for uniform draws) finds it inside.  Extra memory: the
    counts, one chunk of bucket numbers and the chosen bucket — not the 8 bytes per row of an
    ``argpartition`` of all of ``u``.
    """
    lo, hi = float(u.min()), float(u.max())
    if lo == hi:
        return lo
    scale = SELECT_BUCKETS / (hi - lo)

    def buckets(chunk: np.ndarray) -> np.ndarray:
        return np.minimum(((chunk - lo) * scale).astype(np.int64), SELECT_BUCKETS - 1)

    counts = np.zeros(SELECT_BUCKETS, dtype=np.int64)
    for start in range(0, len(u), SELECT_CHUNK):
        counts += np.bincount(buckets(u[start:start + SELECT_CHUNK]), minlength=SELECT_BUCKETS)
    cumulative = np.cumsum(counts)
    b = int(np.searchsorted(cumulative, k))  # the first bucket whose running count reaches k
    below = int(cumulative[b - 1]) if b else 0
    members = np.concatenate([chunk[buckets(chunk) == b] for chunk in
                              (u[start:start + SELECT_CHUNK] for start in range(0, len(u), SELECT_CHUNK))])
    return float(members[np.argpartition(members, k - below - 1)[k - below - 1]])


Config = RandomDropConfig


def build(config: RandomDropConfig, dataset: object) -> RandomDropStep:
    return RandomDropStep(config)
