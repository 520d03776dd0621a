"""``exact_dedup``: equal ``content_hash`` -> one survivor (human first, then earliest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from provkit.filters.dedup import exact_duplicates
from provkit.filters.step import ORDER, ClusterDedup, RowPlanStep


@dataclass
class ExactDedupConfig:
    """``exact_dedup`` step: equal ``content_hash`` -> one survivor (human first, then earliest)."""


class ExactDedupStep(RowPlanStep):
    """Drop exact duplicates (``exact_duplicate``); rejects name the survivor in ``dup_of``.

    Plan memory: id + content_hash + origin (~110 bytes) per alive row.
    """

    name = "exact_dedup"
    decide_columns = ("id", "content_hash", "origin")
    cluster_dedup = ClusterDedup("exact_duplicate", "exact_cluster")

    def plan(self, table: pa.Table) -> pa.Table:
        orders = table.column(ORDER).to_numpy()
        result = exact_duplicates(table.column("content_hash"), table.column("origin"), orders)
        return self.cluster_dedup.survivor_plan(orders, result, table.column("id"))


Config = ExactDedupConfig


def build(config: ExactDedupConfig, dataset: Any) -> ExactDedupStep:
    return ExactDedupStep(config)
