"""The local engine's compact decide-phase state: alive rows made from the fate, stored decisions, pre_buffer off."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from filter_fixtures import human_texts, write_dataset
from provkit.engines import run_filter
from provkit.engines.local import KEPT, alive_table, stored_decisions
from provkit.filters import parse_pipeline
from provkit.filters.step import DROP_REASON, ORDER
from provkit.provenance import Dataset


class _Step:
    def __init__(self, weight_column: str | None = None):
        self.weight_column = weight_column


def _decisions(**extra: list) -> pa.Table:
    return pa.table({ORDER: pa.array([0, 2, 3, 5], pa.int64()),
                     DROP_REASON: pa.array([None, "r", None, "r"], pa.string()), **extra})


def test_alive_table_makes_row_keys_from_the_fate_and_ignores_a_stored_row_column():
    small = pa.table({"id": ["a", "b", "c", "d"], "origin": ["human", "model", "human", "human"]})
    fate = np.array([KEPT, 0, KEPT, KEPT], dtype=np.int16)
    alive = alive_table(small, fate)
    assert alive.column_names == [ORDER, "id", "origin"]
    assert alive.column(ORDER).to_pylist() == [0, 2, 3]
    assert alive.column("id").to_pylist() == ["a", "c", "d"]
    with_rows = small.add_column(0, ORDER, pa.array([0, 1, 2, 3], pa.int64()))  # as the Ray engine keeps it
    assert alive_table(with_rows, fate).equals(alive)
    everyone = alive_table(small, np.full(4, KEPT, dtype=np.int16))
    assert everyone.column(ORDER).to_pylist() == [0, 1, 2, 3]


def test_stored_decisions_leave_out_rows_with_nothing_to_say():
    table = stored_decisions(_Step(), _decisions(dup_of=pa.array([None, "x", "y", None], pa.string())))
    assert table.column(ORDER).to_pylist() == [2, 3, 5]  # row 0: kept, no annotation
    assert pa.types.is_dictionary(table.schema.field(DROP_REASON).type)
    assert table.column(DROP_REASON).cast(pa.string()).to_pylist() == ["r", None, "r"]
    assert table.column("dup_of").type == pa.string()


def test_stored_decisions_of_a_weighting_step_keep_every_row():
    table = stored_decisions(_Step("w"), _decisions(w=pa.array([1.0, None, 2.0, None])))
    assert table.column(ORDER).to_pylist() == [0, 2, 3, 5]
    assert table.column("w").to_pylist() == [1.0, None, 2.0, None]


def test_iter_batches_without_pre_buffer_read_every_record_in_manifest_order(tmp_path):
    texts = human_texts(300)
    src = write_dataset(tmp_path / "src", texts)
    got = pa.Table.from_batches(list(Dataset.open(src).iter_batches(batch_size=64)))
    assert got.equals(Dataset.open(src).read())


@pytest.mark.parametrize("steps", [
    [{"kind": "random_drop", "count": 40}],
    [{"kind": "exact_dedup"}, {"kind": "random_drop", "count": 40}],
])
def test_each_row_gets_one_fate_and_its_step_name(tmp_path, steps):
    texts = human_texts(200, start=50)
    texts += texts[:30]  # exact duplicates for exact_dedup
    src = write_dataset(tmp_path / "src", texts)
    r = run_filter(src, tmp_path / "out", parse_pipeline({"steps": steps}, "t"), verify=False)
    out = Dataset.open(tmp_path / "out")
    data, rejects = out.read("data"), out.read("rejects")
    assert data.num_rows + rejects.num_rows == len(texts)
    assert sorted(data.column("id").to_pylist() + rejects.column("id").to_pylist()) == \
        sorted(Dataset.open(src).read().column("id").to_pylist())
    assert rejects.num_rows == sum(r.report["dropped"].values())
    assert set(rejects.column("drop_reason").to_pylist()) <= {"random_drop", "exact_duplicate"}
    assert None not in rejects.column("drop_step").to_pylist()
    assert rejects.column("drop_reason").type == pa.string()
    assert r.report["dropped"].get("random_drop") == 40
    for reason, step in zip(rejects.column("drop_reason").to_pylist(), rejects.column("drop_step").to_pylist()):
        assert step == {"random_drop": "random_drop", "exact_duplicate": "exact_dedup"}[reason]
