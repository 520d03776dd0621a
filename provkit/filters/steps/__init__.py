"""The pipeline's step kinds: one module per kind, one registry table.

Each module under ``filters/steps/`` holds (or imports) its step classes and
exposes ``Config`` (the config dataclass: every TOML key of the step but
``kind`` is one of its fields; ``__post_init__`` raises ``ConfigError("key:
problem")``) and ``build(config, dataset) -> Step`` (loads the models and
references the step needs).  :data:`STEPS` maps a ``kind`` to its module;
every other list is derived from it.  A new step kind is one module here plus
one line in :data:`STEPS`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from provkit.filters.step import Step
from provkit.filters.steps import (
    detector, exact_dedup, minhash_dedup, mix, origin, quality, random_drop, resample, tail, watermark,
)
from provkit.filters.steps.detector import DetectorStep, DetectorStepConfig, DetectorWeightStep
from provkit.filters.steps.exact_dedup import ExactDedupConfig, ExactDedupStep
from provkit.filters.steps.minhash_dedup import MinhashDedupConfig, MinhashDedupStep
from provkit.filters.steps.quality import QualityStep, QualityStepConfig
from provkit.provenance import Dataset

STEPS: dict[str, ModuleType] = {
    "exact_dedup": exact_dedup,
    "minhash_dedup": minhash_dedup,
    "quality": quality,
    "detector": detector,
    "tail": tail,
    "mix": mix,
    "origin": origin,
    "random_drop": random_drop,
    "resample": resample,
    "watermark": watermark,
}
"""Step kind (the ``kind`` of a ``[[steps]]`` table) -> its module."""

STEP_CONFIGS: dict[str, type] = {kind: module.Config for kind, module in STEPS.items()}

__all__ = [
    "STEPS", "STEP_CONFIGS", "build_step", "DetectorStep", "DetectorStepConfig", "DetectorWeightStep",
    "ExactDedupConfig", "ExactDedupStep", "MinhashDedupConfig", "MinhashDedupStep", "QualityStep",
    "QualityStepConfig",
]


def build_step(kind: str, config: Any, dataset: Dataset) -> Step:
    """Make the step of ``kind`` for ``dataset`` (loads models and references it needs)."""
    return STEPS[kind].build(config, dataset)
