"""Hashing shared by every layer: the 64-bit finaliser and the per-record uniform draw.

``fmix64`` is MurmurHash3's 64-bit finaliser, a bijection on ``[0, 2^64)``::

    h ^= h >> 33;  h *= 0xFF51AFD7ED558CCD;  h ^= h >> 33;  h *= 0xC4CEB9FE1A85EC53;  h ^= h >> 33

(multiplications wrap mod 2^64).  It is compiled with numba, so the same
function serves compiled kernels (a ``uint64`` scalar), NumPy callers (a
``uint64`` array; the input is not modified) and :func:`fmix64_int` (a Python int).

``seeded_uniform(ids, seed, salt)`` is ``blake2b(salt | seed | id)`` (8 bytes,
little-endian) shifted to 53 bits and scaled to ``[0, 1)``: it depends only on
(id, seed, salt), so every engine and every batching draws the same numbers.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numba
import numpy as np
import pyarrow as pa

MASK64 = (1 << 64) - 1
FMIX_MUL1 = 0xFF51AFD7ED558CCD
FMIX_MUL2 = 0xC4CEB9FE1A85EC53
COMBINE_SEED = 0x9E3779B97F4A7C15  # h_0 of a word-hash combination (the 64-bit golden ratio)
COMBINE_MUL = 0xFF51AFD7ED558CCD  # h_k = (h_{k-1} XOR w_k) * COMBINE_MUL  (mod 2^64)


@numba.njit(cache=True, nogil=True)
def fmix64(h):  # pragma: no cover - compiled
    """MurmurHash3's 64-bit finaliser of a ``uint64`` scalar or array (returns a new value)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(FMIX_MUL1)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(FMIX_MUL2)
    return h ^ (h >> np.uint64(33))


def fmix64_int(h: int) -> int:
    """:func:`fmix64` of a Python int in ``[0, 2^64)``."""
    return int(fmix64(np.uint64(h & MASK64)))


def seeded_uniform(ids: Sequence[str] | pa.Array, seed: int, salt: str = "") -> np.ndarray:
    """A reproducible U[0, 1) draw per record: ``blake2b(salt | seed | id)`` read as 53-bit float.

    Depends only on (id, seed, salt), so any engine and any batching gives the same draws.
    """
    values = ids.to_pylist() if isinstance(ids, (pa.Array, pa.ChunkedArray)) else list(ids)
    prefix = f"{salt}|{seed}|".encode()
    out = np.empty(len(values), dtype=np.float64)
    for i, ident in enumerate(values):
        digest = hashlib.blake2b(prefix + str(ident).encode(), digest_size=8).digest()
        out[i] = (int.from_bytes(digest, "little") >> 11) * (1.0 / (1 << 53))
    return out
