"""``tail``: tail weights ``rarity^alpha`` (unigram surprisal against a reference, or LM surprisal), optional resampling.

The step itself is :class:`provkit.filters.tail.TailStep`; this module builds it with its reference."""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from provkit.errors import ConfigError
from provkit.filters.step import Step
from provkit.filters.tail import LMSurprisal, TailConfig, TailStep, UnigramModel
from provkit.provenance import Dataset, builtin_texts


def human_texts(dataset: Dataset) -> Iterator[str]:
    """Texts of the human records of ``dataset``, streamed."""
    for batch in dataset.iter_batches(columns=["text", "origin"]):
        human = pc.equal(batch.column("origin").cast(pa.string()), "human")
        yield from batch.column("text").filter(human).to_pylist()


def tail_reference(config: TailConfig, dataset: Dataset) -> UnigramModel:
    """The unigram reference: the input's human records (all records if it has none), a dataset, or a builtin corpus."""
    ref = config.reference
    if ref.startswith("builtin:"):
        try:
            return UnigramModel.fit(builtin_texts(ref.split(":", 1)[1]))
        except ValueError as exc:
            raise ConfigError(f"reference: {exc}") from None
    source = dataset if ref == "input" else Dataset.open(ref)
    model = UnigramModel.fit(human_texts(source))
    if model.total == 0:
        model = UnigramModel.fit(t for b in source.iter_batches(columns=["text"]) for t in b.column(0).to_pylist())
    return model



Config = TailConfig


def build(config: TailConfig, dataset: Dataset) -> Step:
    if config.rarity == "lm":
        try:
            return TailStep(config, LMSurprisal(config.model, config.max_tokens).load())
        except ConfigError as exc:
            raise ConfigError(str(exc) if str(exc).startswith("model:") else f"model: {exc}") from None
    return TailStep(config, tail_reference(config, dataset))
