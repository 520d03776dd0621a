"""Lineage: a record's ancestors through ``parent_ids``, across the dataset and its parents.

Walk breadth-first: level 0 is the record; each next level is the set of
parent ids not yet visited, looked up (one filtered scan per dataset per level,
``pyarrow.dataset`` with ``id in {...}``) in the dataset and then in every
parent dataset its manifest names, transitively.  A record with no parents is
a root; a parent id found nowhere is reported as ``found: false``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as pads

from provkit.errors import DatasetError, InputError
from provkit.provenance.reader import Dataset

_COLUMNS = ["id", "origin", "origin_evidence", "origin_confidence", "generator", "parent_ids", "activity_id",
            "source_uri", "dataset"]


@dataclass
class LineageNode:
    """One record on the path to the roots."""

    id: str
    depth: int
    found: bool
    dataset_path: str | None = None
    origin: str | None = None
    origin_evidence: str | None = None
    origin_confidence: float | None = None
    generator: dict[str, Any] | None = None
    parent_ids: list[str] = field(default_factory=list)
    activity_id: str | None = None
    source_uri: str | None = None
    dataset: str | None = None
    children: list[str] = field(default_factory=list)  # the ids on the previous level it is a parent of

    @property
    def is_root(self) -> bool:
        return self.found and not self.parent_ids

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "root": self.is_root}


def dataset_chain(path: str | Path) -> list[Dataset]:
    """The dataset and all datasets reachable through manifest parents (each once, nearest first)."""
    first = Dataset.open(path)
    chain, seen, queue = [], {first.path.resolve()}, [first]
    while queue:
        ds = queue.pop(0)
        chain.append(ds)
        for parent in ds.parents:
            if parent.resolve() in seen:
                continue
            seen.add(parent.resolve())
            try:
                queue.append(Dataset.open(parent))
            except DatasetError:
                continue  # a parent that moved: its records are reported as not found
    return chain


def _find(datasets: list[Dataset], ids: set[str]) -> dict[str, tuple[Dataset, dict[str, Any]]]:
    found: dict[str, tuple[Dataset, dict[str, Any]]] = {}
    for ds in datasets:
        wanted = sorted(ids - found.keys())
        if not wanted:
            break
        files = [str(p) for p in ds.files("data")]
        scan = pads.dataset(files, format="parquet")
        cols = [c for c in _COLUMNS if c in scan.schema.names]
        for row in scan.to_table(columns=cols, filter=pc.field("id").isin(wanted)).to_pylist():
            found.setdefault(row["id"], (ds, row))
    return found


def lineage(path: str | Path, record_id: str, max_depth: int = 1000) -> list[LineageNode]:
    """The record ``record_id`` of the dataset at ``path`` and all its ancestors, by depth."""
    datasets = dataset_chain(path)
    first = _find(datasets[:1], {record_id})
    if record_id not in first:
        raise InputError(f"{path}: no record with id {record_id!r} (list its ids with `prov export {path} --to jsonl --out records.jsonl`)")
    nodes: list[LineageNode] = []
    visited: set[str] = set()
    level = {record_id: []}  # id -> children
    depth = 0
    while level and depth <= max_depth:
        found = first if depth == 0 else _find(datasets, set(level))
        next_level: dict[str, list[str]] = {}
        for rid in sorted(level):
            visited.add(rid)
            if rid not in found:
                nodes.append(LineageNode(rid, depth, False, children=level[rid]))
                continue
            ds, row = found[rid]
            node = LineageNode(rid, depth, True, str(ds.path), children=level[rid],
                               **{k: row.get(k) for k in _COLUMNS if k != "id"})
            node.parent_ids = list(node.parent_ids or [])
            nodes.append(node)
            for parent in node.parent_ids:
                if parent not in visited:
                    next_level.setdefault(parent, []).append(rid)
        level = next_level
        depth += 1
    return nodes
