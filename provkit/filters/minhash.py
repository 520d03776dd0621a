"""Word n-gram shingles and MinHash signatures for whole batches, equal to ``datasketch.MinHash``.

Pipeline (each stage a pure function, so engines can run them on any batch):

1. :func:`words` / :func:`shingles` — tokenization.  A text is lowercased with
   ``str.lower`` and split into *words*: the maximal runs of the regex ``\\w``
   (Unicode letters, digits and ``_``; everything else separates words).  A
   shingle is ``n`` consecutive words joined by one space; a text with
   ``1 <= len(words) < n`` has exactly one shingle (all its words) and a text
   with no words has none.  The shingle *set* is what MinHash sees.
2. :func:`shingle_hashes` — one integer hash per shingle, flattened over the
   batch with CSR ``offsets`` (document ``d`` owns ``hashes[offsets[d]:offsets[d+1]]``).
   The default :class:`ShingleHash` is computed by a compiled kernel over the
   UTF-8 bytes of the whole batch: ``w = FNV-1a-64(word bytes)`` per word, and
   for a shingle ``(w_1..w_n)``::

       h_0 = 0x9E3779B97F4A7C15;  h_k = (h_{k-1} XOR w_k) * 0xFF51AFD7ED558CCD  (mod 2^64)
       hash = fmix64(h_n)  (truncated to its low 32 bits for 32-bit schemes)

   :class:`ShingleHash` is also a plain callable on one shingle (``str`` or
   UTF-8 ``bytes``), so ``datasketch.MinHash(hashfunc=ShingleHash(32))`` fed
   the same shingles gives the same signature.  ``hashfunc="sha1"`` uses
   datasketch's own ``sha1_hash32`` / ``sha1_hash64`` (slow: one hashlib call
   per shingle) and any other callable is applied per shingle's UTF-8 bytes.
3. :func:`permutations` — datasketch's permutation parameters for
   ``(num_perm, seed, scheme)``: drawn from ``np.random.RandomState(seed)``
   exactly as ``datasketch.MinHash._init_permutations``.
4. :func:`minhash_signatures` — for every document and permutation ``k``::

       affine32:  sig_k = min_{h in S} (a_k * fmix32(h) + b_k)  mod 2^32        (uint32)
       affine64:  sig_k = min_{h in S} (a_k * fmix64(h) + b_k)  mod 2^64        (uint64)
       legacy:    sig_k = min_{h in S} ((a_k * h + b_k  mod 2^64)  mod p) & (2^32 - 1),  p = 2^61 - 1

   (``affine32`` is datasketch 2.x's default; ``legacy`` the pre-2.0 scheme.)
   An empty set gives the all-``max_hash`` signature, like an un-updated MinHash.
   ``P[sig_k(A) == sig_k(B)] ~= J(A, B)``, so the fraction of equal entries
   estimates the Jaccard similarity (:func:`estimate_jaccard`).

Cost: ``num_perm`` multiply-add-min per shingle in a numba kernel (SIMD over
the permutations).  Memory: ``num_perm * 4`` bytes per document for
``affine32`` (512 B at 128 permutations), ``num_perm * 8`` for the 64-bit
schemes, plus 8 bytes per shingle of the batch being hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import numba
import numpy as np
import pyarrow as pa

from provkit.core.hashing import COMBINE_MUL as _COMBINE_MUL
from provkit.core.hashing import COMBINE_SEED as _COMBINE_SEED
from provkit.core.hashing import fmix64, fmix64_int
from provkit.core.text import normalized_words, words

Scheme = Literal["affine32", "affine64", "legacy"]
SCHEMES: tuple[str, ...] = ("affine32", "affine64", "legacy")


MERSENNE_PRIME = (1 << 61) - 1
_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


@dataclass(frozen=True)
class MinHashConfig:
    """How signatures are computed: shingle size, permutations, seed, scheme and shingle hash.

    ``hashfunc`` is ``"fast"`` (:class:`ShingleHash`, the vectorized default),
    ``"sha1"`` (datasketch's default hash) or any callable ``bytes -> int``.
    """

    ngram: int = 5
    num_perm: int = 128
    seed: int = 1
    scheme: Scheme = "affine32"
    hashfunc: str | Callable[[bytes], int] = "fast"

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {self.ngram}")
        if self.num_perm < 1:
            raise ValueError(f"num_perm must be >= 1, got {self.num_perm}")
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if isinstance(self.hashfunc, str) and self.hashfunc not in ("fast", "sha1"):
            raise ValueError(f"hashfunc must be 'fast', 'sha1' or a callable, got {self.hashfunc!r}")


def hash_bits(scheme: str) -> int:
    """Width of the shingle hash a scheme takes: 64 for ``affine64``, else 32."""
    return 64 if scheme == "affine64" else 32


def signature_dtype(scheme: str) -> np.dtype:
    """``uint32`` for ``affine32``, ``uint64`` for ``affine64`` and ``legacy`` (as datasketch stores them)."""
    return np.dtype(np.uint32) if scheme == "affine32" else np.dtype(np.uint64)


def max_hash(scheme: str) -> int:
    """The empty-set value of every signature entry."""
    return _MASK64 if scheme == "affine64" else _MASK32


# ---------------------------------------------------------------- tokenization

def shingles(text: str, n: int = 5) -> list[str]:
    """Word ``n``-grams of ``text`` joined by a space (one shingle for 1..n-1 words, none for 0)."""
    ws = words(text)
    if not ws:
        return []
    if len(ws) < n:
        return [" ".join(ws)]
    return [" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1)]


# ---------------------------------------------------------------- the fast shingle hash

def _fnv1a64_int(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h


class ShingleHash:
    """The provkit default shingle hash, usable as a datasketch ``hashfunc``.

    ``ShingleHash(bits)(shingle)`` hashes the space-separated words of one
    shingle (``str`` or UTF-8 ``bytes``) as described in the module docstring
    and returns a ``bits``-bit integer (32 for ``affine32``/``legacy``, 64 for
    ``affine64``).  The batch kernel in :func:`shingle_hashes` computes the same
    values without Python calls.
    """

    def __init__(self, bits: int = 32):
        if bits not in (32, 64):
            raise ValueError(f"bits must be 32 or 64, got {bits}")
        self.bits = bits

    def __call__(self, shingle: str | bytes) -> int:
        data = shingle.encode("utf-8") if isinstance(shingle, str) else bytes(shingle)
        h = _COMBINE_SEED
        for word in data.split(b" "):
            h = ((h ^ _fnv1a64_int(word)) * _COMBINE_MUL) & _MASK64
        h = fmix64_int(h)
        return h & _MASK32 if self.bits == 32 else h

    def __repr__(self) -> str:
        return f"ShingleHash({self.bits})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShingleHash) and other.bits == self.bits

    def __hash__(self) -> int:
        return hash(("ShingleHash", self.bits))


def resolve_hashfunc(hashfunc: str | Callable[[bytes], int], scheme: str) -> Callable[[bytes], int]:
    """The per-shingle callable for ``hashfunc`` and ``scheme`` (what to hand to datasketch)."""
    bits = hash_bits(scheme)
    if hashfunc == "fast":
        return ShingleHash(bits)
    if hashfunc == "sha1":
        from datasketch.hashfunc import sha1_hash32, sha1_hash64  # datasketch's own, so signatures match

        return sha1_hash64 if bits == 64 else sha1_hash32
    if callable(hashfunc):
        return hashfunc
    raise ValueError(f"hashfunc must be 'fast', 'sha1' or a callable, got {hashfunc!r}")


def _ascii_word_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for c in b"0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[c] = 1
    table[0x80:] = 1  # bytes of non-ASCII characters: those texts arrive pre-normalized
    return table


_WORD_BYTE = _ascii_word_table()
_WORD_BYTE.flags.writeable = False


@numba.njit(cache=True, nogil=True)
def _word_hash_kernel(data, doc_offsets, word_byte):  # pragma: no cover - compiled
    """FNV-1a-64 of every word; returns (word hashes, word lengths in characters, per-document word offsets).

    A word is a maximal run of bytes with ``word_byte[c]`` set, ``A-Z`` folded to
    ``a-z``.  On ASCII text this is exactly ``re.findall(r"\\w+", text.lower())``;
    non-ASCII texts are handed in as :func:`normalized_words` (words and single spaces).
    """
    n_docs = doc_offsets.shape[0] - 1
    capacity = data.shape[0] // 2 + n_docs + 1
    out = np.empty(capacity, dtype=np.uint64)
    lengths = np.empty(capacity, dtype=np.int32)
    word_offsets = np.empty(n_docs + 1, dtype=np.int64)
    count = 0
    for d in range(n_docs):
        word_offsets[d] = count
        in_word = False
        h = np.uint64(_FNV_OFFSET)
        chars = 0
        for i in range(doc_offsets[d], doc_offsets[d + 1]):
            c = data[i]
            if word_byte[c] == 0:
                if in_word:
                    out[count] = h
                    lengths[count] = chars
                    count += 1
                    in_word = False
                    h = np.uint64(_FNV_OFFSET)
                    chars = 0
            else:
                in_word = True
                if 65 <= c <= 90:
                    c += 32
                if c & 0xC0 != 0x80:  # not a UTF-8 continuation byte: a new character
                    chars += 1
                h = (h ^ np.uint64(c)) * np.uint64(_FNV_PRIME)
        if in_word:
            out[count] = h
            lengths[count] = chars
            count += 1
    word_offsets[n_docs] = count
    return out[:count], lengths[:count], word_offsets


@numba.njit(cache=True, nogil=True)
def _shingle_combine_kernel(word_hash, word_offsets, n):  # pragma: no cover - compiled
    """Combine ``n`` consecutive word hashes per document into 64-bit shingle hashes (CSR out)."""
    n_docs = word_offsets.shape[0] - 1
    total = 0
    for d in range(n_docs):
        m = word_offsets[d + 1] - word_offsets[d]
        total += 0 if m == 0 else max(m - n + 1, 1)
    out = np.empty(total, dtype=np.uint64)
    offsets = np.empty(n_docs + 1, dtype=np.int64)
    pos = 0
    for d in range(n_docs):
        offsets[d] = pos
        start = word_offsets[d]
        m = word_offsets[d + 1] - start
        if m == 0:
            continue
        width = min(n, m)
        for s in range(max(m - n + 1, 1)):
            h = np.uint64(_COMBINE_SEED)
            for k in range(width):
                h = (h ^ word_hash[start + s + k]) * np.uint64(_COMBINE_MUL)
            out[pos] = fmix64(h)
            pos += 1
    offsets[n_docs] = pos
    return out, offsets


def _utf8_stream(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The batch as one byte array plus per-document byte offsets, for :func:`_word_hash_kernel`.

    ASCII texts go in raw (the kernel tokenizes and lowercases them); others as
    :func:`normalized_words` so Unicode ``\\w`` and ``str.lower`` stay Python's.
    """
    texts = list(texts)
    joined = "".join(texts)
    if joined.isascii():
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return np.frombuffer(joined.encode("ascii"), dtype=np.uint8), offsets
    encoded = [t.encode("ascii") if t.isascii() else normalized_words(t).encode("utf-8") for t in texts]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return data, offsets


def word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every word of every text (see :func:`words`) as ``(FNV-1a-64 hashes, lengths in characters, offsets)``.

    CSR layout: document ``d`` owns entries ``offsets[d]:offsets[d+1]``.
    """
    data, doc_offsets = _utf8_stream(texts)
    return _word_hash_kernel(data, doc_offsets, _WORD_BYTE)


def _shingle_hashes_fast(texts: Sequence[str], n: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    word_hash, _, word_offsets = word_hashes(texts)
    hashes, offsets = _shingle_combine_kernel(word_hash, word_offsets, n)
    if bits == 32:
        hashes = hashes & np.uint64(_MASK32)
    return hashes, offsets


def _shingle_hashes_python(texts: Sequence[str], n: int, func: Callable[[bytes], int]) -> tuple[np.ndarray, np.ndarray]:
    flat: list[int] = []
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    for d, text in enumerate(texts):
        flat.extend(func(s.encode("utf-8")) for s in shingles(text, n))
        offsets[d + 1] = len(flat)
    return np.array(flat, dtype=np.uint64), offsets


def shingle_hashes(
    texts: Sequence[str], n: int = 5, hashfunc: str | Callable[[bytes], int] = "fast", scheme: str = "affine32"
) -> tuple[np.ndarray, np.ndarray]:
    """Hash every shingle of every text: ``(hashes uint64[total], offsets int64[len(texts)+1])``.

    ``hashfunc="fast"`` runs the compiled :class:`ShingleHash` kernel over the
    whole batch; any other hash is called once per shingle (UTF-8 bytes).
    """
    func = resolve_hashfunc(hashfunc, scheme)
    bits = hash_bits(scheme)
    if isinstance(func, ShingleHash):
        return _shingle_hashes_fast(texts, n, func.bits)
    hashes, offsets = _shingle_hashes_python(texts, n, func)
    if hashes.size and bits == 32 and int(hashes.max()) > _MASK32:
        raise ValueError("hashfunc returned a value wider than 32 bits; use scheme='affine64' for 64-bit hashes")
    return hashes, offsets


# ---------------------------------------------------------------- permutations and signatures

def permutations(num_perm: int = 128, seed: int = 1, scheme: str = "affine32") -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` exactly as ``datasketch.MinHash(num_perm, seed, scheme=scheme).permutations``."""
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        pairs = np.array(
            [(gen.randint(1, MERSENNE_PRIME, dtype=np.uint64), gen.randint(0, MERSENNE_PRIME, dtype=np.uint64))
             for _ in range(num_perm)],
            dtype=np.uint64,
        ).T
        return np.ascontiguousarray(pairs[0]), np.ascontiguousarray(pairs[1])
    width = hash_bits(scheme)
    dtype = signature_dtype(scheme).type
    a = gen.randint(0, 1 << (width - 1), num_perm, dtype=dtype) * dtype(2) + dtype(1)
    b = gen.randint(0, 1 << width, num_perm, dtype=dtype)
    return a, b


def fmix(values: np.ndarray, bits: int) -> np.ndarray:
    """MurmurHash3's finalizer on a uint array (datasketch's pre-mix): a bijection on ``[0, 2^bits)``."""
    if bits == 32:
        h = values.astype(np.uint32)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        return h ^ (h >> np.uint32(16))
    return fmix64(values.astype(np.uint64))


@numba.njit(cache=True, nogil=True)
def _affine32_kernel(hashes, offsets, a, b):  # pragma: no cover - compiled
    """sig[d, k] = min over the document's (pre-mixed) hashes of (a[k]*h + b[k]) mod 2^32."""
    n_docs = offsets.shape[0] - 1
    num_perm = a.shape[0]
    out = np.empty((n_docs, num_perm), dtype=np.uint32)
    acc = np.empty(num_perm, dtype=np.uint32)
    for d in range(n_docs):
        acc[:] = np.uint32(_MASK32)
        for s in range(offsets[d], offsets[d + 1]):
            h = hashes[s]
            for k in range(num_perm):
                # numba widens uint32 arithmetic; the cast wraps mod 2^32.  Branch-free min vectorizes.
                acc[k] = min(acc[k], np.uint32(a[k] * h + b[k]))
        out[d, :] = acc
    return out


@numba.njit(cache=True, nogil=True)
def _affine64_kernel(hashes, offsets, a, b):  # pragma: no cover - compiled
    """sig[d, k] = min over the document's (pre-mixed) hashes of (a[k]*h + b[k]) mod 2^64."""
    n_docs = offsets.shape[0] - 1
    num_perm = a.shape[0]
    out = np.empty((n_docs, num_perm), dtype=np.uint64)
    acc = np.empty(num_perm, dtype=np.uint64)
    for d in range(n_docs):
        acc[:] = np.uint64(_MASK64)
        for s in range(offsets[d], offsets[d + 1]):
            h = hashes[s]
            for k in range(num_perm):
                acc[k] = min(acc[k], a[k] * h + b[k])
        out[d, :] = acc
    return out


@numba.njit(cache=True, nogil=True)
def _legacy_kernel(hashes, offsets, a, b):  # pragma: no cover - compiled
    """sig[d, k] = min of ((a[k]*h + b[k] mod 2^64) mod (2^61-1)) & (2^32-1); Mersenne reduction, exact."""
    n_docs = offsets.shape[0] - 1
    num_perm = a.shape[0]
    p = np.uint64(MERSENNE_PRIME)
    mask = np.uint64(_MASK32)
    out = np.empty((n_docs, num_perm), dtype=np.uint64)
    acc = np.empty(num_perm, dtype=np.uint64)
    for d in range(n_docs):
        acc[:] = mask
        for s in range(offsets[d], offsets[d + 1]):
            h = hashes[s]
            for k in range(num_perm):
                v = a[k] * h + b[k]
                r = (v & p) + (v >> np.uint64(61))
                if r >= p:
                    r -= p
                acc[k] = min(acc[k], r & mask)
        out[d, :] = acc
    return out


def minhash_signatures(
    hashes: np.ndarray, offsets: np.ndarray, perms: tuple[np.ndarray, np.ndarray], scheme: str = "affine32"
) -> np.ndarray:
    """Signatures ``(n_docs, num_perm)`` of the CSR shingle-hash sets (see the module docstring for the math)."""
    a, b = perms
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if scheme == "legacy":
        return _legacy_kernel(np.ascontiguousarray(hashes, dtype=np.uint64), offsets, a, b)
    dtype = signature_dtype(scheme)
    mixed = fmix(np.ascontiguousarray(hashes), hash_bits(scheme))
    kernel = _affine32_kernel if scheme == "affine32" else _affine64_kernel
    return kernel(mixed, offsets, a.astype(dtype), b.astype(dtype))


def signatures(texts: Sequence[str], config: MinHashConfig = MinHashConfig()) -> np.ndarray:
    """MinHash signatures of a batch of texts: shingle, hash, permute, take minima.

    Row ``d`` equals ``datasketch.MinHash(config.num_perm, config.seed,
    hashfunc=resolve_hashfunc(config.hashfunc, config.scheme),
    scheme=config.scheme)`` updated with ``[s.encode() for s in shingles(texts[d], config.ngram)]``.
    """
    hashes, offsets = shingle_hashes(texts, config.ngram, config.hashfunc, config.scheme)
    perms = permutations(config.num_perm, config.seed, config.scheme)
    return minhash_signatures(hashes, offsets, perms, config.scheme)


def empty_signature_mask(sigs: np.ndarray, scheme: str = "affine32") -> np.ndarray:
    """True for rows that are the empty-set signature (documents without words)."""
    return np.all(sigs == signature_dtype(scheme).type(max_hash(scheme)), axis=1)


def estimate_jaccard(sigs: np.ndarray, left: np.ndarray, right: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """``J^(i, j) = (1/K) * #{k : sig[i, k] == sig[j, k]}`` for each pair ``(left[m], right[m])``."""
    out = np.empty(len(left), dtype=np.float64)
    for start in range(0, len(left), chunk):
        i, j = left[start:start + chunk], right[start:start + chunk]
        out[start:start + chunk] = np.mean(sigs[i] == sigs[j], axis=1)
    return out


def signatures_to_arrow(sigs: np.ndarray) -> pa.FixedSizeListArray:
    """Signatures as an Arrow ``fixed_size_list<uint32|uint64>[num_perm]`` column (zero-copy)."""
    sigs = np.ascontiguousarray(sigs)
    return pa.FixedSizeListArray.from_arrays(pa.array(sigs.reshape(-1)), sigs.shape[1] if sigs.ndim == 2 else 0)


def signatures_from_arrow(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The ``(n, num_perm)`` array back from :func:`signatures_to_arrow` (a concatenation of chunks)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def config_params(config: MinHashConfig) -> dict[str, Any]:
    """JSON-able description of a config (callable hash functions by name)."""
    h = config.hashfunc
    return {"ngram": config.ngram, "num_perm": config.num_perm, "seed": config.seed, "scheme": config.scheme,
            "hashfunc": h if isinstance(h, str) else getattr(h, "__name__", repr(h))}
