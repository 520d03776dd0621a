"""Which records each step kept and dropped, by origin and evidence, with examples (data-juicer's tracer).

:class:`TracingWriter` sits between an engine and the
:class:`~provkit.provenance.writer.DatasetWriter`: it forwards every batch
and counts, per kind, the rows by ``origin`` and ``origin_evidence`` (rejects
also by ``drop_step`` and ``drop_reason``), the ``sample_weight`` of the kept
rows by origin, and keeps the first ``examples`` dropped records of every
(step, reason) in input order (deterministic on every engine).

:func:`trace_report` turns the counts into each step's breakdown.  A step's
input is what the earlier steps left, so per origin ``o``::

    in_k(o)   = kept(o) + sum_{j >= k} dropped_j(o)
    kept_k(o) = in_k(o) - dropped_k(o)

and ``in_k(o) == kept_k(o) + dropped_k(o)`` holds by construction, summing
to the step's totals.  Memory: the counters (a few entries per step, reason
and origin) and at most ``examples`` records of ``max_chars`` per reason.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.filters.step import DROP_REASON, DROP_STEP, SAMPLE_WEIGHT
from provkit.provenance import DatasetWriter

NONE = "none"  # the key of a null evidence


def _strings(col: pa.Array, missing: str = NONE) -> list[str]:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return [missing if v is None else str(v) for v in col.to_pylist()]


class TracingWriter:
    """A :class:`DatasetWriter` stand-in that forwards writes and traces them (see the module docstring)."""

    def __init__(self, writer: DatasetWriter, examples: int = 3, max_chars: int = 240):
        self.writer = writer
        self.examples = examples
        self.max_chars = max_chars
        self.kept: Counter[tuple[str, str]] = Counter()  # (origin, evidence) -> rows
        self.dropped: Counter[tuple[str, str, str, str]] = Counter()  # (step, reason, origin, evidence) -> rows
        self.weights: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, float("inf"), float("-inf")])
        self.samples: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)

    def __getattr__(self, name: str) -> Any:  # target, rows_written, add_file, ...
        return getattr(self.writer, name)

    def write(self, batch: pa.RecordBatch | pa.Table, kind: str = "data") -> None:
        self.writer.write(batch, kind)
        if kind == "data":
            self._trace_kept(batch)
        elif kind == "rejects":
            self._trace_dropped(batch)

    def _trace_kept(self, batch: pa.RecordBatch | pa.Table) -> None:
        origin = _strings(batch.column("origin"), "unknown")
        self.kept.update(zip(origin, _strings(batch.column("origin_evidence"))))
        if SAMPLE_WEIGHT in batch.schema.names:
            w = np.asarray(pc.fill_null(batch.column(SAMPLE_WEIGHT), np.nan).to_numpy(zero_copy_only=False),
                           dtype=np.float64)
            for o in set(origin):
                vals = w[np.array(origin) == o]
                vals = vals[np.isfinite(vals)]
                if vals.size:
                    acc = self.weights[o]
                    acc[0] += vals.size
                    acc[1] += float(vals.sum())
                    acc[2] = min(acc[2], float(vals.min()))
                    acc[3] = max(acc[3], float(vals.max()))

    def _trace_dropped(self, batch: pa.RecordBatch | pa.Table) -> None:
        step, reason = _strings(batch.column(DROP_STEP)), _strings(batch.column(DROP_REASON))
        origin = _strings(batch.column("origin"), "unknown")
        evidence = _strings(batch.column("origin_evidence"))
        self.dropped.update(zip(step, reason, origin, evidence))
        ids, texts = None, None
        for i, key in enumerate(zip(step, reason)):
            got = self.samples[key]
            if len(got) >= self.examples:
                continue
            if ids is None:
                ids, texts = batch.column("id").to_pylist(), batch.column("text")
            text = texts[i].as_py()
            got.append({"id": ids[i], "origin": origin[i], "evidence": evidence[i],
                        "text": text if len(text) <= self.max_chars else text[: self.max_chars] + "…"})


def _by(counter: Counter, keep: tuple[int, ...]) -> dict[str, int]:
    """Sum ``counter`` over the key positions not in ``keep``; keys joined as the kept positions' values."""
    out: Counter[str] = Counter()
    for key, n in counter.items():
        out["/".join(key[i] for i in keep)] += n
    return dict(sorted(out.items()))


def trace_report(tracer: TracingWriter, step_names: list[str]) -> dict[str, Any]:
    """The report's provenance section: totals and each step's in/kept/dropped by origin and evidence."""
    out: dict[str, Any] = {"steps": {}}
    for axis, pos in (("origin", 0), ("evidence", 1)):
        kept = _by(tracer.kept, (pos,))
        dropped_at = {name: Counter(_by(Counter({k: n for k, n in tracer.dropped.items() if k[0] == name}),
                                        (2 + pos,)))
                      for name in step_names}
        remaining = Counter(kept)
        for name in reversed(step_names):
            remaining.update(dropped_at[name])
        out[f"input_by_{axis}"] = dict(sorted(remaining.items()))
        out[f"kept_by_{axis}"] = kept
        for name in step_names:
            step = out["steps"].setdefault(name, {})
            step_in = dict(sorted(remaining.items()))
            remaining.subtract(dropped_at[name])
            step[f"in_by_{axis}"] = step_in
            step[f"kept_by_{axis}"] = {k: v for k, v in sorted(remaining.items()) if v or k in step_in}
            step[f"dropped_by_{axis}"] = dict(sorted(dropped_at[name].items()))
    for name in step_names:
        mine = Counter({k[1:]: n for k, n in tracer.dropped.items() if k[0] == name})
        out["steps"][name]["dropped_by_reason_and_origin"] = {
            reason: _by(Counter({k: n for k, n in mine.items() if k[0] == reason}), (1,))
            for reason in sorted({k[0] for k in mine})}
        out["steps"][name]["examples"] = {reason: tracer.samples[(name, reason)]
                                          for reason in sorted({k[0] for k in mine})}
    out["sample_weight_by_origin"] = {
        o: {"rows": int(a[0]), "mean": a[1] / a[0], "min": a[2], "max": a[3], "sum": a[1]}
        for o, a in sorted(tracer.weights.items()) if a[0]}
    return out


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"


def trace_markdown(trace: dict[str, Any]) -> str:
    """The provenance section of ``report.md``: a by-origin table per step and the dropped examples."""
    lines = ["", "## By origin", "",
             f"- input: {_counts(trace['input_by_origin'])}; evidence: {_counts(trace['input_by_evidence'])}",
             f"- kept: {_counts(trace['kept_by_origin'])}; evidence: {_counts(trace['kept_by_evidence'])}"]
    for origin, w in trace.get("sample_weight_by_origin", {}).items():
        lines.append(f"- sample_weight of kept {origin} records (min / mean / max): "
                     f"{w['min']:.3g} / {w['mean']:.3g} / {w['max']:.3g}")
    lines += ["", "| step | in by origin | kept by origin | dropped by origin | dropped by evidence |",
              "|---|---|---|---|---|"]
    for name, st in trace["steps"].items():
        lines.append(f"| {name} | {_counts(st['in_by_origin'])} | {_counts(st['kept_by_origin'])} | "
                     f"{_counts(st['dropped_by_origin'])} | {_counts(st['dropped_by_evidence'])} |")
    examples = [(name, reason, ex) for name, st in trace["steps"].items() for reason, ex in st["examples"].items()]
    if examples:
        lines += ["", "## Dropped examples", ""]
        for name, reason, ex in examples:
            lines.append(f"- **{name}** / `{reason}`:")
            for e in ex:
                text = " ".join(e["text"].split()).replace("|", "\\|")
                lines.append(f"    - `{e['id']}` ({e['origin']}): {text}")
    return "\n".join(lines) + "\n"
