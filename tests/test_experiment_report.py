"""The multi-seed report: answer first, one figure per metric, per-seed table after; rendered in headless Chromium.

The run directory is synthetic (known per-seed numbers, no training), so this is fast.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from provkit.cli import app
from provkit.train import compare_runs, write_report

CONDITIONS = ("replace", "keep-human=0.1", "accumulate")


def _fake_run(root, seeds=5, generations=3):
    rng = np.random.default_rng(0)
    rows, seqs = [], []
    slope = {"replace": 0.10, "keep-human=0.1": 0.06, "accumulate": 0.01}
    for seed in range(seeds):
        noise = rng.normal(0, 0.01, generations + 1)
        for cond in CONDITIONS:
            for g in range(generations + 1):
                ppl = 100 * math.exp(slope[cond] * g + (noise[g] if g else 0.0))
                rows.append({"seed": seed, "condition": cond, "generation": g, "test_ppl": ppl, "train_rows": 64,
                             "train_tokens": 2048, "train_steps": 8, "distinct_2": 0.8 - 0.05 * g, "self_bleu": 0.1 + 0.05 * g,
                             "tail_recall": 0.5 - 0.1 * g, "vocab_diversity": 0.4, "data_ppl_median": 50.0,
                             "data_ppl_p95": 90.0, "data_below_human_p1": 0.01 * g, "data_above_human_p99": 0.01,
                             "human_ppl_p1": 20.0, "human_ppl_p99": 200.0, "embedding_diversity": float("nan")})
                seqs += [{"seed": seed, "condition": cond, "generation": g, "ppl": float(p)}
                         for p in rng.lognormal(4 - 0.2 * g, 0.5, 20)]
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "metrics.parquet")
    pq.write_table(pa.Table.from_pylist(seqs), root / "seq_ppl.parquet")
    (root / "config.json").write_text(json.dumps({"seeds": list(range(seeds))}))
    return root


def test_report_puts_the_answer_with_intervals_first(tmp_path):
    run = _fake_run(tmp_path / "run")
    md_path, html_path = write_report(run)
    md = md_path.read_text()
    answer, figures, per_seed = md.index("## Answer"), md.index("## Figures"), md.index("## Per seed")
    assert answer < figures < per_seed
    head = md[answer:md.index("## Paired")]
    assert "(5 seeds)" in head and "slows collapse" in head and re.search(r"\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\]", head)
    stats = json.loads((run / "stats.json").read_text())
    assert {h["condition"] for h in stats["headline"]} == set(CONDITIONS)
    assert all(c["p_signflip_holm"] is not None for c in stats["contrasts"])
    figs = sorted(p.name for p in (run / "figures").glob("*.png"))
    for name in ("test_perplexity.png", "endpoints.png", "perplexity_histograms.png", "distinct_2.png",
                 "self_bleu.png", "data_below_human_p1.png"):
        assert name in figs
    assert "embedding_diversity.png" not in figs  # all NaN: no empty figure
    assert html_path.read_text().count("<img") == len(figs)


def test_compare_handles_multi_seed_runs(tmp_path):
    a = _fake_run(tmp_path / "a")
    rows = compare_runs([a])
    acc = next(r for r in rows if r["condition"] == "accumulate")
    assert acc["seeds"] == 5 and acc["C_ci_low"] < acc["C"] < acc["C_ci_high"] and acc["slowed_ci_low"] > 0
    res = CliRunner().invoke(app, ["experiment", "compare", str(a)])
    assert res.exit_code == 0, res.output
    assert "slowed" in res.output


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_html_report_renders_in_headless_chromium_with_every_figure_loaded(tmp_path):
    run = _fake_run(tmp_path / "run")
    _, html_path = write_report(run)
    page = html_path.read_text()
    n_img = page.count("<img")
    probe = ("<script>window.addEventListener('load',()=>{document.body.setAttribute('data-figures',"
             "Array.from(document.images).map(i=>i.complete&&i.naturalWidth>0?i.naturalWidth+'x'+i.naturalHeight:'broken')"
             ".join(' '))});</script>")
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", probe + "</body>"))
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    res = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r'data-figures="([^"]*)"', res.stdout)
    assert m, res.stderr[-2000:]
    sizes = m.group(1).split()
    assert len(sizes) == n_img >= 6 and "broken" not in sizes
    assert all(int(s.split("x")[0]) >= 600 for s in sizes)  # legible: at least 600 px wide each
