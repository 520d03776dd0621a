"""A toy run's files, and ``report.md`` / ``report.html`` putting every kind and condition found in a directory side by side.

``write_toy(results, DIR)`` writes, for one kind, ``DIR/toy-KIND.json`` (config
and per-generation summary of every condition; for the VAE also every seed's
values, ``per_seed[condition][metric][seed][generation]``, for paired
comparisons) and its figures; the VAE also writes one sample grid per
condition and generation under ``DIR/vae/``.
``write_toy_report(DIR)`` reads every ``toy-*.json`` in DIR, so runs of
different kinds made one after the other into the same DIR share one report.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Sequence

from provkit.core.atomic import write_bytes_atomic
from provkit.errors import InputError
from provkit.train.report import _fmt, markdown_table
from provkit.train.toy.config import TOY_KINDS
from provkit.train.toy.loop import ToyResult
from provkit.train.toy.plots import (
    plot_toy,
    plot_vae_classes,
    plot_vae_grids,
    plot_vae_metrics,
    save_grid,
)
from provkit.train.toy.vae import VaeResult

INTRO = {
    "gaussian": "Fit N(mu, sigma^2) to M samples, draw M from the fit, refit. Dashed: the closed forms "
                "(`provkit.train.toy.gaussian`); measured = mean over independent runs ± standard error.",
    "gmm": "Fit a two-component 1-D Gaussian mixture by EM to M samples, draw M from the fit, refit "
           "(no closed form; mean over independent runs).",
    "vae": "A fresh VAE on scikit-learn's 8x8 digits each generation, trained on the previous generation's samples "
           "(as many as there are originals). Class shares and the Frechet distance use a classifier trained once on "
           "the real digits (its hidden layer is the feature space); the judge calls a blurred, average-looking digit "
           "an 8, so falling entropy mixes classes lost with detail lost. Values: mean over seeds ± 95% t-interval.",
}
# per kind: (summary key, heading, closed-form key or None)
TABLES = {
    "gaussian": [("mean_sq_drift", "E (mu_n - mu)^2, measured ± s.e. (closed form)", "mean_sq_drift_closed_form"),
                 ("variance_mean", "E sigma_n^2, measured ± s.e. (closed form)", "variance_closed_form")],
    "gmm": [("sigma_mean", "mixture std (mean)", None), ("min_weight", "smaller weight (mean)", None),
            ("tail_mass", "tail mass P(|x - mean0| > 3 std0) (mean)", None)],
    "vae": [("var_ratio", "pixel variance / originals'", None),
            ("class_entropy", "class entropy, bits (uniform: 3.32)", None),
            ("frechet", "Frechet distance to the originals (judge's hidden-layer features)", None),
            ("min_class_share", "smallest class share", None)],
}


def _slug(condition: str) -> str:
    return condition.replace("=", "-").replace("/", "_")


def write_toy(results: ToyResult | VaeResult | Sequence[ToyResult | VaeResult], directory: str | Path) -> tuple[Path, Path]:
    """Figures and ``toy-KIND.json`` for one kind's results (one per condition); returns (main figure, json)."""
    results = [results] if isinstance(results, (ToyResult, VaeResult)) else list(results)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kind = results[0].config.kind
    doc: dict[str, Any] = {"kind": kind, "config": {k: v for k, v in results[0].config.to_json().items() if k != "condition"},
                           "conditions": [r.condition for r in results],
                           "summaries": {r.condition: r.summary() for r in results}}
    if kind == "vae":
        png = plot_vae_metrics(results, directory / "toy-vae.png")
        extra = [plot_vae_grids(results, directory / "toy-vae-grids.png"), plot_vae_classes(results, directory / "toy-vae-classes.png")]
        doc["reference"] = results[0].reference
        doc["per_seed"] = {r.condition: {k: v.T.round(6).tolist() for k, v in r.metrics.items()} for r in results}
        doc["grids"] = {}
        for r in results:
            sub = directory / "vae" / _slug(r.condition)
            sub.mkdir(parents=True, exist_ok=True)
            doc["grids"][r.condition] = [str(save_grid(g, sub / f"gen-{n:02d}.png").relative_to(directory))
                                         for n, g in enumerate(r.grids)]
        doc["figures"] = [p.name for p in (png, *extra)]
    else:
        png = plot_toy(results, directory / f"toy-{kind}.png")
        doc["figures"] = [png.name]
    js = directory / f"toy-{kind}.json"
    write_bytes_atomic(js, (json.dumps(doc, indent=2) + "\n").encode())
    return png, js


def _cell(row: dict[str, Any], key: str, closed: str | None) -> str:
    err = row.get(f"{key}_ci", row.get(key.replace("_mean", "") + "_se"))
    text = _fmt(row[key])
    if err is not None and not (isinstance(err, float) and math.isnan(err)):
        text += f" ± {_fmt(err)}"
    if closed:
        text += f" ({_fmt(row[closed])})"
    return text


def _generations(last: int, kind: str) -> list[int]:
    if kind == "vae" or last <= 10:
        return list(range(last + 1))
    return sorted({1, 2, 5, 10, last // 4, last // 2, last})


def side_by_side(doc: dict[str, Any], key: str, closed: str | None) -> list[dict[str, Any]]:
    """Rows = generations, columns = conditions."""
    sums = doc["summaries"]
    last = len(next(iter(sums.values()))) - 1
    return [{"generation": n, **{c: _cell(sums[c][n], key, closed) for c in doc["conditions"]}}
            for n in _generations(last, doc["kind"])]


def _headline(doc: dict[str, Any]) -> list[str]:
    kind, sums = doc["kind"], doc["summaries"]
    lines = []
    for c in doc["conditions"]:
        first, last = sums[c][0], sums[c][-1]
        g = last["generation"]
        if kind == "gaussian":
            lines.append(f"- **{c}**: E(mu_{g} - mu)^2 = {_cell(last, 'mean_sq_drift', 'mean_sq_drift_closed_form')} "
                         f"(in units of sigma^2/M: {last['mean_sq_drift'] * doc['config']['samples'] / doc['config']['sigma'] ** 2:.2f}); "
                         f"mean fitted sigma {_fmt(last['sigma_mean'])}")
        elif kind == "gmm":
            lines.append(f"- **{c}**: by generation {g} the mixture std is {_fmt(first['sigma_mean'])} → {_fmt(last['sigma_mean'])}, "
                         f"smaller weight {_fmt(first['min_weight'])} → {_fmt(last['min_weight'])}, "
                         f"tail mass {_fmt(first['tail_mass'])} → {_fmt(last['tail_mass'])}")
        else:
            one = sums[c][1]
            lines.append(f"- **{c}**: from generation 1 to {g}, pixel variance ratio {_cell(one, 'var_ratio', None)} → "
                         f"{_cell(last, 'var_ratio', None)}, class entropy {_cell(one, 'class_entropy', None)} → "
                         f"{_cell(last, 'class_entropy', None)} bits, Frechet distance {_cell(one, 'frechet', None)} → "
                         f"{_cell(last, 'frechet', None)}")
    if kind == "vae":
        ref = doc["reference"]
        lines.append(f"- originals: class entropy {_fmt(sums[doc['conditions'][0]][0]['class_entropy'])} bits; judge accuracy "
                     f"on held-out real digits {ref['classifier_accuracy']:.3f}; Frechet distance between two halves of the "
                     f"originals (a floor) {_fmt(ref['frechet_real_halves'])}")
    return lines


def read_toy_docs(directory: str | Path) -> list[dict[str, Any]]:
    """Every ``toy-KIND.json`` in ``directory``, in the order gaussian, gmm, vae."""
    directory = Path(directory)
    docs = []
    for kind in TOY_KINDS:
        path = directory / f"toy-{kind}.json"
        if path.is_file():
            try:
                docs.append(json.loads(path.read_text(encoding="utf-8")))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: not valid JSON ({exc}); rerun `prov experiment toy {kind}`") from None
    if not docs:
        raise InputError(f"{directory}: no toy-*.json here; run `prov experiment toy KIND --out {directory}` first")
    return docs


def write_toy_report(directory: str | Path) -> tuple[Path, Path]:
    """``report.md`` (figures as the PNGs next to it) and a self-contained ``report.html`` for every toy in ``directory``."""
    directory = Path(directory)
    docs = read_toy_docs(directory)
    title = "provkit toy loops: replace, keep-human, accumulate"
    md = [f"# {title}", "", "Generation 1 fits the originals; every later generation fits a training set built from "
          "the previous fit's samples under the condition: `replace` (samples only), `keep-human=F` (a fraction F of "
          "fresh originals), `accumulate` (originals + every generation's samples), `accumulate-fixed` (accumulate's "
          "pool, but replace's sample count drawn from it).", ""]
    body_html = [f"<h1>{html.escape(title)}</h1><p>{html.escape(md[2])}</p>"]
    for doc in docs:
        kind = doc["kind"]
        md += [f"## {kind}", "", INTRO[kind], "", *_headline(doc), ""]
        md += [f"![{kind} {Path(f).stem}]({f})" for f in doc["figures"]] + [""]
        body_html.append(f"<h2>{kind}</h2><p>{html.escape(INTRO[kind])}</p><ul>"
                         + "".join(f"<li>{html.escape(h[2:]).replace('**', '')}</li>" for h in _headline(doc)) + "</ul>")
        body_html += [_img(directory / f) for f in doc["figures"]]
        for key, heading, closed in TABLES[kind]:
            rows = side_by_side(doc, key, closed)
            md += [f"**{heading}**", "", markdown_table(rows)]
            body_html.append(f"<h3>{html.escape(heading)}</h3>{_html_table(rows)}")
        if kind == "vae":
            md += ["Sample grids per generation: " + ", ".join(f"`{c}`: [{len(g)} PNGs]({Path(g[0]).parent}/)"
                                                               for c, g in doc["grids"].items()), ""]
        md += ["<details><summary>configuration</summary>", "", "```json", json.dumps(doc["config"], indent=2), "```", "",
               "</details>", ""]
        body_html.append(f"<details><summary>configuration</summary><pre>{html.escape(json.dumps(doc['config'], indent=2))}</pre></details>")
    md_path, html_path = directory / "report.md", directory / "report.html"
    write_bytes_atomic(md_path, "\n".join(md).encode())
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}img{max-width:100%}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
            f"</head><body>{''.join(body_html)}</body></html>")
    write_bytes_atomic(html_path, page.encode())
    return md_path, html_path


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"/></figure>'


def _html_table(rows: Sequence[dict[str, Any]]) -> str:
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
