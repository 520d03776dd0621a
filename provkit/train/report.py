"""``RUN/report.md`` and a self-contained ``RUN/report.html`` (figures embedded as base64), and run comparison."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa

from provkit.core.atomic import write_bytes_atomic, write_json_atomic
from provkit.train.loop import read_metrics
from provkit.train.plots import DIVERSITY, TAILS, plot_run
from provkit.train.stats import run_statistics

STAT_METRICS = ("test_ppl", "data_ppl_median", "data_ppl_p95", *TAILS, *DIVERSITY)
TABLE_COLUMNS = ("test_ppl", "data_below_human_p1", "data_above_human_p99", "distinct_2", "self_bleu", "tail_recall")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _iv(mean: float, low: float, high: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _p(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:.3g}"


def run_stats(run: str | Path) -> dict[str, Any]:
    """Every statistics table of a run (``provkit.train.stats.run_statistics``) plus the human percentiles."""
    metrics, _, cfg = read_metrics(run)
    rows = metrics.to_pylist()
    present = [m for m in STAT_METRICS if m in metrics.column_names]
    st: dict[str, Any] = run_statistics(rows, present)
    st["seeds"] = sorted({int(r["seed"]) for r in rows})
    st["human"] = {k: float(sum(r[f"human_ppl_{k}"] for r in rows if r["generation"] == 0) /
                            max(1, sum(1 for r in rows if r["generation"] == 0)))
                   for k in ("p1", "p99") if f"human_ppl_{k}" in metrics.column_names}
    return st


def write_stats(run: str | Path) -> Path:
    """``RUN/stats.json``: the statistics tables (columns documented in docs/experiment.md)."""
    run = Path(run)
    path = run / "stats.json"
    write_json_atomic(path, _jsonable(run_stats(run)))
    return path


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def headline_rows(st: dict[str, Any]) -> list[dict[str, str]]:
    """The answer: per condition, collapse slowed and C with their intervals, and the words."""
    return [{"condition": h["condition"], "seeds": str(h["n_seeds"]),
             "collapse slowed vs replace [95 % CI]": "(reference)" if h["condition"] == "replace"
             else _iv(h["slowed"], h["slowed_low"], h["slowed_high"], 2),
             "endpoint C [95 % CI]": _iv(h["C_mean"], h["C_ci_low"], h["C_ci_high"]),
             "in words": h["verdict"]} for h in st["headline"]]


def contrast_rows(st: dict[str, Any]) -> list[dict[str, str]]:
    return [{"contrast": f"C({c['condition']}) − C({c['reference']})", "seeds": str(c["n_seeds"]),
             "mean difference [95 % CI]": _iv(c["diff_mean"], c["diff_ci_low"], c["diff_ci_high"]),
             "p (paired t)": _p(c["p_t"]), "p (sign-flip, exact)": _p(c["p_signflip"]),
             "p t (Holm)": _p(c["p_t_holm"]), "p sign-flip (Holm)": _p(c["p_signflip_holm"]),
             "in words": c["verdict"]} for c in st["contrasts"]]


def generation_rows(st: dict[str, Any], columns: Sequence[str] = TABLE_COLUMNS) -> list[dict[str, str]]:
    """Mean [95 % CI] over seeds per (condition, generation) for the main metrics."""
    by = {(r["condition"], r["generation"], r["metric"]): r for r in st["by_generation"]}
    keys = list(dict.fromkeys((r["condition"], r["generation"]) for r in st["by_generation"]))
    out = []
    for cond, gen in keys:
        row = {"condition": cond, "gen": str(gen), "seeds": str(by.get((cond, gen, "test_ppl"), {}).get("n_seeds", ""))}
        for col in columns:
            r = by.get((cond, gen, col))
            digits = 1 if col == "test_ppl" else 3
            row[col] = _iv(r["mean"], r["ci_low"], r["ci_high"], digits) if r else "–"
        out.append(row)
    return out


def per_seed_rows(metrics: pa.Table, st: dict[str, Any]) -> list[dict[str, str]]:
    """Per seed and condition: test perplexity at generation 0 and at the last one, and C."""
    rows = metrics.to_pylist()
    c = {(e["condition"], e["seed"]): e["C"] for e in st["endpoints"]}
    out = []
    for cond in dict.fromkeys(r["condition"] for r in rows):
        for seed in sorted({r["seed"] for r in rows if r["condition"] == cond}):
            curve = sorted((r for r in rows if r["condition"] == cond and r["seed"] == seed), key=lambda r: r["generation"])
            out.append({"condition": cond, "seed": str(seed),
                        "test ppl by generation": " → ".join(f"{r['test_ppl']:.1f}" for r in curve),
                        "C": _fmt(c.get((cond, seed), float("nan"))),
                        "train records / tokens / steps (last gen)": f"{curve[-1].get('train_rows', '–')} / "
                        f"{curve[-1].get('train_tokens', '–')} / {curve[-1].get('train_steps', '–')}"})
    return out


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _html_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(rows[0])
    return ("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>" for r in rows) + "</table>")


INTRO = ("Generation n is the base model fine-tuned on data written by generation n−1; the condition decides "
         "the training mix. C = mean over generations 1..N of (log test ppl_n − log test ppl_0), per seed "
         "(> 0: the human test set became less likely). Collapse slowed = 1 − C(X)/C(replace): 1 = no collapse "
         "left, 0 = as bad as replace; interval = percentile bootstrap over seeds (paired). Where an interval spans "
         "0 the conditions are not distinguishable at this seed count.")


def write_report(run: str | Path) -> tuple[Path, Path]:
    """Write ``stats.json``, ``report.md`` (figures as PNG files next to it) and a self-contained ``report.html``."""
    run = Path(run)
    metrics, seq, cfg = read_metrics(run)
    st = run_stats(run)
    write_json_atomic(run / "stats.json", _jsonable(st))
    figs = plot_run(st, seq, run / "figures", st["human"])
    title = f"provkit collapse experiment — {run.name}"
    n = len(st["seeds"])
    sections = [
        (f"Answer: how much does each condition slow collapse? ({n} seeds)", headline_rows(st)),
        ("Paired contrasts of C (Holm-corrected across all rows)", contrast_rows(st)),
    ]
    later = [("Per seed", per_seed_rows(metrics, st)),
             ("Numbers per generation: mean [95 % CI] over seeds", generation_rows(st))]
    md = [f"# {title}", "", INTRO, ""]
    for head, rows in sections:
        md += [f"## {head}", "", markdown_table(rows)]
    md += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figs] + [""]
    for head, rows in later:
        md += [f"## {head}", "", markdown_table(rows)]
    md += ["## Configuration", "", "```json", json.dumps(cfg, indent=2), "```", ""]
    md_path = run / "report.md"
    write_bytes_atomic(md_path, "\n".join(md).encode())
    html_path = run / "report.html"
    write_bytes_atomic(html_path, _html(title, sections, later, figs, cfg).encode())
    return md_path, html_path


def _html(title: str, sections: Sequence[tuple[str, list]], later: Sequence[tuple[str, list]], figs: Sequence[Path],
          cfg: dict[str, Any]) -> str:
    imgs = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"/>'
        f"<figcaption>{html.escape(p.stem.replace('_', ' '))}</figcaption></figure>" for p in figs
    )
    body = "".join(f"<h2>{html.escape(h)}</h2>{_html_table(rows)}" for h, rows in sections)
    tail = "".join(f"<h2>{html.escape(h)}</h2>{_html_table(rows)}" for h, rows in later)
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}img{width:100%;height:auto}"
             "figure{margin:1.5em 0}figcaption{color:#555;text-align:center}"
             "table{border-collapse:collapse;margin:0.5em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 6px;"
             "text-align:left}th{background:#f3f3f3}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(INTRO)}</p>{body}<h2>Figures</h2>{imgs}{tail}"
            f"<h2>Configuration</h2><pre>{html.escape(json.dumps(cfg, indent=2))}</pre></body></html>")


def compare_runs(runs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Per run and condition: seeds, test perplexity (gen 0, last: means over seeds), C and collapse slowed with intervals."""
    out = []
    for run in runs:
        metrics, _, _ = read_metrics(run)
        st = run_stats(run)
        by = {(r["condition"], r["generation"], r["metric"]): r for r in st["by_generation"]}
        for h in st["headline"]:
            cond = h["condition"]
            gens = [g for (c, g, m) in by if c == cond and m == "test_ppl"]
            last = max(gens)
            out.append({"run": str(run), "condition": cond, "seeds": h["n_seeds"], "generations": last,
                        "ppl_gen0": by[(cond, 0, "test_ppl")]["mean"], "ppl_last": by[(cond, last, "test_ppl")]["mean"],
                        "ppl_last_ci_low": by[(cond, last, "test_ppl")]["ci_low"],
                        "ppl_last_ci_high": by[(cond, last, "test_ppl")]["ci_high"],
                        "C": h["C_mean"], "C_ci_low": h["C_ci_low"], "C_ci_high": h["C_ci_high"],
                        "slowed": h["slowed"], "slowed_ci_low": h["slowed_low"], "slowed_ci_high": h["slowed_high"],
                        "verdict": h["verdict"]})
    return out
