"""Run a toy under one condition (:func:`run_toy`) or several side by side (:func:`run_toys`)."""

from __future__ import annotations

from typing import Sequence

from provkit.core.progress import Advance, quiet_advance
from provkit.train.toy.config import TOY_CONDITIONS, ToyConfig
from provkit.train.toy.gaussian import run_gaussian
from provkit.train.toy.gmm import run_gmm
from provkit.train.toy.loop import ToyResult
from provkit.train.toy.vae import VaeResult, run_vae

AnyToyResult = ToyResult | VaeResult


def run_toys(cfg: ToyConfig, conditions: Sequence[str] = TOY_CONDITIONS,
             progress: Advance = quiet_advance) -> list[AnyToyResult]:
    """``cfg`` under each condition, in order; ``progress(1)`` after each condition (gaussian, gmm) or VAE trained
    (:func:`progress_total` calls in all)."""
    conditions = list(dict.fromkeys(conditions))
    for c in conditions:
        cfg.with_condition(c)  # validates every condition before any work
    if cfg.kind == "vae":
        return list(run_vae(cfg, conditions, progress))
    run = run_gaussian if cfg.kind == "gaussian" else run_gmm
    results: list[AnyToyResult] = []
    for c in conditions:
        results.append(run(cfg.with_condition(c)))
        progress(1)
    return results


def run_toy(cfg: ToyConfig) -> AnyToyResult:
    """``cfg`` under ``cfg.condition``."""
    return run_toys(cfg, [cfg.condition])[0]


def progress_total(cfg: ToyConfig, conditions: Sequence[str]) -> int:
    """How many ``progress(1)`` calls :func:`run_toys` makes (the VAE shares generation 1 across conditions)."""
    n = len(dict.fromkeys(conditions))
    return cfg.repeats * (1 + n * (cfg.generations - 1)) if cfg.kind == "vae" else n
