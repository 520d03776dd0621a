"""Repetition and quality heuristics (Gopher rules): scores per text, then a thresholded reason.

Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
Training Gopher", Appendix A.1.1 (quality filter) and Table A1 (repetition
removal).  Degenerate, repetitive generations are what model collapse produces,
and these scores catch them without any model.

Definitions (``words`` are :func:`provkit.filters.minhash.words`: lowercased
``\\w+`` runs; ``|w|`` is a word's length in characters; ``C = sum |w|`` over
the text's words):

* ``words``: number of words; ``mean_word_length = C / words``.
* lines are the non-blank lines (``str.splitlines``, stripped), paragraphs
  the non-blank blocks separated by blank lines.  A *duplicated* line is an
  occurrence of a line already seen earlier in the text:
  ``dup_line_frac = #duplicated / #lines``, ``dup_line_char_frac =
  sum(len(duplicated lines)) / sum(len(lines))``; the same for paragraphs.
* ``top_{n}gram_frac`` (n = 2, 3, 4): the most frequent word n-gram (ties:
  the one covering more characters), when it occurs at least twice; the
  characters of the words covered by its occurrences (overlaps counted once)
  over ``C``.  0 when no n-gram repeats.
* ``dup_{n}gram_frac`` (n = 5..10): characters of the words covered by any
  occurrence of any n-gram that occurs at least twice (overlaps counted once),
  over ``C``.

All n-gram scores come from one compiled pass over the batch's word hashes
(n-grams hashed as in :class:`provkit.filters.minhash.ShingleHash`, sorted per
document to find repeats).  Cost ``O(words * log(words))`` per text and n.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Sequence

import numba
import numpy as np

from provkit.core.hashing import COMBINE_MUL as _MUL
from provkit.core.hashing import COMBINE_SEED as _SEED
from provkit.filters.minhash import word_hashes

TOP_NS: tuple[int, ...] = (2, 3, 4)
DUP_NS: tuple[int, ...] = (5, 6, 7, 8, 9, 10)
_PARAGRAPH_RE = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class QualityThresholds:
    """Pass/fail limits; defaults are the Gopher values (Rae et al. 2021, App. A, Table A1).

    A text fails when a score is outside its limit; ``min_words`` is the
    "too short" rule (Gopher keeps 50..100,000 words, mean word length 3..10).
    """

    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_dup_line_frac: float = 0.30
    max_dup_para_frac: float = 0.30
    max_dup_line_char_frac: float = 0.20
    max_dup_para_char_frac: float = 0.20
    max_top_2gram_frac: float = 0.20
    max_top_3gram_frac: float = 0.18
    max_top_4gram_frac: float = 0.16
    max_dup_5gram_frac: float = 0.15
    max_dup_6gram_frac: float = 0.14
    max_dup_7gram_frac: float = 0.13
    max_dup_8gram_frac: float = 0.12
    max_dup_9gram_frac: float = 0.11
    max_dup_10gram_frac: float = 0.10


SCORE_NAMES: tuple[str, ...] = (
    "words", "mean_word_length", "dup_line_frac", "dup_line_char_frac", "dup_para_frac", "dup_para_char_frac",
    *(f"top_{n}gram_frac" for n in TOP_NS), *(f"dup_{n}gram_frac" for n in DUP_NS),
)


def _duplicate_fractions(parts: list[str]) -> tuple[float, float]:
    """(duplicated occurrences / parts, their characters / all characters) of a list of stripped parts."""
    if not parts:
        return 0.0, 0.0
    seen: set[str] = set()
    dup, dup_chars = 0, 0
    for part in parts:
        if part in seen:
            dup += 1
            dup_chars += len(part)
        else:
            seen.add(part)
    total_chars = sum(len(p) for p in parts)
    return dup / len(parts), (dup_chars / total_chars if total_chars else 0.0)


def line_repetition(text: str) -> tuple[float, float, float, float]:
    """``(dup_line_frac, dup_line_char_frac, dup_para_frac, dup_para_char_frac)`` of one text."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    paragraphs = [p.strip() for p in _PARAGRAPH_RE.split(text) if p.strip()]
    return (*_duplicate_fractions(lines), *_duplicate_fractions(paragraphs))


@numba.njit(cache=True, nogil=True)
def _covered_chars(starts, n, lengths, mask):  # pragma: no cover - compiled
    """Characters of the words covered by n-grams starting at ``starts`` (overlaps once)."""
    mask[:] = False
    for p in starts:
        mask[p:p + n] = True
    total = 0
    for i in range(mask.shape[0]):
        if mask[i]:
            total += lengths[i]
    return total


@numba.njit(cache=True, nogil=True)
def _ngram_kernel(word_hash, word_len, offsets, top_ns, dup_ns):  # pragma: no cover - compiled
    """Per document: top-n-gram (n in top_ns) and duplicated-n-gram (n in dup_ns) character fractions."""
    n_docs = offsets.shape[0] - 1
    top = np.zeros((n_docs, top_ns.shape[0]))
    dup = np.zeros((n_docs, dup_ns.shape[0]))
    for d in range(n_docs):
        s, e = offsets[d], offsets[d + 1]
        m = e - s
        lengths = word_len[s:e]
        total = lengths.sum()
        if total == 0:
            continue
        mask = np.zeros(m, dtype=np.bool_)
        for which in range(top_ns.shape[0] + dup_ns.shape[0]):
            is_top = which < top_ns.shape[0]
            n = top_ns[which] if is_top else dup_ns[which - top_ns.shape[0]]
            if m < n + 1:
                continue
            count = m - n + 1
            grams = np.empty(count, dtype=np.uint64)
            for p in range(count):
                h = np.uint64(_SEED)
                for k in range(n):
                    h = (h ^ word_hash[s + p + k]) * np.uint64(_MUL)
                grams[p] = h
            order = np.argsort(grams, kind="mergesort")
            sorted_grams = grams[order]
            if is_top:
                best_count, best_chars = 1, 0
                run = 0
                while run < count:
                    end = run + 1
                    while end < count and sorted_grams[end] == sorted_grams[run]:
                        end += 1
                    size = end - run
                    if size >= 2 and size >= best_count:
                        chars = _covered_chars(order[run:end], n, lengths, mask)
                        if size > best_count or chars > best_chars:
                            best_count, best_chars = size, chars
                    run = end
                top[d, which] = best_chars / total
            else:
                starts = np.empty(count, dtype=np.int64)
                k = 0
                run = 0
                while run < count:
                    end = run + 1
                    while end < count and sorted_grams[end] == sorted_grams[run]:
                        end += 1
                    if end - run >= 2:
                        for q in range(run, end):
                            starts[k] = order[q]
                            k += 1
                    run = end
                dup[d, which - top_ns.shape[0]] = _covered_chars(starts[:k], n, lengths, mask) / total
    return top, dup


def quality_scores(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Every score of :data:`SCORE_NAMES` for a batch of texts, as arrays of ``len(texts)``."""
    texts = list(texts)
    hashes, lengths, offsets = word_hashes(texts)
    counts = np.diff(offsets)
    # per-text sums by cumulative differences: np.add.reduceat fails when the last texts have no words
    csum = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
    chars = csum[offsets[1:]] - csum[offsets[:-1]]
    top, dup = _ngram_kernel(hashes, lengths, offsets, np.array(TOP_NS, np.int64), np.array(DUP_NS, np.int64))
    lines = np.array([line_repetition(t) for t in texts], dtype=np.float64).reshape(len(texts), 4)
    scores: dict[str, np.ndarray] = {
        "words": counts.astype(np.int64),
        "mean_word_length": np.divide(chars, counts, out=np.zeros(len(texts)), where=counts > 0),
        "dup_line_frac": lines[:, 0], "dup_line_char_frac": lines[:, 1],
        "dup_para_frac": lines[:, 2], "dup_para_char_frac": lines[:, 3],
    }
    scores.update({f"top_{n}gram_frac": top[:, i] for i, n in enumerate(TOP_NS)})
    scores.update({f"dup_{n}gram_frac": dup[:, i] for i, n in enumerate(DUP_NS)})
    return scores


def failed_checks(scores: dict[str, np.ndarray], thresholds: QualityThresholds = QualityThresholds()) -> dict[str, np.ndarray]:
    """Reason name -> boolean array of the texts failing that check, in the order checks are reported."""
    t = thresholds
    checks = {
        "too_short": scores["words"] < t.min_words,
        "too_long": scores["words"] > t.max_words,
        "mean_word_length": (scores["mean_word_length"] < t.min_mean_word_length)
        | (scores["mean_word_length"] > t.max_mean_word_length),
    }
    for name in SCORE_NAMES[2:]:
        checks[name.removesuffix("_frac")] = scores[name] > getattr(t, f"max_{name}")
    return checks


def quality_reasons(
    scores: dict[str, np.ndarray], thresholds: QualityThresholds = QualityThresholds()
) -> list[str | None]:
    """For each text, ``None`` if it passes, else ``"quality:<first failed check>"`` (e.g. ``quality:too_short``)."""
    checks = failed_checks(scores, thresholds)
    n = len(scores["words"])
    reasons: list[str | None] = [None] * n
    for name, failed in checks.items():
        for i in np.flatnonzero(failed).tolist():
            if reasons[i] is None:
                reasons[i] = f"quality:{name}"
    return reasons


def threshold_names() -> list[str]:
    """The configurable threshold fields (for config parsers and docs)."""
    return [f.name for f in fields(QualityThresholds)]
