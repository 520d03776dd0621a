"""Text normalising and tokenising, defined once.

* :func:`normalize_text` - NFC, ``\\r\\n``/``\\r`` -> ``\\n``, outer whitespace
  stripped: the form hashed into a record's ``content_hash``.
* :func:`words` - ``re.findall(r"\\w+", text.lower())``: the words of dedup
  shingling, quality scores and the experiment's diversity metrics.
* :func:`normalized_words` - the same words joined by single spaces (the byte
  stream the compiled shingle kernel reads).
* :func:`word_tokens` - lower-cased word *and* punctuation tokens
  (``\\w+|[^\\w\\s]``): the unit of unigram rarity and of token budgets.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

import numpy as np

WORD_RE = re.compile(r"\w+")
_NON_WORD_RE = re.compile(r"\W+")
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def normalize_text(text: str) -> str:
    """The normal form hashed into ``content_hash``: NFC, line endings unified, outer space stripped."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


def words(text: str) -> list[str]:
    """The words of ``text``: ``re.findall(r"\\w+", text.lower())``."""
    return WORD_RE.findall(text.lower())


def normalized_words(text: str) -> str:
    """The words of ``text`` joined by single spaces (the byte stream the fast kernel reads)."""
    return _NON_WORD_RE.sub(" ", text.lower()).strip(" ")


def word_tokens(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens (the unit of unigram rarity and of token budgets)."""
    return _TOKEN.findall(text.lower())


def count_tokens(texts: Iterable[str]) -> np.ndarray:
    """Number of :func:`word_tokens` of each text."""
    return np.array([len(_TOKEN.findall(t)) for t in texts], dtype=np.int64)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (pyarrow and datasets messages span several)."""
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__
