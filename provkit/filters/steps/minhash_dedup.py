"""``minhash_dedup``: MinHash signatures of word shingles + LSH + connected components."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from provkit.errors import ConfigError
from provkit.filters.dedup import NearDupConfig, near_duplicates
from provkit.filters.minhash import signatures, signatures_from_arrow, signatures_to_arrow
from provkit.filters.step import ORDER, ClusterDedup, RowPlanStep, append_columns


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

    def near_dup(self) -> NearDupConfig:
        return NearDupConfig(threshold=self.threshold, ngram=self.ngram, num_perm=self.num_perm, seed=self.seed)


class MinhashDedupStep(RowPlanStep):
    """Score ``_minhash`` signatures; drop near duplicates (``near_duplicate``) by connected components.

    Plan memory: the signature (4 * num_perm bytes) + id + origin per alive row,
    plus the LSH index of :mod:`provkit.filters.dedup`.
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
        result = near_duplicates(sigs, table.column("origin"), orders, self.config.near_dup())
        return self.cluster_dedup.survivor_plan(orders, result, table.column("id"))


Config = MinhashDedupConfig


def build(config: MinhashDedupConfig, dataset: Any) -> MinhashDedupStep:
    return MinhashDedupStep(config)
