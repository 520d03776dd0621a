"""The Ray engines: the filter pipeline scored and deduplicated on a Ray cluster, and ingest in Ray tasks.

* :mod:`.engine` - :class:`RayEngine` (extends the local engine), :func:`start_ray`
* :mod:`.components` - band buckets, candidate pairs, connected components as Ray Data operators
* :mod:`.dedup` - the exact / near-duplicate plans (the ``ClusterDedup`` capability) built on them
* :mod:`.ingest` - :class:`RayIngest`: reading and checking sources in Ray tasks

``ray`` itself is imported inside the functions that need it (an optional
extra, ``provkit[ray]``), so importing this package works without Ray.
"""

from provkit.engines.ray.engine import RayEngine, RayOptions, start_ray
from provkit.engines.ray.ingest import RayIngest

__all__ = ["RayEngine", "RayOptions", "RayIngest", "start_ray"]
