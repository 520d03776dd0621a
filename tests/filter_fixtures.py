"""Real small data for the filter tests: builtin human text, a word-bigram generator fitted on it."""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from provkit.provenance import Activity, DatasetWriter, Generator, builtin_texts, make_batch


@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[str, ...]:
    return tuple(builtin_texts("python-docs"))  # parsed once per test session (~10 s of ast parsing)


def human_texts(n: int, start: int = 0) -> list[str]:
    return list(_builtin()[start:start + n])


def bigram_model_texts(n: int, seed: int = 0, words: int = 60, fit_on: int = 400) -> list[str]:
    """``n`` texts sampled from a word-bigram chain fitted on the first ``fit_on`` builtin documents."""
    follow: dict[str, list[str]] = defaultdict(list)
    starts = []
    for text in human_texts(fit_on):
        tokens = text.split()
        if tokens:
            starts.append(tokens[0])
        for a, b in zip(tokens, tokens[1:]):
            follow[a].append(b)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        word = starts[rng.integers(len(starts))]
        seq = [word]
        for _ in range(words - 1):
            nxt = follow.get(word)
            word = nxt[rng.integers(len(nxt))] if nxt else starts[rng.integers(len(starts))]
            seq.append(word)
        out.append(" ".join(seq))
    return out


def write_dataset(path: Path, human: Sequence[str], model: Sequence[Sequence[str]] = (),
                  human_ids: Sequence[str] | None = None) -> Path:
    """A provkit dataset of human texts plus model texts of generations 1, 2, ... (one list per generation)."""
    with DatasetWriter(path, Activity("ingest", {"test": True})) as w:
        if human:
            w.write(make_batch(list(human), ids=list(human_ids or [f"h{i}" for i in range(len(human))])))
        for g, texts in enumerate(model, start=1):
            if texts:
                w.write(make_batch(list(texts), ids=[f"g{g}-{i}" for i in range(len(texts))], origin="model",
                                   generators=[Generator("bigram", generation=g, seed=g)] * len(texts)))
    return path
