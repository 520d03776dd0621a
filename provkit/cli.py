"""The `prov` command line: parses flags, calls the library, prints. No logic here.

Errors from the library (:class:`provkit.errors.ProvkitError`) become one line
on stderr and exit code 2; ``--json`` output goes to stdout alone.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from provkit.errors import ProvkitError
from provkit.filters import detector as detectors
from provkit.provenance import Dataset

app = typer.Typer(add_completion=False, no_args_is_help=True, help="provkit: training-data provenance, curation and the model-collapse experiment.")
detector_app = typer.Typer(no_args_is_help=True, help="Train, evaluate and apply human-vs-model text detectors.")
experiment_app = typer.Typer(no_args_is_help=True, help="The recursive-training model-collapse experiment.")
app.add_typer(detector_app, name="detector")
app.add_typer(experiment_app, name="experiment")

out = Console()
err = Console(stderr=True)


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ProvkitError into one line on stderr and exit 2 (never a traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProvkitError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            err.print("interrupted; nothing was committed")
            raise typer.Exit(130)

    return wrapper


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _count_progress(description: str, total: int) -> tuple[Any, Callable[..., None]]:
    """A rich progress bar on stderr counting items; returns (bar, advance(n, description=None))."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err, transient=True, disable=not err.is_terminal)
    task = bar.add_task(description, total=max(total, 1))

    def advance(n: int, description: str | None = None) -> None:
        bar.update(task, advance=n, **({"description": description} if description else {}))

    return bar, advance


# ---------------------------------------------------------------- provenance commands


def _ingest_progress(total_bytes: int | None) -> Any:
    """A rich progress bar on stderr: bytes when the input size is known, else records."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("ingest"), BarColumn(), DownloadColumn() if total_bytes else TextColumn("{task.completed:,.0f} records"),
               TextColumn("{task.fields[records]:,} records") if total_bytes else TextColumn(""), TimeElapsedColumn()]
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


def _say(text: str, console: Console = out) -> None:
    """One plain line: no rich markup or highlighting (paths and types contain brackets), no wrapping."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command("ingest")
@friendly_errors
def ingest_command(
    sources: List[str] = typer.Argument(..., help="files, directories, globs, hf:NAME[:CONFIG][:SPLIT] or builtin:python-docs"),
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
    license: Optional[str] = typer.Option(None, help="license stored with each record"),
    split: str = typer.Option("file", help=".txt sources: one record per file|line|paragraph"),
    on_error: str = typer.Option("fail", help="fail: stop at the first bad record; skip: quarantine bad records"),
    max_record_bytes: int = typer.Option(10 << 20, help="records larger than this are bad input (record too large)"),
    engine: str = typer.Option("local", "--engine", help="local | ray (read and check sources in parallel Ray tasks)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster (ray start --head); default: a local Ray instance."),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Turn text, JSONL, CSV, Parquet or Hugging Face data into a provenance-tagged Parquet dataset."""
    from provkit.engines import get_ingest
    from provkit.provenance import IngestConfig

    cfg = IngestConfig(origin=origin, text_field=text_field, id_field=id_field, origin_field=origin_field,
                       parent_field=parent_field, generator_model=generator_model, generation=generation,
                       dataset=dataset, license=license, split=split, on_error=on_error,
                       max_record_bytes=max_record_bytes, parent_datasets=tuple(str(p) for p in parent_dataset))
    job = get_ingest(engine, list(sources), out_dir, cfg, ray_address)
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
    if summary.quarantined:
        _say(f"  see {summary.out}/quarantine/ for each bad record with its file, line and reason")


@app.command("inspect")
@friendly_errors
def inspect_command(
    ds: Path = typer.Argument(..., help="dataset directory"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """Schema, files, sizes and provenance activities of a dataset."""
    from provkit.provenance import dataset_info

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
) -> None:
    """Counts by origin, generator, generation, dataset and source; text length and token summaries."""
    from provkit.provenance import dataset_stats

    st = dataset_stats(ds)
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


@app.command("lineage")
@friendly_errors
def lineage_command(
    ds: Path = typer.Argument(..., help="dataset directory"),
    record_id: str = typer.Argument(..., help="record id"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """A record's ancestors through parent_ids, across parent datasets, up to the roots."""
    from provkit.provenance import lineage

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
def verify_command(ds: Path = typer.Argument(..., help="dataset directory")) -> None:
    """Re-hash every file against the manifest, check schema and row counts; exit 1 on any problem."""
    from provkit.provenance import verify

    problems = verify(ds)
    for p in problems:
        _say(p, err)
    if problems:
        raise typer.Exit(1)
    _say(f"{ds}: ok (all files match the manifest)")


@app.command("export")
@friendly_errors
def export_command(
    ds: Path = typer.Argument(..., help="dataset directory"),
    to: str = typer.Option(..., "--to", help="jsonl | prov-json | croissant"),
    out_path: Path = typer.Option(..., "--out", "-o", help="output file"),
) -> None:
    """Export records (JSONL), provenance (W3C PROV-JSON) or a Croissant description."""
    from provkit.provenance import export_dataset

    n = export_dataset(ds, to, out_path)
    _say(f"wrote {out_path} ({to}, {n:,} records)")


# ---------------------------------------------------------------- filter commands


@app.command("filter")
@friendly_errors
def filter_command(
    src: Path = typer.Argument(..., help="Input provkit dataset."),
    out_path: Path = typer.Option(..., "--out", help="Output dataset (kept records, rejects/, report.json, report.md)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Pipeline TOML file (see pipelines/default.toml)."),
    dedup: Optional[str] = typer.Option(None, "--dedup", help="exact, minhash or exact,minhash."),
    minhash_threshold: Optional[float] = typer.Option(None, "--minhash-threshold", help="Target Jaccard similarity."),
    quality: bool = typer.Option(False, "--quality", help="Drop repetitive / degenerate / very short texts."),
    detector: Optional[str] = typer.Option(None, "--detector", help="Detector directory (prov detector train)."),
    max_model_prob: Optional[float] = typer.Option(None, "--max-model-prob", help="Drop records with P(model) above this (0.5 unless --detector-beta)."),
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
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json to stdout."),
) -> None:
    """Curate a dataset: dedup, quality, detector, tail weighting, mixing; writes kept + rejects + report."""
    from provkit.filters import FilterFlags, resolve_pipeline, run_filter
    from provkit.provenance import Dataset

    flags = FilterFlags(
        dedup=tuple(d.strip() for d in dedup.split(",") if d.strip()) if dedup else (),
        minhash_threshold=minhash_threshold, quality=quality, detector=detector, max_model_prob=max_model_prob,
        detector_beta=detector_beta, tail_alpha=tail_alpha, tail_target=tail_target, mix=mix,
        mix_records=mix_records, mix_tokens=mix_tokens, mix_alpha=mix_alpha, seed=seed,
    )
    pipeline = resolve_pipeline(config, flags)
    bar, advance = _count_progress("filter", 2 * Dataset.open(src).num_rows())  # the score and write passes
    with bar:
        result = run_filter(src, out_path, pipeline, engine=engine, progress=lambda phase, rows: advance(rows, phase),
                            overwrite=overwrite,
                            engine_options={"address": ray_address} if ray_address else None)
    report = result.report
    if as_json:
        print_json(report)
        return
    for st in report["steps"]:
        dropped = ", ".join(f"{k} {v}" for k, v in st["dropped"].items()) or "none dropped"
        _say(f"  {st['step']:<14} in {st['in']:>8}  kept {st['kept']:>8}  ({dropped})")
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


# ---------------------------------------------------------------- experiment commands


def _experiment_progress():  # -> (rich Progress, reporter)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, transient=False)
    tasks: dict[str, Any] = {}

    def reporter(desc: str, total: int) -> Callable[[int], None]:
        if desc == "experiment units":
            task = tasks.setdefault(desc, progress.add_task(desc, total=total))
        else:
            if "step" in tasks:
                progress.remove_task(tasks["step"])
            task = tasks["step"] = progress.add_task(f"  {desc}", total=total)
        return lambda n: progress.advance(task, n)

    return progress, reporter


@experiment_app.command("run")
@friendly_errors
def experiment_run(
    run_dir: Path = typer.Option(..., "--out", help="run directory (rerun the same command to resume)"),
    config: Optional[Path] = typer.Option(None, "--config", help="experiment TOML (any ExperimentConfig key)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="tiny (default, offline CPU) or paper (OPT-125m, wikitext-2)"),
    model: Optional[str] = typer.Option(None, "--model", help="model directory or hub name (overrides the preset)"),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="builtin:python-docs, wikitext-2-raw-v1, or a local copy"),
    generations: Optional[int] = typer.Option(None, "--generations"),
    detector: Optional[str] = typer.Option(None, "--detector", help="a trained detector directory: score each generation"),
    no_report: bool = typer.Option(False, "--no-report", help="skip writing report.md / report.html"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train generation after generation on the previous generation's text, under each condition."""
    from provkit.train import load_experiment_config, run_experiment, write_report

    cfg = load_experiment_config(config, preset, model=model, corpus=corpus, generations=generations, detector=detector)
    progress, reporter = _experiment_progress()
    with progress:
        summary = run_experiment(cfg, run_dir, reporter)
    paths = [] if no_report else [str(p) for p in write_report(run_dir)]
    last = {}
    for row in summary.metrics:
        if row["generation"] >= last.get(row["condition"], {}).get("generation", -1) and row["seed"] == cfg.seeds[0]:
            last[row["condition"]] = row
    result = {"out": str(run_dir), "seconds": round(summary.seconds, 1), "units_run": summary.units_done,
              "units_resumed": summary.units_resumed, "report": paths,
              "last_generation": {c: {"generation": r["generation"], "test_ppl": r["test_ppl"]} for c, r in last.items()}}
    if as_json:
        print_json(result)
        return
    for cond, r in result["last_generation"].items():
        gen0 = next(m["test_ppl"] for m in summary.metrics if m["condition"] == cond and m["generation"] == 0)
        out_line = f"{cond:>16}: test ppl {gen0:8.1f} (gen 0) -> {r['test_ppl']:8.1f} (gen {r['generation']})"
        _say(out_line)
    _say(f"{summary.units_done} units run, {summary.units_resumed} resumed, {summary.seconds:.0f} s; "
         f"metrics in {run_dir}/metrics.parquet" + (f", report {paths[1]}" if paths else ""))


@experiment_app.command("report")
@friendly_errors
def experiment_report(run: Path = typer.Argument(..., help="run directory"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Write RUN/report.md and a self-contained RUN/report.html with figures, tables and the config."""
    from provkit.train import write_report

    md, html_path = write_report(run)
    if as_json:
        print_json({"markdown": str(md), "html": str(html_path)})
    else:
        _say(f"wrote {md} and {html_path}")


@experiment_app.command("compare")
@friendly_errors
def experiment_compare(runs: List[Path] = typer.Argument(..., help="run directories"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Put runs side by side: test perplexity at generation 0 and at the last generation per condition."""
    from rich.table import Table

    from provkit.train import compare_runs

    rows = compare_runs(runs)
    if as_json:
        print_json(rows)
        return
    table = Table("run", "condition", "gens", "ppl gen 0", "ppl last", "ratio", "tail recall", "distinct-2")
    for r in rows:
        table.add_row(r["run"], r["condition"], str(r["generations"]), f"{r['ppl_gen0']:.1f}", f"{r['ppl_last']:.1f}",
                      f"{r['ppl_ratio']:.3f}", f"{r['tail_recall_last']:.3f}", f"{r['distinct_2_last']:.3f}")
    out.print(table)


@experiment_app.command("toy")
@friendly_errors
def experiment_toy(
    kind: str = typer.Argument(..., help="gaussian or gmm"),
    out_dir: Path = typer.Option(Path("toy-out"), "--out", help="directory for toy.png and toy.json"),
    samples: int = typer.Option(100, "--samples", "-M", help="samples per generation (M)"),
    generations: int = typer.Option(200, "--generations"),
    repeats: int = typer.Option(1000, "--repeats"),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The theory's toy loop: fit a Gaussian (or 2-component mixture) to M samples, sample M from the fit, repeat."""
    from provkit.train import ToyConfig, run_toy, write_toy

    result = run_toy(ToyConfig(kind=kind, samples=samples, generations=generations, repeats=repeats, seed=seed))
    png, js = write_toy(result, out_dir)
    rows = result.summary()
    if as_json:
        print_json({"plot": str(png), "summary": str(js), "last": rows[-1]})
        return
    for r in (rows[0], rows[len(rows) // 2], rows[-1]):
        line = f"gen {r['generation']:4d}: mean sigma-hat {r['sigma_mean']:.4f}"
        if "sigma_closed_form" in r:
            line += f" (closed form {r['sigma_closed_form']:.4f})"
        line += f", E(mu_n-mu)^2 {r['mean_sq_drift']:.4f}"
        if "mean_sq_drift_closed_form" in r:
            line += f" (n sigma^2/M = {r['mean_sq_drift_closed_form']:.4f})"
        _say(line)
    _say(f"plot {png}, table {js}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
