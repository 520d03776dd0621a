"""What the pipeline runner needs from an engine: a small protocol that engines implement.

:mod:`provkit.filters` defines the steps and runs a pipeline
(:func:`provkit.filters.pipeline.run_pipeline`); it never imports an engine.
An engine is any object with a ``name`` and ``run(dataset, steps, writer,
progress) -> EngineResult``: it scores, plans and decides the steps (see
:mod:`provkit.filters.step`), writes kept rows to ``data`` and dropped rows
to ``rejects`` through the writer, and counts.  The runner checks the
counts: ``input == kept + sum(dropped)`` per step and in total.

Engines live in :mod:`provkit.engines` (``local``, ``ray``).  An engine that
can cluster implements the :class:`provkit.filters.step.ClusterDedup`
capability a dedup step declares; others run the step's own ``plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from provkit.core.progress import Advance
from provkit.filters.step import Step
from provkit.provenance import Dataset, DatasetWriter


@dataclass
class StepStats:
    """What one step did: rows in, kept, dropped by reason, weights of the rows it kept, seconds."""

    name: str
    rows_in: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    weight: dict[str, float] | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"step": self.name, "in": self.rows_in, "kept": self.kept, "dropped": dict(self.dropped),
                "weight": self.weight, "seconds": round(self.seconds, 4)}


@dataclass
class EngineResult:
    """Totals of one run: ``input == kept + sum(dropped.values())``."""

    input: int
    kept: int
    dropped: dict[str, int]
    steps: list[StepStats]
    sample_weight: dict[str, float] | None = None
    clustering: dict[str, Any] = field(default_factory=dict)  # step name -> engine clustering figures (ray)


class Engine(Protocol):
    """Runs a pipeline's steps over a dataset into a writer (see the module docstring)."""

    name: str

    def run(self, dataset: Dataset, steps: Sequence[Step], writer: DatasetWriter,
            progress: Advance | None = None) -> EngineResult: ...


def check_conservation(result: EngineResult) -> None:
    """``input == kept + sum(dropped)``, per step and in total (a broken identity is a bug, not bad input)."""
    total = result.kept + sum(result.dropped.values())
    if total != result.input:
        raise RuntimeError(f"conservation broken: input {result.input} != kept {result.kept} + dropped {total - result.kept}")
    for st in result.steps:
        if st.rows_in != st.kept + sum(st.dropped.values()):
            raise RuntimeError(f"conservation broken in step {st.name!r}")
