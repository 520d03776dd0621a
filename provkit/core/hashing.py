"""Hashing shared by every layer: the 64-bit finaliser and the per-record uniform draw.

``fmix64`` is MurmurHash3's 64-bit finaliser, a bijection on ``[0, 2^64)``::

    h ^= h >> 33;  h *= 0xFF51AFD7ED558CCD;  h ^= h >> 33;  h *= 0xC4CEB9FE1A85EC53;  h ^= h >> 33

(multiplications wrap mod 2^64).  It is compiled with numba, so the same
function serves compiled kernels (a ``uint64`` scalar), NumPy callers (a
``uint64`` array; the input is not modified) and :func:`fmix64_int` (a Python int).

``string_hashes(arr)`` is a stable 64-bit hash of each string of an Arrow
string array: FNV-1a over the UTF-8 bytes (``h = (h XOR byte) * 0x100000001B3``
from ``h_0 = 0xCBF29CE484222325``), then :func:`fmix64`.  It reads the array's
buffers in one compiled pass (no Python object per row) and, unlike Python's
salted ``hash()``, is the same in every process.  Equal strings hash equal;
different strings may collide (about n²/2⁶⁵ pairs among n), so callers that
must be exact compare the strings on a hash match.

``sha256_hex(offsets, data, rows, out)`` writes the sha256 hex digest of
each listed string into a ``(n, 64)`` byte array.  Where the process can load
OpenSSL's ``libcrypto`` (the library Python's ``hashlib`` wraps) a compiled
loop (Linux) calls its ``SHA256_Init/Update/Final`` for each string without the GIL
(about 0.17 µs a 100-byte string instead of about 1.1 µs through ``hashlib``'s
per-call Python overhead); elsewhere it falls back to ``hashlib``.  Both give
the standard FIPS 180-4 digest (tested against ``hashlib``).

``seeded_uniform(ids, seed, salt)`` is ``blake2b(salt | seed | id)`` (8 bytes,
little-endian) shifted to 53 bits and scaled to ``[0, 1)``: it depends only on
(id, seed, salt), so every engine and every batching draws the same numbers.
An Arrow column is hashed a batch at a time: 8 bytes per id (the result) plus
one batch of Python objects, not a Python string per id of the column.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import sys
from typing import Sequence

import llvmlite.binding
import numba
import numpy as np
import pyarrow as pa
from numba import types

MASK64 = (1 << 64) - 1
_HEX_BYTES = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()
FMIX_MUL1 = 0xFF51AFD7ED558CCD
FMIX_MUL2 = 0xC4CEB9FE1A85EC53
COMBINE_SEED = 0x9E3779B97F4A7C15  # h_0 of a word-hash combination (the 64-bit golden ratio)
COMBINE_MUL = 0xFF51AFD7ED558CCD  # h_k = (h_{k-1} XOR w_k) * COMBINE_MUL  (mod 2^64)
UNIFORM_BATCH = 65536
"""Ids converted to Python strings at a time by :func:`seeded_uniform` (its only per-batch memory)."""


@numba.njit(cache=True, nogil=True)
def fmix64(h):  # pragma: no cover - compiled
    """MurmurHash3's 64-bit finaliser of a ``uint64`` scalar or array (returns a new value)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(FMIX_MUL1)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(FMIX_MUL2)
    return h ^ (h >> np.uint64(33))


FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


@numba.njit(cache=True, nogil=True)
def _fnv_fmix(offsets, data, out):  # pragma: no cover - compiled
    for i in range(len(out)):
        h = np.uint64(FNV_OFFSET)
        for k in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[k])) * np.uint64(FNV_PRIME)
        out[i] = fmix64(h)


def string_buffers(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, data)`` of a string array as NumPy views: row ``i`` is ``data[offsets[i]:offsets[i + 1]]``.

    Nulls read as empty strings; chunked and sliced arrays are handled (int64 offsets, zero-copy where possible).
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not (pa.types.is_large_string(arr.type) or pa.types.is_string(arr.type)):
        arr = arr.cast(pa.string())
    if arr.null_count:
        arr = arr.fill_null("")
    wide = pa.types.is_large_string(arr.type)
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64 if wide else np.int32)[arr.offset: arr.offset + len(arr) + 1] \
        if off_buf is not None else np.zeros(len(arr) + 1, dtype=np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    return offsets.astype(np.int64, copy=False), data


def string_hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A stable 64-bit hash (``uint64``) of each string: FNV-1a of its UTF-8 bytes, then :func:`fmix64`."""
    offsets, data = string_buffers(arr)
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    _fnv_fmix(offsets, data, out)
    return out


_SHA256_INIT = types.ExternalFunction("SHA256_Init", types.int32(types.voidptr))
_SHA256_UPDATE = types.ExternalFunction("SHA256_Update", types.int32(types.voidptr, types.voidptr, types.uintp))
_SHA256_FINAL = types.ExternalFunction("SHA256_Final", types.int32(types.voidptr, types.voidptr))
_CTX_BYTES = 256  # sizeof(SHA256_CTX) is 112; room to spare
_LIBCRYPTO_NAMES = ("libcrypto.so.3", "libcrypto.so.1.1")


@functools.cache
def openssl_sha256() -> bool:
    """Whether OpenSSL's low-level SHA-256 calls are loaded for compiled code (once per process)."""
    if not sys.platform.startswith("linux"):  # macOS aborts a process that loads its unversioned libcrypto
        return False
    names = [n for n in (ctypes.util.find_library("crypto"),) if n] + list(_LIBCRYPTO_NAMES)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            if not all(hasattr(lib, f) for f in ("SHA256_Init", "SHA256_Update", "SHA256_Final")):
                continue
            llvmlite.binding.load_library_permanently(name)
        except (OSError, RuntimeError):
            continue
        return True
    return False


@numba.njit(cache=True, nogil=True)
def _sha256_hex_openssl(offsets, data, rows, out):  # pragma: no cover - compiled
    ctx = np.empty(_CTX_BYTES, dtype=np.uint8)
    digest = np.empty(32, dtype=np.uint8)
    hexchars = _HEX_BYTES
    empty = np.zeros(1, dtype=np.uint8)
    for r in range(len(rows)):
        i = rows[r]
        a, b = offsets[i], offsets[i + 1]
        _SHA256_INIT(ctx.ctypes)
        if b > a:
            _SHA256_UPDATE(ctx.ctypes, data[a:b].ctypes, b - a)
        else:
            _SHA256_UPDATE(ctx.ctypes, empty.ctypes, 0)
        _SHA256_FINAL(digest.ctypes, ctx.ctypes)
        for k in range(32):
            out[i, 2 * k] = hexchars[digest[k] >> 4]
            out[i, 2 * k + 1] = hexchars[digest[k] & 15]


def sha256_hex(offsets: np.ndarray, data: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """Write the sha256 hex digest of string ``i`` (``data[offsets[i]:offsets[i + 1]]``) into ``out[i]`` for each
    ``i`` in ``rows``; ``out`` is a ``(n, 64)`` uint8 array (other rows are left as they are)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if not len(rows):
        return
    if openssl_sha256():
        _sha256_hex_openssl(offsets, data, rows, out)
    else:
        sha256_hex_hashlib(offsets, data, rows, out)


def sha256_hex_hashlib(offsets: np.ndarray, data: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """:func:`sha256_hex` through ``hashlib``, one call per string (the path where no libcrypto loads)."""
    view, bounds = memoryview(data), offsets
    for i in np.asarray(rows, dtype=np.int64).tolist():
        out[i] = np.frombuffer(hashlib.sha256(view[int(bounds[i]): int(bounds[i + 1])]).hexdigest().encode(),
                               dtype=np.uint8)


def fmix64_int(h: int) -> int:
    """:func:`fmix64` of a Python int in ``[0, 2^64)``."""
    return int(fmix64(np.uint64(h & MASK64)))


def seeded_uniform(ids: Sequence[str] | pa.Array | pa.ChunkedArray, seed: int, salt: str = "") -> np.ndarray:
    """A reproducible U[0, 1) draw per record: ``blake2b(salt | seed | id)`` read as 53-bit float.

    Depends only on (id, seed, salt), so any engine and any batching gives the same draws.  An Arrow
    column is read :data:`UNIFORM_BATCH` ids at a time: besides the ``float64`` result, memory is one
    batch of Python strings and digests, whatever the column's length.
    """
    prefix = f"{salt}|{seed}|".encode()
    if not isinstance(ids, (pa.Array, pa.ChunkedArray)):
        return _uniform_of(list(ids), prefix)
    out = np.empty(len(ids), dtype=np.float64)
    for start in range(0, len(ids), UNIFORM_BATCH):
        values = ids.slice(start, UNIFORM_BATCH).to_pylist()
        out[start:start + len(values)] = _uniform_of(values, prefix)
    return out


def _uniform_of(values: Sequence[object], prefix: bytes) -> np.ndarray:
    """``(u64_le(blake2b(prefix + str(v), 8 bytes)) >> 11) * 2^-53`` per value (exact: 53-bit integers are floats)."""
    digests = b"".join(hashlib.blake2b(prefix + str(v).encode(), digest_size=8).digest() for v in values)
    return (np.frombuffer(digests, dtype="<u8") >> np.uint64(11)) * (1.0 / (1 << 53))
