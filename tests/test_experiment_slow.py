"""The whole tiny preset, as `make demo` runs it (5 seeds, all default conditions, 2 workers): `make test-slow`."""

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from provkit.cli import app


@pytest.mark.slow
def test_tiny_preset_end_to_end_replace_collapses_with_its_interval_above_zero(tmp_path):
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["experiment", "run", "--out", str(run), "--workers", "2"])
    assert res.exit_code == 0, res.output
    rows = pq.read_table(run / "metrics.parquet").to_pylist()
    assert {r["seed"] for r in rows} == {0, 1, 2, 3, 4}
    mean = {}
    for g in range(6):
        vals = [r["test_ppl"] for r in rows if r["condition"] == "replace" and r["generation"] == g]
        mean[g] = sum(vals) / len(vals)
    assert mean[5] > mean[0]  # the mean replace curve rises
    stats = json.loads((run / "stats.json").read_text())
    head = {h["condition"]: h for h in stats["headline"]}
    assert head["replace"]["C_ci_low"] > 0  # collapse under replace, its 95 % interval above 0
    assert set(head) == {"replace", "keep-human=0.1", "accumulate", "accumulate-fixed", "curated"}
    for name in ("report.md", "report.html", "figures/test_perplexity.png", "figures/endpoints.png"):
        assert (run / name).stat().st_size > 0
