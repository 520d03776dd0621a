"""The whole tiny preset, as `make demo` runs it (about 6 minutes on 2 cores): `make test-slow`."""

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from provkit.cli import app


@pytest.mark.slow
def test_tiny_preset_end_to_end_shows_collapse_under_replace(tmp_path):
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["experiment", "run", "--out", str(run)])
    assert res.exit_code == 0, res.output
    rows = pq.read_table(run / "metrics.parquet").to_pylist()
    ppl = {(r["condition"], r["generation"]): r["test_ppl"] for r in rows if r["seed"] == 0}
    last = max(g for c, g in ppl if c == "replace")
    assert last >= 5
    # replacing the data with the model's own output makes the human test set less likely ...
    assert ppl[("replace", last)] > 1.1 * ppl[("replace", 0)]
    # ... and keeping every generation plus the originals degrades it less
    assert ppl[("accumulate", last)] < ppl[("replace", last)]
    for name in ("report.md", "report.html", "figures/test_perplexity.png"):
        assert (run / name).stat().st_size > 0
