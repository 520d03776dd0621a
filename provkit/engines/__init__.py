"""Engines: executors of a filter pipeline's steps (local streaming; Ray Data in ``ray``).

``get_engine("local" | "ray", address=None, **options)`` returns an object with
``run(dataset, steps, writer, progress) -> EngineResult``.  Names are loaded
lazily: :mod:`provkit.filters` imports this package and the engines import the
Step protocol from :mod:`provkit.filters`, so nothing is imported at package
import time (workers that only need :mod:`provkit.engines.ray_components`
import no filter code).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EngineResult": "local", "LocalEngine": "local", "StepStats": "local", "decide_column_names": "local",
    "decide_step": "local", "score_batch": "local",
    "RayEngine": "ray", "RayOptions": "ray", "start_ray": "ray",
    "ClusteringStats": "ray_components", "bucket_candidate_pairs": "ray_components",
    "cluster_band_hashes": "ray_components", "connected_components": "ray_components",
    "RayIngest": "ray_ingest",
}
ENGINES = ("local", "ray")

__all__ = [*_LAZY, "ENGINES", "get_engine", "get_ingest"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'provkit.engines' has no attribute {name!r}")
    if module != "ray_components":
        importlib.import_module("provkit.filters")  # load the Step protocol first (breaks the import cycle)
    return getattr(importlib.import_module(f"provkit.engines.{module}"), name)


def get_engine(name: str = "local", address: str | None = None, **options: Any) -> Any:
    """The engine called ``name``; ``address`` joins a running Ray cluster (ray engine only)."""
    from provkit.errors import ConfigError

    if name == "local":
        if address:
            raise ConfigError("--ray-address: only valid with --engine ray")
        return __getattr__("LocalEngine")(**options)
    if name == "ray":
        return __getattr__("RayEngine")(address=address, **options)
    raise ConfigError(f"--engine: expected one of {', '.join(ENGINES)}, got {name!r}")


def get_ingest(name: str, sources: list[str], out: Any, config: Any, address: str | None = None) -> Any:
    """An ingest job (``run(progress) -> IngestSummary``) on engine ``name`` (``prov ingest --engine``)."""
    from provkit.errors import ConfigError
    from provkit.provenance import Ingest

    if name == "local":
        if address:
            raise ConfigError("--ray-address: only valid with --engine ray")
        return Ingest(sources, out, config)
    if name == "ray":
        try:
            return __getattr__("RayIngest")(sources, out, config, address=address)
        except ImportError as exc:
            raise ConfigError(f"--engine ray: not available ({exc}); install provkit[ray]") from None
    raise ConfigError(f"--engine: expected one of {', '.join(ENGINES)}, got {name!r}")
