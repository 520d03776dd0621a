"""Where a detector fails: figures overall and by decoding, generator, generation and length.

Given labels (0 human, 1 model) and raw scores ``s`` of an evaluation set:

* **overall**: AUROC and, for ``alpha`` in 1 % and 5 %, the operating point of
  the ROC curve with the largest TPR at FPR <= ``alpha`` — threshold
  ``t_alpha`` (decide "model" when ``s >= t_alpha``), human texts flagged, model
  texts caught, TPR = caught / n_model.
* **by generator decoding / model / generation** (the ``generator`` lineage
  column; model records only, human records have no generator): each group's
  model texts against *all* human texts — AUROC, and caught / TPR at the
  overall ``t_alpha`` (one threshold for every row, so the rows' ``n_model``
  and ``caught`` add up to the overall figures).
* **by length bucket** (whitespace tokens: < 32, 32-64, 64-128, 128-256, >= 256):
  human and model texts of the bucket — AUROC within the bucket, and FPR / TPR
  at the overall ``t_alpha`` (``n_human``, ``n_model``, ``flagged``, ``caught``
  add up to the overall figures).
* **calibrated**: the detector's stored thresholds (measured on its
  calibration set) applied here: the FPR they actually give on this human text
  and the TPR — whether the calibration transfers to this data.

A row with fewer than ``min_records`` model texts (length rows: fewer than
``min_records`` of either class) reports its counts and ``note = "too few
records"`` instead of rates.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from provkit.errors import InputError
from provkit.filters.detector.calibration import LENGTH_BUCKETS, Calibration, fpr_label, length_bucket
from provkit.core.atomic import open_atomic

ALPHAS = (0.01, 0.05)
MIN_RECORDS = 20
NO_GENERATOR = "(none)"
TOO_FEW = "too few records"


def decoding_label(decoding: str | None) -> str:
    """A short name of a ``generator.decoding`` JSON: ``beam5 rep3``, ``sample T0.7 top-p0.9``, ``greedy``."""
    if not decoding:
        return NO_GENERATOR
    try:
        d = json.loads(decoding)
    except ValueError:
        return decoding[:40]
    if isinstance(d, dict) and not d:
        return NO_GENERATOR
    if not isinstance(d, dict):
        return decoding[:40]
    if d.get("do_sample"):
        parts = ["sample"]
        if d.get("temperature", 1.0) != 1.0:
            parts.append(f"T{d['temperature']:g}")
        if d.get("top_p", 1.0) < 1.0:
            parts.append(f"top-p{d['top_p']:g}")
        if d.get("top_k"):
            parts.append(f"top-k{d['top_k']}")
    elif d.get("num_beams", 1) > 1:
        parts = [f"beam{d['num_beams']}"]
    elif "num_beams" in d or "do_sample" in d:
        parts = ["greedy"]
    else:
        return json.dumps(d, sort_keys=True)[:40]
    if d.get("repetition_penalty", 1.0) != 1.0:
        parts.append(f"rep{d['repetition_penalty']:g}")
    return " ".join(parts)


def roc_threshold(y: np.ndarray, s: np.ndarray, alpha: float) -> float:
    """The threshold of the ROC point with the largest TPR at FPR <= ``alpha`` (decide ``s >= t``)."""
    from sklearn.metrics import roc_curve  # lazy: scikit-learn costs ~1.5 s to import

    fpr, tpr, thr = roc_curve(y, s)
    ok = np.flatnonzero(fpr <= alpha + 1e-12)
    return float(thr[ok[np.argmax(tpr[ok])]])


def _auroc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score  # lazy: scikit-learn costs ~1.5 s to import

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


@dataclass(frozen=True)
class Breakdown:
    """The report of :func:`breakdown_report` (``to_json`` for ``--json``, ``lines`` for the table)."""

    doc: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return self.doc

    def lines(self) -> list[str]:
        return format_breakdown(self.doc)


def _model_groups(name: str, keys: Sequence[str], y: np.ndarray, s: np.ndarray, thresholds: dict[str, float],
                  min_records: int) -> list[dict[str, Any]]:
    human = s[y == 0]
    rows = []
    keys_arr = np.asarray(keys, dtype=object)
    for key in sorted(set(k for k, label in zip(keys, y) if label == 1), key=str):
        part = s[(y == 1) & (keys_arr == key)]
        row: dict[str, Any] = {name: key, "n_model": int(len(part))}
        for a, t in thresholds.items():
            row[f"caught_at_{a}"] = int((part >= t).sum())
        if len(part) < min_records:
            row.update(auroc=None, note=TOO_FEW, **{f"tpr_at_{a}_fpr": None for a in thresholds})
        else:
            both = np.concatenate([human, part])
            row["auroc"] = _auroc(np.r_[np.zeros(len(human)), np.ones(len(part))], both)
            row.update({f"tpr_at_{a}_fpr": row[f"caught_at_{a}"] / len(part) for a in thresholds})
            row["note"] = None
        rows.append(row)
    return rows


def _length_rows(lengths: np.ndarray, y: np.ndarray, s: np.ndarray, thresholds: dict[str, float],
                 min_records: int) -> list[dict[str, Any]]:
    buckets = np.asarray([length_bucket(int(n)) for n in lengths], dtype=object)
    rows = []
    for b in LENGTH_BUCKETS:
        m = buckets == b
        yh, sh = y[m], s[m]
        nh, nm = int((yh == 0).sum()), int((yh == 1).sum())
        if nh + nm == 0:
            continue
        row: dict[str, Any] = {"length": b, "n_human": nh, "n_model": nm}
        for a, t in thresholds.items():
            row[f"flagged_human_at_{a}"] = int((sh[yh == 0] >= t).sum())
            row[f"caught_at_{a}"] = int((sh[yh == 1] >= t).sum())
        if min(nh, nm) < min_records:
            row.update(auroc=None, note=TOO_FEW, **{f"{k}_at_{a}": None for a in thresholds for k in ("fpr", "tpr")})
        else:
            row["auroc"] = _auroc(yh, sh)
            for a in thresholds:
                row[f"fpr_at_{a}"] = row[f"flagged_human_at_{a}"] / nh
                row[f"tpr_at_{a}"] = row[f"caught_at_{a}"] / nm
            row["note"] = None
        rows.append(row)
    return rows


def breakdown_report(labels: np.ndarray, scores: np.ndarray, *, lengths: Sequence[int],
                     generators: Sequence[dict[str, Any] | None] | None = None,
                     calibration: Calibration | None = None, min_records: int = MIN_RECORDS) -> Breakdown:
    """The figures of the module docstring for raw ``scores`` (higher = more model-like)."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n_model = int(y.sum())
    n_human = int(len(y) - n_model)
    if n_model == 0 or n_human == 0:
        raise InputError(f"evaluation needs both human and model records; found {n_human} human and {n_model} "
                         f"model (records with origin unknown/mixed are not labels)")
    thresholds = {fpr_label(a): roc_threshold(y, s, a) for a in ALPHAS}
    overall: dict[str, Any] = {"n_human": n_human, "n_model": n_model, "auroc": _auroc(y, s)}
    for a, t in thresholds.items():
        overall[f"threshold_at_{a}"] = t
        overall[f"flagged_human_at_{a}"] = int((s[y == 0] >= t).sum())
        overall[f"caught_at_{a}"] = int((s[y == 1] >= t).sum())
        overall[f"tpr_at_{a}_fpr"] = overall[f"caught_at_{a}"] / n_model
    gens = list(generators) if generators is not None else [None] * len(y)
    def field_of(key: str) -> list[str]:
        out = []
        for g in gens:
            value = (g or {}).get(key)
            out.append(decoding_label(value) if key == "decoding" and value is not None
                       else NO_GENERATOR if value is None else str(value))
        return out
    calibrated = []
    if calibration is not None:
        for t in calibration.thresholds:
            flagged = int((s[y == 0] > t.threshold).sum())
            caught = int((s[y == 1] > t.threshold).sum())
            calibrated.append({"target_fpr": t.target_fpr, "threshold": t.threshold, "flagged_human": flagged,
                               "fpr": flagged / n_human, "caught": caught, "tpr": caught / n_model,
                               "calibration_fpr": t.measured_fpr, "calibration_n_human": t.n_human})
    doc = {
        "overall": overall,
        "calibrated": calibrated,
        "by_decoding": _model_groups("decoding", field_of("decoding"), y, s, thresholds, min_records),
        "by_generator_model": _model_groups("model", field_of("model"), y, s, thresholds, min_records),
        "by_generation": _model_groups("generation", field_of("generation"), y, s, thresholds, min_records),
        "by_length": _length_rows(np.asarray(lengths), y, s, thresholds, min_records),
        "min_records": min_records,
    }
    return Breakdown(doc)


def _rate(v: float | None) -> str:
    return "    -" if v is None else f"{v:.3f}"


def format_breakdown(doc: dict[str, Any]) -> list[str]:
    """The report as plain table lines."""
    o = doc["overall"]
    a1, a5 = (fpr_label(a) for a in ALPHAS)
    lines = [f"overall: {o['n_human']} human, {o['n_model']} model   AUROC {_rate(o['auroc'])}   "
             f"TPR@{a1}FPR {o[f'tpr_at_{a1}_fpr']:.3f}   TPR@{a5}FPR {o[f'tpr_at_{a5}_fpr']:.3f}"]
    if doc["calibrated"]:
        lines.append("calibrated thresholds on this data (target FPR -> measured FPR here, TPR):")
        for c in doc["calibrated"]:
            lines.append(f"  {fpr_label(c['target_fpr']):>5} -> FPR {c['fpr']:.4f} ({c['flagged_human']}/"
                         f"{o['n_human']})   TPR {c['tpr']:.3f} ({c['caught']}/{o['n_model']})")
    for key, title in (("by_decoding", "decoding"), ("by_generator_model", "model"), ("by_generation", "generation")):
        rows = doc[key]
        if not rows:
            continue
        lines.append(f"by generator {title} (model records vs all human; TPR at the overall thresholds):")
        width = max(12, *(len(str(r[title])) for r in rows))
        lines.append(f"  {title:<{width}} {'n':>6} {'AUROC':>6} {'TPR@' + a1:>8} {'TPR@' + a5:>8}")
        for r in rows:
            note = f"   {r['note']} (< {doc['min_records']})" if r["note"] else ""
            lines.append(f"  {str(r[title]):<{width}} {r['n_model']:>6} {_rate(r['auroc']):>6} "
                         f"{_rate(r[f'tpr_at_{a1}_fpr']):>8} {_rate(r[f'tpr_at_{a5}_fpr']):>8}{note}")
    lines.append("by length (whitespace tokens; FPR/TPR at the overall thresholds):")
    lines.append(f"  {'tokens':<8} {'human':>6} {'model':>6} {'AUROC':>6} {'FPR@' + a1:>8} {'TPR@' + a1:>8} "
                 f"{'FPR@' + a5:>8} {'TPR@' + a5:>8}")
    for r in doc["by_length"]:
        note = f"   {r['note']} (< {doc['min_records']} of a class)" if r["note"] else ""
        lines.append(f"  {r['length']:<8} {r['n_human']:>6} {r['n_model']:>6} {_rate(r['auroc']):>6} "
                     f"{_rate(r[f'fpr_at_{a1}']):>8} {_rate(r[f'tpr_at_{a1}']):>8} {_rate(r[f'fpr_at_{a5}']):>8} "
                     f"{_rate(r[f'tpr_at_{a5}']):>8}{note}")
    return lines


def plot_roc(path: str | Path, labels: np.ndarray, scores: np.ndarray,
             groups: dict[str, np.ndarray] | None = None, title: str = "detector ROC") -> Path:
    """A PNG of the ROC curve (log-scale FPR), overall and per group of model records (boolean masks).

    Each group's curve is its model records against all human records.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve  # lazy: scikit-learn costs ~1.5 s to import

    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n_human = int((y == 0).sum())
    floor = 1.0 / max(n_human, 1) / 2
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    curves = {"all": np.ones(len(y), dtype=bool), **(groups or {})}
    for name, mask in curves.items():
        keep = (y == 0) | (np.asarray(mask, dtype=bool) & (y == 1))
        if not 0 < y[keep].sum() < keep.sum():
            continue
        fpr, tpr, _ = roc_curve(y[keep], s[keep])
        auc = roc_auc_score(y[keep], s[keep])
        ax.step(np.maximum(fpr, floor), tpr, where="post", lw=2.2 if name == "all" else 1.2,
                label=f"{name} (AUROC {auc:.3f}, n={int(y[keep].sum())})")
    for a in ALPHAS:
        ax.axvline(a, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(f"false-positive rate (human texts flagged; {n_human} human)")
    ax.set_ylabel("true-positive rate (model texts caught)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_atomic(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
    return path


def group_masks(keys: Sequence[str], labels: np.ndarray, min_records: int = MIN_RECORDS) -> dict[str, np.ndarray]:
    """Boolean masks of the groups of ``keys`` with at least ``min_records`` model records."""
    counts = Counter(k for k, y in zip(keys, labels) if y == 1)
    arr = np.asarray(keys, dtype=object)
    return {k: arr == k for k, n in sorted(counts.items(), key=lambda kv: str(kv[0])) if n >= min_records}
