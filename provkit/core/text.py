"""Text normalising and tokenising, defined once.

* :func:`normalize_text` - NFC, ``\\r\\n``/``\\r`` -> ``\\n``, outer whitespace
  stripped: the form hashed into a record's ``content_hash``.
* :func:`in_normal_form` - which strings of an Arrow string buffer
  :func:`normalize_text` provably leaves as they are (ASCII - NFC leaves it
  unchanged - with no ``\r`` and no outer whitespace), in one compiled pass.
* :func:`whitespace_token_counts` - the number of ``\\S+`` runs (RE2's
  ASCII ``\\s``: tab, LF, FF, CR, space) of each string of a string array,
  in one compiled pass (what ``pc.count_substring_regex(text, r"\\S+")``
  gives, tested equal, ~10x faster).
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

import numba
import numpy as np

WORD_RE = re.compile(r"\w+")
_NON_WORD_RE = re.compile(r"\W+")
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def normalize_text(text: str) -> str:
    """The normal form hashed into ``content_hash``: NFC, line endings unified, outer space stripped."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


_ASCII_SPACE = np.zeros(256, dtype=np.bool_)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True  # the ASCII characters str.strip() removes


_HIGH = np.uint64(0x8080808080808080)
_LOW = np.uint64(0x0101010101010101)
_CR = np.uint64(0x0D0D0D0D0D0D0D0D)


@numba.njit(cache=True, nogil=True)
def _normal_form_kernel(offsets, data, words, space, out):  # pragma: no cover - compiled
    """``words`` is ``data`` read as little-endian uint64 (its length rounded down): a row's whole 8-byte words are
    tested at once - a byte with bit 7 set, or a CR (``(w ^ CR) - LOW & ~(w ^ CR) & HIGH``, the zero-byte test) -
    and its ragged ends byte by byte."""
    for i in range(len(out)):
        a, b = offsets[i], offsets[i + 1]
        if b > a and (space[data[a]] or space[data[b - 1]]):
            out[i] = False
            continue
        odd = np.uint64(0)
        k = a
        while k < b and k % 8:
            c = data[k]
            odd |= np.uint64((c >> 7) | (c == 13))
            k += 1
        while k + 8 <= b:
            w = words[k // 8]
            x = w ^ _CR
            odd |= (w & _HIGH) | ((x - _LOW) & ~x & _HIGH)
            k += 8
        while k < b:
            c = data[k]
            odd |= np.uint64((c >> 7) | (c == 13))
            k += 1
        out[i] = odd == 0


def in_normal_form(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Strings (row ``i`` is ``data[offsets[i]:offsets[i + 1]]``, UTF-8) that :func:`normalize_text` provably leaves
    unchanged: ASCII, no ``\r``, no outer whitespace.  Others may still be in normal form."""
    out = np.empty(len(offsets) - 1, dtype=np.bool_)
    words = data[: len(data) // 8 * 8].view(np.uint64) if data.ctypes.data % 8 == 0 else \
        np.frombuffer(data[: len(data) // 8 * 8].tobytes(), dtype=np.uint64)
    _normal_form_kernel(offsets, data, words, _ASCII_SPACE, out)
    return out


_RE2_SPACE = np.zeros(256, dtype=np.bool_)
_RE2_SPACE[[9, 10, 12, 13, 32]] = True  # RE2's \s (ASCII only; not \v, not Unicode spaces)


@numba.njit(cache=True, nogil=True)
def _token_count_kernel(offsets, data, space, out):  # pragma: no cover - compiled
    for i in range(len(out)):
        n = 0
        prev = True  # "before the string" counts as space
        for k in range(offsets[i], offsets[i + 1]):
            s = space[data[k]]
            n += prev and not s
            prev = s
        out[i] = n


def whitespace_token_counts(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Runs of non-space bytes (RE2 ``\\S+``) in each string (row ``i`` is ``data[offsets[i]:offsets[i + 1]]``);
    int32."""
    out = np.empty(len(offsets) - 1, dtype=np.int32)
    _token_count_kernel(offsets, data, _RE2_SPACE, out)
    return out


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
