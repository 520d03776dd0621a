"""LSH banding over MinHash signatures: parameters, band hashes, candidate pairs.

A signature of ``K`` entries is cut into ``b`` bands of ``r`` rows (``b*r <= K``;
extra entries unused).  Two documents with Jaccard similarity ``s`` agree on a
whole band with probability ``s^r`` and share at least one band bucket with

    P(candidate | s) = 1 - (1 - s^r)^b                                   (the S-curve)

:func:`optimal_params` picks ``(b, r)`` for a target threshold ``t`` the way
``datasketch.lsh._optimal_param`` does, by grid search over all ``b*r <= K``
minimizing ``w_fp * FP + w_fn * FN`` with

    FP(b, r) = integral_0^t  1 - (1 - s^r)^b  ds
    FN(b, r) = integral_t^1  (1 - s^r)^b      ds

(``scipy.integrate.quad``, as datasketch; ties keep the first ``(b, r)`` met).

:func:`band_hashes` turns each band into one ``uint64``: starting from
``fmix64(band index + 1)``, fold every row value ``v`` in as
``h = fmix64((h XOR v) * 0x9E3779B97F4A7C15)``.  Equal bands give equal hashes;
unequal bands collide with probability ~``2^-64`` (and candidate pairs can be
verified against the signatures anyway).

:func:`candidate_pairs` sorts each band column, finds the runs of equal hashes
(the buckets) and emits index pairs ``(i < j)``: every pair inside a bucket
(``all_pairs=True``, needed before verification) or each member paired with
the bucket's first member (a star: the same connected components with
``m - 1`` instead of ``m(m-1)/2`` edges).  Memory: ``8*b`` bytes per record for
the band hashes, ``16`` bytes per record for the sort of one band, ``16`` bytes
per emitted pair.
"""

from __future__ import annotations

import numba
import numpy as np

from provkit.core.hashing import fmix64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def false_positive_area(threshold: float, b: int, r: int) -> float:
    """``integral_0^t 1 - (1 - s^r)^b ds``: candidate probability mass below the threshold."""
    from scipy.integrate import quad  # lazy: ~0.25 s to import; only LSH parameter choice needs it

    area, _ = quad(lambda s: 1 - (1 - s ** float(r)) ** float(b), 0.0, threshold)
    return area


def false_negative_area(threshold: float, b: int, r: int) -> float:
    """``integral_t^1 (1 - s^r)^b ds``: missed probability mass above the threshold."""
    from scipy.integrate import quad  # lazy: ~0.25 s to import; only LSH parameter choice needs it

    area, _ = quad(lambda s: 1 - (1 - (1 - s ** float(r)) ** float(b)), threshold, 1.0)
    return area


def optimal_params(
    threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]:
    """``(bands, rows)`` minimizing ``fp_weight * FP + fn_weight * FN`` over ``b*r <= num_perm``.

    Same search, integrals and tie-break as ``datasketch.MinHashLSH(threshold, num_perm, weights)``.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            error = fp_weight * false_positive_area(threshold, b, r) + fn_weight * false_negative_area(threshold, b, r)
            if error < best:
                best, opt = error, (b, r)
    return opt


def candidate_probability(similarity: np.ndarray | float, bands: int, rows: int) -> np.ndarray:
    """The S-curve ``1 - (1 - s^r)^b``."""
    s = np.asarray(similarity, dtype=np.float64)
    return 1.0 - (1.0 - s ** rows) ** bands


@numba.njit(cache=True, nogil=True)
def _band_hash_kernel(sigs, bands, rows, out):  # pragma: no cover - compiled
    for i in range(sigs.shape[0]):
        for j in range(bands):
            h = fmix64(np.uint64(j + 1))
            for col in range(j * rows, (j + 1) * rows):
                h = fmix64((h ^ np.uint64(sigs[i, col])) * _GOLDEN)
            out[i, j] = h


def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``uint64[n, bands]``: one hash per (record, band) of the signature rows ``[j*r, (j+1)*r)``.

    A compiled loop: no copy of the signatures (memory: the ``8*bands`` bytes per record of the result).
    """
    if bands * rows > sigs.shape[1]:
        raise ValueError(f"bands*rows = {bands * rows} exceeds the signature length {sigs.shape[1]}")
    out = np.empty((sigs.shape[0], bands), dtype=np.uint64)
    if sigs.shape[0]:
        _band_hash_kernel(np.ascontiguousarray(sigs), bands, rows, out)
    return out


def signature_hashes(sigs: np.ndarray) -> np.ndarray:
    """``uint64[n]``: one hash of each whole signature (the fold of :func:`band_hashes` over all ``K`` entries).

    Equal signatures give equal hashes; a match is confirmed by comparing the signatures themselves.
    """
    return band_hashes(sigs, 1, sigs.shape[1])[:, 0] if sigs.shape[1] else np.zeros(len(sigs), np.uint64)


def partition_of(keys: np.ndarray, parts: int) -> np.ndarray:
    """``int64`` partition ``floor(hi32(key) * parts / 2^32)`` of each ``uint64`` key: equal keys share a partition.

    The keys are fmix64 outputs (uniform), so the ``parts`` partitions get about equal shares.
    """
    hi = keys >> np.uint64(32)
    return ((hi * np.uint64(parts)) >> np.uint64(32)).astype(np.int64)


def bucket_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group equal ``keys``: ``(order, starts, sizes)`` with ``order`` a stable argsort and runs of size >= 2."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    boundary = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1], True])
    starts, sizes = boundary[:-1], np.diff(boundary)
    keep = sizes >= 2
    return order, starts[keep], sizes[keep]


def _star_pairs(order: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first = np.repeat(order[starts], sizes - 1)
    member_pos = np.repeat(starts, sizes - 1) + _ranks_within(sizes - 1) + 1
    return first, order[member_pos]


def _ranks_within(sizes: np.ndarray) -> np.ndarray:
    """``[0..sizes[0]-1, 0..sizes[1]-1, ...]`` without a Python loop."""
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(total, dtype=np.int64) - offsets


def _all_pairs(order: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # For a bucket of size m, member u (0..m-2) pairs with members u+1..m-1: m-1-u partners.
    u_counts = np.repeat(sizes, sizes) - 1 - _ranks_within(sizes)  # partners of each member position
    u_pos = np.repeat(np.repeat(starts, sizes) + _ranks_within(sizes), u_counts)
    v_pos = u_pos + 1 + _ranks_within(u_counts[u_counts > 0])
    return order[u_pos], order[v_pos]


def candidate_pairs(hashes: np.ndarray, all_pairs: bool = True) -> np.ndarray:
    """Unique index pairs ``int64[m, 2]`` (``i < j``, sorted) that share a bucket in any band column."""
    n = hashes.shape[0]
    encoded = []
    for j in range(hashes.shape[1]):
        order, starts, sizes = bucket_runs(hashes[:, j])
        left, right = (_all_pairs if all_pairs else _star_pairs)(order, starts, sizes)
        lo, hi = np.minimum(left, right), np.maximum(left, right)
        encoded.append(lo.astype(np.int64) * n + hi)
    if not encoded:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(encoded))
    return np.stack([codes // max(n, 1), codes % max(n, 1)], axis=1)
