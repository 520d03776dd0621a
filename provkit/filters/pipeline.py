"""Run a curation pipeline over a provkit dataset: kept records, rejects, and a conservation report.

``run_pipeline(IN, OUT, config, engine)`` writes OUT as a provkit dataset whose
activity (kind ``filter``) records the pipeline config and its sha256 and
uses IN (its parent).  ``OUT/data`` holds kept records (schema columns
unchanged, annotations appended, ``sample_weight`` where a step weights),
``OUT/rejects`` every dropped record with ``drop_reason`` and ``drop_step``,
and the side files ``report.json`` / ``report.md`` the per-step counts, broken
down by origin and evidence with sampled dropped examples (:mod:`.trace`).
The report always satisfies ``input == kept + sum(dropped.values())``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provkit.core.atomic import dumps_json
from provkit.core.progress import Advance
from provkit.errors import ConfigError, ProvkitError
from provkit.filters.config import PipelineConfig
from provkit.filters.engine import Engine, EngineResult, check_conservation
from provkit.filters.step import Step
from provkit.filters.steps import build_step
from provkit.filters.trace import TracingWriter, trace_markdown, trace_report
from provkit.provenance import Activity, Dataset, DatasetWriter, check_schema


@dataclass
class FilterResult:
    """What ``run_filter`` did: the output dataset and its report (``report.json``)."""

    out: Path
    report: dict[str, Any]


def build_steps(config: PipelineConfig, dataset: Dataset) -> list[Step]:
    """The pipeline's steps, in order, ready to run on ``dataset``."""
    steps = []
    for i, spec in enumerate(config.steps):
        try:
            steps.append(build_step(spec.kind, spec.config, dataset))
        except ConfigError as exc:
            raise ConfigError(f"{config.source}: steps[{i}].{exc}") from None
    return steps


def make_report(result: EngineResult, config: PipelineConfig, source: Path, engine: str, seconds: float) -> dict[str, Any]:
    """The ``report.json`` document."""
    return {
        "input": result.input,
        "kept": result.kept,
        "dropped": dict(sorted(result.dropped.items())),
        "sample_weight": result.sample_weight,
        "steps": [st.to_json() for st in result.steps],
        "source": str(source),
        "pipeline": config.to_json(),
        "pipeline_sha256": config.sha256(),
        "engine": engine,
        "seconds": round(seconds, 3),
        "clustering": result.clustering,  # ray: candidate pairs and component rounds per dedup step
    }


def add_step_decisions(report: dict[str, Any], steps: list[Step]) -> None:
    """Each step that can say how it decided (``describe()``: the detector's threshold, FPR and
    fingerprint) gets it as ``decision`` in its ``report["steps"]`` entry."""
    for entry, step in zip(report["steps"], steps):
        describe = getattr(step, "describe", None)
        if callable(describe):
            entry["decision"] = describe()


def _fmt_weight(weight: dict[str, float] | None) -> str:
    if not weight:
        return "-"
    return f"{weight['min']:.3g} / {weight['mean']:.3g} / {weight['max']:.3g}"


def report_markdown(report: dict[str, Any]) -> str:
    """``report.md``: the same figures as ``report.json``, as a table per step."""
    lines = [
        "# Filter report",
        "",
        f"- source: `{report['source']}`",
        f"- pipeline sha256: `{report['pipeline_sha256']}` (engine {report['engine']}, {report['seconds']} s)",
        f"- input {report['input']} = kept {report['kept']} + dropped {sum(report['dropped'].values())}",
        f"- sample_weight (min / mean / max): {_fmt_weight(report.get('sample_weight'))}",
        "",
        "| step | in | kept | dropped (by reason) | weight min / mean / max | seconds |",
        "|---|---:|---:|---|---|---:|",
    ]
    for st in report["steps"]:
        dropped = ", ".join(f"{k}: {v}" for k, v in st["dropped"].items()) or "-"
        lines.append(f"| {st['step']} | {st['in']} | {st['kept']} | {dropped} | {_fmt_weight(st['weight'])} | {st['seconds']} |")
    for st in report["steps"]:
        if st.get("decision"):
            lines.append(f"\n- {st['step']} decision: `{json.dumps(st['decision'])}`")
    for step, figures in report.get("clustering", {}).items():
        lines.append(f"\n- {step} on the cluster: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures.items()))
    if "provenance" in report:
        lines.append(trace_markdown(report["provenance"]))
    lines += ["", "## Pipeline", "", "```json", json.dumps(report["pipeline"], indent=2), "```", ""]
    return "\n".join(lines)


def run_pipeline(source: str | Path, out: str | Path, config: PipelineConfig, engine: Engine, *,
                 progress: Advance | None = None, overwrite: bool = False, verify: bool = True) -> FilterResult:
    """Run ``config`` with ``engine`` over dataset ``source`` and commit dataset ``out`` (atomically); return its report.

    ``engine`` is an object implementing :class:`provkit.filters.engine.Engine`
    (``provkit.engines.get_engine(name)`` builds one; ``provkit.engines.run_filter``
    takes the engine's name).  With ``verify`` every input part is checked against the manifest's size and
    sha256 before it is read (``--no-verify`` turns it off).
    """
    source, out = Path(source), Path(out)
    dataset = Dataset.open(source, verify=verify)
    if out.resolve() == source.resolve():
        raise ConfigError(f"--out {out}: is the input dataset; inputs are never modified, choose another path")
    schema = dataset.schema("data")
    if schema is not None:
        problems = check_schema(schema)
        if problems:
            raise ProvkitError(f"{source}: not a provkit record dataset ({problems[0]})")
    steps = build_steps(config, dataset)
    params = {"pipeline": config.to_json(), "pipeline_sha256": config.sha256(), "pipeline_source": config.source,
              "engine": engine.name}
    activity = Activity("filter", params, used=[str(source.resolve())])
    t0 = time.perf_counter()
    with DatasetWriter(out, activity, parents=[source], mode="overwrite" if overwrite else "create") as writer:
        tracer = TracingWriter(writer)
        result = engine.run(dataset, steps, tracer, progress)  # type: ignore[arg-type]  # a DatasetWriter proxy
        check_conservation(result)
        report = make_report(result, config, source, engine.name, time.perf_counter() - t0)
        add_step_decisions(report, steps)
        report["provenance"] = trace_report(tracer, [st.name for st in result.steps])
        writer.add_file("report.json", dumps_json(report, indent=2) + "\n")  # strict JSON: no NaN
        writer.add_file("report.md", report_markdown(report))
    return FilterResult(out, report)
