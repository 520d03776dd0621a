"""Engines: executors of a filter pipeline's steps (local streaming; Ray Data in ``ray``)."""

from provkit.engines.local import EngineResult, LocalEngine, StepStats, decide_column_names, decide_step, score_batch

__all__ = ["EngineResult", "LocalEngine", "StepStats", "decide_column_names", "decide_step", "score_batch"]
