"""Connected components of a duplicate graph, with labels that do not depend on how they were found.

Nodes are row positions ``0..n-1``; edges are the verified candidate pairs.
Two records are in one cluster when a chain of edges joins them (A~B, B~C make
{A, B, C} one cluster even when A and C are not similar).  The label of every
node is the **smallest row position in its component**, so any algorithm
(scipy's graph search here, a distributed label propagation in the Ray
engine) that finds the same components gives the same labels.

Two ways to get them:

* :func:`component_labels` — all edges at once: ``scipy.sparse`` CSR of the
  edges (~``12`` bytes per edge plus ``8`` per node) and ``8`` bytes per node of labels;
* a **union-find** over an ``int64[n]`` parent array (``8`` bytes per node, no
  per-edge memory: edges can arrive in any number of batches) —
  :func:`new_forest`, :func:`union_min` (compiled, for kernels), :func:`union_pairs`
  and :func:`resolve_roots`.  Unions always hang the larger root under the
  smaller one and :func:`find_root` halves paths, so every parent is ``<=`` its
  node and the root of a component is its smallest node: the labels equal
  :func:`component_labels` for the same edges, whatever their order.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def component_labels(n: int, pairs: np.ndarray) -> np.ndarray:
    """``int64[n]``: for each node, the smallest node index of its connected component."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return canonical_labels(labels)


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel any component labelling so each node gets the smallest node index sharing its label."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)].astype(np.int64)


def new_forest(n: int) -> np.ndarray:
    """A union-find forest of ``n`` singletons: ``parent[i] = i`` (``int64``, 8 bytes per node)."""
    return np.arange(n, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def find_root(parent, x):  # pragma: no cover - compiled
    """The root (smallest node) of ``x``'s component, halving the path on the way."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@numba.njit(cache=True, nogil=True)
def union_min(parent, a, b):  # pragma: no cover - compiled
    """Join the components of ``a`` and ``b`` under the smaller root; False when they were one already."""
    ra, rb = find_root(parent, a), find_root(parent, b)
    if ra == rb:
        return False
    if ra < rb:
        parent[rb] = ra
    else:
        parent[ra] = rb
    return True


@numba.njit(cache=True, nogil=True)
def _union_pairs_kernel(parent, left, right):  # pragma: no cover - compiled
    for m in range(len(left)):
        union_min(parent, left[m], right[m])


def union_pairs(parent: np.ndarray, pairs: np.ndarray) -> None:
    """Add the edges ``pairs`` (``int[m, 2]``) to the forest ``parent`` in place."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs):
        _union_pairs_kernel(parent, np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1]))


@numba.njit(cache=True, nogil=True)
def _resolve_kernel(parent):  # pragma: no cover - compiled
    for i in range(len(parent)):  # parent[i] <= i, so parent[parent[i]] is final already
        parent[i] = parent[parent[i]]


def resolve_roots(parent: np.ndarray) -> np.ndarray:
    """Turn the forest into labels in place (each node -> its root = smallest node of its component)."""
    if len(parent):
        _resolve_kernel(parent)
    return parent
