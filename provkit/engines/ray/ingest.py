"""``prov ingest --engine ray``: sources read and checked in parallel Ray tasks, committed by the driver.

One Ray task per source (file, ``hf:`` or ``builtin:`` source) runs engineer
A's reader (:func:`provkit.provenance.readers.read_source`) and the per-chunk
half of the ingest (:meth:`provkit.provenance.Ingest.check`: field checks,
ids, origins, parents and the schema records with their ``content_hash``).
The task is a Ray *streaming generator*: it yields one ``(chunk, checked)``
object per chunk as it goes, at most :data:`BACKPRESSURE` ahead of the driver.

The driver consumes the sources in the order given and, inside each source,
the chunks in file order, and runs the run-state half
(:meth:`provkit.provenance.Ingest.finish`: duplicate ids across the whole
run and the existing dataset, ``--on-error``) and the writes into the store's
:class:`provkit.provenance.DatasetWriter` (parts under a temporary directory,
manifest committed last).  So ids, positions, content hashes, order and
quarantine rows are those of the local ingest; only ``activity_id`` and
``ingested_at`` belong to the run.  A failed task is retried by Ray; an error
discards everything.  Parallelism is per source: one big file is one task.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator

from provkit.engines.ray.engine import RayOptions, start_ray
from provkit.errors import ProvkitError
from provkit.provenance import IdIndex, Ingest, IngestConfig
from provkit.provenance.readers import read_source

BACKPRESSURE = 4
"""Chunks a source task may run ahead of the driver (memory: a few chunks per running task)."""


def _check_source(job: Ingest, index: int) -> Iterator[Any]:
    source = job.sources[index]


    for chunk in read_source(source, job.cfg.read_options()):
        yield chunk, job.check(chunk, source)


class RayIngest(Ingest):
    """An :class:`provkit.provenance.Ingest` whose reading and checking run on Ray."""

    def __init__(self, sources: list[str], out: str | Path, cfg: IngestConfig, *, address: str | None = None,
                 num_cpus: int | None = None):
        super().__init__(sources, out, cfg)
        self.options = RayOptions(address=address, num_cpus=num_cpus)

    def _worker_view(self) -> Ingest:
        """A copy to ship to the tasks: the same config and activity, no run state (the id index stays here)."""
        view = copy.copy(self)
        view.ids = IdIndex()
        return view

    def checked_chunks(self) -> Iterator[tuple[Any, Any]]:
        import ray  # lazy: Ray is the optional extra provkit[ray]

        start_ray(self.options)
        check = ray.remote(_check_source).options(num_returns="streaming",
                                                  _generator_backpressure_num_objects=BACKPRESSURE)
        job = ray.put(self._worker_view())
        streams = [check.remote(job, i) for i in range(len(self.sources))]
        try:
            for stream in streams:
                for ref in stream:
                    yield _get(ref)
        finally:
            for stream in streams:
                ray.cancel(stream)


def _get(ref: Any) -> Any:
    """``ray.get``; a provkit error raised in a task is raised here as itself (its one-line message)."""
    import ray  # lazy: Ray is the optional extra provkit[ray]
    from ray.exceptions import RayTaskError  # lazy: Ray is the optional extra provkit[ray]

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        cause = exc.cause if hasattr(exc, "cause") else None
        if isinstance(cause, ProvkitError):
            raise cause from None
        raise
