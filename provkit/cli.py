"""The `prov` command line: parses flags, calls the library, prints. No logic here.

Exit codes: 0 success; 1 a data or verification failure (bad input, a broken
or missing dataset, ``prov verify`` problems); 2 a usage error (an unknown
option or value, a bad config: :class:`provkit.errors.ConfigError`, and
Typer's own usage errors); 130 interrupted.  Errors are one line on stderr;
``--json`` output goes to stdout alone.  User-supplied text (paths, names,
record text) is printed literally: no rich markup, highlighting or emoji codes.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

import provkit

from provkit.core import progress as core_progress
from provkit.core.atomic import dumps_json
from provkit.core.progress import Advance
from provkit.engines import get_engine, get_ingest
from provkit.errors import ConfigError, ProvkitError
from provkit.filters import FilterFlags, resolve_pipeline, run_pipeline
from provkit.filters import detector as detectors
from provkit.lm.watermark import DEFAULT_MIN_TOKENS, WatermarkConfig, load_scorer, read_key
from provkit.lm.watermark_data import build_tagger, detect_dataset
from provkit.provenance import (
    Dataset,
    IngestConfig,
    dataset_info,
    dataset_stats,
    export_dataset,
    lineage,
    merge_datasets,
    verify,
)
from provkit.train import (
    AuditConfig,
    audit,
    compare_runs,
    default_workers,
    gap_text,
    load_crawl_config,
    load_experiment_config,
    run_crawl,
    run_experiment,
    write_crawl_report,
    write_report,
    write_audit,
)
from provkit.train.toy import (
    TOY_CONDITIONS,
    TOY_KINDS,
    ToyConfig,
    VaeSettings,
    progress_total,
    run_toys,
    write_toy,
    write_toy_report,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="provkit: training-data provenance, curation and the model-collapse experiment.")
detector_app = typer.Typer(no_args_is_help=True, help="Train, evaluate and apply human-vs-model text detectors.")
experiment_app = typer.Typer(no_args_is_help=True, help="The recursive-training model-collapse experiment.")
app.add_typer(detector_app, name="detector")
app.add_typer(experiment_app, name="experiment")

out = Console(emoji=False, highlight=False)  # user text is printed literally: no :smile: -> emoji
err = Console(stderr=True, emoji=False, highlight=False)
log = logging.getLogger("provkit")

EXIT_DATA = 1  # bad input, a broken dataset, a failed verification
EXIT_USAGE = 2  # an unknown option or value, a bad config


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"provkit {provkit.__version__}\n")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log lines on stderr (-v info, -vv debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr."),
) -> None:
    """provkit: training-data provenance, curation and the model-collapse experiment."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ProvkitError (or an OS error) into one line on stderr: exit 2 for a usage/config error, 1 for data
    (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProvkitError as exc:
            err.print(Text.assemble(("error:", "red"), " ", str(exc)), soft_wrap=True)
            raise typer.Exit(EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_DATA)
        except KeyboardInterrupt:
            err.print("interrupted; nothing was committed")
            raise typer.Exit(130)
        except OSError as exc:  # disk full, read-only, permission denied, lost a race: one line, never a traceback
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(Text.assemble(("error:", "red"), " ", where + (exc.strerror or str(exc))), soft_wrap=True)
            raise typer.Exit(EXIT_DATA)
        except RecursionError:
            err.print("[red]error:[/red] input nested too deeply to process", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_DATA)

    return wrapper


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps_json(obj, indent=2) + "\n")


def _count_progress(description: str, total: int) -> tuple[Progress, Advance]:
    """A rich bar on stderr counting items; returns (bar, its :class:`provkit.core.progress.Advance`)."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err, transient=True, disable=not err.is_terminal)
    task = bar.add_task(description, total=max(total, 1))

    def advance(n: int, description: str | None = None) -> None:
        bar.update(task, advance=n, **({"description": description} if description else {}))

    return bar, advance


# ---------------------------------------------------------------- provenance commands


def _ingest_progress(total_bytes: int | None) -> Any:
    """A rich progress bar on stderr: bytes when the input size is known, else records."""
    columns = [TextColumn("ingest"), BarColumn(), DownloadColumn() if total_bytes else TextColumn("{task.completed:,.0f} records"),
               TextColumn("{task.fields[records]:,} records") if total_bytes else TextColumn(""), TimeElapsedColumn()]
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


def _say(text: str, console: Console = out) -> None:
    """One plain line: no rich markup or highlighting (paths and types contain brackets), no wrapping."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command("ingest")
@friendly_errors
def ingest_command(
    sources: List[str] = typer.Argument(..., help="files, directories, globs, provkit dataset directories (provenance "
                                        "kept), hf:NAME[:CONFIG][:SPLIT], hf:SAVED_FOLDER or builtin:python-docs"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="dataset directory (created, or appended to when it exists)"),
    origin: str = typer.Option("human", help="origin of every record: human|model|mixed|unknown"),
    text_field: str = typer.Option("text", help="field (JSONL/CSV/Parquet/HF column) holding the text"),
    id_field: Optional[str] = typer.Option(None, help="field holding a record id (default: <file>:<line or row>)"),
    origin_field: Optional[str] = typer.Option(None, help="field holding each record's origin (overrides --origin)"),
    parent_field: Optional[str] = typer.Option(None, help="field holding a parent id or a list of parent ids"),
    parent_dataset: List[Path] = typer.Option([], help="dataset the parent ids live in (repeatable; used by prov lineage)"),
    generator_model: Optional[str] = typer.Option(None, help="model that generated the model-origin records"),
    generation: Optional[int] = typer.Option(None, help="generation number of the model records (needs --generator-model)"),
    dataset: Optional[str] = typer.Option(None, help="dataset name stored with each record"),
    license: Optional[str] = typer.Option(None, help="license stored with each record (where --license-field gives none)"),
    license_field: Optional[str] = typer.Option(None, help="field holding each record's license"),
    keep_fields: Optional[str] = typer.Option(None, help="comma-separated source fields kept in the record's metadata "
                                              "column (a JSON object)"),
    split: str = typer.Option("file", help=".txt sources: one record per file|line|paragraph"),
    on_error: str = typer.Option("fail", help="fail: stop at the first bad record; skip: quarantine bad records"),
    max_record_bytes: int = typer.Option(10 << 20, help="records larger than this are bad input (record too large)"),
    engine: str = typer.Option("local", "--engine", help="local | ray (read and check sources in parallel Ray tasks)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster (ray start --head); default: a local Ray instance."),
    watermark_model: Optional[str] = typer.Option(None, "--watermark-model", help="generator whose watermark tags records origin=model (evidence watermark)"),
    watermark_key_file: Optional[Path] = typer.Option(None, "--watermark-key-file", help="file holding that generator's watermark key"),
    watermark_key_env: Optional[str] = typer.Option(None, "--watermark-key-env", help="environment variable holding the key (instead of a file)"),
    watermark_z: float = typer.Option(4.0, "--watermark-z", help="z at or above which a record is tagged watermarked"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Turn text, JSONL, CSV, Parquet or Hugging Face data into a provenance-tagged Parquet dataset."""
    cfg = IngestConfig(origin=origin, text_field=text_field, id_field=id_field, origin_field=origin_field,
                       parent_field=parent_field, generator_model=generator_model, generation=generation,
                       dataset=dataset, license=license, license_field=license_field,
                       keep_fields=tuple(f.strip() for f in (keep_fields or "").split(",") if f.strip()),
                       split=split, on_error=on_error,
                       max_record_bytes=max_record_bytes, parent_datasets=tuple(str(p) for p in parent_dataset))
    tagger = build_tagger(watermark_model, watermark_key_file, watermark_key_env, watermark_z)
    job = get_ingest(engine, list(sources), out_dir, cfg, ray_address, annotator=tagger)
    total = job.total_bytes()
    with _ingest_progress(total) as bar:
        task = bar.add_task("ingest", total=total, records=0)

        def step(records: int, nbytes: int) -> None:
            done = bar.tasks[0].fields["records"] + records
            bar.update(task, advance=nbytes if total else records, records=done)

        summary = job.run(step)
    if json_out:
        print_json(summary.to_json())
        return
    origins = ", ".join(f"{k} {v:,}" for k, v in summary.by_origin.items()) or "none"
    _say(f"{summary.mode} {summary.out}: read {summary.read:,} records, wrote {summary.written:,} "
              f"({origins}), quarantined {summary.quarantined:,} in {summary.seconds:.1f}s")
    for reason, n in summary.by_reason.items():
        _say(f"  quarantined {n:,}: {reason}")
    if "watermark" in summary.annotations:
        wm = summary.annotations["watermark"]
        _say(f"  watermark: tagged {wm['tagged']:,} of {wm['rows']:,} origin=model (z >= {wm['z_threshold']:g}), "
             f"{wm['too_short']:,} too short to score")
        for line in wm["warnings"]:
            _say(f"warning: {line}", err)
    if summary.quarantined:
        _say(f"  see {summary.out}/quarantine/ for each bad record with its file, line and reason")
    if summary.skipped:
        _say(f"  skipped {summary.skipped:,} files (not read; listed in {summary.out}/ingest-summary.json):")
        for item in summary.skipped_files[:20]:
            _say(f"    {item['path']}: {item['reason']}")
        if summary.skipped > 20:
            _say(f"    ... and {summary.skipped - 20:,} more")


@app.command("inspect")
@friendly_errors
def inspect_command(
    ds: Path = typer.Argument(..., help="dataset directory"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """Schema, files, sizes and provenance activities of a dataset."""
    info = dataset_info(ds)
    if json_out:
        print_json(info)
        return
    rows = info["rows"]
    _say(f"{info['path']}  schema {info['schema_version']}  data {rows.get('data', 0):,} rows  "
              f"rejects {rows.get('rejects', 0):,}  quarantine {rows.get('quarantine', 0):,}  "
              f"{info['bytes']:,} bytes")
    _say("schema:")
    for f in info["schema"]:
        _say(f"  {f['name']}: {f['type']}")
    _say("files:")
    for f in info["files"]:
        _say(f"  {f['path']}  {f['kind']}  {f['rows']:,} rows  {f['bytes']:,} bytes  sha256 {f['sha256'][:12]}")
    for p in info["parents"]:
        _say(f"parent: {p['path']}")
    _say("activities:")
    for a in info["activities"]:
        _say(f"  {a['id']}  {a['kind']}  {a['started_at']} -> {a['ended_at']}  used {', '.join(a['used'] or [])}")


@app.command("stats")
@friendly_errors
def stats_command(
    ds: Path = typer.Argument(..., help="dataset directory"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
    no_verify: bool = typer.Option(False, "--no-verify", help="Read parts without checking their sha256 against the manifest."),
) -> None:
    """Counts by origin, generator, generation, dataset and source; text length and token summaries."""
    st = dataset_stats(ds, verify=not no_verify)
    if json_out:
        print_json(st)
        return

    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in d.items()) or "-"

    def summary(s: dict[str, Any]) -> str:
        if s["min"] is None:
            return "-"
        return f"min {s['min']:,}  median {s['p50']:,}  mean {s['mean']:,}  p90 {s['p90']:,}  p99 {s['p99']:,}  max {s['max']:,}"

    _say(f"{st['path']}: {st['records']:,} records  (rejects {st['rejects']:,}, quarantine {st['quarantine']:,})")
    for label, key in [("origin", "by_origin"), ("evidence", "by_evidence"), ("generator", "by_generator"),
                       ("generation", "by_generation"), ("dataset", "by_dataset")]:
        _say(f"  {label + ':':<12}{counts(st[key])}")
    _say(f"  {'sources:':<12}{st['sources']:,} distinct; top: "
              f"{counts(dict(list(st['by_source'].items())[:3]))}")
    _say(f"  {'chars:':<12}{summary(st['text_chars'])}")
    _say(f"  {'tokens:':<12}{summary(st['whitespace_tokens'])}  (whitespace tokens)")
    if st.get("filter"):
        _print_filter_steps(st["filter"]["steps"])


def _print_filter_steps(steps: list[dict[str, Any]]) -> None:
    """Each filter step's kept/dropped counts, and by origin where the report has them."""
    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"

    for st in steps:
        dropped = ", ".join(f"{k} {v}" for k, v in st["dropped"].items()) or "none dropped"
        _say(f"  {st['step']:<14} in {st['in']:>8}  kept {st['kept']:>8}  ({dropped})")
        if st.get("in_by_origin"):
            _say(f"  {'':<14} by origin: in {counts(st['in_by_origin'])}; kept {counts(st['kept_by_origin'])}; "
                 f"dropped {counts(st['dropped_by_origin'])}")


@app.command("lineage")
@friendly_errors
def lineage_command(
    ds: Path = typer.Argument(..., help="dataset directory"),
    record_id: str = typer.Argument(..., help="record id"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """A record's ancestors through parent_ids, across parent datasets, up to the roots."""
    nodes = lineage(ds, record_id)
    if json_out:
        print_json([n.to_json() for n in nodes])
        return
    for n in nodes:
        pad = "  " * n.depth
        if not n.found:
            _say(f"{pad}{n.id}  (not found in {ds} or its parent datasets)")
            continue
        gen = n.generator or {}
        model = f"  generator {gen.get('model')} gen {gen.get('generation')}" if gen.get("model") else ""
        root = "  [root]" if n.is_root else ""
        _say(f"{pad}{n.id}  {n.origin} ({n.origin_evidence}){model}  activity {n.activity_id}  "
                  f"in {n.dataset_path}{root}")


@app.command("verify")
@friendly_errors
def verify_command(
    ds: Path = typer.Argument(..., help="dataset directory"),
    json_out: bool = typer.Option(False, "--json", help="print {dataset, ok, problems} as JSON"),
) -> None:
    """Re-hash every file against the manifest, check schema and row counts; exit 1 on any problem."""
    problems = verify(ds)
    if json_out:
        print_json({"dataset": str(ds), "ok": not problems, "problems": problems})
        if problems:
            raise typer.Exit(EXIT_DATA)
        return
    for p in problems:
        _say(p, err)
    if problems:
        raise typer.Exit(EXIT_DATA)
    _say(f"{ds}: ok (all files match the manifest)")


@app.command("export")
@friendly_errors
def export_command(
    ds: Path = typer.Argument(..., help="dataset directory"),
    to: str = typer.Option(..., "--to", help="jsonl | prov-json | croissant"),
    out_path: Path = typer.Option(..., "--out", "-o", help="output file (gzip-compressed when it ends in .gz)"),
    no_verify: bool = typer.Option(False, "--no-verify", help="Read parts without checking their sha256 against the manifest."),
    json_out: bool = typer.Option(False, "--json", help="print {out, format, records} as JSON"),
) -> None:
    """Export records (JSONL), provenance (W3C PROV-JSON) or a Croissant 1.1 description."""
    n = export_dataset(ds, to, out_path, verify=not no_verify)
    if json_out:
        print_json({"out": str(out_path), "format": to, "records": n})
        return
    _say(f"wrote {out_path} ({to}, {n:,} records)")


@app.command("merge")
@friendly_errors
def merge_command(
    inputs: List[Path] = typer.Argument(..., help="provkit datasets to merge, in order"),
    out_path: Path = typer.Option(..., "--out", "-o", help="new dataset directory"),
    on_duplicate: str = typer.Option("fail", "--on-duplicate", help="fail: stop at a repeated id; skip: keep the first"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Merge datasets into one, every column kept as it is (lineage to the inputs, ids checked)."""
    summary = merge_datasets(inputs, out_path, on_duplicate=on_duplicate, overwrite=overwrite)
    if json_out:
        print_json(summary.to_json())
        return
    origins = ", ".join(f"{k} {v:,}" for k, v in summary.by_origin.items()) or "none"
    skipped = f", skipped {summary.skipped_duplicates:,} duplicate ids" if summary.skipped_duplicates else ""
    _say(f"merged {len(summary.inputs)} datasets into {summary.out}: {summary.written:,} records ({origins}){skipped}")


@app.command("audit")
@friendly_errors
def audit_command(
    ds: Path = typer.Argument(..., help="dataset to audit"),
    reference: Optional[Path] = typer.Option(None, "--reference", help="a human dataset to compare against"),
    detector: Optional[Path] = typer.Option(None, "--detector", help="a detector directory (prov detector train): "
                                            "estimate the model-written share"),
    model: Optional[Path] = typer.Option(None, "--model", help="a local causal LM directory: perplexity histograms"),
    out_dir: Path = typer.Option(Path("audit-out"), "--out", "-o", help="folder for audit.html and audit.json"),
    sample: int = typer.Option(5000, "--sample", help="records per dataset sampled for the text metrics"),
    embedding: bool = typer.Option(False, "--embedding", help="also embedding diversity (local all-MiniLM-L6-v2)"),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="print audit.json to stdout"),
) -> None:
    """The collapse-risk report of a corpus: origin mix, model share, duplicates, diversity, tails, perplexity."""
    config = AuditConfig(reference=str(reference) if reference else None, detector=str(detector) if detector else None,
                         model=str(model) if model else None, sample=sample, embedding=embedding, seed=seed)
    result = audit(ds, config)
    json_path, html_path = write_audit(result, out_dir)
    if json_out:
        print_json(result.to_json())
        return
    for i, f in enumerate(result.findings, 1):
        _say(f"{i}. {f['finding']}")
    _say(f"report {html_path}, figures {json_path}")


# ---------------------------------------------------------------- filter commands


@app.command("filter")
@friendly_errors
def filter_command(
    src: Path = typer.Argument(..., help="Input provkit dataset."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Output dataset (kept records, rejects/, report.json, report.md)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Pipeline TOML file, or `default` (the pipeline "
                                          "shipped with provkit; the step flags start from its settings)."),
    dedup: Optional[str] = typer.Option(None, "--dedup", help="exact, minhash or exact,minhash."),
    minhash_threshold: Optional[float] = typer.Option(None, "--minhash-threshold", help="Target Jaccard similarity."),
    quality: bool = typer.Option(False, "--quality", help="Drop repetitive / degenerate / very short texts."),
    detector: Optional[str] = typer.Option(None, "--detector", help="Detector directory (prov detector train)."),
    detector_fpr: Optional[float] = typer.Option(None, "--detector-fpr", help="Drop above the detector's calibrated threshold at this FPR (default 0.01 unless --detector-beta; one of its calibrated targets)."),
    max_model_prob: Optional[float] = typer.Option(None, "--max-model-prob", help="Explicit override of --detector-fpr: drop records with P(model) above this."),
    detector_beta: Optional[float] = typer.Option(None, "--detector-beta", help="Weight (1 - P(model))^beta instead of dropping."),
    tail_alpha: Optional[float] = typer.Option(None, "--tail-alpha", help="Tail weights proportional to rarity^alpha."),
    tail_target: Optional[int] = typer.Option(None, "--tail-target", help="Resample to this many records by tail weight."),
    mix: Optional[str] = typer.Option(None, "--mix", help="replace | accumulate | keep-human=F."),
    mix_records: Optional[int] = typer.Option(None, "--mix-records", help="Record budget of the mix."),
    mix_tokens: Optional[int] = typer.Option(None, "--mix-tokens", help="Token budget of the mix."),
    mix_alpha: Optional[float] = typer.Option(None, "--mix-alpha", help="Loss weight of human data: alpha*L_human + (1-alpha)*L_model."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of every seeded step."),
    engine: str = typer.Option("local", "--engine", help="local | ray."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster (ray start --head); default: a local Ray instance."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it is a provkit dataset (never anything else)."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json to stdout."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Read parts without checking their sha256 against the manifest."),
    memory_limit_mb: Optional[float] = typer.Option(None, "--memory-limit-mb", help="Whole-process memory limit (MiB) "
                                                    "that a minhash_dedup run's pre-flight estimate must fit (local "
                                                    "engine; default: the machine's available memory)."),
) -> None:
    """Curate a dataset: dedup, quality, detector, tail weighting, mixing; writes kept + rejects + report."""
    flags = FilterFlags(
        dedup=tuple(d.strip() for d in dedup.split(",") if d.strip()) if dedup else (),
        minhash_threshold=minhash_threshold, quality=quality, detector=detector, detector_fpr=detector_fpr,
        max_model_prob=max_model_prob,
        detector_beta=detector_beta, tail_alpha=tail_alpha, tail_target=tail_target, mix=mix,
        mix_records=mix_records, mix_tokens=mix_tokens, mix_alpha=mix_alpha, seed=seed,
    )
    pipeline = resolve_pipeline(config, flags)
    if memory_limit_mb is not None and engine != "local":
        raise ConfigError("--memory-limit-mb: only valid with --engine local")
    runner = get_engine(engine, ray_address, **({"memory_limit_mb": memory_limit_mb} if memory_limit_mb is not None else {}))
    bar, advance = _count_progress("filter", 2 * Dataset.open(src).num_rows())  # the score and write passes
    with bar:
        result = run_pipeline(src, out_path, pipeline, runner, progress=advance, overwrite=overwrite,
                              verify=not no_verify)
    report = result.report
    if as_json:
        print_json(report)
        return
    trace = report.get("provenance", {}).get("steps", {})
    _print_filter_steps([{**st, **trace.get(st["step"], {})} for st in report["steps"]])
    n_dropped = sum(report["dropped"].values())
    _say(f"filtered {report['input']} records: kept {report['kept']}, dropped {n_dropped} "
         f"-> {out_path} ({report['seconds']} s)")



# ---------------------------------------------------------------- detector commands


def _print_detector_metrics(title: str, m: Any) -> None:
    _say(title)
    _say(f"  AUROC {m.auroc:.4f}   TPR@1%FPR {m.tpr_at_1pct_fpr:.3f}   TPR@5%FPR {m.tpr_at_5pct_fpr:.3f}   "
         f"ECE {m.ece:.3f}")
    _say(f"  at P(model) >= {m.threshold:g}: accuracy {m.accuracy:.3f}   human kept {m.true_negative}/{m.n_human}   "
         f"model caught {m.true_positive}/{m.n_model}   (FP {m.false_positive}, FN {m.false_negative})")


def _print_calibration(cal: Any) -> None:
    domain = ", ".join(f"{k} {v}" for k, v in cal.domain.items())
    _say(f"calibration: {cal.n_human} human + {cal.n_model} model records ({cal.source}); domain: {domain}; "
         f"probability: {cal.probability.method}")
    for t in cal.thresholds:
        tpr = f"   TPR {t.tpr:.3f}" if t.tpr is not None else ""
        note = "" if t.resolvable else f"   (too few human records: FPR bound {t.expected_fpr_bound:.4f})"
        _say(f"  target FPR {detectors.fpr_label(t.target_fpr):>5}: threshold {t.threshold:.4f}   "
             f"measured FPR {t.measured_fpr:.4f} ({t.human_flagged}/{t.n_human}){tpr}{note}")


def _fpr_targets(text: Optional[str]) -> Optional[tuple[float, ...]]:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise detectors.DetectorError(f"--fpr-targets {text!r}: expected comma-separated rates like 0.001,0.01,0.05") from None


@detector_app.command("train")
@friendly_errors
def detector_train(
    datasets: List[Path] = typer.Argument(..., help="provkit dataset(s) with origin human/model records"),
    out_path: Path = typer.Option(..., "--out", "-o", help="detector directory to write"),
    kind: str = typer.Option("ngram", "--kind", help="ngram | lm | embedding | zeroshot"),
    model: Optional[str] = typer.Option(None, "--model", help="lm / zeroshot: a local causal LM directory or a `prov "
                                        "experiment run` directory; embedding: a sentence-transformers folder "
                                        "(default: the packaged all-MiniLM-L6-v2)"),
    reference_model: Optional[str] = typer.Option(None, "--reference-model", help="zeroshot: a second causal LM with "
                                                  "the same tokenizer (default: --model itself)"),
    criterion: str = typer.Option("binoculars", "--criterion", help="zeroshot: binoculars | fast-detectgpt"),
    seed: int = typer.Option(0, "--seed", help="seed of the held-out split and the folds"),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="share of labelled records held out "
                                        "(grouped by content_hash) for the figures and the calibration"),
    c: Optional[float] = typer.Option(None, "--C", help="inverse L2 regularisation of the logistic regression "
                                      "(default: 16 for ngram, 1 for lm and embedding)"),
    threshold: float = typer.Option(0.5, "--threshold", help="P(model) at or above which a text is model text"),
    probability: str = typer.Option("platt", "--probability", help="calibrated probability: platt | isotonic"),
    fpr_targets: Optional[str] = typer.Option(None, "--fpr-targets", help="false-positive rates to find thresholds "
                                              "for (default 0.001,0.01,0.05)"),
    max_length: int = typer.Option(256, "--max-length", help="tokens read per text (lm, embedding, zeroshot)"),
    window_words: int = typer.Option(detectors.WINDOW_WORDS, "--window-words", help="span evidence: window length "
                                     "in whitespace tokens (window thresholds are calibrated at this length)"),
    window_stride: int = typer.Option(detectors.WINDOW_STRIDE, "--window-stride", help="span evidence: window step"),
    as_json: bool = typer.Option(False, "--json", help="print the held-out figures as JSON"),
) -> None:
    """Train a human-vs-model detector on DATASETS (origin unknown/mixed records are skipped), calibrate and save it.

    The zeroshot kind trains nothing and needs human records only (thresholds from them).
    """
    targets = _fpr_targets(fpr_targets)
    config = detectors.DetectorConfig(kind=kind, model=model, seed=seed, test_fraction=test_fraction, C=c,
                                      threshold=threshold, max_length=max_length, reference_model=reference_model,
                                      criterion=criterion, probability=probability, window_words=window_words,
                                      window_stride=window_stride,
                                      **({"fpr_targets": targets} if targets else {})).validate()
    data = detectors.read_labelled(datasets)
    bar, advance = _count_progress(f"features ({kind})", len(data.texts))
    with bar:
        trained = detectors.train_detector_on_dataset(datasets, config, advance, data=data)
    detectors.save_detector(trained.detector, out_path)
    cal = trained.detector.calibration
    if as_json:
        print_json({"detector": str(out_path), "detector_id": trained.detector.fingerprint, "kind": kind,
                    "n_train": trained.n_train, "n_test": trained.n_test,
                    **(trained.heldout.to_json() if trained.heldout else {}),
                    "calibration": cal.to_json() if cal else None})
        return
    if trained.heldout is not None:
        _print_detector_metrics(f"held-out ({trained.n_test} of {trained.n_train + trained.n_test} labelled records, "
                                f"{data.skipped} unlabelled skipped):", trained.heldout)
    if cal is not None:
        _print_calibration(cal)
    decodings = [d for d in trained.detector.info.get("model_decodings", {}) if d != "(none)"]
    if len(decodings) == 1:
        _say(f"note: every model record was decoded with {decodings[0]}; recall on other decodings can be much "
             f"lower: train on a mix of decodings (see the README's cross-decoding figures)", err)
    _say(f"saved {kind} detector -> {out_path} (id {trained.detector.fingerprint[:12]})")


@detector_app.command("calibrate")
@friendly_errors
def detector_calibrate(
    det: Path = typer.Argument(..., help="detector directory"),
    datasets: List[Path] = typer.Argument(..., help="dataset(s) of your own human text (model records optional)"),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="write the recalibrated detector here "
                                            "(default: replace DET atomically)"),
    fpr_targets: Optional[str] = typer.Option(None, "--fpr-targets", help="false-positive rates (default: DET's)"),
    probability: Optional[str] = typer.Option(None, "--probability", help="refit platt | isotonic (needs >= 4 model "
                                              "records; default: keep DET's map unless model records are present)"),
    as_json: bool = typer.Option(False, "--json", help="print the new calibration as JSON"),
) -> None:
    """Recalibrate DET on DATASETS without retraining: the weights stay, the thresholds change."""
    detector = detectors.load_detector(det)
    data = detectors.read_labelled(datasets)
    bar, advance = _count_progress("scoring", len(data.texts))
    with bar:
        recal = detectors.calibrate_detector_on_dataset(detector, datasets, targets=_fpr_targets(fpr_targets),
                                                        probability=probability, progress=advance, data=data)
    target = out_path or det
    detectors.save_detector(recal, target)
    if as_json:
        print_json({"detector": str(target), "detector_id": recal.fingerprint, "recalibrated_from": detector.fingerprint,
                    "calibration": recal.calibration.to_json()})
        return
    _print_calibration(recal.calibration)
    _say(f"recalibrated {detector.kind} detector -> {target} (id {detector.fingerprint[:12]} -> {recal.fingerprint[:12]}; "
         f"weights unchanged)")


@detector_app.command("eval")
@friendly_errors
def detector_eval(
    det: Path = typer.Argument(..., help="detector directory"),
    datasets: List[Path] = typer.Argument(..., help="provkit dataset(s) with origin human/model records"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="decision threshold (default: the detector's)"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write a ROC curve PNG here (overall and per decoding)"),
    min_records: int = typer.Option(detectors.MIN_RECORDS, "--min-records",
                                    help="smallest group that gets rates (smaller ones say 'too few records')"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """AUROC and TPR at 1% and 5% FPR of DET on DATASETS, overall and by decoding, generator, generation and length."""
    detector = detectors.load_detector(det)
    data = detectors.read_labelled(datasets)
    bar, advance = _count_progress("scoring", len(data.texts))
    with bar:
        ev = detectors.evaluate_with_breakdown(detector, data, threshold=threshold, min_records=min_records,
                                               progress=advance)
    png = ev.plot(plot, f"{detector.kind} detector {detector.fingerprint[:12]}: ROC on {len(data.texts)} records") \
        if plot else None
    if as_json:
        print_json({"detector": str(det), "detector_id": detector.fingerprint, "datasets": [str(d) for d in datasets],
                    "kind": detector.kind, **ev.metrics.to_json(), "breakdown": ev.breakdown.to_json(),
                    "plot": str(png) if png else None})
        return
    _print_detector_metrics(f"{detector.kind} detector on {len(data.texts)} labelled records:", ev.metrics)
    for line in ev.breakdown.lines():
        _say(line)
    if png:
        _say(f"ROC plot -> {png}")


@detector_app.command("score")
@friendly_errors
def detector_score(
    det: Path = typer.Argument(..., help="detector directory"),
    ds: Path = typer.Argument(..., help="provkit dataset to score"),
    out_path: Path = typer.Option(..., "--out", "-o", help="new dataset with the detector_* columns"),
    tag: bool = typer.Option(False, "--tag", help="set origin of unknown records from the decision (evidence: detector)"),
    fpr: float = typer.Option(0.01, "--fpr", help="decide at the calibrated threshold of this false-positive rate"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="decide at P(model) >= this instead of --fpr"),
    spans: bool = typer.Option(False, "--spans", help="sliding-window evidence: detector_spans, and 'mixed' decisions"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable summary"),
) -> None:
    """Write DS with detector_score (calibrated P(model)), the decision at --fpr, threshold and detector id (parent: DS)."""
    detector = detectors.load_detector(det)
    bar, advance = _count_progress("scoring", Dataset.open(ds).num_rows())
    with bar:
        summary = detectors.score_dataset(detector, ds, out_path, tag=tag, threshold=threshold, fpr=fpr, spans=spans,
                                          detector_path=det, progress=advance)
    if as_json:
        print_json(summary.to_json())
        return
    tagged = (f"; tagged unknown: {summary.tagged_model} model, {summary.tagged_human} human"
              + (f", {summary.tagged_mixed} mixed" if spans else "")) if tag else ""
    mean = f"mean P(model) {summary.mean_score:.3f}" if summary.rows else "empty input"
    at = (f"at {detectors.fpr_label(summary.fpr)} FPR (threshold {summary.threshold:.4f})"
          if summary.fpr is not None else f"at P(model) >= {summary.threshold:g}")
    decided = ", ".join(f"{k} {v}" for k, v in summary.decisions.items()) or "none"
    _say(f"scored {summary.rows} records ({mean}); decisions {at}: {decided}{tagged} -> {out_path} "
         f"(detector {summary.detector_id[:12]})")


@detector_app.command("watermark")
@friendly_errors
def detector_watermark(
    ds: Path = typer.Argument(..., help="provkit dataset to score"),
    model: str = typer.Option(..., "--model", help="the generating model's directory (its tokenizer and config)"),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="file holding the watermark key"),
    key_env: Optional[str] = typer.Option(None, "--key-env", help="environment variable holding the key (instead of a file)"),
    z: float = typer.Option(4.0, "--z", help="z at or above which a record counts as watermarked"),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="new dataset with the watermark_* columns"),
    min_tokens: int = typer.Option(DEFAULT_MIN_TOKENS, "--min-tokens", help="fewer scored tokens: result 'too short'"),
    seeding_scheme: str = typer.Option("lefthash", "--seeding-scheme", help="lefthash | selfhash (as generated)"),
    greenlist_ratio: float = typer.Option(0.25, "--greenlist-ratio", help="green share of the vocabulary (as generated)"),
    context_width: int = typer.Option(1, "--context-width", help="tokens seeding the green list (as generated)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable summary"),
) -> None:
    """Score DS for a green-list watermark (transformers' WatermarkDetector): tokens, green fraction, z, p."""
    key = read_key(key_file, key_env)
    config = WatermarkConfig(seeding_scheme=seeding_scheme, greenlist_ratio=greenlist_ratio, context_width=context_width,
                             key_file=str(key_file) if key_file is not None else None, key_env=key_env)
    scorer = load_scorer(model, config, key=key, min_tokens=min_tokens)
    bar, advance = _count_progress("watermark", Dataset.open(ds).num_rows())
    with bar:
        summary = detect_dataset(scorer, ds, out_path, z_threshold=z, progress=advance)
    for line in summary.warnings:
        _say(f"warning: {line}", err)
    if as_json:
        print_json(summary.to_json())
        return
    mean = f", mean z {summary.mean_z:.2f}" if summary.mean_z is not None else ""
    _say(f"scored {summary.scored:,} of {summary.rows:,} records ({summary.too_short:,} too short){mean}: "
         f"{summary.above:,} at z >= {z:g} (key id {summary.key_id})" + (f" -> {out_path}" if out_path else ""))


# ---------------------------------------------------------------- experiment commands


def _experiment_progress() -> tuple[Progress, core_progress.Progress]:
    """Rich bars on stderr and the :class:`provkit.core.progress.Progress` that opens them (one per task)."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, transient=False)
    tasks: dict[str, Any] = {}

    def reporter(desc: str, total: int) -> Advance:
        if desc == "experiment units":
            task = tasks.setdefault(desc, progress.add_task(desc, total=total))
        else:
            if "step" in tasks:
                progress.remove_task(tasks["step"])
            task = tasks["step"] = progress.add_task(f"  {desc}", total=total)
        return lambda n, description=None: progress.advance(task, n)

    return progress, reporter


@experiment_app.command("run")
@friendly_errors
def experiment_run(
    run_dir: Path = typer.Option(..., "--out", "-o", help="run directory (rerun the same command to resume)"),
    config: Optional[Path] = typer.Option(None, "--config", help="experiment TOML (any ExperimentConfig key)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="tiny (default, offline CPU) or paper (OPT-125m, wikitext-2)"),
    model: Optional[str] = typer.Option(None, "--model", help="model directory or hub name (overrides the preset)"),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="builtin:python-docs, wikitext-2-raw-v1, or a local copy"),
    generations: Optional[int] = typer.Option(None, "--generations"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="N (seeds 0..N-1) or a list like 0,3,7"),
    decoding: Optional[str] = typer.Option(None, "--decoding", help="beam (5 beams, repetition penalty 3.0) or sample (temperature 1)"),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="human (default: every generation continues the human blocks) or chained"),
    start_from: Optional[str] = typer.Option(None, "--start-from", help="base (default) or gen0: the model each generation fine-tunes"),
    workers: Optional[int] = typer.Option(None, "--workers", help="parallel worker processes for independent units (default: the cores)"),
    detector: Optional[str] = typer.Option(None, "--detector", help="a trained detector directory: score each generation"),
    no_report: bool = typer.Option(False, "--no-report", help="skip writing report.md / report.html"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train generation after generation on the previous generation's text, under each condition."""
    cfg = load_experiment_config(config, preset, model=model, corpus=corpus, generations=generations, detector=detector,
                                 seeds=_parse_seeds(seeds), decoding=decoding, prompts=prompts, start_from=start_from)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {workers}")
    progress, reporter = _experiment_progress()
    with progress:
        summary = run_experiment(cfg, run_dir, reporter, workers=workers)
    paths = [] if no_report else [str(p) for p in write_report(run_dir)]
    rows = compare_runs([run_dir])
    result = {"out": str(run_dir), "seconds": round(summary.seconds, 1), "workers": summary.workers,
              "units_run": summary.units_done, "units_resumed": summary.units_resumed, "report": paths, "conditions": rows}
    if as_json:
        print_json(result)
        return
    for r in rows:
        slowed = "" if r["condition"] == "replace" else (
            f"; collapse slowed {_iv(r['slowed'], r['slowed_ci_low'], r['slowed_ci_high'], 2)}")
        _say(f"{r['condition']:>16}: test ppl {r['ppl_gen0']:7.1f} (gen 0) -> {r['ppl_last']:7.1f} (gen {r['generations']}, "
             f"mean of {r['seeds']} seeds); C {_iv(r['C'], r['C_ci_low'], r['C_ci_high'])}{slowed}")
    _say(f"{summary.units_done} units run, {summary.units_resumed} resumed, {summary.workers} workers, {summary.seconds:.0f} s; "
         f"metrics in {run_dir}/metrics.parquet" + (f", report {paths[1]}" if paths else ""))


def _iv(m: float, lo: float, hi: float, d: int = 3) -> str:
    """``mean [low, high]`` (the mean alone when there is no interval)."""
    return "–" if m != m else f"{m:.{d}f}" if lo != lo else f"{m:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def _parse_seeds(value: Optional[str]) -> Optional[list[int]]:
    if value is None:
        return None
    try:
        if "," in value:
            return [int(v) for v in value.split(",") if v.strip()]
        n = int(value)
    except ValueError:
        raise ConfigError(f"--seeds: expected N or a comma-separated list of integers, got {value!r}") from None
    if n < 1:
        raise ConfigError(f"--seeds: must be >= 1, got {n}")
    return list(range(n))


@experiment_app.command("crawl")
@friendly_errors
def experiment_crawl(
    run_dir: Path = typer.Option(..., "--out", help="run directory (rerun the same command to resume)"),
    config: Optional[Path] = typer.Option(None, "--config", help="crawl-scenario TOML (any CrawlConfig key)"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="N (seeds 0..N-1) or a comma-separated list"),
    workers: Optional[int] = typer.Option(None, "--workers", help="parallel worker processes (default: the cores)"),
    model: Optional[str] = typer.Option(None, "--model", help="model directory or hub name (default: the tiny OPT)"),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="builtin:python-docs, wikitext-2-raw-v1, or a local copy"),
    kept_tags: Optional[float] = typer.Option(None, "--kept-tags", help="share t of crawl records keeping their tag"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The provenance-lost scenario: each generation a crawl with hidden model text; what each arm recovers."""
    seed_list = _parse_seeds(seeds)
    cfg = load_crawl_config(config, seeds=seed_list, model=model, corpus=corpus, kept_tags=kept_tags)
    progress, reporter = _experiment_progress()
    with progress:
        advance = reporter("experiment units", 1 + len(cfg.seeds) * (1 + len(cfg.arms) * cfg.generations))
        summary = run_crawl(cfg, run_dir, workers=workers or default_workers(), on_unit=lambda u: advance(1))
    md, _ = write_crawl_report(run_dir)
    stats = json.loads((run_dir / "statistics.json").read_text())
    if as_json:
        print_json({"out": str(run_dir), "seconds": round(summary.seconds, 1), "report": str(md), **stats})
        return
    for r in stats["headline"]:
        _say(f"{r['arm']:>20}: C {r['C_mean']:+.4f}  gap recovered {gap_text(r)}  model share {r['model_share']:.2f}")
    _say(f"{summary.units} units, {summary.seconds:.0f} s; report {md}")


@experiment_app.command("report")
@friendly_errors
def experiment_report(run: Path = typer.Argument(..., help="run directory"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Write RUN/report.md and a self-contained RUN/report.html with figures, tables and the config."""
    md, html_path = write_report(run)
    if as_json:
        print_json({"markdown": str(md), "html": str(html_path)})
    else:
        _say(f"wrote {md} and {html_path}")


@experiment_app.command("compare")
@friendly_errors
def experiment_compare(runs: List[Path] = typer.Argument(..., help="run directories"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Put runs side by side per condition: seeds, test perplexity, the endpoint C and collapse slowed, with 95 % intervals."""
    rows = compare_runs(runs)
    if as_json:
        print_json(rows)
        return
    table = Table("run", "condition", "seeds", "gens", "ppl gen 0", "ppl last [95% CI]", "C [95% CI]",
                  "collapse slowed [95% CI]")
    for r in rows:
        table.add_row(Text(str(r["run"])), Text(str(r["condition"])), str(r["seeds"]), str(r["generations"]), f"{r['ppl_gen0']:.1f}",
                      _iv(r["ppl_last"], r["ppl_last_ci_low"], r["ppl_last_ci_high"], 1), _iv(r["C"], r["C_ci_low"], r["C_ci_high"]),
                      "(reference)" if r["condition"] == "replace" else _iv(r["slowed"], r["slowed_ci_low"], r["slowed_ci_high"], 2))
    out.print(table)


@experiment_app.command("toy")
@friendly_errors
def experiment_toy(
    kind: str = typer.Argument(..., help="gaussian, gmm, vae, or all (each into the same --out)"),
    out_dir: Path = typer.Option(Path("toy-out"), "--out", "-o", help="directory for figures, toy-KIND.json and report.md/.html"),
    conditions: Optional[List[str]] = typer.Option(
        None, "--condition", "-c", help="replace, keep-human=F, accumulate, accumulate-fixed; repeat it (default: all four, F=0.1)"),
    samples: Optional[int] = typer.Option(None, "--samples", "-M", help="samples per generation M (default 100; vae: 0 = all 1,797 digits)"),
    generations: Optional[int] = typer.Option(None, "--generations", help="default 200 (gaussian), 100 (gmm), 10 (vae)"),
    repeats: Optional[int] = typer.Option(None, "--repeats", help="independent runs: default 1000 (gaussian), 100 (gmm); vae: seeds, default 1"),
    seed: int = typer.Option(0, "--seed"),
    steps: Optional[int] = typer.Option(None, "--steps", help="vae: Adam steps per generation (default 600, batches of 256)"),
    threads: int = typer.Option(1, "--threads", help="vae: torch threads"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The theory's toy loops: fit a Gaussian, a 2-component mixture or a VAE on digits to its own samples, repeat,
    under each mixing condition; writes figures and a report with every kind found in --out side by side."""
    kinds = list(TOY_KINDS) if kind == "all" else [kind]
    conds = conditions or list(TOY_CONDITIONS)
    vae = VaeSettings(threads=threads, **({"steps": steps} if steps is not None else {}))
    cfgs = [ToyConfig(kind=k, samples=samples, generations=generations, repeats=repeats, seed=seed, vae=vae,
                      condition=conds[0]) for k in kinds]
    done: dict[str, Any] = {}
    for cfg in cfgs:
        bar, advance = _count_progress(f"toy {cfg.kind}", progress_total(cfg, conds))
        with bar:
            results = run_toys(cfg, conds, advance)
        png, js = write_toy(results, out_dir)
        done[cfg.kind] = {"figure": str(png), "summary": str(js), "last": {r.condition: r.summary()[-1] for r in results}}
        if not as_json:
            for r in results:
                _say(_toy_line(cfg.kind, r.condition, r.summary()))
    md, html_path = write_toy_report(out_dir)
    if as_json:
        print_json({"kinds": done, "report": [str(md), str(html_path)]})
        return
    _say(f"figures and toy-*.json in {out_dir}; report {md}, {html_path}")


def _toy_line(kind: str, condition: str, rows: list[dict[str, Any]]) -> str:
    """One line per kind and condition: generation 1 (or 0) -> the last generation."""
    last = rows[-1]
    head = f"{kind:>8} {condition:>16} gen {last['generation']:3d}: "
    if kind == "gaussian":
        return (head + f"E(mu_n-mu)^2 {last['mean_sq_drift']:.4f} ± {last['mean_sq_drift_se']:.4f} (closed form "
                f"{last['mean_sq_drift_closed_form']:.4f}), E sigma_n^2 {last['variance_mean']:.3f} ± {last['variance_se']:.3f} "
                f"(closed form {last['variance_closed_form']:.3f}), mean sigma-hat {last['sigma_mean']:.3f}")
    if kind == "gmm":
        return (head + f"mixture std {rows[0]['sigma_mean']:.3f} -> {last['sigma_mean']:.3f}, smaller weight "
                f"{rows[0]['min_weight']:.3f} -> {last['min_weight']:.3f}")
    one = rows[1]
    return (head + f"pixel variance ratio {one['var_ratio']:.3f} -> {last['var_ratio']:.3f}, class entropy "
            f"{one['class_entropy']:.2f} -> {last['class_entropy']:.2f} bits, Frechet {one['frechet']:.2f} -> {last['frechet']:.2f}"
            " (from gen 1)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
