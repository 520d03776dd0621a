"""The crawl scenario's filter steps: resample (virtual-copy draw), random_drop, origin."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from provkit.engines import run_filter
from provkit.errors import ConfigError
from provkit.filters.config import parse_pipeline
from provkit.filters.steps.resample import ResampleConfig, virtual_copy_draw
from provkit.provenance import Activity, Dataset, DatasetWriter, make_batch


def _dataset(path, n=40, origins=None):
    texts = [f"record number {i} with some words {i * 7}" for i in range(n)]
    origins = origins or ["unknown"] * n
    batch = make_batch(texts, ids=[f"r{i:03d}" for i in range(n)], origin=origins, evidence=None)
    with DatasetWriter(path, Activity("test", {})) as w:
        w.write(batch)
    return path


def test_virtual_copy_draw_exact_size_and_cap():
    ids = [f"x{i}" for i in range(10)]
    w = np.linspace(0.1, 1.0, 10)
    copies, cap = virtual_copy_draw(ids, w, 15, 3, seed=1)
    assert copies.sum() == 15 and copies.max() <= 3 and cap == 3
    again, _ = virtual_copy_draw(ids, w, 15, 3, seed=1)
    assert (copies == again).all()
    # too few rows for the cap: the cap rises so the size is still met
    copies, cap = virtual_copy_draw(ids[:4], w[:4], 15, 3, seed=1)
    assert copies.sum() == 15 and cap == 4
    # zero weight drawn only when nothing else is left
    copies, _ = virtual_copy_draw(ids[:3], np.array([0.0, 1.0, 1.0]), 2, 1, seed=0)
    assert copies.tolist() == [0, 1, 1]


def test_virtual_copy_draw_follows_weights():
    n = 400
    ids = [f"y{i}" for i in range(n)]
    w = np.where(np.arange(n) < n // 2, 1.0, 0.1)
    copies, _ = virtual_copy_draw(ids, w, 100, 1, seed=3)
    heavy = copies[: n // 2].sum()
    assert heavy > 80  # expectation ~ 100 * 200 / 220 ≈ 91 without replacement effects


def test_resample_config_errors():
    with pytest.raises(ConfigError, match="size"):
        ResampleConfig(size=0)


def test_pipeline_resample_random_drop_origin(tmp_path):
    origins = ["model"] * 10 + ["human"] * 5 + ["unknown"] * 25
    src = _dataset(tmp_path / "in", 40, origins)
    cfg = parse_pipeline({"steps": [{"kind": "origin"}, {"kind": "random_drop", "count": 5, "seed": 2},
                                    {"kind": "resample", "size": 50, "max_copies": 3, "seed": 4}]})
    run_filter(src, tmp_path / "out", cfg)
    kept = Dataset.open(tmp_path / "out").read()
    assert set(kept.column("origin").to_pylist()) <= {"human", "unknown"}
    assert sum(kept.column("resample_copies").to_pylist()) == 50
    assert max(kept.column("resample_copies").to_pylist()) <= 3
    assert kept.num_rows <= 25
