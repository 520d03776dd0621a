"""``origin``: drop records by their ``origin`` tag (default: those tagged ``model``); keep everything else.

Only the tag is read: records whose provenance was lost (``unknown``) are kept.
Reason ``origin_<tag>``.  Map-only."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from provkit.errors import ConfigError
from provkit.filters.step import BaseStep, decisions
from provkit.provenance import Origin

ORIGINS = tuple(o.value for o in Origin)


@dataclass(frozen=True)
class OriginConfig:
    drop: tuple[str, ...] = ("model",)

    def __post_init__(self) -> None:
        bad = [o for o in self.drop if o not in ORIGINS]
        if bad:
            raise ConfigError(f"drop: unknown origin {bad[0]!r}; expected some of {', '.join(ORIGINS)}")


class OriginStep(BaseStep):
    name = "origin"
    decide_columns = ("origin",)

    def decide(self, batch: pa.RecordBatch, plan: object) -> pa.RecordBatch:
        origins = batch.column("origin").cast(pa.string()).to_pylist()
        drop = set(self.config.drop)
        return decisions(batch.num_rows, [f"origin_{o}" if o in drop else None for o in origins])


Config = OriginConfig


def build(config: OriginConfig, dataset: object) -> OriginStep:
    return OriginStep(config)
