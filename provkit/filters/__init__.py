"""Filters: curation steps over Arrow record batches, their registry, and the pipeline runner.

The Step protocol (score -> plan -> decide) is :mod:`provkit.filters.step`;
the step kinds are :mod:`provkit.filters.steps` (one module per kind, one
registry table); :func:`run_pipeline` runs a pipeline with an engine object
implementing :class:`provkit.filters.engine.Engine` (this package imports no
engine: :mod:`provkit.engines` provides them and ``run_filter`` by name).
The algorithms (MinHash, LSH, dedup, quality, tail, mix, ``detector/``) stay
importable from their modules.
"""

from provkit.filters.config import (
    FilterFlags,
    PipelineConfig,
    StepSpec,
    load_pipeline,
    parse_pipeline,
    pipeline_from_flags,
    resolve_pipeline,
)
from provkit.filters.engine import Engine, EngineResult, StepStats, check_conservation
from provkit.filters.pipeline import FilterResult, build_steps, run_pipeline
from provkit.filters.step import BaseStep, ClusterDedup, RowPlanStep, Step
from provkit.filters.steps import STEP_CONFIGS, STEPS, build_step

__all__ = [
    "FilterFlags", "PipelineConfig", "StepSpec", "load_pipeline", "parse_pipeline", "pipeline_from_flags",
    "resolve_pipeline", "Engine", "EngineResult", "StepStats", "check_conservation",
    "FilterResult", "build_steps", "run_pipeline", "BaseStep", "ClusterDedup", "RowPlanStep", "Step",
    "STEP_CONFIGS", "STEPS", "build_step",
]
