"""Tail weighting: keep the rare records' share of the mix (the tails vanish first under collapse).

Rarity of a record = its mean token surprisal under a unigram model of a
reference human set::

    p(t) = (c(t) + 1) / (N + V + 1)          (add-one smoothing; one slot for unseen tokens)
    rarity(x) = (1/|x|) * sum_{t in x} -log2 p(t)      (0 for a record with no tokens)

With ``rarity = "lm"`` the reference is a causal language model saved by
:mod:`provkit.lm` (``save_model``): ``x`` is tokenized with the model's
tokenizer (no special tokens, at most ``max_tokens`` tokens) and

    rarity(x) = (1/(T-1)) * sum_{t=2..T} -log2 p_model(x_t | x_<t)

(bits per token; the first token has no context and is not scored; 0 for a
text with fewer than two tokens).

Weights ``w_i ∝ rarity_i^alpha``, capped at ``cap`` times the mean and normalised
to mean 1 over the rows the step sees: ``w_i = min(s * rarity_i^alpha, cap)``
with the scalar ``s`` chosen so that ``mean(w) = 1`` (water-filling; exists
for ``cap >= 1``).  Optionally the step resamples, without replacement, ``target``
rows with probability proportional to ``w`` (Efraimidis–Spirakis keys
``u_i^(1/w_i)``, ``u_i`` drawn from the record id and the seed), so the result
is the same for a seed whatever the batching or engine.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.core.hashing import seeded_uniform
from provkit.core.text import word_tokens
from provkit.errors import ConfigError
from provkit.filters.step import ORDER, RowPlanStep, append_columns, reasons_where, row_plan
from provkit.lm import encode_texts, load_model, sequence_nll


@dataclass(frozen=True)
class UnigramModel:
    """Add-one smoothed unigram frequencies of a reference corpus."""

    counts: dict[str, int]
    total: int

    @classmethod
    def fit(cls, texts: Iterable[str]) -> "UnigramModel":
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(word_tokens(text))
        return cls(dict(counts), int(sum(counts.values())))

    def surprisal(self, token: str) -> float:
        """-log2 p(token) with add-one smoothing."""
        return -math.log2((self.counts.get(token, 0) + 1) / (self.total + len(self.counts) + 1))

    def mean_surprisal(self, texts: Iterable[str]) -> np.ndarray:
        """Mean token surprisal (bits) of each text; 0 for a text with no tokens."""
        log_norm = math.log2(self.total + len(self.counts) + 1)
        out = []
        for text in texts:
            tokens = word_tokens(text)
            if not tokens:
                out.append(0.0)
                continue
            s = sum(math.log2(self.counts.get(t, 0) + 1) for t in tokens)
            out.append(log_norm - s / len(tokens))
        return np.array(out, dtype=np.float64)


def capped_scale(raw: np.ndarray, cap: float) -> float:
    """The scalar ``s`` with ``mean(min(s * raw, cap)) == 1`` (``raw >= 0``, ``cap >= 1``).

    ``mean(min(s*raw, cap))`` is continuous and non-decreasing in ``s``; solved
    exactly on the sorted values (the largest ``k`` values are capped).
    """
    raw = np.asarray(raw, dtype=np.float64)
    n = len(raw)
    if n == 0 or not np.any(raw > 0):
        return 1.0
    values = np.sort(raw)[::-1]
    suffix = np.cumsum(values[::-1])[::-1]  # suffix[k] = sum of values[k:]
    for k in range(n):  # k = number of capped values
        if k * cap > n:
            break
        rest = suffix[k] if k < n else 0.0
        if rest <= 0:
            continue
        s = (n - k * cap) / rest
        if s * values[k] <= cap and (k == 0 or s * values[k - 1] >= cap):
            return float(s)
    return float(cap / values[0])


def capped_weights(raw: np.ndarray, cap: float) -> np.ndarray:
    """``min(s * raw, cap)`` normalised to mean 1 (see :func:`capped_scale`)."""
    raw = np.asarray(raw, dtype=np.float64)
    return np.minimum(capped_scale(raw, cap) * raw, cap)


def weighted_sample_keys(weights: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Efraimidis–Spirakis keys ``log(u) / w``: the ``k`` largest are a weighted sample without replacement.

    (``log`` of ``u^(1/w)``, monotone, so no underflow.)  Zero weight -> ``-inf`` (sampled last).
    """
    with np.errstate(divide="ignore"):
        logs = np.log(np.maximum(uniform, np.finfo(np.float64).tiny))
        return np.where(weights > 0, logs / np.where(weights > 0, weights, 1.0), -np.inf)


def top_k_rows(keys: np.ndarray, orders: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` rows with the largest key (ties: lower order first)."""
    pick = np.lexsort((orders, -keys))[:k]
    mask = np.zeros(len(keys), dtype=bool)
    mask[pick] = True
    return mask


class LMSurprisal:
    """Mean token surprisal (bits) under a causal LM saved by :func:`provkit.lm.save_model`.

    Uses provkit.lm's public API (``load_model``, ``encode_texts``,
    ``sequence_nll``).  Pickles as its path (a Ray worker reloads the model).
    """

    def __init__(self, path: str, max_tokens: int = 256, batch_size: int = 32):
        self.path, self.max_tokens, self.batch_size = path, max_tokens, batch_size
        self._loaded: tuple[object, object] | None = None

    def load(self) -> "LMSurprisal":
        if self._loaded is None:
            model, tok = load_model(self.path)
            if tok is None:
                raise ConfigError(f"model: {self.path}: has no tokenizer (save it with provkit.lm.save_model)")
            limit = getattr(model.config, "max_position_embeddings", self.max_tokens)
            self.max_tokens = min(self.max_tokens, int(limit))
            self._loaded = (model, tok)
        return self

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_loaded": None}

    def mean_surprisal(self, texts: Iterable[str]) -> np.ndarray:
        """``sum -log2 p(x_t | x_<t) / (T - 1)`` per text (0 with fewer than two tokens)."""
        texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=np.float64)
        model, tok = self.load()._loaded  # type: ignore[misc]
        ids, mask = encode_texts(texts, tok, self.max_tokens)
        nll, count = sequence_nll(model, ids, mask, batch_size=self.batch_size)
        bits = np.divide(nll, count * math.log(2), out=np.zeros(len(texts)), where=count > 0)
        return bits.astype(np.float64)


RARITIES = ("unigram", "lm")


@dataclass
class TailConfig:
    """``tail`` step: rarity (``unigram`` or ``lm``), ``alpha`` exponent, ``cap`` (max weight, times the mean),
    optional resampling to ``target`` rows."""

    alpha: float = 0.5
    cap: float = 10.0
    rarity: str = "unigram"  # "unigram" (reference frequencies) or "lm" (surprisal under `model`)
    reference: str = "input"  # unigram: "input" (human records of the input), a provkit dataset path, builtin:NAME
    model: str = ""  # lm: a model directory saved by provkit.lm (save_model)
    max_tokens: int = 256  # lm: tokens scored per record (truncation)
    target: int | None = None  # resample (without replacement) to this many rows
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rarity not in RARITIES:
            raise ConfigError(f"rarity: expected unigram or lm, got {self.rarity!r}")
        if self.rarity == "lm" and not self.model:
            raise ConfigError('model: required with rarity = "lm" (a directory saved by provkit.lm)')
        if self.rarity == "unigram" and self.model:
            raise ConfigError('model: only used with rarity = "lm"')
        if self.rarity == "lm" and self.reference != "input":
            raise ConfigError('reference: only used with rarity = "unigram" (the model is the reference)')
        if self.max_tokens < 2:
            raise ConfigError(f"max_tokens: must be >= 2, got {self.max_tokens}")
        if self.alpha < 0:
            raise ConfigError(f"alpha: must be >= 0, got {self.alpha}")
        if self.cap < 1:
            raise ConfigError(f"cap: must be >= 1 (weights have mean 1), got {self.cap}")
        if self.target is not None and self.target < 0:
            raise ConfigError(f"target: must be >= 0, got {self.target}")


class TailStep(RowPlanStep):
    """Score ``tail_score`` (rarity, bits/token, under ``reference``: a :class:`UnigramModel` or
    :class:`LMSurprisal`); weight ``tail_weight``; optionally resample to ``target``.

    Plan memory: 16 bytes per alive row (score + order).
    """

    name = "tail"
    decide_columns = ("id", "tail_score")

    def __init__(self, config: TailConfig, reference: UnigramModel | LMSurprisal):
        super().__init__(config)
        self.reference = reference
        self.weight_column = None if config.target is not None else "tail_weight"

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        texts = batch.column("text").to_pylist()
        return append_columns(batch, {"tail_score": pa.array(self.reference.mean_surprisal(texts))})

    def plan(self, table: pa.Table) -> pa.Table:
        cfg = self.config
        orders = table.column(ORDER).to_numpy()
        rarity = pc.fill_null(table.column("tail_score"), 0.0).to_numpy()
        weights = capped_weights(np.power(rarity, cfg.alpha), cfg.cap)
        reasons = pa.nulls(len(orders), pa.string())
        if cfg.target is not None and cfg.target < len(orders):
            uniform = seeded_uniform(table.column("id"), cfg.seed, salt="tail")
            keep = top_k_rows(weighted_sample_keys(weights, uniform), orders, cfg.target)
            reasons = reasons_where(~keep, "tail_resample")
        return row_plan(orders, reasons, tail_weight=pa.array(weights))
