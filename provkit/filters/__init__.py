"""Filters: curation steps over Arrow record batches and the pipeline that runs them.

The Step protocol (score -> plan -> decide) is in :mod:`provkit.filters.step`.
"""

from provkit.filters.step import (
    DROP_REASON,
    DROP_STEP,
    INTERNAL_PREFIX,
    ORDER,
    SAMPLE_WEIGHT,
    BaseStep,
    Step,
    append_columns,
    decisions,
    reasons_where,
    seeded_uniform,
)

__all__ = [
    "DROP_REASON", "DROP_STEP", "INTERNAL_PREFIX", "ORDER", "SAMPLE_WEIGHT", "BaseStep", "Step",
    "append_columns", "decisions", "reasons_where", "seeded_uniform",
]
