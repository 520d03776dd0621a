"""Span evidence: sliding-window scores that find the model-written parts of a long document.

A text's whitespace tokens ``w_1 .. w_n`` are covered by windows of ``words``
tokens every ``stride`` tokens (the last window ends at ``w_n``; a text of at
most ``words`` tokens is one window).  Each window is scored by the detector
like a document and flagged when its raw score is above the *window*
threshold at the chosen FPR, measured on the windows of held-out human text
(:func:`window_calibration`; windows are shorter than documents, so document
thresholds would not hold their FPR on them).

The verdict of a document with at least ``MIN_WINDOWS`` windows:

* a *model run* is ``>= min_run`` consecutive flagged windows, a *human run*
  ``>= min_run`` consecutive unflagged ones (one stray window decides nothing);
* model runs and human runs both present -> ``mixed``; model runs only ->
  ``model``; no model run -> the whole-document decision;
* the spans are the character ranges ``[start, end)`` of the model runs, less
  the parts they share with the unflagged windows on either side (text that a
  human-looking window also covers is not claimed): an edge lands within about
  ``stride`` tokens of the true boundary.

Shorter documents get the whole-document decision (span = the whole text when model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from provkit.filters.detector.calibration import WindowCalibration, check_targets, threshold_for
from provkit.filters.detector.params import DetectorError

WINDOW_WORDS = 48
WINDOW_STRIDE = 24
MIN_RUN = 2
MIN_WINDOWS = 3
_TOKEN = re.compile(r"\S+")

Scorer = Callable[[Sequence[str]], np.ndarray]


def window_bounds(text: str, words: int = WINDOW_WORDS, stride: int = WINDOW_STRIDE) -> list[tuple[int, int]]:
    """Character ranges ``[start, end)`` of the sliding windows of ``text`` (see the module docstring)."""
    if words < 1 or stride < 1:
        raise DetectorError(f"windows: need words >= 1 and stride >= 1, got {words} and {stride}")
    toks = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    if len(toks) <= words:
        return [(toks[0][0], toks[-1][1])] if toks else [(0, len(text))]
    starts = list(range(0, len(toks) - words + 1, stride))
    if starts[-1] != len(toks) - words:
        starts.append(len(toks) - words)
    return [(toks[s][0], toks[s + words - 1][1]) for s in starts]


def window_scores(texts: Sequence[str], score: Scorer, words: int = WINDOW_WORDS,
                  stride: int = WINDOW_STRIDE) -> tuple[list[list[tuple[int, int]]], list[np.ndarray]]:
    """Window bounds and raw window scores of each text (all windows scored in one call)."""
    bounds = [window_bounds(t, words, stride) for t in texts]
    flat = [t[a:b] for t, bs in zip(texts, bounds) for a, b in bs]
    s = np.asarray(score(flat), dtype=np.float64) if flat else np.zeros(0)
    out, at = [], 0
    for bs in bounds:
        out.append(s[at : at + len(bs)])
        at += len(bs)
    return bounds, out


def window_calibration(human_texts: Sequence[str], score: Scorer, targets: Sequence[float],
                       words: int = WINDOW_WORDS, stride: int = WINDOW_STRIDE) -> WindowCalibration | None:
    """Window thresholds at ``targets`` from the windows of human texts (None without any)."""
    if not human_texts:
        return None
    _, per_text = window_scores(human_texts, score, words, stride)
    s = np.concatenate(per_text)
    return WindowCalibration(words, stride, len(s), tuple(threshold_for(s, None, a) for a in check_targets(targets)))


@dataclass(frozen=True)
class SpanVerdict:
    """One document's verdict (human / model / mixed) and its model-written character spans."""

    verdict: str
    spans: list[tuple[int, int, float]]  # (start, end, highest window score in the span)
    n_windows: int


def _runs(flags: np.ndarray, value: bool, min_run: int) -> list[tuple[int, int]]:
    """Index ranges ``[i, j)`` of runs of ``value`` in ``flags`` at least ``min_run`` long."""
    out, i = [], 0
    while i < len(flags):
        j = i
        while j < len(flags) and flags[j] == value:
            j += 1
        if j - i >= min_run:
            out.append((i, j))
        i = max(j, i + 1)
    return out


def _run_chars(text: str, bounds: list[tuple[int, int]], i: int, j: int) -> tuple[int, int]:
    """Characters of windows ``i .. j-1`` not covered by windows ``i - 1`` and ``j`` (whitespace trimmed)."""
    start = bounds[i][0] if i == 0 else max(bounds[i][0], bounds[i - 1][1])
    end = bounds[j - 1][1] if j == len(bounds) else min(bounds[j - 1][1], bounds[j][0])
    nonspace = _TOKEN.search(text, start, end)
    if nonspace is None:  # the neighbours cover the whole run: keep the run's own extent
        return bounds[i][0], bounds[j - 1][1]
    start = nonspace.start()
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def span_verdict(text: str, bounds: list[tuple[int, int]], scores: np.ndarray, flags: np.ndarray,
                 document_is_model: bool, min_run: int = MIN_RUN) -> SpanVerdict:
    """The verdict and spans of one document from its window scores and flags (rules in the module docstring)."""
    whole = [(0, len(text), float(scores.max()) if len(scores) else 0.0)]
    if len(bounds) < MIN_WINDOWS:
        return SpanVerdict("model" if document_is_model else "human", whole if document_is_model else [], len(bounds))
    model_runs = _runs(flags, True, min_run)
    if not model_runs:
        return SpanVerdict("model" if document_is_model else "human", whole if document_is_model else [], len(bounds))
    spans = [(*_run_chars(text, bounds, i, j), float(scores[i:j].max())) for i, j in model_runs]
    verdict = "mixed" if _runs(flags, False, min_run) else "model"
    return SpanVerdict(verdict, spans, len(bounds))
