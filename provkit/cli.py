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


# ---------------------------------------------------------------- detector commands


# ---------------------------------------------------------------- experiment commands


def main() -> None:
    app()


if __name__ == "__main__":
    main()
