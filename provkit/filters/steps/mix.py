"""``mix``: a training mix of human and model records (replace, accumulate, keep-human=F), see :mod:`provkit.filters.mix`."""

from __future__ import annotations

from typing import Any

from provkit.filters.mix import MixConfig, MixStep

Config = MixConfig


def build(config: MixConfig, dataset: Any) -> MixStep:
    return MixStep(config)
