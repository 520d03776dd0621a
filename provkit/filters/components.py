"""Connected components of a duplicate graph, with labels that do not depend on how they were found.

Nodes are row positions ``0..n-1``; edges are the verified candidate pairs.
Two records are in one cluster when a chain of edges joins them (A~B, B~C make
{A, B, C} one cluster even when A and C are not similar).  The label of every
node is the **smallest row position in its component**, so any algorithm
(scipy's graph search here, a distributed label propagation in the Ray
engine) that finds the same components gives the same labels.

Memory: ``scipy.sparse`` CSR of the edges (~``12`` bytes per edge plus ``8``
per node) and ``8`` bytes per node of labels.
"""

from __future__ import annotations

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
