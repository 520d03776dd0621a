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

from provkit.errors import ProvkitError

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
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            err.print("interrupted; nothing was committed")
            raise typer.Exit(130)

    return wrapper


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


# ---------------------------------------------------------------- provenance commands


# ---------------------------------------------------------------- filter commands


def _filter_progress(total: int) -> Any:
    """A rich progress bar on stderr over the score and write passes (2 x rows)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err, transient=True)
    task = bar.add_task("filter", total=max(2 * total, 1))

    def advance(phase: str, rows: int) -> None:
        bar.update(task, advance=rows, description=phase)

    return bar, advance


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
    max_model_prob: Optional[float] = typer.Option(None, "--max-model-prob", help="Drop records with P(model) above this."),
    detector_beta: Optional[float] = typer.Option(None, "--detector-beta", help="Weight (1 - P(model))^beta instead of dropping."),
    tail_alpha: Optional[float] = typer.Option(None, "--tail-alpha", help="Tail weights proportional to rarity^alpha."),
    tail_target: Optional[int] = typer.Option(None, "--tail-target", help="Resample to this many records by tail weight."),
    mix: Optional[str] = typer.Option(None, "--mix", help="replace | accumulate | keep-human=F."),
    mix_records: Optional[int] = typer.Option(None, "--mix-records", help="Record budget of the mix."),
    mix_tokens: Optional[int] = typer.Option(None, "--mix-tokens", help="Token budget of the mix."),
    mix_alpha: Optional[float] = typer.Option(None, "--mix-alpha", help="Loss weight of human data: alpha*L_human + (1-alpha)*L_model."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of every seeded step."),
    engine: str = typer.Option("local", "--engine", help="local | ray."),
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
    bar, advance = _filter_progress(Dataset.open(src).num_rows())
    with bar:
        result = run_filter(src, out_path, pipeline, engine=engine, progress=advance, overwrite=overwrite)
    report = result.report
    if as_json:
        print_json(report)
        return
    for st in report["steps"]:
        dropped = ", ".join(f"{k} {v}" for k, v in st["dropped"].items()) or "none dropped"
        out.print(f"  {st['step']:<14} in {st['in']:>8}  kept {st['kept']:>8}  ({dropped})", highlight=False, soft_wrap=True)
    n_dropped = sum(report["dropped"].values())
    out.print(f"filtered {report['input']} records: kept {report['kept']}, dropped {n_dropped} "
              f"-> {out_path} ({report['seconds']} s)", highlight=False)



# ---------------------------------------------------------------- detector commands


# ---------------------------------------------------------------- experiment commands


def main() -> None:
    app()


if __name__ == "__main__":
    main()
