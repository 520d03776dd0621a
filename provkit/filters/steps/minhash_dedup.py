"""``minhash_dedup``: MinHash signatures of word shingles + LSH + connected components."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from provkit.errors import ConfigError
from provkit.filters.dedup import (
    NearDupConfig,
    near_duplicates_within_budget,
)
from provkit.filters.minhash import (
    signatures,
    signatures_from_arrow,
    signatures_to_arrow,
)
from provkit.filters.step import ORDER, ClusterDedup, RowPlanStep, append_columns, survivor_row_plan


@dataclass
class MinhashDedupConfig:
    """``minhash_dedup`` step: MinHash of word ``ngram`` shingles + LSH at Jaccard ``threshold``.

    ``memory_mb`` bounds the plan's memory (see :mod:`provkit.filters.dedup`): above it the
    clustering spills to disk; a budget below 24 bytes per record is refused.  Unset: 1024 MiB.
    The local engine also refuses, before any work, a run whose whole-process estimate
    (:func:`provkit.filters.dedup.process_bytes_estimate`) exceeds its memory limit.
    """

    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5
    seed: int = 1
    memory_mb: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"threshold: must be in (0, 1], got {self.threshold}")
        if self.num_perm < 2 or self.ngram < 1:
            raise ConfigError(f"num_perm/ngram: must be >= 2 / >= 1, got {self.num_perm}/{self.ngram}")
        budget = self.memory_mb
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                                   or not math.isfinite(budget) or budget <= 0):
            raise ConfigError(f"memory_mb: must be a positive number of MiB, got {self.memory_mb!r}")

    def near_dup(self) -> NearDupConfig:
        return NearDupConfig(threshold=self.threshold, ngram=self.ngram, num_perm=self.num_perm, seed=self.seed,
                             memory_mb=self.memory_mb)


class MinhashDedupStep(RowPlanStep):
    """Score ``_minhash`` signatures; drop near duplicates (``near_duplicate``) by connected components.

    Plan memory: the signature (4 * num_perm bytes) + id + origin per alive row,
    plus the LSH index of :mod:`provkit.filters.dedup` within ``memory_mb``.  The local
    engine plans it its own way: signatures in a file, no id in memory (the survivors'
    ids are read back from its spill), origin (4 bytes) + row order (8) + the forest (8)
    + 1 byte per alive row, and a plan listing only the rows of clusters of 2+ rows.
    """

    name = "minhash_dedup"
    decide_columns = ("id", "origin", "_minhash")

    def __init__(self, config: MinhashDedupConfig):
        super().__init__(config)
        self.cluster_dedup = ClusterDedup("near_duplicate", "near_dup_cluster", "_minhash", config.near_dup())

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        sigs = signatures(batch.column("text").to_pylist(), self.config.near_dup().minhash())
        return append_columns(batch, {"_minhash": signatures_to_arrow(sigs)})

    def plan(self, table: pa.Table) -> pa.Table:
        orders = table.column(ORDER).to_numpy()
        sigs = signatures_from_arrow(table.column("_minhash"))
        result = near_duplicates_within_budget(sigs, table.column("origin"), orders, self.config.near_dup())
        return survivor_row_plan(orders, result, table.column("id"), self.cluster_dedup.reason,
                                 self.cluster_dedup.cluster_column)


Config = MinhashDedupConfig


def build(config: MinhashDedupConfig, dataset: Any) -> MinhashDedupStep:
    return MinhashDedupStep(config)
