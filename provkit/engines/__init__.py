"""Engines: executors of a filter pipeline's steps (local streaming; Ray Data in :mod:`.ray`).

Each engine implements :class:`provkit.filters.engine.Engine` (``name`` and
``run(dataset, steps, writer, progress) -> EngineResult``).  :data:`ENGINES`
is the one name -> class table (``prov filter --engine``); :data:`INGESTS`
the same for ``prov ingest --engine``.  A new engine is one module here plus
one line in each table it serves.

``run_filter(IN, OUT, config, engine="local")`` is the convenience entry:
it builds the named engine and calls :func:`provkit.filters.run_pipeline`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provkit.core.progress import Advance
from provkit.engines.local import LocalEngine
from provkit.engines.ray import RayEngine, RayIngest, RayOptions, start_ray
from provkit.errors import ConfigError
from provkit.filters.config import PipelineConfig
from provkit.filters.engine import Engine, EngineResult, StepStats
from provkit.filters.pipeline import FilterResult, run_pipeline
from provkit.provenance import Ingest, IngestConfig

ENGINES: dict[str, type] = {"local": LocalEngine, "ray": RayEngine}
"""Engine name -> class; ``address`` (a Ray cluster) is only valid where the class takes it."""

INGESTS: dict[str, type] = {"local": Ingest, "ray": RayIngest}
"""Ingest engine name -> class with ``run(progress) -> IngestSummary``."""

__all__ = ["ENGINES", "INGESTS", "Engine", "EngineResult", "LocalEngine", "RayEngine", "RayOptions", "StepStats",
           "get_engine", "get_ingest", "run_filter", "start_ray"]


def _lookup(table: dict[str, type], name: str, address: str | None) -> type:
    if name not in table:
        raise ConfigError(f"--engine: expected one of {', '.join(table)}, got {name!r}")
    if address and name == "local":
        raise ConfigError("--ray-address: only valid with --engine ray")
    return table[name]


def get_engine(name: str = "local", address: str | None = None, **options: Any) -> Engine:
    """The engine called ``name``; ``address`` joins a running Ray cluster (ray engine only)."""
    cls = _lookup(ENGINES, name, address)
    return cls(address=address, **options) if address or cls is RayEngine else cls(**options)


def get_ingest(name: str, sources: list[str], out: Any, config: IngestConfig, address: str | None = None,
               annotator: Any = None) -> Any:
    """An ingest job (``run(progress) -> IngestSummary``) on engine ``name`` (``prov ingest --engine``).

    ``annotator`` (a :class:`provkit.provenance.annotate.RecordAnnotator`) runs in this process on the checked records.
    """
    cls = _lookup(INGESTS, name, address)
    if cls is Ingest:
        return cls(sources, out, config, annotator)
    try:
        job = cls(sources, out, config, address=address)
    except ImportError as exc:
        raise ConfigError(f"--engine {name}: not available ({exc}); install provkit[ray]") from None
    job.annotator = annotator
    return job


def run_filter(source: str | Path, out: str | Path, config: PipelineConfig, *, engine: str | Engine = "local",
               progress: Advance | None = None, overwrite: bool = False,
               engine_options: dict[str, Any] | None = None, verify: bool = True) -> FilterResult:
    """Run ``config`` over dataset ``source`` into ``out`` on the engine named ``engine`` (or an engine object)."""
    if isinstance(engine, str):
        options = dict(engine_options or {})
        try:
            engine = get_engine(engine, options.pop("address", None), **options)
        except ImportError as exc:
            raise ConfigError(f"--engine {engine}: not available ({exc}); install provkit[ray]") from None
    return run_pipeline(source, out, config, engine, progress=progress, overwrite=overwrite, verify=verify)
