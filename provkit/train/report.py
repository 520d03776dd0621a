"""``RUN/report.md`` and a self-contained ``RUN/report.html`` (figures embedded as base64), and run comparison."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa

from provkit.core.atomic import write_bytes_atomic
from provkit.train.loop import read_metrics
from provkit.train.plots import plot_run, plot_toy

TABLE_COLUMNS = ("test_ppl", "data_ppl_median", "data_ppl_p95", "distinct_2", "self_bleu", "tail_recall", "vocab_diversity")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def summary_rows(metrics: pa.Table) -> list[dict[str, Any]]:
    """Mean over seeds per (condition, generation)."""
    rows = metrics.to_pylist()
    keys = list(dict.fromkeys((r["condition"], r["generation"]) for r in rows))
    out = []
    for cond, gen in sorted(keys, key=lambda k: ([r["condition"] for r in rows].index(k[0]), k[1])):
        group = [r for r in rows if r["condition"] == cond and r["generation"] == gen]
        row: dict[str, Any] = {"condition": cond, "generation": gen, "seeds": len(group)}
        for col in TABLE_COLUMNS:
            vals = [r.get(col) for r in group if r.get(col) is not None and not math.isnan(r.get(col))]
            row[col] = sum(vals) / len(vals) if vals else float("nan")
        out.append(row)
    return out


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def headline(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One sentence per condition: test perplexity at generation 0 and at the last generation."""
    lines = []
    for cond in dict.fromkeys(r["condition"] for r in rows):
        g = [r for r in rows if r["condition"] == cond]
        first, last = g[0], g[-1]
        lines.append(f"- **{cond}**: test perplexity {_fmt(first['test_ppl'])} (gen {first['generation']}) → "
                     f"{_fmt(last['test_ppl'])} (gen {last['generation']}); tail-token recall "
                     f"{_fmt(first['tail_recall'])} → {_fmt(last['tail_recall'])}; 95th-percentile data perplexity "
                     f"{_fmt(first['data_ppl_p95'])} → {_fmt(last['data_ppl_p95'])}")
    return lines


def write_report(run: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` (figures as PNG files next to it) and a self-contained ``report.html``."""
    run = Path(run)
    metrics, seq, cfg = read_metrics(run)
    figs = plot_run(metrics, seq, run / "figures")
    rows = summary_rows(metrics)
    title = f"provkit collapse experiment — {run.name}"
    md = [f"# {title}", "", "Generation n is the same base model fine-tuned on data written by generation n−1 "
          "(condition decides the mix). Data perplexity = per-sequence perplexity of each generation's model-written "
          "data under the generation-0 model.", "", "## Headline", "", *headline(rows), "", "## Figures", ""]
    md += [f"![{p.stem}](figures/{p.name})" for p in figs]
    md += ["", "## Numbers (mean over seeds)", "", markdown_table(rows), "## Configuration", "", "```json",
           json.dumps(cfg, indent=2), "```", ""]
    md_path = run / "report.md"
    write_bytes_atomic(md_path, "\n".join(md).encode())
    html_path = run / "report.html"
    write_bytes_atomic(html_path, _html(title, rows, figs, cfg).encode())
    return md_path, html_path


def _html(title: str, rows: Sequence[dict[str, Any]], figs: Sequence[Path], cfg: dict[str, Any]) -> str:
    imgs = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"/>'
        f"<figcaption>{html.escape(p.stem)}</figcaption></figure>" for p in figs
    )
    cols = list(rows[0]) if rows else []
    table = "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>" for r in rows) + "</table>"
    heads = "".join(f"<li>{html.escape(h[2:]).replace('**', '')}</li>" for h in headline(rows))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{max-width:100%}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><h2>Headline</h2><ul>{heads}</ul><h2>Figures</h2>{imgs}"
            f"<h2>Numbers (mean over seeds)</h2>{table}<h2>Configuration</h2><pre>{html.escape(json.dumps(cfg, indent=2))}</pre>"
            "</body></html>")


def compare_runs(runs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Per run and condition: test perplexity at generation 0 and at the last generation, and its ratio."""
    out = []
    for run in runs:
        metrics, _, _ = read_metrics(run)
        rows = summary_rows(metrics)
        for cond in dict.fromkeys(r["condition"] for r in rows):
            g = [r for r in rows if r["condition"] == cond]
            out.append({"run": str(run), "condition": cond, "generations": g[-1]["generation"],
                        "ppl_gen0": g[0]["test_ppl"], "ppl_last": g[-1]["test_ppl"],
                        "ppl_ratio": g[-1]["test_ppl"] / g[0]["test_ppl"],
                        "tail_recall_last": g[-1]["tail_recall"], "distinct_2_last": g[-1]["distinct_2"]})
    return out


def write_toy(result: Any, directory: str | Path) -> tuple[Path, Path]:
    """``toy.png`` (sigma-hat and drift vs closed forms) and ``toy.json`` (per-generation summary) in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png = plot_toy(result, directory / f"toy-{result.config.kind}.png")
    js = directory / f"toy-{result.config.kind}.json"
    doc = {"config": {k: getattr(result.config, k) for k in result.config.__dataclass_fields__}, "summary": result.summary()}
    write_bytes_atomic(js, (json.dumps(doc, indent=2) + "\n").encode())
    return png, js
