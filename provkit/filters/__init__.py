"""Filters: curation steps over Arrow record batches and the pipeline that runs them.

The Step protocol (score -> plan -> decide) is in :mod:`provkit.filters.step`.
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
from provkit.filters.mix import MixConfig, MixStep
from provkit.filters.pipeline import FilterResult, build_steps, report_markdown, run_filter
from provkit.filters.step import (
    DROP_REASON,
    DROP_STEP,
    INTERNAL_PREFIX,
    ORDER,
    SAMPLE_WEIGHT,
    BaseStep,
    RowPlanStep,
    Step,
    append_columns,
    lookup_row_plan,
    row_plan,
    decisions,
    reasons_where,
    seeded_uniform,
)
from provkit.filters.steps import DetectorStep, DetectorStepConfig
from provkit.filters.tail import TailConfig, TailStep, UnigramModel, capped_weights, count_tokens, word_tokens

__all__ = [
    "FilterFlags", "PipelineConfig", "StepSpec", "load_pipeline", "parse_pipeline", "pipeline_from_flags",
    "resolve_pipeline", "MixConfig", "MixStep", "FilterResult", "build_steps", "report_markdown", "run_filter",
    "DetectorStep", "DetectorStepConfig", "TailConfig", "TailStep", "UnigramModel", "capped_weights",
    "count_tokens", "word_tokens",
    "DROP_REASON", "DROP_STEP", "INTERNAL_PREFIX", "ORDER", "SAMPLE_WEIGHT", "BaseStep", "RowPlanStep", "Step",
    "append_columns", "lookup_row_plan", "row_plan", "decisions", "reasons_where", "seeded_uniform",
]
