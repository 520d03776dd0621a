"""Filters: curation steps over Arrow record batches and the pipeline that runs them.

The Step protocol (score -> plan -> decide) is in :mod:`provkit.filters.step`.
"""

from provkit.core.hashing import seeded_uniform
from provkit.core.text import count_tokens, word_tokens
from provkit.filters.config import (
    FilterFlags,
    PipelineConfig,
    StepSpec,
    load_pipeline,
    parse_pipeline,
    pipeline_from_flags,
    resolve_pipeline,
)
from provkit.filters.components import canonical_labels, component_labels
from provkit.filters.dedup import (
    DedupResult,
    NearDupConfig,
    elect_survivors,
    exact_duplicates,
    near_duplicate_components,
    near_duplicates,
    origin_rank,
)
from provkit.filters.lsh import band_hashes, candidate_pairs, optimal_params
from provkit.filters.minhash import (
    MinHashConfig,
    ShingleHash,
    estimate_jaccard,
    minhash_signatures,
    permutations,
    shingle_hashes,
    shingles,
    signatures,
    signatures_from_arrow,
    signatures_to_arrow,
    words,
)
from provkit.filters.quality import QualityThresholds, quality_reasons, quality_scores
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
    combine_weights,
    lookup_row_plan,
    row_plan,
    decisions,
    reasons_where,
)
from provkit.filters.steps import DetectorStep, DetectorStepConfig, QualityStep, QualityStepConfig
from provkit.filters.tail import (
    LMSurprisal,
    TailConfig,
    TailStep,
    UnigramModel,
    capped_weights,
)

__all__ = [
    "canonical_labels", "component_labels", "DedupResult", "NearDupConfig", "elect_survivors", "exact_duplicates",
    "near_duplicate_components", "near_duplicates", "origin_rank", "band_hashes", "candidate_pairs",
    "optimal_params", "MinHashConfig", "ShingleHash", "estimate_jaccard", "minhash_signatures", "permutations",
    "shingle_hashes", "shingles", "signatures", "signatures_from_arrow", "signatures_to_arrow", "words",
    "QualityThresholds", "quality_reasons", "quality_scores",
    "FilterFlags", "PipelineConfig", "StepSpec", "load_pipeline", "parse_pipeline", "pipeline_from_flags",
    "resolve_pipeline", "MixConfig", "MixStep", "FilterResult", "build_steps", "report_markdown", "run_filter",
    "DetectorStep", "DetectorStepConfig", "QualityStep", "QualityStepConfig", "LMSurprisal", "TailConfig", "TailStep", "UnigramModel", "capped_weights",
    "count_tokens", "word_tokens",
    "DROP_REASON", "DROP_STEP", "INTERNAL_PREFIX", "ORDER", "SAMPLE_WEIGHT", "BaseStep", "RowPlanStep", "Step",
    "append_columns", "combine_weights", "lookup_row_plan", "row_plan", "decisions", "reasons_where", "seeded_uniform",
]
