"""The dataset manifest and provenance documents: what a committed provkit dataset says about itself.

Layout of a dataset directory::

    DS/data/part-*.parquet         records (zstd; row groups of ``row_group_bytes``)
    DS/rejects/part-*.parquet      records a filter dropped, with ``drop_reason``
    DS/quarantine/part-*.parquet   bad input set aside under ``--on-error skip``
    DS/provenance.json             W3C PROV-JSON: activities, agents, used/generated
    DS/manifest.json               schema version, files with rows + sha256, parents

``manifest.json`` lists every file with its kind, row count, size and sha256,
the parent datasets (with their manifests' sha256) and every activity that
wrote the dataset; it is written last, so it is the commit point.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from provkit.errors import DatasetError
from provkit.provenance.schema import utcnow

MANIFEST = "manifest.json"
PROVENANCE = "provenance.json"
KINDS = ("data", "rejects", "quarantine")
FORMAT = "provkit-dataset"
SOFTWARE_AGENT = "provkit"


def new_activity_id(kind: str) -> str:
    stamp = utcnow().strftime("%Y%m%dT%H%M%S")
    return f"{kind}-{stamp}-{uuid.uuid4().hex[:8]}"


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Activity:
    """A PROV activity: one ingest / filter / generation run."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    used: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=lambda: [SOFTWARE_AGENT])
    id: str = ""
    started_at: datetime = field(default_factory=utcnow)
    ended_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.id:
            self.id = new_activity_id(self.kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "used": self.used,
            "agents": self.agents,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at) if self.ended_at else None,
        }


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None


