"""The dataset manifest and provenance documents: what a committed provkit dataset says about itself.

Layout of a dataset directory::

    DS/data/part-*.parquet         records (zstd; row groups of ``row_group_bytes``; one per part from an ingest)
    DS/rejects/part-*.parquet      records a filter dropped, with ``drop_reason``
    DS/quarantine/part-*.parquet   bad input set aside under ``--on-error skip``
    DS/provenance.json             W3C PROV-JSON: activities, agents, used/generated
    DS/manifest.json               schema version, files with rows + sha256, parents

``manifest.json`` lists every file with its kind, row count, size and sha256,
the parent datasets (with their manifests' sha256) and every activity that
wrote the dataset; it is written last, so it is the commit point.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from provkit.core.atomic import finite
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
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


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




# --- the manifest's own checksum and the shape of its entries ---------------
SEAL = "manifest_sha256"
_HEX = set("0123456789abcdef")


def canonical_bytes(manifest: dict[str, Any]) -> bytes:
    """The canonical form the seal covers: the manifest without its seal, sorted keys, no spaces."""
    body = {k: v for k, v in manifest.items() if k != SEAL}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def seal(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` (JSON-normalised) with :data:`SEAL`: the sha256 of its canonical form."""
    body = finite(json.loads(json.dumps({k: v for k, v in manifest.items() if k != SEAL}, default=str)))
    return {**body, SEAL: hashlib.sha256(canonical_bytes(body)).hexdigest()}


def seal_problem(manifest: dict[str, Any]) -> str | None:
    """Why the manifest's seal does not hold (``None`` when it does)."""
    want = manifest.get(SEAL)
    if want is None:
        return f"has no {SEAL} (written by provkit < 0.2, or edited by hand)"
    if hashlib.sha256(canonical_bytes(manifest)).hexdigest() != want:
        return f"{SEAL} does not match its contents (the manifest was edited or corrupted)"
    return None


def entry_problem(entry: Any) -> str | None:
    """Why a manifest ``files`` entry is malformed or points outside the dataset (``None`` when fine)."""
    if not isinstance(entry, dict):
        return f"a files entry is a {type(entry).__name__}, expected an object"
    path, kind = entry.get("path"), entry.get("kind")
    if not isinstance(path, str) or not path:
        return f"a files entry has no path: {json.dumps(entry, default=str)[:200]}"
    if kind not in (*KINDS, "side"):
        return f"{path}: kind {kind!r} is not one of {', '.join((*KINDS, 'side'))}"
    parts = PurePosixPath(path).parts
    if path.startswith("/") or "\\" in path or any(p in ("..", ".", "") for p in path.split("/")) or ":" in parts[0]:
        return f"{path}: path leaves the dataset directory"
    if kind == "side":
        if len(parts) != 1 or path in (MANIFEST, PROVENANCE):
            return f"{path}: a side file must be a plain name in the dataset directory"
    elif len(parts) != 2 or parts[0] != kind or not path.endswith(".parquet") or parts[1].startswith("."):
        return f"{path}: a {kind} part must be {kind}/NAME.parquet"
    for key in ("rows", "bytes"):
        if not isinstance(entry.get(key), int) or isinstance(entry.get(key), bool) or entry[key] < 0:
            return f"{path}: {key} is not a non-negative integer"
    sha = entry.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or not set(sha) <= _HEX:
        return f"{path}: sha256 is not a hex digest"
    return None


def manifest_problem(manifest: Any) -> str | None:
    """Why ``manifest`` is not a well-formed provkit manifest (``None`` when it is)."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return f"not a provkit manifest (format field is not {FORMAT!r})"
    files = manifest.get("files")
    if not isinstance(files, list):
        return "files is not a list"
    seen: set[str] = set()
    for entry in files:
        problem = entry_problem(entry)
        if problem:
            return problem
        if entry["path"] in seen:
            return f"{entry['path']}: listed twice"
        seen.add(entry["path"])
    for key in ("parents", "activities"):
        if not isinstance(manifest.get(key, []), list):
            return f"{key} is not a list"
    return None
